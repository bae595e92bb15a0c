"""Fault tests: SIGKILL and resume, kills during writes, NaN/Inf losses, safe checkpoints and export."""
import json
import math
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
import torch

from armor.cli import main
from armor.io import append_jsonl, load_checkpoint, read_jsonl, save_checkpoint, truncate_jsonl
from launch import ArmorProcess  # armor commands in processes of their own, started warm

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TRAIN = ["train", "--method", "pgd_at", "--eps", "0.2", "--steps", "2", "--epochs", "3", "--train-size", "640",
         "--val-size", "40", "--test-size", "40", "--batch-size", "16", "--val-steps", "2", "--eval-attacks",
         "pgd", "--eval-steps", "2", "--device", "cpu", "--seed", "3", "--quiet"]


def _armor(*argv):
    return ArmorProcess(argv, env=ENV)  # its own process, started warm (tests/launch.py)


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_same_weights_and_metrics(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    uninterrupted = _armor(*TRAIN, "--out", str(whole))
    killed = _armor(*TRAIN, "--out", str(split))
    try:  # the two runs share the machine; the killed one dies once its first epoch is on disk
        deadline = time.monotonic() + 240
        while len(read_jsonl(split / "metrics.jsonl")) < 1:
            assert killed.poll() is None, killed.stderr()
            assert time.monotonic() < deadline, "first epoch never finished"
            time.sleep(0.02)
        time.sleep(0.2)  # well inside epoch 2 (40 batches of PGD-2)
        assert killed.poll() is None
        killed.send_signal(signal.SIGKILL)
        killed.wait(60)
    finally:
        killed.kill()
    assert killed.returncode == -signal.SIGKILL
    done_epochs = len(read_jsonl(split / "metrics.jsonl"))
    assert 1 <= done_epochs < 3 and not (split / "results.json").exists()
    assert load_checkpoint(split / "last.pt")["epoch"] == done_epochs

    resumed = _armor("train", "--resume", "--out", str(split), "--quiet")
    assert resumed.wait(300) == 0, resumed.stderr()
    assert uninterrupted.wait(300) == 0, uninterrupted.stderr()
    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(split / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _strip(read_jsonl(whole / "metrics.jsonl")) == _strip(read_jsonl(split / "metrics.jsonl"))
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (whole, split))
    assert ra["candidates"] == rb["candidates"] and ra["best_epoch"] == rb["best_epoch"]


SLOW_WRITER = textwrap.dedent("""
    import sys, time, io, torch
    from armor import io as ck
    path = sys.argv[1]
    ck.save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(50000)}})
    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):  # writes half the bytes, then hangs until killed
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        print("half written", flush=True)
        time.sleep(120)
        f.write(data[len(data) // 2:])

    torch.save = slow_save
    ck.save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(50000)}})
""")


def test_kill_during_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "last.pt"
    proc = ArmorProcess([str(path)], env=ENV, code=SLOW_WRITER)
    try:
        proc.wait_for_line("half written")
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert partial and partial[0].stat().st_size > 0  # the new checkpoint really was half on disk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(50000))


APPENDER = textwrap.dedent("""
    import sys
    from armor.io import append_jsonl
    i = 0
    while True:  # large records, so a kill is likely to land inside a write
        append_jsonl(sys.argv[1], {"epoch": i, "blob": "x" * 200000})
        i += 1
        if i == 3:
            print("started", flush=True)
""")


def test_metrics_jsonl_never_ends_in_a_half_line_that_breaks_reading(tmp_path):
    path = tmp_path / "metrics.jsonl"
    proc = ArmorProcess([str(path)], env=ENV, code=APPENDER)
    try:
        proc.wait_for_line("started")
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    records = read_jsonl(path)
    assert len(records) >= 3 and [r["epoch"] for r in records] == list(range(len(records)))
    assert all(len(r["blob"]) == 200000 for r in records)
    # a crash that does leave half a line: reading skips it, and resuming cuts it off before appending
    with open(path, "ab") as f:
        f.write(b'{"epoch": 999, "blob": "xx')
    assert len(read_jsonl(path)) == len(records)
    truncate_jsonl(path, lambda r: True)
    append_jsonl(path, {"epoch": len(records)})
    assert [r["epoch"] for r in read_jsonl(path)] == list(range(len(records) + 1))
    assert all(json.loads(line) for line in path.read_text().splitlines())


def _nan_at(monkeypatch, call_number):
    """PGD-AT whose ``call_number``-th step returns a NaN loss (as a diverging run would)."""
    from armor.methods.pgd_at import PGDAT

    original, calls = PGDAT.step, []

    def step(self, model, x, y):
        out = original(self, model, x, y)
        calls.append(1)
        if len(calls) == call_number:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(PGDAT, "step", step)


QUICK = ["train", "--eps", "0.2", "--steps", "1", "--epochs", "3", "--train-size", "64", "--val-size", "20",
         "--test-size", "20", "--batch-size", "32", "--val-steps", "1", "--eval-steps", "1", "--eval-attacks", "pgd",
         "--device", "cpu", "--quiet"]


def test_nan_loss_stops_the_run_with_one_line_and_the_last_good_checkpoint_intact(tmp_path, monkeypatch, capsys):
    _nan_at(monkeypatch, 3)  # 2 steps per epoch: the first step of epoch 2
    out = tmp_path / "run"
    code = main(QUICK + ["--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "loss became nan at epoch 2, batch 1" in err[0] and "last.pt" in err[0] and "(epoch 1) is intact" in err[0]
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1]
    assert not (out / "results.json").exists()


def test_nan_policy_skip_skips_the_step_and_logs_it(tmp_path, monkeypatch, capsys):
    _nan_at(monkeypatch, 3)
    out = tmp_path / "run"
    assert main(QUICK + ["--out", str(out), "--nan-policy", "skip"]) == 0
    records = read_jsonl(out / "metrics.jsonl")
    assert [r.get("skipped_steps", 0) for r in records] == [0, 1, 0]
    assert all(math.isfinite(r["train_loss"]) for r in records)
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoints_are_tensors_and_plain_metadata_and_export_to_safetensors(robust_run, digits, tmp_path, capsys):
    from safetensors import safe_open

    best = robust_run["out"] / "best.pt"
    state = torch.load(best, weights_only=True)  # no pickled code: loads under weights_only
    assert state["format"] == "armor-checkpoint" and state["armor_version"]
    assert isinstance(state["config"], dict) and isinstance(state["epoch"], int)
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    out = tmp_path / "model.safetensors"
    assert main(["export", "--checkpoint", str(best), "--out", str(out)]) == 0
    with safe_open(str(out), framework="pt") as f:
        assert set(f.keys()) == set(state["model"])
        assert all(torch.equal(f.get_tensor(k), state["model"][k]) for k in f.keys())
        meta = f.metadata()
    assert json.loads(meta["config"])["method"] == "pgd_at" and json.loads(meta["epoch"]) == state["epoch"]
    # the exported weights rebuild the same model
    from safetensors.torch import load_file

    from armor.models import ModelSpec, build_model

    model = build_model(ModelSpec.from_dict(json.loads(meta["model_spec"])))
    model.load_state_dict(load_file(str(out)))
    x = digits.x_test[:50]
    assert torch.equal(model.eval()(x).argmax(1), robust_run["model"].cpu()(x).argmax(1))


def test_stale_temp_file_from_a_killed_write_does_not_block_the_next_save(tmp_path):
    path = tmp_path / "last.pt"
    (tmp_path / ".last.pt.abc.tmp").write_bytes(b"half")
    save_checkpoint(path, {"epoch": 5, "model": {}})
    assert load_checkpoint(path)["epoch"] == 5
    assert Path(path).is_file()
