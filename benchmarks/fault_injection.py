"""Kill ``armor train`` (SIGKILL, its whole process group) at every named fault point and resume: does each resumed
run end bit-identical to an uninterrupted one — weights, metrics history and results (timing fields aside)?

    python benchmarks/fault_injection.py                 # every point of armor.faults.POINTS, first and later visits
    python benchmarks/fault_injection.py --points after_last:2 mid_epoch:1

The run: digits PGD-AT (PGD-2), 3 epochs of 10 batches, EMA on (its average must survive too), one thread. The points
of the guard's recovery (``after_recovery``, and the epochs around it: ``recovery:`` + a point) are hit in a second
run: digits FGSM-RS whose guard sees a scripted collapse at epoch 2 (``tests/collapse.py``), rolls back and goes on with
PGD-2 for epochs 3–4. A run killed before its first ``last.pt`` is started again (the run folder allows it without
--overwrite); any other is resumed with ``--resume``. Prints one line per kill point and the count that ended
identical; exits 1 if any did not.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from armor.faults import POINTS
from armor.io import load_checkpoint, read_jsonl

TRAIN = ["train", "--method", "pgd_at", "--eps", "0.2", "--steps", "2", "--epochs", "3", "--train-size", "320",
         "--val-size", "40", "--test-size", "40", "--batch-size", "32", "--val-steps", "2", "--eval-attacks", "pgd",
         "--eval-steps", "2", "--ema-decay", "0.9", "--device", "cpu", "--seed", "3", "--no-plot", "--quiet"]
ROOT = Path(__file__).resolve().parents[1]
RECOVER = ["train", "--method", "fgsm_rs", "--eps", "0.2", "--epochs", "4", "--train-size", "320", "--val-size", "80",
           "--test-size", "40", "--batch-size", "32", "--val-steps", "2", "--eval-attacks", "pgd", "--eval-steps", "2",
           "--guard", "recover", "--guard-drop", "5", "--guard-batch", "40", "--guard-steps", "2", "--ema-decay",
           "0.9", "--cost-probe", "2", "--device", "cpu", "--seed", "3", "--no-plot", "--quiet"]
COLLAPSE = [str(ROOT / "tests" / "collapse.py"), "2"]  # the scripted collapse at epoch 2
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

#: (point, visit): every point at its first visit, and the per-epoch ones in a later epoch (the last epoch's too);
#: ``recovery:`` points kill the recovering run (its epoch 2 is the collapse, the second visits are in it)
DEFAULT = [f"{p}:1" for p in POINTS if p != "after_recovery"] + [
    "epoch_start:3", "mid_epoch:2", "after_train_epoch:3", "mid_validation:2", "checkpoint_tmp_written:4",
    "checkpoint_renamed:3", "after_last:3", "after_history:3",
    "recovery:after_recovery:1", "recovery:after_validation:2", "recovery:after_last:2", "recovery:after_history:2",
    "recovery:epoch_start:3", "recovery:mid_epoch:3", "recovery:mid_final_test:1"]


def armor(*argv, fault=None, recovering=False):
    env = {**ENV, **({"ARMOR_FAULT": fault} if fault else {})}
    entry = COLLAPSE if recovering else ["-m", "armor"]
    return subprocess.run([sys.executable, *entry, *argv], env=env, capture_output=True, text=True,
                          timeout=600, start_new_session=True)


def strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def same(a: Path, b: Path) -> str:
    """'' when the runs are bit-identical, else what differs."""
    la, lb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    if la["epoch"] != lb["epoch"]:
        return f"epochs {la['epoch']} vs {lb['epoch']}"
    if not all(torch.equal(la["model"][k], lb["model"][k]) for k in la["model"]):
        return "weights differ"
    if la["callbacks"]["ema"]["averaged"] is not None and not all(
            torch.equal(la["callbacks"]["ema"]["averaged"][k], lb["callbacks"]["ema"]["averaged"][k])
            for k in la["callbacks"]["ema"]["averaged"]):
        return "EMA weights differ"
    if strip(read_jsonl(a / "metrics.jsonl")) != strip(read_jsonl(b / "metrics.jsonl")):
        return "metrics.jsonl differs"
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    if ra["candidates"] != rb["candidates"]:
        return "results differ"
    if ra.get("guard_events") != rb.get("guard_events") or la.get("setting") != lb.get("setting"):
        return "guard events or training setting differ"
    return ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", nargs="+", default=DEFAULT)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        assert armor(*TRAIN, "--out", str(root / "whole")).returncode == 0
        if any(f.startswith("recovery:") for f in args.points):
            whole = armor(*RECOVER, "--out", str(root / "whole_recovery"), recovering=True)
            assert whole.returncode == 0, whole.stderr
            assert any(r.get("guard") == "recovered" for r in read_jsonl(root / "whole_recovery" / "metrics.jsonl"))
        ok = 0
        for spec in args.points:
            recovering = spec.startswith("recovery:")
            fault = spec.partition(":")[2] if recovering else spec
            argv, reference = (RECOVER, root / "whole_recovery") if recovering else (TRAIN, root / "whole")
            out = root / spec.replace(":", "_")
            killed = armor(*argv, "--out", str(out), fault=fault, recovering=recovering)
            if killed.returncode != -signal.SIGKILL:
                print(f"{spec:<28} not reached (exit {killed.returncode}): {killed.stderr.strip()[-200:]}")
                continue
            how = "resume" if (out / "last.pt").is_file() else "start again"
            again = armor("train", "--resume", "--out", str(out), "--quiet", recovering=recovering) \
                if how == "resume" else armor(*argv, "--out", str(out), recovering=recovering)
            diff = same(reference, out) if again.returncode == 0 else f"exit {again.returncode}: " \
                f"{again.stderr.strip()[-200:]}"
            ok += not diff
            print(f"{spec:<28} killed, {how:<11} → {'bit-identical' if not diff else 'DIFFERS: ' + diff}")
        print(f"{ok}/{len(args.points)} kill points ended bit-identical to the uninterrupted run "
              f"({time.perf_counter() - start:.0f} s)")
    return 0 if ok == len(args.points) else 1


if __name__ == "__main__":
    sys.exit(main())
