"""CPU threads for torch: how many, and an OpenMP runtime that sleeps instead of spinning when it waits.

Every ``armor`` command that runs torch takes ``--threads N``. The default is the number of cores this process
may run on (``os.sched_getaffinity``: a container's or ``taskset``'s limit, not the machine's core count), or
``OMP_NUM_THREADS`` when that is set (as ``torchrun`` sets it to 1 for several processes per machine).

torch's OpenMP threads (GNU libgomp in the CPU wheels) spin for a while after every parallel region, waiting for
the next one. On a machine with other work that spinning takes the cores the other threads of the same region
need, and a training step became 10× slower (36 s instead of 3 s an epoch on the digits demo). So the command
line sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep while they wait) before torch is imported — OpenMP reads it
once, when it starts — unless ``OMP_WAIT_POLICY`` is already set. ``benchmarks/threads.py`` measured the choice:
the same speed on an idle machine, several times faster beside a busy one.

Torch-free at import: the command line calls :func:`prepare` before anything imports torch.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from .errors import UserError

#: what OpenMP threads do while they wait for work (the OpenMP standard's environment variable)
WAIT_POLICY = "PASSIVE"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive integer, else :func:`available_cores`."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def parse_threads(value: Any) -> Optional[int]:
    """``None`` (the default) or a positive integer; anything else is a one-line ``UserError``."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UserError(f"threads must be an integer ≥ 1 (CPU threads for torch), got {value!r}")
    return int(text)


def prepare() -> bool:
    """Before torch is imported: OpenMP threads wait passively. True if this took effect (torch not loaded yet and
    ``OMP_WAIT_POLICY`` not set by the user)."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    return True


def use(threads: Optional[int]) -> int:
    """Run torch on ``threads`` intra-op threads (default :func:`default_threads`); returns the count. Before torch
    is imported this goes through the environment (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, which torch reads when it
    starts), so a command that fails on its arguments never waits for torch; afterwards ``torch.set_num_threads``."""
    prepare()
    n = threads or default_threads()
    if "torch" not in sys.modules:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        return n
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
