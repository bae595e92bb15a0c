"""The run folder's life: checked before anything changes, locked while a process trains in it, replaced only once
the new run has something to show, and never left half-written.

- :meth:`RunFolder.plan` looks only: it decides what starting the run means (a fresh folder, a restart of a run
  that never checkpointed, an ``overwrite``, a ``resume``) or raises the one-line error — before the data, the model
  or anything else is touched.
- :meth:`RunFolder.open` makes the changes, after every other check of the command passed: it takes the folder's
  lock (``.<name>.armor.lock`` beside it: one process per run folder), removes temp files of killed writes, and for
  ``overwrite`` moves the old run aside (``.<name>.replaced-<pid>``) — deleted by :meth:`committed` once the new run
  wrote its first checkpoint, put back by :meth:`failed` if it dies before.
- ``run.json`` names the run (``run_id``); a ``last.pt`` of another run copied into the folder is refused.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import locks
from ..errors import UserError, opt
from ..io import read_json, remove_stale_temp_files, write_json
from ..results import RUN_ID_FILE

log = logging.getLogger("armor")

#: what a run that never finished an epoch leaves behind (it may be started again without overwrite)
START_FILES = {"config.yaml", RUN_ID_FILE, "metrics.jsonl"}


def _written_before_last(name: str) -> bool:
    """A file an epoch writes before its ``last.pt``: best.pt and the averages' best_ema.pt / best_swa.pt (or the
    temp file of a killed write) — a folder holding only these and the start files has nothing to resume."""
    return name.endswith(".tmp") or (name.startswith("best") and name.endswith(".pt"))
CHECKPOINTS = ("last.pt", "best.pt")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = locks.lock_path(self.path)
        self.aside: Optional[Path] = None
        self.mode: Optional[str] = None

    # -- looking only --------------------------------------------------------------------------------------------
    def _replaced(self) -> List[Path]:
        parent = self.path.parent
        if not parent.is_dir():
            return []
        return sorted(parent.glob(f".{self.path.name}.replaced-*"))

    def plan(self, resume: bool, overwrite: bool) -> str:
        """``fresh``, ``restart``, ``overwrite`` or ``resume`` — or a one-line error; nothing on disk changes."""
        out = self.path
        if resume and overwrite:
            raise UserError(f"{opt('resume')} continues the run in {str(out)!r} and {opt('overwrite')} replaces it; "
                            f"give one of them")
        if out.exists() and not out.is_dir():
            raise UserError(f"output path {str(out)!r} is a file, not a folder")
        self._settle_replaced()  # an overwrite killed half-way is undone first: the folder shows what it holds
        files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        resumable = (out / "last.pt").is_file()
        if resume:
            if not (out / "last.pt").is_file():
                if files and set(files) <= START_FILES | {f for f in files if f.endswith(".tmp")}:
                    raise UserError(f"cannot resume: the run in {str(out)!r} stopped before its first epoch ended "
                                    f"(no last.pt); start it again without {opt('resume')}")
                raise UserError(f"cannot resume: {str(out)!r} holds no last.pt; start the run without {opt('resume')}")
            return "resume"
        if not files:
            return "fresh"
        if not resumable and all(f in START_FILES or _written_before_last(f) for f in files):
            return "restart"  # a run killed before its first last.pt (the best*.pt come first): nothing to resume
        if not overwrite:
            raise UserError(f"output folder {str(out)!r} already holds files; pass {opt('resume')} to continue that "
                            f"run, {opt('overwrite')} to replace it, or choose another {opt('out', 'FOLDER')}")
        return "overwrite"

    def check_writable(self) -> None:
        """The folder (or the nearest existing parent) can be written: checked before the data is even loaded."""
        probe_dir = self.path
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise UserError(f"cannot write to output folder {str(self.path)!r}: {str(probe_dir)!r} is not a folder")
        probe = probe_dir / f".armor-probe-{os.getpid()}"
        try:  # a real write (root ignores permission bits; read-only file systems and full disks show only here)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to output folder {str(self.path)!r}: {exc.strerror or exc}") from None

    # -- changing ------------------------------------------------------------------------------------------------
    def open(self, mode: str) -> None:
        """Lock the folder and make it ready for ``mode`` (see :meth:`plan`)."""
        out = self.path
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}") from None
        locks.acquire(self.lock_path, f"run folder {str(out)!r}")
        self.mode = mode
        try:
            if mode == "overwrite":
                self.aside = out.parent / f".{out.name}.replaced-{os.getpid()}"
                os.replace(out, self.aside)
            elif mode == "restart":
                for name in [*START_FILES, *(p.name for p in out.iterdir() if _written_before_last(p.name))]:
                    (out / name).unlink(missing_ok=True)
            out.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(out)
            probe = out / ".armor-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self.failed()
            raise UserError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}") from None

    def _settle_replaced(self) -> None:
        """An ``overwrite`` killed before the new run's first checkpoint left the old run aside: put it back (no
        checkpoint of the new run) or remove it (the new run had checkpointed)."""
        for aside in self._replaced():
            pid = aside.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue  # a live overwrite in progress
            if (self.path / "last.pt").is_file():
                shutil.rmtree(aside, ignore_errors=True)
                log.info("removed %s, the run an earlier overwrite replaced", aside)
            else:
                if self.path.exists():
                    shutil.rmtree(self.path, ignore_errors=True)
                os.replace(aside, self.path)
                log.warning("restored %s: an earlier overwrite was interrupted before the new run's first checkpoint",
                            self.path)

    def committed(self) -> None:
        """The new run wrote its first checkpoint: the run it replaced can go."""
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def failed(self) -> None:
        """The new run failed before its first checkpoint: put back the run it was replacing."""
        if self.aside is not None and self.aside.exists():
            if self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)
            os.replace(self.aside, self.path)
            log.warning("restored %s as it was: the new run stopped before its first checkpoint", self.path)
        self.aside = None

    def close(self) -> None:
        locks.release(self.lock_path)

    # -- which run this is ---------------------------------------------------------------------------------------
    def write_identity(self, run_id: str, extra: Dict[str, Any]) -> None:
        write_json(self.path / RUN_ID_FILE, {"run_id": run_id, **extra})

    def identity(self) -> Optional[str]:
        path = self.path / RUN_ID_FILE
        if not path.is_file():
            return None
        try:
            data = read_json(path)
        except UserError:
            return None
        return data.get("run_id") if isinstance(data, dict) else None

    def check_checkpoint(self, state: Dict[str, Any]) -> None:
        """Refuse a ``last.pt`` that belongs to another run than the one this folder holds."""
        mine, theirs = self.identity(), state.get("run_id")
        if mine is not None and theirs is not None and mine != theirs:
            raise UserError(f"{str(self.path / 'last.pt')!r} belongs to another run (run_id {theirs[:8]}…) than the run "
                            f"in {str(self.path)!r} (run_id {mine[:8]}…, run.json); put that run's own last.pt back or "
                            f"start a new run")


def new_run_id() -> str:
    return uuid.uuid4().hex
