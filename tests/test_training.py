import json

import pytest
import torch

from armor import TrainConfig, UserError
from armor.methods import METHODS, create_method
from armor.training import Trainer
from armor.io import read_jsonl


def test_pgd_at_model_beats_standard_model_under_pgd(standard_run, robust_run):
    std = standard_run["summary"].test
    rob = robust_run["summary"].test
    assert std.clean_acc > 90 and rob.clean_acc > 88
    assert std.acc("pgd-10") < 15
    assert rob.acc("pgd-10") > std.acc("pgd-10") + 30


def test_metrics_file_has_one_complete_line_per_epoch(robust_run):
    records = read_jsonl(robust_run["out"] / "metrics.jsonl")
    assert [r["epoch"] for r in records] == list(range(1, 21))
    for key in ("train_loss", "train_robust_acc", "val_clean_acc", "val_robust_acc", "lr", "seconds"):
        assert all(key in r for r in records), key
    # adversarial training: the adversarial train accuracy rises over training
    assert records[-1]["train_robust_acc"] > records[0]["train_robust_acc"] + 20


def test_best_checkpoint_is_the_epoch_of_highest_val_robust_accuracy(robust_run):
    records = read_jsonl(robust_run["out"] / "metrics.jsonl")
    best = max(records, key=lambda r: (r["val_robust_acc"], r["val_clean_acc"]))
    state = torch.load(robust_run["out"] / "best.pt", weights_only=True)
    assert state["epoch"] == best["epoch"] == robust_run["summary"].best_epoch
    assert json.loads((robust_run["out"] / "results.json").read_text())["best_epoch"] == best["epoch"]


def test_checkpoints_load_with_weights_only(robust_run):
    for name in ("best.pt", "last.pt"):
        state = torch.load(robust_run["out"] / name, weights_only=True)
        assert state["format"] == "armor-checkpoint" and state["config"]["method"] == "pgd_at"


def _cfg(out, **kw):
    base = dict(method="pgd_at", eps=0.2, epochs=4, steps=3, schedule="cosine", train_size=400, val_size=100,
                test_size=100, out=str(out), eval_attacks=["pgd"], eval_steps=5)
    return TrainConfig(**{**base, **kw})


def test_resumed_run_ends_at_the_same_weights_as_an_uninterrupted_one(tmp_path, monkeypatch):
    whole = Trainer(_cfg(tmp_path / "whole"), progress=False)
    whole.fit()

    crash_at = 2
    original = Trainer.train_epoch

    def crashing(self, epoch):
        if epoch == crash_at:
            raise KeyboardInterrupt  # the job dies mid-run, after epoch 2 was checkpointed
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tmp_path / "split"), progress=False).fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = Trainer(_cfg(tmp_path / "split"), resume=True, progress=False)
    assert resumed.start_epoch == crash_at
    resumed.fit()

    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = read_jsonl(tmp_path / "whole" / "metrics.jsonl"), read_jsonl(tmp_path / "split" / "metrics.jsonl")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(ra) == strip(rb)


def test_existing_run_folder_is_never_overwritten_by_accident(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="already holds files"):
        Trainer(_cfg(out), progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


def test_clean_weight_mixes_the_clean_loss(digits):
    from armor import ThreatModel, create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", (1, 8, 8), 10)
    x, y = digits.x_train[:64], digits.y_train[:64]
    threat = ThreatModel("linf", 0.2)
    losses = {}
    for w in (0.0, 0.5, 1.0):
        torch.manual_seed(1)
        out = create_method("pgd_at", threat, steps=2, clean_weight=w).step(model, x, y)
        losses[w] = out.loss.item()
    clean = torch.nn.functional.cross_entropy(model(x), y).item()
    assert losses[1.0] == pytest.approx(clean, rel=1e-5)
    assert losses[0.5] == pytest.approx((losses[0.0] + losses[1.0]) / 2, rel=1e-4)
    with pytest.raises(UserError, match="clean_weight must be in"):
        create_method("pgd_at", threat, clean_weight=1.5)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_takes_a_training_step(name, digits):
    from armor import ThreatModel

    from armor.models import ModelSpec, build_model

    cls = METHODS.get(name)  # a method may ask for another head (dummy-class AT folds 2C outputs to C)
    model = build_model(ModelSpec("small_cnn", [1, 8, 8], 10, head=cls.head))
    options = {"steps": 2} if METHODS.takes(name, "steps") else {}
    out = create_method(name, ThreatModel("linf", 0.2), **options).step(model, digits.x_train[:32],
                                                                         digits.y_train[:32])
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.shape == (32, 10)
    assert all(p.grad is not None for p in model.parameters())


def test_eps_warmup_ramps_the_budget(tmp_path):
    t = Trainer(_cfg(tmp_path / "r", eps_warmup=2, epochs=3), progress=False)
    assert [t.schedule.at(p).eps for p in (0.5, 1.0, 1.5, 2.0, 2.5)] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2])
    assert t.schedule.at(2.0) is t.schedule.at(7.5) is t.threat  # after the ramp: the run's own threat object


def test_during_the_eps_ramp_the_inner_attack_is_rebuilt_only_when_eps_changes(tmp_path, monkeypatch):
    """One owner of ε: the schedule; the method rebuilds its PGD only when the threat it is handed changed."""
    import functools

    from armor.attacks import pgd

    built = []
    original = pgd.PGD.__init__

    @functools.wraps(original)  # keeps the signature: the registry reads the options from it
    def counting(self, threat, *a, **kw):
        built.append(threat.eps)
        original(self, threat, *a, **kw)

    monkeypatch.setattr(pgd.PGD, "__init__", counting)
    cfg = _cfg(tmp_path / "r", eps_warmup=2, epochs=4, batch_size=100)
    trainer = Trainer(cfg, progress=False)
    batches = len(trainer.data.x_train) // cfg.batch_size
    built.clear()
    for epoch in range(4):
        trainer.train_epoch(epoch)
    ramp = [trainer.schedule.eps_at(e + (b + 1) / batches) for e in range(2) for b in range(batches)]
    # one construction per new ε: each ramp step, then the full ε once — never again in epochs 3 and 4
    assert built == [e for e in ramp if e < 0.2] + [0.2]
    assert len(set(built)) == len(built)
