"""A fast MNIST recipe against the PGD-AT recipe, one seed per call, timed side by side epoch by epoch.

    OMP_NUM_THREADS=1 python benchmarks/mnist_fast.py --recipe configs/mnist_pgd2_guard.yaml --seed 3 --pgd-epochs 3
    OMP_NUM_THREADS=1 python benchmarks/mnist_fast.py --recipe configs/mnist_pgd2_guard.yaml --summary
    OMP_NUM_THREADS=1 python benchmarks/mnist_fast.py --recipe configs/mnist_fgsm_rs.yaml --seed 1 --pgd-epochs 0 \
        --set guard=recover eval_steps=20 --name mnist_fgsm_rs_recover        # the FGSM-RS seed study, recovering

Each call trains the fast recipe with ``--seed`` into ``runs/mnist_fast/<recipe>_seed<S>/`` and, **interleaved with
it epoch by epoch**, the next ``--pgd-epochs`` epochs of ``configs/mnist_pgd_at.yaml`` (seed 0) in
``runs/mnist_fast/pgd_at/``, resumed from where the previous call left it. The two runs live in one process and take
turns at epoch boundaries (the one further behind in its share of this call's epochs goes next; each run's random
stream is saved and restored at every turn, so each computes exactly what it computes alone), so a change in machine
load falls on both alike; the timed quantity of each is the sum of its epochs' ``seconds`` (training + per-epoch
validation + guard; the ``train_seconds`` of the recipes' records) less the time the epoch spent waiting for the other
run's turn (the hand-over happens inside the timed epoch; the wait is measured and taken out). Five calls with ``--pgd-epochs 3`` spread the
PGD-AT recipe's 15 epochs over five seeds.

Then (unless ``--no-suite``; ``--suite-only`` runs it later, as its own job) the fast run's best checkpoint is evaluated like ``benchmarks/reproduce.py`` does: clean and PGD-100 on the
whole test set (the recipe's own final test) and the standard suite (APGD-CE, APGD-T, Square 5000) on the first
1000 test points; the record goes to ``benchmarks/results/<recipe>_seed<S>.json`` (``worst_case_acc``, the
per-epoch seconds of both runs, the guard's events, the cost). ``--summary`` prints the seeds' table and the ratio of
the fast recipe's training time to the PGD-AT recipe's (the sum of its 15 epochs' seconds).
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import yaml

from armor.config import TrainConfig
from armor.eval.run import evaluate_checkpoint
from armor.io import read_json, read_jsonl, write_json
from armor.reports import format_table
from armor.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PGD_AT = ROOT / "configs" / "mnist_pgd_at.yaml"


class _Pause(BaseException):
    """Ends a run's share of this call at an epoch boundary (resumed by the next call)."""


class TakeTurns:
    """Runs several trainers in one process, one epoch at a time, each with its own random stream."""

    def __init__(self, trainers: Dict[str, Trainer], quotas: Dict[str, int], rng: Dict[str, torch.Tensor]):
        self.trainers, self.quotas, self.rng = trainers, quotas, rng
        self.done = {name: 0 for name in trainers}
        self.finished: Dict[str, bool] = {name: False for name in trainers}
        self.turn: Optional[str] = None
        self.cond = threading.Condition()
        self.loops_over = threading.Event()
        self.finishing = threading.Lock()  # the final tests run one after the other, each with its own random stream
        self.errors: Dict[str, BaseException] = {}
        #: seconds each run's epochs spent waiting for the other's turn: inside the epoch's timed ``seconds``
        self.waited: Dict[str, Dict[int, float]] = {name: {} for name in trainers}

    def _next(self) -> Optional[str]:
        waiting = [n for n in self.trainers if not self.finished[n]]
        return min(waiting, key=lambda n: (self.done[n] / self.quotas[n], n)) if waiting else None

    def _hand_over(self, name: str) -> None:
        """Called by ``name``'s thread: save its random state, pick who goes next, wait until it is ``name`` again."""
        with self.cond:
            self.rng[name] = torch.get_rng_state()
            self.turn = self._next()
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.turn == name)
            torch.set_rng_state(self.rng[name])

    def _wrap(self, name: str) -> None:
        trainer = self.trainers[name]
        train_epoch, finish = trainer.train_epoch, trainer.finish

        def epoch(e: int):
            if self.done[name] >= self.quotas[name]:
                raise _Pause()
            waiting = time.perf_counter()
            self._hand_over(name)
            self.waited[name][e + 1] = time.perf_counter() - waiting
            self.done[name] += 1
            return train_epoch(e)

        def finish_after_all_loops():
            self._leave(name)
            self.loops_over.wait()  # no final test while the other run is still being timed
            with self.finishing:
                torch.set_rng_state(self.rng[name])
                return finish()

        trainer.train_epoch, trainer.finish = epoch, finish_after_all_loops

    def _leave(self, name: str) -> None:
        with self.cond:
            self.finished[name] = True
            self.rng[name] = torch.get_rng_state()
            if all(self.finished.values()):
                self.loops_over.set()
            self.turn = self._next()
            self.cond.notify_all()

    def run(self) -> Dict[str, Any]:
        results: Dict[str, Any] = {}

        def target(name: str) -> None:
            with self.cond:
                self.cond.wait_for(lambda: self.turn == name)
                torch.set_rng_state(self.rng[name])
            try:
                results[name] = self.trainers[name].fit()
            except _Pause:
                self._leave(name)
            except BaseException as exc:  # noqa: BLE001 - reported after the join
                self.errors[name] = exc
                self._leave(name)
            finally:
                self.trainers[name].close()

        for name in self.trainers:
            self._wrap(name)
        threads = [threading.Thread(target=target, args=(n,), name=n) for n in self.trainers]
        for t in threads:
            t.start()
        with self.cond:
            self.turn = self._next()
            self.cond.notify_all()
        for t in threads:
            t.join()
        if self.errors:
            raise next(iter(self.errors.values()))
        return results


def train_seed(recipe: Path, seed: int, pgd_epochs: int, out_root: Path, data_dir: Optional[str],
               overrides: Dict[str, Any], stem: str) -> Dict[str, Any]:
    name = f"{stem}_seed{seed}"
    extra = {"data_dir": data_dir} if data_dir else {}
    fast_cfg = TrainConfig.from_yaml(recipe, {**overrides, "seed": seed, "out": str(out_root / name), **extra})
    trainers: Dict[str, Trainer] = {}
    rng: Dict[str, torch.Tensor] = {}
    trainers["fast"] = Trainer(fast_cfg, overwrite=True, progress=False)
    rng["fast"] = torch.get_rng_state()
    quotas = {"fast": fast_cfg.epochs}
    pgd_out = out_root / "pgd_at"
    if pgd_epochs:
        pgd_cfg = TrainConfig.from_yaml(PGD_AT, {"out": str(pgd_out), **extra})
        resume = (pgd_out / "last.pt").is_file()
        trainers["pgd_at"] = Trainer(pgd_cfg, resume=resume, overwrite=not resume, progress=False,
                                     given={} if resume else None)
        rng["pgd_at"] = torch.get_rng_state()
        quotas["pgd_at"] = min(pgd_epochs, pgd_cfg.epochs - trainers["pgd_at"].start_epoch)
        if quotas["pgd_at"] <= 0:
            trainers.pop("pgd_at").close()
            quotas.pop("pgd_at")
    start_epochs = {n: t.start_epoch for n, t in trainers.items()}
    started = time.perf_counter()
    turns = TakeTurns(trainers, quotas, rng)
    results = turns.run()
    wall = time.perf_counter() - started
    record = results["fast"]
    history = read_jsonl(out_root / name / "metrics.jsonl")
    pgd_history = [r for r in read_jsonl(pgd_out / "metrics.jsonl")
                   if r["epoch"] > start_epochs.get("pgd_at", 0)] if "pgd_at" in trainers else []
    pgd_history = pgd_history[:quotas.get("pgd_at", 0)]
    return {"name": name, "config": fast_cfg.to_dict(), "record": record, "history": history,
            "pgd_at_epochs": [{"epoch": r["epoch"], "seconds": round(r["seconds"] - turns.waited.get("pgd_at", {}).get(
                r["epoch"], 0.0), 3)} for r in pgd_history],
            "waited": {n: {str(e): round(w, 3) for e, w in d.items()} for n, d in turns.waited.items()},
            "wall_seconds": round(wall, 1)}


def evaluate_seed(run: Dict[str, Any], out_root: Path, suite_n: int, checks: bool) -> Dict[str, Any]:
    name, record = run["name"], run["record"]
    ckpt = out_root / name / "best.pt"
    start = time.perf_counter()
    test = record.test
    suite = evaluate_checkpoint(ckpt, suite="standard", n=suite_n, out=str(out_root / name / "eval_standard.json"),
                                checks=checks) if suite_n else None
    final = {label: test.acc(label) for label in test.labels}
    result = {
        "recipe": name, "config": run["config"], "epochs_run": len(run["history"]), "best_epoch": record.best_epoch,
        "stop_reason": record.stop_reason, "clean_acc": test.clean_acc,
        "pgd100_acc": final.get("pgd-100"), "final_test": final, "test_n": test.n,
        "suite_n": suite.result.n if suite else None, "suite_clean_acc": suite.result.clean_acc if suite else None,
        "worst_case_acc": suite.result.worst_case_acc if suite else None,
        "suite_attacks": {k: suite.result.cumulative_acc(k) for k in suite.result.labels} if suite else {},
        "checks": suite.checks if suite else None,
        # the epochs' seconds without the waits for the other run's turn (those are inside the timed epoch)
        "train_seconds": round(sum(r["seconds"] - run["waited"]["fast"].get(str(r["epoch"]), 0.0)
                                   for r in run["history"]), 2),
        "train_seconds_with_waits": record.train_seconds,
        "eval_seconds": round(time.perf_counter() - start, 1),
        "epoch_seconds": [round(r["seconds"] - run["waited"]["fast"].get(str(r["epoch"]), 0.0), 3)
                          for r in run["history"]],
        "train_settings": [r.get("train_setting", run["config"]["method"]) for r in run["history"]],
        "guard_events": record.guard_events, "cost": record.cost,
        "pgd_at_alongside": run["pgd_at_epochs"], "wall_seconds": run["wall_seconds"],
        "reference": None, "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{name}.json", result)
    return result


def suite_only(stem: str, seed: int, out_root: Path, suite_n: int, checks: bool) -> Dict[str, Any]:
    """The standard suite for a seed trained earlier with ``--no-suite`` (a separate, shorter job): its JSON gains the
    suite's numbers and ``worst_case_acc``."""
    name = f"{stem}_seed{seed}"
    path = RESULTS / f"{name}.json"
    result = read_json(path)
    start = time.perf_counter()
    suite = evaluate_checkpoint(out_root / name / "best.pt", suite="standard", n=suite_n, checks=checks,
                                out=str(out_root / name / "eval_standard.json"))
    result.update({"suite_n": suite.result.n, "suite_clean_acc": suite.result.clean_acc,
                   "worst_case_acc": suite.result.worst_case_acc,
                   "suite_attacks": {k: suite.result.cumulative_acc(k) for k in suite.result.labels},
                   "checks": suite.checks, "suite_seconds": round(time.perf_counter() - start, 1)})
    write_json(path, result)
    return result


def summary(stem: str, out_root: Path) -> int:
    rows, fast_seconds = [], []
    for path in sorted(RESULTS.glob(f"{stem}_seed*.json")):
        r = read_json(path)
        fast_seconds.append(r["train_seconds"])
        recovered = [e["epoch"] for e in r.get("guard_events", []) if e.get("action") == "recovered"]
        final = " / ".join(f"{k} {v:.1f}" for k, v in r.get("final_test", {"pgd-100": r["pgd100_acc"]}).items())
        rows.append([r["recipe"], f"{r['epochs_run']}/{r['config']['epochs']}", f"{r['clean_acc']:.1f}", final,
                     " → ".join(f"{v:.1f}" for v in r["suite_attacks"].values()) or "—",
                     "—" if r["worst_case_acc"] is None else f"{r['worst_case_acc']:.1f}",
                     f"{r['train_seconds']:.0f}", ", ".join(map(str, recovered)) or "—"])
    if not rows:
        print(f"no {stem}_seed*.json in {RESULTS}")
        return 2
    print(format_table(["run", "epochs", "clean", "final test (10k)", "APGD-CE → +APGD-T → +Square", "worst case",
                        "train s", "guard recovered at"], rows, markdown=True))
    pgd = [e for path in sorted(RESULTS.glob(f"{stem}_seed*.json")) for e in read_json(path)["pgd_at_alongside"]]
    if not pgd:
        return 0
    pgd_seconds = sum(r["seconds"] for r in pgd)
    planned = TrainConfig.from_yaml(PGD_AT).epochs
    mean = sum(fast_seconds) / len(fast_seconds)
    print(f"\nPGD-AT recipe: {len(pgd)}/{planned} epochs timed alongside, {pgd_seconds:.0f} s"
          + ("" if len(pgd) == planned else f" (→ {pgd_seconds / len(pgd) * planned:.0f} s for {planned} epochs at the "
                                             f"same mean epoch time)"))
    total = pgd_seconds / len(pgd) * planned
    print(f"fast recipe: mean {mean:.0f} s over {len(fast_seconds)} seeds (range {min(fast_seconds):.0f}–"
          f"{max(fast_seconds):.0f}); training-time ratio {mean / total:.3f} (max {max(fast_seconds) / total:.3f})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", type=Path, required=True)
    p.add_argument("--seed", type=int, nargs="+", default=[0])
    p.add_argument("--pgd-epochs", type=int, default=3, help="epochs of the PGD-AT recipe to time alongside")
    p.add_argument("--suite-n", type=int, default=1000)
    p.add_argument("--checks", action="store_true", help="also run the sanity checks after the suite")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/mnist_fast"))
    p.add_argument("--summary", action="store_true", help="only print the table of the seeds' results")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override recipe options")
    p.add_argument("--name", default=None, help="results name (default: the recipe's)")
    p.add_argument("--no-suite", action="store_true", help="skip the standard suite (only the recipe's final test)")
    p.add_argument("--suite-only", action="store_true", help="only the standard suite, for seeds trained with --no-suite")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    stem = args.name or args.recipe.stem
    if args.summary:
        return summary(stem, args.out)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    for seed in args.seed:
        if args.suite_only:
            result = suite_only(stem, seed, args.out, args.suite_n, args.checks)
            print(f"{result['recipe']}: worst case {result['worst_case_acc']:.1f} "
                  f"({' → '.join(f'{v:.1f}' for v in result['suite_attacks'].values())}), "
                  f"{result['suite_seconds']:.0f} s", flush=True)
            continue
        run = train_seed(args.recipe, seed, args.pgd_epochs, args.out, args.data_dir, overrides, stem)
        result = evaluate_seed(run, args.out, 0 if args.no_suite else args.suite_n, args.checks)
        pgd = run["pgd_at_epochs"]
        print(f"{result['recipe']}: clean {result['clean_acc']:.1f}, final test {result['final_test']}, worst case "
              f"{result['worst_case_acc']}, "
              f"train {result['train_seconds']:.0f} s; PGD-AT epochs {[r['epoch'] for r in pgd]} alongside: "
              f"{sum(r['seconds'] for r in pgd):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
