"""FAB, the Fast Adaptive Boundary attack (Croce & Hein 2020): a minimum-norm attack, here judged at ε.

Each iteration linearises the decision boundary at the iterate ``x1`` — the hyperplane where the target logit
(FAB-T) or the nearest other class's logit (FAB) equals the true one — and projects onto it, inside the input
box, twice: from ``x1`` (``d1``) and from the clean input ``x0`` (``d0``). The next iterate is the box-clipped

    (1 − α)·(x1 + η·d1) + α·(x0 + η·d0),   α = min(‖d1‖ / (‖d1‖ + ‖d0‖), α_max)

(η > 1 overshoots the linearised boundary; α pulls towards the clean input, more so when the boundary is far
from ``x1`` compared to ``x0``). When an iterate fools the model it is kept if it is the nearest fooling point so
far, and the iterate steps back towards ``x0``: ``x0 + β·(x1 − x0)``. Defaults are the paper's and AutoAttack's
(100 iterations, α_max = 0.1, η = 1.05, β = 0.9); the first restart starts at the clean input, later ones at a
random point at distance ε/2.

``fab_t`` (AutoAttack's FAB-T) runs once per target: the ``n_target_classes`` classes the clean input ranks
highest after the true one (9 in AutoAttack's standard version, 1 restart each); success means misclassified
(any class), as in AutoAttack. ``fab`` (untargeted) takes, at every iteration, the hyperplane of the class whose
linearised boundary is nearest, which costs one input gradient per class.

Judged at ε: an example gets the nearest fooling point FAB found if it lies within the ε-ball (the box holds by
construction), else its clean input; examples stop iterating once they have one (a nearer point would not change
the verdict). Immutable features get a zero gradient, so no projection moves them.

Norms: L∞, L2 and L1 (AutoAttack's FAB has all three; L1 distances, the L∞ dual norm to pick the nearest boundary,
and the L1 projection onto the hyperplane inside the box, a greedy fill by decreasing |w_i|).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..errors import UserError
from ..threat import ThreatModel
from .base import ATTACKS, Attack, check_steps, input_gradient


def _reverse_cumsum(t: torch.Tensor) -> torch.Tensor:
    """``out[:, k] = Σ_{j ≥ k} t[:, j]`` — exact zeros over a trailing run of zeros."""
    return t.flip(1).cumsum(1).flip(1)


def project_onto_hyperplane_in_box(t: torch.Tensor, w: torch.Tensor, c: torch.Tensor, lower: torch.Tensor,
                                   upper: torch.Tensor, norm: str) -> torch.Tensor:
    """The smallest step ``d`` (L∞, L2 or L1) with ``⟨w, d⟩ = c`` and ``lower ≤ t + d ≤ upper``; rows are examples.

    ``t``, ``w``: (B, n); ``c``: (B,); ``lower``/``upper`` broadcast against ``t``. After flipping the sign of ``w``
    so that ``c ≥ 0``, every minimiser has the form ``d_i = sign(w_i)·min(λ·s_i, room_i)`` for one λ ≥ 0, where
    ``room_i`` is how far ``t_i`` may move towards ``sign(w_i)`` inside the box and ``s_i`` is 1 (L∞: every free
    coordinate at ±λ) or ``|w_i|`` (L2: d ∝ w until a coordinate hits the box). ``h(λ) = ⟨w, d(λ)⟩`` is
    piecewise linear and non-decreasing, with a kink where coordinate i saturates (λ_i = room_i / s_i); sorting the
    kinks gives h at each of them by cumulative sums, the first kink with h ≥ c brackets λ, and λ solves the linear
    piece there. If even the all-saturated box corner has ⟨w, d⟩ < c the hyperplane misses the box and that corner
    (the box point nearest to it along w) is returned. Coordinates with ``w_i = 0`` never move.

    L1 (a linear program): the cheapest way to buy ⟨w, d⟩ = c is to move the coordinates in order of decreasing
    |w_i|, each up to its room, until c is reached — a greedy fill, the last coordinate moved only part of its room.
    """
    flip = torch.where(c < 0, -1.0, 1.0).to(w.dtype)
    w, c = w * flip[:, None], c.abs()
    direction = w.sign()
    room = torch.where(w > 0, upper - t, t - lower).clamp_min(0) * direction.abs()
    aw = w.abs()
    if norm == "l1":
        aw_s, order = aw.sort(dim=1, descending=True)
        room_s = room.gather(1, order)
        gain = aw_s * room_s                                        # what each coordinate can add to ⟨w, d⟩
        still = (c[:, None] - (gain.cumsum(1) - gain)).clamp_min(0)  # what is left when its turn comes
        moved = torch.where(aw_s > 0, torch.minimum(still / aw_s.clamp_min(torch.finfo(w.dtype).tiny), room_s),
                            torch.zeros_like(room_s))
        return direction * torch.zeros_like(moved).scatter(1, order, moved)
    scale = torch.ones_like(aw) if norm == "linf" else aw
    big = torch.finfo(w.dtype).max
    kink = torch.where(aw > 0, room / scale.clamp_min(torch.finfo(w.dtype).tiny), big)
    kink, order = kink.sort(dim=1)
    aw_s, scale_s, room_s = aw.gather(1, order), scale.gather(1, order), room.gather(1, order)
    saturated = (aw_s * room_s).cumsum(1) - aw_s * room_s      # Σ_{j < k} |w_j|·room_j (the saturated part)
    slope = _reverse_cumsum(aw_s * scale_s)                     # Σ_{j ≥ k} |w_j|·s_j (the still-free part)
    h = saturated + torch.where(slope > 0, kink * slope, torch.zeros_like(slope))
    reached = h >= c[:, None]
    k = reached.to(torch.int8).argmax(dim=1, keepdim=True)    # the first kink where h(λ) ≥ c
    slope_k = slope.gather(1, k).squeeze(1)
    feasible = reached.any(dim=1) & (slope_k > 0)
    lam = (c - saturated.gather(1, k).squeeze(1)) / slope_k.clamp_min(torch.finfo(w.dtype).tiny)
    lam = torch.where(feasible, lam.clamp_min(0), torch.zeros_like(lam))
    d = direction * torch.minimum(lam[:, None] * scale, room)
    return torch.where(feasible[:, None], d, direction * room)


@ATTACKS.register("fab")
class FAB(Attack):
    """Untargeted FAB (minimum norm), judged at ε: a fooling point within ε, else the clean input."""

    name = "fab"

    def __init__(self, threat: ThreatModel, steps: int = 100, restarts: int = 1, alpha_max: float = 0.1,
                 eta: float = 1.05, beta: float = 0.9, eot: int = 1, bpda=None):
        super().__init__(threat, "ce", False, eot, bpda)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.alpha_max = _check_range(alpha_max, "alpha_max", 0.0, 1.0, "in [0, 1]", closed_low=True,
                                      closed_high=True)
        self.eta = _check_range(eta, "eta", 1.0, float("inf"), "≥ 1", closed_low=True)
        self.beta = _check_range(beta, "beta", 0.0, 1.0, "in (0, 1]", closed_high=True)

    def __repr__(self) -> str:
        return (f"FAB({self.threat}, steps={self.steps}, restarts={self.restarts}, alpha_max={self.alpha_max}, "
                f"eta={self.eta}, beta={self.beta})")

    # -- the linearised boundary ------------------------------------------------------------------------------------
    def hyperplane(self, model: nn.Module, x1: torch.Tensor, y: torch.Tensor, target: Optional[torch.Tensor],
                   classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(w, f): the gradient (flat, immutable features zeroed) and value of ``logit_k − logit_y`` at ``x1`` for
        ``target``, or else for the class k whose linearised boundary is nearest in the threat's norm."""
        if target is not None:
            return self._difference(model, x1, y, target)
        best_w = best_f = best_dist = None
        for k in range(classes):
            other = torch.full_like(y, k)
            w, f = self._difference(model, x1, y, other)
            norm = self.threat.norm
            dual = w.abs().sum(1) if norm == "linf" else w.abs().amax(1) if norm == "l1" else w.norm(dim=1)
            dist = f.abs() / (dual + 1e-12)
            dist = torch.where(y == k, torch.full_like(dist, float("inf")), dist)
            if best_dist is None:
                best_w, best_f, best_dist = w, f, dist
            else:
                nearer = dist < best_dist
                best_w = torch.where(nearer[:, None], w, best_w)
                best_f = torch.where(nearer, f, best_f)
                best_dist = torch.where(nearer, dist, best_dist)
        return best_w, best_f

    def _difference(self, model, x1, y, other):
        def objective(logits):
            logits = logits.float()
            return logits.gather(1, other[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)

        grad, _, f = input_gradient(model, x1, objective)
        return self.threat.changeable(grad).reshape(x1.shape[0], -1).to(x1.dtype), f.to(x1.dtype)

    # -- one run --------------------------------------------------------------------------------------------------
    def _random_start(self, x0: torch.Tensor) -> torch.Tensor:
        """AutoAttack's restart point: a random direction (uniform in the cube for L∞, Gaussian for L2 and L1)
        scaled to distance ε/2, clipped to the box."""
        if self.threat.norm == "linf":
            t = 2 * torch.rand_like(x0) - 1
        else:
            t = torch.randn_like(x0)
        t = self.threat.changeable(t)
        size = self.threat.distance(t, torch.zeros_like(t)).clamp_min(1e-12)
        return self.threat.clip(x0 + t * (0.5 * self.threat.eps / size).reshape((-1,) + (1,) * (x0.dim() - 1)))

    def _search(self, model: nn.Module, x0: torch.Tensor, y: torch.Tensor, target: Optional[torch.Tensor],
                x1: torch.Tensor, classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """FAB from ``x1`` on examples ``x0``: (nearest fooling point found, its distance; inf where none)."""
        threat, n = self.threat, x0.shape[0]
        shape = (-1,) + (1,) * (x0.dim() - 1)
        flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
        lower = flat(threat.clip(torch.full_like(x0[:1], float("-inf"))))
        upper = flat(threat.clip(torch.full_like(x0[:1], float("inf"))))
        best = x0.clone()
        best_dist = torch.full((n,), float("inf"), device=x0.device, dtype=x0.dtype)
        x1 = x1.clone()
        active = torch.arange(n, device=x0.device)
        for _ in range(self.steps):
            xa, x0a, ya = x1[active], x0[active], y[active]
            w, f = self.hyperplane(model, xa, ya, None if target is None else target[active], classes)
            with torch.no_grad():
                t1, t0 = flat(xa), flat(x0a)
                # the boundary ⟨w, z − x1⟩ + f = 0: from x1 the step must give ⟨w, d⟩ = −f, from x0 −f − ⟨w, x0 − x1⟩
                c1, c0 = -f, -f - (w * (t0 - t1)).sum(1)
                d = project_onto_hyperplane_in_box(torch.cat((t1, t0)), torch.cat((w, w)), torch.cat((c1, c0)),
                                                   lower, upper, threat.norm)
                size = threat.distance(d, torch.zeros_like(d)).clamp_min(1e-8)
                d1, d0 = d[:len(active)], d[len(active):]
                s1, s0 = size[:len(active)], size[len(active):]
                alpha = (s1 / (s1 + s0)).clamp(0.0, self.alpha_max)[:, None]
                step = (1 - alpha) * (t1 + self.eta * d1) + alpha * (t0 + self.eta * d0)
                x_new = threat.clip(step.reshape(xa.shape))
                fooled = model(x_new).argmax(dim=1) != ya
                dist = threat.distance(x_new, x0a)
                nearer = fooled & (dist < best_dist[active])
                if nearer.any():
                    idx = active[nearer]
                    best[idx] = x_new[nearer]
                    best_dist[idx] = dist[nearer]
                x_new = torch.where(fooled.reshape(shape), x0a + self.beta * (x_new - x0a), x_new)
                x1[active] = x_new
                active = active[best_dist[active] > threat.eps]
            if active.numel() == 0:
                break
        return best, best_dist

    def _attack(self, model, x, y, classes, fooled, out, target=None):
        """Every restart on the examples still standing; updates ``fooled`` and ``out`` in place."""
        for restart in range(self.restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                return
            x0 = x[todo]
            start = x0 if restart == 0 else self._random_start(x0)
            best, dist = self._search(model, x0, y[todo], None if target is None else target[todo], start, classes)
            won = dist <= self.threat.eps
            out[todo[won]] = best[won]
            fooled[todo[won]] = True

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        fooled, out = logits.argmax(dim=1) != y, x.clone()
        self._attack(model, x, y, logits.shape[1], fooled, out)
        return self.threat.project(out, x)


@ATTACKS.register("fab_t")
class FABTargeted(FAB):
    """FAB-T (AutoAttack): FAB towards each of the ``n_target_classes`` classes ranked highest after the true one."""

    name = "fab_t"

    def __init__(self, threat: ThreatModel, steps: int = 100, restarts: int = 1, n_target_classes: int = 9,
                 alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9, eot: int = 1, bpda=None):
        super().__init__(threat, steps=steps, restarts=restarts, alpha_max=alpha_max, eta=eta, beta=beta, eot=eot,
                         bpda=bpda)
        self.n_target_classes = check_steps(n_target_classes, "n_target_classes")

    def __repr__(self) -> str:
        return (f"FAB-T({self.threat}, steps={self.steps}, restarts={self.restarts}, "
                f"n_target_classes={self.n_target_classes}, alpha_max={self.alpha_max}, eta={self.eta}, "
                f"beta={self.beta})")

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        classes, fooled = logits.shape[1], logits.argmax(dim=1) != y
        if classes < 2:
            raise UserError(f"fab_t needs at least 2 classes, the model has {classes}")
        ranked = logits.float().argsort(dim=1)  # ascending: the last column is the top class
        out = x.clone()
        for rank in range(2, min(self.n_target_classes, classes - 1) + 2):
            self._attack(model, x, y, classes, fooled, out, target=ranked[:, -rank])
            if fooled.all():
                break
        return self.threat.project(out, x)


def _check_range(value, name: str, low: float, high: float, allowed: str, closed_low: bool = False,
                 closed_high: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    above = v >= low if closed_low else v > low
    below = v <= high if closed_high else v < high
    if isinstance(value, bool) or not (above and below):
        raise UserError(f"{name} must be a number {allowed}, got {value!r}")
    return v
