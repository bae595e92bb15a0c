from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..threat import ThreatModel
from .base import METHODS, SINGLE_STEP_L1, Method, Passes, StepOutput


@METHODS.register("free")
class FreeAT(Method):
    """Shafahi et al. 2019, "adversarial training for free": each minibatch is replayed m times.

    Every replay does one forward and one backward pass that yields both the weight gradient (for the
    optimizer step) and the input gradient (for an FGSM step on the perturbation δ, size ε, carried over
    replays and minibatches). The trainer's ``loss.backward()`` fills ``x_adv.grad`` because ``x_adv``
    is a leaf that requires grad; the δ update happens at the start of the next step, so no extra
    backward pass is needed. m replays cost about m epochs of standard training: divide the number of
    epochs by m to compare at equal cost.
    """

    name = "free"
    norms = ("linf", "l2")
    norm_hint = SINGLE_STEP_L1
    guard_by_default = True

    def __init__(self, threat: ThreatModel, replays: int = 4, step_size: float | None = None):
        super().__init__(threat)
        self._fix_step_size(step_size)
        if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
            raise UserError(f"replays must be an integer ≥ 1, got {replays!r}")
        self.replays = replays
        if self.step_fraction is None:
            self.step_fraction = 1.0  # FGSM steps of size ε on δ (Shafahi et al.)
        self._x: torch.Tensor | None = None        # the clean batch δ was last applied to
        self._x_adv: torch.Tensor | None = None    # its perturbed copy, whose .grad the backward fills
        self._delta: torch.Tensor | None = None

    def _advance_delta(self) -> None:
        """FGSM step on δ with the input gradient of the last backward pass (if there was one)."""
        if self._x_adv is None or self._x_adv.grad is None:
            return
        with torch.no_grad():
            stepped = self.threat.step(self._x_adv, self._x_adv.grad, self.step_size)
            self._delta = self.threat.project(stepped, self._x) - self._x
        self._x_adv = None

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        # δ survives a change of ε (the trainer's warm-up ramp): projecting onto the current ball shrinks it
        self._advance_delta()
        if self._delta is None or self._delta.shape != x.shape:
            self._delta = torch.zeros_like(x)
        with torch.no_grad():
            x_adv = self.threat.project(x + self._delta, x)
        x_adv.requires_grad_(True)
        self._x, self._x_adv = x.detach(), x_adv
        logits = model(x_adv)
        return StepOutput(F.cross_entropy(logits, y), logits)

    def passes(self) -> Passes:
        # m replays of one forward+backward each; the input gradient comes with the weight gradient, at no extra pass
        return Passes(0, self.replays)

    def __repr__(self) -> str:
        return f"FreeAT({self.threat}, replays={self.replays})"
