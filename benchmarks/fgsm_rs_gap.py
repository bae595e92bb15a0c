"""FGSM-RS vs PGD-AT on digits over several seeds, side by side in one run.

    python benchmarks/fgsm_rs_gap.py [--seeds 0 1 2 3 4] [--epochs 30]

Both methods train the same SmallCNN with the same settings (Adam 1e-3, 30 epochs, L∞ ε = 0.2, best
checkpoint by robust validation accuracy); PGD-AT uses PGD-7, FGSM-RS one step of α = 1.25·ε from a random
start. Prints each seed's test PGD-20 accuracy, the gap, and the whole-run time ratio (validation included).
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

from armor import TrainConfig
from armor.training import Trainer


def run(method: str, seed: int, epochs: int, root: str) -> tuple[float, float, float]:
    cfg = TrainConfig(method=method, eps=0.2, epochs=epochs, seed=seed, out=f"{root}/{method}_{seed}",
                      eval_attacks=["pgd"], eval_steps=20)
    start = time.perf_counter()
    summary = Trainer(cfg, overwrite=True, progress=False).fit()
    test = summary.test
    return test.clean_acc, test.acc("pgd-20"), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gaps, ratios = [], []
    print("seed  fgsm_rs clean/pgd-20  pgd_at clean/pgd-20  gap  time ratio")
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            f_clean, f_pgd, f_s = run("fgsm_rs", seed, args.epochs, root)
            p_clean, p_pgd, p_s = run("pgd_at", seed, args.epochs, root)
            gaps.append(p_pgd - f_pgd)
            ratios.append(f_s / p_s)
            print(f"{seed:4d}  {f_clean:6.1f} / {f_pgd:5.1f}       {p_clean:6.1f} / {p_pgd:5.1f}     "
                  f"{gaps[-1]:4.1f}  {ratios[-1]:.2f}", flush=True)
    print(f"mean gap {statistics.mean(gaps):.1f} points (max {max(gaps):.1f}); "
          f"FGSM-RS whole-run time {statistics.median(ratios):.2f}× PGD-AT's (median)")


if __name__ == "__main__":
    main()
