"""Robust overfitting remedies: best.pt by robust val accuracy, early stopping, EMA/SWA candidates, curves."""
import json

import pytest
import torch

from armor import TrainConfig
from armor.checkpoints import load_model
from armor.training import Trainer
from armor.io import read_jsonl


def _cfg(out, **kw):
    base = dict(method="pgd_at", eps=0.2, epochs=6, steps=2, train_size=128, val_size=50, test_size=50,
                batch_size=64, out=str(out), eval_attacks=["pgd"], eval_steps=3, val_steps=3, plot=False,
                cost_probe=0)  # the cost record is test_methods.py's; here it would only add minibatches to time
    return TrainConfig(**{**base, **kw})


def _no_training(monkeypatch):
    """Epochs that cost nothing: these tests are about bookkeeping, not about learning."""
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch: {"train_loss": 1.0, "train_robust_acc": 10.0,
                                                                     "lr": 1e-3, "eps": 0.2})


def _scripted(monkeypatch, val_robust, val_clean=None):
    """Validation returns a scripted sequence, so which epoch is best is known in advance."""
    val_clean = val_clean or [50.0] * len(val_robust)
    calls = []

    def validate(self):
        i = len(calls)
        calls.append(i)
        return {"val_clean_acc": val_clean[i], "val_robust_acc": val_robust[i]}

    monkeypatch.setattr(Trainer, "validate", validate)
    return calls


def test_best_checkpoint_is_argmax_of_logged_robust_val_acc_ties_to_clean(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    # epochs 2 and 4 tie on robust accuracy; epoch 4 has the higher clean accuracy and must win
    _scripted(monkeypatch, [10.0, 30.0, 20.0, 30.0, 25.0], [60.0, 50.0, 70.0, 55.0, 90.0])
    summary = Trainer(_cfg(tmp_path / "r", epochs=5), progress=False).fit()
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    logged_best = max(records, key=lambda r: (r["val_robust_acc"], r["val_clean_acc"]))["epoch"]
    assert logged_best == 4
    assert torch.load(tmp_path / "r" / "best.pt", weights_only=True)["epoch"] == 4 == summary.best_epoch
    assert torch.load(tmp_path / "r" / "last.pt", weights_only=True)["epoch"] == 5
    assert summary.stop_reason is None and summary.last_epoch == 5


def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    # improvements at epochs 1, 2, 4; then 5, 6, 7 are no better (7 ties robust with lower clean) → stop at 7
    robust = [10.0, 20.0, 15.0, 25.0, 24.0, 22.0, 25.0, 99.0, 99.0]
    clean = [50.0, 50.0, 50.0, 60.0, 50.0, 50.0, 59.0, 50.0, 50.0]
    calls = _scripted(monkeypatch, robust, clean)
    summary = Trainer(_cfg(tmp_path / "r", epochs=9, early_stop_patience=3), progress=False).fit()
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == list(range(1, 8)) and len(calls) == 7
    assert summary.best_epoch == 4 and summary.last_epoch == 7
    assert "early stopping" in summary.stop_reason and "best epoch 4" in summary.stop_reason
    assert json.loads((tmp_path / "r" / "results.json").read_text())["stop_reason"] == summary.stop_reason


def test_early_stopping_counts_evaluations_not_epochs(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    _scripted(monkeypatch, [10.0, 5.0, 5.0, 50.0])
    summary = Trainer(_cfg(tmp_path / "r", epochs=8, val_every=2, early_stop_patience=2), progress=False).fit()
    assert summary.last_epoch == 6 and summary.best_epoch == 2  # validations at 2, 4, 6


def test_ema_and_swa_are_their_own_evaluated_candidates(tmp_path):
    out = tmp_path / "r"
    cfg = _cfg(out, epochs=3, ema_decay=0.9, swa_start=2, test_every=1, test_subset=30, val_subset=40, plot=True)
    trainer = Trainer(cfg, progress=False)
    summary = trainer.fit()
    records = read_jsonl(out / "metrics.jsonl")
    for key in ("val_robust_acc", "ema_val_robust_acc", "ema_val_clean_acc", "test_robust_acc",
                "ema_test_robust_acc", "train_robust_acc", "lr"):
        assert all(key in r for r in records), key
    assert [r.get("swa_models") for r in records] == [None, 1, 2]
    assert "swa_val_robust_acc" in records[-1] and "swa_val_robust_acc" not in records[0]
    # the EMA weights are not the raw weights
    ema = trainer.callbacks[0].averaged.module.state_dict()
    raw = trainer.model.state_dict()
    assert any(not torch.allclose(ema[k], raw[k]) for k in raw)
    # each candidate has its own best checkpoint, loadable by `armor eval`, and its own test line
    assert set(summary.candidates) == {"best", "ema", "swa"}
    x, y = trainer.data.x_test, trainer.data.y_test
    for name, cand in summary.candidates.items():
        model, _, state = load_model(out / cand.checkpoint, device="cpu")
        assert state["epoch"] == cand.epoch
        # the test line of each candidate is its own checkpoint's: the clean predictions match exactly
        predicted = model(x).argmax(1) == y
        assert cand.test.correct == int(predicted.sum())
        assert [b != "clean" for b in cand.test.broken_by_example] == predicted.tolist()
    assert len({c.test.correct for c in summary.candidates.values()}) > 1 or \
        len({c.epoch for c in summary.candidates.values()}) == 1  # different models, different results
    ema_best = max(records, key=lambda r: (r["ema_val_robust_acc"], r["ema_val_clean_acc"]))["epoch"]
    assert summary.candidates["ema"].epoch == ema_best
    ema_state = torch.load(out / "best_ema.pt", weights_only=True)
    assert ema_state["candidate"] == "ema"
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_resume_keeps_best_so_far_patience_and_ema_state(tmp_path, monkeypatch):
    robust = [10.0, 20.0, 15.0, 14.0, 13.0, 30.0]
    cfg = dict(epochs=6, ema_decay=0.8, early_stop_patience=3)
    _scripted(monkeypatch, robust)
    whole = Trainer(_cfg(tmp_path / "whole", **cfg), progress=False)
    whole_summary = whole.fit()
    assert whole_summary.last_epoch == 5 and whole_summary.best_epoch == 2

    calls = _scripted(monkeypatch, robust)
    original = Trainer.train_epoch

    def crashing(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt  # dies after epoch 3 was checkpointed: 1 bad evaluation counted
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tmp_path / "split", **cfg), progress=False).fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    del calls[:]
    calls.extend(range(3))  # the scripted sequence continues at epoch 4
    resumed = Trainer(_cfg(tmp_path / "split", **cfg), resume=True, progress=False)
    assert resumed.best["epoch"] == 2 and resumed.callbacks[1].bad_evals == 1
    summary = resumed.fit()
    assert summary.last_epoch == 5 and summary.best_epoch == 2  # patience counted across the crash
    for a, b in ((whole.model, resumed.model), (whole.callbacks[0].averaged, resumed.callbacks[0].averaged)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "whole" / "metrics.jsonl")) == strip(read_jsonl(tmp_path / "split" /
                                                                                        "metrics.jsonl"))


def test_learning_curves_writer_is_pure_and_skips_without_data(tmp_path):
    from armor.reports.plots import write_learning_curves

    records = [{"epoch": e, "train_robust_acc": 10.0 * e, "val_robust_acc": 8.0 * e, "val_clean_acc": 9.0 * e,
                "lr": 0.1 / e} for e in range(1, 5)]
    assert write_learning_curves(records, tmp_path / "c.png", best_epoch=4) == tmp_path / "c.png"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert write_learning_curves([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
