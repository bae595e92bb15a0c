"""Square Attack (Andriushchenko et al. 2020): score-based random search, no gradients at all.

Each query changes one random square window of the perturbation and keeps the change if the margin
(true logit minus the best other logit) went down. The window's share of the image, ``p``, starts at
``p_init`` and is halved on a fixed schedule over the query budget (the paper's 10 000-query schedule
stretched to ``queries``; ``rescale_schedule=False`` keeps it on the 10 000-query scale, as AutoAttack's
standard version runs it). Only examples the model still classifies correctly are queried, and an
example stops as soon as it is fooled (margin < 0), so ``queries`` bounds the forward passes per
example. Because it never looks at a gradient, a model whose gradients are masked cannot hide from it:
Square beating the gradient attacks is a masking symptom.

L∞: the window is set to ±ε per channel (vertex of the ball). L2: the window gets a smooth bump that
takes over the energy of itself and a second window, which is emptied, so the perturbation stays on
the ε-sphere (before clipping to [0, 1]).

L1 (Croce & Hein 2021's L1 Square, as in AutoAttack): the start tiles the image with windows of side ⌊side/5⌋, each
holding a two-lobed peaked pattern (concentric squares weighted 1/(k+1)⁴, one lobe positive, one negative) with a
random sign per channel, projected onto the L1 ball ∩ box. A proposal puts into window 1 a fresh pattern plus its
old content (each at L1 size 1), scaled per channel to the unused budget (shared over the channels) plus the mass
windows 1 and 2 held, times the number of channels; window 2 is emptied, and the exact projection onto the L1 ball
∩ box takes back what is over ε from every feature (soft-thresholding). Windows have an odd side ≥ 3; ``p_init``
defaults to 0.8, AutoAttack's value.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from ..threat import ThreatModel
from .base import ATTACKS, Attack, check_steps

# (last iteration of the stage on a 10 000-query scale, divisor of p_init) — the paper's schedule
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256))


def window_fraction(it: int, queries: int, p_init: float, rescale: bool = True) -> float:
    scaled = int(it / queries * 10000) if rescale else it
    for last, divisor in _SCHEDULE:
        if scaled <= last:
            return p_init / divisor
    return p_init / 512


@ATTACKS.register("square")
class Square(Attack):
    """Random search with a budget of ``queries`` forward passes per example (default 5000)."""

    name = "square"
    needs_images = True

    def __init__(self, threat: ThreatModel, queries: int = 5000, p_init: float | None = None,
                 rescale_schedule: bool = True, targeted: bool = False, eot: int = 1, bpda=None):
        super().__init__(threat, "margin", targeted, eot, bpda)
        self.queries = check_steps(queries, "queries")
        self.p_init = float(p_init) if p_init is not None else (0.1 if threat.norm == "l2" else 0.8)
        if not 0 < self.p_init <= 1:
            raise UserError(f"p_init must be in (0, 1], got {p_init!r}")
        if not isinstance(rescale_schedule, bool):
            raise UserError(f"rescale_schedule must be true or false, got {rescale_schedule!r}")
        self.rescale_schedule = rescale_schedule

    def __repr__(self) -> str:
        rescale = "" if self.rescale_schedule else ", rescale_schedule=False"
        return f"Square({self.threat}, queries={self.queries}, p_init={self.p_init}{rescale})"

    def margin(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """> 0 while the attack has not succeeded; the attack drives it below 0."""
        logits = logits.float()
        picked = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
        return other - picked if self.targeted else picked - other

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or min(x.shape[2], x.shape[3]) < 2:
            raise UserError(f"square needs image inputs shaped (N, C, H, W) with H, W ≥ 2, got {tuple(x.shape)}")
        with torch.no_grad():
            x_best = self._init(x)
            margin = self.margin(model(x_best), y)
            for it in range(1, self.queries):
                todo = (margin > 0).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                p = window_fraction(it, self.queries, self.p_init, self.rescale_schedule)
                candidate = self._propose(x[todo], x_best[todo], p)
                new_margin = self.margin(model(candidate), y[todo])
                better = new_margin < margin[todo]
                keep = better.reshape(-1, 1, 1, 1)
                x_best[todo] = torch.where(keep, candidate, x_best[todo])
                margin[todo] = torch.where(better, new_margin, margin[todo])
        return x_best

    # -- the two geometries ---------------------------------------------------------------------
    def _init(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        eps = self.threat.eps
        if self.threat.norm == "linf":  # vertical stripes of ±ε, as in the paper
            stripes = torch.randint(0, 2, (n, c, 1, w), device=x.device).to(x.dtype) * 2 - 1
            return self.threat.clip(x + eps * stripes)
        if self.threat.norm == "l1":  # a grid of peaked two-lobed windows, random sign per channel
            side = max(min(h, w) // 5, 1)
            delta = torch.zeros_like(x)
            top, left = (h - side * (h // side)) // 2, (w - side * (w // side)) // 2
            for r in range(top, h - side + 1, side):
                for q in range(left, w - side + 1, side):
                    sign = torch.randint(0, 2, (n, c, 1, 1), device=x.device).to(x.dtype) * 2 - 1
                    delta[:, :, r:r + side, q:q + side] = self._lobes(side, x) * sign
            return self.threat.project(x + delta, x)
        return self.threat.clip(x + self.threat.sphere(x.shape, x))

    def _propose(self, x: torch.Tensor, x_best: torch.Tensor, p: float) -> torch.Tensor:
        if self.threat.norm == "l1":
            return self._propose_l1(x, x_best, p)
        n, c, h, w = x.shape
        eps = self.threat.eps
        side = int(round(math.sqrt(p * h * w)))
        side = min(max(side, 1 if self.threat.norm == "linf" else 2), h - 1, w - 1)
        rows, cols = torch.randint(0, h - side + 1, (2,)).tolist(), torch.randint(0, w - side + 1, (2,)).tolist()
        window = (slice(None), slice(None), slice(rows[0], rows[0] + side), slice(cols[0], cols[0] + side))
        delta = x_best - x
        if self.threat.norm == "linf":
            delta = delta.clone()
            delta[window] = eps * (torch.randint(0, 2, (n, c, 1, 1), device=x.device).to(x.dtype) * 2 - 1)
            return self.threat.clip(x + delta)
        # L2: window 1 receives a bump carrying the energy of windows 1 and 2 plus any unused budget
        union = torch.zeros((1, 1, h, w), dtype=torch.bool, device=x.device)
        union[window] = True
        union[:, :, rows[1]:rows[1] + side, cols[1]:cols[1] + side] = True
        total = delta.reshape(n, -1).pow(2).sum(1)
        inside = (delta * union).reshape(n, -1).pow(2).sum(1)
        budget = (inside + (eps ** 2 - total).clamp_min(0)).sqrt().reshape(n, 1, 1, 1)
        sign = torch.randint(0, 2, (n, c, 1, 1), device=x.device).to(x.dtype) * 2 - 1
        content = delta[window] + sign * self._bump(side, x) * budget
        content = content * budget / content.reshape(n, -1).norm(dim=1).clamp_min(1e-12).reshape(n, 1, 1, 1)
        delta = delta.masked_fill(union, 0.0)
        delta[window] = content
        return self.threat.clip(x + delta)

    def _propose_l1(self, x: torch.Tensor, x_best: torch.Tensor, p: float) -> torch.Tensor:
        n, c, h, w = x.shape
        side = max(int(round(math.sqrt(p * h * w))), 3)
        side = min(side + 1 - side % 2, h, w)  # odd, and no larger than the image
        rows = torch.randint(0, h - side + 1, (2,)).tolist()
        cols = torch.randint(0, w - side + 1, (2,)).tolist()
        window = (slice(None), slice(None), slice(rows[0], rows[0] + side), slice(cols[0], cols[0] + side))
        union = torch.zeros((1, 1, h, w), dtype=torch.bool, device=x.device)
        union[window] = True
        union[:, :, rows[1]:rows[1] + side, cols[1]:cols[1] + side] = True
        delta = x_best - x
        old = delta[window]
        held = (delta * union).abs().sum((2, 3), keepdim=True)  # per channel: the mass windows 1 and 2 hold
        unused = (self.threat.eps - delta.abs().sum((1, 2, 3), keepdim=True)).clamp_min(0)
        sign = torch.randint(0, 2, (n, c, 1, 1), device=x.device).to(x.dtype) * 2 - 1
        content = self._lobes(side, x) * sign + old / old.abs().sum((2, 3), keepdim=True).clamp_min(1e-12)
        content = content / content.abs().sum((2, 3), keepdim=True).clamp_min(1e-12) * (unused / c + held) * c
        delta = delta.masked_fill(union, 0.0)
        delta[window] = content
        return self.threat.project(x + delta, x)

    @staticmethod
    def _lobes(side: int, like: torch.Tensor) -> torch.Tensor:
        """The L1 window pattern: two halves (rows), each a stack of concentric squares weighted 1/(k+1)⁴ around its
        own centre, the first positive and the second negative, L1 norm 1; transposed half of the time."""
        def squares(a: int, b: int) -> torch.Tensor:
            if a == 0:
                return torch.zeros((0, b), device=like.device, dtype=like.dtype)
            i = torch.arange(a, device=like.device, dtype=like.dtype)[:, None] - (a // 2)
            j = torch.arange(b, device=like.device, dtype=like.dtype)[None, :] - (b // 2)
            ring = torch.maximum(i.abs(), j.abs())  # the first square (k = 0) is the centre cell
            weights = 1.0 / (torch.arange(max(a, b) // 2 + 1, device=like.device, dtype=like.dtype) + 1) ** 4
            tail = weights.flip(0).cumsum(0).flip(0)  # cell in ring r lies inside every square k ≥ r
            return tail[ring.long()]
        pattern = torch.cat((squares(side // 2, side), -squares(side - side // 2, side)))
        if torch.rand(()) < 0.5:
            pattern = pattern.t()
        return pattern / pattern.abs().sum()

    @staticmethod
    def _bump(side: int, like: torch.Tensor) -> torch.Tensor:
        """A unit-norm smooth square bump; its two halves get opposite random signs 50 % of the time."""
        grid = torch.arange(side, device=like.device, dtype=like.dtype) - (side - 1) / 2
        bump = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * (side / 4) ** 2))
        if torch.rand(()) < 0.5:
            bump[: side // 2] *= -1
        return bump / bump.norm()
