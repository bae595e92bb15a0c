"""The ready recipes in configs/ and the guards that keep long runs honest."""
from pathlib import Path

import pytest
import torch

from armor import TrainConfig, ThreatModel, create_attack
from armor.training import Trainer
from armor.io import read_jsonl

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_recipe_is_a_valid_config(path):
    cfg = TrainConfig.from_yaml(path)
    dataset = path.stem.split("_")[0]
    assert cfg.dataset_key == {"fashion": "fashion_mnist", "breast": "breast_cancer"}.get(dataset, dataset)
    assert cfg.out_dir().name == path.stem  # each recipe writes its own run folder
    if dataset in ("mnist", "fashion") and cfg.method in ("pgd_at", "trades", "dummy"):
        assert cfg.eps_warmup >= 1  # from-scratch PGD-AT at ε=0.3 sat at chance without a ramp
    if cfg.method == "fgsm_rs" and dataset in ("mnist", "fashion"):
        assert cfg.method_options == {"clamp_start": False}  # clamped into the box first, MNIST collapsed
    if cfg.model in ("preact_resnet18", "wide_resnet"):  # the GPU recipes keep their best epoch and stop
        assert cfg.steps == 10 and cfg.resolved_eps() == pytest.approx(8 / 255) and cfg.early_stop_patience > 0


def test_a_run_stuck_at_chance_is_stopped_and_reported(tmp_path):
    cfg = TrainConfig(method="pgd_at", eps=0.6, steps=2, lr=1e-7, epochs=10, train_size=256, val_size=50,
                      test_size=50, out=str(tmp_path / "stuck"), eval_attacks=["pgd"], eval_steps=2)
    summary = Trainer(cfg, progress=False).fit()
    records = read_jsonl(tmp_path / "stuck" / "metrics.jsonl")
    assert len(records) == 3 and records[-1]["chance_guard"] == "fired"
    assert "stuck at chance" in summary.stop_reason and "eps_warmup" in summary.stop_reason


def test_unclamped_random_start_may_leave_the_box_but_the_attack_output_does_not():
    threat = ThreatModel("linf", 0.3)
    x = torch.zeros(32, 1, 8, 8)
    start = threat.random_init(x, clamp=False)
    assert start.min() < -0.1 and (threat.distance(start, x) <= 0.3 + 1e-6).all()
    assert threat.random_init(x).min() >= 0
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x_adv = create_attack("fgsm_rs", threat, clamp_start=False)(model, x, torch.zeros(32, dtype=torch.long))
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (threat.distance(x_adv, x) <= 0.3 + 1e-6).all()
