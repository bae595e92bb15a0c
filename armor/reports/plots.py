"""PNG plots made from result dicts and stored arrays (never from live models); Agg backend, files only.

Every function returns the path it wrote, or None (with a log line) when matplotlib is not installed or
there is nothing to draw.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..budgets import norm_symbol
from ..io import write_bytes
from ..results import EpsSweep, SweepRecord

log = logging.getLogger("armor")


def write_sweep_csv(sweep: EpsSweep, path: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["norm", "eps", "clean_acc", "worst_case_acc"])
    for row in sweep.rows:
        writer.writerow([sweep.norm, f"{row['eps']:.6g}", f"{row['clean_acc']:.2f}", f"{row['worst_case_acc']:.2f}"])
    write_bytes(path, buffer.getvalue().encode())
    return str(path)


def plot_sweep(sweep: EpsSweep, path: Path, title: str = "") -> Optional[str]:
    """Accuracy vs ε as a PNG; returns None (and logs why) when matplotlib is not installed."""
    plt = _pyplot(path)
    if plt is None:
        return None
    eps = [r["eps"] for r in sweep.rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
    ax.plot(eps, [r["worst_case_acc"] for r in sweep.rows], marker="o")
    ax.set_xlabel(f"ε ({norm_symbol(sweep.norm)})")
    ax.set_ylabel("worst-case accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return str(_save(fig, plt, path, dpi=120))


#: (metrics key, label, line style) of the accuracy curves, drawn when present in any record
CURVES = (
    ("train_robust_acc", "train robust", "-"),
    ("train_acc", "train clean", "-"),
    ("val_robust_acc", "val robust", "-"),
    ("val_clean_acc", "val clean", "--"),
    ("test_robust_acc", "test robust", "-"),
    ("test_clean_acc", "test clean", "--"),
    ("ema_val_robust_acc", "EMA val robust", ":"),
    ("ema_test_robust_acc", "EMA test robust", ":"),
    ("swa_val_robust_acc", "SWA val robust", "-."),
)

# PNG metadata off: smaller files, identical bytes for identical plots
_SAVE = {"metadata": {"Software": None}}


def _pyplot(what: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed; skipping %s (pip install matplotlib)", what)
        return None
    return plt


def _save(fig, plt, path: Path, dpi: int = 100) -> Path:
    """Render to memory, then write atomically (a killed run never leaves half a PNG)."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, **_SAVE)
    finally:
        plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return path


def write_learning_curves(records: Sequence[Dict[str, Any]], path: Path, title: str = "",
                          best_epoch: Optional[int] = None) -> Optional[Path]:
    """Accuracy (%) and LR against epoch from ``metrics.jsonl`` records."""
    plt = _pyplot(path)
    if plt is None or not records:
        return None
    fig, (acc_ax, lr_ax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1))
    for key, label, style in CURVES:
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            acc_ax.plot(xs, ys, style, label=label, marker="." if len(points) < 40 else None)
    if best_epoch is not None:
        acc_ax.axvline(best_epoch, color="grey", lw=0.8, label=f"best epoch {best_epoch}")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.grid(alpha=0.3)
    if acc_ax.get_legend_handles_labels()[0]:
        acc_ax.legend(fontsize=8, ncol=2)
    acc_ax.set_title(title)
    lrs = [(r["epoch"], r["lr"]) for r in records if r.get("lr") is not None]
    if lrs:
        lr_ax.plot(*zip(*lrs), color="black")
    lr_ax.set_ylabel("LR (epoch end)")
    lr_ax.set_xlabel("epoch")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_sweeps(sweeps: Sequence[Tuple[str, EpsSweep]], path: Path) -> Optional[Path]:
    """Worst-case accuracy against ε, one line per (label, sweep)."""
    plt = _pyplot(path)
    if plt is None or not sweeps:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, sweep in sweeps:
        rows = sorted(sweep.rows, key=lambda r: r["eps"])
        ax.plot([r["eps"] for r in rows], [r["worst_case_acc"] for r in rows], marker="o", label=label)
    norms = {s.norm for _, s in sweeps}
    ax.set_xlabel("ε (" + ", ".join(norm_symbol(n) for n in sorted(norms, key=str)) + ")")
    ax.set_ylabel("worst-case accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, path)


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points no other point beats in both coordinates (higher is better), by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(sweep: SweepRecord, path: Path) -> Optional[Path]:
    """A sweep: clean accuracy on x, worst-case accuracy on y, one labelled point per value, the front joined."""
    plt = _pyplot(path)
    if plt is None:
        return None
    param, points = sweep.param, sweep.points
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter([p.clean_acc for p in points], [p.worst_case_acc for p in points], color="tab:blue", zorder=3)
    for p in points:
        label = f"{p.value:g}" if isinstance(p.value, float) else str(p.value)
        ax.annotate(f"{param}={label}", (p.clean_acc, p.worst_case_acc), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    front = sorted((points[i] for i in sweep.pareto), key=lambda p: p.clean_acc)
    ax.plot([p.clean_acc for p in front], [p.worst_case_acc for p in front], color="tab:orange", zorder=2,
            marker="o" if len(front) == 1 else None, label="Pareto front")
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel(f"worst-case accuracy (%), {norm_symbol(sweep.threat['norm'])} ε={sweep.threat['eps']:.3g}")
    ax.set_title(f"{sweep.dataset} {sweep.model}: sweep over {param}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, path, dpi=120)


def plot_tradeoff(points: Sequence[Tuple[str, float, float]], path: Path) -> Optional[Path]:
    """Clean vs worst-case robust accuracy, one dot per (label, clean, robust), the Pareto front joined."""
    plt = _pyplot(path)
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.8))
    xy = [(c, r) for _, c, r in points]
    front = pareto_front(xy)
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "-", color="grey", lw=1, zorder=1,
            label="Pareto front")
    for i, (label, clean, robust) in enumerate(points):
        ax.scatter([clean], [robust], s=40, zorder=2, marker="o" if i in front else "x", label=label)
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("worst-case robust accuracy (%)")
    lo_x = min(c for c, _ in xy)
    ax.set_xlim(max(0, lo_x - 10), 100)
    ax.set_ylim(0, max(10, max(r for _, r in xy) + 10))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, plt, path)


def _image(a: np.ndarray) -> Tuple[np.ndarray, Optional[str]]:
    """(H, W) grey or (H, W, 3) RGB array for imshow, and the colormap to use."""
    if a.shape[0] == 1:
        return a[0], "gray"
    return np.transpose(a, (1, 2, 0)), None


def _signed(a: np.ndarray) -> Tuple[np.ndarray, Optional[str], float]:
    """A signed map (perturbation, gradient) for display: grey → diverging colormap, RGB → shifted to [0, 1]."""
    scale = float(np.abs(a).max()) or 1.0
    if a.shape[0] == 1:
        return a[0], "RdBu_r", scale
    return np.clip(np.transpose(a, (1, 2, 0)) / (2 * scale) + 0.5, 0, 1), None, scale


def _clean_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_examples(fig_data: Dict[str, np.ndarray], path: Path, title: str = "", eps: Optional[float] = None,
                  class_names: Optional[Sequence[str]] = None) -> Optional[Path]:
    """Rows: clean (label, prediction), adversarial (prediction), perturbation; one column per example."""
    plt = _pyplot(path)
    x, x_adv = fig_data["x"], fig_data["x_adv"]
    if plt is None or len(x) == 0:
        return None
    name = (lambda c: str(class_names[c])) if class_names else str
    n = len(x)
    fig, axes = plt.subplots(3, n, figsize=(1.15 * n + 1.2, 4.1), squeeze=False)
    delta = x_adv - x
    scale = float(np.abs(delta).max()) or 1.0
    for j in range(n):
        img, cmap = _image(x[j])
        axes[0, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
        ok = fig_data["pred_clean"][j] == fig_data["y"][j]
        axes[0, j].set_title(f"{name(fig_data['y'][j])} → {name(fig_data['pred_clean'][j])}", fontsize=9,
                             color="black" if ok else "crimson")
        img, cmap = _image(x_adv[j])
        axes[1, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
        ok = fig_data["pred_adv"][j] == fig_data["y"][j]
        axes[1, j].set_title(f"→ {name(fig_data['pred_adv'][j])}", fontsize=9, color="black" if ok else "crimson")
        d, cmap, _ = _signed(delta[j])
        axes[2, j].imshow(d, cmap=cmap, vmin=-scale if cmap else 0, vmax=scale if cmap else 1)
        for i in range(3):
            _clean_axes(axes[i, j])
    for i, label in enumerate(("clean", "adversarial", "perturbation")):
        axes[i, 0].set_ylabel(label, fontsize=9)
    note = f" (ε = {eps:.3g}; red = wrong)" if eps is not None else " (red = wrong)"
    fig.suptitle(title + note, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_saliency(images: np.ndarray, maps: Sequence[Tuple[str, np.ndarray]], path: Path) -> Optional[Path]:
    """Row 0: the inputs; then one row of input gradients per (label, maps), each map scaled to its own max."""
    plt = _pyplot(path)
    if plt is None or len(images) == 0 or not maps:
        return None
    n, rows = len(images), 1 + len(maps)
    fig, axes = plt.subplots(rows, n, figsize=(1.15 * n + 1.6, 1.3 * rows + 0.5), squeeze=False)
    for j in range(n):
        img, cmap = _image(images[j])
        axes[0, j].imshow(img, cmap=cmap, vmin=0, vmax=1)
        _clean_axes(axes[0, j])
        for i, (_, grads) in enumerate(maps, start=1):
            g, cmap, scale = _signed(grads[j])
            axes[i, j].imshow(g, cmap=cmap, vmin=-scale if cmap else 0, vmax=scale if cmap else 1)
            _clean_axes(axes[i, j])
    axes[0, 0].set_ylabel("input", fontsize=9)
    for i, (label, _) in enumerate(maps, start=1):
        axes[i, 0].set_ylabel(label, fontsize=9)
    fig.suptitle("input gradient of the loss (red +, blue −)", fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_corruptions(clean: np.ndarray, corrupted: Sequence[Tuple[str, np.ndarray]], path: Path, severity: int,
                     title: str = "") -> Optional[Path]:
    """A grid of one image: the clean one, then one tile per (corruption name, corrupted image); all (C, H, W)."""
    plt = _pyplot(path)
    if plt is None or not corrupted:
        return None
    tiles = [("clean", clean)] + list(corrupted)
    cols = min(len(tiles), 4 if len(tiles) <= 16 else 6)
    rows = -(-len(tiles) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.85 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, img) in zip(axes.flat, tiles):
        shown, cmap = _image(np.clip(img, 0, 1))
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name.replace("_", " "), fontsize=8)
    fig.suptitle((title + ": " if title else "") + f"severity {severity} of 5", fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)
