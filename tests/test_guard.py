"""The catastrophic-overfitting guard: fires on a collapse, says so everywhere, can roll back."""
from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from armor import TrainConfig, UserError
from armor.data.datasets import default_data_dir
from armor.training import Trainer
from armor.training.callbacks import Callback
from armor.io import read_jsonl
from armor.training.guards import CatastrophicOverfittingGuard

import collapse

TINY = dict(method="fgsm_rs", eps=0.2, epochs=6, train_size=200, val_size=100, test_size=50,
            eval_attacks=["pgd"], eval_steps=2, guard_batch=64, guard_steps=2)


def _inject(monkeypatch, monitor, train_robust):
    """Script the guard's PGD accuracy and the epoch's train robust accuracy: a collapse at epoch 4."""
    accs = iter(monitor)
    monkeypatch.setattr(CatastrophicOverfittingGuard, "monitor_acc", lambda self, ctx, threat: next(accs))
    original = Trainer.train_epoch

    def train_epoch(self, epoch):
        return {**original(self, epoch), "train_robust_acc": train_robust[epoch]}

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


@pytest.mark.parametrize("action", ["stop", "rollback"])
def test_guard_stops_on_an_injected_collapse_and_says_so(action, tmp_path, monkeypatch, caplog):
    _inject(monkeypatch, [40.0, 55.0, 52.0, 1.5, 0.0, 0.0], [50, 60, 70, 96, 97, 98])
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(**TINY, guard=action, out=str(out)), progress=False)
    with caplog.at_level(logging.WARNING, logger="armor"):
        summary = trainer.fit()
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]  # stopped after the collapse epoch
    assert [r["guard_pgd_acc"] for r in records] == [40.0, 55.0, 52.0, 1.5]
    assert "guard" not in records[2] and records[3]["guard"] == ("fired" if action == "stop" else "rolled_back")
    assert "catastrophic overfitting" in summary.stop_reason and "best 55.0% at epoch 2" in summary.stop_reason
    assert json.loads((out / "results.json").read_text())["stop_reason"] == summary.stop_reason
    assert any("catastrophic overfitting" in r.getMessage() for r in caplog.records)
    best = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "last.pt", weights_only=True)
    rolled = all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    assert rolled == (action == "rollback")
    if action == "rollback":
        assert records[3]["guard_rolled_back_to_epoch"] == best["epoch"]
        assert "rolled back to best.pt" in summary.stop_reason


def test_guard_ignores_a_run_that_gets_worse_on_both_train_and_monitor(tmp_path, monkeypatch):
    # PGD accuracy falls 50 points, but so does train robust accuracy: that is not catastrophic overfitting
    _inject(monkeypatch, [60.0, 62.0, 12.0, 10.0, 11.0, 12.0], [60, 62, 20, 18, 19, 20])
    summary = Trainer(TrainConfig(**TINY, guard="stop", out=str(tmp_path / "r")), progress=False).fit()
    assert summary.stop_reason is None
    assert len(read_jsonl(tmp_path / "r" / "metrics.jsonl")) == 6


def test_during_the_eps_ramp_the_guard_attacks_at_the_ramped_eps_and_a_drop_after_it_is_no_collapse(
        tmp_path, monkeypatch):
    # a healthy ramped FGSM-RS run: PGD at the ramped ε is high, then lower once ε is full (a harder attack,
    # not a collapse). Judged against the ramp epochs' numbers, the 38-point drop would have fired.
    seen = []
    accs = iter([60.0, 58.0, 22.0, 24.0, 25.0, 26.0])

    def monitor(self, ctx, threat):
        seen.append(threat.eps)
        return next(accs)

    monkeypatch.setattr(CatastrophicOverfittingGuard, "monitor_acc", monitor)
    summary = Trainer(TrainConfig(**TINY, eps_warmup=3, out=str(tmp_path / "r")), progress=False).fit()
    assert summary.stop_reason is None
    assert seen == [pytest.approx(0.2 / 3), pytest.approx(0.4 / 3)] + [0.2] * 4
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [r.get("guard_eps") for r in records][:3] == [pytest.approx(0.2 / 3), pytest.approx(0.4 / 3), None]


def test_a_collapse_during_the_eps_ramp_still_fires(tmp_path, monkeypatch):
    _inject(monkeypatch, [1.0] * 6, [77, 80, 90, 92, 93, 94])  # robust to FGSM at the ramped ε, to no PGD
    summary = Trainer(TrainConfig(**TINY, eps_warmup=3, guard="stop", out=str(tmp_path / "r")), progress=False).fit()
    assert "catastrophic overfitting at epoch 1" in summary.stop_reason
    assert "at the ramped ε=0.06667" in summary.stop_reason


def test_guard_is_on_by_default_only_for_single_step_methods(tmp_path):
    plain = {k: v for k, v in TINY.items() if not k.startswith("guard_")}

    def guards(**kw):
        t = Trainer(TrainConfig(**{**plain, **kw, "out": str(tmp_path / kw["method"] / kw.get("guard", "auto"))}),
                    progress=False)
        names = [type(cb).__name__ for cb in t.callbacks]
        assert names[0] == "ChanceGuard"  # the stuck-at-chance guard watches every run
        return names[1:]

    assert guards(method="fgsm_rs") == ["CatastrophicOverfittingGuard"]
    assert guards(method="free") == ["CatastrophicOverfittingGuard"]
    assert guards(method="pgd_at") == []
    assert guards(method="pgd_at", guard="rollback") == ["CatastrophicOverfittingGuard"]
    assert guards(method="fgsm_rs", guard="off") == []
    # guard settings for a run whose guard is off would do nothing: an error, not a silent no-op
    with pytest.raises(UserError, match="guard_batch applies only when the catastrophic-overfitting guard is on"):
        TrainConfig(**{**plain, "method": "pgd_at", "guard_batch": 64})


DATA_DIR = default_data_dir()
MNIST = None if DATA_DIR is None else DATA_DIR / "mnist.npz"


@pytest.mark.skipif(MNIST is None or not MNIST.is_file(), reason="needs ../shared/data/mnist.npz (not shipped with armor)")
def test_guard_catches_the_real_fgsm_rs_collapse_on_an_mnist_subset(tmp_path):
    # the collapse of issue 5 on 10k MNIST images: ε = 0.3, α = 0.375 from a start clamped into the
    # image box; by epoch 2–3 FGSM training accuracy climbs while PGD accuracy is ~0
    cfg = TrainConfig(dataset="mnist", data_dir=str(MNIST.parent), model="tiny_cnn", method="fgsm_rs", eps=0.3,
                      step_size=0.375, optimizer="adam", lr=5e-3, schedule="onecycle", batch_size=100, epochs=6,
                      train_size=10000, val_size=500, test_size=200, val_steps=5, eval_attacks=["pgd"],
                      eval_steps=5, guard="stop", guard_batch=256, out=str(tmp_path / "co"))
    summary = Trainer(cfg, progress=False).fit()
    records = read_jsonl(tmp_path / "co" / "metrics.jsonl")
    assert summary.stop_reason and "catastrophic overfitting" in summary.stop_reason
    assert len(records) < 6 and records[-1]["guard"] == "fired"
    assert records[-1]["guard_pgd_acc"] < 5 and records[-1]["train_robust_acc"] > 35


# -- recover: roll back, switch to a safer setting, go on ---------------------------------------------------------------
#: a scripted collapse (tests/collapse.py) on a tiny run that need not learn: the chance guard is off
RECOVER = {**TINY, "guard": "recover", "guard_drop": 5.0, "seed": 1, "chance_patience": 0}


class _WeightsAtEpochEnd(Callback):
    """A callback after the guard: the model's weights at the end of each epoch (what last.pt will hold)."""

    name = "weights_probe"

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, ctx, epoch, record):
        self.weights[epoch + 1] = {k: v.clone() for k, v in ctx.model.state_dict().items()}


def test_recover_rolls_back_to_best_switches_to_pgd2_and_finishes_the_run(tmp_path, monkeypatch):

    collapse.install([4], monkeypatch)
    out = tmp_path / "run"
    probe = _WeightsAtEpochEnd()
    trainer = Trainer(TrainConfig(**RECOVER, out=str(out)), progress=False, callbacks=[probe])
    summary = trainer.fit()
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6] and summary.stop_reason is None
    fired = records[3]
    assert fired["guard"] == "recovered" and fired["guard_switched_to"] == "pgd_at steps=2"
    assert "train_setting" not in fired  # epoch 4 itself trained (and collapsed) with FGSM-RS
    assert [r.get("train_setting") for r in records] == [None] * 4 + ["pgd_at steps=2"] * 2
    # the rollback: at the end of epoch 4 the model holds the weights of the best epoch before it
    back = fired["guard_rolled_back_to_epoch"]
    best_before = max(records[:3], key=lambda r: (r["val_robust_acc"], r["val_clean_acc"]))["epoch"]
    assert back == best_before and all(torch.equal(probe.weights[4][k], probe.weights[back][k])
                                       for k in probe.weights[4])
    # the switch: epochs 5 and 6 trained with PGD-2 (the training accuracy is PGD-2's), and last.pt says so
    assert type(trainer.method).__name__ == "PGDAT" and trainer.method.steps == 2
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["setting"] == "pgd_at steps=2" and last["callbacks"]["co_guard"]["recoveries"] == 1
    # the record says what happened and when; the cost counts each setting's epochs
    saved = json.loads((out / "results.json").read_text())
    assert saved["guard_events"] == summary.guard_events
    (event,) = summary.guard_events
    assert event["epoch"] == 4 and event["action"] == "recovered" and event["monitor_acc"] == 1.0
    assert event["setting"] == "fgsm_rs" and event["switched_to"] == "pgd_at steps=2"
    assert event["rolled_back_to_epoch"] == back and event["train_robust_acc"] == fired["train_robust_acc"]
    cost = summary.cost
    assert [(s["setting"], s["epochs"], s["passes"]["total"]) for s in cost["settings"]] == \
        [("fgsm_rs", 4, 2.0), ("pgd_at steps=2", 2, 3.0)]
    assert cost["passes"] == pytest.approx((4 * 2 + 2 * 3) / 6, abs=1e-3)


def test_recover_escalates_then_rolls_back_and_stops_when_the_ladder_is_used_up(tmp_path, monkeypatch):

    collapse.install([2, 4, 6], monkeypatch)
    out = tmp_path / "run"
    summary = Trainer(TrainConfig(**{**RECOVER, "epochs": 8}, guard_fallback=[2, 4], out=str(out)),
                      progress=False).fit()
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r.get("guard") for r in records] == [None, "recovered", None, "recovered", None, "rolled_back"]
    assert [r.get("train_setting") for r in records] == [None, None, "pgd_at steps=2", "pgd_at steps=2",
                                                         "pgd_at steps=4", "pgd_at steps=4"]
    assert [(e["epoch"], e["action"], e.get("switched_to")) for e in summary.guard_events] == \
        [(2, "recovered", "pgd_at steps=2"), (4, "recovered", "pgd_at steps=4"), (6, "stopped", None)]
    assert "the guard's last fallback setting (pgd_at steps=4) collapsed too" in summary.stop_reason
    assert "rolled back to best.pt" in summary.stop_reason


def test_fallback_settings_are_safer_than_the_method():
    from armor.training.guards import fallback_settings

    assert [(m, o) for m, o, _ in fallback_settings("fgsm_rs", {"step_size": 0.25}, [2, 3, 5])] == \
        [("pgd_at", {"steps": 2}), ("pgd_at", {"steps": 3}), ("pgd_at", {"steps": 5})]
    # a method with its own inner steps keeps its loss and options and gets more steps; fewer would be weaker
    assert [(m, o) for m, o, _ in fallback_settings("trades", {"beta": 1.0, "steps": 3}, [2, 3, 5, 10])] == \
        [("trades", {"beta": 1.0, "steps": 5}), ("trades", {"beta": 1.0, "steps": 10})]
    assert fallback_settings("pgd_at", {}, [2, 3, 5]) == []  # PGD-7 by default: the ladder has nothing safer


def test_recover_is_the_default_for_single_step_methods_and_its_options_are_checked(tmp_path):
    plain = {k: v for k, v in TINY.items() if not k.startswith("guard_")}
    for method in ("fgsm_rs", "n_fgsm", "grad_align", "free"):
        assert TrainConfig(**{**plain, "method": method}).guard_action() == "recover"
    assert TrainConfig(**{**plain, "method": "pgd_at"}).guard_action() == "off"
    for kw, needle in ((dict(guard="stop", guard_fallback=[2, 3]), "guard_fallback applies only to guard recover"),
                       (dict(method="pgd_at", guard_fallback=[3]), "applies only when the catastrophic-overfitting"),
                       (dict(guard_fallback=[3, 2]), "guard_fallback must increase"),
                       (dict(guard_fallback=[0]), "integers ≥ 1"),
                       (dict(method="standard", guard="recover"), "method 'standard' has none")):
        with pytest.raises(UserError, match=needle):
            TrainConfig(**{**plain, **kw})


def _run_killed(tmp_path, name, fault=None, extra=()):
    """``armor train`` with the scripted collapse at epoch 3 (tests/collapse.py), in a process of its own."""
    import os

    from launch import armor_run

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if fault:
        env["ARMOR_FAULT"] = fault
    argv = ["train", "--method", "fgsm_rs", "--eps", "0.2", "--epochs", "5", "--train-size", "160", "--val-size",
            "80", "--test-size", "40", "--batch-size", "32", "--val-steps", "2", "--eval-attacks", "pgd",
            "--eval-steps", "2", "--guard-batch", "40", "--guard-steps", "2", "--guard-drop", "5", "--cost-probe",
            "2", "--chance-patience", "0", "--seed", "2", "--device", "cpu", "--no-plot", "--quiet", "--out", str(tmp_path / name), *extra]
    return armor_run(argv, env=env, timeout=300, before=("collapse", "install", ([3],)))


@pytest.fixture(scope="module")
def whole_recovering_run(tmp_path_factory):
    """The uninterrupted run each kill case is compared with (deterministic: trained once for all of them)."""
    root = tmp_path_factory.mktemp("recovering")
    whole = _run_killed(root, "whole")
    assert whole.returncode == 0, whole.stderr
    return root / "whole"


@pytest.mark.parametrize("fault", ["after_recovery:1", "after_last:3", "epoch_start:5"])
def test_a_kill_during_or_after_a_recovery_resumes_to_the_same_run(fault, whole_recovering_run, tmp_path):
    import signal

    shutil.copytree(whole_recovering_run, tmp_path / "whole")
    killed = _run_killed(tmp_path, "killed", fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = _run_killed(tmp_path, "killed", extra=["--resume"])
    assert again.returncode == 0, again.stderr
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("whole", "killed"))
    assert a["epoch"] == b["epoch"] == 5 and a["setting"] == b["setting"] == "pgd_at steps=2"
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in read_jsonl(tmp_path / d / "metrics.jsonl")]
             for d in ("whole", "killed")]
    assert strip[0] == strip[1] and strip[0][2]["guard"] == "recovered"
    ra, rb = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("whole", "killed"))
    assert ra["candidates"] == rb["candidates"] and ra["guard_events"] == rb["guard_events"] != []
