"""Natural corruptions as batched tensor ops on [0, 1] images, 5 severities each.

Severity parameters follow CIFAR-10-C (Hendrycks & Dietterich 2019), whose images (32×32) are close
in size to the small images armor trains on; the noise is drawn from a seeded generator so every model
sees the same corrupted images.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .robust import accuracy

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def gaussian_noise(x, severity, gen):
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def shot_noise(x, severity, gen):
    photons = (500.0, 250.0, 100.0, 75.0, 50.0)[severity - 1]
    return torch.poisson(x * photons, generator=gen) / photons


def impulse_noise(x, severity, gen):
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    salt = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) < 0.5).to(x.dtype)
    return torch.where(u < amount, salt, x)


def gaussian_blur(x, severity, gen):
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    radius = max(1, math.ceil(2 * sigma))
    grid = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-grid ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # separable: rows, then columns
    return F.conv2d(out, kernel.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def contrast(x, severity, gen):
    factor = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


def brightness(x, severity, gen):
    return x + (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]


def pixelate(x, severity, gen):
    scale = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = x.shape[2:]
    small = F.interpolate(x, size=(max(1, int(h * scale)), max(1, int(w * scale))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


CORRUPTIONS: Dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "gaussian_blur": gaussian_blur, "contrast": contrast, "brightness": brightness, "pixelate": pixelate,
}


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``x`` (N, C, H, W in [0, 1]) under corruption ``name`` at ``severity`` 1–5, clipped to [0, 1]."""
    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}")
    if x.dim() != 4:
        raise UserError(f"corruptions need image batches shaped (N, C, H, W), got {tuple(x.shape)}")
    gen = torch.Generator(device=x.device).manual_seed(seed * 100 + severity)
    with torch.no_grad():
        return CORRUPTIONS[name](x, severity, gen).clamp(0, 1)


def evaluate_corruptions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Optional[Iterable[str]] = None,
                         batch_size: int = 512, seed: int = 0) -> Dict:
    """Accuracy (%) per corruption and severity, per-corruption mean, and the mean over all of them."""
    names = list(names or CORRUPTIONS)
    per: Dict[str, Dict] = {}
    for name in names:
        accs = [accuracy(model, corrupt(x, name, s, seed), y, batch_size) for s in SEVERITIES]
        per[name] = {"severity": dict(zip(map(str, SEVERITIES), accs)), "mean": sum(accs) / len(accs)}
    return {"clean_acc": accuracy(model, x, y, batch_size), "corruptions": per,
            "mean_corrupted_acc": sum(v["mean"] for v in per.values()) / len(per), "n": len(x)}
