"""CSV and PNG writers made from result dicts (never from live models)."""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Dict, Optional

from ..train.checkpoint import atomic_write

log = logging.getLogger(__name__)


def write_sweep_csv(sweep: Dict, path: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["norm", "eps", "clean_acc", "worst_case_acc"])
    for row in sweep["rows"]:
        writer.writerow([sweep["norm"], f"{row['eps']:.6g}", f"{row['clean_acc']:.2f}", f"{row['worst_case_acc']:.2f}"])
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue().encode()))
    return str(path)


def plot_sweep(sweep: Dict, path: Path, title: str = "") -> Optional[str]:
    """Accuracy vs ε as a PNG; returns None (and logs why) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no plot, the JSON and CSV hold the same numbers")
        return None
    eps = [r["eps"] for r in sweep["rows"]]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    ax.plot(eps, [r["worst_case_acc"] for r in sweep["rows"]], marker="o")
    ax.set_xlabel(f"ε ({'L∞' if sweep['norm'] == 'linf' else 'L2'})")
    ax.set_ylabel("worst-case accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
