"""Launching armor (or torchrun) as a subprocess in its own process group, for the tests that start several."""
from __future__ import annotations

import os
import signal
import subprocess
from typing import List, Tuple



def torchrun_available() -> bool:
    """torch.distributed's launcher and the gloo backend (what the CPU torchrun tests need)."""
    try:
        import torch.distributed.run  # noqa: F401
    except ImportError:
        return False
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


def run_in_own_group(cmd: List[str], timeout: float = 300, **popen) -> Tuple[int, str, str]:
    """(returncode, stdout, stderr) of ``cmd`` run in its own process group, so that a hang kills the launcher and
    every worker it started, not the launcher alone."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, stdout, stderr
