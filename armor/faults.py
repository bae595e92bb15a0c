"""Named points where a fault-injection test may kill the process, so every kill point is reproducible.

``ARMOR_FAULT=name`` (or ``name:N``, the N-th time the point is reached, counting from 1) makes the process
SIGKILL itself — its whole process group — at that point. Unset (always, outside tests) :func:`point` is a dict
lookup and nothing else. The points are listed in :data:`POINTS`; ``benchmarks/fault_injection.py`` and
``tests/test_run_folders.py`` kill ``armor train`` at each of them and check the resumed run is bit-identical to an
uninterrupted one.
"""
from __future__ import annotations

import os
import signal
from typing import Dict

POINTS = (
    "epoch_start",            # before the first batch of an epoch
    "mid_epoch",              # after a training step in the middle of an epoch
    "after_train_epoch",      # training of the epoch done, validation not started
    "mid_validation",         # inside the robust validation's evaluation
    "after_validation",       # validation done, callbacks not run
    "after_recovery",         # the guard rolled back and switched to a safer setting, the epoch's checkpoint not written
    "checkpoint_tmp_written", # a checkpoint's temp file written, not yet fsynced/renamed
    "checkpoint_renamed",     # a checkpoint renamed into place, nothing after it written
    "after_best",             # best.pt written, last.pt not yet
    "after_last",             # last.pt written, metrics.jsonl not yet appended
    "after_history",          # metrics.jsonl appended, the epoch's log line not printed
    "mid_final_test",         # inside the final test evaluation
    "before_results",         # the final test done, results.json not written
    "after_results",          # results.json written, the learning-curve plot not
)

_counts: Dict[str, int] = {}


def point(name: str) -> None:
    """Kill this process here if ``ARMOR_FAULT`` names this point (and this is its N-th visit)."""
    spec = os.environ.get("ARMOR_FAULT")
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        if os.getpgrp() == os.getpid():  # a group leader (started in a new session): the whole group, workers too
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)  # never the group of whoever started us
