"""Threat models: the only place that knows Lp geometry.

Inputs live in [0, 1] and ε is measured in those units (``8/255``), never in normalised units.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Tuple, Union

import torch

from .budgets import DEFAULT_EPS, NORM_LABELS, NORMS, norm_symbol, parse_eps, parse_norm
from .errors import UserError

__all__ = ["DEFAULT_EPS", "L1_STEP_FRACTION", "NORMS", "ThreatModel", "parse_eps", "parse_norm", "project_l1_box"]

#: The share of the (movable) features an L1 steepest-ascent step moves (:meth:`ThreatModel.step`): the top 2 % by
#: gradient magnitude (at least one), a sparse step like SLIDE's (Tramèr & Boneh 2019). Measured on the digits
#: standard model at L1 ε = 2 (200 test images), PGD-20 with the default step left 21.0 / 15.0 / 23.0 / 41.5 / 55.0 %
#: for 1 / 2 / 5 / 10 / 20 % (APGD-L1: 12.5 %).
L1_STEP_FRACTION = 0.02


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped to broadcast against ``t`` (reshape, not view: channels_last safe)."""
    return t.reshape(t.shape[0], -1).norm(p=2, dim=1).reshape(-1, *([1] * (t.dim() - 1)))


def project_l1_box(delta: torch.Tensor, eps: float, room_up: torch.Tensor, room_down: torch.Tensor) -> torch.Tensor:
    """The nearest point (Euclidean) to each row of ``delta`` (B, n) in {d : ‖d‖₁ ≤ ε, −room_down ≤ d ≤ room_up}.

    ``room_up``/``room_down`` (≥ 0, broadcast against ``delta``, ``inf`` for no box) are how far each feature may
    move up and down inside the input box. The problem separates once the L1 constraint has its multiplier λ ≥ 0:
    ``d_i = sign(δ_i)·min(max(|δ_i| − λ, 0), u_i)`` — soft-thresholding, then clipping to the room ``u_i`` on
    δ_i's side (the box holds the centre, so the clip never crosses 0). λ = 0 when the clipped δ already has
    ‖·‖₁ ≤ ε; else ``g(λ) = ‖d(λ)‖₁`` is piecewise linear and non-increasing with kinks at |δ_i| − u_i (feature i
    leaves its bound) and |δ_i| (it reaches 0), and λ solves g(λ) = ε on the piece found by sorting the kinks
    and summing the slopes (exact; the same set as AutoAttack's ``L1_projection``, solved by sorting rather than
    bisection). A final rescale towards 0 (which stays in the box) absorbs rounding, so ‖d‖₁ ≤ ε holds to float
    precision. Features with δ_i = 0 never move.
    """
    sign = delta.sign()
    mag = delta.abs()
    room = torch.where(delta >= 0, room_up, room_down).expand_as(mag).clamp_min(0)
    clipped = torch.minimum(mag, room)
    over = clipped.sum(1) > eps
    if not bool(over.any()):
        return sign * clipped
    p = mag[over].double()
    u = room[over].double()
    low = (p - u).clamp_min(0)  # below λ = p − u feature i is still at its bound; λ ≥ 0 only
    kinks, order = torch.cat((low, p), 1).sort(dim=1)
    change = torch.cat((torch.ones_like(p), -torch.ones_like(p)), 1).gather(1, order)
    active = change.cumsum(1)  # features moving with slope −1 on the piece right of each kink
    width = torch.diff(kinks, dim=1, append=kinks[:, -1:])
    start = torch.minimum(p, u).sum(1, keepdim=True)  # g(0) = g(first kink): every feature is at its bound there
    g_left = start - torch.cat((torch.zeros_like(start), (active * width).cumsum(1)[:, :-1]), 1)  # g at each kink
    g_right = g_left - active * width
    piece = (g_right <= eps).to(torch.int8).argmax(1, keepdim=True)  # the first piece where g reaches ε
    lam = kinks.gather(1, piece) + (g_left.gather(1, piece) - eps) / active.gather(1, piece).clamp_min(1)
    d = torch.minimum((p - lam).clamp_min(0), u)
    d = d * (eps / d.sum(1, keepdim=True).clamp_min(eps)).clamp(max=1.0)
    out = sign * clipped
    out[over] = sign[over] * d.to(delta.dtype)
    return out


Bound = Union[float, Tuple[float, ...]]

log = logging.getLogger("armor")


def check_budget(threat: "ThreatModel", what: str = "eps") -> "ThreatModel":
    """Refuse an L∞ budget as wide as the input box (every input could become any other: ``eps: 8`` meant 8/255),
    and warn above half of it. For L2 the same with the box's diagonal."""
    width = threat.box_width
    if threat.norm in ("l2", "l1"):
        return threat  # the box's L2 diagonal and L1 size depend on the input size; the evaluation's checks cover it
    if threat.eps >= width:
        hint = f" (did you mean {threat.eps:g}/255 = {threat.eps / 255:.4g}?)" if threat.eps > 1 else ""
        raise UserError(f"{what} {threat.eps:g} is at least the width of the input box ({width:g}): every input could "
                        f"be turned into any other{hint}")
    if threat.eps > width / 2:
        log.warning("%s %.4g is more than half the width of the input box (%.4g): a very large budget", what,
                    threat.eps, width)
    return threat


def _as_bound(value: Any, name: str) -> Bound:
    """A scalar, or one value per input feature (flattened), as floats."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor):
        value = value.detach().reshape(-1).tolist()
    try:
        values = tuple(float(v) for v in value)
    except TypeError:
        raise UserError(f"{name} must be a number or one number per input feature, got {value!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"{name} must hold finite numbers, got {value!r}")
    return values


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, intersected with the input box [lower, upper].

    Images live in the box [0, 1] (the default). Feature vectors may have a box per feature (``lower`` and
    ``upper``: one value per feature, flattened) and features an attacker cannot change (``immutable``:
    flattened indices; e.g. the parts of a malware file an evasion must keep intact): every attack moves only
    the other features, and every projection puts the immutable ones back.
    """

    norm: str = "linf"
    eps: float = 8 / 255
    lower: Bound = 0.0
    upper: Bound = 1.0
    immutable: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # user text is parsed here, once, at the boundary; a ThreatModel built from another one is already valid
        if not (self.norm in NORMS and type(self.eps) is float and 0 < self.eps < math.inf):
            object.__setattr__(self, "norm", parse_norm(self.norm))
            object.__setattr__(self, "eps", parse_eps(self.eps))
        if not (type(self.lower) is float and type(self.upper) is float):
            lower, upper = _as_bound(self.lower, "lower"), _as_bound(self.upper, "upper")
            lo = lower if isinstance(lower, tuple) else (lower,)
            hi = upper if isinstance(upper, tuple) else (upper,)
            if isinstance(lower, tuple) and isinstance(upper, tuple) and len(lo) != len(hi):
                raise UserError(f"lower has {len(lo)} values but upper has {len(hi)}; they must match")
            object.__setattr__(self, "lower", lower)
            object.__setattr__(self, "upper", upper)
        else:
            lo, hi = (self.lower,), (self.upper,)
        n = max(len(lo), len(hi))
        if any(a >= b for a, b in zip(lo * n if len(lo) == 1 else lo, hi * n if len(hi) == 1 else hi)):
            raise UserError("every upper bound must be above its lower bound")
        if self.immutable:
            try:
                idx = tuple(sorted({int(i) for i in self.immutable}))
            except (TypeError, ValueError):
                raise UserError(f"immutable must be a list of feature indices, got {self.immutable!r}") from None
            if idx[0] < 0:
                raise UserError(f"immutable holds index {idx[0]}; feature indices start at 0")
            object.__setattr__(self, "immutable", idx)
        object.__setattr__(self, "_tensors", {})

    def __str__(self) -> str:
        box = "" if self.default_box else ", per-feature box"
        fixed = f", {len(self.immutable)} immutable features" if self.immutable else ""
        return f"{norm_symbol(self.norm)} ε={self.eps:.4g}{box}{fixed}"

    @property
    def default_box(self) -> bool:
        return self.lower == 0.0 and self.upper == 1.0

    @property
    def box_width(self) -> float:
        """The narrowest side of the input box (1 for images in [0, 1])."""
        lo = self.lower if isinstance(self.lower, tuple) else (self.lower,)
        hi = self.upper if isinstance(self.upper, tuple) else (self.upper,)
        if len(lo) == 1 or len(hi) == 1:
            return min(b - a for a in lo for b in hi)
        return min(b - a for a, b in zip(lo, hi))

    def scaled(self, eps: Union[str, float]) -> "ThreatModel":
        """The same threat model with another budget."""
        return replace(self, eps=eps if type(eps) is float else parse_eps(eps))

    def to_dict(self) -> dict:
        d: dict = {"norm": self.norm, "eps": self.eps}
        if not self.default_box:
            d.update(lower=self.lower, upper=self.upper)
        if self.immutable:
            d["immutable"] = list(self.immutable)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ThreatModel":
        return cls(d["norm"], d["eps"], d.get("lower", 0.0), d.get("upper", 1.0), tuple(d.get("immutable", ())))

    @property
    def label(self) -> str:
        """How result records name the norm (RobustBench's spelling)."""
        return NORM_LABELS[self.norm]

    # -- the box and the immutable features, as tensors shaped like one input ---------------------------------------
    def _tensor(self, key: str, like: torch.Tensor) -> torch.Tensor:
        cache = self._tensors  # type: ignore[attr-defined]
        k = (key, like.device, like.dtype, tuple(like.shape[1:]))
        if k not in cache:
            numel = math.prod(like.shape[1:])
            if key == "mask":
                flat = torch.ones(numel, dtype=like.dtype)
                if self.immutable[-1] >= numel:
                    raise UserError(f"immutable feature index {self.immutable[-1]} is out of range for inputs of "
                                    f"{numel} features")
                flat[list(self.immutable)] = 0
            else:
                values = getattr(self, key)
                if len(values) != numel:
                    raise UserError(f"the threat model's {key} bound has {len(values)} values but the inputs have "
                                    f"{numel} features")
                flat = torch.tensor(values, dtype=like.dtype)
            cache[k] = flat.reshape(like.shape[1:]).unsqueeze(0).to(like.device)
        return cache[k]

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` clipped to the input box."""
        if type(self.lower) is float and type(self.upper) is float:
            return x.clamp(self.lower, self.upper)
        lo = self.lower if type(self.lower) is float else self._tensor("lower", x)
        hi = self.upper if type(self.upper) is float else self._tensor("upper", x)
        return torch.minimum(torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype, device=x.device)),
                             torch.as_tensor(hi, dtype=x.dtype, device=x.device))

    def in_box(self, x: torch.Tensor, tol: float = 0.0) -> bool:
        return bool((self.clip(x) - x).abs().max() <= tol) if x.numel() else True

    def changeable(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` with the immutable features set to 0."""
        return delta * self._tensor("mask", delta) if self.immutable else delta

    def room(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """How far each feature of ``x`` may move up and down inside the box (≥ 0, shaped like ``x``)."""
        up = self.clip(torch.full_like(x, math.inf)) - x
        down = x - self.clip(torch.full_like(x, -math.inf))
        return up.clamp_min(0), down.clamp_min(0)

    def _project_l1(self, delta: torch.Tensor, x: torch.Tensor, box: bool = True) -> torch.Tensor:
        """``delta`` projected onto the L1 ball ∩ the box around ``x`` (only the ball with ``box=False``).

        The radius is ε less a bound on the rounding of ``(x + δ) − x`` summed over the features (half an ulp of
        the largest magnitude each, twice), so the point the caller forms still measures ≤ ε in the working dtype
        (at most 7·10⁻⁴ for a 3×32×32 float32 image in [0, 1], never more than ε/1000)."""
        flat = delta.reshape(delta.shape[0], -1)
        if box:
            up, down = self.room(x)
            up, down = up.reshape(flat.shape), down.reshape(flat.shape)
        else:
            up = down = torch.full((1, 1), math.inf, dtype=delta.dtype, device=delta.device)
        reach = torch.minimum(delta.abs().amax(), torch.maximum(up, down).amax()) if delta.numel() else 0.0
        scale = float(x.abs().amax() + reach) if delta.numel() else 0.0  # the largest magnitude a result can have
        slack = min(flat.shape[1] * torch.finfo(delta.dtype).eps * scale, 1e-3 * self.eps)
        return project_l1_box(flat, self.eps - slack, up, down).reshape(delta.shape)

    # -- geometry ---------------------------------------------------------------------------------------------------
    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nearest point of the ball around ``x`` (then clipped to the box); returns a new tensor."""
        delta = self.changeable(x_adv - x)
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm == "l1":  # the exact projection onto the ball ∩ the box (Croce & Hein 2021: "mind the box")
            delta = self._project_l1(delta, x)
        else:
            delta = delta * (self.eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
        return self.clip(x + delta)

    def random_init(self, x: torch.Tensor, generator: torch.Generator | None = None,
                    clamp: bool = True) -> torch.Tensor:
        """A random point of the ball ∩ box: uniform in the cube for L∞, uniform in radius for L2; for L1
        AutoAttack's APGD-L1 start, a Gaussian draw projected onto the L1 ball ∩ box — a point of size ε (where the
        box allows) on the features with the largest draws that the box lets move that way.

        ``clamp=False`` leaves the start outside the box where the ball pokes out of it (Wong et al.'s
        MNIST FGSM-RS does this; clamping the start there made training collapse catastrophically); for L1 the
        draw is then projected onto the ball alone.
        """
        if self.norm == "linf":
            delta = torch.rand(x.shape, device=x.device, dtype=x.dtype, generator=generator)
            delta = (2 * delta - 1) * self.eps
        elif self.norm == "l1":
            draw = self.changeable(torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator))
            delta = self._project_l1(draw, x, box=clamp)
        else:
            direction = self.changeable(torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator))
            radius = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype,
                                generator=generator)
            delta = direction / _flat_norm(direction).clamp_min(1e-12) * radius * self.eps
        delta = self.changeable(delta)
        return self.clip(x + delta) if clamp else x + delta

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: Union[float, torch.Tensor]) -> torch.Tensor:
        """Move ``step_size`` along the steepest-ascent direction of the norm (sign for L∞, the normalised gradient
        for L2), immutable features fixed.

        L1: the exact steepest-ascent step moves the single feature with the largest gradient, which makes PGD
        crawl; like SLIDE (Tramèr & Boneh 2019) the step is spread evenly, with the gradient's sign, over the top
        :data:`L1_STEP_FRACTION` of the features by |gradient| (at least one), and, minding the box (Croce & Hein
        2021), only over features that can still move that way — a feature at its bound is not chosen. The step has
        L1 size ``step_size`` (before projection).
        """
        grad = self.changeable(grad)
        if self.norm == "linf":
            return x_adv + step_size * grad.sign()
        if self.norm == "l1":
            return x_adv + step_size * self.sparse_direction(x_adv, grad, L1_STEP_FRACTION)
        return x_adv + step_size * grad / _flat_norm(grad).clamp_min(1e-12)

    def sparse_direction(self, x_adv: torch.Tensor, grad: torch.Tensor, fraction: float) -> torch.Tensor:
        """sign(grad) on the top ``fraction`` of the changeable features (at least one) by |grad| among those that
        can move that way inside the box, scaled to L1 norm 1 (0 where no feature can move)."""
        up, down = self.room(x_adv)
        movable = ((grad > 0) & (up > 0)) | ((grad < 0) & (down > 0))
        score = (grad.abs() * movable).reshape(grad.shape[0], -1)
        n = score.shape[1] - len(self.immutable)
        k = min(max(int(math.ceil(fraction * n)), 1), score.shape[1])
        threshold = score.topk(k, dim=1).values[:, -1:]
        chosen = (score >= threshold) & (score > 0)
        direction = grad.sign().reshape(score.shape) * chosen
        return (direction / chosen.sum(1, keepdim=True).clamp_min(1)).reshape(grad.shape)

    def random_boundary(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random point on the surface of the ball (corners ±ε for L∞, the ε-sphere for L2), then clipped to
        the box: random noise as large as a perturbation can be (the sanity checks' noise baseline). L1: the
        random start (a Gaussian draw projected onto the ball ∩ box), whose size is ε wherever the box allows —
        a clipped point of the L1 sphere would lose most of its mass on images with many pixels at 0 or 1."""
        if self.norm == "l1":
            return self.random_init(x, generator)
        return self.clip(x + self.sphere(x.shape, x, generator))

    def sphere(self, shape, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random perturbations of exactly size ε in this norm (L∞: random ±ε signs; L2: a Gaussian direction;
        L1: a Laplace draw scaled to L1 norm ε, uniform on the L1 sphere), zero on the immutable features."""
        if self.norm == "linf":
            return self.changeable(self.eps * (torch.randint(0, 2, shape, device=like.device, generator=generator)
                                               .to(like.dtype) * 2 - 1))
        if self.norm == "l1":
            u = torch.rand(shape, device=like.device, dtype=like.dtype, generator=generator)
            e = -torch.log1p(-u)  # Exp(1) (u < 1); a random sign makes it Laplace
            signs = torch.randint(0, 2, shape, device=like.device, generator=generator).to(like.dtype) * 2 - 1
            direction = self.changeable(e * signs)
            size = direction.reshape(direction.shape[0], -1).abs().sum(1).clamp_min(1e-12)
            return direction * (self.eps / size).reshape(-1, *([1] * (direction.dim() - 1)))
        direction = self.changeable(torch.randn(shape, device=like.device, dtype=like.dtype, generator=generator))
        return direction * (self.eps / _flat_norm(direction).clamp_min(1e-12))

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-example size of the perturbation in this norm."""
        delta = (x_adv - x).reshape(x.shape[0], -1)
        if self.norm == "l1":
            return delta.abs().sum(dim=1)
        return delta.abs().amax(dim=1) if self.norm == "linf" else delta.norm(p=2, dim=1)
