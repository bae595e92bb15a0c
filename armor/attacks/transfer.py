"""Attacks driven by another network: a differentiable twin or a surrogate of the model under attack.

Two standard ways to use a second network ``s`` whose gradients are informative where the model ``f``'s are
not (a twin without the input rounding, a standard-trained copy, a distilled model):

- **twin** (BPDA with the twin, :class:`TwinAttack`): the attack sees ``x ↦ f(x) + (s(x) − s(x).detach())`` —
  the model's own logits forward (bit for bit: the added term is exactly zero), the surrogate's gradient backward.
  Everything an attack does with logit *values* — APGD's step-size checks, the margins, which iterate fooled
  the model, when to stop — is about the real model; only the direction comes from the surrogate. Gradient-free
  attacks (Square) see the model alone: the surrogate runs only when a gradient is being taken.
- **transfer** (:class:`TransferAttack`): the attack runs against ``s`` alone and its points are judged on ``f``
  (the model is never queried while crafting) — what a black-box attacker without query access gets.

Passes through the surrogate are not counted in an evaluation's ``forward_passes`` (which counts the model's).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional

import torch
from torch import nn

from ..errors import UserError
from .base import Attack

#: how an evaluation uses a surrogate (``armor eval --surrogate-mode``)
SURROGATE_MODES = ("twin", "transfer")


@contextlib.contextmanager
def _mirrored(source: nn.Module, training: bool) -> Iterator[None]:
    """``source`` in the attacked model's train/eval mode inside, its own mode restored afterwards."""
    was = source.training
    source.train(training)
    try:
        yield
    finally:
        source.train(was)


class Twin(nn.Module):
    """``model``'s forward values with ``surrogate``'s input gradient (the surrogate runs only under autograd)."""

    def __init__(self, model: nn.Module, surrogate: nn.Module):
        super().__init__()
        self.model, self.surrogate = model, surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real = self.model(x)
        if not (torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.requires_grad):
            return real
        twin = self.surrogate(x)
        if not isinstance(twin, torch.Tensor) or twin.shape != real.shape:
            got = tuple(twin.shape) if isinstance(twin, torch.Tensor) else type(twin).__name__
            raise UserError(f"the surrogate returns {got} where the model returns {tuple(real.shape)}")
        return real.detach() + (twin - twin.detach()).to(real.dtype)


class TwinAttack(Attack):
    """Runs ``attack`` on :class:`Twin` ``(model, surrogate)``: the model's logits, the surrogate's gradients."""

    name = "twin"

    def __init__(self, attack: Attack, surrogate: nn.Module, source: Optional[str] = None):
        super().__init__(attack.threat)
        self.attack, self.surrogate = attack, surrogate
        self.source = source or type(surrogate).__name__
        self.iterative, self.needs_images = attack.iterative, attack.needs_images

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with _mirrored(self.surrogate, model.training):
            return self.attack(Twin(model, self.surrogate), x, y)

    def __repr__(self) -> str:
        return f"Twin({self.attack!r}, gradients of {self.source})"


class TransferAttack(Attack):
    """Runs ``attack`` against ``source`` and returns its examples whatever model it is called with.

    Transfer from a surrogate (judged on the model), and what a non-adaptive evaluation would report: attacking
    a dummy-class model's raw 2C head with the true label and then scoring the folded prediction.
    """

    name = "transfer"

    def __init__(self, attack: Attack, source: nn.Module, source_name: Optional[str] = None):
        super().__init__(attack.threat)
        self.attack, self.source = attack, source
        self.source_name = source_name or type(source).__name__
        self.iterative, self.needs_images = attack.iterative, attack.needs_images

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with _mirrored(self.source, model.training):
            return self.attack(self.source, x, y)

    def __repr__(self) -> str:
        return f"Transfer({self.attack!r} on {self.source_name})"


def with_surrogate(attack: Attack, surrogate: nn.Module, mode: str = "twin", source: Optional[str] = None) -> Attack:
    """``attack`` driven by ``surrogate`` as ``mode`` says (``twin`` or ``transfer``, see the module docstring)."""
    if mode == "twin":
        return TwinAttack(attack, surrogate, source)
    if mode == "transfer":
        return TransferAttack(attack, surrogate, source)
    raise UserError(f"unknown surrogate mode {mode!r}; choose one of: {', '.join(SURROGATE_MODES)}")


def gradient_free(attack: Attack) -> bool:
    """Whether ``attack`` never takes a gradient (a surrogate cannot help it)."""
    from .square import Square

    return isinstance(attack, Square)


def add_surrogate_attacks(attacks: Dict[str, Attack], surrogate: nn.Module, mode: str = "twin",
                          source: Optional[str] = None) -> Dict[str, Attack]:
    """``attacks`` (the model's own, unchanged, first) followed by each gradient attack again, driven by
    ``surrogate`` as ``mode`` says and labelled ``MODE-LABEL`` (``twin-apgd-ce``): the worst case is then over both,
    so a surrogate can only lower it."""
    out = dict(attacks)
    for label, attack in attacks.items():
        if not gradient_free(attack):
            out[f"{mode}-{label}"] = with_surrogate(attack, surrogate, mode, source)
    return out
