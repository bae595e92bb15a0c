"""Writers for a :class:`~armor.results.SweepRecord`: JSON, CSV, Markdown and a Pareto plot."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, List

from ..budgets import norm_symbol
from ..io import write_text
from ..results import SweepRecord
from .table import format_table


def _value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def sweep_rows(sweep: SweepRecord) -> tuple[List[str], List[List[str]]]:
    param = sweep.param
    attack_names = list(sweep.points[0].attacks) if sweep.points else []
    header = [param] + (["method"] if param != "method" else []) + ["clean"] + attack_names \
        + ["worst case", "pareto"]
    rows = []
    for i, p in enumerate(sweep.points):
        row = [_value(p.value)]
        row += [p.method] if param != "method" else []
        row += [f"{p.clean_acc:.1f}"] + [f"{p.attacks[a]:.1f}" for a in attack_names]
        row += [f"{p.worst_case_acc:.1f}", "*" if i in sweep.pareto else ""]
        rows.append(row)
    return header, rows


def write_sweep(sweep: SweepRecord, out: str | Path, plot: bool = True) -> Dict[str, str]:
    """``sweep.json``, ``sweep.csv``, ``sweep.md`` and (with matplotlib) ``pareto.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "md": out / "sweep.md"}
    sweep.write(paths["json"])
    header, rows = sweep_rows(sweep)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header] + rows)
    write_text(paths["csv"], buffer.getvalue())
    threat = sweep.threat
    md = (f"Sweep over `{sweep.param}` — {sweep.dataset}, {sweep.model}, accuracy in % on the test set; "
          f"worst case over the attacks at {norm_symbol(threat['norm'])} ε = {threat['eps']:.4g}; * = Pareto front.\n\n"
          + format_table(header, rows, markdown=True) + "\n")
    write_text(paths["md"], md)
    if plot:
        from .plots import plot_pareto

        path = plot_pareto(sweep, out / "pareto.png")
        if path:
            paths["png"] = path
    return {k: str(v) for k, v in paths.items()}
