"""Reproduce the classic adversarial-training tables at reduced scale, one command per dataset.

    python benchmarks/reproduce.py --dataset mnist                 # every configs/mnist_*.yaml recipe
    python benchmarks/reproduce.py --dataset mnist --only pgd_at fgsm_rs
    python benchmarks/reproduce.py --dataset fashion               # configs/fashion_*.yaml
    python benchmarks/reproduce.py --dataset cifar10 --only fgsm_rs_cpu pgd_at_cpu

Each recipe is trained into runs/reproduce/<recipe>/, then its best checkpoint is evaluated with clean and
PGD-100 accuracy on the whole test set and with the standard worst-case suite (APGD-CE, APGD-T, Square)
on the first ``--suite-n`` (default 1000) test points, which are fixed. Results go to
benchmarks/results/<recipe>.json and a Markdown table benchmarks/results/<dataset>.md, with the published
reference next to armor's number and the wall time of training and evaluation.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from armor.config import TrainConfig
from armor.eval.run import evaluate_checkpoint
from armor.io import read_json, write_json
from armor.reports import format_table
from armor.api import train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: Published figures at full scale: (source, clean, PGD-100 or PGD, AutoAttack / worst case).
REFERENCES = {
    "mnist_pgd_at": ("Madry et al. 2018", 98.5, 92.5, 88.5),
    "mnist_trades": ("Zhang et al. 2019 (SmallCNN)", 99.5, None, 92.8),
    "cifar10_pgd_at_preact": ("Rice et al. 2020 (best ckpt)", None, 53.0, 48.5),
    "cifar10_trades_wrn": ("Zhang et al. 2019 (WRN-34-10)", 84.9, None, 53.1),
}


def run_recipe(config: Path, suite_n: int, data_dir: str | None, out_root: Path) -> dict:
    name = config.stem
    cfg = TrainConfig.from_yaml(config, {"out": str(out_root / name), **({"data_dir": data_dir} if data_dir else {})})
    start = time.perf_counter()
    summary = train(cfg, overwrite=True, progress=False).record
    train_s = time.perf_counter() - start
    ckpt = out_root / name / "best.pt"
    start = time.perf_counter()
    test = summary.test
    if "pgd-100" not in test.attacks:  # else the run already tested its best checkpoint with PGD-100
        test = evaluate_checkpoint(ckpt, attack=["pgd"], steps=100, out=str(out_root / name / "eval_pgd100.json"),
                                   checks=False).result
    suite = evaluate_checkpoint(ckpt, suite="standard", n=suite_n, out=str(out_root / name / "eval_standard.json"),
                                checks=True)
    # train_seconds: the epochs (training + per-epoch validation); eval_seconds: everything after them
    eval_s = time.perf_counter() - start + (train_s - summary.train_seconds)
    train_s = summary.train_seconds
    record = {
        "recipe": name, "config": cfg.to_dict(), "epochs_run": len((out_root / name / "metrics.jsonl").read_text()
                                                                 .splitlines()),
        "best_epoch": summary.best_epoch, "stop_reason": summary.stop_reason,
        "clean_acc": test.clean_acc, "pgd100_acc": test.acc("pgd-100"),
        "test_n": test.n, "suite_n": suite.result.n,
        "suite_clean_acc": suite.result.clean_acc, "worst_case_acc": suite.result.worst_case_acc,
        # cumulative: accuracy after this attack and all before it (APGD-CE, APGD-T, then black-box Square)
        "suite_attacks": {k: suite.result.cumulative_acc(k) for k in suite.result.labels},
        "checks": suite.checks, "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
        "reference": REFERENCES.get(name), "torch": torch.__version__, "threads": torch.get_num_threads(),
        # the run's cost relative to standard training: passes per example and the probed wall-time ratio
        "cost": {k: summary.cost[k] for k in ("passes", "wall_ratio") if k in summary.cost},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", record)
    return record


def table(records: list[dict]) -> str:
    header = ["recipe", "epochs", "test n", "clean", "PGD-100", "APGD-CE → +APGD-T → +Square = worst case",
              "published (clean / PGD / AA)", "train + eval min", "cost: passes, wall × standard"]
    rows = []
    for r in records:
        ref = r.get("reference")
        published = "—" if not ref else f"{ref[0]}: " + " / ".join("—" if v is None else f"{v:g}" for v in ref[1:])
        rows.append([r["recipe"], f"{r['epochs_run']}/{r['config']['epochs']}", str(r["test_n"]),
                     f"{r['clean_acc']:.1f}",
                     f"{r['pgd100_acc']:.1f}", _suite_cell(r), published,
                     f"{(r['train_seconds'] + r['eval_seconds']) / 60:.1f}", _cost_cell(r.get("cost"))])
    return format_table(header, rows, markdown=True)


def _cost_cell(cost) -> str:
    """``3, 2.6×``: training passes per example (standard = 1) and the wall-time ratio to a standard step, probed
    side by side after training; ``—`` for a record written before runs recorded their cost."""
    if not cost:
        return "—"
    wall = f", {cost['wall_ratio']:.1f}×" if "wall_ratio" in cost else ""
    return f"{cost['passes']:g}{wall}"


def _suite_cell(r: dict) -> str:
    steps = " → ".join(f"{v:.1f}" for v in r["suite_attacks"].values())
    return f"{steps} = **{r['worst_case_acc']:.1f}** (n={r['suite_n']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=["mnist", "fashion", "cifar10"])
    parser.add_argument("--only", nargs="+", help="recipe suffixes, e.g. pgd_at fgsm_rs")
    parser.add_argument("--suite-n", type=int, default=1000, help="fixed test points for the standard suite")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--tables", action="store_true", help="only rewrite <dataset>.md from the results JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.tables:
        print(write_table(args.dataset))
        return 0
    configs = sorted((ROOT / "configs").glob(f"{args.dataset}_*.yaml"))
    if args.only:
        configs = [c for c in configs if c.stem[len(args.dataset) + 1:] in args.only]
    if not configs:
        print(f"no recipes match {args.dataset} {args.only or ''}", file=sys.stderr)
        return 2
    records = []
    for config in configs:
        records.append(run_recipe(config, args.suite_n, args.data_dir, Path(args.out)))
        print(table(records[-1:]), flush=True)
    print(write_table(args.dataset))
    return 0


def write_table(dataset: str) -> str:
    """benchmarks/results/<dataset>.md: one row per recipe that has a results JSON."""
    md = table(sorted((r for r in (_load(p) for p in RESULTS.glob(f"{dataset}_*.json")) if r),
                      key=lambda r: r["recipe"]))
    (RESULTS / f"{dataset}.md").write_text(md + "\n")
    return md


def _load(path: Path):
    """A recipe's record; None for the other records that share the prefix (the seed studies of
    ``benchmarks/mnist_fast.py``, ``<recipe>_seed<S>.json``, which have no config of their own)."""
    record = read_json(path)
    return record if (ROOT / "configs" / f"{record.get('recipe')}.yaml").is_file() else None


if __name__ == "__main__":
    sys.exit(main())
