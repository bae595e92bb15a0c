"""A termination request (SIGTERM) that is not lost when Python drops the exception its handler raised.

The command line turns SIGTERM into :class:`Terminated` (stopped like Ctrl-C, every write finished or undone),
raised wherever the main thread is. At a few places Python only prints an exception raised by a signal handler and
carries on — inside ``__del__`` methods, weakref callbacks and the at-fork hooks that ``subprocess`` and
``multiprocessing`` run (a DataLoader or image-folder worker starting) — and there the run would go on until the
scheduler's SIGKILL. So the handler also records the request, and the training and evaluation loops call
:func:`check` at every batch: a recorded request is raised again there. Pure Python, no imports.
"""
from __future__ import annotations


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, ``kill PID``): stopped like Ctrl-C, with every write finished or undone."""


_requested = False


def on_sigterm(signum, frame) -> None:
    """The SIGTERM handler: record the request, then raise :class:`Terminated` here."""
    global _requested
    _requested = True
    raise Terminated()


def check() -> None:
    """Raise :class:`Terminated` if a termination was requested (also one whose first raise Python dropped)."""
    if _requested:
        raise Terminated()


def clear() -> None:
    """Forget a request (the command line, once it has stopped for it, and before each command it runs)."""
    global _requested
    _requested = False
