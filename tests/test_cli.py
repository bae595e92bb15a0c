"""The command line: each user mistake → exit 2, one line naming the bad value, nothing overwritten."""
import subprocess
import sys

import numpy as np
import pytest

from armor.cli import main


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    np.savez(d / "flat.npz", x_train=np.zeros((10, 5, 1, 1, 1)), y_train=np.zeros(10), x_test=np.zeros((4, 5, 1, 1, 1)),
             y_test=np.zeros(4))
    (d / "bad.yaml").write_text("epochs: [1, 2\n")
    (d / "unknown_key.yaml").write_text("epochz: 3\n")
    return d


QUICK = ["--epochs", "1", "--train-size", "100", "--val-size", "20", "--test-size", "20", "--batch-size", "50", "--quiet"]


@pytest.mark.parametrize("argv,needle", [
    (["train", "--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["train", "--method", "magic"], "unknown method 'magic'"),
    (["train", "--eval-attacks", "pgx"], "unknown attack 'pgx'"),
    (["train", "--eps", "0"], "eps must be a positive number"),
    (["train", "--eps", "-0.1"], "eps must be a positive number"),
    (["train", "--eps", "abc"], "eps must be a positive number"),
    (["train", "--steps", "0"], "steps must be an integer ≥ 1, got 0"),
    (["train", "--norm", "l3"], "unknown norm 'l3'"),
    (["train", "--lr", "-1"], "lr must be a number > 0"),
    (["train", "--batch-size", "x"], "batch_size must be an integer"),
    (["train", "--dataset", "imagenet42"], "unknown dataset 'imagenet42'"),
    (["train", "--config", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["eval", "--checkpoint", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["eval", "--checkpoint", "{d}/corrupt.pt"], "cannot load checkpoint"),
    (["eval", "--checkpoint", "x.pt", "--steps", "0"], "steps must be an integer ≥ 1"),
    (["train", "--dataset", "{d}/flat.npz"] + QUICK, "must be feature vectors shaped (N, F) or images shaped"),
    (["train", "--config", "{d}/bad.yaml"], "is not valid YAML"),
    (["train", "--config", "{d}/unknown_key.yaml"], "unknown config key 'epochz'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_user_mistakes_exit_2_with_one_line(argv, needle, capsys, bad_files, tmp_path):
    argv = [a.format(d=bad_files) for a in argv]
    if argv[0] == "train" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_train_then_eval_from_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "--method", "pgd_at", "--eps", "8/40", "--steps", "2", "--out", str(out)] + QUICK,
                          capsys)
    assert code == 0 and "clean" in stdout and (out / "best.pt").is_file() and (out / "results.json").is_file()
    code, stdout, _ = run(["eval", "--checkpoint", str(out / "best.pt"), "--attack", "fgsm", "pgd", "--steps", "5",
                           "--restarts", "2"], capsys)
    assert code == 0 and "pgd-5x2" in stdout and (out / "eval.json").is_file()
    # a second train into the same folder is refused and leaves the run untouched
    before = (out / "best.pt").read_bytes()
    code, _, err = run(["train", "--out", str(out)] + QUICK, capsys)
    assert code == 2 and "already holds files" in err and (out / "best.pt").read_bytes() == before


def test_help_works_for_every_command():
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["demo", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "armor", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "usage: armor" in proc.stdout
