import pytest
import torch

from armor import ATTACKS, ThreatModel, UserError, create_attack
from armor.eval import accuracy, evaluate


def budget(name, **options):
    """The small-budget options that attack ``name`` takes (attacks refuse options they do not have)."""
    return {k: v for k, v in options.items() if ATTACKS.takes(name, k)}


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0)])
def test_every_attack_stays_within_eps_and_the_image_box(name, norm, eps, standard_run, test_batch):
    x, y = test_batch
    threat = ThreatModel(norm, eps)
    x_adv = create_attack(name, threat, **budget(name, steps=5, queries=300))(standard_run["model"], x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (threat.distance(x_adv, x) <= eps + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    # and it actually attacks: accuracy drops on the undefended model
    assert accuracy(standard_run["model"], x_adv, y) < accuracy(standard_run["model"], x, y) - 20


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize("training", [True, False])
def test_attacks_leave_model_mode_and_parameter_grads_as_they_were(name, training, robust_run, test_batch):
    model = robust_run["model"]
    x, y = test_batch
    params = list(model.parameters())
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    params[0].requires_grad_(False)
    model.train(training)
    try:
        create_attack(name, ThreatModel("linf", 0.2), **budget(name, steps=3, queries=30))(model, x[:32], y[:32])
        assert model.training is training
        assert params[0].requires_grad is False and all(p.requires_grad for p in params[1:])
        assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in params)
    finally:
        params[0].requires_grad_(True)
        for p in params:
            p.grad = None
        model.eval()


def test_fgsm_accuracy_is_at_least_pgd_accuracy(robust_run, test_batch, threat):
    x, y = test_batch
    res = evaluate(robust_run["model"], x, y, {"fgsm": create_attack("fgsm", threat),
                                               "pgd": create_attack("pgd", threat, steps=20)})
    assert res.acc("fgsm") >= res.acc("pgd")
    assert res.worst_case_acc <= res.acc("pgd")


def test_more_steps_and_restarts_never_raise_accuracy(robust_run, test_batch, threat):
    x, y = test_batch
    model = robust_run["model"]

    def acc(**kw):
        torch.manual_seed(1)
        return evaluate(model, x, y, {"pgd": create_attack("pgd", threat, **kw)}).acc("pgd")

    assert acc(steps=10, restarts=3) <= acc(steps=10, restarts=1)  # same seed: restart 1 is shared
    assert acc(steps=100) <= acc(steps=10) + 1.0                     # 1 point = 2 images of noise
    assert acc(steps=10) <= acc(steps=1) + 1.0


def test_accuracy_under_pgd_falls_to_zero_as_eps_grows(robust_run, test_batch):
    x, y = test_batch
    accs = [evaluate(robust_run["model"], x, y, {"pgd": create_attack("pgd", ThreatModel("linf", eps), steps=20)}
                     ).acc("pgd") for eps in (0.05, 0.2, 0.4, 0.8)]
    assert accs[0] > 70 and accs[-1] <= 2.0
    assert all(a >= b - 1.0 for a, b in zip(accs, accs[1:]))


def test_pgd_step_size_default_and_validation(threat):
    pgd = create_attack("pgd", threat, steps=10)
    assert pgd.step_size == pytest.approx(2.5 * 0.2 / 10)
    with pytest.raises(UserError, match="steps must be an integer ≥ 1, got 0"):
        create_attack("pgd", threat, steps=0)
    with pytest.raises(UserError, match="unknown attack 'pgx' \\(did you mean 'pgd'\\?\\)"):
        create_attack("pgx", threat)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_an_option_an_attack_does_not_take_is_an_error_not_a_no_op(name, threat):
    with pytest.raises(UserError) as err:
        create_attack(name, threat, stepz=3)
    message = str(err.value)
    assert f"attack {name!r} has no option 'stepz'" in message and "\n" not in message
    assert "its options are:" in message
    if ATTACKS.takes(name, "steps"):
        assert "did you mean 'steps'?" in message
    # None means "not set": the attack's own default applies
    assert repr(create_attack(name, threat, **budget(name, steps=None, queries=None))) == repr(create_attack(name, threat))


def test_targeted_pgd_reaches_the_target_on_an_undefended_model(standard_run, test_batch):
    x, y = test_batch
    target = (y + 1) % 10
    model = standard_run["model"]
    threat = ThreatModel("linf", 0.3)
    with torch.no_grad():
        hit = lambda x_adv: (model(x_adv).argmax(1) == target).float().mean().item()  # noqa: E731
        targeted = hit(create_attack("pgd", threat, steps=20, targeted=True)(model, x, target))
        untargeted = hit(create_attack("pgd", threat, steps=20)(model, x, y))
    assert targeted > 0.85 and untargeted < 0.3  # it goes where it is told, not just anywhere


def test_armor_pgd_agrees_with_torchattacks_pgd(robust_run, digits, threat):
    torchattacks = pytest.importorskip("torchattacks", reason="torchattacks not installed (test extra)")
    model = robust_run["model"]
    x, y = digits.x_test, digits.y_test
    torch.manual_seed(0)
    ours = evaluate(model, x, y, {"pgd": create_attack("pgd", threat, steps=20, step_size=0.025)}
                    ).acc("pgd")
    ta = torchattacks.PGD(model, eps=0.2, alpha=0.025, steps=20, random_start=True)
    theirs = accuracy(model, ta(x, y), y)
    assert abs(ours - theirs) <= 2.0, (ours, theirs)
