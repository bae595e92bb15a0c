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


# -- one error prefix, and errors that answer before torch is imported ---------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--epochz", "3"], "unrecognized arguments: --epochz 3 (did you mean '--epochs'?)"),
    (["train", "--epochs"], "argument --epochs: expected one argument"),
    (["train", "--eps", "abc"], "eps must be a positive number"),
    (["eval", "--checks", "fast"], "checks must be one of auto, quick, standard, none"),
    (["demo", "--threads", "0"], "threads must be an integer ≥ 1"),
    # names are checked against the torch-free catalog, files before anything loads
    (["train", "--method", "bogus"], "unknown method 'bogus'; choose one of: dummy, fgsm_rs,"),
    (["train", "--model", "resnet5"], "unknown model 'resnet5' (did you mean 'resnet50'?)"),
    (["train", "--schedule", "cosin"], "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    (["eval", "--checkpoint", "x.pt", "--attack", "pgdd"], "unknown attack 'pgdd' (did you mean 'pgd'?)"),
    (["eval", "--checkpoint", "x.pt", "--suite", "standrd"], "unknown suite 'standrd'"),
    (["eval", "--checkpoint", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["eval", "--checkpoint", "."], "checkpoint '.' is a folder; pass a file such as 'best.pt'"),
])
def test_an_argument_error_is_one_line_with_one_prefix_and_loads_no_torch(argv, needle):
    code = ("import sys; from armor.cli import main; code = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("armor: error: ") and lines[0].count("armor:") == 1 and needle in lines[0], lines
    assert proc.stdout.strip() == "False"  # answered before torch was imported (benchmarks/cli_startup.py: the time)


# -- --threads on every command that runs torch --------------------------------------------------------------------
#: the smallest arguments each command parses with (a new command must be added here: the test below fails otherwise)
MINIMAL = {"train": [], "sweep": ["--param", "beta", "--values", "1"], "eval": [], "attack": [], "demo": [],
           "bench": [], "report": ["RUN"], "figures": ["RUN"], "export": ["--checkpoint", "x.pt"], "list": []}


@pytest.mark.parametrize("command", list(__import__("armor.cli", fromlist=["COMMANDS"]).COMMANDS))
def test_every_command_that_runs_torch_takes_threads_and_runs_on_them(command, monkeypatch):
    import torch

    from armor import cli

    seen = {}

    def probe(args):
        seen["threads"] = torch.get_num_threads()
        return 0

    monkeypatch.setitem(cli.HANDLERS, command, probe)
    before = torch.get_num_threads()
    if command in cli.NO_THREADS:  # no torch computation: no flag
        assert main([command, *MINIMAL[command], "--threads", "3"]) == 2 and "threads" not in seen
        return
    assert main([command, *MINIMAL[command], "--threads", "3"]) == 0
    assert seen["threads"] == 3 and torch.get_num_threads() == before  # put back for library callers
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert main([command, *MINIMAL[command]]) == 0
    assert seen["threads"] == 5  # the default: the cores this process may run on


def test_the_default_thread_count_honours_omp_num_threads_and_openmp_waits_passively():
    """In a fresh process the wait policy is set before torch starts; OMP_NUM_THREADS (torchrun sets 1) wins."""
    import os

    code = ("import os, sys; from armor import cli\n"
            "def probe(args):\n"
            "    import torch; print(os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads()); return 0\n"
            "cli.HANDLERS['figures'] = probe\n"
            "sys.exit(cli.main(['figures', 'RUN', *sys.argv[1:]]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for extra, argv, expected in (({"OMP_NUM_THREADS": "1"}, [], "PASSIVE 1"), ({}, ["--threads", "2"], "PASSIVE 2"),
                                  ({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}, [], "ACTIVE 1")):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                              env={**env, **extra})
        assert proc.returncode == 0 and proc.stdout.strip() == expected, (extra, argv, proc.stdout, proc.stderr)
