"""Threat models: the only place that knows Lp geometry.

Inputs live in [0, 1] and ε is measured in those units (``8/255``), never in normalised units.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

import torch

from .errors import UserError

NORMS = ("linf", "l2")

#: The budgets people use for each dataset (L∞ unless noted).
DEFAULT_EPS = {"cifar10": 8 / 255, "imagenet": 4 / 255, "mnist": 0.3, "fashion_mnist": 0.1, "digits": 0.2}

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*/\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*$", re.I)


def parse_eps(value: Union[str, float, int], name: str = "eps") -> float:
    """Read a budget written as people write it: ``8/255``, ``"8/255"``, ``0.3``, ``"0.3"``."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a positive number such as 0.3 or 8/255, got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        match = _FRACTION.match(value)
        try:
            if match:
                denominator = float(match.group(2))
                eps = float(match.group(1)) / denominator if denominator else math.inf
            else:
                eps = float(value)
        except ValueError:
            eps = math.nan
    else:
        eps = math.nan
    if not math.isfinite(eps) or eps <= 0:
        raise UserError(f"{name} must be a positive number such as 0.3 or 8/255, got {value!r}")
    return eps


def parse_norm(value: str) -> str:
    norm = str(value).lower().replace("∞", "inf")
    norm = {"inf": "linf", "l_inf": "linf", "linfty": "linf", "2": "l2"}.get(norm, norm)
    if norm not in NORMS:
        raise UserError(f"unknown norm {value!r}; choose one of: {', '.join(NORMS)}")
    return norm


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped to broadcast against ``t`` (reshape, not view: channels_last safe)."""
    return t.reshape(t.shape[0], -1).norm(p=2, dim=1).reshape(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, intersected with the image box [0, 1]."""

    norm: str = "linf"
    eps: float = 8 / 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", parse_norm(self.norm))
        object.__setattr__(self, "eps", parse_eps(self.eps))

    def __str__(self) -> str:
        return f"{'L∞' if self.norm == 'linf' else 'L2'} ε={self.eps:.4g}"

    def scaled(self, eps: Union[str, float]) -> "ThreatModel":
        return ThreatModel(self.norm, eps)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nearest point of the ball around ``x`` (then clipped to [0, 1]); returns a new tensor."""
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            delta = delta * (self.eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        return (x + delta).clamp(0.0, 1.0)

    def random_init(self, x: torch.Tensor, generator: torch.Generator | None = None,
                    clamp: bool = True) -> torch.Tensor:
        """A uniformly random point of the ball ∩ [0, 1] (uniform in the cube for L∞, in radius for L2).

        ``clamp=False`` leaves the start outside [0, 1] where the ball pokes out of the box (Wong et al.'s
        MNIST FGSM-RS does this; clamping the start there made training collapse catastrophically).
        """
        if self.norm == "linf":
            delta = torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            delta = (2 * delta - 1) * self.eps
        else:
            direction = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            radius = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype,
                                generator=generator)
            delta = direction / _flat_norm(direction).clamp_min(1e-12) * radius * self.eps
        return (x + delta).clamp(0.0, 1.0) if clamp else x + delta

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Move ``step_size`` along the steepest-ascent direction of the norm (sign for L∞)."""
        if self.norm == "linf":
            return x_adv + step_size * grad.sign()
        return x_adv + step_size * grad / _flat_norm(grad).clamp_min(1e-12)

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-example size of the perturbation in this norm."""
        delta = (x_adv - x).reshape(x.shape[0], -1)
        return delta.abs().amax(dim=1) if self.norm == "linf" else delta.norm(p=2, dim=1)
