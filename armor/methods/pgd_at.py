from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..errors import UserError
from ..threat import ThreatModel
from .base import METHODS, AttackingMethod, Passes, StepOutput


@METHODS.register("pgd_at")
class PGDAT(AttackingMethod):
    """Madry et al. adversarial training: minimise the loss on PGD-``steps`` examples.

    ``clean_weight`` w mixes the clean loss in: ``(1 - w)·CE(x_adv) + w·CE(x)`` (0 = pure Madry,
    0.5 = Goodfellow et al.'s half-and-half).
    """

    name = "pgd_at"

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: float | None = None,
                 random_start: bool = True, clean_weight: float = 0.0):
        try:
            weight = float(clean_weight)
        except (TypeError, ValueError):
            weight = float("nan")
        if not 0.0 <= weight <= 1.0:
            raise UserError(f"clean_weight must be in [0, 1], got {clean_weight!r}")
        self.random_start, self.clean_weight = bool(random_start), weight
        super().__init__(threat, steps, step_size)

    def make_attack(self) -> PGD:
        return PGD(self.threat, steps=self.steps, step_size=self.step_size, random_start=self.random_start,
                   keep_best=False)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        x_adv = self.attack(model, x, y)
        if self.clean_weight == 0.0:
            logits = model(x_adv)
            return StepOutput(F.cross_entropy(logits, y), logits)
        both = model(torch.cat([x_adv, x]))  # one forward pass for both halves
        logits, clean_logits = both[: len(x)], both[len(x):]
        adv_loss, clean_loss = F.cross_entropy(logits, y), F.cross_entropy(clean_logits, y)
        loss = (1 - self.clean_weight) * adv_loss + self.clean_weight * clean_loss
        clean_acc = (clean_logits.argmax(1) == y).float().mean()
        return StepOutput(loss, logits, {"clean_loss": clean_loss.detach(), "clean_acc": clean_acc})

    def passes(self) -> Passes:
        return Passes(self.steps, 1 if self.clean_weight == 0.0 else 2)  # clean_weight: the clean batch too

    def __repr__(self) -> str:
        return f"PGDAT({self.threat}, steps={self.steps}, clean_weight={self.clean_weight:g})"
