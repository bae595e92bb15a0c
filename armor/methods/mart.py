from __future__ import annotations

import torch
from torch import nn

from ..attacks import PGD
from ..losses import mart
from ..threat import ThreatModel
from .base import METHODS, AttackingMethod, Passes, StepOutput
from .trades import check_beta


@METHODS.register("mart")
class MART(AttackingMethod):
    """Wang et al. 2020: boosted CE on PGD examples + β·KL(p(x) ‖ p(x'))·(1 − p_y(x)).

    The KL term is weighted towards examples the model already gets wrong on clean inputs
    ("misclassification aware"); the paper's β is 5–6.
    """

    name = "mart"

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: float | None = None,
                 beta: float = 6.0):
        self.beta = check_beta(beta)
        super().__init__(threat, steps, step_size)

    def make_attack(self) -> PGD:
        return PGD(self.threat, steps=self.steps, step_size=self.step_size, keep_best=False)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        x_adv = self.attack(model, x, y)
        both = model(torch.cat([x_adv, x]))
        adv_logits, clean_logits = both[: len(x)], both[len(x):]
        loss = mart(adv_logits, clean_logits, y, self.beta).mean()
        clean_acc = (clean_logits.argmax(1) == y).float().mean()
        return StepOutput(loss, adv_logits, {"clean_acc": clean_acc})

    def passes(self) -> Passes:
        return Passes(self.steps, 2)  # PGD, then the adversarial and the clean batch in one weight update

    def __repr__(self) -> str:
        return f"MART({self.threat}, beta={self.beta:g}, steps={self.steps})"
