"""One run that turns armor's untested CUDA paths into figures (≤ 8 minutes on one GPU), or a reduced CPU run.

    python benchmarks/gpu_check.py [run] [--out DIR] [--chunks DIR | --data-dir DIR | --no-cifar] [--cpu-smoke]
    python benchmarks/gpu_check.py stash --from data_chunks --to /tmp/armor_chunks   # keep carried chunks
    python benchmarks/gpu_check.py assemble --chunks DIR --out cifar10.npz           # chunks → .npz, verified

``benchmarks/gpu_check.sh`` wraps this for the device machine (see benchmarks/README.md, "GPU check").

Parts, each in its own process with its own time box, so a failure or a hang in one is reported and the
others still run (the whole run keeps to ``--budget`` seconds, 470 on a GPU):

1. data      reassemble CIFAR-10 from the carried chunks (every chunk and array checked against the manifest,
             the arrays against the exact copy's sha256)
2. bench     ``armor.bench.run_bench`` for PreAct ResNet-18 at CIFAR-10 shape (3×32×32, batch 512, PGD-10):
             fp32; bf16 + channels_last; bf16 + channels_last + ``torch.compile`` (run last: its compile time
             is the least predictable), side by side
3. train     a short FGSM-RS fast-AT run on CIFAR-10 (PreAct ResNet-18, ε = 8/255, bf16 + channels_last):
             epoch times, clean / FGSM / PGD-20 test accuracy
4. eval      ``armor eval --suite standard`` on the first 500 test images of that run's best.pt, timed
5. torchrun  ``torchrun --standalone --nproc_per_node=1 -m armor train`` (tiny digits run; exit 0 and its files),
             then an nccl probe under torchrun (init, all_reduce, a DDP step)

Without CUDA (or with ``--cpu-smoke``) every part runs at tiny sizes (TinyCNN, a few steps, gloo; CIFAR-10
chunks if given, else the embedded digits data) in well under a minute: that is what the tests exercise.

Output (``--out``, default ``$OUT`` or out/gpu_check): gpu_check.json (every part: status, seconds, figures),
gpu_check.txt (the printed summary), gpu_check.log (every part's output), and the train/eval records
(train_results.json, train_metrics.jsonl, eval.json). Run folders and checkpoints stay in ``--work``.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the checkout's armor, installed or not

from armor.errors import UserError  # noqa: E402  (torch-free)

MANIFEST = "manifest.json"
FORMAT = "armor-npy-chunks"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MIB = 2 ** 20
SCHEMA = "armor_gpu_check"
SCHEMA_VERSION = 1


def default_stash() -> Path:
    return Path(os.environ.get("ARMOR_CHUNKS") or "/tmp/armor_chunks")


# == chunks ===========================================================================================================
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 * MIB), b""):
            h.update(block)
    return h.hexdigest()


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def check_exact_copy(arrays: Dict[str, np.ndarray], dataset: str, where: str,
                     hint: str = "re-make the chunks from the exact copy") -> None:
    """Every array's raw bytes against the sha256 table of the exact copies armor was checked on."""
    from armor.data.datasets import ARRAY_SHA256

    if dataset not in ARRAY_SHA256:
        raise UserError(f"no checksum table for dataset {dataset!r}; known: {', '.join(ARRAY_SHA256)}")
    for key, expected in ARRAY_SHA256[dataset].items():
        if sha256_array(arrays[key]) != expected:
            raise UserError(f"{where}: array {key} differs from the exact {dataset} copy (sha256 mismatch); "
                            f"{hint}")


def read_manifest(folder: Path) -> Dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"no {MANIFEST} in {str(folder)!r}; make the chunks with python "
                        f"benchmarks/make_cifar_chunks.py and carry the manifest with every chunk")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); copy it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != 1:
        raise UserError(f"{path} is not an {FORMAT} manifest of version 1")
    if sorted(manifest.get("arrays", {})) != sorted(ARRAYS):
        raise UserError(f"{path} must describe the arrays {', '.join(ARRAYS)}")
    return manifest


def check_chunk(folder: Path, name: str, info: Dict[str, Any]) -> None:
    """The chunk file is there with the manifest's size and sha256 (one line when not)."""
    path = Path(folder) / name
    if not path.is_file():
        raise UserError(f"chunk {name} is missing from {str(folder)!r}; carry it (see benchmarks/README.md)")
    size = path.stat().st_size
    if size != info["bytes"]:
        raise UserError(f"chunk {name} in {str(folder)!r} is corrupted: {size} bytes, the manifest says "
                        f"{info['bytes']}; copy it again or re-make the chunks")
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise UserError(f"chunk {name} in {str(folder)!r} is corrupted: sha256 {digest[:16]}… differs from the "
                        f"manifest's {info['sha256'][:16]}…; copy it again or re-make the chunks")


def assemble_chunks(folder: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """The four arrays rebuilt from the chunks in ``folder``; every chunk and every array checked against the
    manifest (a missing or corrupted chunk is a ``UserError`` naming it)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = [c for c in manifest["chunks"] if not (folder / c).is_file()]
    if missing:
        raise UserError(f"{str(folder)!r} lacks chunk(s) {', '.join(missing)} of {manifest['name']}; carry them "
                        f"(see benchmarks/README.md)")
    for name, info in manifest["chunks"].items():
        check_chunk(folder, name, info)
    arrays: Dict[str, np.ndarray] = {}
    for key in ARRAYS:
        spec = manifest["arrays"][key]
        parts = []
        for name in spec["chunks"]:
            part = np.load(folder / name, allow_pickle=False)
            start, stop = manifest["chunks"][name]["rows"]
            if len(part) != stop - start:
                raise UserError(f"chunk {name} holds {len(part)} rows, the manifest says {stop - start}")
            parts.append(part)
        a = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if str(a.dtype) != spec["dtype"] or list(a.shape) != spec["shape"] or sha256_array(a) != spec["sha256"]:
            raise UserError(f"array {key} rebuilt from {str(folder)!r} differs from the manifest (dtype {a.dtype}, "
                            f"shape {list(a.shape)}); re-make the chunks")
        arrays[key] = a
    return arrays, manifest


def write_npz(arrays: Dict[str, np.ndarray], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: arrays[k] for k in ARRAYS})  # uncompressed: CIFAR-10 hardly compresses
    os.replace(tmp, path)
    return path


def chunk_status(folder: Path, manifest: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """(present, missing) chunk names; present means the file is there with the manifest's size."""
    present, missing = [], []
    for name, info in manifest["chunks"].items():
        path = Path(folder) / name
        (present if path.is_file() and path.stat().st_size == info["bytes"] else missing).append(name)
    return present, missing


def stash(src: Path, dst: Path) -> Tuple[str, bool]:
    """Copy the chunks carried in ``src`` (each verified first) into ``dst`` outside the checkout, where they wait
    for the other calls; returns (report, complete). A stash of another chunk set (other manifest id) is replaced."""
    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    if dst.resolve() == src.resolve():
        raise UserError(f"--to must differ from --from ({str(src)!r})")
    dst.mkdir(parents=True, exist_ok=True)
    if (dst / MANIFEST).is_file():
        try:
            old_id = json.loads((dst / MANIFEST).read_text()).get("id")
        except ValueError:
            old_id = None
        if old_id != manifest["id"]:
            for path in dst.iterdir():
                if path.name == MANIFEST or path.name in manifest["chunks"] or path.suffix == ".npy":
                    path.unlink()
    copied = []
    for name, info in manifest["chunks"].items():
        if not (src / name).is_file():
            continue
        check_chunk(src, name, info)  # corrupted in transfer: refuse it, keep what the stash had
        tmp = dst / (name + ".tmp")
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, dst / name)
        copied.append(name)
    shutil.copyfile(src / MANIFEST, dst / MANIFEST)
    present, missing = chunk_status(dst, manifest)
    mib = sum(manifest["chunks"][c]["bytes"] for c in present) / MIB
    lines = [f"stash {dst}: copied {', '.join(copied) or 'nothing'}; holds {len(present)} of "
             f"{len(manifest['chunks'])} chunks of {manifest['name']} ({mib:.1f} MiB)"]
    lines.append("complete: every chunk is there" if not missing else f"still missing: {', '.join(missing)}")
    return "\n".join(lines), not missing


# == the parts' settings ===============================================================================================
GPU = {
    "budget": 470,
    "bench": {"model": "preact_resnet18", "input_shape": [3, 32, 32], "batch": 512, "steps": 10, "repeats": 10,
              "warmup": 2, "device": "cuda", "compile_backend": "inductor"},
    "train": ["--model", "preact_resnet18", "--method", "fgsm_rs", "--eps", "8/255", "--step-size", "10/255",
              "--optimizer", "sgd", "--lr", "0.2", "--momentum", "0.9", "--weight-decay", "5e-4",
              "--schedule", "onecycle", "--batch-size", "512", "--amp", "bf16", "--channels-last", "true",
              "--eval-attacks", "fgsm", "pgd", "--eval-steps", "20", "--device", "cuda"],
    "train_epochs": 10,
    "eval": ["--suite", "standard", "--n", "500", "--batch-size", "500", "--device", "cuda"],
    "torchrun_backend": "nccl",
    "torchrun_device": "cuda",
    # (box, reserve): a part never runs longer than its box; the parts after it keep their reserves
    "boxes": {"bench_fp32": (75, 30), "bench_bf16_cl": (75, 30), "train": (170, 60), "eval": (120, 45),
              "torchrun": (75, 30), "bench_compiled": (240, 30)},
}
CPU = {
    "budget": 170,
    "bench": {"model": "tiny_cnn", "input_shape": [3, 32, 32], "batch": 16, "steps": 2, "repeats": 1, "warmup": 1,
              "device": "cpu", "threads": 1, "compile_backend": "aot_eager"},
    "train": ["--model", "tiny_cnn", "--method", "fgsm_rs", "--eps", "8/255", "--step-size", "10/255",
              "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--schedule", "onecycle", "--batch-size", "64",
              "--amp", "bf16", "--channels-last", "true", "--val-steps", "2", "--guard-batch", "32",
              "--guard-steps", "2", "--eval-attacks", "fgsm", "pgd", "--eval-steps", "2", "--no-plot",
              "--device", "cpu"],
    "train_sizes": ["--train-size", "256", "--val-size", "64", "--test-size", "64"],
    "train_epochs": 1,
    "eval": ["--suite", "standard", "--n", "20", "--batch-size", "20", "--steps", "2", "--queries", "10",
             "--check-n", "10", "--device", "cpu"],
    "torchrun_backend": "gloo",
    "torchrun_device": "cpu",
    "boxes": {"bench_fp32": (40, 10), "bench_bf16_cl": (40, 10), "train": (90, 20), "eval": (60, 15),
              "torchrun": (90, 20), "bench_compiled": (60, 10)},
}
BENCH_VARIANTS = {"bench_fp32": ("fp32", {"amp": "off", "channels_last": False, "compile": False}),
                  "bench_bf16_cl": ("bf16+channels_last", {"amp": "bf16", "channels_last": True, "compile": False}),
                  "bench_compiled": ("bf16+channels_last+compile", {"amp": "bf16", "channels_last": True,
                                                                    "compile": True})}
ORDER = ("data", "bench_fp32", "bench_bf16_cl", "train", "eval", "torchrun", "bench_compiled")
#: the steps in the order they run; the parts of one step share a process. On a GPU each bench variant has its own
#: (a compile crash or hang cannot take the others; the least predictable, compile, runs last on what is left);
#: the CPU mode runs the three in one process, which saves two start-ups of torch.
GPU["steps"] = [(p,) for p in ORDER]
CPU["steps"] = [("data",), ("bench_fp32", "bench_bf16_cl", "bench_compiled"), ("train",), ("eval",), ("torchrun",)]
#: the tiny run launched by torchrun (both modes): digits, TinyCNN, one epoch of PGD-1 AT
TORCHRUN_TRAIN = ["--dataset", "digits", "--model", "tiny_cnn", "--method", "pgd_at", "--steps", "1", "--epochs", "1",
                  "--batch-size", "64", "--val-size", "64", "--val-steps", "1", "--test-size", "32",
                  "--eval-attacks", "pgd", "--eval-steps", "1", "--no-plot"]
TORCHRUN_FILES = ("config.yaml", "metrics.jsonl", "best.pt", "last.pt", "results.json")


# == running a part =====================================================================================================
class Check:
    """The state of one run: settings, time budget, the log and the JSON written after every part."""

    def __init__(self, args: argparse.Namespace, mode: str, sizes: Dict[str, Any]):
        self.args, self.mode, self.sizes = args, mode, sizes
        self.out = Path(args.out)
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="armor_gpu_check_"))
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        self.log_path = self.out / "gpu_check.log"
        self.log_path.write_text("")
        self.start = time.perf_counter()
        self.budget = float(args.budget or sizes["budget"])
        self.deadline = self.start + self.budget
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        self.env["PYTHONUNBUFFERED"] = "1"
        if mode == "cpu-smoke":
            self.env["OMP_NUM_THREADS"] = "1"
        self.result: Dict[str, Any] = {"kind": SCHEMA, "schema_version": SCHEMA_VERSION, "mode": mode,
                                       "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                                           timespec="seconds"),
                                       "budget_s": self.budget, "environment": environment(), "parts": {},
                                       "bench_rows": []}
        self.data: Optional[Dict[str, Any]] = None  # dataset flags for train, when the data part found some
        self.selected: Sequence[str] = ORDER  # the parts this run was asked for
        self.running: Sequence[str] = []  # the parts of the step under way

    # -- output -------------------------------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        print(text, flush=True)
        with open(self.log_path, "a") as f:
            f.write(text + "\n")

    def write_json(self) -> None:
        self.result["wall_s"] = round(time.perf_counter() - self.start, 1)
        tmp = self.out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n")
        os.replace(tmp, self.out / "gpu_check.json")

    def record(self, name: str, part: Dict[str, Any]) -> Dict[str, Any]:
        self.result["parts"][name] = part
        status = part["status"]
        line = f"[{status:>7}] {name:15s} {part.get('seconds', 0):7.1f} s"
        if part.get("summary"):
            line += f"  {part['summary']}"
        if part.get("error"):
            line += f"  — {part['error']}"
        self.say(line)
        if status in ("failed", "timeout") and part.get("tail"):
            self.say("          " + "\n          ".join(part["tail"].strip().splitlines()[-12:]))
        self.write_json()
        return part

    # -- time ---------------------------------------------------------------------------------------------------------
    def limit_for(self, names: Sequence[str]) -> float:
        """Seconds the step running ``names`` may take: their boxes, less what the parts of the later steps are
        guaranteed (their reserves), within the budget."""
        boxes = self.sizes["boxes"]
        box, reserve = sum(boxes[n][0] for n in names), sum(boxes[n][1] for n in names)
        remaining = self.deadline - time.perf_counter()
        index = next(i for i, step in enumerate(self.sizes["steps"]) if names[0] in step)
        later = [n for step in self.sizes["steps"][index + 1:] for n in step if n in self.selected and n in boxes]
        reserved = sum(boxes[n][1] for n in later)
        return max(min(box, remaining - reserved), min(reserve, remaining))

    def run_process(self, name: str, cmd: List[str], limit: float) -> Dict[str, Any]:
        """Run ``cmd`` in its own process group for at most ``limit`` s; its output goes to the log."""
        log_file = self.work / "logs" / f"{name}.log"
        start = time.perf_counter()
        with open(log_file, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            # its own process group (killed whole: torchrun's workers too), not its own session: whatever ends
            # this script's session (the device tool at its time limit) still ends the part
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=str(ROOT), env=self.env,
                                    preexec_fn=os.setpgrp)
            timed_out = False
            ends = time.perf_counter() + max(limit, 1)
            try:
                while True:
                    # short waits, so that a signal whose exception Python swallowed (one landing in an at-fork
                    # hook of Popen is only printed) still stops the part
                    raise_if_interrupted()
                    try:
                        rc = proc.wait(timeout=max(min(0.5, ends - time.perf_counter()), 0.01))
                        break
                    except subprocess.TimeoutExpired:
                        if time.perf_counter() >= ends:
                            raise
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                rc = proc.returncode
            finally:
                if proc.poll() is None:  # interrupted (a signal to this script): leave nothing running
                    _kill_group(proc)
        seconds = time.perf_counter() - start
        text = log_file.read_text(errors="replace")
        with open(self.log_path, "a") as f:
            f.write(f"\n===== {name} ({seconds:.1f} s, {'timed out' if timed_out else f'exit {rc}'}) =====\n")
            f.write(text[-4 * MIB:])
        return {"rc": rc, "timed_out": timed_out, "seconds": seconds, "output": text}


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:]


def environment() -> Dict[str, Any]:
    import torch

    from armor import __version__

    env: Dict[str, Any] = {"armor": __version__, "torch": torch.__version__, "python": platform.python_version(),
                           "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
                           "cpu_count": os.cpu_count(), "machine": platform.machine()}
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        env["git_commit"] = commit.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["git_commit"] = None
    if shutil.which("nvidia-smi"):
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()[:300]
        except (OSError, subprocess.SubprocessError) as exc:
            env["nvidia_smi"] = f"failed: {exc}"
    return env


# == the parts ==========================================================================================================
def part_data(check: Check) -> Dict[str, Any]:
    """Find the data: chunks (reassembled and verified), a folder holding cifar10.npz, or digits in the CPU mode."""
    args, start = check.args, time.perf_counter()
    sizes = list(check.sizes.get("train_sizes", []))

    def done(status: str, summary: str = "", error: str = "", **extra: Any) -> Dict[str, Any]:
        return {"status": status, "seconds": round(time.perf_counter() - start, 2), "summary": summary,
                "error": error, **extra}

    chunks = Path(args.chunks) if args.chunks else None
    data_dir = Path(args.data_dir) if args.data_dir else None
    if not args.no_cifar and chunks is None and data_dir is None:  # look where the wrapper and the README put them
        for candidate in (default_stash(), ROOT / "data_chunks"):
            if (candidate / MANIFEST).is_file():
                chunks = candidate
                break
        if chunks is None:
            from armor.data.datasets import default_data_dir

            found = default_data_dir()
            if found is not None and (found / "cifar10.npz").is_file():
                data_dir = found
    try:
        if args.no_cifar or (chunks is None and data_dir is None):
            why = "--no-cifar" if args.no_cifar else "no CIFAR-10 chunks or cifar10.npz found"
            if check.mode != "cpu-smoke":
                raise UserError(f"{why}: carry the chunks (benchmarks/README.md, 'GPU check') or pass --chunks DIR")
            check.data = {"flags": ["--dataset", "digits", *sizes], "name": "digits"}
            return done("ok", f"digits (embedded; {why})", source="digits")
        if chunks is not None:
            arrays, manifest = assemble_chunks(chunks)
            name = manifest["name"]
            from armor.data.datasets import ARRAY_SHA256

            exact = name in ARRAY_SHA256
            if exact:
                check_exact_copy(arrays, name, str(chunks))
            folder = check.work / "data"
            npz = write_npz(arrays, folder / f"{name}.npz")
            flags = ["--dataset", name, "--data-dir", str(folder)] if exact else ["--dataset", str(npz)]
            shapes = ", ".join(f"{k} {tuple(a.shape)}" for k, a in arrays.items())
            summary = (f"{name} from {len(manifest['chunks'])} chunks in {chunks}"
                       f"{' (exact copy, sha256 checked)' if exact else ' (not a checked exact copy)'}: {shapes}")
            check.data = {"flags": [*flags, *sizes], "name": name}
            return done("ok", summary, source=f"chunks:{chunks}", exact_copy=exact, dataset=name)
        npz = data_dir / "cifar10.npz"
        if not npz.is_file():
            raise UserError(f"{str(data_dir)!r} holds no cifar10.npz")
        check.data = {"flags": ["--dataset", "cifar10", "--data-dir", str(data_dir), *sizes], "name": "cifar10"}
        return done("ok", f"cifar10.npz in {data_dir} (armor checks its sha256 when it loads it)",
                    source=f"dir:{data_dir}", exact_copy=True, dataset="cifar10")
    except UserError as exc:
        return done("failed", error=str(exc))


def part_bench(check: Check, names: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """The bench variants ``names`` in one process (each variant's result or error in its own JSON file)."""
    limit = check.limit_for(names)
    folder = check.work / "bench"
    folder.mkdir(exist_ok=True)
    for name in names:
        for path in (folder / f"{name}.json", folder / f"{name}.error.json"):
            path.unlink(missing_ok=True)
    settings = check.sizes["bench"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "_bench", "--json-dir", str(folder),
           "--model", settings["model"], "--input-shape", ",".join(map(str, settings["input_shape"])),
           "--batch", str(settings["batch"]), "--steps", str(settings["steps"]), "--repeats", str(settings["repeats"]),
           "--warmup", str(settings["warmup"]), "--device", settings["device"],
           "--compile-backend", settings["compile_backend"]]
    if settings.get("threads"):
        cmd += ["--threads", str(settings["threads"])]
    for name in names:
        cmd += ["--variant", name]
    run = check.run_process("+".join(names), cmd, limit)
    parts = {}
    for name in names:
        label = BENCH_VARIANTS[name][0]
        path, error_path = folder / f"{name}.json", folder / f"{name}.error.json"
        part: Dict[str, Any] = {"status": "ok", "seconds": round(run["seconds"], 1), "limit_s": round(limit),
                                "rc": run["rc"], "variant": label}
        row: Dict[str, Any] = {"variant": label, "status": "ok", "wall_s": round(run["seconds"], 1)}
        if path.is_file():
            result = json.loads(path.read_text())
            part["result"] = result
            if len(names) > 1:  # shared process: the variant's own time (the process start is not in it)
                part["seconds"] = row["wall_s"] = round(result["wall_s"], 1)
            ms = {r["name"]: r for r in result["rows"]}
            row.update({key: round(ms[n]["ms"], 3) for key, n in BENCH_COLUMNS.items() if n in ms})
            row["armor_at_vs_hand"] = round(ms["armor AT step"]["vs_hand"], 3)
            row["armor_at_vs_floor"] = round(ms["armor AT step"]["vs_floor"], 3)
            row["armor_pgd_vs_hand"] = round(ms["armor PGD"]["vs_hand"], 3)
            # what the timed rounds do not account for: model set-up, warm-up beyond steady state, compilation
            rounds = (result["repeats"] + settings["warmup"]) * sum(r["ms"] for r in result["rows"]) / 1000
            row["setup_s"] = round(max(result["wall_s"] - rounds, 0.0), 1)
            row.update({"precision": result["precision"], "channels_last": result["channels_last"],
                        "compile": result["compile"], "compile_backend": result.get("compile_backend"),
                        "device_name": result["device_name"]})
            part["summary"] = (f"{label}: clean step {row['clean_step_ms']:.1f} ms, armor AT step "
                               f"{row['armor_at_step_ms']:.1f} ms ({row['armor_at_vs_hand']:.2f}× hand), armor PGD "
                               f"{row['armor_pgd_ms']:.1f} ms")
        else:
            part["status"] = row["status"] = "failed" if error_path.is_file() or not run["timed_out"] else "timeout"
            if error_path.is_file():
                part["error"] = json.loads(error_path.read_text())["error"]
            elif run["timed_out"]:
                part["error"] = f"no result within the {limit:.0f} s box"
            else:
                part["error"] = f"exit {run['rc']}: {_last_error(run['output'])}"
            part["tail"] = _tail(run["output"])
        part["row"] = row
        check.result["bench_rows"] = [r for r in check.result["bench_rows"] if r["variant"] != label] + [row]
        parts[name] = part
    return parts


BENCH_COLUMNS = {"clean_step_ms": "clean step", "hand_at_step_ms": "hand AT step", "armor_at_step_ms": "armor AT step",
                 "hand_pgd_ms": "hand PGD", "armor_pgd_ms": "armor PGD"}


def _last_error(output: str) -> str:
    """The error line of a failed process (armor's one-line UserError, or a traceback's last line)."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("armor: error:", "gpu_check: error:")) or "Error" in ln.split(":")[0]:
            return ln[:300]
    return lines[-1][:300] if lines else ""


def part_train(check: Check) -> Dict[str, Any]:
    if check.data is None:
        return {"status": "skipped", "seconds": 0.0, "error": "no data (see the data part)"}
    limit = check.limit_for(["train"])
    run_dir = check.work / "runs" / "fast_at"
    epochs = check.args.train_epochs or check.sizes["train_epochs"]
    cmd = [sys.executable, "-m", "armor", "train", *check.data["flags"], *check.sizes["train"], "--epochs",
           str(epochs), "--out", str(run_dir), "--overwrite", "--quiet"]
    run = check.run_process("train", cmd, limit)
    part: Dict[str, Any] = {"status": "ok", "seconds": round(run["seconds"], 1), "limit_s": round(limit),
                            "rc": run["rc"], "dataset": check.data["name"], "epochs_asked": epochs,
                            "command": " ".join(cmd[2:])}
    metrics = _read_jsonl(run_dir / "metrics.jsonl")
    seconds = [r.get("seconds") for r in metrics if r.get("seconds") is not None]
    part["epochs_done"] = len(metrics)
    part["epoch_seconds"] = seconds
    if seconds:
        part["first_epoch_s"] = seconds[0]
        part["median_epoch_s"] = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    part["last_epoch"] = metrics[-1] if metrics else None
    results = run_dir / "results.json"
    if results.is_file():
        from armor.results import TrainingRecord, read_record

        record = read_record(results, TrainingRecord)
        test = record.test
        part.update({"best_epoch": record.best_epoch, "stop_reason": record.stop_reason, "test_n": test.n,
                     "clean_acc": test.clean_acc, "test_acc": {label: test.acc(label) for label in test.labels},
                     "worst_case_acc": test.worst_case_acc, "train_seconds": record.train_seconds})
        shutil.copyfile(results, check.out / "train_results.json")
    if metrics:
        shutil.copyfile(run_dir / "metrics.jsonl", check.out / "train_metrics.jsonl")
    part["best_pt"] = str(run_dir / "best.pt") if (run_dir / "best.pt").is_file() else None
    if run["timed_out"] or run["rc"] != 0 or not results.is_file():
        part["status"] = "timeout" if run["timed_out"] else "failed"
        part["error"] = (f"stopped at its {limit:.0f} s box after {len(metrics)} of {epochs} epochs"
                         if run["timed_out"] else f"exit {run['rc']}: {_last_error(run['output'])}")
        part["tail"] = _tail(run["output"])
    if "clean_acc" in part:
        accs = ", ".join(f"{k} {v:.1f} %" for k, v in part["test_acc"].items())
        part["summary"] = (f"{part['epochs_done']}/{epochs} epochs of {check.data['name']}, epoch 1 "
                           f"{part['first_epoch_s']:.1f} s, then {part['median_epoch_s']:.1f} s median; test "
                           f"(n={part['test_n']}): clean {part['clean_acc']:.1f} %, {accs}"
                           + (f"; stopped: {part['stop_reason']}" if part.get("stop_reason") else ""))
    elif seconds:
        part["summary"] = f"{len(metrics)}/{epochs} epochs, epoch 1 {seconds[0]:.1f} s"
    return part


def part_eval(check: Check, best_pt: Optional[str]) -> Dict[str, Any]:
    if not best_pt:
        return {"status": "skipped", "seconds": 0.0, "error": "no best.pt from the train part"}
    limit = check.limit_for(["eval"])
    out = check.work / "eval.json"
    cmd = [sys.executable, "-m", "armor", "eval", "--checkpoint", best_pt, *check.sizes["eval"], "--out", str(out)]
    run = check.run_process("eval", cmd, limit)
    part: Dict[str, Any] = {"status": "ok", "seconds": round(run["seconds"], 1), "limit_s": round(limit),
                            "rc": run["rc"], "command": " ".join(cmd[2:])}
    if run["timed_out"] or run["rc"] != 0 or not out.is_file():
        part["status"] = "timeout" if run["timed_out"] else "failed"
        part["error"] = (f"no result within its {limit:.0f} s box" if run["timed_out"]
                         else f"exit {run['rc']}: {_last_error(run['output'])}")
        part["tail"] = _tail(run["output"])
        return part
    from armor.results import EvaluationRecord, read_record

    record = read_record(out, EvaluationRecord)
    res = record.result
    checks = (record.checks or {}).get("checks", [])
    statuses: Dict[str, int] = {}
    for c in checks:
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
    part.update({"suite": record.suite, "n": res.n, "clean_acc": res.clean_acc, "worst_case_acc": res.worst_case_acc,
                 "cumulative_acc": {label: res.acc(label) for label in res.labels}, "reduced": record.reduced,
                 "forward_passes": res.forward_passes, "checks": statuses,
                 "warnings": [c["name"] for c in checks if c["status"] == "WARN"]})
    shutil.copyfile(out, check.out / "eval.json")
    chain = " → ".join(f"{v:.1f}" for v in part["cumulative_acc"].values())
    part["summary"] = (f"{record.suite} suite, n={res.n}: clean {res.clean_acc:.1f} %, {chain} = worst case "
                       f"{res.worst_case_acc:.1f} %; checks {', '.join(f'{k} {v}' for k, v in statuses.items())}"
                       + (f" (reduced: {'; '.join(record.reduced)})" if record.reduced else ""))
    return part


def part_torchrun(check: Check) -> Dict[str, Any]:
    """``torchrun -m armor train`` (one process) must exit 0 and write its files; then the backend itself."""
    limit = check.limit_for(["torchrun"])
    start = time.perf_counter()
    backend, device = check.sizes["torchrun_backend"], check.sizes["torchrun_device"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    run_dir = check.work / "runs" / "torchrun"
    cmd = [*launcher, "-m", "armor", "train", *TORCHRUN_TRAIN, "--device", device, "--out", str(run_dir),
           "--overwrite", "--quiet"]
    run = check.run_process("torchrun_train", cmd, limit)
    files = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    missing = [f for f in TORCHRUN_FILES if f not in files]
    part: Dict[str, Any] = {"status": "ok", "limit_s": round(limit), "backend": backend,
                            "train": {"rc": run["rc"], "seconds": round(run["seconds"], 1), "files": files,
                                      "missing": missing, "command": "torchrun --standalone --nproc_per_node=1 "
                                                                     + " ".join(cmd[len(launcher):])}}
    errors = []
    if run["timed_out"] or run["rc"] != 0 or missing:
        errors.append("torchrun armor train " + ("timed out" if run["timed_out"] else f"exit {run['rc']}")
                      + (f", missing {', '.join(missing)}" if missing else "")
                      + (f": {_last_error(run['output'])}" if run["rc"] not in (0, None) else ""))
        part["tail"] = _tail(run["output"])
    probe_json = check.work / "dist_probe.json"
    left = max(limit - (time.perf_counter() - start), 5)
    probe = check.run_process("torchrun_probe", [*launcher, str(Path(__file__).resolve()), "_dist_probe", "--backend",
                                                 backend, "--json", str(probe_json)], left)
    part["probe"] = {"rc": probe["rc"], "seconds": round(probe["seconds"], 1)}
    if probe_json.is_file():
        part["probe"].update(json.loads(probe_json.read_text()))
    if probe["timed_out"] or probe["rc"] != 0 or not part["probe"].get("ok"):
        errors.append(f"{backend} probe " + ("timed out" if probe["timed_out"] else f"exit {probe['rc']}")
                      + (f": {_last_error(probe['output'])}" if probe["rc"] not in (0, None) else ""))
        part["tail"] = (part.get("tail", "") + "\n" + _tail(probe["output"])).strip()
    part["seconds"] = round(time.perf_counter() - start, 1)
    if errors:
        part["status"] = "timeout" if run["timed_out"] or probe["timed_out"] else "failed"
        part["error"] = "; ".join(errors)
    p = part["probe"]
    part["summary"] = (f"torchrun -m armor train exit {run['rc']} in {run['seconds']:.1f} s "
                       f"({'all files' if not missing else 'missing ' + ', '.join(missing)}); {backend} probe: "
                       + (f"all_reduce {p.get('all_reduce')}, DDP step {p.get('ddp_step')}, world size "
                          f"{p.get('world_size')}" if "all_reduce" in p else "no result"))
    part["note"] = ("with WORLD_SIZE=1 armor trains in one process without a process group (by design); armor's "
                    "multi-rank paths (sharding, all-reduce of metrics, split evaluation) need ≥ 2 GPUs")
    return part


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


# == the summary =========================================================================================================
def summary_text(check: Check) -> str:
    r = check.result
    env = r["environment"]
    lines = [f"armor GPU check ({r['mode']}): armor {env['armor']}, torch {env['torch']} (CUDA {env['torch_cuda']}), "
             f"python {env['python']}, {env.get('nvidia_smi') or env['machine']}; {r['wall_s']:.0f} s of a "
             f"{r['budget_s']:.0f} s budget"]
    rows = r["bench_rows"]
    if rows:
        s = check.sizes["bench"]
        lines += ["", f"bench: {s['model']}, synthetic {'×'.join(map(str, s['input_shape']))}, batch {s['batch']}, "
                      f"PGD-{s['steps']}, median ms of {s['repeats']} interleaved rounds"]
        head = ["variant", "clean", "hand AT", "armor AT", "hand PGD", "armor PGD", "AT×hand", "AT×floor",
                "PGD×hand", "setup s", "wall s"]
        table = []
        for row in sorted(rows, key=lambda x: list(BENCH_VARIANTS).index(_bench_key(x["variant"]))):
            if row["status"] != "ok":
                table.append([row["variant"], row["status"], "", "", "", "", "", "", "", "", f"{row['wall_s']:.0f}"])
                continue
            table.append([row["variant"], *(f"{row[k]:.1f}" for k in BENCH_COLUMNS),
                          f"{row['armor_at_vs_hand']:.2f}", f"{row['armor_at_vs_floor']:.2f}",
                          f"{row['armor_pgd_vs_hand']:.2f}", f"{row['setup_s']:.0f}", f"{row['wall_s']:.0f}"])
        lines.append(_format_table(head, table))
    lines.append("")
    for name, part in r["parts"].items():
        lines.append(f"{name:15s} {part['status']:8s} {part.get('seconds', 0):6.1f} s  "
                     f"{part.get('summary') or part.get('error') or ''}")
    if r.get("all_ok"):
        lines += ["", "all parts ok"]
    else:
        bad = [f"{n} {p['status']}" for n, p in r["parts"].items() if p["status"] != "ok"]
        lines += ["", "NOT all parts ok: " + (", ".join(bad) or "none finished")
                  + (f" (interrupted by {r['interrupted']})" if r.get("interrupted") else "")]
    return "\n".join(lines)


def _bench_key(label: str) -> str:
    return next(k for k, (lab, _) in BENCH_VARIANTS.items() if lab == label)


def _format_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def run_check(args: argparse.Namespace) -> int:
    import torch

    if args.cpu_smoke:
        mode = "cpu-smoke"
    elif torch.cuda.is_available():
        mode = "gpu"
    else:
        mode = "cpu-smoke"
        print("gpu_check: no CUDA device here: running the reduced CPU mode (--cpu-smoke)", flush=True)
    parts = [p.strip() for p in args.parts.split(",")] if args.parts else list(ORDER)
    unknown = [p for p in parts if p not in ORDER]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; choose from: {', '.join(ORDER)}")
    if ("train" in parts or "eval" in parts) and "data" not in parts:
        parts.insert(0, "data")  # training needs the data found first
    if args.chunks and args.data_dir:
        raise UserError("give either --chunks or --data-dir, not both")
    check = Check(args, mode, GPU if mode == "gpu" else CPU)
    check.say(f"armor GPU check, mode {mode}: parts {', '.join(parts)}; budget {check.budget:.0f} s; "
              f"out {check.out}; work {check.work}")
    check.write_json()
    check.selected = parts
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _interrupt)
    try:
        _run_steps(check, parts)
    except Interrupted as exc:
        check.result["interrupted"] = str(exc)
        for name in check.running:
            check.result["parts"][name] = {"status": "interrupted", "seconds": 0.0, "error": f"by {exc}"}
        check.say(f"gpu_check: interrupted by {exc}; the parts done so far are in {check.out / 'gpu_check.json'}")
    check.result["all_ok"] = "interrupted" not in check.result and all(
        p["status"] == "ok" for p in check.result["parts"].values())
    check.write_json()
    text = summary_text(check)
    (check.out / "gpu_check.txt").write_text(text + "\n")
    check.say("")
    check.say(text)
    return 0 if check.result["all_ok"] else 1


class Interrupted(BaseException):
    """A signal to this script (SIGTERM from a time limit, SIGINT, SIGHUP) — not a part's failure."""


_SIGNALLED: List[str] = []


def _interrupt(signum: int, _frame: Any) -> None:
    _SIGNALLED.append(signal.Signals(signum).name)
    raise Interrupted(_SIGNALLED[0])


def raise_if_interrupted() -> None:
    """Raise the signal's Interrupted again where Python swallowed it (raised inside an at-fork or logging hook)."""
    if _SIGNALLED:
        raise Interrupted(_SIGNALLED[0])


def _run_steps(check: Check, parts: Sequence[str]) -> None:
    best_pt: Optional[str] = None
    for step in check.sizes["steps"]:
        names = [n for n in step if n in parts]
        if not names:
            continue
        if check.deadline - time.perf_counter() < 3:
            for name in names:
                check.record(name, {"status": "skipped", "seconds": 0.0, "error": "the time budget is spent"})
            continue
        raise_if_interrupted()
        check.running = names
        try:
            if names[0].startswith("bench_"):
                results = part_bench(check, names)
            elif names[0] == "data":
                results = {"data": part_data(check)}
            elif names[0] == "train":
                results = {"train": part_train(check)}
                best_pt = results["train"].get("best_pt")
            elif names[0] == "eval":
                results = {"eval": part_eval(check, best_pt)}
            else:
                results = {"torchrun": part_torchrun(check)}
        except Exception as exc:  # a bug in this script must not cost the other parts
            error = f"gpu_check: {type(exc).__name__}: {exc}"[:300]
            results = {name: {"status": "failed", "seconds": 0.0, "error": error} for name in names}
        check.running = []
        for name in names:
            check.record(name, results[name])
    raise_if_interrupted()  # a swallowed signal during the last part: the run was still cut short


# == internal entry points (run in their own processes) =================================================================
def bench_entry(args: argparse.Namespace) -> int:
    """``run_bench`` for each ``--variant`` in turn; DIR/<variant>.json, or DIR/<variant>.error.json with its error."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import armor.bench as bench

    if args.compile_backend and args.compile_backend != "inductor":
        # the CPU mode checks torch.compile's tracing (dynamo + AOTAutograd) without inductor's C++ build
        backend = args.compile_backend
        bench.maybe_compile = lambda model, enabled: torch.compile(model, backend=backend) if enabled else model
    folder = Path(args.json_dir)
    failed = 0
    for name in args.variant:
        variant = BENCH_VARIANTS[name][1]
        start = time.perf_counter()
        try:
            result = bench.run_bench(model=args.model, input_shape=tuple(int(v) for v in args.input_shape.split(",")),
                                     batch=args.batch, steps=args.steps, repeats=args.repeats, warmup=args.warmup,
                                     device=args.device, third_party=False, **variant)
        except Exception as exc:  # reported, and the next variant still runs
            failed += 1
            error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            print(f"{name}: {error}", flush=True)
            (folder / f"{name}.error.json").write_text(json.dumps({"error": error}) + "\n")
            continue
        result["wall_s"] = round(time.perf_counter() - start, 2)
        result["compile_backend"] = (args.compile_backend or "inductor") if variant["compile"] else None
        print(bench.format_bench(result), flush=True)
        (folder / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 1 if failed else 0


def dist_probe_entry(args: argparse.Namespace) -> int:
    """Under torchrun: join the group, all_reduce, broadcast an object, one DDP training step; rank 0 writes JSON."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    start = time.perf_counter()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.backend == "nccl":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend=args.backend)
    init_s = time.perf_counter() - start
    x = torch.full((1024,), float(rank + 1), device=device)
    dist.all_reduce(x)
    all_reduce = bool((x == world * (world + 1) / 2).all().item())
    box = [{"from": rank}] if rank == 0 else [None]
    dist.broadcast_object_list(box, src=0)
    broadcast = box[0] == {"from": 0}
    torch.manual_seed(0)  # a small conv net; a plain SGD update (torch.optim would import dynamo: seconds on CPU)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    xb, yb = torch.rand(32, 3, 32, 32, device=device), torch.randint(0, 10, (32,), device=device)
    loss = F.cross_entropy(ddp(xb), yb)
    loss.backward()  # DDP all-reduces the gradients here
    grads = [p.grad for p in model.parameters()]
    ddp_step = bool(torch.isfinite(loss).item()) and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.sub_(0.1 * g)
    ddp(xb).sum().item()  # the next forward (DDP syncs buffers) after the update
    dist.barrier()
    dist.destroy_process_group()
    result = {"backend": args.backend, "world_size": world, "device": str(device), "init_s": round(init_s, 2),
              "all_reduce": all_reduce, "broadcast_object": broadcast, "ddp_step": ddp_step,
              "ok": all_reduce and broadcast and ddp_step, "seconds": round(time.perf_counter() - start, 2)}
    if rank == 0:
        Path(args.json).write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0 if result["ok"] else 1


# == command line ========================================================================================================
def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check.py [run]", description="armor's GPU check (or its reduced CPU mode)")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "out" / "gpu_check"),
                   help="folder for gpu_check.json/.txt/.log and the records (default $OUT, else out/gpu_check)")
    p.add_argument("--work", default=None, help="folder for the runs and checkpoints (default: a new temp folder)")
    p.add_argument("--chunks", default=None, help="folder of CIFAR-10 chunks + manifest.json (default: $ARMOR_CHUNKS "
                                                  "or /tmp/armor_chunks, then data_chunks/, when they hold a manifest)")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="folder holding cifar10.npz (instead of chunks)")
    p.add_argument("--no-cifar", dest="no_cifar", action="store_true",
                   help="CPU mode: train on the embedded digits data even when CIFAR-10 is found")
    p.add_argument("--cpu-smoke", dest="cpu_smoke", action="store_true",
                   help="the reduced CPU mode (automatic without CUDA): every part, tiny sizes")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 470 GPU, 170 CPU)")
    p.add_argument("--train-epochs", dest="train_epochs", type=int, default=None,
                   help="epochs of the fast-AT run (default 10 GPU, 1 CPU)")
    p.add_argument("--parts", default=None, help="comma-separated subset of: " + ", ".join(ORDER))
    return p


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and not argv[0].startswith("-") else "run"
    try:
        if command == "run":
            return run_check(_run_parser().parse_args(argv))
        if command == "stash":
            p = argparse.ArgumentParser(prog="gpu_check.py stash", description="keep carried chunks outside the "
                                                                               "checkout until every call has brought its own")
            p.add_argument("--from", dest="src", default=str(ROOT / "data_chunks"))
            p.add_argument("--to", dest="dst", default=str(default_stash()))
            a = p.parse_args(argv)
            report, _ = stash(Path(a.src), Path(a.dst))
            print(report)
            return 0
        if command == "assemble":
            p = argparse.ArgumentParser(prog="gpu_check.py assemble", description="chunks → one verified .npz")
            p.add_argument("--chunks", default=str(default_stash()))
            p.add_argument("--out", required=True, help="the .npz to write")
            a = p.parse_args(argv)
            arrays, manifest = assemble_chunks(Path(a.chunks))
            if manifest.get("exact_copy_checked"):
                check_exact_copy(arrays, manifest["name"], a.chunks)
            print(f"{write_npz(arrays, Path(a.out))}: {manifest['name']} from {len(manifest['chunks'])} chunks, "
                  f"every chunk and array verified")
            return 0
        if command == "_bench":
            p = argparse.ArgumentParser(prog="gpu_check.py _bench")
            for flag, kind in (("--json-dir", str), ("--model", str), ("--input-shape", str), ("--batch", int),
                               ("--steps", int), ("--repeats", int), ("--warmup", int), ("--device", str),
                               ("--compile-backend", str), ("--threads", int)):
                p.add_argument(flag, type=kind, default=None)
            p.add_argument("--variant", action="append", choices=list(BENCH_VARIANTS), required=True)
            return bench_entry(p.parse_args(argv))
        if command == "_dist_probe":
            p = argparse.ArgumentParser(prog="gpu_check.py _dist_probe")
            p.add_argument("--backend", required=True)
            p.add_argument("--json", required=True)
            return dist_probe_entry(p.parse_args(argv))
        raise UserError(f"unknown command {command!r}; choose run, stash or assemble")
    except UserError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
