"""A scripted catastrophic overfitting for the guard's tests: the guard's monitor PGD accuracy is made to read 1 %
at the given epochs and a healthy 60 % otherwise, whatever the weights are (with ``guard_drop`` below the run's train
robust accuracy, the guard fires at those epochs). It depends only on the epoch, so a killed and resumed run sees
exactly what an uninterrupted one sees.

The kill-and-resume tests, which need a process of their own, call :func:`install` in it before the command
(``launch.armor_run(..., before=("collapse", "install", ([3],)))``); ``python tests/collapse.py EPOCHS ARMOR-ARGS...``
does the same from a shell (the collapse at the comma-separated 1-based ``EPOCHS``).
"""
from __future__ import annotations

import sys
from typing import Iterable

from armor.training.guards import CatastrophicOverfittingGuard


def install(epochs: Iterable[int], monkeypatch=None) -> None:
    """Script the collapse (with pytest's ``monkeypatch`` when given, else for the rest of the process)."""
    collapse = set(epochs)
    on_epoch_end = CatastrophicOverfittingGuard.on_epoch_end

    def remember_epoch(self, ctx, epoch, record):
        self.scripted_epoch = epoch + 1
        on_epoch_end(self, ctx, epoch, record)

    def monitor_acc(self, ctx, threat):
        return 1.0 if self.scripted_epoch in collapse else 60.0

    for name, fn in (("on_epoch_end", remember_epoch), ("monitor_acc", monitor_acc)):
        if monkeypatch is None:
            setattr(CatastrophicOverfittingGuard, name, fn)
        else:
            monkeypatch.setattr(CatastrophicOverfittingGuard, name, fn)


if __name__ == "__main__":
    from armor.cli import main

    install(int(e) for e in sys.argv[1].split(","))
    sys.exit(main(sys.argv[2:]))
