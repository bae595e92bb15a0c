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
                 targeted: bool = False, rho: float = 0.75, eot: int = 1, bpda=None):
        super().__init__(threat, loss, targeted, eot, bpda)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.rho = float(rho)
        self.checkpoints = set(checkpoints(self.steps))
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")

    def __repr__(self) -> str:
        return f"APGD({self.threat}, steps={self.steps}, restarts={self.restarts}, loss={self.loss_name})"

    # -- one run of the step-size schedule ------------------------------------------------------
    def _ascend(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                objective: Callable[[torch.Tensor], torch.Tensor], stream=None):
        """Maximise ``objective(logits)`` from a random start (drawn from ``stream``); returns (x_adv, fooled)."""
        threat = self.threat
        shape = (-1,) + (1,) * (x.dim() - 1)

        def grad_at(point):
            return input_gradient(model, point, objective)

        x_adv = threat.random_init(x, generator=stream)
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

    def _restarts(self, model, x, y, objective_for, x_adv, fooled, key=()):
        """Run ``objective_for(todo)`` restarts on the still-robust examples, updating in place; restart ``r`` draws
        its start from the streams ``(*key, "start", r)``."""
        for restart in range(self.restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            x_new, fooled_new = self._ascend(model, x[todo], y[todo], objective_for(todo),
                                             self.stream(*key, "start", restart, rows=todo))
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


@ATTACKS.register("apgd_t")
class APGDTargeted(APGD):
    """APGD on the targeted DLR loss, once per target class (AutoAttack's APGD-T); success = misclassified."""

    name = "apgd_t"

    def __init__(self, threat: ThreatModel, steps: int = 100, restarts: int = 1, n_target_classes: int = 9,
                 rho: float = 0.75, eot: int = 1, bpda=None, loss: str = "dlr"):
        if loss not in ("dlr", "margin"):
            raise UserError(f"apgd_t loss must be dlr (targeted DLR) or margin (targeted CW margin), got {loss!r}")
        super().__init__(threat, steps=steps, restarts=restarts, loss="dlr", rho=rho, eot=eot, bpda=bpda)
        self.n_target_classes = check_steps(n_target_classes, "n_target_classes")
        self.target_loss = loss

    def __repr__(self) -> str:
        loss = "" if self.target_loss == "dlr" else f", loss={self.target_loss}"
        return (f"APGD-T({self.threat}, steps={self.steps}, restarts={self.restarts}, "
                f"n_target_classes={self.n_target_classes}{loss})")

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

            x_adv, fooled = self._restarts(model, x, y, objective_for, x_adv, fooled, key=("target", rank))
            if fooled.all():
                break
        return x_adv
