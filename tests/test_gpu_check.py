"""benchmarks/gpu_check.py and benchmarks/make_cifar_chunks.py, on CPU only: the chunk round trip (and its refusals),
the stash that gathers chunks over several calls, the time box of a part, and the reduced CPU mode end to end."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from armor.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # make_cifar_chunks imports gpu_check by name: one module, not two
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check")
chunker = _load("make_cifar_chunks")


def _synthetic_npz(path: Path, n_train: int = 200, n_test: int = 80, seed: int = 0) -> dict:
    """CIFAR-shaped uint8 images (channel-last) whose mean colour depends on the label, so a model can learn."""
    rng = np.random.default_rng(seed)

    def images(y):
        base = (y[:, None, None, None].astype(np.int16) * 22)
        return np.clip(base + rng.integers(0, 50, (len(y), 32, 32, 3)), 0, 255).astype(np.uint8)

    y_train = rng.integers(0, 10, n_train).astype(np.uint8)
    y_test = rng.integers(0, 10, n_test).astype(np.uint8)
    arrays = {"x_train": images(y_train), "y_train": y_train, "x_test": images(y_test), "y_test": y_test}
    np.savez(path, **arrays)
    return arrays


@pytest.fixture
def chunked(tmp_path):
    arrays = _synthetic_npz(tmp_path / "syn.npz")
    out = tmp_path / "chunks"
    manifest = chunker.make_chunks(tmp_path / "syn.npz", out, max_bytes=64 * 1024, name="synthetic",
                                   call_bytes=200 * 1024)
    return arrays, out, manifest


def test_chunks_round_trip(chunked, tmp_path):
    arrays, out, manifest = chunked
    assert len(manifest["arrays"]["x_train"]["chunks"]) >= 9  # 200 × 3072 bytes in ≤ 64 KiB pieces
    for name, info in manifest["chunks"].items():
        assert (out / name).stat().st_size == info["bytes"] <= 64 * 1024
    back, read = gpu_check.assemble_chunks(out)
    assert read["id"] == manifest["id"]
    for key, a in arrays.items():
        assert back[key].dtype == a.dtype and np.array_equal(back[key], a)
    # the transfer plan: every chunk once, no call over its limit, the lightest call last
    planned = [c for call in manifest["calls"] for c in call]
    assert sorted(planned) == sorted(manifest["chunks"])
    loads = [sum(manifest["chunks"][c]["bytes"] for c in call) for call in manifest["calls"]]
    assert max(loads) <= 200 * 1024 and loads[-1] == min(loads)
    # the command-line inverse writes an .npz holding the same arrays
    assert gpu_check.main(["assemble", "--chunks", str(out), "--out", str(tmp_path / "back.npz")]) == 0
    with np.load(tmp_path / "back.npz") as npz:
        assert all(np.array_equal(npz[k], a) for k, a in arrays.items())
    # making the chunks again into the same folder replaces the old set, leaving no stale chunk behind
    chunker.make_chunks(tmp_path / "syn.npz", out, max_bytes=1024 * 1024, name="synthetic")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "x_test.0.npy", "x_train.0.npy",
                                                     "y_test.0.npy", "y_train.0.npy"]


def test_a_corrupted_chunk_is_refused_with_one_line(chunked, capsys):
    _, out, _ = chunked
    path = out / "x_train.1.npy"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one pixel, same size: only the sha256 can tell
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"chunk x_train\.1\.npy .* is corrupted: sha256") as err:
        gpu_check.assemble_chunks(out)
    assert "\n" not in str(err.value)
    assert gpu_check.main(["assemble", "--chunks", str(out), "--out", str(out / "x.npz")]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gpu_check: error: chunk x_train.1.npy") and stderr.count("\n") == 1
    path.write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(UserError, match=r"x_train\.1\.npy .* corrupted: \d+ bytes"):
        gpu_check.assemble_chunks(out)
    path.unlink()
    with pytest.raises(UserError, match=r"lacks chunk\(s\) x_train\.1\.npy"):
        gpu_check.assemble_chunks(out)
    (out / "manifest.json").unlink()
    with pytest.raises(UserError, match="no manifest.json"):
        gpu_check.assemble_chunks(out)


def test_only_the_exact_cifar10_copy_is_chunked_as_cifar10(tmp_path):
    _synthetic_npz(tmp_path / "syn.npz")
    with pytest.raises(UserError, match="differs from the exact cifar10 copy"):
        chunker.make_chunks(tmp_path / "syn.npz", tmp_path / "out", name="cifar10")
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert chunker.main(["--src", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")]) == 2


def test_stash_gathers_chunks_over_several_calls(chunked, tmp_path):
    arrays, out, manifest = chunked
    names = list(manifest["chunks"])
    stash = tmp_path / "stash"
    for i, call in enumerate((names[:3], names[3:])):  # what two calls would carry
        carried = tmp_path / f"call{i}"
        carried.mkdir()
        for name in [*call, "manifest.json"]:
            (carried / name).write_bytes((out / name).read_bytes())
        report, complete = gpu_check.stash(carried, stash)
        assert complete == (i == 1), report
        assert ("still missing" in report) == (i == 0)
    back, _ = gpu_check.assemble_chunks(stash)
    assert all(np.array_equal(back[k], a) for k, a in arrays.items())
    # a chunk corrupted in transfer is refused, and the stash keeps its good copy
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_bytes((out / "manifest.json").read_bytes())
    (bad / names[0]).write_bytes(b"\0" * manifest["chunks"][names[0]]["bytes"])
    with pytest.raises(UserError, match="corrupted"):
        gpu_check.stash(bad, stash)
    gpu_check.assemble_chunks(stash)


def _check(tmp_path, **overrides) -> "gpu_check.Check":
    args = Namespace(out=str(tmp_path / "out"), work=str(tmp_path / "work"), chunks=None, data_dir=None,
                     no_cifar=False, cpu_smoke=True, budget=None, train_epochs=None, parts=None)
    for key, value in overrides.items():
        setattr(args, key, value)
    mode = "gpu" if overrides.pop("gpu", False) else "cpu-smoke"
    return gpu_check.Check(args, mode, gpu_check.GPU if mode == "gpu" else gpu_check.CPU)


def test_a_part_is_stopped_at_its_time_box(tmp_path):
    check = _check(tmp_path)
    pid_file = tmp_path / "sleeper.pid"
    code = (f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('started', flush=True); "
            "time.sleep(60); print('finished', flush=True)")
    run = check.run_process("sleeper", [sys.executable, "-c", code], limit=2)
    # stopped at its 2 s box, not waited for: it never got to the end of its 60 s, and it is killed and reaped
    lines = run["output"].splitlines()  # the first line echoes the command
    assert run["timed_out"] and "started" in lines and "finished" not in lines
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert "sleeper" in (check.out / "gpu_check.log").read_text()


def test_data_part_without_cifar(tmp_path, chunked):
    # the CPU mode falls back to the embedded digits data; the GPU mode reports the missing chunks
    cpu = _check(tmp_path / "cpu", no_cifar=True)
    part = gpu_check.part_data(cpu)
    assert part["status"] == "ok" and part["source"] == "digits" and cpu.data["flags"][:2] == ["--dataset", "digits"]
    gpu = _check(tmp_path / "gpu", no_cifar=True, gpu=True)
    part = gpu_check.part_data(gpu)
    assert part["status"] == "failed" and "carry the chunks" in part["error"] and gpu.data is None
    # chunks of a dataset without an exact-copy table are trained on as a custom .npz
    _, out, _ = chunked
    chunks = _check(tmp_path / "chunks", chunks=str(out))
    part = gpu_check.part_data(chunks)
    assert part["status"] == "ok" and part["exact_copy"] is False
    assert chunks.data["flags"][1].endswith("synthetic.npz") and "--train-size" in chunks.data["flags"]


def test_failed_data_skips_train_and_eval_but_the_run_reports(tmp_path, chunked):
    _, out, _ = chunked
    (out / "x_test.0.npy").write_bytes(b"broken")
    res = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "run", "--cpu-smoke", "--chunks", str(out),
                          "--parts", "data,train,eval", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 1, res.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [report["parts"][p]["status"] for p in ("data", "train", "eval")] == ["failed", "skipped", "skipped"]
    assert "x_test.0.npy" in report["parts"]["data"]["error"] and report["all_ok"] is False
    assert "NOT all parts ok" in (tmp_path / "out" / "gpu_check.txt").read_text()


@pytest.mark.slow
def test_cpu_smoke_runs_every_part(tmp_path, chunked):
    _, chunks, _ = chunked
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "run", "--cpu-smoke", "--chunks", str(chunks),
                          "--out", str(out), "--work", str(tmp_path / "work")], capture_output=True, text=True,
                         timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["kind"] == "armor_gpu_check" and report["mode"] == "cpu-smoke" and report["all_ok"]
    assert sorted(report["parts"]) == sorted(gpu_check.ORDER)
    assert all(p["status"] == "ok" for p in report["parts"].values())
    # one row per bench variant, each with the armor bench rows
    rows = {r["variant"]: r for r in report["bench_rows"]}
    assert sorted(rows) == sorted(label for label, _ in gpu_check.BENCH_VARIANTS.values())
    for row in rows.values():
        assert row["status"] == "ok" and all(row[k] > 0 for k in gpu_check.BENCH_COLUMNS)
    assert rows["bf16+channels_last"]["precision"] == "bf16" and rows["bf16+channels_last"]["channels_last"]
    assert rows["bf16+channels_last+compile"]["compile"] and rows["fp32"]["precision"] == "fp32"
    train = report["parts"]["train"]
    assert train["epochs_done"] == 1 and train["dataset"] == "synthetic" and 0 <= train["clean_acc"] <= 100
    assert "pgd-2" in train["test_acc"] and train["epoch_seconds"]
    ev = report["parts"]["eval"]
    assert ev["suite"] == "standard" and ev["n"] == 20 and list(ev["cumulative_acc"]) == ["apgd-ce", "apgd-t", "square"]
    assert ev["reduced"]  # the smoke cuts the suite's budget, and the record says so
    tr = report["parts"]["torchrun"]
    assert tr["train"]["rc"] == 0 and not tr["train"]["missing"] and tr["probe"]["ok"] and tr["backend"] == "gloo"
    assert {"gpu_check.json", "gpu_check.txt", "gpu_check.log", "train_results.json", "train_metrics.jsonl",
            "eval.json"} <= {p.name for p in out.iterdir()}
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back from $OUT
    assert "all parts ok" in res.stdout


@pytest.mark.parametrize("mode", ["GPU", "CPU"])
def test_the_settings_are_valid_armor_options(mode):
    """Every flag the check passes to armor train / armor eval parses and validates here (strict options), so a
    mistake in the GPU settings shows on CPU, not in the device's few minutes."""
    from armor.cli import build_parser, train_overrides
    from armor.config import EvalConfig, TrainConfig

    sizes = getattr(gpu_check, mode)
    flag_sets = [[*sizes["train"], *sizes.get("train_sizes", []), "--dataset", "cifar10", "--epochs", "2"],
                 [*gpu_check.TORCHRUN_TRAIN, "--device", sizes["torchrun_device"]]]
    for flags in flag_sets:
        args = build_parser("train").parse_args(["train", *flags, "--out", "unused"])
        cfg = TrainConfig.from_dict(train_overrides(args))
        assert cfg.out == "unused"
    train = TrainConfig.from_dict(train_overrides(build_parser("train").parse_args(["train", *sizes["train"]])))
    assert train.method == "fgsm_rs" and train.amp == "bf16" and train.channels_last is True
    args = build_parser("eval").parse_args(["eval", *sizes["eval"], "--checkpoint", "best.pt"])
    options = EvalConfig.from_dict({k: getattr(args, k) for k in args.config_fields if getattr(args, k) is not None})
    assert options.suite_name == "standard"
    assert set(sizes["boxes"]) == set(gpu_check.ORDER) - {"data"}
    assert sorted(p for step in sizes["steps"] for p in step) == sorted(gpu_check.ORDER)


def test_one_bench_variant_in_its_own_process(tmp_path):
    # what a GPU run does for each variant (the CPU mode shares one process between the three)
    check = _check(tmp_path)
    parts = gpu_check.part_bench(check, ["bench_bf16_cl"])
    part = parts["bench_bf16_cl"]
    assert part["status"] == "ok", part.get("tail")
    assert part["row"]["precision"] == "bf16" and part["row"]["channels_last"] and part["row"]["clean_step_ms"] > 0
    assert [r["variant"] for r in check.result["bench_rows"]] == ["bf16+channels_last"]


def test_a_signal_stops_the_running_part_and_still_writes_the_report(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(BENCH / "gpu_check.py"), "--cpu-smoke", "--no-cifar", "--parts",
                             "torchrun", "--out", str(out), "--work", str(tmp_path / "w")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while not (tmp_path / "w" / "logs" / "torchrun_train.log").is_file() and time.time() < deadline:
        time.sleep(0.2)
    proc.terminate()  # SIGTERM, as a time limit sends it
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, stdout
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["interrupted"] == "SIGTERM" and report["parts"]["torchrun"]["status"] == "interrupted"
    assert not report["all_ok"] and "interrupted by SIGTERM" in (out / "gpu_check.txt").read_text()


def test_a_signal_python_swallowed_still_stops_the_running_part(tmp_path, monkeypatch):
    """A SIGTERM landing in Popen's at-fork logging hook is only printed by Python (this happened in CI): the part's
    wait still sees it, kills the child and raises Interrupted instead of letting the part run to its end."""
    check = _check(tmp_path)
    monkeypatch.setattr(gpu_check, "_SIGNALLED", ["SIGTERM"])
    pid_file = tmp_path / "sleeper.pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    with pytest.raises(gpu_check.Interrupted, match="SIGTERM"):
        check.run_process("sleeper", [sys.executable, "-c", code], limit=120)
    if pid_file.is_file():  # it got as far as starting: it was killed and reaped, not left running
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)


def test_the_wrapper_stashes_then_runs_from_the_stash(tmp_path, chunked):
    """gpu_check.sh as the device runs it, in a copy of the checkout: a call that carried chunks stashes them outside
    the checkout; the run finds them there (no --chunks given)."""
    _, chunks, _ = chunked
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks").mkdir(parents=True)
    for name in ("gpu_check.py", "gpu_check.sh"):
        (checkout / "benchmarks" / name).write_bytes((BENCH / name).read_bytes())
    (checkout / "armor").symlink_to(ROOT / "armor")
    (checkout / "data_chunks").mkdir()
    for path in chunks.iterdir():
        (checkout / "data_chunks" / path.name).write_bytes(path.read_bytes())
    env = {**os.environ, "PYTHON": sys.executable, "ARMOR_CHUNKS": str(tmp_path / "stash"), "OUT": str(tmp_path / "out"),
           "OMP_NUM_THREADS": "1"}
    sh = ["bash", str(checkout / "benchmarks" / "gpu_check.sh")]
    res = subprocess.run([*sh, "stash"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and "complete: every chunk is there" in res.stdout, res.stdout + res.stderr
    for path in (checkout / "data_chunks").iterdir():  # the next call carries nothing: the stash holds them
        path.unlink()
    res = subprocess.run([*sh, "--cpu-smoke", "--parts", "data", "--work", str(tmp_path / "w")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["parts"]["data"]["source"] == f"chunks:{tmp_path / 'stash'}"
    res = subprocess.run([*sh, "bogus"], capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 2 and "unknown command" in res.stderr
