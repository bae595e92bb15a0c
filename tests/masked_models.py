"""Four gradient-masked models built around honest digits models (issue 4's reference variants).

Each hides the true robustness from a plain CE-PGD evaluation in a different way; armor's checks must
flag every one, and its adaptive options (bpda, eot, scale-invariant losses) must see through them.
"""
from __future__ import annotations

import torch
from torch import nn


class Quantize(nn.Module):
    """Rounds inputs to ``levels`` grey levels: gradient zero almost everywhere."""

    non_differentiable = True

    def __init__(self, levels: int = 4):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class ScaleLogits(nn.Module):
    """Multiplies logits by a large factor: softmax saturates and CE gradients underflow to zero."""

    def __init__(self, factor: float = 1000.0):
        super().__init__()
        self.factor = factor

    def forward(self, z):
        return z * self.factor


class ClippedLogSoftmax(nn.Module):
    """log of a clipped softmax as logits: confident predictions have exactly zero gradient."""

    non_differentiable = True

    def __init__(self, floor: float = 0.05):
        super().__init__()
        self.floor = floor

    def forward(self, z):
        return torch.log(torch.softmax(z.float(), dim=1).clamp(self.floor, 1 - self.floor))


class GaussianNoise(nn.Module):
    """Fresh Gaussian noise on every forward pass (a randomised "defence")."""

    def __init__(self, sigma: float = 0.2):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x)


def masked(kind: str, standard: nn.Module, robust: nn.Module) -> nn.Module:
    """(1) quantize → PGD-AT, (2) standard × 1000, (3) clipped log-softmax of standard, (4) noise → PGD-AT."""
    model = {
        "quantize": lambda: nn.Sequential(Quantize(4), robust),
        "scale": lambda: nn.Sequential(standard, ScaleLogits(1000.0)),
        "clip": lambda: nn.Sequential(standard, ClippedLogSoftmax(0.05)),
        "noise": lambda: nn.Sequential(GaussianNoise(0.2), robust),
    }[kind]()
    return model.eval()
