"""Transfer attacks: craft on one network, evaluate on another (e.g. a dummy-class model's raw head)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Attack


class TransferAttack(Attack):
    """Runs ``attack`` against ``source`` and returns its examples whatever model it is called with.

    Used to show what a non-adaptive evaluation would report: attacking a dummy-class model's raw 2C head
    with the true label and then scoring the folded prediction.
    """

    name = "transfer"

    def __init__(self, attack: Attack, source: nn.Module):
        super().__init__(attack.threat)
        self.attack, self.source = attack, source

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        training = self.source.training
        self.source.train(model.training)
        try:
            return self.attack(self.source, x, y, streams=self._streams)
        finally:
            self.source.train(training)

    def __repr__(self) -> str:
        return f"Transfer({self.attack!r} on {type(self.source).__name__})"
