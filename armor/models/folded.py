"""Dummy-class models (DUCAT): a network with C real + C dummy outputs, folded back to C classes."""
from __future__ import annotations

import torch
from torch import nn


class FoldedHead(nn.Module):
    """Wraps a network with ``2·C`` outputs; class c's score is max(z_c, z_{c+C}).

    The argmax of the folded scores is DUCAT's prediction rule (argmax over 2C, modulo C), so clean
    accuracy is unchanged by folding, and attacks that call this module attack the decision that is
    actually made. ``raw`` is the unfolded network — attacking it with the real label (the non-adaptive
    evaluation) lets the attack push an image into its own dummy class, which still counts as correct,
    and so overstates robustness.
    """

    def __init__(self, raw: nn.Module, num_classes: int):
        super().__init__()
        self.raw = raw
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor, unfolded: bool = False) -> torch.Tensor:
        # training calls model(x, unfolded=True) through any DDP/compile wrapper, so gradients still sync
        logits = self.raw(x)
        return logits if unfolded else fold(logits, self.num_classes)


class Unfolded(nn.Module):
    """The raw 2C output of a (possibly wrapped) :class:`FoldedHead`, as a module an attack can call."""

    def __init__(self, folded: nn.Module):
        super().__init__()
        self.folded = folded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.folded(x, unfolded=True)


def fold(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    if logits.shape[1] != 2 * num_classes:
        raise ValueError(f"a folded head needs {2 * num_classes} outputs, got {logits.shape[1]}")
    return torch.maximum(logits[:, :num_classes], logits[:, num_classes:])
