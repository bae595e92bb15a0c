"""FAB-T and the ``autoattack`` suite: geometry, strength, the ``autoattack_acc`` rule, a torchattacks cross-check."""
import json

import pytest
import torch

from armor import ThreatModel, UserError, create_attack
from armor.attacks.fab import project_onto_hyperplane_in_box
from armor.attacks.suites import SUITES, suite_shortfall
from armor.data import load_dataset
from armor.eval import accuracy, evaluate
from armor.results import EvaluationRecord, read_record

#: the fixed test split of the PGD-AT run the autoattack suite is tested on (see ``small_split``)
SPLIT = 100


# -- the projection onto the linearised boundary inside the box -----------------------------------------------------
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_projection_is_the_minimum_norm_step_onto_the_hyperplane_inside_the_box(norm):
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    g = torch.Generator().manual_seed(0)
    n, rows = 6, 60
    lower = torch.rand(1, n, generator=g, dtype=torch.float64) * 0.3
    upper = 0.7 + torch.rand(1, n, generator=g, dtype=torch.float64) * 0.3
    t = lower + (upper - lower) * torch.rand(rows, n, generator=g, dtype=torch.float64)
    w = torch.randn(rows, n, generator=g, dtype=torch.float64)
    w[::3, 0] = 0.0  # a coordinate the boundary does not depend on (or an immutable one) never moves
    c = torch.randn(rows, generator=g, dtype=torch.float64) * 0.6
    d = project_onto_hyperplane_in_box(t, w, c, lower, upper, norm)
    assert (t + d >= lower - 1e-12).all() and (t + d <= upper + 1e-12).all()
    assert (d[::3, 0] == 0).all()
    missed = 0
    for i in range(rows):
        ti, wi, ci, di = t[i].numpy(), w[i].numpy(), c[i].item(), d[i].numpy()
        box = list(zip(lower[0].numpy() - ti, upper[0].numpy() - ti))
        reach = sorted((sum(min(wj * a, wj * b) for wj, (a, b) in zip(wi, box)),
                        sum(max(wj * a, wj * b) for wj, (a, b) in zip(wi, box))))
        if not reach[0] <= ci <= reach[1]:  # the hyperplane misses the box: the box point nearest to it along w
            missed += 1
            assert wi @ di == pytest.approx(reach[0] if ci < reach[0] else reach[1], abs=1e-9)
            continue
        assert wi @ di == pytest.approx(ci, abs=1e-9)
        if norm == "linf":  # min r s.t. |d_j| ≤ r, ⟨w, d⟩ = c, d in the box: a linear program
            res = optimize.linprog(np.r_[np.zeros(n), 1.0],
                                   A_ub=np.vstack([np.c_[np.eye(n), -np.ones(n)], np.c_[-np.eye(n), -np.ones(n)]]),
                                   b_ub=np.zeros(2 * n), A_eq=[np.r_[wi, 0.0]], b_eq=[ci], bounds=box + [(0, None)])
            assert np.abs(di).max() <= res.fun + 1e-7
        else:  # min ‖d‖² s.t. ⟨w, d⟩ = c, d in the box: a quadratic program
            res = optimize.minimize(lambda z: z @ z, np.zeros(n), jac=lambda z: 2 * z, bounds=box, method="SLSQP",
                                    constraints=[{"type": "eq", "fun": lambda z: wi @ z - ci, "jac": lambda z: wi}],
                                    options={"ftol": 1e-14, "maxiter": 500})
            assert np.linalg.norm(di) <= np.sqrt(res.fun) + 1e-6
    assert 0 < missed < rows // 4  # both cases were exercised


# -- FAB-T on the digits models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0)])
def test_fab_t_stays_in_the_ball_and_box_and_breaks_the_undefended_model(norm, eps, standard_run, test_batch):
    x, y = test_batch
    model = standard_run["model"]
    threat = ThreatModel(norm, eps)
    x_adv = create_attack("fab_t", threat)(model, x, y)  # the published defaults: 9 targets, 100 iterations
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (threat.distance(x_adv, x) <= eps + 1e-6).all() and threat.in_box(x_adv)
    assert accuracy(model, x, y) > 90 and accuracy(model, x_adv, y) <= 2.0
    with torch.no_grad():
        robust = model(x_adv).argmax(1) == y
    assert torch.equal(x_adv[robust], x[robust])  # no fooling point within ε: the clean input comes back


@pytest.mark.parametrize("name", ["fab_t", "fab"])
@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0)])
def test_fab_respects_a_per_feature_box_and_immutable_features(name, norm, eps, standard_run, test_batch):
    x, y = test_batch
    x, y = x[:100], y[:100]
    flat = x.reshape(len(x), -1)
    lower = flat.min(0).values
    upper = torch.maximum(flat.max(0).values, lower + 0.1)  # each pixel's observed range (a feature box)
    fixed = tuple(range(16))                                  # the top two rows may not change
    threat = ThreatModel(norm, eps, lower=lower, upper=upper, immutable=fixed)
    attack = create_attack(name, threat, steps=30)
    x_adv = attack(standard_run["model"], x, y)
    assert threat.in_box(x_adv) and (threat.distance(x_adv, x) <= eps + 1e-6).all()
    assert torch.equal(x_adv.reshape(len(x), -1)[:, :16], flat[:, :16])
    # the evaluation's own budget check (ball, box, immutable features) accepts it, and it still attacks
    res = evaluate(standard_run["model"], x, y, {name: attack})
    assert res.acc(name) < res.clean_acc - 50


def test_fab_t_options_are_checked(threat):
    with pytest.raises(UserError, match="alpha_max must be a number in \\[0, 1\\], got 2"):
        create_attack("fab_t", threat, alpha_max=2)
    with pytest.raises(UserError, match="eta must be a number ≥ 1, got 0.5"):
        create_attack("fab_t", threat, eta=0.5)
    with pytest.raises(UserError, match="n_target_classes must be an integer ≥ 1, got 0"):
        create_attack("fab_t", threat, n_target_classes=0)
    fab_t = create_attack("fab_t", threat)
    assert (fab_t.steps, fab_t.restarts, fab_t.n_target_classes) == (100, 1, 9)
    assert (fab_t.alpha_max, fab_t.eta, fab_t.beta) == (0.1, 1.05, 0.9)


def test_fab_t_is_about_as_strong_as_apgd_t_on_the_pgd_at_model(tiny_robust_run, threat):
    """Both attack the same 9 target classes for 100 iterations inside the same ball. On a PGD-AT model (no
    gradient masking) AutoAttack's authors find FAB-T within a point or two of APGD-T, usually a little weaker; on
    the session's PGD-AT small_cnn and all 397 digits test images it is 46.3 % vs APGD-T's 45.1 %, on the PGD-AT
    tiny_cnn's 100 test images 30 % vs 29 %. So a FAB-T far *stronger* than APGD-T (3+ points, i.e. 3 of these 100
    images) would mean points that left the ball or a broken APGD-T, and one far *weaker* (6+ points) a broken
    projection or step."""
    x, y = tiny_robust_run["data"].x_test, tiny_robust_run["data"].y_test
    res = evaluate(tiny_robust_run["model"], x, y, {"apgd-t": create_attack("apgd_t", threat),
                                                    "fab-t": create_attack("fab_t", threat)})
    assert res.clean_acc > 90 and res.acc("apgd-t") < res.clean_acc - 30
    assert res.acc("apgd-t") - 3.0 <= res.acc("fab-t") <= res.acc("apgd-t") + 6.0, (res.acc("apgd-t"),
                                                                                    res.acc("fab-t"))
    assert res.worst_case_acc <= min(res.acc("apgd-t"), res.acc("fab-t"))


# -- the autoattack suite -------------------------------------------------------------------------------------------
def test_the_autoattack_suite_is_autoattacks_standard_version():
    assert [(label, name) for label, name, _ in SUITES["autoattack"]] == [
        ("apgd-ce", "apgd"), ("apgd-t", "apgd_t"), ("fab-t", "fab_t"), ("square", "square")]
    budgets = {label: opts for label, _, opts in SUITES["autoattack"]}
    assert budgets["apgd-ce"]["steps"] == 100 and budgets["square"]["queries"] == 5000
    assert budgets["apgd-t"] == budgets["fab-t"] == {"steps": 100, "n_target_classes": 9}
    assert suite_shortfall("autoattack") == [] and suite_shortfall("autoattack", steps=100, queries=5000) == []
    assert suite_shortfall("autoattack", steps=50) == ["apgd-ce: steps 50 < 100", "apgd-t: steps 50 < 100",
                                                       "fab-t: steps 50 < 100"]
    assert suite_shortfall("autoattack", queries=1000) == ["square: queries 1000 < 5000"]
    assert suite_shortfall("autoattack", n_target_classes=3) == ["apgd-t: n_target_classes 3 < 9",
                                                                 "fab-t: n_target_classes 3 < 9"]


@pytest.fixture(scope="module")
def small_split(tiny_robust_run):
    """The checkpoint of a PGD-AT digits run whose test split is a fixed 100 of the 397 test images, so that
    AutoAttack at its full budget on the *whole* split fits in a unit test; its ``tiny_cnn`` makes Square's 5000
    queries (forward passes) a tenth of what the session's ``small_cnn`` would cost."""
    return tiny_robust_run["out"] / "best.pt"


@pytest.fixture(scope="module")
def full_autoattack(small_split, tmp_path_factory):
    """``armor eval --suite autoattack`` at full budget on the whole (100-example) split."""
    from armor.cli import main

    out = tmp_path_factory.mktemp("full_autoattack") / "aa.json"
    assert main(["eval", "--checkpoint", str(small_split), "--suite", "autoattack", "--no-checks",
                 "--out", str(out)]) == 0
    return out


def test_autoattack_acc_is_written_at_full_budget_on_the_whole_split(full_autoattack):
    record = read_record(full_autoattack, EvaluationRecord)
    assert record.suite == "autoattack" and record.reduced == [] and record.result.n == SPLIT
    assert record.result.labels == ["apgd-ce", "apgd-t", "fab-t", "square"]
    entry = json.loads(full_autoattack.read_text())["robustbench"]
    assert entry["autoattack_acc"] == entry["robust_acc"] == record.result.worst_case_acc
    assert entry["attacks"] == "autoattack" and entry["reduced_budget"] == []
    assert record.result.clean_acc > 90 and record.result.worst_case_acc < record.result.clean_acc - 30


@pytest.mark.parametrize("cut,reduced", [
    (["--n", "5"], ["5 of the 100 test examples"]),  # full budget, but not the whole split
    (["--steps", "10", "--queries", "1000"], ["apgd-ce: steps 10 < 100", "apgd-t: steps 10 < 100",
                                              "fab-t: steps 10 < 100", "square: queries 1000 < 5000"]),
])
def test_autoattack_acc_is_never_written_when_a_budget_is_cut(cut, reduced, small_split, tmp_path):
    from armor.cli import main

    out = tmp_path / "cut.json"
    assert main(["eval", "--checkpoint", str(small_split), "--suite", "autoattack", "--no-checks", "--out", str(out),
                 *cut]) == 0
    record = read_record(out, EvaluationRecord)
    assert record.suite == "autoattack" and record.reduced == reduced
    assert "autoattack_acc" not in out.read_text() and "autoattack_acc" not in record.robustbench()


def test_armor_autoattack_agrees_with_torchattacks_autoattack(full_autoattack, small_split):
    """The same 100 points (the small split). torchattacks' ``AutoAttack(version="standard")`` builds the standard
    composition but leaves APGD, APGD-T and FAB at its own default of 10 iterations and rescales Square's
    schedule; both are set here to AutoAttack's standard budgets (100 iterations; Square's schedule on the
    10 000-query scale) so that the two run the same attacks."""
    torchattacks = pytest.importorskip("torchattacks", reason="torchattacks not installed (test extra)")
    from armor.checkpoints import load_model

    model, cfg, _ = load_model(small_split, "cpu")
    data = load_dataset("digits", test_size=cfg.test_size, seed=cfg.seed)
    x, y = data.x_test, data.y_test
    assert len(x) == SPLIT
    aa = torchattacks.AutoAttack(model, norm="Linf", eps=0.2, version="standard", n_classes=10, seed=0)
    apgd, apgd_t, fab_t, square = aa._autoattack.attacks
    assert [type(a).__name__ for a in (apgd, apgd_t, fab_t, square)] == ["APGD", "APGDT", "FAB", "Square"]
    assert fab_t.multi_targeted and fab_t.n_target_classes == 9 and square.n_queries == 5000
    for a in (apgd, apgd_t, fab_t):
        a.steps = 100
    square.rescale_schedule = False
    theirs = accuracy(model, aa(x, y), y)
    ours = read_record(full_autoattack, EvaluationRecord).result.worst_case_acc
    assert abs(ours - theirs) <= 1.5, (ours, theirs)
