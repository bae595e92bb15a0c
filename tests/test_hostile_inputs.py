"""Hostile inputs, table-driven: every case exits 2 with one line naming the problem and changes no file.

Complements tests/test_cli.py (which covers unknown model/method/attack/dataset names, ε of 0/-0.1/abc,
steps 0, norm l3, lr -1, a non-numeric batch size, missing/corrupt files and bad YAML).
"""
import os
import pickle

import numpy as np
import pytest
import torch

from armor.cli import main

MARKER = "pwned_marker"


class _RunsCode:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npz(path, x_train=None, y_train=None, x_test=None, y_test=None, **extra):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((40, 8, 8), dtype=np.float32) if x_train is None else x_train,
              "y_train": np.arange(40) % 3 if y_train is None else y_train,
              "x_test": rng.random((12, 8, 8), dtype=np.float32) if x_test is None else x_test,
              "y_test": np.arange(12) % 3 if y_test is None else y_test, **extra}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not False})
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, robust_run):
    """Bad files of every kind, plus one real run folder that must never change."""
    d = tmp_path_factory.mktemp("hostile")
    f = np.float32
    _npz(d / "five_d.npz", x_train=np.zeros((40, 1, 1, 8, 8), f))
    _npz(d / "int32.npz", x_train=np.zeros((40, 8, 8), np.int32))
    _npz(d / "range255.npz", x_train=np.full((40, 8, 8), 200.0, f))
    nan = np.zeros((40, 8, 8), f)
    nan[3, 2, 2] = np.nan
    _npz(d / "nan.npz", x_train=nan)
    _npz(d / "negative_labels.npz", y_train=np.arange(40) % 3 - 1)
    _npz(d / "fractional_labels.npz", y_train=(np.arange(40) % 3) + 0.5)
    _npz(d / "label_count.npz", y_train=np.arange(39) % 3)
    _npz(d / "unseen_test_label.npz", y_test=np.full(12, 7))
    _npz(d / "empty.npz", x_train=np.zeros((0, 8, 8), f), y_train=np.zeros(0, np.int64))
    _npz(d / "shape_mismatch.npz", x_test=np.zeros((12, 6, 6), f))
    _npz(d / "one_class.npz", y_train=np.zeros(40, np.int64), y_test=np.zeros(12, np.int64))
    _npz(d / "no_y_test.npz", y_test=False)
    _npz(d / "object.npz", x_train=np.array([_RunsCode(d / MARKER)] * 40, dtype=object))
    (d / "text.npz").write_text("this is not an archive\n")
    good = (robust_run["out"] / "best.pt").read_bytes()
    (d / "truncated.pt").write_bytes(good[: len(good) // 2])
    torch.save({"weights": torch.ones(3)}, d / "foreign.pt")
    torch.save(torch.ones(3), d / "tensor.pt")
    torch.save({"format": "armor-checkpoint", "payload": _RunsCode(d / MARKER)}, d / "evil_torch.pt")
    (d / "evil_pickle.pt").write_bytes(pickle.dumps(_RunsCode(d / MARKER), protocol=2))
    (d / "folder.pt").mkdir()
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "eps_list.yaml").write_text("eps: [1, 2]\n")
    (d / "model_options.yaml").write_text("model_options: 3\n")
    (d / "a_file").write_text("I am a file\n")
    run = d / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(good)
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (d / "corrupt_run").mkdir()
    (d / "corrupt_run" / "last.pt").write_bytes(b"garbage")
    (d / "empty_run").mkdir()
    (d / "model.safetensors").write_bytes(b"keep")
    return d


Q = ["--epochs", "1", "--train-size", "30", "--val-size", "5", "--test-size", "10", "--batch-size", "10", "--quiet"]

CASES = [
    # ε, norm, steps, step size, batch size, LR and the other numbers
    (["train", "--eps", "nan"], "eps must be a positive number"),
    (["train", "--eps", "inf"], "eps must be a positive number"),
    (["train", "--eps", "8/0"], "eps must be a positive number"),
    (["train", "--norm", "l1"], "unknown norm 'l1'"),
    (["train", "--steps", "2.5"], "steps must be an integer ≥ 1, got '2.5'"),
    (["train", "--steps", "-3"], "steps must be an integer ≥ 1"),
    (["train", "--step-size", "0"], "step_size must be a positive number"),
    (["train", "--step-size", "-0.01"], "step_size must be a positive number"),
    (["train", "--batch-size", "0"], "batch_size must be an integer ≥ 1, got 0"),
    (["train", "--lr", "0"], "lr must be a number > 0"),
    (["train", "--lr", "nan"], "lr must be a number > 0"),
    (["train", "--momentum", "1.5"], "momentum must be a number ≥ 0 and ≤ 1"),
    (["train", "--weight-decay", "-1"], "weight_decay must be a number ≥ 0"),
    (["train", "--epochs", "0"], "epochs must be an integer ≥ 1"),
    (["train", "--clean-weight", "2"], "clean_weight must be a number ≥ 0 and ≤ 1"),
    (["train", "--train-size", "0"], "train_size must be an integer ≥ 1"),
    (["train", "--val-subset", "0"], "val_subset must be an integer ≥ 1"),
    (["train", "--ema-decay", "1"], "ema_decay must be a number ≥ 0 and < 1"),
    (["train", "--early-stop-patience", "-2"], "early_stop_patience must be an integer ≥ 0"),
    # unknown names
    (["train", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
    (["train", "--schedule", "linear"], "unknown schedule 'linear'"),
    (["train", "--augment", "mixup"], "unknown augmentation 'mixup'"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--best-by", "loss"], "best_by must be auto, robust or clean"),
    (["train", "--nan-policy", "ignore"], "nan_policy must be stop or skip"),
    (["eval", "--checkpoint", "{run}/last.pt", "--attack", "cw"], "unknown attack 'cw'"),
    # wrong data: shapes, dtypes, ranges, labels, empty, missing arrays, pickled objects
    (["train", "--dataset", "{d}/five_d.npz"] + Q, "must be feature vectors shaped (N, F) or images shaped"),
    (["train", "--dataset", "{d}/int32.npz"] + Q, "must be uint8 (0..255) or float (0..1), got dtype int32"),
    (["train", "--dataset", "{d}/range255.npz"] + Q, "must hold values in [0, 1]"),
    (["train", "--dataset", "{d}/nan.npz"] + Q, "must hold values in [0, 1]"),
    (["train", "--dataset", "{d}/negative_labels.npz"] + Q, "holds label -1; labels must be 0..num_classes-1"),
    (["train", "--dataset", "{d}/fractional_labels.npz"] + Q, "must hold integer class labels"),
    (["train", "--dataset", "{d}/label_count.npz"] + Q, "has 39 labels for 40 images"),
    (["train", "--dataset", "{d}/unseen_test_label.npz"] + Q, "labels must be the contiguous classes 0..C-1: label 7"),
    (["train", "--dataset", "{d}/empty.npz"] + Q, "x_train is empty"),
    (["train", "--dataset", "{d}/shape_mismatch.npz"] + Q, "they must match"),
    (["train", "--dataset", "{d}/one_class.npz"] + Q, "single class"),
    (["train", "--dataset", "{d}/no_y_test.npz"] + Q, "lacks array(s) y_test"),
    (["train", "--dataset", "{d}/object.npz"] + Q, "cannot read"),
    (["train", "--dataset", "{d}/text.npz"] + Q, "cannot read"),
    (["train", "--val-size", "5000"] + Q[:2], "leaves no training data"),
    # checkpoints: corrupt, truncated, wrong kind, code-running pickles, a folder
    (["eval", "--checkpoint", "{d}/truncated.pt"], "cannot load checkpoint"),
    (["eval", "--checkpoint", "{d}/foreign.pt"], "is not an armor checkpoint"),
    (["eval", "--checkpoint", "{d}/tensor.pt"], "is not an armor checkpoint"),
    (["eval", "--checkpoint", "{d}/evil_torch.pt"], "refuses to unpickle"),
    (["eval", "--checkpoint", "{d}/evil_pickle.pt"], "cannot load checkpoint"),
    (["eval", "--checkpoint", "{d}/folder.pt"], "is a folder"),
    (["export", "--checkpoint", "{d}/evil_torch.pt", "--out", "{d}/evil.safetensors"], "refuses to unpickle"),
    (["export", "--checkpoint", "{run}/last.pt", "--out", "{d}/model.safetensors"], "already exists"),
    # evaluation options
    (["eval", "--checkpoint", "{run}/last.pt", "--eps", "0"], "eps must be a positive number"),
    (["eval", "--checkpoint", "{run}/last.pt", "--norm", "l7"], "unknown norm 'l7'"),
    (["eval", "--checkpoint", "{run}/last.pt", "--restarts", "0"], "restarts must be an integer ≥ 1"),
    (["eval", "--checkpoint", "{run}/last.pt", "--batch-size", "0"], "batch_size must be an integer ≥ 1"),
    (["eval", "--checkpoint", "{run}/last.pt", "--n", "0"], "n must be an integer ≥ 1"),
    (["eval", "--checkpoint", "{run}/last.pt", "--step-size", "-1"], "step_size must be a positive number"),
    # config files
    (["train", "--config", "{d}/list.yaml"], "must hold a mapping"),
    (["train", "--config", "{d}/eps_list.yaml"], "eps must be a positive number"),
    (["train", "--config", "{d}/model_options.yaml"], "model_options must be a mapping"),
    # output folders
    (["train", "--out", "{d}/a_file/run"] + Q, "cannot write to output folder"),
    (["train", "--out", "{d}/a_file"] + Q, "is a file, not a folder"),
    (["train", "--out", "{run}"] + Q, "already holds files"),
    (["train", "--resume", "--out", "{d}/empty_run"] + Q, "holds no last.pt"),
    (["train", "--resume", "--out", "{d}/corrupt_run"], "cannot load checkpoint"),
    (["train", "--resume"], "--resume needs the run folder"),
]


def _snapshot(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(a[:3])[:60] for a, _ in CASES])
def test_hostile_input_exits_2_with_one_line_and_overwrites_nothing(argv, needle, hostile, tmp_path, capsys):
    argv = [a.format(d=hostile, run=hostile / "run") for a in argv]
    if argv[0] == "train" and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", str(tmp_path / "new_run")]
    before = _snapshot(hostile)
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and needle in lines[0], err
    assert _snapshot(hostile) == before  # nothing existing was changed, no file was added
    assert not (hostile / MARKER).exists()  # no pickle ran code


def test_there_are_at_least_30_hostile_cases():
    assert len(CASES) >= 30
