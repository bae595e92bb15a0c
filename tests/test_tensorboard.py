"""`armor train --tensorboard`: event files with the numbers of metrics.jsonl, and no epoch twice after a resume."""
from __future__ import annotations

import json

import pytest

from armor.cli import main

TINY = ["--train-size", "100", "--val-size", "20", "--test-size", "40", "--steps", "1", "--batch-size", "50",
        "--eval-steps", "1", "--eval-attacks", "pgd", "--method", "pgd_at", "--eps", "0.2", "--quiet",
        "--schedule", "cosine", "--chance-patience", "0"]


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return scalars, acc.Tags()["images"]


def test_event_files_hold_the_per_epoch_values_of_metrics_jsonl_once_each_after_a_resume(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'armor[tensorboard]'; "
                                              "make test installs it)")
    from torch.utils.tensorboard import SummaryWriter

    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--tensorboard", "--out", str(out)] + TINY) == 0
    # a stale event file, as a process killed after logging epochs the checkpoint does not hold would leave one:
    # wrong values at steps 2 and 3, which the resumed run must replace (purge), not add to
    stale = SummaryWriter(str(out / "tensorboard"))
    for step in (2, 3):
        stale.add_scalar("val_robust_acc", -1.0, step)
    stale.close()
    assert main(["train", "--resume", "--epochs", "4", "--out", str(out), "--quiet"]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics] == [1, 2, 3, 4]
    scalars, images = _events(out / "tensorboard")
    numeric = {k for r in metrics for k, v in r.items()
               if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {"val_robust_acc", "val_clean_acc", "lr", "train_loss"} <= numeric and set(scalars) == numeric
    for key in numeric:
        expected = [(r["epoch"], pytest.approx(float(r[key]), rel=1e-6, abs=1e-6)) for r in metrics if key in r]
        assert scalars[key] == expected, key  # every epoch once, with its metrics.jsonl value
    assert len({v for _, v in scalars["lr"]}) > 1  # a cosine schedule: the values really are per epoch
    assert images == ["learning_curves"]


def test_tensorboard_is_off_by_default_and_refused_with_one_line_when_missing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out)] + TINY) == 0
    assert not (out / "tensorboard").exists()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main(["train", "--epochs", "1", "--tensorboard", "--out", str(tmp_path / "r2")] + TINY) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tensorboard needs the tensorboard package" in err[0]
