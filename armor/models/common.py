"""Pieces every model shares: the normalisation layer that makes models take [0, 1] inputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import Registry

MODELS = Registry("model")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as the model's first layer, so ε stays in input units."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``Normalize`` followed by a network body; ``body`` sees normalised inputs."""

    def __init__(self, body: nn.Module, channels: int, mean: Sequence[float] | None,
                 std: Sequence[float] | None):
        super().__init__()
        mean = [0.0] * channels if mean is None else list(mean)
        std = [1.0] * channels if std is None else list(std)
        self.normalize = Normalize(mean, std)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))
