"""The evaluation engine side by side in one process: the outer-loop suite vs the old batch-by-batch one, other
suites vs the standard one, and torchattacks' AutoAttack on the same model and points.

    python benchmarks/suite_speed.py --checkpoint RUN/best.pt [--n 1000] [--batch-size 256] [--suites standard quick]
                                     [--no-old] [--no-torchattacks] [--steps S] [--queries Q]

- **old vs new**: "old" is the engine before the outer loop — every batch runs the whole suite over its own
  shrinking sub-batches (here: one armor evaluation per batch, merged; the same attacks and per-example random
  streams, so the per-example results must agree and only the batching differs); "new" runs each attack once over
  all still-robust examples compacted into full batches. Per-attack times and the worst case of each are printed,
  with the time ratio new / old.
- **another suite vs standard** (``--suites standard NAME``): forward+backward passes (a gradient pass counts twice), worst case, and the ratios.
  ``--standard-record RUN/eval_standard.json`` takes the standard suite's result from an ``armor eval`` record of the
  same checkpoint (full budget, the same first ``--n`` test points and seed) instead of running it again.
- **torchattacks' AutoAttack** (standard version, same ε, norm and points) when torchattacks is installed: its time
  and robust accuracy, and the ratio armor standard / AutoAttack.

Times are wall-clock on whatever the machine is doing; compare only the ratios of one run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's armor, not an installed one

from armor.attacks.suites import suite_attacks  # noqa: E402
from armor.checkpoints import load_model  # noqa: E402
from armor.eval import evaluate  # noqa: E402
from armor.results import Evaluation, EvaluationRecord, read_record  # noqa: E402


def batch_by_batch(model, x, y, attacks, batch_size: int, seed: int) -> Evaluation:
    """The pre-outer-loop engine: each batch runs the whole suite over its own shrinking sub-batches."""
    parts = [evaluate(model, x[s:s + batch_size], y[s:s + batch_size], attacks, batch_size=batch_size,
                      mode="ensemble", seed=seed, first_index=s) for s in range(0, len(x), batch_size)]
    merged = Evaluation.merge(parts)
    for label, a in merged.attacks.items():  # the batches ran one after the other: their times add up
        a.seconds = sum(p.attacks[label].seconds or 0.0 for p in parts)
    return merged


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def describe(name: str, res: Evaluation, seconds: float) -> str:
    per_attack = ", ".join((f"{k} {a.seconds:.1f} s → " if a.seconds is not None else f"{k} → ") + f"{res.acc(k):.1f} %"
                           for k, a in res.attacks.items())
    return (f"{name:<22} {seconds:7.1f} s  clean {res.clean_acc:5.1f} %  worst case {res.worst_case_acc:5.1f} %  "
            f"passes {res.attack_passes:>10,}  ({per_attack})")


def torchattacks_autoattack(model, x, y, threat, batch_size: int, seed: int):
    try:
        import torchattacks
    except ImportError:
        return None
    norm = {"linf": "Linf", "l2": "L2"}[threat.norm]
    attack = torchattacks.AutoAttack(model, norm=norm, eps=threat.eps, version="standard",
                                     n_classes=int(model(x[:1]).shape[1]), seed=seed)
    robust = 0
    start = time.perf_counter()
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        x_adv = attack(xb, yb)
        with torch.no_grad():
            robust += int((model(x_adv).argmax(1) == yb).sum())
    return 100.0 * robust / len(x), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--suites", nargs="+", default=["standard"])
    parser.add_argument("--steps", type=int, default=None, help="override every suite's steps (a reduced run)")
    parser.add_argument("--queries", type=int, default=None, help="override every suite's Square queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="where mnist.npz etc. live (default: as the run had it)")
    parser.add_argument("--no-old", dest="old", action="store_false", help="skip the batch-by-batch engine")
    parser.add_argument("--no-torchattacks", dest="torchattacks", action="store_false")
    parser.add_argument("--standard-record", type=Path, default=None,
                        help="an armor eval record of the standard suite on this checkpoint, at full budget on the "
                             "same --n test points and --seed: its result stands in for running the suite")
    parser.add_argument("--json", type=Path, default=None, help="append a summary line (JSON) to this file")
    args = parser.parse_args()

    model, cfg, _ = load_model(args.checkpoint, device="cpu")
    data = cfg.load_data(args.data_dir)
    x, y = data.x_test[:args.n], data.y_test[:args.n]
    threat = cfg.threat
    print(f"{cfg.dataset} {cfg.method} {cfg.model}, {threat}, {len(x)} test points, batch {args.batch_size}, "
          f"{torch.get_num_threads()} thread(s)")
    results = {}
    if args.standard_record is not None:
        record = read_record(args.standard_record, EvaluationRecord)
        budget_cut = [r for r in record.reduced if not r.endswith("test examples")]  # "1000 of the 10000 ..." is --n
        same = (record.suite == "standard" and not budget_cut and record.result.n == len(x)
                and record.seed == args.seed and record.split == "test"
                and Path(record.source.get("checkpoint", "")).resolve() == Path(args.checkpoint).resolve())
        if not same:
            raise SystemExit(f"{args.standard_record}: not the full standard suite on this checkpoint's first "
                             f"{len(x)} test points with seed {args.seed}")
        results["standard"] = record.result
        print(describe("standard (recorded)", record.result, sum(a.seconds or 0.0 for a in
                                                                    record.result.attacks.values())), flush=True)
    for suite in args.suites:
        if suite in results:
            continue
        attacks = suite_attacks(suite, threat, steps=args.steps, queries=args.queries)
        print(f"{suite}: " + "; ".join(repr(a) for a in attacks.values()), flush=True)
        new, t_new = timed(lambda: evaluate(model, x, y, attacks, batch_size=args.batch_size, mode="ensemble",
                                            seed=args.seed))
        results[suite] = new
        print(describe(f"{suite} (outer loop)", new, t_new), flush=True)
        if args.old:
            old, t_old = timed(lambda: batch_by_batch(model, x, y, attacks, args.batch_size, args.seed))
            print(describe(f"{suite} (batch by batch)", old, t_old), flush=True)
            differ = sum(a != b for a, b in zip(new.broken_by_example, old.broken_by_example))
            print(f"  new / old time {t_new / t_old:.2f}; worst case new − old "
                  f"{new.worst_case_acc - old.worst_case_acc:+.2f} points; {differ} example(s) labelled differently",
                  flush=True)
    for suite, other in results.items():
        if suite != "standard" and "standard" in results:
            std = results["standard"]
            print(f"{suite} / standard passes {other.attack_passes / std.attack_passes:.3f}; worst case {suite} − standard "
                  f"{other.worst_case_acc - std.worst_case_acc:+.2f} points", flush=True)
            if args.json is not None:
                line = {"checkpoint": str(args.checkpoint), "n": len(x), "seed": args.seed, "suite": suite,
                        "standard_worst": std.worst_case_acc, "worst": other.worst_case_acc,
                        "standard_passes": std.attack_passes, "passes": other.attack_passes,
                        "passes_ratio": round(other.attack_passes / std.attack_passes, 4),
                        "gap": round(other.worst_case_acc - std.worst_case_acc, 2),
                        "per_attack": {k: other.acc(k) for k in other.attacks},
                        "standard_per_attack": {k: std.acc(k) for k in std.attacks}}
                with open(args.json, "a") as f:
                    f.write(json.dumps(line) + "\n")
    if args.torchattacks:
        out = torchattacks_autoattack(model, x, y, threat, args.batch_size, args.seed)
        if out is None:
            print("torchattacks is not installed: no AutoAttack comparison")
        else:
            acc, seconds = out
            line = f"torchattacks AutoAttack (standard) {seconds:7.1f} s  robust {acc:5.1f} %"
            if "standard" in results:
                std = results["standard"]
                spent = sum(a.seconds for a in std.attacks.values())
                line += (f"; armor standard / AutoAttack time {spent / seconds:.2f} (attack time only), worst case "
                         f"armor − AutoAttack {std.worst_case_acc - acc:+.2f} points")
            print(line)


if __name__ == "__main__":
    main()
