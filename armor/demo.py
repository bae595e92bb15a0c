"""The quickstart: a standard and a PGD-AT SmallCNN on the embedded digits data, L∞ ε = 0.2."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict

from .attacks import FGSM, PGD
from .config import TrainConfig
from .eval.robust import evaluate
from .io import write_text
from .reports import accuracy_rows, format_table
from .results import Comparison
from .training.trainer import Trainer


def demo_configs(out: str = "runs/demo", epochs: int = 30, seed: int = 0) -> Dict[str, TrainConfig]:
    """The two runs of the demo: method → its config (``out/<method>``)."""
    return {method: TrainConfig(dataset="digits", model="small_cnn", method=method, eps=0.2, epochs=epochs,
                                optimizer="adam", lr=1e-3, seed=seed, out=str(Path(out) / method), **options)
            for method, options in (("standard", {}), ("pgd_at", {"steps": 7}))}


def run_demo(out: str = "runs/demo", epochs: int = 30, seed: int = 0, progress: bool | None = None) -> str:
    """Train both models (re-running replaces ``out``) and return the comparison table as text."""
    results, seconds = {}, {}
    threat = None
    for method, cfg in demo_configs(out, epochs, seed).items():
        start = time.perf_counter()
        trainer = Trainer(cfg, overwrite=True, progress=progress)
        trainer.fit()
        seconds[method] = time.perf_counter() - start
        threat = trainer.threat
        attacks = {"fgsm": FGSM(threat), "pgd-20": PGD(threat, steps=20), "pgd-100": PGD(threat, steps=100)}
        results[method] = evaluate(trainer.model, trainer.data.x_test, trainer.data.y_test, attacks)
    n = results["pgd_at"].n
    title = f"digits test set ({n} images), SmallCNN, L∞ ε = 0.2, accuracy in %"
    Comparison(title, threat.to_dict(), results, seconds).write(Path(out) / "demo.json")
    header, rows = accuracy_rows(results)
    table = format_table(header, rows)
    write_text(Path(out) / "demo.md", format_table(header, rows, markdown=True) + "\n")
    import torch

    return (f"{title}:\n{table}\n"
            f"(training: standard {seconds['standard']:.0f} s, PGD-AT {seconds['pgd_at']:.0f} s on "
            f"{torch.get_num_threads()} torch threads; runs in {out}/)")
