"""Adaptive-attack options that defeat common gradient masking (Athalye et al. 2018; Tramèr et al. 2020).

- ``bpda``: straight-through gradients (BPDA with the identity as the approximation) through layers that
  are not differentiable or whose gradient is useless (input quantisation, clipping): the forward value
  is the layer's, the backward pass treats the layer as the identity. ``True`` picks every module with
  a truthy ``non_differentiable`` attribute; a list names modules as ``model.named_modules()`` does.
- ``eot``: expectation over transformation for randomised models: each forward pass the attack sees is
  the mean of ``eot`` logits, so its gradient is the average of ``eot`` sampled gradients.

Both are applied around one attack call and removed afterwards, so the model is left as it was.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence, Union

import torch
from torch import nn

from ..errors import UserError, opt

Bpda = Union[None, bool, str, Sequence[str]]


def check_eot(eot: int) -> int:
    if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
        raise UserError(f"eot must be an integer ≥ 1 (forward passes averaged per gradient), got {eot!r}")
    return eot


def _straight_through(module: nn.Module, inputs, output):
    x = inputs[0]
    if not isinstance(output, torch.Tensor) or output.shape != x.shape:
        raise UserError(f"bpda needs a layer whose output has its input's shape; {type(module).__name__} maps "
                        f"{tuple(x.shape)} to {tuple(getattr(output, 'shape', ()))}")
    return x + (output - x).detach()


def bpda_modules(model: nn.Module, bpda: Bpda) -> list[nn.Module]:
    if not bpda:
        return []
    if bpda is True:
        found = [m for m in model.modules() if getattr(m, "non_differentiable", False)]
        if not found:
            raise UserError("bpda=True but no layer of the model sets non_differentiable = True; "
                            f"name the layers instead (e.g. {opt('bpda', 'quantize')})")
        return found
    names = [bpda] if isinstance(bpda, str) else list(bpda)
    by_name = dict(model.named_modules())
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UserError(f"bpda layer {missing[0]!r} is not in the model; choose from: "
                        f"{', '.join(n for n in by_name if n) or '(no named layers)'}")
    return [by_name[n] for n in names]


class _Expectation(nn.Module):
    """Mean logits over ``samples`` forward passes (the model's own randomness is resampled each pass)."""

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.model(x).float()
        for _ in range(self.samples - 1):
            total = total + self.model(x).float()
        return total / self.samples


@contextlib.contextmanager
def adaptive(model: nn.Module, eot: int = 1, bpda: Bpda = None) -> Iterator[nn.Module]:
    """The model as an adaptive attack should see it; hooks are removed on exit."""
    handles = [m.register_forward_hook(_straight_through) for m in bpda_modules(model, bpda)]
    try:
        yield _Expectation(model, eot) if eot > 1 else model
    finally:
        for handle in handles:
            handle.remove()
