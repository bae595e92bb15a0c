"""Values that change over a training run, as pure functions of its progress (nothing to save on resume).

- **LR schedules** (``SCHEDULES``): the multiplier of the base learning rate at ``progress`` ∈ [0, 1]
  (fraction of all epochs done, batch by batch).
- **The ε schedule** (:class:`ThreatSchedule`): the one owner of a run's threat model over time — the run's
  threat, or a linear ramp of ε from 0 over the first ``warmup`` epochs (``eps_warmup``). The trainer hands
  its current value to the method and the guards; nothing else computes a ramped ε.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

from .registry import Registry
from .threat import ThreatModel

SCHEDULES = Registry("schedule")


@SCHEDULES.register("constant")
def constant(p: float) -> float:
    return 1.0


@SCHEDULES.register("piecewise")
def piecewise(p: float) -> float:
    """÷10 at 50 % and at 75 % of training (Madry et al., Rice et al.)."""
    return 1.0 if p < 0.5 else 0.1 if p < 0.75 else 0.01


@SCHEDULES.register("cosine")
def cosine(p: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * p))


@SCHEDULES.register("onecycle")
def onecycle(p: float) -> float:
    """Linear up to the peak at 40 %, linear down to 0 (Wong et al. 2020)."""
    return p / 0.4 if p < 0.4 else max(0.0, (1 - p) / 0.6)


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base LR at ``progress`` = (epoch + batch/batches) / epochs, clamped to [0, 1]."""
    fn: Callable[[float], float] = SCHEDULES.get(schedule)
    return fn(min(max(progress, 0.0), 1.0))


class ThreatSchedule:
    """The threat model after ``progress`` epochs (fractional): ``threat`` itself, or during the first
    ``warmup`` epochs the same norm with ε ramped linearly from 0 (step by step, never exactly 0).

    ``at`` returns the very same object while ε does not change, so a consumer that rebuilds its attack
    on a new threat (``Method.set_threat``) rebuilds only when ε actually moved.
    """

    def __init__(self, threat: ThreatModel, warmup: int = 0):
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an integer ≥ 0, got {warmup!r}")
        self.threat, self.warmup = threat, warmup
        self._cache: Dict[float, ThreatModel] = {}

    def ramping(self, progress: float) -> bool:
        return bool(self.warmup) and progress < self.warmup

    def eps_at(self, progress: float) -> float:
        if self.ramping(progress):
            return self.threat.eps * max(progress, 1e-3) / self.warmup
        return self.threat.eps

    def at(self, progress: float) -> ThreatModel:
        if not self.ramping(progress):
            return self.threat
        eps = self.eps_at(progress)
        if eps not in self._cache:
            self._cache = {eps: self.threat.scaled(eps)}  # keep one: ε only grows
        return self._cache[eps]

    def __repr__(self) -> str:
        return f"ThreatSchedule({self.threat}, warmup={self.warmup})"
