"""Does robust overfitting appear at this scale? Per-epoch val/test robust accuracy of a long PGD-AT run.

A step-decay (piecewise) schedule on a Fashion-MNIST subset from ``../shared/data`` with a small CNN; every
epoch logs PGD robust accuracy on a held-out validation split and on a fixed test subset, for the raw
weights and their EMA. Prints the best epoch by validation, the test robust accuracy at that epoch and at
the last one, and calls robust overfitting "observed" only when the drop exceeds ``--threshold`` points
(about 3: the sampling noise of a few hundred test images is ±2-3 points). The claim is not tuned: read the numbers.

    python benchmarks/robust_overfitting.py                  # defaults below (sized for ~20 min on 2 busy CPU cores)
    python benchmarks/robust_overfitting.py --epochs 6 --train-size 300   # a quick smoke run
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from armor import TrainConfig, UserError
from armor.training import Trainer
from armor.io import read_jsonl


def summarise(records, prefix: str = "") -> dict:
    """Best epoch by validation robust accuracy (ties → clean) and the test robust accuracy there and at the end."""
    val_r, val_c, test_r = f"{prefix}val_robust_acc", f"{prefix}val_clean_acc", f"{prefix}test_robust_acc"
    rows = [r for r in records if val_r in r and test_r in r]
    best = max(rows, key=lambda r: (r[val_r], r[val_c]))
    peak = max(rows, key=lambda r: r[test_r])
    last = rows[-1]
    return {"best_epoch": best["epoch"], "test_at_best": best[test_r], "last_epoch": last["epoch"],
            "test_at_last": last[test_r], "gap": best[test_r] - last[test_r], "peak_test_epoch": peak["epoch"],
            "peak_test": peak[test_r]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--train-size", type=int, default=500)
    p.add_argument("--val-size", type=int, default=200)
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eps", default="0.1")
    p.add_argument("--steps", type=int, default=5, help="PGD steps of training")
    p.add_argument("--val-steps", type=int, default=5, help="PGD steps of per-epoch val/test evaluation")
    p.add_argument("--optimizer", default="adam", help="adam or sgd (momentum 0.9)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=8, help="small_cnn width")
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--threshold", type=float, default=3.0, help="points of best-minus-last to call it observed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench_robust_overfitting")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    cfg = TrainConfig(dataset=args.dataset, train_size=args.train_size, val_size=args.val_size,
                      test_size=args.test_size, model="small_cnn", model_options={"width": args.width},
                      method="pgd_at", eps=args.eps, steps=args.steps, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=args.optimizer, lr=args.lr, momentum=0.9,
                      weight_decay=5e-4 if args.optimizer == "sgd" else 0.0, schedule="piecewise",
                      val_steps=args.val_steps, test_every=1, ema_decay=args.ema_decay, eval_attacks=["pgd"],
                      eval_steps=20, seed=args.seed, device="cpu", out=args.out)
    start = time.perf_counter()
    try:
        summary = Trainer(cfg, overwrite=True, progress=False).fit()
    except UserError as exc:  # e.g. no fashion_mnist.npz here
        print(f"robust_overfitting: {exc}", file=sys.stderr)
        return 2
    minutes = (time.perf_counter() - start) / 60
    records = read_jsonl(Path(args.out) / "metrics.jsonl")

    print(f"{args.dataset}: {args.train_size} train / {args.val_size} val / {args.test_size} test, "
          f"small_cnn(width {args.width}), PGD-{args.steps} AT, L∞ ε={args.eps}, {args.optimizer} lr {args.lr} piecewise "
          f"(÷10 at 50 % and 75 %), {args.epochs} epochs, EMA {args.ema_decay}; val/test robust = PGD-{args.val_steps}")
    print(f"{'epoch':>5} {'lr':>7} {'train_rob':>9} {'val_rob':>7} {'test_rob':>8} {'val_clean':>9} "
          f"{'ema_val':>7} {'ema_test':>8}")
    for r in records:
        print(f"{r['epoch']:5d} {r['lr']:7.4f} {r['train_robust_acc']:9.1f} {r['val_robust_acc']:7.1f} "
              f"{r['test_robust_acc']:8.1f} {r['val_clean_acc']:9.1f} {r.get('ema_val_robust_acc', float('nan')):7.1f} "
              f"{r.get('ema_test_robust_acc', float('nan')):8.1f}")
    for label, prefix in (("raw weights", ""), (f"EMA {args.ema_decay}", "ema_")):
        s = summarise(records, prefix)
        verdict = "observed" if s["gap"] > args.threshold else f"not observed (gap ≤ {args.threshold:g} points)"
        print(f"{label}: best epoch by val {s['best_epoch']}: test robust {s['test_at_best']:.1f} %; last epoch "
              f"{s['last_epoch']}: {s['test_at_last']:.1f} %; gap {s['gap']:+.1f} points → robust overfitting "
              f"{verdict}; highest test robust {s['peak_test']:.1f} % at epoch {s['peak_test_epoch']}")
    final = summary.test.acc("pgd-20")
    print(f"best.pt (epoch {summary.best_epoch}) on the {args.test_size} test images: clean "
          f"{summary.test.clean_acc:.1f} %, PGD-20 {final:.1f} %; {minutes:.1f} min; curves in "
          f"{args.out}/learning_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
