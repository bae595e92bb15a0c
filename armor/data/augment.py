"""Batched augmentation on the device: one tensor op for the whole batch, no per-example loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError

PRESETS = ("none", "translate", "crop_flip", "strong")


def resolve_preset(preset: str, dataset: str, input_shape) -> str:
    """``auto`` → crop+flip for images of 32×32 and larger, none for digits and MNIST-like data (flips hurt digits)
    and for feature vectors (which have no spatial augmentation)."""
    shape = (1, input_shape, input_shape) if isinstance(input_shape, int) else tuple(input_shape)
    images = len(shape) == 3
    if preset == "auto":
        return "crop_flip" if images and shape[-1] >= 32 else "none"
    if preset not in PRESETS:
        raise UserError(f"unknown augmentation {preset!r}; choose one of: auto, {', '.join(PRESETS)}")
    if not images and preset != "none":
        raise UserError(f"augmentation {preset!r} is for images; {dataset} holds feature vectors (use none)")
    return preset


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop of the zero-padded batch back to the original size (shifts of up to ``pad`` pixels)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]        # (n, h, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]        # (n, 1, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero one random ``size``×``size`` square per image (DeVries & Taylor 2017)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)
    return x * (~inside)[:, None].to(x.dtype)


def augment(x: torch.Tensor, preset: str) -> torch.Tensor:
    """Apply a resolved preset to a batch in [0, 1]; the result stays in [0, 1]."""
    if preset == "none":
        return x
    size = x.shape[-1]
    if preset == "translate":
        return random_shift(x, max(1, size // 14))
    x = random_flip(random_shift(x, max(1, size // 8)))
    if preset == "strong":
        x = cutout(x, max(2, size // 4))
    return x
