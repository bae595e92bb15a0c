"""The quickstart: a standard and a PGD-AT SmallCNN on the embedded digits data, L∞ ε = 0.2."""
from __future__ import annotations

import time
from pathlib import Path

from .attacks import FGSM, PGD
from .config import TrainConfig
from .eval.robust import evaluate
from .reports import accuracy_rows, format_table, write_json
from .train.trainer import Trainer


def run_demo(out: str = "runs/demo", epochs: int = 30, seed: int = 0, progress: bool | None = None) -> str:
    """Train both models (re-running replaces ``out``) and return the comparison table as text."""
    results, seconds = {}, {}
    for method in ("standard", "pgd_at"):
        cfg = TrainConfig(dataset="digits", model="small_cnn", method=method, eps=0.2, steps=7, epochs=epochs,
                          optimizer="adam", lr=1e-3, seed=seed, out=str(Path(out) / method))
        start = time.perf_counter()
        trainer = Trainer(cfg, overwrite=True, progress=progress)
        trainer.fit()
        seconds[method] = time.perf_counter() - start
        threat = trainer.threat
        attacks = {"fgsm": FGSM(threat), "pgd-20": PGD(threat, steps=20), "pgd-100": PGD(threat, steps=100)}
        results[method] = evaluate(trainer.model, trainer.data.x_test, trainer.data.y_test, attacks)
    write_json(Path(out) / "demo.json", {"threat": {"norm": "linf", "eps": 0.2}, "results": results,
                                         "seconds": seconds})
    header, rows = accuracy_rows(results)
    table = format_table(header, rows)
    (Path(out) / "demo.md").write_text(format_table(header, rows, markdown=True) + "\n")
    n = results["pgd_at"]["n"]
    return (f"digits test set ({n} images), SmallCNN, L∞ ε = 0.2, accuracy in %:\n{table}\n"
            f"(training: standard {seconds['standard']:.0f} s, PGD-AT {seconds['pgd_at']:.0f} s; "
            f"runs in {out}/)")
