"""The catastrophic-overfitting guard: fires on a collapse, says so everywhere, can roll back."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from armor import TrainConfig, UserError
from armor.data.datasets import default_data_dir
from armor.training import Trainer
from armor.io import read_jsonl
from armor.training.guards import CatastrophicOverfittingGuard

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
    summary = Trainer(TrainConfig(**TINY, eps_warmup=3, out=str(tmp_path / "r")), progress=False).fit()
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
                      eval_steps=5, guard_batch=256, out=str(tmp_path / "co"))
    summary = Trainer(cfg, progress=False).fit()
    records = read_jsonl(tmp_path / "co" / "metrics.jsonl")
    assert summary.stop_reason and "catastrophic overfitting" in summary.stop_reason
    assert len(records) < 6 and records[-1]["guard"] == "fired"
    assert records[-1]["guard_pgd_acc"] < 5 and records[-1]["train_robust_acc"] > 35
