"""Writers for a sweep result (``armor.train.sweep.run_sweep``): JSON, CSV, Markdown and a Pareto plot."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List

from ..train.checkpoint import atomic_write
from .json import write_json
from .table import format_table


def sweep_rows(sweep: Dict[str, Any]) -> tuple[List[str], List[List[str]]]:
    param = sweep["param"]
    attack_names = list(sweep["points"][0]["attacks"]) if sweep["points"] else []
    header = [param] + (["method"] if param != "method" else []) + ["clean"] + attack_names + ["robust", "pareto"]
    rows = []
    for i, p in enumerate(sweep["points"]):
        row = [f"{p[param]:g}" if isinstance(p[param], float) else str(p[param])]
        row += [p["method"]] if param != "method" else []
        row += [f"{p['clean_acc']:.1f}"] + [f"{p['attacks'][a]:.1f}" for a in attack_names]
        row += [f"{p['robust_acc']:.1f}", "*" if i in sweep["pareto"] else ""]
        rows.append(row)
    return header, rows


def write_sweep(sweep: Dict[str, Any], out: str | Path, plot: bool = True) -> Dict[str, str]:
    """``sweep.json``, ``sweep.csv``, ``sweep.md`` and (with matplotlib) ``pareto.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "csv": out / "sweep.csv", "md": out / "sweep.md"}
    write_json(paths["json"], sweep)
    header, rows = sweep_rows(sweep)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header] + rows)
    atomic_write(paths["csv"], lambda f: f.write(buffer.getvalue().encode()))
    eps = sweep["threat"]["eps"]
    md = (f"Sweep over `{sweep['param']}` — {sweep['dataset']}, {sweep['model']}, accuracy in % on the test set; "
          f"robust = worst case over the attacks at {sweep['threat']['norm']} ε = {eps:.4g}; * = Pareto front.\n\n"
          + format_table(header, rows, markdown=True) + "\n")
    atomic_write(paths["md"], lambda f: f.write(md.encode()))
    if plot:
        paths["png"] = out / "pareto.png"
        pareto_plot(sweep, paths["png"])
    return {k: str(v) for k, v in paths.items()}


def pareto_plot(sweep: Dict[str, Any], path: str | Path) -> None:
    """Clean accuracy on x, robust accuracy on y, one labelled point per sweep value, front joined."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    param, points = sweep["param"], sweep["points"]
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter([p["clean_acc"] for p in points], [p["robust_acc"] for p in points], color="tab:blue", zorder=3)
    for p in points:
        label = f"{p[param]:g}" if isinstance(p[param], float) else str(p[param])
        ax.annotate(f"{param}={label}", (p["clean_acc"], p["robust_acc"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    front = sorted((points[i] for i in sweep["pareto"]), key=lambda p: p["clean_acc"])
    ax.plot([p["clean_acc"] for p in front], [p["robust_acc"] for p in front], color="tab:orange", zorder=2,
            label="Pareto front")
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"robust accuracy (%), {sweep['threat']['norm']} ε={sweep['threat']['eps']:.3g}")
    ax.set_title(f"{sweep['dataset']} {sweep['model']}: sweep over {param}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue()))
