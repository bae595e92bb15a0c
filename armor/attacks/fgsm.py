"""FGSM (Goodfellow et al. 2015) and FGSM with a random start (Wong et al. 2020)."""
from __future__ import annotations

import torch
from torch import nn

from ..threat import ThreatModel
from .base import ATTACKS, Attack, check_norm, check_step_size


@ATTACKS.register("fgsm")
class FGSM(Attack):
    """One signed-gradient step of size ``step_size`` (default ε) from ``x`` or from a random start."""

    name = "fgsm"
    #: L1: one steepest-ascent step of size ε is not an attack worth the name — the L1 steepest step puts all of ε on
    #: the few features with the largest gradient, where the box cuts it to at most one unit per feature
    norms = ("linf", "l2")
    norm_hint = "use apgd or pgd (a single L1 step of size ε changes a few features and is cut by the box)"

    def __init__(self, threat: ThreatModel, step_size: float | None = None, random_start: bool = False,
                 loss: str = "ce", targeted: bool = False, eot: int = 1, bpda=None, clamp_start: bool = True):
        if random_start:
            check_norm(threat, "fgsm_rs", self.norms, self.norm_hint)
        super().__init__(threat, loss, targeted, eot, bpda)
        self.random_start = bool(random_start)
        self.clamp_start = bool(clamp_start)  # False: the gradient is taken at a start that may leave [0, 1]
        default = 1.25 * threat.eps if self.random_start else threat.eps
        self.step_size = check_step_size(step_size) or default

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = self.threat.random_init(x, clamp=self.clamp_start) if self.random_start else x
        grad, _, _ = self.input_grad(model, x_adv, y)
        return self.threat.project(self.threat.step(x_adv, grad, self.step_size), x)


@ATTACKS.register("fgsm_rs")
def fgsm_rs(threat: ThreatModel, step_size: float | None = None, loss: str = "ce",
            targeted: bool = False, eot: int = 1, bpda=None, clamp_start: bool = True) -> FGSM:
    """FGSM from a uniformly random start in the ball, step 1.25·ε by default ("fast is better than free")."""
    attack = FGSM(threat, step_size=step_size, random_start=True, loss=loss, targeted=targeted, eot=eot, bpda=bpda,
                  clamp_start=clamp_start)
    attack.name = "fgsm_rs"
    return attack


fgsm_rs.norms = FGSM.norms  # type: ignore[attr-defined]  (what the registry-parametrized tests read)
