from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import METHODS, Method, StepOutput


@METHODS.register("standard")
class Standard(Method):
    """Plain empirical risk minimisation on clean inputs: the baseline every defence is compared to."""

    name = "standard"
    adversarial = False

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y), logits)
