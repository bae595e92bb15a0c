"""How fast `armor` answers before it does any work: `--version`, `--help`, and argument errors.

    python benchmarks/cli_startup.py [--before be6feb9^] [--runs 5] [--json benchmarks/results/cli_startup.json]

Each command runs as a fresh `python -m armor ...` process, `--runs` times, for two source trees side by side
(interleaved, so a change in the machine's load hits both alike): **before** — the commit given (default: the one
before be6feb9, the change that made the command line torch-free at import), checked out into a temporary
folder with `git archive` — and **after**, this checkout. Prints the median wall time of each and the ratio; the
issue's goal is ≤ 0.5 s after, on 2 cores. Also shows each error's stderr, which must be one line with one
`armor: error:` prefix.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "--version": ["--version"],
    "--help": ["--help"],
    "train --help": ["train", "--help"],
    "bad flag (train --epochz 3)": ["train", "--epochz", "3"],
    "bad value (train --eps abc)": ["train", "--eps", "abc"],
    "unknown command": ["frobnicate"],
    "eval: missing checkpoint": ["eval", "--checkpoint", "missing.pt"],
    "unknown name (train --method bogus)": ["train", "--method", "bogus"],
}


def checkout(commit: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "armor"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(dest)
    return dest


def timed(tree: Path, argv, env) -> tuple[float, str, int]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "armor", *argv], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)
    return time.perf_counter() - start, proc.stderr.strip(), proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="be6feb9^", help="the commit to compare with (default be6feb9^)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the medians here")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("PYTHONPATH", None)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], capture_output=True,
                            text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"before ({commit})": checkout(commit, Path(tmp)), "after (this checkout)": ROOT}
        times = {name: {cmd: [] for cmd in COMMANDS} for name in trees}
        stderr = {name: {} for name in trees}
        for _ in range(args.runs):
            for cmd, argv in COMMANDS.items():
                for name, tree in trees.items():  # interleaved: before, after, before, after, ...
                    seconds, err, _ = timed(tree, argv, env)
                    times[name][cmd].append(seconds)
                    stderr[name][cmd] = err
    names = list(trees)
    print(f"median wall time of {args.runs} runs (s), python -m armor, fresh process each time; "
          f"load average {os.getloadavg()[0]:.2f}")
    width = max(map(len, COMMANDS))
    print(f"{'command':<{width}}  {'before':>7}  {'after':>7}  after/before")
    result = {}
    for cmd in COMMANDS:
        before, after = (statistics.median(times[n][cmd]) for n in names)
        result[cmd] = {"before_s": round(before, 3), "after_s": round(after, 3)}
        print(f"{cmd:<{width}}  {before:7.2f}  {after:7.2f}  {after / before:12.2f}")
    print("\nstderr of the error cases:")
    for cmd in COMMANDS:
        if "bad" in cmd or "unknown" in cmd:
            for n in names:
                print(f"  {n}, {cmd}: {stderr[n][cmd]!r}")
    if args.json:
        Path(args.json).write_text(json.dumps({"before": commit, "runs": args.runs, "medians": result,
                                               "stderr": stderr}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
