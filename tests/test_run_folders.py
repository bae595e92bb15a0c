"""Run folders that never lose or misstate anything: each numbered defect of the run-folder issue, and kills at the
points inside a checkpoint write and between a checkpoint and its history line."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import armor
from armor.cli import main
from armor.io import load_checkpoint, read_jsonl
from armor.results import EvaluationRecord, TrainingRecord, read_record
from launch import ArmorProcess, armor_run  # armor commands in processes of their own, started warm

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TINY = ["--method", "pgd_at", "--eps", "0.2", "--steps", "2", "--epochs", "3", "--train-size", "320", "--val-size",
        "40", "--test-size", "40", "--batch-size", "32", "--val-steps", "2", "--eval-attacks", "pgd", "--eval-steps",
        "2", "--ema-decay", "0.9", "--device", "cpu", "--seed", "3", "--no-plot", "--quiet"]  # EMA: best_ema.pt too
QUICK = dict(method="pgd_at", eps=0.2, steps=1, epochs=2, train_size=64, val_size=20, test_size=20, batch_size=32,
             val_steps=1, eval_attacks=["pgd"], eval_steps=1, plot=False)


def _armor(*argv, fault=None, timeout=300):
    env = {**ENV, **({"ARMOR_FAULT": fault} if fault else {})}
    return armor_run(argv, env=env, timeout=timeout)  # its own process group: a fault kills only it


def _snapshot(root: Path):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def _same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, history and results (timing fields aside)."""
    la, lb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert la["epoch"] == lb["epoch"]
    assert all(torch.equal(la["model"][k], lb["model"][k]) for k in la["model"])
    assert _strip(read_jsonl(a / "metrics.jsonl")) == _strip(read_jsonl(b / "metrics.jsonl")) == \
        _strip(lb["history"])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["candidates"] == rb["candidates"] and ra["best_epoch"] == rb["best_epoch"]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = _armor("train", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_forked_commands_start_warm_in_processes_of_their_own():
    """The launcher these tests use: torch, torch._dynamo and armor's trainer are already imported in the child (the
    forkserver's preload can fail without a word), and the child is a separate process and session."""
    code = ("import os, sys; print(all(m in sys.modules for m in ('torch._dynamo', 'sklearn.datasets', "
            "'armor.training')), os.getpid(), os.getsid(0), flush=True)")
    proc = ArmorProcess(code=code)
    assert proc.wait(120) == 0, proc.stderr()
    warm, pid, sid = proc.stdout().split()
    assert warm == "True" and int(pid) == proc.pid == int(sid) != os.getpid()


# -- kills inside a checkpoint write and between a checkpoint and its history line ---------------------------------
@pytest.mark.parametrize("fault", ["checkpoint_tmp_written:3", "checkpoint_renamed:4", "after_last:2",
                                   "after_best:1", "checkpoint_renamed:1"])
def test_a_kill_at_each_checkpoint_point_resumes_bit_identical(fault, whole, tmp_path):
    out = tmp_path / "run"
    killed = _armor("train", *TINY, "--out", str(out), fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = _armor("train", "--resume", "--out", str(out), "--quiet") if (out / "last.pt").is_file() \
        else _armor("train", *TINY, "--out", str(out))  # killed before its first last.pt: just started again
    assert again.returncode == 0, again.stderr
    _same_run(whole, out)
    assert not list(out.glob(".*.tmp"))  # the killed write's temp file was cleaned at the next start


# -- 1. every check before anything on disk changes; overwrite keeps the old run until the new one checkpoints -------
@pytest.mark.parametrize("bad", [["--device", "cuda"], ["--dataset", "missing.npz"], ["--eps", "8"],
                                 ["--batch-size", "5000"]])
def test_a_failing_overwrite_leaves_the_old_run_as_it_was(bad, whole, tmp_path, capsys):
    if bad[0] == "--device" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    import shutil

    out = shutil.copytree(whole, tmp_path / "run")
    before = _snapshot(out)
    code = main(["train", *TINY, "--out", str(out), "--overwrite", *bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert _snapshot(out) == before and not list(tmp_path.glob(".run.replaced-*"))


def test_an_overwrite_that_dies_before_its_first_checkpoint_puts_the_old_run_back(whole, tmp_path, monkeypatch):
    import shutil

    out = shutil.copytree(whole, tmp_path / "run")
    before = _snapshot(out)
    original = armor.Trainer.train_epoch

    def dies(self, epoch):
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) in the new run's first epoch

    monkeypatch.setattr(armor.Trainer, "train_epoch", dies)
    with pytest.raises(KeyboardInterrupt):
        armor.train(out=str(out), overwrite=True, **QUICK)
    assert _snapshot(out) == before and not list(tmp_path.glob(".run.replaced-*"))
    monkeypatch.setattr(armor.Trainer, "train_epoch", original)
    armor.train(out=str(out), overwrite=True, **QUICK)  # a successful overwrite replaces it and leaves nothing aside
    assert load_checkpoint(out / "last.pt")["epoch"] == 2 and not list(tmp_path.glob(".run.replaced-*"))


def test_an_overwrite_killed_before_its_first_checkpoint_is_undone_at_the_next_start(whole, tmp_path):
    import shutil

    out = shutil.copytree(whole, tmp_path / "run")
    before = _snapshot(out)
    killed = _armor("train", *TINY, "--out", str(out), "--overwrite", fault="mid_epoch")
    assert killed.returncode == -signal.SIGKILL and list(tmp_path.glob(".run.replaced-*"))
    resumed = _armor("train", "--resume", "--out", str(out), "--quiet", "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr  # the old run came back and was resumed (it had finished)
    assert not list(tmp_path.glob(".run.replaced-*"))
    assert (out / "last.pt").read_bytes() == before[out / "last.pt"]


# -- 2. an evaluation never resumes from another checkpoint's state -------------------------------------------------
def test_an_interrupted_eval_of_one_checkpoint_is_not_resumed_by_another(tmp_path, monkeypatch):
    a = armor.train(out=str(tmp_path / "a"), **{**QUICK, "epochs": 1})
    b = armor.train(out=str(tmp_path / "b"), **{**QUICK, "epochs": 2, "seed": 1})
    out = tmp_path / "e.json"
    from armor.attacks import pgd

    calls = []
    original = pgd.PGD.perturb

    def flaky(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(pgd.PGD, "perturb", flaky)
    with pytest.raises(KeyboardInterrupt):
        armor.evaluate_checkpoint(a.out / "best.pt", attack=["pgd"], steps=2, batch_size=1, checks=False, out=str(out))
    assert Path(str(out) + ".state.json").is_file()
    monkeypatch.setattr(pgd.PGD, "perturb", original)
    resumed = armor.evaluate_checkpoint(b.out / "best.pt", attack=["pgd"], steps=2, batch_size=1, checks=False,
                                        out=str(out))
    fresh = armor.evaluate_checkpoint(b.out / "best.pt", attack=["pgd"], steps=2, batch_size=1, checks=False,
                                      out=str(tmp_path / "fresh.json"))
    assert resumed.result.to_dict() == fresh.result.to_dict()  # b's own numbers, not a's half-done state
    # and by default every checkpoint of a run writes its own record (and resume state)
    assert armor.eval.run.output_path(armor.EvalConfig(checkpoint="RUN/best_ema.pt")).name == "eval_best_ema.json"


# -- 3. no kill point, torn line or foreign checkpoint loses or duplicates a metrics record ---------------------------
def test_a_torn_or_damaged_metrics_file_is_rebuilt_from_the_checkpoint(tmp_path):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    history = read_jsonl(out / "metrics.jsonl")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("{not json\n" + "\n".join(lines[1:]) + '\n{"epoch": 3, "tr')
    armor.train(out=str(out), resume=True, epochs=3)
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    assert _strip(read_jsonl(out / "metrics.jsonl"))[:2] == _strip(history)


def test_a_foreign_last_checkpoint_is_refused_and_the_history_kept(tmp_path, capsys):
    armor.train(out=str(tmp_path / "mine"), **QUICK)
    armor.train(out=str(tmp_path / "other"), **{**QUICK, "seed": 5})
    import shutil

    shutil.copy(tmp_path / "other" / "last.pt", tmp_path / "mine" / "last.pt")
    before = (tmp_path / "mine" / "metrics.jsonl").read_bytes()
    code = main(["train", "--resume", "--out", str(tmp_path / "mine"), "--epochs", "3", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "belongs to another run" in err[0]
    assert (tmp_path / "mine" / "metrics.jsonl").read_bytes() == before


# -- 4. --resume never silently ignores a changed option --------------------------------------------------------------
def test_resume_refuses_a_changed_option_and_extends_epochs(tmp_path, capsys):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    for argv, needle in ((["--eps", "0.1"], "cannot change eps: the run was trained with 0.2, now 0.1"),
                         (["--method", "trades"], "cannot change method"),
                         (["--epochs", "1"], "epochs 1 is fewer than the 2")):
        code = main(["train", "--resume", "--out", str(out), *argv, "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], err
    edited = tmp_path / "edited.yaml"
    edited.write_text((out / "config.yaml").read_text().replace("eps: 0.2", "eps: 0.1"))
    code = main(["train", "--resume", "--out", str(out), "--config", str(edited), "--quiet"])
    assert code == 2 and "cannot change eps" in capsys.readouterr().err
    with pytest.raises(armor.UserError, match="cannot change eps"):  # the Python form names Python arguments
        armor.train(out=str(out), resume=True, eps=0.1)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--device", "cpu", "--quiet"]) == 0
    assert "epochs: 3" in (out / "config.yaml").read_text() and "eps: 0.2" in (out / "config.yaml").read_text()


def test_resume_warns_when_the_thread_count_changed(tmp_path, caplog):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    state = load_checkpoint(out / "last.pt")
    assert state["environment"]["threads"] == torch.get_num_threads() and state["environment"]["torch_version"]
    record = read_record(out / "results.json", TrainingRecord)
    assert record.environment["threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with caplog.at_level(logging.WARNING, logger="armor"):
            armor.train(out=str(out), resume=True, epochs=3)
    finally:
        torch.set_num_threads(threads)
    assert any("not be bit-identical" in r.getMessage() for r in caplog.records)


# -- 5. one process per run folder ------------------------------------------------------------------------------------
def test_a_second_process_is_refused_while_a_run_folder_is_in_use(tmp_path):
    out = tmp_path / "r"
    holder = ArmorProcess(code="import armor, time; t = armor.Trainer(armor.TrainConfig("
                                f"out={str(out)!r}, **{QUICK!r}), progress=False); print('locked', flush=True); "
                                "time.sleep(60)", env=ENV)
    try:
        holder.wait_for_line("locked")
        second = _armor("train", "--out", str(out), "--seed", "1", *TINY[:4])
        assert second.returncode == 2 and f"in use by pid {holder.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait(30)
    # the holder died without releasing anything: its lock is stale and the next run takes it
    assert armor.train(out=str(out), overwrite=True, **QUICK).record.epochs == 2


def test_a_released_lock_is_not_reported_as_the_stale_lock_of_a_dead_process(tmp_path, caplog):
    import subprocess
    import sys

    from armor import locks

    path = tmp_path / ".r.armor.lock"
    code = ("import sys, time; from armor import locks; locks.acquire(sys.argv[1], 'r'); locks.release(sys.argv[1]); "
            "print('released', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "released"  # a finished holder, still running something else
        with caplog.at_level(logging.INFO, logger="armor"):
            locks.acquire(path, "run folder 'r'")
        locks.release(path)
        assert "stale" not in caplog.text
    finally:
        holder.kill()
        holder.wait(30)
    path.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))  # as a holder that died leaves it
    with caplog.at_level(logging.INFO, logger="armor"):
        locks.acquire(path, "run folder 'r'")
    locks.release(path)
    assert f"taking over the stale lock of pid {holder.pid}, which is no longer running" in caplog.text


# -- 6. a run stopped before its first checkpoint can be started again ------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_starts_again_without_overwrite(tmp_path):
    out = tmp_path / "r"
    killed = _armor("train", *TINY, "--out", str(out), fault="mid_epoch")
    assert killed.returncode == -signal.SIGKILL and (out / "config.yaml").is_file() and not (out / "last.pt").exists()
    resumed = _armor("train", "--resume", "--out", str(out))
    assert resumed.returncode == 2 and "stopped before its first epoch ended" in resumed.stderr
    again = _armor("train", *TINY, "--out", str(out))
    assert again.returncode == 0, again.stderr


# -- 7. one line and exit 2 where there used to be a traceback --------------------------------------------------------
def test_weights_that_do_not_fit_their_config_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    state = torch.load(out / "last.pt", weights_only=True)
    state["model_spec"]["options"] = {"width": 8}  # the weights are for width 32
    torch.save(state, out / "last.pt")
    for argv in (["eval", "--checkpoint", str(out / "last.pt"), "--no-checks"],
                 ["train", "--resume", "--out", str(out), "--epochs", "3", "--quiet"]):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "do not fit" in err[0], err


def test_a_garbage_eval_state_file_starts_afresh(tmp_path, capsys, caplog):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    (tmp_path / "e.json.state.json").write_text("\x00garbage{{")
    with caplog.at_level(logging.WARNING, logger="armor"):
        code = main(["eval", "--checkpoint", str(out / "best.pt"), "--attack", "pgd", "--steps", "1", "--no-checks",
                     "--out", str(tmp_path / "e.json")])
    assert code == 0 and any("starting afresh" in r.getMessage() for r in caplog.records)


def test_a_full_disk_and_unwritable_outputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    for argv in (["eval", "--checkpoint", str(out / "best.pt"), "--out", "/proc/armor-eval.json"],
                 ["report", str(out), "-o", "/proc/armor-report.html"]):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "cannot write" in err[0], err
    import armor.io as io

    def full(path, write, fault=None):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(io, "atomic_write", full)
    code = main(["train", "--out", str(tmp_path / "full"), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0], err


def test_sigterm_stops_like_ctrl_c_with_one_line(tmp_path):
    out = tmp_path / "r"
    proc = ArmorProcess(["train", *TINY, "--epochs", "30", "--out", str(out)], env=ENV)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    err = proc.stderr()
    assert proc.returncode == 143 and err.strip().splitlines()[-1].startswith("armor: terminated")
    assert load_checkpoint(out / "last.pt")["epoch"] >= 1  # what was written is intact and resumable


def test_a_sigterm_whose_exception_python_dropped_still_stops_the_run(tmp_path, monkeypatch, capsys):
    """Python only prints an exception a signal handler raised inside a __del__, a weakref callback or an at-fork
    hook; the recorded request must still stop the run at the next batch, like a SIGTERM that was raised."""
    from armor import interrupts
    from armor.methods.pgd_at import PGDAT

    calls, real_step = [], PGDAT.step

    def step(self, model, x, y):
        calls.append(1)
        if len(calls) == 15:  # inside epoch 2 (10 batches an epoch): the handler ran and its exception was dropped
            try:
                interrupts.on_sigterm(signal.SIGTERM, None)
            except interrupts.Terminated:
                pass
        return real_step(self, model, x, y)

    monkeypatch.setattr(PGDAT, "step", step)
    out = tmp_path / "r"
    code = main(["train", *TINY, "--epochs", "30", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 143 and err[-1].startswith("armor: terminated"), err
    assert len(calls) == 15  # stopped before the next batch's step
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # epoch 1's checkpoint intact and resumable
    monkeypatch.setattr(PGDAT, "step", real_step)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "next")]) == 0  # the request is gone


# -- 8. mistakes that used to be accepted -------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--eps", "8"], "eps 8 is at least the width of the input box (1): every input could be turned into any other "
                     "(did you mean 8/255"),
    (["--eps", "300/255"], "at least the width of the input box"),
    (["--batch-size", "5000"], "batch_size 5000 is larger than the 1200 training examples"),
])
def test_budgets_and_batches_that_cannot_be_meant_are_refused(argv, needle, tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "r"), "--quiet", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "r").exists()


def test_a_large_but_possible_budget_is_warned_about(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="armor"):
        armor.Trainer(armor.TrainConfig(out=str(tmp_path / "r"), **{**QUICK, "eps": 0.6}), progress=False)
    assert any("more than half the width of the input box" in r.getMessage() for r in caplog.records)


def test_a_stray_label_is_refused_unless_num_classes_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(200) % 10
    y[7] = 12
    np.savez(tmp_path / "d.npz", x_train=rng.random((200, 8, 8), dtype=np.float32), y_train=y,
             x_test=rng.random((40, 8, 8), dtype=np.float32), y_test=np.arange(40) % 10)
    code = main(["train", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "label 12 appears but 10, 11 never do" in err and "num_classes: 13" in err
    cfg = armor.TrainConfig(dataset=str(tmp_path / "d.npz"), num_classes=13, **{**QUICK, "train_size": None,
                                                                               "val_size": 20})
    assert cfg.load_data().num_classes == 13


def test_a_bad_sweep_value_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    armor.train(out=str(out), **QUICK)
    from armor.eval import robust

    monkeypatch.setattr(robust, "evaluate", lambda *a, **k: pytest.fail("evaluation ran"))
    code = main(["eval", "--checkpoint", str(out / "best.pt"), "--sweep", "0.1", "abc"])
    assert code == 2 and "sweep must be a positive number such as 0.3 or 8/255, got 'abc'" in capsys.readouterr().err
    code = main(["eval", "--checkpoint", str(out / "best.pt"), "--sweep", "0.1", "2"])
    assert code == 2 and "sweep eps 2 is at least the width" in capsys.readouterr().err


@pytest.mark.parametrize("content,needle", [
    (bytes(range(128, 256)) * 4, "it is not a PyTorch file (unknown bytes"),
    (b"just some notes\n", "it is not a PyTorch file (a text file"),
    (b"", "it is not a PyTorch file (an empty file"),
])
def test_garbage_checkpoints_get_honest_messages(content, needle, tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(content)
    assert main(["eval", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "could run code" not in err


def test_a_text_file_named_npz_is_not_called_pickled_data(tmp_path, capsys):
    (tmp_path / "d.npz").write_text("x,y\n1,2\n")
    assert main(["train", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "it is not a zip file" in err and "pickle" not in err


def test_a_truncated_checkpoint_says_it_is_truncated(whole, tmp_path, capsys):
    data = (whole / "best.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 3])
    assert main(["eval", "--checkpoint", str(tmp_path / "t.pt")]) == 2
    assert "truncated or damaged" in capsys.readouterr().err


# -- 9. the thread count is recorded wherever a number is --------------------------------------------------------------
def test_every_record_states_its_thread_count_and_torch_version(whole, tmp_path):
    record = read_record(whole / "results.json", TrainingRecord)
    assert record.environment["threads"] == 1 and record.environment["torch_version"]  # the subprocess ran 1 thread
    ev = armor.evaluate_checkpoint(whole / "best.pt", attack=["pgd"], steps=1, checks=False,
                                   out=str(tmp_path / "e.json"))
    assert read_record(tmp_path / "e.json", EvaluationRecord).environment["threads"] == torch.get_num_threads() \
        == ev.environment["threads"]
