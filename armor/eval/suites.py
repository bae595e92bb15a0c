"""Named attack suites for ``armor eval --suite``; every suite ends in a worst case over its attacks.

- ``quick``: PGD-20 (CE) — a smoke test, never a headline number.
- ``standard``: APGD-CE, APGD-T (9 target classes), Square (5000 queries): AutoAttack's standard set
  minus FAB-T, which rarely changes the worst case. It contains a black-box attack on purpose: gradient
  masking that fools every white-box attack does not fool random search.
- ``full``: the standard attacks with more restarts (APGD-CE ×5, APGD-DLR ×5, APGD-T ×3 per target) and
  Square with 10 000 queries.
"""
from __future__ import annotations

from typing import Dict

from ..attacks import Attack, create_attack
from ..errors import UserError
from ..threat import ThreatModel

SUITES = ("quick", "standard", "full")


def suite_attacks(suite: str, threat: ThreatModel, steps: int | None = None, queries: int | None = None,
                  n_target_classes: int = 9, **adaptive) -> Dict[str, Attack]:
    """Named attacks of ``suite``; ``adaptive`` (eot, bpda) goes to every attack."""
    if suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    if suite == "quick":
        n = steps or 20
        return {f"pgd-{n}": create_attack("pgd", threat, steps=n, **adaptive)}
    n = steps or 100
    restarts, q = (1, queries or 5000) if suite == "standard" else (5, queries or 10000)
    attacks = {"apgd-ce": create_attack("apgd", threat, steps=n, restarts=restarts, **adaptive)}
    if suite == "full":
        attacks["apgd-dlr"] = create_attack("apgd", threat, steps=n, restarts=restarts, loss="dlr", **adaptive)
    attacks["apgd-t"] = create_attack("apgd_t", threat, steps=n, restarts=1 if suite == "standard" else 3,
                                      n_target_classes=n_target_classes, **adaptive)
    attacks["square"] = create_attack("square", threat, queries=q, **adaptive)
    return attacks
