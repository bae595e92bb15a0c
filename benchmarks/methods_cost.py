"""What each training method costs relative to standard training, side by side on one model and one minibatch.

    OMP_NUM_THREADS=1 python benchmarks/methods_cost.py [--data digits mnist] [--batches 30] [--out FILE.json]

For every method (its defaults, plus the PGD step counts people compare: PGD-2, PGD-10, TRADES-10) the training step —
the method's forward and backward passes, the weight update and the optimizer step, every replay for Free AT — is timed
against a standard training step on a copy of the same model and the same minibatch, **interleaved** (method, standard,
method, standard, ...; one untimed warm-up pair), exactly as the trainer's end-of-run cost probe does
(:mod:`armor.training.cost`). Prints per method the forward+backward passes per example it states
(``Method.passes``, checked against a count in tests/test_methods.py) and the measured wall-time ratio (median of
the per-pair ratios, with the quartiles). digits: SmallCNN, batch 128, ε = 0.2; MNIST: tiny_cnn, batch 100, ε = 0.3
(needs ../shared/data/mnist.npz). Free AT's ratio is per minibatch with its m = 4 replays, i.e. per epoch (it is
meant to run epochs/m epochs).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List

import torch

from armor.accel import Precision
from armor.checkpoints import model_spec
from armor.config import TrainConfig
from armor.io import write_json
from armor.methods import create_method
from armor.models import build_model
from armor.reports import format_table
from armor.training.cost import probe_wall_ratio

#: (label, method, options): each method at its defaults, and the step counts the README compares
SETTINGS = [("standard", "standard", {}), ("fgsm_rs", "fgsm_rs", {}), ("n_fgsm", "n_fgsm", {}),
            ("grad_align", "grad_align", {}), ("free (m=4)", "free", {}), ("pgd_at PGD-2", "pgd_at", {"steps": 2}),
            ("pgd_at PGD-7", "pgd_at", {}), ("pgd_at PGD-10", "pgd_at", {"steps": 10}),
            ("trades PGD-7", "trades", {}), ("trades PGD-10", "trades", {"steps": 10}), ("mart PGD-7", "mart", {}),
            ("dummy PGD-7", "dummy", {})]
DATA = {"digits": dict(dataset="digits", model="small_cnn", eps=0.2, batch_size=128),
        "mnist": dict(dataset="mnist", model="tiny_cnn", eps=0.3, batch_size=100)}


def measure(data: str, batches: int) -> List[Dict[str, Any]]:
    base = DATA[data]
    cfg = TrainConfig(**base, optimizer="adam", lr=1e-3)
    ds = cfg.load_data()
    x, y = ds.x_train[: base["batch_size"]], ds.y_train[: base["batch_size"]]
    threat = cfg.threat_for(ds.meta())
    precision = Precision(torch.device("cpu"))
    rows = []
    for label, name, options in SETTINGS:
        torch.manual_seed(0)
        model = build_model(model_spec(TrainConfig(**{**base, "method": name}), ds.meta()))
        method = create_method(name, threat, **options)
        result = probe_wall_ratio(method, model, lambda m: torch.optim.Adam(m.parameters(), lr=1e-3), x, y,
                                  batches, precision)
        rows.append({"data": data, "setting": label, "passes": method.passes().to_dict(), **result})
        print(f"  {data:<6} {label:<14} passes {method.passes().total:>4g}  wall ×{result['wall_ratio']:.2f} "
              f"[{result['spread'][0]:.2f}, {result['spread'][1]:.2f}]", flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["digits", "mnist"], choices=sorted(DATA))
    p.add_argument("--batches", type=int, default=30, help="timed pairs per method")
    p.add_argument("--out", default=None, help="also write the rows as JSON")
    args = p.parse_args()
    rows = []
    for data in args.data:
        rows += measure(data, args.batches)
    header = ["data", "method", "passes / example", "wall time × standard (quartiles)", "standard step ms"]
    table = [[r["data"], r["setting"], f"{r['passes']['total']:g}",
              f"{r['wall_ratio']:.2f} ({r['spread'][0]:.2f}–{r['spread'][1]:.2f})",
              f"{r['standard_seconds'] * 1000:.1f}"] for r in rows]
    print(f"\n{torch.get_num_threads()} torch thread(s), {args.batches} interleaved pairs per method")
    print(format_table(header, table))
    if args.out:
        write_json(args.out, {"threads": torch.get_num_threads(), "batches": args.batches, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
