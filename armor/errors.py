"""The one exception type for user mistakes.

A ``UserError`` carries a single line that names the bad value and what is allowed.
The CLI prints it and exits with status 2; library callers can catch it.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
from typing import Any, Iterable, Iterator


class UserError(ValueError):
    """A mistake in what the user asked for (bad option, missing file, wrong data)."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run stopped before that step changed the weights."""


def did_you_mean(name: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'steps'?)`` when ``name`` is close to one of ``allowed``, else an empty string."""
    close = difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- how an option is spelled to the user: command-line flags for the CLI, keyword arguments for Python ----------
_CLI = contextvars.ContextVar("armor_cli", default=False)


def opt(name: str, value: Any = True) -> str:
    """``--name-with-dashes VALUE`` when the command line is running, ``name=VALUE`` for Python callers.

    ``value=True`` (the default) is a switch: ``--overwrite`` / ``overwrite=True``; ``value=None`` names the option
    alone: ``--suite`` / ``suite``."""
    if _CLI.get():
        flag = "--" + name.replace("_", "-")
        return flag if value is True or value is None else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}"


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Messages inside name command-line flags (``armor.cli.main`` runs every command in this)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)
