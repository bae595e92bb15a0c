"""The one exception type for user mistakes.

A ``UserError`` carries a single line that names the bad value and what is allowed.
The CLI prints it and exits with status 2; library callers can catch it.
"""
from __future__ import annotations

import difflib
from typing import Iterable


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
