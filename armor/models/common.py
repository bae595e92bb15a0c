"""Pieces every model shares: the normalisation layer that makes models take [0, 1] inputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import Registry

MODELS = Registry("model")


class Normalize(nn.Module):
    """``(x - mean) / std`` as the model's first layer, so attacks and ε stay in input units.

    Per channel for images (``features=False``: statistics shaped (1, C, 1, 1)), per feature for vectors
    (``features=True``: shaped (1, F)). A scalar mean/std applies to every channel or feature."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float, features: bool = False):
        super().__init__()
        shape = (1, -1) if features else (1, -1, 1, 1)
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``Normalize`` followed by a network body; ``body`` sees normalised inputs."""

    def __init__(self, body: nn.Module, input_shape: Sequence[int] | int, mean: Sequence[float] | None,
                 std: Sequence[float] | None):
        super().__init__()
        # an int is a channel count (images); a 1-D shape is feature vectors (F,)
        features = not isinstance(input_shape, int) and len(input_shape) == 1
        width = input_shape if isinstance(input_shape, int) else int(input_shape[0])
        mean = [0.0] * width if mean is None else list(mean)
        std = [1.0] * width if std is None else list(std)
        self.normalize = Normalize(mean, std, features=features)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))
