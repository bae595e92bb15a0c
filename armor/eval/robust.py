"""Clean and robust accuracy, per attack and worst case, always in ``model.eval()``.

An example counts as robust only if every attack failed on it. ``mode="independent"`` runs every attack
on every clean-correct example (so each attack gets its own accuracy); ``mode="ensemble"`` runs the
attacks in order, each only on the examples still standing (AutoAttack's shrinking robust mask), which
gives the same worst case for less work.
"""
from __future__ import annotations

from typing import Dict, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import Attack


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(training)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    return (predict(model, x, batch_size) == y).float().mean().item() * 100 if len(x) else float("nan")


def _check_budget(attack: Attack, x_adv: torch.Tensor, x: torch.Tensor) -> None:
    """Refuse a number measured outside the threat model (a bug in an attack, not a user mistake)."""
    excess = (attack.threat.distance(x_adv, x) - attack.threat.eps).max().item() if len(x) else 0.0
    if excess > 1e-5 * max(1.0, attack.threat.eps) or x_adv.min() < 0 or x_adv.max() > 1:
        raise RuntimeError(f"{attack!r} left the threat model (ε exceeded by {excess:.3g} or outside [0, 1])")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Mapping[str, Attack],
             batch_size: int = 256, mode: str = "independent", progress: bool = False) -> Dict:
    """Accuracy (in %) on clean inputs, under each attack, and in the per-example worst case."""
    if mode not in ("independent", "ensemble"):
        raise ValueError(f"mode must be 'independent' or 'ensemble', got {mode!r}")
    training = model.training
    model.eval()
    n = len(x)
    correct = torch.zeros(n, dtype=torch.bool, device=x.device)
    robust = {name: torch.zeros(n, dtype=torch.bool, device=x.device) for name in attacks}
    broken_by = torch.full((n,), -1, dtype=torch.long, device=x.device)  # index of the first attack that won
    batches = range(0, n, batch_size)
    try:
        for start in tqdm(batches, desc="eval", disable=not progress, leave=False):
            sl = slice(start, start + batch_size)
            xb, yb = x[sl], y[sl]
            with torch.no_grad():
                ok = model(xb).argmax(1) == yb
            correct[sl] = ok
            standing = ok.clone()
            for i, (name, attack) in enumerate(attacks.items()):
                todo = (standing if mode == "ensemble" else ok).nonzero().squeeze(1)
                if todo.numel() == 0:
                    continue
                x_adv = attack(model, xb[todo], yb[todo])
                _check_budget(attack, x_adv, xb[todo])
                with torch.no_grad():
                    held = model(x_adv).argmax(1) == yb[todo]
                held_full = torch.zeros_like(ok)
                held_full[todo] = held
                robust[name][sl] = held_full
                newly_broken = standing & ~held_full
                broken_by[sl] = torch.where(newly_broken, torch.full_like(broken_by[sl], i), broken_by[sl])
                standing &= held_full
    finally:
        model.train(training)
    worst = correct.clone()
    for mask in robust.values():
        worst &= mask
    pct = lambda m: m.float().mean().item() * 100 if n else float("nan")  # noqa: E731
    names = list(attacks)
    result = {
        "n": n,
        "clean_acc": pct(correct),
        "attacks": {name: {"robust_acc": pct(robust[name]), "attack": repr(attacks[name])} for name in names},
        "worst_case_acc": pct(worst),
        "broken_by": {name: int((broken_by == i).sum()) for i, name in enumerate(names)},
        "mode": mode,
    }
    if mode == "ensemble":  # later attacks never saw what earlier ones broke: their own numbers are partial
        for name in names:
            result["attacks"][name]["robust_acc_partial"] = result["attacks"][name].pop("robust_acc")
    return result
