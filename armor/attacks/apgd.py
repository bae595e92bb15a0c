"""Auto-PGD (Croce & Hein 2020): PGD without a step size to tune.

The step size starts at 2ε and is halved at checkpoints (first after 22 % of the steps, then at
intervals shrinking by 3 % of the steps down to 6 %) when the loss rose on fewer than ρ = 75 % of the
steps since the last checkpoint, or when neither the step size nor the best loss changed; on a halving
the iterate restarts from the best point so far. Steps use momentum 0.75 on the previous update.

``apgd`` maximises CE (or ``loss="dlr"``, untargeted DLR); ``apgd_t`` maximises the targeted DLR loss
towards each of the ``n_target_classes`` classes the clean input ranks highest after the true one.
Each example keeps the first iterate that fooled the model (evaluation's per-example best point), or
else its highest-loss iterate. All reshaping goes through ``reshape`` so channels_last inputs and
gradients (non-contiguous in NCHW order) work.

**L1** (APGD-L1, Croce & Hein 2021, "Mind the box", as in AutoAttack's code): the start is a Gaussian draw projected
onto the L1 ball ∩ box; each step moves η, spread evenly with the gradient's sign over the top-k features by
|gradient|, then projects exactly onto the L1 ball ∩ box (no momentum). The sparsity k is adaptive: it starts at
20 % of the features and, every 4 % of the steps, becomes the number of features the best point so far changes,
divided by 1.5. The step size starts at η = ε; at each of those checks it is divided by 1.5 (never below ε/10),
unless the best point became more than 5 % sparser since the last check: then it returns to ε and the iterate
restarts from the best point. ``larger_eps`` runs 30 % of the steps at 3ε, 30 % at 2ε and the rest at ε, each
stage starting from the previous one's highest-loss point projected onto the smaller ball (and with the sparsity
of that point); only points found at ε count. AutoAttack's APGD class has it off by default and its standard L1
evaluation turns it on; so does armor (``apgd`` off, the L1 ``standard`` and ``autoattack`` suites on).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import UserError
from ..losses import dlr_targeted
from ..threat import ThreatModel
from .base import ATTACKS, Attack, check_steps, input_gradient

MOMENTUM = 0.75
#: APGD-L1: initial sparsity (share of the features a step moves), its divisor, the step-size divisor and floor
L1_TOPK, L1_SPARSITY_DIVISOR, L1_STEP_DIVISOR, L1_MIN_STEP = 0.2, 1.5, 1.5, 0.1
#: APGD-L1 with ``larger_eps``: (ε multiple, share of the steps) of each stage
L1_EPS_STAGES = ((3.0, 0.3), (2.0, 0.3), (1.0, None))


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based counts of steps taken) after which APGD may halve its step size."""
    marks, interval = [], max(math.ceil(0.22 * steps), 1)
    decrease, minimum = max(math.ceil(0.03 * steps), 1), max(math.ceil(0.06 * steps), 1)
    at = interval
    while at <= steps:
        marks.append(at)
        interval = max(interval - decrease, minimum)
        at += interval
    return marks


@ATTACKS.register("apgd")
class APGD(Attack):
    """APGD with CE (default) or untargeted DLR loss; ``restarts`` attack only still-robust examples."""

    name = "apgd"

    def __init__(self, threat: ThreatModel, steps: int = 100, restarts: int = 1, loss: str = "ce",
                 targeted: bool = False, rho: float = 0.75, eot: int = 1, bpda=None, larger_eps: bool = False):
        super().__init__(threat, loss, targeted, eot, bpda)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.rho = float(rho)
        self.checkpoints = set(checkpoints(self.steps))
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self.larger_eps = check_larger_eps(larger_eps, threat)

    def __repr__(self) -> str:
        schedule = f", larger_eps={self.larger_eps}" if self.threat.norm == "l1" else ""
        return f"APGD({self.threat}, steps={self.steps}, restarts={self.restarts}, loss={self.loss_name}{schedule})"

    # -- one run of the step-size schedule ------------------------------------------------------
    def _ascend(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                objective: Callable[[torch.Tensor], torch.Tensor]):
        """Maximise ``objective(logits)`` from a random start; returns (x_adv, fooled)."""
        if self.threat.norm == "l1":
            return self._ascend_l1(model, x, y, objective)
        threat = self.threat
        shape = (-1,) + (1,) * (x.dim() - 1)

        def grad_at(point):
            return input_gradient(model, point, objective)

        x_adv = threat.random_init(x)
        grad, logits, loss = grad_at(x_adv)
        fooled = self.success(logits, y)
        x_fooled = x_adv.clone()
        x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
        eta = torch.full((x.shape[0],), 2.0 * threat.eps, device=x.device, dtype=x.dtype).reshape(shape)
        x_prev, loss_prev = x_adv.clone(), loss.clone()
        rises = torch.zeros_like(loss)
        loss_best_at_mark = loss_best.clone()
        halved_at_mark = torch.ones_like(fooled)  # no "unchanged since last mark" test at the first mark
        last_mark = 0
        for k in range(1, self.steps + 1):
            with torch.no_grad():
                z = threat.project(threat.step(x_adv, grad, eta), x)
                alpha = MOMENTUM if k > 1 else 1.0
                x_next = threat.project(x_adv + alpha * (z - x_adv) + (1 - alpha) * (x_adv - x_prev), x)
                x_prev = x_adv
            x_adv = x_next
            grad, logits, loss = grad_at(x_adv)
            newly = self.success(logits, y) & ~fooled
            if newly.any():
                x_fooled = torch.where(newly.reshape(shape), x_adv, x_fooled)
                fooled |= newly
            rises += (loss > loss_prev).to(rises.dtype)
            loss_prev = loss
            better = loss > loss_best
            x_best = torch.where(better.reshape(shape), x_adv, x_best)
            grad_best = torch.where(better.reshape(shape), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            if k in self.checkpoints:
                too_few_rises = rises < self.rho * (k - last_mark)
                stalled = ~halved_at_mark & (loss_best_at_mark >= loss_best)
                halve = too_few_rises | stalled
                eta = torch.where(halve.reshape(shape), eta / 2, eta)
                x_adv = torch.where(halve.reshape(shape), x_best, x_adv)
                grad = torch.where(halve.reshape(shape), grad_best, grad)
                halved_at_mark, loss_best_at_mark = halve, loss_best.clone()
                rises.zero_()
                last_mark = k
            if fooled.all():
                break  # nothing left to gain for evaluation: every example already has a fooling point
        return torch.where(fooled.reshape(shape), x_fooled, x_best), fooled

    # -- APGD-L1 ------------------------------------------------------------------------------------------------
    def _ascend_l1(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   objective: Callable[[torch.Tensor], torch.Tensor]):
        """APGD-L1, with the 3ε → 2ε → ε stages when ``larger_eps``; returns (x_adv, fooled) at ε."""
        if not self.larger_eps:
            x_best, x_fooled, fooled = self._run_l1(model, x, y, objective, self.threat, self.steps, None, True)
            return torch.where(fooled.reshape((-1,) + (1,) * (x.dim() - 1)), x_fooled, x_best), fooled
        stages, left = [], self.steps
        for multiple, share in L1_EPS_STAGES:
            n = left if share is None else min(math.ceil(share * self.steps), left)
            stages.append((multiple, n))
            left -= n
        start = self.threat.scaled(L1_EPS_STAGES[0][0] * self.threat.eps).random_init(x)
        for multiple, n in stages:
            last = multiple == 1.0
            if n == 0 and not last:
                continue
            threat = self.threat.scaled(multiple * self.threat.eps) if not last else self.threat
            start, x_fooled, fooled = self._run_l1(model, x, y, objective, threat, n, start, last)
        return torch.where(fooled.reshape((-1,) + (1,) * (x.dim() - 1)), x_fooled, start), fooled

    def _run_l1(self, model, x, y, objective, threat: ThreatModel, steps: int, start, final: bool):
        """One APGD-L1 run of ``steps`` steps in ``threat``'s ball from ``start`` (None: a random start); returns
        (highest-loss point, first fooling point, fooled). ``final``: the run at the real ε (it may stop early)."""
        shape = (-1,) + (1,) * (x.dim() - 1)
        features = x[0].numel() - len(threat.immutable)

        def grad_at(point):
            return input_gradient(model, point, objective)

        def changed(point):  # L0 size of the perturbation
            return (point - x).reshape(x.shape[0], -1).ne(0).sum(1).to(x.dtype)

        if start is None:
            x_adv = threat.random_init(x)
            topk = torch.full((x.shape[0],), L1_TOPK, device=x.device, dtype=x.dtype)
            sparsity_old = torch.full_like(topk, float(features))
        else:
            x_adv = threat.project(start, x)
            sparsity_old = changed(x_adv)
            topk = sparsity_old / features / L1_SPARSITY_DIVISOR
        grad, logits, loss = grad_at(x_adv)
        fooled = self.success(logits, y)
        x_fooled = x_adv.clone()
        x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
        eta_max = threat.eps
        eta = torch.full((x.shape[0],), eta_max, device=x.device, dtype=x.dtype)
        interval = max(int(0.04 * steps), 1)
        for k in range(1, steps + 1):
            with torch.no_grad():
                x_adv = threat.project(x_adv + eta.reshape(shape) * _top_k_sign(grad, topk, features), x)
            grad, logits, loss = grad_at(x_adv)
            newly = self.success(logits, y) & ~fooled
            if newly.any():
                x_fooled = torch.where(newly.reshape(shape), x_adv, x_fooled)
                fooled |= newly
            better = loss > loss_best
            x_best = torch.where(better.reshape(shape), x_adv, x_best)
            grad_best = torch.where(better.reshape(shape), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            if k % interval == 0:
                sparsity = changed(x_best)
                sparser = sparsity < 0.95 * sparsity_old  # the best point got > 5 % sparser: full step, from it
                topk = sparsity / features / L1_SPARSITY_DIVISOR
                eta = torch.where(sparser, torch.full_like(eta, eta_max), eta / L1_STEP_DIVISOR)
                eta = eta.clamp(L1_MIN_STEP * eta_max, eta_max)
                sparsity_old = sparsity
                x_adv = torch.where(sparser.reshape(shape), x_best, x_adv)
                grad = torch.where(sparser.reshape(shape), grad_best, grad)
            if final and fooled.all():
                break
        return x_best, x_fooled, fooled

    def _restarts(self, model, x, y, objective_for, x_adv, fooled):
        """Run ``objective_for(todo)`` restarts on the still-robust examples, updating in place."""
        for _ in range(self.restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_new, fooled_new = self._ascend(model, x[todo], y[todo], objective_for(todo))
            x_adv[todo] = x_new  # a fooling point, or else the latest run's highest-loss point
            fooled[todo] = fooled_new
        return x_adv, fooled

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "dlr" and len(x):
            with torch.no_grad():
                classes = model(x[:1]).shape[1]
            if classes < 3:
                raise UserError(f"apgd's dlr loss needs at least 3 classes (it uses the 3rd-highest logit), the model "
                                f"has {classes}; use loss='ce' or 'margin'")
        sign = -1.0 if self.targeted else 1.0
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        x_adv = x.clone()

        def objective_for(todo):
            return lambda logits: sign * self.loss_fn(logits, y[todo])

        x_adv, _ = self._restarts(model, x, y, objective_for, x_adv, fooled)
        return x_adv


def _top_k_sign(grad: torch.Tensor, topk: torch.Tensor, features: int) -> torch.Tensor:
    """sign(grad) on each example's top ``ceil(topk·features)`` features by |grad| (at least one; ties included;
    never a feature with zero gradient, e.g. an immutable one), scaled to L1 norm 1."""
    flat = grad.reshape(grad.shape[0], -1)
    magnitude = flat.abs()
    k = (topk * features).ceil().clamp(1, features).long()
    threshold = magnitude.sort(dim=1, descending=True).values.gather(1, (k - 1)[:, None])
    chosen = (magnitude >= threshold) & (magnitude > 0)
    direction = flat.sign() * chosen
    return (direction / chosen.sum(1, keepdim=True).clamp_min(1)).reshape(grad.shape)


def check_larger_eps(larger_eps, threat: ThreatModel) -> bool:
    """``larger_eps`` applies to L1 only."""
    if not isinstance(larger_eps, bool):
        raise UserError(f"larger_eps must be true or false, got {larger_eps!r}")
    if threat.norm != "l1" and larger_eps:
        raise UserError(f"larger_eps (the 3ε → 2ε → ε stages of APGD-L1) applies to the l1 threat model only, not "
                        f"{threat.norm}")
    return larger_eps


@ATTACKS.register("apgd_t")
class APGDTargeted(APGD):
    """APGD on the targeted DLR loss, once per target class (AutoAttack's APGD-T); success = misclassified."""

    name = "apgd_t"

    def __init__(self, threat: ThreatModel, steps: int = 100, restarts: int = 1, n_target_classes: int = 9,
                 rho: float = 0.75, eot: int = 1, bpda=None, loss: str = "dlr", larger_eps: bool = False):
        if loss not in ("dlr", "margin"):
            raise UserError(f"apgd_t loss must be dlr (targeted DLR) or margin (targeted CW margin), got {loss!r}")
        super().__init__(threat, steps=steps, restarts=restarts, loss="dlr", rho=rho, eot=eot, bpda=bpda,
                         larger_eps=larger_eps)
        self.n_target_classes = check_steps(n_target_classes, "n_target_classes")
        self.target_loss = loss

    def __repr__(self) -> str:
        loss = "" if self.target_loss == "dlr" else f", loss={self.target_loss}"
        schedule = f", larger_eps={self.larger_eps}" if self.threat.norm == "l1" else ""
        return (f"APGD-T({self.threat}, steps={self.steps}, restarts={self.restarts}, "
                f"n_target_classes={self.n_target_classes}{loss}{schedule})")

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        classes = logits.shape[1]
        if classes < 4 and self.target_loss == "dlr":
            raise UserError(f"apgd_t needs at least 4 classes (its DLR loss uses the 4th-highest logit), the model has "
                            f"{classes}; use loss='margin' (targeted CW margin), as the suites do for such models")
        ranked = logits.float().argsort(dim=1)  # ascending: the last column is the top class
        fooled = self.success(logits, y)
        x_adv = x.clone()
        for rank in range(2, min(self.n_target_classes, classes - 1) + 2):
            target = ranked[:, -rank]

            def objective_for(todo, target=target):
                if self.target_loss == "margin":  # push the target logit above the true one, unscaled
                    return lambda out: (out.float().gather(1, target[todo][:, None])
                                        - out.float().gather(1, y[todo][:, None])).squeeze(1)
                return lambda out: dlr_targeted(out, y[todo], target[todo])

            x_adv, fooled = self._restarts(model, x, y, objective_for, x_adv, fooled)
            if fooled.all():
                break
        return x_adv
