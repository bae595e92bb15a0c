"""Time to robustness on MNIST ε = 0.3: training + the standard suite on the 1000 fixed test points, wall clock.

    python benchmarks/time_to_robustness.py --threads 2                       # the fast recipe, then PGD-AT's
    python benchmarks/time_to_robustness.py --threads 2 --only fast           # just the fast recipe

Needs a quiet machine: it sets ``--threads`` torch threads (default 2, the whole 2-core machine) and runs the fast
recipe (``--recipe``, default configs/mnist_pgd2s_guard.yaml) and then configs/mnist_pgd_at.yaml, one after the
other in this process. For each: the training time (the sum of its epochs' seconds: training, validation, guard — the record's
``train_seconds``; the wall time of the whole ``train`` call, which adds setup, a cost probe and a PGD-20 final test on
the 10 000 test images, is printed too) and the wall time of the standard suite (APGD-CE, APGD-T, Square 5000) on the
first 1000 test images without the sanity checks, the suite's worst case, and whether training + suite stayed within
``--budget-min`` minutes (default 10) at a worst case ≥ ``--target`` % (default 88). Runs go to
``runs/time_to_robustness/``; the table also goes to ``benchmarks/results/time_to_robustness.json``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch

from armor.api import train
from armor.config import TrainConfig
from armor.eval.run import evaluate_checkpoint
from armor.io import write_json
from armor.reports import format_table

ROOT = Path(__file__).resolve().parents[1]


def timed(recipe: Path, out_root: Path, suite_n: int) -> dict:
    # the recipe's own final test (PGD on the 10 000 test images) is not part of the figure: PGD-20 keeps it short
    cfg = TrainConfig.from_yaml(recipe, {"out": str(out_root / recipe.stem), "eval_steps": 20})
    start = time.perf_counter()
    record = train(cfg, overwrite=True, progress=False).record
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    suite = evaluate_checkpoint(out_root / recipe.stem / "best.pt", suite="standard", n=suite_n, checks=False,
                                out=str(out_root / recipe.stem / "eval_standard.json"))
    suite_s = time.perf_counter() - start
    return {"recipe": recipe.stem, "train_wall_s": round(train_s, 1), "train_epochs_s": record.train_seconds,
            "suite_s": round(suite_s, 1), "total_min": round((record.train_seconds + suite_s) / 60, 2),
            "clean_acc": record.test.clean_acc, "worst_case_acc": suite.result.worst_case_acc,
            "guard_events": record.guard_events}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recipe", type=Path, default=ROOT / "configs" / "mnist_pgd2s_guard.yaml")
    p.add_argument("--only", choices=["fast", "pgd_at"], default=None)
    p.add_argument("--suite-n", type=int, default=1000)
    p.add_argument("--budget-min", type=float, default=10.0)
    p.add_argument("--target", type=float, default=88.0)
    p.add_argument("--out", type=Path, default=Path("runs/time_to_robustness"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipes = {"fast": args.recipe, "pgd_at": ROOT / "configs" / "mnist_pgd_at.yaml"}
    rows = []
    for key, recipe in recipes.items():
        if args.only in (None, key):
            rows.append(timed(recipe, args.out, args.suite_n))
            print(rows[-1], flush=True)
    table = [[r["recipe"], f"{r['train_epochs_s']:.0f} ({r['train_wall_s']:.0f})", f"{r['suite_s']:.0f}",
              f"{r['total_min']:.1f}",
              f"{r['clean_acc']:.1f}", f"{r['worst_case_acc']:.1f}",
              "yes" if r["total_min"] <= args.budget_min and r["worst_case_acc"] >= args.target else "no"]
             for r in rows]
    print(f"\n{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, one run after the other")
    print(format_table(["recipe", "train s (train call)", "suite s", "total min", "clean", "worst case",
                        f"≤ {args.budget_min:g} min at ≥ {args.target:g} %"], table))
    if len(rows) == 2:
        print(f"fast / PGD-AT: training {rows[0]['train_epochs_s'] / rows[1]['train_epochs_s']:.2f}×, "
              f"training + suite {rows[0]['total_min'] / rows[1]['total_min']:.2f}×")
    write_json(ROOT / "benchmarks" / "results" / "time_to_robustness.json",
               {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
