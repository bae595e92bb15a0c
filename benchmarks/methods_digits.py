"""Every training method on digits, side by side in one run: clean / FGSM / PGD-20 / worst case and time.

    python benchmarks/methods_digits.py [--epochs 30] [--out runs/bench_methods] [--seed 0]

SmallCNN, Adam 1e-3, constant LR, L∞ ε = 0.2, PGD-7 for the multi-step methods, the 397-image digits test
set (1 image = 0.25 points). Free AT runs epochs/m epochs (m = 4 replays) so it makes as many passes as
the others. Prints the FGSM-RS / PGD-AT training-time ratio (goal ≤ 0.5 within 10 points of PGD-AT's
PGD-20), the TRADES β sweep endpoints, and the dummy-class model attacked through its folded output vs
its raw 2C head. Results also go to OUT/methods.json.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from armor import TrainConfig
from armor.attacks import FGSM, PGD
from armor.attacks.transfer import TransferAttack
from armor.eval import evaluate
from armor.io import write_json
from armor.reports import accuracy_rows, format_table
from armor.training import Trainer


def run(label, out, seed, **kw):
    cfg = TrainConfig(dataset="digits", model="small_cnn", eps=0.2, optimizer="adam", lr=1e-3, seed=seed,
                      out=str(Path(out) / label), eval_attacks=["pgd"], **kw)
    start = time.perf_counter()
    trainer = Trainer(cfg, overwrite=True, progress=False)
    step_seconds = []  # time inside the training loop only (no validation, guard or checkpoints)
    train_epoch = trainer.train_epoch

    def timed_epoch(epoch):
        t = time.perf_counter()
        try:
            return train_epoch(epoch)
        finally:
            step_seconds.append(time.perf_counter() - t)

    trainer.train_epoch = timed_epoch
    trainer.fit()
    seconds = time.perf_counter() - start
    model, data, threat = trainer.model.eval(), trainer.data, trainer.threat
    test = evaluate(model, data.x_test, data.y_test, {"fgsm": FGSM(threat), "pgd-20": PGD(threat, steps=20)})
    raw_acc = None
    if kw.get("method") == "dummy":  # the non-adaptive number, kept out of the worst case
        raw = TransferAttack(PGD(threat, steps=20), model.raw)
        raw_acc = evaluate(model, data.x_test, data.y_test, {"raw": raw}).acc("raw")
    logging.getLogger("armor").warning("%s: clean %.1f pgd-20 %.1f (%.0f s)", label, test.clean_acc,
                                       test.acc("pgd-20"), seconds)
    return {"test": test, "pgd20_raw_head": raw_acc, "train_seconds": seconds,
            "train_step_seconds": sum(step_seconds), "stop_reason": trainer.stop_reason}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--replays", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_methods")
    parser.add_argument("--only", default=None, help="comma-separated labels to run, e.g. pgd_at,fgsm_rs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    e = args.epochs
    plan = {
        "standard": dict(method="standard", epochs=e),
        "pgd_at": dict(method="pgd_at", epochs=e),
        "fgsm_rs": dict(method="fgsm_rs", epochs=e),
        f"free (m={args.replays})": dict(method="free", replays=args.replays, epochs=max(1, round(e / args.replays))),
        "mart β=6": dict(method="mart", beta=6.0, epochs=e),
        "trades β=0.1": dict(method="trades", beta=0.1, epochs=e),
        "trades β=1": dict(method="trades", beta=1.0, epochs=e),
        "trades β=6": dict(method="trades", beta=6.0, epochs=e),
        "fgsm_rs onecycle": dict(method="fgsm_rs", schedule="onecycle", epochs=e),
        "dummy": dict(method="dummy", epochs=e),
    }
    if args.only:
        plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
    folder = lambda label: "".join(c for c in label.replace("β=", "beta") if c.isalnum() or c in "._")  # noqa: E731
    results = {label: run(folder(label), args.out, args.seed, **kw) for label, kw in plan.items()}
    header, rows = accuracy_rows({k: r["test"] for k, r in results.items()})
    header += ["pgd-20 raw head", "train-loop s", "run s"]
    for row, res in zip(rows, results.values()):
        raw = res["pgd20_raw_head"]
        row += ["—" if raw is None else f"{raw:.1f}", f"{res['train_step_seconds']:.0f}", f"{res['train_seconds']:.0f}"]
    print(f"digits test set ({next(iter(results.values()))['test'].n} images), SmallCNN, Adam 1e-3, {e} epochs, "
          f"L∞ ε = 0.2, accuracy in %:")
    print(format_table(header, rows))
    pgd = lambda k: results[k]["test"].acc("pgd-20")  # noqa: E731
    ratio = None
    if "fgsm_rs" in results and "pgd_at" in results:
        ratio = results["fgsm_rs"]["train_step_seconds"] / results["pgd_at"]["train_step_seconds"]
        whole = results["fgsm_rs"]["train_seconds"] / results["pgd_at"]["train_seconds"]
        print(f"\nFGSM-RS: {ratio:.2f}× PGD-AT's training-loop time ({whole:.2f}× whole runs), PGD-20 "
              f"{pgd('fgsm_rs'):.1f} vs {pgd('pgd_at'):.1f} ({pgd('fgsm_rs') - pgd('pgd_at'):+.1f} points; "
              f"goal ≤ 0.5× within 10 points)")
    if "trades β=0.1" in results and "trades β=6" in results:
        lo, hi = results["trades β=0.1"], results["trades β=6"]
        lo, hi = lo["test"], hi["test"]
        print(f"TRADES β 0.1 → 6: clean {lo.clean_acc:.1f} → {hi.clean_acc:.1f} "
              f"({lo.clean_acc - hi.clean_acc:+.1f}), PGD-20 {pgd('trades β=0.1'):.1f} → "
              f"{pgd('trades β=6'):.1f} ({pgd('trades β=6') - pgd('trades β=0.1'):+.1f})")
    if "dummy" in results:
        folded, raw = pgd("dummy"), results["dummy"]["pgd20_raw_head"]
        print(f"dummy-class AT: PGD-20 on the folded output {folded:.1f}, through the raw 2C head {raw:.1f} (the "
              f"non-adaptive number overstates robustness by {raw - folded:.1f} points)")
    guarded = {k: r["stop_reason"] for k, r in results.items() if r["stop_reason"]}
    print(f"guard fired: {guarded or 'never'}")
    write_json(Path(args.out) / "methods.json",
               {"epochs": e, "fgsm_rs_time_ratio": ratio,
                "results": {k: {**r, "test": r["test"].to_dict()} for k, r in results.items()}})


if __name__ == "__main__":
    main()
