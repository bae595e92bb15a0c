"""Launching armor (or torchrun) in processes of their own for the tests: as a subprocess in its own process group
(``run_in_own_group``), or forked warm from a pre-imported server (``ArmorProcess``, ``armor_run``)."""
from __future__ import annotations

import atexit
import io
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple


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


def torchrun_command(nproc: int) -> List[str]:
    """The launcher prefix for ``nproc`` processes on this machine (an empty prefix for one plain process)."""
    return [] if nproc == 1 else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]


def run_ranks(nproc: int, argv: List[str], env: Dict[str, str], timeout: float = 300, **popen) -> Tuple[int, str, str]:
    """``python [torchrun prefix] ARGV`` in its own process group, with Python's fault handler on in every rank: a rank
    that dies of a signal (a C++ abort in gloo, "terminate called without an active exception") prints the Python stack
    of each of its threads to stderr, which torchrun passes on, so the failure message shows where — mid-run or at
    exit. (returncode, stdout, stderr)."""
    return run_in_own_group([sys.executable, *torchrun_command(nproc), *argv], timeout=timeout,
                            env={**env, "PYTHONFAULTHANDLER": "1"}, **popen)


def failure(stderr: str) -> str:
    """A failed launch's stderr for the assertion message: the end, long enough to hold torchrun's summary after
    the ranks' own last words."""
    return stderr[-12000:]


# == armor commands (and Python snippets) in pre-imported processes ====================================================
# An armor command started as `python -m armor` spends 4–7 s importing torch, torch._dynamo (the first optimizer
# step pulls it in), scikit-learn and armor before its first batch; the kill-and-resume tests start ~30 of them.
# `ArmorProcess` forks each from a server process that imported all of that once (multiprocessing's forkserver, one
# per test process): each is still its own OS process — its own pid, session and process group, killed by real
# signals, the exit status as `subprocess` reports it (-N for signal N), stdout and stderr captured — but it starts
# warm. Tests about a fresh interpreter itself (thread settings read when torch loads, `python -m armor`, the
# README's commands as printed) keep starting one with `subprocess`.

#: what the server imports once, by name from site-packages (Python 3.11's forkserver does not put the tests'
#: sys.path in place for these imports, and it skips a module it cannot import without a word)
WARM_MODULES = ["torch", "torch._dynamo", "sklearn.datasets", "sklearn.model_selection", "matplotlib", "armor.cli",
                "armor.attacks", "armor.data", "armor.eval", "armor.methods", "armor.models", "armor.reports",
                "armor.training"]
_context = None
_dirs: list = []


@atexit.register
def _clean() -> None:
    for path in _dirs:
        shutil.rmtree(path, ignore_errors=True)


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(WARM_MODULES)
    return _context


def _child(job, env, out_path, err_path, cwd, before):  # runs in the forked process
    os.setsid()  # its own session and process group, as start_new_session=True: a fault kills only this process
    opened: Dict[str, int] = {}  # one open file when stdout and stderr share a path (as stderr=subprocess.STDOUT)
    for fd, path in ((1, out_path), (2, err_path)):
        if path not in opened:
            opened[path] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened[path], fd)
    for target in opened.values():
        os.close(target)
    # unbuffered, as PYTHONUNBUFFERED=1: what was printed before a kill is in the file
    sys.stdout = io.TextIOWrapper(open(1, "wb", buffering=0, closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), write_through=True)
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)
    if before:  # (module, function, args): e.g. the guard tests' scripted collapse
        module, function, args = before
        getattr(__import__(module), function)(*args)
    kind, payload, argv = job
    if kind == "code":  # as `python -c CODE ARGV...`
        sys.argv = ["-c", *argv]
        exec(compile(payload, "<string>", "exec"), {"__name__": "__main__"})
        sys.exit(0)
    from armor.cli import main

    sys.exit(main(list(argv)))


class ArmorProcess:
    """One armor command — ``ArmorProcess(["train", ...])`` — or Python snippet (``code=``, with ``argv`` as its
    ``sys.argv[1:]``) in a warm-started process of its own; the part of ``subprocess.Popen`` the tests use, with
    stdout/stderr read as text by :meth:`stdout`/:meth:`stderr` (also while it runs). With ``output``, both go to
    that one file instead (as ``stdout=file, stderr=subprocess.STDOUT``)."""

    def __init__(self, argv: Sequence[str] = (), env: Optional[Dict[str, str]] = None, cwd=None, before=None,
                 code: Optional[str] = None, output=None):
        if output is None:
            self._dir = Path(tempfile.mkdtemp(prefix="armor-proc-"))
            _dirs.append(self._dir)
            self._out, self._err = self._dir / "stdout", self._dir / "stderr"
        else:
            self._out = self._err = Path(output)
        job: Any = ("code", code, list(argv)) if code is not None else ("armor", None, list(argv))
        self._proc = _forkserver().Process(target=_child, args=(job, dict(os.environ if env is None else env),
                                                                str(self._out), str(self._err),
                                                                cwd and str(cwd), before))
        self._proc.start()
        self.pid = self._proc.pid
        self.args = ["python", "-c", "..."] if code is not None else ["armor", *argv]

    @property
    def returncode(self) -> Optional[int]:
        return self._proc.exitcode

    def poll(self) -> Optional[int]:
        return self._proc.exitcode

    def wait(self, timeout: Optional[float] = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._proc.exitcode

    def send_signal(self, sig: int) -> None:
        if self._proc.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL its whole process group (what it started too), then reap it."""
        if self._proc.exitcode is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.join(30)

    def stdout(self) -> str:
        return self._out.read_text(errors="replace") if self._out.is_file() else ""

    def stderr(self) -> str:
        return self._err.read_text(errors="replace") if self._err.is_file() else ""

    def wait_for_line(self, line: str, timeout: float = 120) -> None:
        """Until ``line`` is a whole line of its stdout (an AssertionError with its stderr if it exits first)."""
        deadline = time.monotonic() + timeout
        while line not in self.stdout().splitlines():
            assert self.poll() is None, f"exited {self.poll()} before printing {line!r}: {self.stderr()[-2000:]}"
            assert time.monotonic() < deadline, f"no {line!r} within {timeout} s"
            time.sleep(0.02)


def armor_run(argv: Sequence[str] = (), env: Optional[Dict[str, str]] = None, timeout: float = 300, cwd=None,
              before=None, code: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run one armor command (``armor_run(["train", ...])``) or Python snippet (``code=``) to its end in a
    warm-started process of its own, like ``subprocess.run(..., capture_output=True, text=True, timeout=...,
    start_new_session=True)``."""
    proc = ArmorProcess(argv, env=env, cwd=cwd, before=before, code=code)
    try:
        proc.wait(timeout)
    finally:
        proc.kill()  # after a timeout: the command and anything it started
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout(), proc.stderr())
