"""The session's trained runs (standard, PGD-AT, tiny PGD-AT on digits), trained once per test session.

However many pytest-xdist workers ask, a run is trained once: whoever holds its file lock in the directory the
workers share trains it and marks it done; everyone else waits on the lock and then reads the finished run. So that
no worker sits idle while a run trains, the first worker (or a plain pytest process) starts the runs its collected
tests need in background processes as soon as collection ends (``start_background``): they take their locks first
thing and train beside the tests that need no trained model. ``python shared_runs.py NAME DIR`` trains one run
from a shell."""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Dict, Iterable

EPS = 0.2

#: run name → the TrainConfig fields beyond the common ones (ε, robust validation by PGD-10)
RUNS: Dict[str, Dict[str, object]] = {
    "pgd_at": dict(method="pgd_at", epochs=20),
    "standard": dict(method="standard", epochs=12),
    # Wong et al.'s MNIST net: a forward pass costs a tenth of small_cnn's (0.6 vs 5.7 ms for 50 digits, one thread)
    "tiny_pgd_at": dict(method="pgd_at", epochs=20, model="tiny_cnn", test_size=100),
}
#: fixture name → run name
FIXTURES = {"robust_run": "pgd_at", "standard_run": "standard", "tiny_robust_run": "tiny_pgd_at"}


def folder(root: Path, name: str) -> Path:
    return root / f"shared_run_{name}"


def ensure(root: Path, name: str) -> Path:
    """The finished run folder of ``name`` under ``root``, trained here unless someone already did (or is)."""
    out = folder(root, name)
    with open(root / f"shared_run_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if training fails
        if not (out / "DONE").is_file():
            from armor import TrainConfig
            from armor.training import Trainer

            cfg = TrainConfig(eps=EPS, out=str(out), eval_attacks=["pgd"], eval_steps=10, **RUNS[name])
            Trainer(cfg, overwrite=True, progress=False).fit()
            (out / "DONE").touch()
    return out


def start_background(root: Path, names: Iterable[str]) -> list:
    """One background process per run not yet done, each training it under its lock (one torch thread each),
    forked warm (``launch.ArmorProcess``); its output is in ``shared_run_NAME.log``."""
    from launch import ArmorProcess

    procs = []
    for name in sorted(set(names), key=list(RUNS).index):
        if (folder(root, name) / "DONE").is_file():
            continue
        code = ("import sys; from pathlib import Path; import shared_runs; "
                "shared_runs.ensure(Path(sys.argv[2]), sys.argv[1])")
        procs.append(ArmorProcess([name, str(root)], code=code, output=root / f"shared_run_{name}.log",
                                  env={**os.environ, "OMP_NUM_THREADS": "1"}))
    return procs


if __name__ == "__main__":
    ensure(Path(sys.argv[2]), sys.argv[1])
