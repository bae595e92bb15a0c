from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.kl import KLPGD
from ..errors import UserError
from ..losses import kl_div
from ..threat import ThreatModel
from .base import METHODS, AttackingMethod, Passes, StepOutput


def check_beta(beta: float) -> float:
    try:
        value = float(beta)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise UserError(f"beta must be a number ≥ 0, got {beta!r}")
    return value


@METHODS.register("trades")
class TRADES(AttackingMethod):
    """Zhang et al. 2019: CE(f(x), y) + β·KL(f(x) ‖ f(x')), x' maximising that KL from a start near x.

    β trades clean accuracy (small β) for robustness (large β); the paper's default is 6.
    """

    name = "trades"

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: float | None = None,
                 beta: float = 6.0):
        self.beta = check_beta(beta)
        super().__init__(threat, steps, step_size)

    def make_attack(self) -> KLPGD:
        return KLPGD(self.threat, steps=self.steps, step_size=self.step_size)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        x_adv = self.attack(model, x, y)
        both = model(torch.cat([x, x_adv]))
        clean_logits, adv_logits = both[: len(x)], both[len(x):]
        clean_loss = F.cross_entropy(clean_logits, y)
        robust_loss = kl_div(adv_logits, clean_logits).mean()
        clean_acc = (clean_logits.argmax(1) == y).float().mean()
        return StepOutput(clean_loss + self.beta * robust_loss, adv_logits,
                          {"clean_loss": clean_loss.detach(), "kl": robust_loss.detach(), "clean_acc": clean_acc})

    def passes(self) -> Passes:
        # the KL attack's steps (after one forward pass for the clean reference), then clean + adversarial batch
        return Passes(self.steps, 2, forward_only=1)

    def __repr__(self) -> str:
        return f"TRADES({self.threat}, beta={self.beta:g}, steps={self.steps})"
