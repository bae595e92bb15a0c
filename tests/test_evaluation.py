"""Evaluation people can trust (issue 4): APGD, Square, the worst-case suite, masking checks, adaptive
attacks, resumable runs, ε sweeps, corruptions. Small subsets of the digits test set keep it fast."""
from __future__ import annotations

import json

import pytest
import torch

from armor import ATTACKS, ThreatModel, UserError, create_attack
from armor.eval import accuracy, evaluate
from armor.eval.checks import WARN, format_checks, run_checks
from armor.eval.corruptions import CORRUPTIONS, corrupt, evaluate_corruptions
from armor.attacks.suites import loose_bound_note, suite_attacks
from armor.eval.sweep import eps_sweep, write_sweep
from armor.results import EvaluationRecord, read_record

from masked_models import masked

CHECKS = dict(n=60, steps=20, queries=300, n_target_classes=3)  # small but enough to separate masked from honest


def subset(digits, n, start=0):
    return digits.x_test[start:start + n], digits.y_test[start:start + n]


def worst(model, x, y, attacks):
    return evaluate(model, x, y, attacks, mode="ensemble", seed=0).worst_case_acc


@pytest.fixture(scope="module")
def models(standard_run, robust_run):
    std, rob = standard_run["model"], robust_run["model"]
    return {"standard": std, "pgd_at": rob, **{k: masked(k, std, rob) for k in ("quantize", "scale", "clip", "noise")}}


# -- the masking checks --------------------------------------------------------------------------
EXPECTED_FLAGS = {"quantize": "gradients_nonzero", "scale": "gradients_nonzero", "clip": "blackbox_not_stronger",
                  "noise": "deterministic_predictions"}


@pytest.mark.parametrize("kind", ["standard", "pgd_at", "quantize", "scale", "clip", "noise"])
def test_checks_flag_each_masked_model_and_pass_honest_ones(kind, models, digits, threat):
    x, y = subset(digits, 200)
    report = run_checks(models[kind], x, y, threat, **CHECKS)
    warned = {c["name"] for c in report["checks"] if c["status"] == WARN}
    if kind in ("standard", "pgd_at"):
        assert not warned, format_checks(report)
    else:
        assert EXPECTED_FLAGS[kind] in warned, format_checks(report)
    text = format_checks(report)  # the printed list shows every check with its own status
    assert all(f"{c['status']:<4}  {c['name']}:" in text for c in report["checks"]), text
    assert report["warnings"] == len(warned)


def test_standard_suite_sees_through_scaled_logits(models, digits, threat):
    x, y = subset(digits, 60)
    model = models["scale"]
    pgd = evaluate(model, x, y, {"pgd": create_attack("pgd", threat, steps=20)}, seed=0).acc("pgd")
    suite = suite_attacks("standard", threat, steps=20, queries=300, n_target_classes=3)
    assert pgd > 80           # CE gradients underflow: PGD sees a "robust" model
    assert worst(model, x, y, suite) <= 5   # APGD-T's scale-invariant DLR loss (and Square) do not


# -- adaptive attacks --------------------------------------------------------------------------
def test_bpda_defeats_input_quantisation(models, digits, threat):
    x, y = subset(digits, 40)
    model = models["quantize"]
    white = lambda **kw: {"apgd-ce": create_attack("apgd", threat, steps=30, **kw),  # noqa: E731
                          "apgd-t": create_attack("apgd_t", threat, steps=30, n_target_classes=3, **kw)}
    plain = worst(model, x, y, white())
    adaptive = worst(model, x, y, {**white(bpda=True), "square": create_attack("square", threat, queries=500)})
    # the true figure (as far as anything finds it): every attack together, Square with a larger budget
    truth = worst(model, x, y, {**white(bpda=True), "square": create_attack("square", threat, queries=2000)})
    assert plain > truth + 30   # rounding zeroes every input gradient
    assert adaptive <= truth + 5


def test_bpda_defeats_clipped_softmax(models, digits, threat):
    x, y = subset(digits, 60)
    attack = {"apgd": create_attack("apgd", threat, steps=30, bpda=True)}
    truth = worst(models["standard"], x, y, {"apgd": create_attack("apgd", threat, steps=30)})  # same argmax
    assert worst(models["clip"], x, y, {"apgd": create_attack("apgd", threat, steps=30)}) > truth + 20
    assert worst(models["clip"], x, y, attack) <= truth + 5


def test_eot_defeats_random_noise(models, digits, threat):
    x, y = subset(digits, 40)
    model = models["noise"]

    def expected_acc(attack):
        """The honest number for a randomised model: mean accuracy over 20 draws at the attack's points."""
        torch.manual_seed(0)
        x_adv = attack(model, x, y)
        return sum(accuracy(model, x_adv, y) for _ in range(20)) / 20

    strong = expected_acc(create_attack("apgd", threat, steps=30, eot=16))
    eot = expected_acc(create_attack("apgd", threat, steps=30, eot=8))
    plain = expected_acc(create_attack("apgd", threat, steps=30))
    assert abs(eot - strong) <= 5
    assert plain > strong + 5


def test_adaptive_options_validate(models, threat, digits):
    x, y = subset(digits, 4)
    with pytest.raises(UserError, match="eot must be an integer ≥ 1"):
        create_attack("pgd", threat, eot=0)
    with pytest.raises(UserError, match="bpda layer 'nope' is not in the model"):
        create_attack("pgd", threat, steps=1, bpda=["nope"])(models["quantize"], x, y)
    with pytest.raises(UserError, match="no layer of the model sets non_differentiable"):
        create_attack("pgd", threat, steps=1, bpda=True)(models["standard"], x, y)


# -- the suite against PGD-100 --------------------------------------------------------------------
def test_standard_suite_is_stronger_than_pgd100_on_the_pgd_at_model(models, digits, threat):
    x, y = subset(digits, 120)
    model = models["pgd_at"]
    pgd100 = evaluate(model, x, y, {"pgd": create_attack("pgd", threat, steps=100)}, seed=0).worst_case_acc
    standard = worst(model, x, y, suite_attacks("standard", threat, queries=1000, n_target_classes=3))
    assert standard <= pgd100
    assert standard <= pgd100 - 3  # ≥ 4 of 120 images that PGD-100 calls robust are not


def test_fast_suite_costs_a_fifth_of_the_standard_one_and_stays_within_half_a_point(tiny_robust_run, digits,
                                                                                    threat):
    """`--suite fast` against the standard suite, both at full budget on the whole digits test split (397 images),
    on a PGD-AT digits model (the demo recipe's method at ε = 0.2; its tiny_cnn keeps Square-5000 affordable)."""
    x, y = digits.x_test, digits.y_test
    model = tiny_robust_run["model"]
    standard = evaluate(model, x, y, suite_attacks("standard", threat), mode="ensemble", seed=0)
    fast = evaluate(model, x, y, suite_attacks("fast", threat), mode="ensemble", seed=0)
    assert list(fast.attacks) == ["apgd-ce", "apgd-t", "square"]
    assert fast.attack_passes <= standard.attack_passes / 5, (fast.attack_passes, standard.attack_passes)
    assert fast.worst_case_acc <= standard.worst_case_acc + 0.5, (fast.worst_case_acc, standard.worst_case_acc)
    assert standard.worst_case_acc < standard.clean_acc - 30  # a model the attacks do break (not a vacuous bound)
    assert loose_bound_note("fast", fast) is None  # Square found (almost) nothing the gradient attacks missed


def test_fast_suite_says_its_worst_case_is_loose_when_square_still_breaks_examples(models, digits, threat):
    """The clipped-log-softmax model hides from the gradient attacks; Square then breaks many examples at its short
    budget, and the fast suite's result says that the standard suite will go lower."""
    x, y = subset(digits, 100)
    fast = evaluate(models["clip"], x, y, suite_attacks("fast", threat), mode="ensemble", seed=0)
    assert fast.attacks["square"].broken >= 5, fast.broken_by
    note = loose_bound_note("fast", fast)
    assert note and "likely loose" in note and "--suite standard" in note
    assert loose_bound_note("standard", fast) is None  # only the fast suite's bound is called loose


# -- channels_last, autocast, L2 --------------------------------------------------------------------
def test_suite_runs_on_channels_last_models_under_bf16_autocast(robust_run, digits, threat):
    x, y = subset(digits, 48)
    model = robust_run["model"].to(memory_format=torch.channels_last)
    try:
        xc = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            res = evaluate(model, xc, y, suite_attacks("standard", threat, steps=10, queries=100, n_target_classes=3),
                           mode="ensemble", seed=0)
        assert res.worst_case_acc < res.clean_acc - 10
    finally:
        robust_run["model"].to(memory_format=torch.contiguous_format)


@pytest.mark.parametrize("name", ["apgd", "apgd_t", "square"])
def test_l2_attacks_break_the_standard_model(name, standard_run, digits):
    x, y = subset(digits, 60)
    threat = ThreatModel("l2", 1.5)
    options = {k: v for k, v in dict(steps=20, queries=300, n_target_classes=3).items() if ATTACKS.takes(name, k)}
    res = evaluate(standard_run["model"], x, y, {name: create_attack(name, threat, **options)}, seed=0)
    assert res.acc(name) <= 10


def test_apgd_t_needs_four_classes(threat):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(UserError, match="apgd_t needs at least 4 classes"):
        create_attack("apgd_t", threat, steps=2)(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))


def test_checks_run_when_no_example_is_classified_correctly(threat):
    # a model wrong on every check example left the re-classification check nothing to predict: torch.cat([]) crashed
    # `armor eval` after its suite had run (seen on a 1-epoch CIFAR-10 model by benchmarks/gpu_check.py)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 10))
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        y = (model(x).argmax(1) + 1) % 10  # every label wrong
    report = run_checks(model, x, y, threat, steps=2, queries=4)
    assert report["numbers"]["clean"] == 0 and report["numbers"]["reeval_flip_pct"] == 0
    assert accuracy(model, x[:0], y[:0]) != accuracy(model, x[:0], y[:0])  # NaN for no examples, as before


# -- bookkeeping: who broke what, forward passes, resume ----------------------------------------------
def test_ensemble_records_the_breaking_attack_and_forward_passes(robust_run, digits, threat):
    x, y = subset(digits, 50)
    res = evaluate(robust_run["model"], x, y, {"fgsm": create_attack("fgsm", threat),
                                               "pgd": create_attack("pgd", threat, steps=10)}, mode="ensemble")
    labels = res.broken_by_example
    assert len(labels) == 50 and set(labels) <= {"clean", "fgsm", "pgd", None}
    assert labels.count("fgsm") == res.broken_by["fgsm"] and labels.count("pgd") == res.broken_by["pgd"]
    assert labels.count(None) == res.worst_case == round(res.worst_case_acc / 2)
    correct = labels.count(None) + labels.count("fgsm") + labels.count("pgd")
    assert correct == res.correct
    # a suite's per-attack numbers are cumulative: after this attack and every one before it
    assert res.acc_kind == "cumulative" and res.cumulative_acc("pgd") == res.worst_case_acc
    assert res.cumulative_acc("fgsm") == pytest.approx((correct - labels.count("fgsm")) / 50 * 100)
    with pytest.raises(ValueError, match="cumulative numbers only"):
        res.standalone_acc("fgsm")
    # FGSM: one gradient pass per correct example; PGD: 10 + 1 on the ones FGSM left standing
    assert res.attacks["fgsm"].forward_passes == correct
    assert res.attacks["pgd"].forward_passes == 11 * (correct - labels.count("fgsm"))


class _Interrupt(Exception):
    pass


def test_interrupted_evaluation_resumes_with_identical_numbers(robust_run, digits, threat, tmp_path):
    x, y = subset(digits, 80)
    model = robust_run["model"]
    attacks = {"pgd": create_attack("pgd", threat, steps=5)}
    full = evaluate(model, x, y, attacks, batch_size=20, mode="ensemble", seed=3)
    state = tmp_path / "eval.json.state.json"
    calls = []

    class Flaky(type(attacks["pgd"])):
        def perturb(self, *a):
            calls.append(1)
            if len(calls) == 3:
                raise _Interrupt
            return super().perturb(*a)

    flaky = Flaky(threat, steps=5)
    with pytest.raises(_Interrupt):
        evaluate(model, x, y, {"pgd": flaky}, batch_size=20, mode="ensemble", seed=3, state_path=state)
    saved = json.loads(state.read_text())
    assert (saved["phase"], saved["chunks_done"]) == (0, 2)  # the clean pass and two chunks of PGD's pass done
    resumed = evaluate(model, x, y, {"pgd": flaky}, batch_size=20, mode="ensemble", seed=3, state_path=state)
    assert len(calls) == 3 + (-(-full.correct // 20) - 2)  # only PGD's unfinished chunks ran again
    assert resumed.worst_case_acc == full.worst_case_acc
    assert resumed.broken_by_example == full.broken_by_example and not state.exists()


# -- ε sweep and corruptions -------------------------------------------------------------------------
def test_eps_sweep_writes_json_csv_and_plot(robust_run, digits, threat, tmp_path):
    x, y = subset(digits, 60)
    sweep = eps_sweep(robust_run["model"], x, y, threat, [0.05, 0.2, 0.5],
                      lambda t: {"pgd": create_attack("pgd", t, steps=10)})
    accs = [r["worst_case_acc"] for r in sweep.rows]
    assert accs[0] > accs[1] > accs[2] and accs[2] <= 5
    paths = write_sweep(sweep, tmp_path / "sweep")
    assert json.loads((tmp_path / "sweep.json").read_text())["rows"][1]["eps"] == pytest.approx(0.2)
    assert (tmp_path / "sweep.csv").read_text().splitlines()[0] == "norm,eps,clean_acc,worst_case_acc"
    pytest.importorskip("matplotlib")
    assert str(tmp_path / "sweep.png") in paths and (tmp_path / "sweep.png").stat().st_size > 1000


def test_corruptions_are_deterministic_in_range_and_get_worse_with_severity(standard_run, digits):
    x, y = subset(digits, 200)
    for name in CORRUPTIONS:
        out = corrupt(x, name, 3)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, corrupt(x, name, 3)) and not torch.equal(out, x)
    res = evaluate_corruptions(standard_run["model"], x, y)
    fog = res["corruptions"]["fog"]["severity"]  # (CIFAR-strength noise barely touches 8×8 digits; fog does)
    assert set(res["corruptions"]) == set(CORRUPTIONS) and fog["5"] < fog["1"]
    assert res["mean_corrupted_acc"] <= res["clean_acc"]
    assert len(CORRUPTIONS) == 15 and res["seed"] == 0 and res["n"] == 200
    with pytest.raises(UserError, match="unknown corruption 'spatter'"):
        corrupt(x, "spatter", 1)


# -- the command line ------------------------------------------------------------------------------
def test_armor_eval_writes_a_robustbench_style_record(robust_run, tmp_path, capsys):
    from armor.cli import main

    ckpt = str(robust_run["out"] / "best.pt")
    out = tmp_path / "quick.json"
    code = main(["eval", "--checkpoint", ckpt, "--suite", "quick", "--n", "40", "--check-n", "30", "--sweep", "0.1",
                 "0.3", "--corruptions", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "sanity checks on 30 examples" in printed and "corruptions" in printed
    record = read_record(out, EvaluationRecord)
    assert record.checks is not None and record.sweep is not None and record.corruptions is not None
    assert record.suite == "quick" and record.threat == {"norm": "linf", "eps": pytest.approx(0.2)}
    assert record.reduced == ["40 of the 397 test examples"]
    entry = json.loads(out.read_text())["robustbench"]
    for key in ("dataset", "threat_model", "eps", "clean_acc", "robust_acc", "architecture", "n_examples"):
        assert key in entry, key
    assert entry["threat_model"] == "Linf" and entry["robust_acc"] == record.result.worst_case_acc
    assert (tmp_path / "quick_sweep.csv").is_file()
    out2 = tmp_path / "standard.json"
    code = main(["eval", "--checkpoint", ckpt, "--suite", "standard", "--steps", "10", "--queries", "100", "--n", "30",
                 "--no-checks", "--out", str(out2)])
    record = read_record(out2, EvaluationRecord)
    assert code == 0 and record.checks is None
    assert record.result.labels == ["apgd-ce", "apgd-t", "square"] and record.result.acc_kind == "cumulative"
    assert record.result.cumulative_acc("square") == pytest.approx(record.result.worst_case_acc)
    assert "apgd-ce: steps 10 < 100" in record.reduced and "square: queries 100 < 5000" in record.reduced
    # the standard suite is not AutoAttack (no FAB-T) and ran with a cut budget: no autoattack_acc anywhere
    assert "autoattack_acc" not in out2.read_text() and "autoattack_acc" not in out.read_text()


@pytest.mark.parametrize("argv,needle", [
    (["--suite", "huge"], "unknown suite 'huge'"),
    (["--eot", "0"], "eot must be an integer ≥ 1"),
    (["--loss", "hinge"], "unknown loss 'hinge'"),
    (["--bpda", "nope"], "bpda layer 'nope' is not in the model"),
])
def test_armor_eval_mistakes_exit_2(argv, needle, robust_run, capsys, tmp_path):
    from armor.cli import main

    code = main(["eval", "--checkpoint", str(robust_run["out"] / "best.pt"), "--out", str(tmp_path / "e.json")]
                + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0] and not (tmp_path / "e.json").exists()


# -- an independent implementation ----------------------------------------------------------------------
def test_apgd_and_suite_agree_with_torchattacks(robust_run, digits, threat):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = subset(digits, 100)
    model = robust_run["model"]
    ours = evaluate(model, x, y, {"apgd": create_attack("apgd", threat, steps=50)}, seed=0).worst_case_acc
    torch.manual_seed(0)
    theirs = accuracy(model, torchattacks.APGD(model, eps=threat.eps, steps=50, n_restarts=1, loss="ce", seed=0)(x, y),
                      y)
    # armor draws its random starts from per-example streams, torchattacks from its seeded RNG: the two differ by
    # start luck alone; armor may be a few points stronger but never more than 2 points weaker
    assert -4 <= ours - theirs <= 2
