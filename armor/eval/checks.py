"""Gradient-masking sanity checks (Carlini et al. 2019, "On evaluating adversarial robustness").

Each check runs small independent attacks on a subset and returns PASS, WARN (a symptom of gradient
masking or randomness: the robust accuracy is probably overstated) or NOTE (a reporting rule, not a
masking symptom). The thresholds were set on digits (ε = 0.2) where they separated four masked models
from honest ones with wide margins:

- PGD at a huge ε (1.0 for L∞) still leaves > 5 % accuracy (honest: 0 %, masked: 17–50 %);
- the black-box Square attack beats the best white-box attack by > 2 points (honest: Square is weaker);
- the input gradient is zero or NaN on > 10 % of inputs (honest: 0 %, masked: 87–100 %);
- re-classifying the same adversarial points changes > 1 % of predictions (a randomised model);
- 5 restarts lower accuracy by > 10 points compared with 1 (randomness the attack did not average out);
- FGSM beats PGD, more steps raise accuracy, or random noise beats the attack (rarely fire; kept
  because any of them firing means the attack is broken);
- NOTE: CE-PGD more than 3 points above APGD-T means a PGD number must not be reported alone;
- with a surrogate (``armor eval --surrogate``): PGD crafted on the surrogate alone and judged on the model (a
  transfer attack) beats the best white-box attack by > 2 points (:func:`transfer_check`; on an honest model
  transfer is the weaker attack).

The checks use the same adaptive options (``eot``, ``bpda``) as the evaluation, so an evaluation that
has defeated the masking passes them. They judge the model's own gradients: a surrogate's attacks are not in them,
so with a masked model and a good surrogate the transfer check warns even though the evaluation's worst case (which
includes the surrogate-driven attacks) is sound.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import adaptive, create_attack, input_gradient
from ..losses import ce
from ..modes import eval_mode
from ..threat import ThreatModel
from .robust import evaluate, predict

PASS, WARN, NOTE = "PASS", "WARN", "NOTE"

#: the two sizes of the checks (``armor eval --checks quick|standard``; ``auto`` takes quick after the quick and fast
#: suites): examples, steps of the gradient attacks, Square's queries, APGD-T's target classes. The quick level is the
#: budget the masked-model table of the README was measured with (on 60 images there).
LEVELS: Dict[str, Dict[str, int]] = {
    "quick": {"n": 100, "steps": 20, "queries": 300, "n_target_classes": 3},
    "standard": {"n": 200, "steps": 100, "queries": 1000, "n_target_classes": 9},
}


def _attack_acc(model, x, y, attack, seed) -> float:
    return evaluate(model, x, y, {"a": attack}, seed=seed).acc("a")


def _zero_or_nan_grad_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int, bpda) -> float:
    with eval_mode(model), adaptive(model, eot, bpda) as attacked:
        grad, _, _ = input_gradient(attacked, x, lambda logits: ce(logits, y))
    flat = grad.reshape(len(x), -1)
    bad = ~torch.isfinite(flat).all(dim=1) | (flat.abs().amax(dim=1) == 0)
    return bad.float().mean().item() * 100


def run_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, n: Optional[int] = 200,
               steps: int = 100, queries: int = 1000, n_target_classes: int = 9, eot: int = 1, bpda=None,
               seed: int = 0, progress: bool = False, surrogate: Optional[nn.Module] = None) -> Dict[str, Any]:
    """Run every check on the first ``n`` examples; returns {"checks": [...], "numbers": {...}}. With a
    ``surrogate``, the transfer check too."""
    if n is not None:
        x, y = x[:n], y[:n]
    opts = {"eot": eot, "bpda": bpda}
    short = max(steps // 10, 1)
    # an ε as large as the input box (its whole side for L∞, its diagonal for L2, the sum of its sides for L1)
    # reaches every input
    features = x[0].numel()
    big_eps = threat.box_width * {"linf": 1.0, "l2": math.sqrt(features), "l1": float(features)}[threat.norm]
    single_step = threat.norm != "l1"  # FGSM is not defined for L1: no single-step comparison there
    pgd = create_attack("pgd", threat, steps=steps, **opts)
    bar = tqdm(total=8, desc="checks", disable=not progress, leave=False)

    def _acc(model, x, y, attack, seed) -> float:  # each check's attack ticks the progress bar
        value = _attack_acc(model, x, y, attack, seed)
        bar.update(1)
        return value

    numbers: Dict[str, float] = {
        "n": len(x),
        "clean": evaluate(model, x, y, {}).clean_acc,
        "fgsm": _acc(model, x, y, create_attack("fgsm", threat, **opts), seed) if single_step else math.nan,
        f"pgd-{short}": _acc(model, x, y, create_attack("pgd", threat, steps=short, **opts), seed),
        f"pgd-{steps}": _acc(model, x, y, pgd, seed),
        "apgd-t": _acc(model, x, y, create_attack("apgd_t", threat, steps=steps, n_target_classes=n_target_classes,
                                                  **opts), seed) if _classes(model, x) >= 4 else math.nan,
        f"square-{queries}": _acc(model, x, y, create_attack("square", threat, queries=queries, **opts), seed)
        if x.dim() == 4 else math.nan,
        f"pgd-{steps}@eps={big_eps:.3g}": _acc(model, x, y, create_attack("pgd", threat.scaled(big_eps),
                                                                          steps=steps, **opts), seed),
        f"pgd-{short}x5": _acc(model, x, y, create_attack("pgd", threat, steps=short, restarts=5, **opts), seed),
        "zero_or_nan_grad_pct": _zero_or_nan_grad_fraction(model, x, y, eot, bpda),
    }
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        numbers["noise"] = (predict(model, threat.random_boundary(x)) == y).float().mean().item() * 100
        correct = (predict(model, x) == y).nonzero().squeeze(1)
        x_adv = pgd(model, x[correct], y[correct]) if correct.numel() else x[:0]
        first, second = predict(model, x_adv), predict(model, x_adv)
    numbers["reeval_flip_pct"] = (first != second).float().mean().item() * 100 if len(x_adv) else 0.0
    bar.update(bar.total - bar.n)
    bar.close()

    white = min(v for v in (numbers[f"pgd-{steps}"], numbers["apgd-t"]) if not math.isnan(v))
    checks: List[Dict[str, Any]] = []

    def add(name: str, bad: bool, value: float, message: str, status_if_bad: str = WARN) -> None:
        checks.append({"name": name, "status": status_if_bad if bad else PASS, "value": value, "message": message})

    if single_step:
        add("iterative_beats_single_step", numbers["fgsm"] < numbers[f"pgd-{steps}"] - 2,
            numbers["fgsm"] - numbers[f"pgd-{steps}"], f"FGSM {numbers['fgsm']:.1f} % vs PGD-{steps} "
            f"{numbers[f'pgd-{steps}']:.1f} % (WARN if FGSM is > 2 points stronger)")
    add("more_steps_do_not_raise_accuracy", numbers[f"pgd-{steps}"] > numbers[f"pgd-{short}"] + 2,
        numbers[f"pgd-{steps}"] - numbers[f"pgd-{short}"], f"PGD-{steps} {numbers[f'pgd-{steps}']:.1f} % vs "
        f"PGD-{short} {numbers[f'pgd-{short}']:.1f} % (WARN if more steps give > 2 points more)")
    big = numbers[f"pgd-{steps}@eps={big_eps:.3g}"]
    add("large_eps_reaches_zero", big > 5, big, f"PGD-{steps} at ε = {big_eps:.3g}: {big:.1f} % (WARN above 5 %)")
    square = numbers[f"square-{queries}"]
    if not math.isnan(square):
        add("blackbox_not_stronger", square < white - 2, white - square,
            f"Square ({queries} queries) {square:.1f} % vs best white-box {white:.1f} % "
            f"(WARN if Square is > 2 points stronger)")
    add("noise_weaker_than_attack", numbers["noise"] < white - 1, numbers["noise"],
        f"random {'size-ε' if threat.norm == 'l1' else '±ε'} noise {numbers['noise']:.1f} % vs attack {white:.1f} % "
        f"(WARN if noise is stronger)")
    add("gradients_nonzero", numbers["zero_or_nan_grad_pct"] > 10, numbers["zero_or_nan_grad_pct"],
        f"zero or NaN input gradient on {numbers['zero_or_nan_grad_pct']:.1f} % of inputs (WARN above 10 %)")
    add("deterministic_predictions", numbers["reeval_flip_pct"] > 1, numbers["reeval_flip_pct"],
        f"re-classifying the same adversarial points changed {numbers['reeval_flip_pct']:.1f} % of predictions "
        f"(WARN above 1 %: a randomised model — attack it with eot)")
    drop = numbers[f"pgd-{short}"] - numbers[f"pgd-{short}x5"]  # same seed: the first restart is shared
    add("restarts_do_not_drop_much", drop > 10, drop, f"5 restarts lower PGD-{short} accuracy by {drop:.1f} "
        f"points (WARN above 10)")
    if not math.isnan(numbers["apgd-t"]):
        gap = numbers[f"pgd-{steps}"] - numbers["apgd-t"]
        add("pgd_not_reported_alone", gap > 3, gap, f"CE-PGD-{steps} {numbers[f'pgd-{steps}']:.1f} % vs APGD-T "
            f"{numbers['apgd-t']:.1f} % (NOTE if PGD is > 3 points higher: never report PGD alone)", NOTE)
    if surrogate is not None:
        transfer = transfer_check(model, surrogate, x, y, threat, white, steps=steps, eot=eot, seed=seed)
        numbers[f"transfer-pgd-{steps}"] = transfer["value"] + white
        checks.append(transfer)
    return {"checks": checks, "numbers": numbers, "warnings": sum(c["status"] == WARN for c in checks)}


TRANSFER_MARGIN = 2.0  # points by which transfer may beat white-box before it is a warning


def transfer_check(model: nn.Module, surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                   white_box: float, steps: int = 100, eot: int = 1, seed: int = 0) -> Dict[str, Any]:
    """PGD-``steps`` crafted on ``surrogate`` alone, judged on ``model``, against the best white-box accuracy
    ``white_box`` (%): WARN when transfer is more than :data:`TRANSFER_MARGIN` points stronger — the model's own
    gradients point the attack the wrong way (gradient masking), and only attacks driven by the surrogate find
    its weak points. ``value`` is transfer accuracy minus white-box accuracy (negative: transfer is stronger)."""
    from ..attacks.transfer import TransferAttack

    attack = TransferAttack(create_attack("pgd", threat, steps=steps, eot=eot), surrogate)
    transfer = _attack_acc(model, x, y, attack, seed)
    return {"name": "transfer_not_stronger", "status": WARN if transfer < white_box - TRANSFER_MARGIN else PASS,
            "value": transfer - white_box,
            "message": f"PGD-{steps} transferred from the surrogate {transfer:.1f} % vs best white-box "
                       f"{white_box:.1f} % (WARN if transfer is > {TRANSFER_MARGIN:g} points stronger)"}


@torch.no_grad()
def _classes(model: nn.Module, x: torch.Tensor) -> int:
    with eval_mode(model):
        return int(model(x[:1]).shape[1])


def format_checks(report: Dict[str, Any]) -> str:
    """The short PASS/WARN list printed after ``armor eval``."""
    level = report.get("level")
    about = f" ({level}: {_budget(level)}{'; --checks standard for the full set' if level == 'quick' else ''})" \
        if level in LEVELS else ""
    lines = [f"sanity checks on {report['numbers']['n']} examples{about}:"]
    lines += [f"  {c['status']:<4}  {c['name']}: {c['message']}" for c in report["checks"]]
    return "\n".join(lines)


def _budget(level: str) -> str:
    b = LEVELS[level]
    return f"{b['steps']}-step attacks, APGD-T with {b['n_target_classes']} targets, Square {b['queries']} queries"
