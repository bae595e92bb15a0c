"""The TRADES inner maximisation: PGD on KL(f(x) ‖ f(x')), which needs no labels."""
from __future__ import annotations

import torch
from torch import nn

from ..losses import kl_div
from ..threat import ThreatModel
from .base import Attack, check_step_size, check_steps


class KLPGD(Attack):
    """``steps`` ascent steps on KL(p(x) ‖ p(x')) from a start near x (x + ``init_std``·N(0, 1)).

    The KL is zero with a zero gradient at x' = x, hence the small Gaussian start of Zhang et al. 2019.
    The label is ignored: the clean prediction is the reference. Not in the attack registry, because
    as an evaluation attack it measures prediction change, not misclassification.
    """

    name = "kl_pgd"
    iterative = True

    def __init__(self, threat: ThreatModel, steps: int = 10, step_size: float | None = None,
                 init_std: float = 0.001):
        super().__init__(threat)
        self.steps = check_steps(steps)
        self.step_size = check_step_size(step_size) or 2.5 * threat.eps / self.steps
        self.init_std = float(init_std)
        self.loss_fn = kl_div  # input_grad calls loss_fn(logits, reference_logits)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            clean_logits = model(x)
        start = x + self.init_std * torch.randn_like(x)
        x_adv = self.threat.project(start, x)
        for _ in range(self.steps):
            grad, _, _ = self.input_grad(model, x_adv, clean_logits)
            x_adv = self.threat.project(self.threat.step(x_adv, grad, self.step_size), x)
        return x_adv
