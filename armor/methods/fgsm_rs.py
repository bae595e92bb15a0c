from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import FGSM
from ..threat import ThreatModel
from .base import METHODS, SINGLE_STEP_L1, AttackingMethod, Passes, StepOutput


@METHODS.register("fgsm_rs")
class FGSMRS(AttackingMethod):
    """Wong et al. 2020, "fast is better than free": one FGSM step of α = 1.25·ε from a random start.

    About as cheap as two forward-backward passes per batch. Pair it with ``schedule: onecycle``. Single-step
    training can overfit catastrophically (PGD accuracy falls to ~0 within an epoch while FGSM accuracy
    soars), so the trainer's guard (``guard``) is on by default for this method.
    """

    name = "fgsm_rs"
    norms = ("linf", "l2")
    norm_hint = SINGLE_STEP_L1
    guard_by_default = True

    def __init__(self, threat: ThreatModel, step_size: float | None = None, clamp_start: bool = True):
        self.clamp_start = bool(clamp_start)
        super().__init__(threat, steps=1, step_size=step_size)

    def make_attack(self) -> FGSM:
        # α defaults to 1.25·ε. ``clamp_start: false`` (method_options) takes the gradient at the unclamped
        # random start, as Wong et al.'s MNIST code does: on MNIST ε=0.3 the clamped start collapsed.
        return FGSM(self.threat, step_size=self.step_size, random_start=True, clamp_start=self.clamp_start)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        logits = model(self.attack(model, x, y))
        return StepOutput(F.cross_entropy(logits, y), logits)

    def passes(self) -> Passes:
        return Passes(1, 1)  # one FGSM gradient, one weight update

    def __repr__(self) -> str:
        return f"FGSMRS({self.threat}, step_size={self.attack.step_size:.4g})"
