"""The L1 threat model end to end: geometry (projection onto the L1 ball ∩ box, starts, steps, noise), every attack
within ε in L1 and in the box or refusing L1 by name, APGD-L1's strength, training with L1 and its refusals."""
from __future__ import annotations

import pytest
import torch

from armor import ATTACKS, TrainConfig, ThreatModel, UserError, create_attack
from armor.attacks.suites import suite_attacks, suite_entries, suite_shortfall
from armor.budgets import default_eps, parse_norm
from armor.cli import main
from armor.eval import accuracy, evaluate
from armor.methods import METHODS, create_method
from armor.results import EvaluationRecord, SweepRecord, read_record
from armor.threat import project_l1_box
from armor.training import Trainer

L1_EPS = 2.0  # the digits L1 budget (armor.budgets.DEFAULT_EPS_L1)


def _bisection_projection(delta, eps, up, down):
    """Reference: the same projection by bisection on the multiplier λ (float64, 200 halvings)."""
    mag, room = delta.abs(), torch.where(delta >= 0, up, down).expand_as(delta)

    def size(lam):
        return torch.minimum((mag - lam).clamp_min(0), room).sum(1, keepdim=True)

    lo, hi = torch.zeros(len(delta), 1, dtype=delta.dtype), mag.amax(1, keepdim=True)
    for _ in range(200):
        mid = (lo + hi) / 2
        over = size(mid) > eps
        lo, hi = torch.where(over, mid, lo), torch.where(over, hi, mid)
    lam = torch.where(size(torch.zeros_like(lo)) > eps, hi, torch.zeros_like(hi))
    return delta.sign() * torch.minimum((mag - lam).clamp_min(0), room)


# -- geometry --------------------------------------------------------------------------------------------------------
def test_l1_projection_onto_ball_and_box_is_exact():
    torch.manual_seed(0)
    x = torch.rand(40, 50, dtype=torch.float64)
    delta = torch.randn(40, 50, dtype=torch.float64) * torch.rand(40, 1, dtype=torch.float64)
    for eps in (0.5, 3.0, 100.0):  # 100: the ball holds the whole box, only the box is active
        d = project_l1_box(delta, eps, 1 - x, x)
        assert torch.allclose(d, _bisection_projection(delta, eps, 1 - x, x), atol=1e-9)
        assert (d.abs().sum(1) <= eps * (1 + 1e-12)).all() and (x + d >= 0).all() and (x + d <= 1).all()
    # a point already inside the ball ∩ box is its own projection
    small = 0.5 * project_l1_box(delta, 3.0, 1 - x, x)
    assert torch.allclose(project_l1_box(small, 3.0, 1 - x, x), small)
    # the box matters: projecting onto the ball and then clipping is a different (worse, smaller) point
    ball_then_clip = (x + project_l1_box(delta, 3.0, torch.full((1, 1), float("inf"), dtype=x.dtype),
                                         torch.full((1, 1), float("inf"), dtype=x.dtype))).clamp(0, 1) - x
    exact = project_l1_box(delta, 3.0, 1 - x, x)
    assert (exact.abs().sum(1) >= ball_then_clip.abs().sum(1) - 1e-9).all()
    assert (exact.abs().sum(1) > ball_then_clip.abs().sum(1) + 1e-3).any()


def test_l1_starts_noise_and_steps_keep_to_ball_box_and_immutable_features():
    torch.manual_seed(0)
    lower, upper = torch.linspace(-1, 0, 12), torch.linspace(1, 3, 12)
    threat = ThreatModel("l1", 1.5, lower=lower, upper=upper, immutable=(0, 5))
    x = threat.clip(torch.randn(256, 12))
    x[:, 3] = upper[3]  # a feature at its upper bound: it can only move down
    grad = torch.randn_like(x)
    for point in (threat.random_init(x), threat.random_boundary(x), threat.project(x + 5 * torch.randn_like(x), x),
                  threat.project(threat.step(x, grad, 0.7), x)):
        assert threat.in_box(point) and (threat.distance(point, x) <= 1.5 + 1e-5).all()
        assert torch.equal(point[:, [0, 5]], x[:, [0, 5]])
    # the noise baseline uses the whole budget here (the box leaves room)
    assert (threat.distance(threat.random_boundary(x), x) > 1.5 - 1e-4).all()
    # the sphere: exactly ε in L1, zero on immutable features; the step moves ε in L1 along the gradient's sign
    sphere = threat.sphere(x.shape, x)
    assert torch.allclose(sphere.abs().sum(1), torch.full((256,), 1.5)) and (sphere[:, [0, 5]] == 0).all()
    moved = threat.step(x, grad, 0.7) - x
    assert torch.allclose(moved.abs().sum(1), torch.full((256,), 0.7))
    assert ((moved * grad) >= 0).all() and (moved[:, 3] <= 0).all()  # never up from the upper bound
    assert str(threat).startswith("L1 ε=1.5") and threat.label == "L1" and parse_norm("1") == "l1"


# -- every attack: within ε in L1 and in the box, or a clear refusal -------------------------------------------------
def _budget(name, **options):
    return {k: v for k, v in options.items() if ATTACKS.takes(name, k)}


@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_stays_within_l1_eps_and_the_box_or_refuses_l1(name, standard_run, test_batch):
    x, y = test_batch
    threat = ThreatModel("l1", L1_EPS)
    try:
        attack = create_attack(name, threat, **_budget(name, steps=10, queries=300))
    except UserError as e:
        assert f"{name} is not defined for l1; use apgd or pgd" in str(e)
        assert name not in ("apgd", "apgd_t", "pgd")  # the L1 attacks armor documents
        return
    model = standard_run["model"]
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (threat.distance(x_adv, x) <= L1_EPS + 1e-4).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert accuracy(model, x_adv, y) < accuracy(model, x, y) - 20  # and it attacks the undefended model


@pytest.mark.parametrize("name", ATTACKS.names())
def test_l1_attacks_respect_a_per_feature_box_and_immutable_features(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).eval()
    lower, upper = [-1.0] * 6 + [0.0] * 6, [1.0] * 6 + [3.0] * 6
    threat = ThreatModel("l1", 1.0, lower=lower, upper=upper, immutable=(0, 4, 7, 11))
    x = threat.clip(torch.randn(64, 12))
    y = model(x).argmax(1)
    try:
        attack = create_attack(name, threat, **_budget(name, steps=10, queries=50, n_target_classes=3))
    except UserError as e:
        assert "is not defined for l1" in str(e)
        return
    if getattr(attack, "needs_images", False):
        with pytest.raises(UserError, match="needs image inputs"):
            attack(model, x, y)
        return
    x_adv = attack(model, x, y)
    assert torch.equal(x_adv[:, [0, 4, 7, 11]], x[:, [0, 4, 7, 11]])
    assert threat.in_box(x_adv) and (threat.distance(x_adv, x) <= 1.0 + 1e-5).all()
    assert (x_adv - x).abs().sum(1).max() > 0.5


def test_apgd_l1_breaks_the_pgd_at_model_at_a_large_eps_and_beats_its_small_eps(robust_run, test_batch):
    """ε = 8: eight of the 64 pixels of an 8×8 digit turned fully on or off is enough to draw another digit."""
    x, y = test_batch
    model = robust_run["model"]
    accs = [evaluate(model, x, y, {"apgd": create_attack("apgd", ThreatModel("l1", eps), steps=20)}).acc("apgd")
            for eps in (1.0, 8.0)]
    assert accs[0] > 40 and accs[1] <= 5.0


def test_larger_eps_is_l1_only_and_its_points_are_judged_at_eps(standard_run, test_batch):
    x, y = test_batch
    with pytest.raises(UserError, match="larger_eps .* applies to the l1 threat model only, not linf"):
        create_attack("apgd", ThreatModel("linf", 0.1), larger_eps=True)
    threat = ThreatModel("l1", 1.0)
    x_adv = create_attack("apgd_t", threat, steps=20, n_target_classes=3, larger_eps=True)(standard_run["model"],
                                                                                          x[:64], y[:64])
    assert (threat.distance(x_adv, x[:64]) <= 1.0 + 1e-5).all() and threat.in_box(x_adv)


def test_l1_suites_follow_autoattacks_l1_version():
    threat = ThreatModel("l1", 12.0)
    assert [(label, name) for label, name, _ in suite_entries("autoattack", "l1")] == [
        ("apgd-ce", "apgd"), ("apgd-t", "apgd_t"), ("fab-t", "fab_t"), ("square", "square")]
    attacks = suite_attacks("autoattack", threat)
    assert attacks["apgd-ce"].restarts == 5 and attacks["apgd-ce"].larger_eps
    assert attacks["apgd-t"].n_target_classes == 5 and attacks["apgd-t"].larger_eps
    assert attacks["fab-t"].n_target_classes == 9 and attacks["square"].queries == 5000
    assert "fab-t" not in suite_attacks("standard", threat)
    # 5 target classes is the L1 standard suite's full budget, not a shortfall as it is for L∞
    assert suite_shortfall("standard", n_target_classes=5, norm="l1") == []
    assert suite_shortfall("standard", n_target_classes=5, norm="linf") == ["apgd-t: n_target_classes 5 < 9"]


# -- training ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_with_l1_or_refuses_it_by_name(name):
    try:
        create_method(name, ThreatModel("l1", L1_EPS))
    except UserError as e:
        assert "is not defined for l1" in str(e) and "use pgd_at, trades or mart" in str(e)
        assert name not in ("pgd_at", "trades", "mart", "standard")
        with pytest.raises(UserError, match="is not defined for l1"):
            TrainConfig(method=name, norm="l1")


def test_l1_training_config_defaults_and_refusals():
    cfg = TrainConfig(method="pgd_at", norm="l1")
    assert cfg.resolved_eps() == default_eps("digits", "l1") == 2.0 and cfg.final_attacks == ["pgd", "apgd"]
    assert TrainConfig(method="pgd_at", norm="l1", eval_attacks=["apgd"]).final_attacks == ["apgd"]
    with pytest.raises(UserError, match="fgsm is not defined for l1"):
        TrainConfig(method="pgd_at", norm="l1", eval_attacks=["fgsm"])
    with pytest.raises(UserError, match="no usual L1 budget for dataset 'breast_cancer'.*give eps"):
        TrainConfig(dataset="breast_cancer", norm="l1").resolved_eps()


def test_l1_pgd_at_beats_standard_training_under_apgd_l1(standard_run, tmp_path, digits):
    """L1 PGD-AT of the small tiny_cnn (a third of small_cnn's training time here) against the session's standard
    small_cnn, on the same 200 test images: 51.5 % vs 12.5 % under APGD-L1-50 at ε = 2, clean 91 %."""
    torch.manual_seed(0)
    cfg = TrainConfig(method="pgd_at", norm="l1", eps=L1_EPS, epochs=15, out=str(tmp_path / "l1"), model="tiny_cnn",
                      eval_attacks=["apgd"], eval_steps=10)
    trainer = Trainer(cfg, overwrite=True, progress=False)
    summary = trainer.fit()
    assert summary.test.labels == ["apgd-10"]  # the final table ran the L1 attack it was given
    model = trainer.model.eval()
    x, y = digits.x_test[:200], digits.y_test[:200]
    attack = {"apgd": create_attack("apgd", ThreatModel("l1", L1_EPS), steps=50)}
    robust = evaluate(model, x, y, attack).acc("apgd")
    standard = evaluate(standard_run["model"], x, y, attack).acc("apgd")
    clean = evaluate(model, x, y, {}).clean_acc
    print(f"\nL1 PGD-AT digits: clean {clean:.1f} %, APGD-L1-50 at ε={L1_EPS:g} {robust:.1f} % vs standard {standard:.1f} %")
    assert robust > standard + 20 and clean > 80


# -- command line: eval, sweep, help -----------------------------------------------------------------------------------
TINY = ["--epochs", "1", "--train-size", "100", "--val-size", "20", "--test-size", "40", "--steps", "2",
        "--batch-size", "50", "--eval-steps", "2", "--quiet"]


def test_l1_from_the_command_line_eval_sweep_and_help(standard_run, tmp_path, capsys):
    checkpoint = str(standard_run["out"] / "best.pt")
    base = ["eval", "--checkpoint", checkpoint, "--norm", "l1", "--attack", "apgd", "--steps", "5", "--n", "40",
            "--no-checks"]
    assert main(base + ["--out", str(tmp_path / "e0.json")]) == 2  # the L∞ training ε is no L1 budget
    assert "differs from the training norm linf" in capsys.readouterr().err
    assert main(base + ["--eps", "2", "--out", str(tmp_path / "e.json")]) == 0
    assert "L1 ε=2" in capsys.readouterr().out
    record = read_record(tmp_path / "e.json", EvaluationRecord)
    assert record.threat["norm"] == "l1" and record.robustbench()["threat_model"] == "L1"
    assert main(["eval", "--checkpoint", checkpoint, "--norm", "l1", "--eps", "2", "--attack", "fgsm", "--n", "40",
                 "--no-checks", "--out", str(tmp_path / "f.json")]) == 2
    assert "fgsm is not defined for l1; use apgd or pgd" in capsys.readouterr().err
    out = tmp_path / "sweep"
    assert main(["sweep", "--method", "pgd_at", "--norm", "l1", "--param", "eps", "--values", "1", "3", "--out",
                 str(out)] + TINY) == 0
    sweep = read_record(out / "sweep.json", SweepRecord)
    assert [p.value for p in sweep.points] == [1.0, 3.0] and sweep.threat["norm"] == "l1"
    assert set(sweep.points[0].attacks) == {"pgd-2", "apgd-2"}  # fgsm, the L∞ default, is not defined for L1
    assert "L1 ε" in (out / "sweep.md").read_text()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--norm NORM norm of the perturbation budget [linf, l2, l1;" in " ".join(capsys.readouterr().out.split())


def test_sanity_checks_run_under_l1_without_the_single_step_comparison():
    from armor.eval.checks import run_checks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x = torch.rand(20, 1, 8, 8)
    y = model(x).argmax(1)
    report = run_checks(model, x, y, ThreatModel("l1", L1_EPS), steps=5, queries=50, n=20)
    names = {c["name"]: c for c in report["checks"]}
    assert "iterative_beats_single_step" not in names and report["numbers"]["fgsm"] != report["numbers"]["fgsm"]
    assert "random size-ε noise" in names["noise_weaker_than_attack"]["message"]
    assert "pgd-5@eps=64" in report["numbers"]  # ε as large as the box: the sum of the 64 features' ranges
