"""The attack protocol: ``attack(model, x, y) -> x_adv``.

An attack is pure with respect to the model: it never leaves ``model.training`` or any parameter's
``requires_grad`` changed, and it takes gradients with respect to the input only
(``torch.autograd.grad``), so no weight gradient is computed or accumulated.
"""
from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import nn

from ..errors import UserError
from ..losses import LOSSES
from ..registry import Registry
from ..threat import ThreatModel

ATTACKS = Registry("attack")


def check_steps(steps: int, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"{name} must be an integer ≥ 1, got {steps!r}")
    return steps


def check_step_size(step_size: float | None) -> float | None:
    if step_size is None:
        return None
    try:
        value = float(step_size)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UserError(f"step_size must be a positive number, got {step_size!r}")
    return value


class Attack:
    """Base class: subclasses implement ``perturb``; ``__call__`` guards the model's state."""

    name = "attack"

    def __init__(self, threat: ThreatModel, loss: str | Callable = "ce", targeted: bool = False):
        if not isinstance(threat, ThreatModel):
            raise TypeError(f"threat must be a ThreatModel, got {type(threat).__name__}")
        self.threat = threat
        self.loss_fn = LOSSES.get(loss) if isinstance(loss, str) else loss
        self.targeted = bool(targeted)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        training = model.training
        flags = [p.requires_grad for p in model.parameters()]
        try:
            with torch.enable_grad():  # attacks work even when called under torch.no_grad()
                x_adv = self.perturb(model, x.detach(), y.detach())
        finally:
            if model.training != training:
                model.train(training)
            for p, flag in zip(model.parameters(), flags):
                if p.requires_grad != flag:
                    p.requires_grad_(flag)
        return x_adv.detach()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.threat})"

    # -- helpers shared by gradient attacks -------------------------------------------------
    def input_grad(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradient of the (ascent) loss with respect to the input; returns (grad, logits, loss)."""
        x_adv = x_adv.detach().requires_grad_(True)
        logits = model(x_adv)
        loss = self.loss_fn(logits, y)
        if self.targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        return grad, logits.detach(), loss.detach()

    def success(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example: did the attack reach its goal (misclassified, or hit the target)?"""
        pred = logits.argmax(dim=1)
        return pred == y if self.targeted else pred != y
