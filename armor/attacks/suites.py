"""Named attack suites (``armor eval --suite``): attack lists run as a shrinking-mask ensemble, ending in a
worst case over their attacks. Each suite states its full budget, so a record can say when it was cut down.

- ``quick``: PGD-20 (CE) — a smoke test, never a headline number.
- ``fast``: the standard suite's three attacks at under a fifth of its forward+backward passes — APGD-CE (25
  steps), APGD-T (all 9 target classes, 20 steps each: cutting targets loses more than cutting steps), Square (800
  queries) — for the evaluation people run most often; never AutoAttack, never ``autoattack_acc``. Its worst case is
  an upper bound the standard suite may lower, by little on models whose gradients are honest and by more where
  Square-5000 finds what the gradient attacks miss (README, "Evaluation", has the measured gaps).
- ``standard``: APGD-CE, APGD-T (9 target classes), Square (5000 queries): AutoAttack's standard set minus
  FAB-T, so **not** AutoAttack and never reported as ``autoattack_acc``. It contains a black-box attack on
  purpose: gradient masking that fools every white-box attack does not fool random search.
- ``full``: the standard attacks with more restarts (APGD-CE ×5, APGD-DLR ×5, APGD-T ×3 per target) and
  Square with 10 000 queries.
- ``autoattack``: AutoAttack's standard version (Croce & Hein 2020) — APGD-CE (100 steps), APGD-T (9 target
  classes, 100 steps), FAB-T (9 target classes, 100 steps), Square (5000 queries, with AutoAttack's p_init 0.8
  for both norms and its window schedule on the 10 000-query scale), one restart each. It is the only suite
  whose worst case a record may call ``autoattack_acc`` (:func:`armor.results.autoattack_allowed`), and only at
  this full budget on the whole split: fewer steps or queries, or fewer examples, are listed in ``reduced`` and
  drop the claim.

Under the **L1** threat model the suites follow AutoAttack's L1 version (its ``standard`` version with
``norm='L1'``; Croce & Hein 2021): ``autoattack`` is APGD-CE with 5 restarts and APGD-T with 5 target classes, both
with the 3ε → 2ε → ε stages (``larger_eps``), FAB-T (9 targets) and the L1 Square attack (5000 queries);
``standard`` is the same without FAB-T. ``full`` and ``quick`` keep their attacks (APGD runs its L1 version, without
the stages). :func:`suite_entries` gives a suite's composition for a norm.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from ..losses import LOSSES
from ..threat import ThreatModel
from .apgd import APGD, APGDTargeted
from .base import ATTACKS, Attack

#: suite → [(label, attack, options)], at the suite's full budget; ``steps``/``queries`` may be lowered per run
SUITES: Dict[str, List[Tuple[str, str, Dict[str, Any]]]] = {
    "quick": [("pgd-{steps}", "pgd", {"steps": 20})],
    "fast": [("apgd-ce", "apgd", {"steps": 25}),
             ("apgd-t", "apgd_t", {"steps": 20, "n_target_classes": 9}),
             ("square", "square", {"queries": 800})],
    "standard": [("apgd-ce", "apgd", {"steps": 100}),
                 ("apgd-t", "apgd_t", {"steps": 100, "n_target_classes": 9}),
                 ("square", "square", {"queries": 5000})],
    "full": [("apgd-ce", "apgd", {"steps": 100, "restarts": 5}),
             ("apgd-dlr", "apgd", {"steps": 100, "restarts": 5, "loss": "dlr"}),
             ("apgd-t", "apgd_t", {"steps": 100, "restarts": 3, "n_target_classes": 9}),
             ("square", "square", {"queries": 10000})],
    "autoattack": [("apgd-ce", "apgd", {"steps": 100}),
                   ("apgd-t", "apgd_t", {"steps": 100, "n_target_classes": 9}),
                   ("fab-t", "fab_t", {"steps": 100, "n_target_classes": 9}),
                   ("square", "square", {"queries": 5000, "p_init": 0.8, "rescale_schedule": False})],
}

#: where a norm's suite differs from :data:`SUITES` (AutoAttack's L1 version: 5 APGD-CE restarts, 5 APGD-T targets)
SUITES_BY_NORM: Dict[str, Dict[str, List[Tuple[str, str, Dict[str, Any]]]]] = {
    "l1": {
        "standard": [("apgd-ce", "apgd", {"steps": 100, "restarts": 5, "larger_eps": True}),
                     ("apgd-t", "apgd_t", {"steps": 100, "n_target_classes": 5, "larger_eps": True}),
                     ("square", "square", {"queries": 5000})],
        "autoattack": [("apgd-ce", "apgd", {"steps": 100, "restarts": 5, "larger_eps": True}),
                       ("apgd-t", "apgd_t", {"steps": 100, "n_target_classes": 5, "larger_eps": True}),
                       ("fab-t", "fab_t", {"steps": 100, "n_target_classes": 9}),
                       ("square", "square", {"queries": 5000, "p_init": 0.8, "rescale_schedule": False})],
    },
}


def suite_entries(suite: str, norm: str = "linf") -> List[Tuple[str, str, Dict[str, Any]]]:
    """``suite``'s attacks ``[(label, attack, options)]`` at full budget, for threat models of ``norm``."""
    check_suite(suite)
    return SUITES_BY_NORM.get(norm, {}).get(suite, SUITES[suite])


#: the options a run may set for a whole suite (everything else is the suite's definition)
SUITE_OPTIONS = ("steps", "queries", "n_target_classes")


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise UserError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    return suite


def check_suite_options(suite: str, **overrides: Any) -> Dict[str, Any]:
    """The overrides that are set, after checking that some attack of ``suite`` takes each one."""
    check_suite(suite)
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in given:
        if not any(key in opts for _, _, opts in SUITES[suite]):
            takes = [s for s, entries in SUITES.items() if any(key in o for _, _, o in entries)]
            raise UserError(f"suite {suite!r} has no attack with option {key!r} (suites that have one: "
                            f"{', '.join(takes)})")
    return given


def suite_attacks(suite: str, threat: ThreatModel, steps: Optional[int] = None, queries: Optional[int] = None,
                  n_target_classes: Optional[int] = None, **adaptive: Any) -> Dict[str, Attack]:
    """Named attacks of ``suite``; ``steps``/``queries``/``n_target_classes`` override the suite's budget (a
    ``UserError`` when no attack of the suite has that option); ``adaptive`` (eot, bpda) goes to every attack."""
    overrides = check_suite_options(suite, steps=steps, queries=queries, n_target_classes=n_target_classes)
    attacks: Dict[str, Attack] = {}
    for label, name, options in suite_entries(suite, threat.norm):
        opts = {**options, **{k: v for k, v in overrides.items() if k in options}}
        attacks[label.format(**opts)] = ATTACKS.create(name, threat, **opts, **adaptive)
    return attacks


def suite_shortfall(suite: str, steps: Optional[int] = None, queries: Optional[int] = None,
                    n_target_classes: Optional[int] = None, norm: str = "linf") -> List[str]:
    """How a run's budget falls short of the suite's full one (for ``norm``), in words (empty: full budget)."""
    given = {"steps": steps, "queries": queries, "n_target_classes": n_target_classes}
    out = []
    for label, name, options in suite_entries(suite, norm):
        for key, full in options.items():
            value = given.get(key)
            if value is not None and isinstance(full, int) and value < full:
                out.append(f"{label.format(**options)}: {key} {value} < {full}")
    return out


#: the fast suite's worst case is called loose when its Square broke at least this share (points) of the examples
LOOSE_SQUARE_POINTS = 1.0


def loose_bound_note(suite: Optional[str], result: Any) -> Optional[str]:
    """A line for a ``fast``-suite result whose Square, at its short budget, still broke ≥ 1 % of the examples after
    the gradient attacks (the sign that the standard suite's 5000 queries will find more), else None."""
    if suite != "fast" or "square" not in result.attacks or not result.n:
        return None
    points = 100.0 * result.attacks["square"].broken / result.n
    if points < LOOSE_SQUARE_POINTS:
        return None
    return (f"Square broke {points:.1f} % of the examples after the gradient attacks on its short budget: this worst "
            f"case is likely loose (on such MNIST models the standard suite's 5000 queries went 1.6-3 points lower); "
            f"report --suite standard")


def adapt_to_data(attacks: Dict[str, Attack], input_shape: Sequence[int], num_classes: int
                  ) -> Tuple[Dict[str, Attack], List[str]]:
    """The attacks that can run on these inputs and classes, and what was changed, in words.

    - An attack that needs images (Square's square windows) is dropped for feature vectors (N, F): the suite then
      has no black-box attack, which the record says.
    - APGD-T's targeted DLR loss needs 4 classes (it uses the 4th-largest logit): with fewer it uses the targeted
      CW margin loss (target logit minus true logit) instead; APGD with the DLR loss needs 3, else the CW margin.
    """
    kept: Dict[str, Attack] = {}
    notes: List[str] = []
    images = len(input_shape) == 3
    for label, attack in attacks.items():
        if getattr(attack, "needs_images", False) and not images:
            notes.append(f"{label} dropped: it needs images (N, C, H, W); these inputs are (N, "
                         f"{', '.join(map(str, input_shape))}), so no black-box attack ran")
            continue
        if isinstance(attack, APGDTargeted) and num_classes < 4 and attack.target_loss == "dlr":
            attack = copy.copy(attack)
            attack.target_loss = "margin"
            notes.append(f"{label}: {num_classes} classes < 4, so the targeted CW margin loss replaces the targeted "
                         f"DLR loss (which needs the 4th-largest logit)")
        elif isinstance(attack, APGD) and not isinstance(attack, APGDTargeted) and attack.loss_name == "dlr" \
                and num_classes < 3:
            attack = copy.copy(attack)
            attack.loss_fn, attack.loss_name = LOSSES.get("margin"), "margin"
            notes.append(f"{label}: {num_classes} classes < 3, so the CW margin loss replaces the DLR loss")
        kept[label] = attack
    if not kept:
        raise UserError("none of the attacks can run on these inputs: " + "; ".join(notes))
    return kept, notes


def attack_list(threat: ThreatModel, names: List[str], steps: Optional[int] = None, restarts: Optional[int] = None,
                step_size: Optional[float] = None, queries: Optional[int] = None, loss: Optional[str] = None,
                **adaptive: Any) -> Dict[str, Attack]:
    """Attacks keyed by their table label (``fgsm``, ``pgd-20``, ``apgd-100x5``, ``square-5000``).

    Each option goes only to the attacks that take it: ``steps`` (default 20) and ``restarts`` to the attacks that
    have them, ``step_size`` to the iterative ones (PGD's per-iteration step, never FGSM's single step),
    ``queries`` to Square, ``loss`` to the gradient attacks with a choice of loss. ``adaptive`` (eot, bpda) goes to
    every attack. Which options apply to which list is checked by :class:`armor.config.EvalConfig`."""
    attacks: Dict[str, Attack] = {}
    for name in names:
        factory = ATTACKS.get(name)
        takes = ATTACKS.options(name)
        opts: Dict[str, Any] = {}
        if "steps" in takes:
            opts["steps"] = steps or 20
        if restarts is not None and "restarts" in takes:
            opts["restarts"] = restarts
        if step_size is not None and getattr(factory, "iterative", False) and "step_size" in takes:
            opts["step_size"] = step_size
        if queries is not None and "queries" in takes:
            opts["queries"] = queries
        if loss is not None and "loss" in takes:
            opts["loss"] = loss
        label = name
        if "steps" in takes:
            label = f"{name}-{opts['steps']}" + (f"x{restarts}" if restarts and restarts > 1 else "") \
                + (f"-{loss}" if loss and "loss" in takes else "")
        elif name == "square":
            label = f"square-{queries or 5000}"
        attacks[label] = ATTACKS.create(name, threat, **opts, **adaptive)
    return attacks
