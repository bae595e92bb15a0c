"""N-FGSM (de Jorge et al. 2022, "Make some noise: reliable and efficient single-step adversarial training")."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import Attack, check_step_size
from ..errors import UserError
from ..threat import ThreatModel
from .base import METHODS, SINGLE_STEP_L1, AttackingMethod, Passes, StepOutput


def check_noise_multiple(k) -> float:
    try:
        value = float(k)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(k, bool) or not (value >= 0 and math.isfinite(value)):
        raise UserError(f"k (the noise magnitude, a multiple of ε) must be a number ≥ 0, got {k!r}")
    return value


class NoiseFGSM(Attack):
    """The N-FGSM training perturbation: one signed-gradient step of ``step_size`` from ``x + η``, with noise
    η ~ U[−k·ε, k·ε] per feature (L∞), and **no** projection onto the ε-ball afterwards.

    The result may lie up to k·ε + step_size from ``x`` — (k + 1)·ε with the defaults — on purpose: the paper's
    point is that strong noise without clipping avoids catastrophic overfitting. Only the input box applies (to the
    noisy start and to the result, as in the authors' code, which clamps both to the image range), and the
    immutable features never move. It breaks the ε-ball contract of evaluation attacks, so it is not in
    ``ATTACKS``; it exists only to train with.

    L2 (not in the paper, the same construction in that norm): η is uniform in radius inside the L2 ball of radius
    k·ε, the step moves ``step_size`` along the normalised gradient, and the result may reach (k·ε + step_size) in
    L2.
    """

    name = "n_fgsm"
    norms = ("linf", "l2")
    norm_hint = SINGLE_STEP_L1

    def __init__(self, threat: ThreatModel, k: float = 2.0, step_size: float | None = None):
        super().__init__(threat)
        self.k = check_noise_multiple(k)
        self.step_size = check_step_size(step_size) or threat.eps
        self._noise = threat.scaled(self.k * threat.eps) if self.k > 0 else None  # the noise ball, radius k·ε

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """``x + η`` clipped to the input box (immutable features untouched)."""
        return x if self._noise is None else self._noise.random_init(x)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        start = self.start(x)
        grad, _, _ = self.input_grad(model, start, y)
        return self.threat.clip(self.threat.step(start, grad, self.step_size))

    def __repr__(self) -> str:
        return f"NoiseFGSM({self.threat}, k={self.k:g}, step_size={self.step_size:.4g})"


@METHODS.register("n_fgsm")
class NFGSM(AttackingMethod):
    """de Jorge et al. 2022: train on ``x + η + α·sign(∇ₓℓ(x + η))``, η ~ U[−k·ε, k·ε], not clipped to ε.

    Defaults are the paper's: k = 2, α = ε (its code's settings for nearly every run on CIFAR-10/100 and SVHN; a
    few of the largest ε use k = 3–4). The training perturbation is larger than ε (up to (k + 1)·ε in L∞); the
    model is still evaluated at ε. Same cost as FGSM-RS: two forward and two backward passes per batch.
    ``step_size`` is kept as a fraction of ε, so α follows the ε warm-up ramp (the authors ramp α with ε on
    SVHN); the noise is k times the current ε. The trainer's catastrophic-overfitting guard is on by default, as
    for every single-step method.
    """

    name = "n_fgsm"
    guard_by_default = True

    def __init__(self, threat: ThreatModel, k: float = 2.0, step_size: float | None = None):
        self.k = check_noise_multiple(k)
        super().__init__(threat, steps=1, step_size=step_size)  # step_size None: α = ε (NoiseFGSM's default)

    def make_attack(self) -> NoiseFGSM:
        return NoiseFGSM(self.threat, k=self.k, step_size=self.step_size)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        logits = model(self.attack(model, x, y))
        return StepOutput(F.cross_entropy(logits, y), logits)

    def passes(self) -> Passes:
        return Passes(1, 1)  # the gradient at x + η, one weight update

    def __repr__(self) -> str:
        return f"NFGSM({self.threat}, k={self.k:g}, step_size={self.attack.step_size:.4g})"
