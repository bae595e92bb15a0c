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
from ..modes import untouched
from ..registry import Registry
from ..threat import NORMS, ThreatModel
from .adaptive import Bpda, adaptive, check_eot, parse_bpda

ATTACKS = Registry("attack")


def check_norm(threat: ThreatModel, name: str, norms, hint: str = "") -> None:
    """Refuse a threat model whose norm ``name`` is not defined for (a ``UserError`` with ``hint``, never a run of
    something else)."""
    if threat.norm not in norms:
        raise UserError(f"{name} is not defined for {threat.norm}{'; ' + hint if hint else ''}")


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


_FP16_LOSS_SCALE = 2.0 ** 12


def _fp16_autocast(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == torch.float16
    except (TypeError, AttributeError):  # PyTorch < 2.4 has only the CUDA-specific query
        return device.type == "cuda" and torch.is_autocast_enabled() and \
            torch.get_autocast_gpu_dtype() == torch.float16


def input_gradient(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor]
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """∂ Σ objective(model(x)) / ∂x, with (grad, logits, per-example objective), all detached.

    The one place that handles fp16: under fp16 autocast small input gradients would underflow to 0 inside the
    half-precision layers (and sign(0) = 0 stalls PGD), so the loss is scaled up and the fp32 gradient back down;
    an fp16 overflow gives inf (the sign is still right) or NaN (set to 0: no move this step).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = objective(logits)
        scale = _FP16_LOSS_SCALE if _fp16_autocast(x.device) else 1.0
        (grad,) = torch.autograd.grad(loss.sum() * scale, x)
    if scale != 1.0:
        grad = torch.nan_to_num(grad / scale, nan=0.0)
    return grad.detach(), logits.detach(), loss.detach()


class Attack:
    """Base class: subclasses implement ``perturb``; ``__call__`` guards the model's state."""

    name = "attack"
    #: takes ``steps`` steps of a fixed ``step_size`` (what ``--step-size`` sets); APGD adapts its own step
    iterative = False
    #: needs image batches (N, C, H, W) (Square's windows)
    needs_images = False
    #: the norms the attack is defined for (any other is a ``UserError`` when it is built)
    norms: Tuple[str, ...] = NORMS

    def __init__(self, threat: ThreatModel, loss: str | Callable = "ce", targeted: bool = False, eot: int = 1,
                 bpda: Bpda = None):
        if not isinstance(threat, ThreatModel):
            raise TypeError(f"threat must be a ThreatModel, got {type(threat).__name__}")
        check_norm(threat, self.name, self.norms, getattr(self, "norm_hint", ""))
        self.threat = threat
        self.loss_fn = LOSSES.get(loss) if isinstance(loss, str) else loss
        self.targeted = bool(targeted)
        self.eot = check_eot(eot)  # adaptive options (see adaptive.py): EOT samples, straight-through layers
        self.bpda = parse_bpda(bpda)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            # input gradients need no all-reduce of weight gradients: attack the shared module directly,
            # so DDP never sees a forward without its backward
            model = model.module
        with untouched(model), torch.enable_grad(), adaptive(model, self.eot, self.bpda) as attacked:
            # enable_grad: attacks work even when called under torch.no_grad()
            x_adv = self.perturb(attacked, x.detach(), y.detach())
        return x_adv.detach()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.threat})"

    # -- helpers shared by gradient attacks -------------------------------------------------
    def input_grad(self, model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradient of the (ascent) loss with respect to the input; returns (grad, logits, loss)."""
        if self.targeted:
            return input_gradient(model, x_adv, lambda logits: -self.loss_fn(logits, y))
        return input_gradient(model, x_adv, lambda logits: self.loss_fn(logits, y))

    def success(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example: did the attack reach its goal (misclassified, or hit the target)?"""
        pred = logits.argmax(dim=1)
        return pred == y if self.targeted else pred != y
