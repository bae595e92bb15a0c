"""Threat models: the only place that knows Lp geometry.

Inputs live in [0, 1] and ε is measured in those units (``8/255``), never in normalised units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch

from .budgets import DEFAULT_EPS, NORMS, parse_eps, parse_norm

__all__ = ["DEFAULT_EPS", "NORMS", "ThreatModel", "parse_eps", "parse_norm"]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped to broadcast against ``t`` (reshape, not view: channels_last safe)."""
    return t.reshape(t.shape[0], -1).norm(p=2, dim=1).reshape(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, intersected with the image box [0, 1]."""

    norm: str = "linf"
    eps: float = 8 / 255

    def __post_init__(self) -> None:
        # user text is parsed here, once, at the boundary; a ThreatModel built from another one is already valid
        if not (self.norm in NORMS and type(self.eps) is float and 0 < self.eps < math.inf):
            object.__setattr__(self, "norm", parse_norm(self.norm))
            object.__setattr__(self, "eps", parse_eps(self.eps))

    def __str__(self) -> str:
        return f"{'L∞' if self.norm == 'linf' else 'L2'} ε={self.eps:.4g}"

    def scaled(self, eps: Union[str, float]) -> "ThreatModel":
        """The same norm with another budget."""
        return ThreatModel(self.norm, eps if type(eps) is float else parse_eps(eps))

    def to_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps}

    @property
    def label(self) -> str:
        """How result records name the norm (RobustBench's spelling)."""
        return {"linf": "Linf", "l2": "L2"}[self.norm]

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

    def random_boundary(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random point on the surface of the ball (corners ±ε for L∞, the ε-sphere for L2), then clipped to
        [0, 1]: random noise as large as a perturbation can be (the sanity checks' noise baseline)."""
        if self.norm == "linf":
            signs = torch.randint(0, 2, x.shape, device=x.device, generator=generator).to(x.dtype) * 2 - 1
            return (x + self.eps * signs).clamp(0.0, 1.0)
        return (x + self.sphere(x.shape, x, generator)).clamp(0.0, 1.0)

    def sphere(self, shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random perturbations of exactly size ε in this norm (L∞: random ±ε signs; L2: a Gaussian direction)."""
        if self.norm == "linf":
            return self.eps * (torch.randint(0, 2, shape, device=like.device, generator=generator)
                               .to(like.dtype) * 2 - 1)
        direction = torch.randn(shape, device=like.device, dtype=like.dtype, generator=generator)
        return direction * (self.eps / _flat_norm(direction).clamp_min(1e-12))

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-example size of the perturbation in this norm."""
        delta = (x_adv - x).reshape(x.shape[0], -1)
        return delta.abs().amax(dim=1) if self.norm == "linf" else delta.norm(p=2, dim=1)
