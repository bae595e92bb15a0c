"""Projected gradient descent (Madry et al. 2018) with random start and restarts."""
from __future__ import annotations

import torch
from torch import nn

from ..threat import ThreatModel
from .base import ATTACKS, Attack, check_step_size, check_steps


@ATTACKS.register("pgd")
class PGD(Attack):
    """``steps`` steps of size ``step_size`` (default 2.5·ε/steps), projected back into the ball.

    ``keep_best`` (for evaluation): each example keeps the first iterate that fools the model, and
    later restarts attack only the examples no earlier restart fooled — so more restarts never raise
    accuracy. With ``keep_best=False`` (for training) the final iterate is returned, as in Madry et al.
    """

    name = "pgd"
    iterative = True

    def __init__(self, threat: ThreatModel, steps: int = 10, step_size: float | None = None,
                 random_start: bool = True, restarts: int = 1, loss: str = "ce", targeted: bool = False,
                 keep_best: bool = True, eot: int = 1, bpda=None):
        super().__init__(threat, loss, targeted, eot, bpda)
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts, "restarts")
        self.step_size = check_step_size(step_size) or 2.5 * threat.eps / self.steps
        self.random_start = bool(random_start)
        self.keep_best = bool(keep_best)

    def __repr__(self) -> str:
        return (f"PGD({self.threat}, steps={self.steps}, step_size={self.step_size:.4g}, "
                f"restarts={self.restarts}, loss={getattr(self.loss_fn, '__name__', self.loss_fn)})")

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stream=None):
        """One restart; returns (x_adv, fooled) where fooled is only tracked with keep_best."""
        threat = self.threat
        x_adv = threat.random_init(x, generator=stream) if self.random_start else x.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        x_best = x_adv
        for _ in range(self.steps):
            grad, logits, _ = self.input_grad(model, x_adv, y)
            if self.keep_best:
                # unconditional where(): a data-dependent `if newly.any()` would sync with the GPU every step
                newly = self.success(logits, y) & ~fooled
                x_best = torch.where(newly.reshape(-1, *[1] * (x.dim() - 1)), x_adv, x_best)
                fooled |= newly
            x_adv = threat.project(threat.step(x_adv, grad, self.step_size), x)
        if not self.keep_best:
            return x_adv, fooled
        with torch.no_grad():
            fooled_last = self.success(model(x_adv), y)
        keep = fooled.reshape(-1, *[1] * (x.dim() - 1))
        return torch.where(keep, x_best, x_adv), fooled | fooled_last

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv, fooled = self._run(model, x, y, self.stream("start", 0))
        batch_shape = (-1,) + (1,) * (x.dim() - 1)
        for restart in range(1, self.restarts):
            if self.keep_best:  # later restarts attack only the examples still standing
                todo = (~fooled).nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                x_new, fooled_new = self._run(model, x[todo], y[todo], self.stream("start", restart, rows=todo))
                x_adv[todo] = torch.where(fooled_new.reshape(batch_shape), x_new, x_adv[todo])
                fooled[todo] = fooled_new
            else:  # keep whichever restart reached the higher loss
                x_new, _ = self._run(model, x, y, self.stream("start", restart))
                with torch.no_grad():
                    sign = -1.0 if self.targeted else 1.0
                    better = sign * self.loss_fn(model(x_new), y) > sign * self.loss_fn(model(x_adv), y)
                x_adv = torch.where(better.reshape(batch_shape), x_new, x_adv)
        return x_adv
