"""Catastrophic overfitting of FGSM-RS on MNIST, and the guard catching it.

    python benchmarks/catastrophic_overfitting.py [--epochs 10] [--train-size N] [--out runs/bench_co]

MNIST (../shared/data/mnist.npz), L∞ ε = 0.3, FGSM-RS with α = 0.375 and the random start clamped into
the image box, Wong et al.'s small CNN (tiny_cnn), Adam with a cyclic (one-cycle) LR peaking at 5e-3,
batch 100. The same run is trained twice, side by side: with the guard off (to show the collapse: PGD-10
accuracy on the monitor batch falls to ~0 while the FGSM training accuracy stays high) and with
``guard: rollback`` (the run stops at the collapse and keeps the last good weights). Prints both
trajectories and the test accuracy each run ends with.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from armor import TrainConfig
from armor.attacks import PGD
from armor.eval import evaluate
from armor.io import write_json
from armor.training import Trainer
from armor.io import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_co")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    base = dict(dataset="mnist", model="tiny_cnn", method="fgsm_rs", eps=0.3, step_size=0.375, optimizer="adam",
                lr=args.lr, schedule="onecycle", batch_size=100, epochs=args.epochs, train_size=args.train_size,
                val_size=1000, test_size=args.test_size, eval_attacks=["pgd"], eval_steps=10, seed=args.seed,
                best_by="robust")
    report = {}
    for guard in ("off", "rollback"):
        cfg = TrainConfig(**base, guard=guard, out=str(Path(args.out) / f"guard_{guard}"))
        trainer = Trainer(cfg, overwrite=True, progress=False)
        if guard == "off":  # watch the monitor batch without acting, to show the collapse
            from armor.training.guards import CatastrophicOverfittingGuard

            watcher = CatastrophicOverfittingGuard("stop", drop=101.0, batch=cfg.guard_batch, steps=cfg.guard_steps)
            trainer.callbacks.append(watcher)
        trainer.fit()
        model = trainer.model.eval()  # best.pt: the epoch of highest robust validation accuracy
        last = evaluate(model, trainer.data.x_test, trainer.data.y_test, {"pgd-10": PGD(trainer.threat, steps=10)})
        records = read_jsonl(trainer.out / "metrics.jsonl")
        report[guard] = {"records": records, "stop_reason": trainer.stop_reason, "test_best": last.to_dict()}
        print(f"\nguard {guard}:")
        print("epoch  train FGSM acc  monitor PGD-10 acc  val PGD-10 acc")
        for r in records:
            print(f"{r['epoch']:5d}  {r['train_robust_acc']:14.1f}  {r.get('guard_pgd_acc', float('nan')):18.1f}"
                  f"  {r.get('val_robust_acc', float('nan')):14.1f}{'  ← ' + r['guard'] if 'guard' in r else ''}")
        print(f"stop reason: {trainer.stop_reason}")
        print(f"test (best.pt, epoch {trainer.best['epoch']}): clean {last.clean_acc:.1f}, "
              f"PGD-10 {last.acc('pgd-10'):.1f}")
    write_json(Path(args.out) / "co.json", report)


if __name__ == "__main__":
    main()
