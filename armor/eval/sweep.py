"""Accuracy against ε: one ensemble evaluation per budget → an :class:`armor.results.EpsSweep` record, written
as JSON + CSV (+ PNG when matplotlib exists)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, List, Mapping

import torch
from torch import nn

from ..attacks import Attack
from ..results import EpsSweep
from ..threat import ThreatModel
from .robust import evaluate

log = logging.getLogger(__name__)


def eps_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, eps_values: Iterable,
              make_attacks: Callable[[ThreatModel], Mapping[str, Attack]], batch_size: int = 256,
              seed: int = 0) -> EpsSweep:
    """``make_attacks(threat)`` builds the attacks for each budget; worst case in ensemble mode."""
    rows: List[dict] = []
    labels: List[str] = []
    for eps in eps_values:
        scaled = threat.scaled(eps)
        attacks = make_attacks(scaled)
        labels = list(attacks)
        res = evaluate(model, x, y, attacks, batch_size=batch_size, mode="ensemble", seed=seed)
        rows.append({"eps": scaled.eps, "worst_case_acc": res.worst_case_acc, "clean_acc": res.clean_acc,
                     "broken_by": res.broken_by})
        log.info("ε = %.4g: worst case %.1f %%", scaled.eps, res.worst_case_acc)
    return EpsSweep(threat.norm, len(x), rows, labels)


def write_sweep(sweep: EpsSweep, stem: str | Path, title: str = "") -> List[str]:
    """``stem``.json, ``stem``.csv and, if matplotlib imports, ``stem``.png; returns the paths written."""
    from ..reports.plots import plot_sweep, write_sweep_csv

    stem = Path(stem)
    sweep.write(stem.with_suffix(".json"))
    paths = [str(stem.with_suffix(".json")), write_sweep_csv(sweep, stem.with_suffix(".csv"))]
    png = plot_sweep(sweep, stem.with_suffix(".png"), title)
    return paths + ([png] if png else [])
