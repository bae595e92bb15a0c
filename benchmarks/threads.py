"""`armor demo` on an idle machine and beside a competing load: which thread default is right, and the must-show.

    python benchmarks/threads.py [--epochs 3] [--full] [--load busy|train|both] [--json benchmarks/results/threads.json]

Run it while holding the machine (`flock /tmp/armor-cpu.lock python benchmarks/threads.py ...`): it needs the
cores quiet except for the load it starts itself.

- **Which default** (`--epochs`, short demos): the same `armor demo --epochs E` with 1 thread, with 2 threads
  and OpenMP waiting passively (armor's default: `OMP_WAIT_POLICY=PASSIVE`, threads = the cores available), and
  with 2 threads as torch leaves OpenMP (libgomp spins while it waits: torch is imported before armor can set the
  policy), each idle and beside the load. The tables printed at 2 threads must be identical (the wait policy
  changes no number).
- **The must-show** (`--full`): the whole `make demo` (`armor demo`, 30 epochs) at armor's default, idle and
  beside the load; the issue asks for ≤ 2× the idle time.

Loads: `busy` = two processes spinning in a Python loop (two busy threads that never sleep); `train` = another
`armor train` of the demo's PGD-AT run on 2 threads with torch's spinning OpenMP, restarted while it lasts.
`OMP_NUM_THREADS` is removed from every child's environment so that defaults are the machine's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
BASE_ENV["PYTHONPATH"] = str(ROOT)

#: torch imported before armor's command line runs: OpenMP starts with libgomp's own (spinning) wait policy
SPINNING = ("import sys, torch; from armor.cli import main; sys.exit(main(sys.argv[1:]))",)


def command(variant: str, argv: List[str]) -> List[str]:
    if variant == "spinning":
        return [sys.executable, "-c", *SPINNING, *argv]
    return [sys.executable, "-m", "armor", *argv]


def start_load(kind: str, tmp: Path) -> List[subprocess.Popen]:
    if kind == "busy":
        return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    loop = ("import subprocess, sys\n"
            "while True:\n"
            f"    subprocess.run({command('spinning', [])!r} + ['train', '--method', 'pgd_at', '--steps', '7', "
            f"'--eps', '0.2', '--epochs', '30', '--threads', '2', '--quiet', '--overwrite', '--no-plot', "
            f"'--out', {str(tmp / 'load')!r}], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n")
    return [subprocess.Popen([sys.executable, "-c", loop], env=BASE_ENV, start_new_session=True)]


def stop_load(procs: List[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, 9) if p.pid == os.getpgid(p.pid) else p.kill()
        except ProcessLookupError:
            pass
        p.wait()


def demo(variant: str, threads: Optional[int], epochs: int, tmp: Path) -> Dict[str, object]:
    argv = ["demo", "--epochs", str(epochs), "--out", str(tmp / f"demo_{variant}_{threads}")]
    argv += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    proc = subprocess.run(command(variant, argv), env=BASE_ENV, capture_output=True, text=True, cwd=tmp)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"armor demo failed: {proc.stderr[-2000:]}")
    table = "\n".join(line for line in proc.stdout.splitlines() if re.match(r"^(model|standard|pgd_at|-)", line))
    used = re.search(r"on (\d+) torch threads", proc.stdout)
    return {"seconds": round(seconds, 1), "table": table, "threads": int(used.group(1)) if used else None}


def measure(label: str, variant: str, threads: Optional[int], epochs: int, load: Optional[str], tmp: Path):
    procs = start_load(load, tmp) if load else []
    try:
        time.sleep(2 if load else 0)  # let the load start
        before = os.getloadavg()[0]
        result = demo(variant, threads, epochs, tmp)
    finally:
        stop_load(procs)
    result.update(label=label, load=load or "idle", epochs=epochs, loadavg_at_start=round(before, 2))
    print(f"  {label:<42} {result['load']:<5} {result['seconds']:7.1f} s  ({result['threads']} threads)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the short demos that pick the default")
    parser.add_argument("--skip-short", action="store_true", help="only the --full part")
    parser.add_argument("--full", action="store_true", help="also the whole armor demo (30 epochs), idle and loaded")
    parser.add_argument("--load", default="busy", choices=("busy", "train", "both"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    loads = ["busy", "train"] if args.load == "both" else [args.load]
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores available; load average {os.getloadavg()[0]:.2f} at the start")
    out: Dict[str, object] = {"cores": cores, "short": [], "full": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_short:
            print(f"armor demo --epochs {args.epochs}:")
            variants = [("1 thread (passive)", "passive", 1), ("default: all cores, passive", "passive", None),
                        (f"{cores} threads, spinning (torch's default)", "spinning", cores)]
            for load in [None, *loads]:
                for label, variant, threads in variants:
                    out["short"].append(measure(label, variant, threads, args.epochs, load, tmp))
            tables = {r["table"] for r in out["short"] if r["threads"] == cores}
            print(f"  tables at {cores} threads identical across wait policies and loads: {len(tables) == 1}")
            out["same_numbers_at_default"] = len(tables) == 1
        if args.full:
            print("armor demo (30 epochs) at the default:")
            idle = measure("default", "passive", None, 30, None, tmp)
            out["full"].append(idle)
            for load in loads:
                loaded = measure("default", "passive", None, 30, load, tmp)
                loaded["ratio_to_idle"] = round(loaded["seconds"] / idle["seconds"], 2)
                out["full"].append(loaded)
                print(f"  beside the {load} load: {loaded['ratio_to_idle']:.2f}× the idle time")
            print(idle["table"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
