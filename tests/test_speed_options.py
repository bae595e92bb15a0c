"""Mixed precision and channels_last on CPU: the training step still learns and the attack stays exact."""
from __future__ import annotations

import pytest
import torch

from armor import ThreatModel, TrainConfig, UserError, create_attack, create_model
from armor.training import Trainer
from armor.accel import resolve_amp
from armor.io import read_jsonl


def test_bf16_autocast_and_channels_last_training_learns(tmp_path):
    cfg = TrainConfig(method="standard", epochs=3, batch_size=32, train_size=600, val_size=100,
                      test_size=100, val_steps=3, amp="bf16", channels_last=True, eval_attacks=["pgd"],
                      eval_steps=3, out=str(tmp_path / "run"))
    trainer = Trainer(cfg, progress=False)
    assert trainer.precision.dtype == torch.bfloat16 and trainer.channels_last
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    summary = trainer.fit()
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["train_loss"] < records[0]["train_loss"] - 0.5
    assert summary.test.clean_acc > 70  # 10 classes: chance is 10 %
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["model"].values())  # weights stay fp32 under AMP


def test_pgd_at_step_under_bf16_autocast_gives_fp32_loss_and_weight_gradients(digits):
    from armor.methods import create_method

    model = create_model("small_cnn", digits.input_shape, 10, digits.mean, digits.std)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = create_method("pgd_at", ThreatModel("linf", 0.2), steps=3).step(model, digits.x_train[:64],
                                                                              digits.y_train[:64])
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attack_under_autocast_keeps_an_fp32_perturbation_inside_the_ball(digits, dtype):
    model = create_model("small_cnn", digits.input_shape, 10, digits.mean, digits.std).eval()
    model.to(memory_format=torch.channels_last)
    x = digits.x_test[:64].contiguous(memory_format=torch.channels_last)
    y = digits.y_test[:64]
    threat = ThreatModel("linf", 0.2)
    with torch.autocast("cpu", dtype=dtype):
        x_adv = create_attack("pgd", threat, steps=5)(model, x, y)
    assert x_adv.dtype == torch.float32
    assert threat.distance(x_adv, x).max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    # the attack moved (gradients did not vanish in half precision) and hurt the model
    assert (x_adv - x).abs().amax(dim=(1, 2, 3)).min() > 0.05
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean()
        adv = (model(x_adv).argmax(1) == y).float().mean()
    assert adv <= clean


def test_speed_options_are_off_on_cpu_unless_asked():
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) == torch.bfloat16 and resolve_amp("fp16", cpu) == torch.float16
    cfg = TrainConfig()
    assert (cfg.amp, cfg.channels_last, cfg.compile, cfg.sync_bn) == ("auto", "auto", False, False)
    assert TrainConfig(amp=True).amp == "bf16" and TrainConfig(channels_last="yes").channels_last is True


@pytest.mark.parametrize("key, value, message", [
    ("amp", "fp8", "amp must be one of auto, off, bf16, fp16, got 'fp8'"),
    ("compile", "auto", "compile must be true or false, got 'auto'"),
    ("channels_last", "sometimes", "channels_last must be auto, true or false, got 'sometimes'"),
])
def test_bad_speed_options_are_one_line_errors(key, value, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**{key: value})


def test_bench_times_every_variant_side_by_side(tmp_path, capsys):
    from armor.cli import main
    from armor.io import read_json

    out = tmp_path / "bench.json"
    assert main(["bench", "--batch", "16", "--steps", "2", "--repeats", "1", "--threads", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    result = read_json(out)
    names = [r["name"] for r in result["rows"]]
    assert names[:5] == ["clean step", "hand AT step", "armor AT step", "hand PGD", "armor PGD"]
    assert "× floor (3× clean)" in text and "armor AT step" in text
    rows = {r["name"]: r for r in result["rows"]}
    # every ratio is the row's own time over its reference's, measured in the same run
    for r in result["rows"]:
        base = rows["hand AT step" if r["name"].endswith("step") else "hand PGD"]
        assert r["vs_hand"] == pytest.approx(r["ms"] / base["ms"])
        if r["vs_floor"] is not None:
            assert r["vs_floor"] == pytest.approx(r["ms"] / (3 * rows["clean step"]["ms"]))
    assert rows["clean step"]["vs_floor"] is None and rows["armor AT step"]["vs_floor"] is not None
    # each third-party tool is either timed or named in a note that says why not
    for tool in ("torchattacks", "ART"):
        assert (f"{tool} PGD" in rows) != any(n.startswith(f"{tool} skipped") for n in result["notes"]), tool


def test_bench_rejects_a_bad_input_shape(capsys):
    from armor.cli import main

    assert main(["bench", "--input-shape", "3x32x32"]) == 2
    assert "input_shape must be C,H,W" in capsys.readouterr().err
