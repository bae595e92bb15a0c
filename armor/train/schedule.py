"""Learning-rate schedules as pure functions of training progress (0 → 1): nothing to save on resume."""
from __future__ import annotations

import math

from ..errors import UserError

SCHEDULES = ("constant", "piecewise", "cosine", "onecycle")


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base LR at ``progress`` = (epoch + batch/batches) / epochs."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "piecewise":  # ÷10 at 50 % and 75 % of training (Madry, Rice et al.)
        return 1.0 if p < 0.5 else 0.1 if p < 0.75 else 0.01
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * p))
    if schedule == "onecycle":  # linear up to the peak at 40 %, linear down to 0 (Wong et al. 2020)
        return p / 0.4 if p < 0.4 else max(0.0, (1 - p) / 0.6)
    raise UserError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
