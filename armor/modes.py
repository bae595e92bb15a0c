"""Context managers that put a model in the state an operation needs and always restore it."""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside, the caller's train/eval mode restored afterwards (even on an exception)."""
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        if model.training != training:
            model.train(training)


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[nn.Module]:
    """Whatever happens inside, ``model.training`` and every parameter's ``requires_grad`` come back as they were
    (the attack contract: an attack never changes the model it attacks)."""
    training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    try:
        yield model
    finally:
        if model.training != training:
            model.train(training)
        for p, flag in zip(model.parameters(), flags):
            if p.requires_grad != flag:
                p.requires_grad_(flag)
