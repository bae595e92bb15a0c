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
    # -- the run-folder and your-own-model issues' inputs
    (d / "random.pt").write_bytes(bytes(range(256)) * 8)
    (d / "empty.pt").write_bytes(b"")
    (d / "notes.pt").write_text("these are notes, not weights\n")
    y = np.arange(40) % 10
    y[5] = 12
    _npz(d / "stray_label.npz", y_train=y, y_test=np.arange(12) % 10)
    _npz(d / "features.npz", x_train=np.random.default_rng(1).random((40, 6)), x_test=np.zeros((12, 6)))
    _npz(d / "features_bad_box.npz", x_train=np.random.default_rng(1).random((40, 6)), x_test=np.zeros((12, 6)),
         lower=np.ones(6), upper=np.ones(6) * 2)
    _npz(d / "features_short_box.npz", x_train=np.random.default_rng(1).random((40, 6)), x_test=np.zeros((12, 6)),
         lower=np.zeros(5))
    (d / "net.py").write_text("from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self):\n"
                              "        super().__init__()\n        self.fc = nn.Linear(64, 10)\n\n"
                              "    def forward(self, x):\n        return self.fc(x.flatten(1))\n\n"
                              "def broken():\n    raise RuntimeError('factory failed')\n")
    (d / "crashes_on_import.py").write_text("raise ImportError('no such dependency')\n")
    torch.save({"fc.weight": torch.zeros(3, 64), "fc.bias": torch.zeros(3)}, d / "wrong_weights.pt")
    torch.save([1, 2, 3], d / "not_state_dict.pt")
    np.savez(d / "eval_x_y.npz", x=np.random.default_rng(2).random((20, 1, 8, 8)).astype(np.float32),
             y=np.arange(20) % 10)
    from PIL import Image

    for cls in ("a",):
        (d / "one_class_folder" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "one_class_folder" / cls / "0.png")
    for split in ("train", "test"):
        for cls, size in (("a", 8), ("b", 10)):
            (d / "mixed_sizes" / split / cls).mkdir(parents=True)
            Image.fromarray(np.zeros((size, size), np.uint8)).save(d / "mixed_sizes" / split / cls / "0.png")
    for cls in ("a", "b"):
        (d / "plain_folder" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "plain_folder" / cls / "0.png")
    (d / "no_test_split" / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / "no_test_split" / "train" / "a" / "0.png")
    (d / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    foreign = d / "foreign_run"
    foreign.mkdir()
    (foreign / "last.pt").write_bytes(good)
    (foreign / "run.json").write_text('{"run_id": "0123456789abcdef0123456789abcdef"}\n')
    (foreign / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (d / "locked").mkdir()
    (d / "unknown_method_key.yaml").write_text("method: trades\nclean_weight: 0.5\n")
    (d / "stepz.yaml").write_text("method_options: {stepz: 3}\n")
    return d


@pytest.fixture(scope="module")
def lock_holder(hostile):
    """A live process holding the run-folder lock of {d}/locked (as a training process would)."""
    from launch import ArmorProcess

    code = (f"from armor import locks; import time; locks.acquire({str(hostile / '.locked.armor.lock')!r}, 'x'); "
            "print('locked', flush=True); time.sleep(600)")
    proc = ArmorProcess(code=code)
    proc.wait_for_line("locked")
    yield proc
    proc.kill()


Q = ["--epochs", "1", "--train-size", "30", "--val-size", "5", "--test-size", "10", "--batch-size", "10", "--quiet"]

CASES = [
    # ε, norm, steps, step size, batch size, LR and the other numbers
    (["train", "--eps", "nan"], "eps must be a positive number"),
    (["train", "--eps", "inf"], "eps must be a positive number"),
    (["train", "--eps", "8/0"], "eps must be a positive number"),
    (["train", "--norm", "l3"], "unknown norm 'l3'"),
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
    (["train", "--best-by", "loss"], "best_by must be auto, robust, clean or last"),
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
    # -- budgets, batches and labels that cannot be meant
    (["train", "--eps", "8"], "eps 8 is at least the width of the input box"),
    (["train", "--eps", "300/255"], "is at least the width of the input box"),
    (["train", "--eps", "1"], "eps 1 is at least the width of the input box"),
    (["train", "--batch-size", "5000"], "batch_size 5000 is larger than the 1200 training examples"),
    (["train", "--dataset", "{d}/stray_label.npz"] + Q, "label 12 appears but 10, 11 never do"),
    (["eval", "--checkpoint", "{run}/last.pt", "--sweep", "0.1", "abc"], "sweep must be a positive number"),
    (["eval", "--checkpoint", "{run}/last.pt", "--sweep", "0.1", "3"], "sweep eps 3 is at least the width"),
    (["eval", "--checkpoint", "{run}/last.pt", "--eps", "2"], "eps 2 is at least the width of the input box"),
    # -- files that are not what they are called
    (["eval", "--checkpoint", "{d}/random.pt"], "it is not a PyTorch file (unknown bytes"),
    (["eval", "--checkpoint", "{d}/empty.pt"], "it is not a PyTorch file (an empty file"),
    (["eval", "--checkpoint", "{d}/notes.pt"], "it is not a PyTorch file (a text file"),
    (["train", "--dataset", "{d}/text.npz"] + Q, "it is not a zip file"),
    (["eval", "--weights", "{d}/bad.safetensors", "--model", "{d}/net.py:Net", "--data", "digits", "--eps", "0.1"],
     "cannot read"),
    # -- outputs that cannot be written
    (["eval", "--checkpoint", "{run}/last.pt", "--out", "/dev/null"], "it exists and is not a regular file"),
    (["eval", "--checkpoint", "{run}/last.pt", "--out", "{d}/nowhere/e.json"], "does not exist"),
    (["eval", "--checkpoint", "{run}/last.pt", "--out", "/proc/armor-eval.json"], "cannot write"),
    (["report", "{run}", "-o", "/proc/armor-report.html"], "cannot write"),
    (["report", "{run}", "-o", "{d}/nowhere/r.html"], "its folder does not exist"),
    (["train", "--out", "/proc/armor-run"] + Q, "cannot write to output folder"),
    (["attack", "--checkpoint", "{run}/last.pt", "--attack", "pgd", "--out", "{d}/adv.txt"], "is an .npz file"),
    # -- run folders: locks, resume, foreign checkpoints
    (["train", "--out", "{d}/locked"] + Q, "is in use by pid"),
    (["train", "--resume", "--overwrite", "--out", "{run}"], "give one of them"),
    (["train", "--resume", "--out", "{run}", "--eps", "0.1"], "cannot change eps: the run was trained with 0.2, now 0.1"),
    (["train", "--resume", "--out", "{run}", "--method", "trades"], "cannot change method"),
    (["train", "--resume", "--out", "{run}", "--epochs", "1"], "epochs 1 is fewer than the"),
    (["train", "--resume", "--out", "{d}/foreign_run"], "belongs to another run"),
    # -- options that do not apply
    (["train", "--method", "trades", "--clean-weight", "0.5"], "method 'trades' has no option 'clean_weight'"),
    (["train", "--method", "free", "--steps", "3"], "method 'free' has no option 'steps'"),
    (["train", "--method", "pgd_at", "--guard-drop", "20"], "guard_drop applies only when"),
    (["train", "--optimizer", "adam", "--momentum", "0.5"], "momentum applies to optimizer sgd only"),
    (["train", "--config", "{d}/unknown_method_key.yaml"], "method 'trades' has no option 'clean_weight'"),
    (["train", "--config", "{d}/stepz.yaml"], "has no option 'stepz' (did you mean 'steps'?)"),
    (["train", "--epoch", "3"], "unrecognized arguments: --epoch 3 (did you mean '--epochs'?)"),
    (["eval", "--checkpoint", "{run}/last.pt", "--attack", "fgsm", "--step-size", "0.01"], "step_size applies to"),
    (["eval", "--checkpoint", "{run}/last.pt", "--mean", "0.5"], "give --mean and --std together"),
    (["eval", "--checkpoint", "{run}/last.pt", "--logits-key", "logits"], "logits_key is for a model of your own"),
    (["attack", "--checkpoint", "{run}/last.pt", "--attack", "pgd", "fgsm"], "armor attack runs one attack"),
    # -- your own model and data
    (["train", "--model", "{d}/missing.py:Net"], "model file"),
    (["train", "--model", "{d}/net.py:"], "must look like path/to/file.py:factory"),
    (["eval", "--model", "{d}/net.py:Net", "--weights", "{d}/wrong_weights.pt", "--data", "{d}/eval_x_y.npz",
      "--eps", "0.1"], "do not fit"),
    (["eval", "--model", "{d}/net.py:Net", "--weights", "{d}/not_state_dict.pt", "--data", "{d}/eval_x_y.npz",
      "--eps", "0.1"], "is not a state dict"),
    (["eval", "--model", "{d}/net.py:Net", "--weights", "{run}/last.pt", "--data", "{d}/eval_x_y.npz", "--eps", "0.1"],
     "is an armor checkpoint; pass it as --checkpoint"),
    (["eval", "--model", "{d}/net.py:Net", "--data", "{d}/eval_x_y.npz"], "carries no threat model: give --eps"),
    (["eval", "--model", "{d}/net.py:Net", "--eps", "0.1"], "needs --data"),
    (["eval", "--model", "{d}/net.py:Nope", "--data", "{d}/eval_x_y.npz", "--eps", "0.1"], "has no 'Nope'"),
    (["eval", "--model", "{d}/net.py:broken", "--data", "{d}/eval_x_y.npz", "--eps", "0.1"], "factory failed"),
    (["eval", "--model", "{d}/crashes_on_import.py:Net", "--data", "{d}/eval_x_y.npz", "--eps", "0.1"],
     "importing"),
    (["eval", "--model", "{d}/net.py:Net", "--data", "{d}/eval_x_y.npz", "--eps", "0.1", "--num-classes", "3"],
     "the model has 10 outputs but num_classes is 3"),
    (["eval", "--model", "small_cnn", "--data", "digits", "--eps", "0.1"], "takes your own model as FILE.py:FACTORY"),
    (["eval", "--checkpoint", "{run}/last.pt", "--model", "{d}/net.py:Net"], "holds the registered model"),
    (["train", "--dataset", "{d}/features.npz", "--augment", "crop_flip"] + Q, "is for images"),
    (["train", "--dataset", "{d}/features.npz", "--model", "small_cnn"] + Q, "small_cnn"),
    (["train", "--dataset", "{d}/features.npz", "--model", "mlp", "--immutable", "9"] + Q, "immutable feature index 9"),
    (["train", "--dataset", "{d}/features_bad_box.npz", "--model", "mlp"] + Q, "below the given lower bound"),
    (["train", "--dataset", "{d}/features_short_box.npz", "--model", "mlp"] + Q, "lower has 5 values for 6 features"),
    (["train", "--dataset", "{d}/one_class_folder"] + Q, "has a single class folder"),
    (["train", "--dataset", "{d}/plain_folder"] + Q, "needs train/ and test/"),
    (["train", "--dataset", "{d}/no_test_split"] + Q, "has train/ but no test/ or val/"),
    (["train", "--dataset", "{d}/mixed_sizes"] + Q, "give image_size"),
    (["eval", "--model", "{d}/net.py:Net", "--data", "{d}/one_class_folder", "--eps", "0.1"], "single class folder"),
]


def _snapshot(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv,needle", CASES, ids=[" ".join(a[:3])[:60] for a, _ in CASES])
def test_hostile_input_exits_2_with_one_line_and_overwrites_nothing(argv, needle, hostile, lock_holder, tmp_path,
                                                                    capsys):
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


def test_there_are_at_least_80_hostile_cases():
    assert len(CASES) >= 80
