"""Fast single-step methods that should not collapse (issue 17): N-FGSM and GradAlign, step by step."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from armor import ThreatModel, TrainConfig, UserError, create_method
from armor.methods import METHODS
from armor.methods.grad_align import misalignment
from armor.training.guards import CatastrophicOverfittingGuard, guard_callbacks

N, D = 256, 10


def mlp(classes: int = 3) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes))


@pytest.fixture
def features():
    torch.manual_seed(0)
    return torch.rand(N, D), torch.randint(0, 3, (N,))


# -- N-FGSM ------------------------------------------------------------------------------------------------------------
def test_n_fgsm_perturbation_reaches_beyond_eps_up_to_k_plus_one_eps(features):
    x, y = features
    threat = ThreatModel("linf", 0.1)
    method = create_method("n_fgsm", threat)
    assert (method.k, method.attack.step_size) == (2.0, pytest.approx(0.1))  # the paper's k = 2, α = ε
    x_adv = method.attack(mlp(), x, y)
    size = threat.distance(x_adv, x)
    assert (size <= 3 * 0.1 + 1e-6).all()          # |η| ≤ kε, plus one step of α = ε
    assert size.max() > 0.25 and (size > 0.1 + 1e-3).float().mean() > 0.9  # NOT projected onto the ε-ball
    assert threat.in_box(x_adv)
    # a single feature moves by η + α·sign(g): at most 3ε, and strictly beyond ε for most features
    assert ((x_adv - x).abs() > 0.1 + 1e-3).float().mean() > 0.3


def test_n_fgsm_is_one_signed_step_from_the_noisy_start_clipped_to_the_box_only(features):
    x, y = features
    threat, model = ThreatModel("linf", 0.1), mlp()
    torch.manual_seed(5)
    x_adv = create_method("n_fgsm", threat, k=3, step_size=0.05).attack(model, x, y)
    torch.manual_seed(5)  # the same noise, by hand: η ~ U[-kε, kε], start clipped into [0, 1]
    start = (x + (2 * torch.rand(x.shape) - 1) * 0.3).clamp(0, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(start), y, reduction="sum"), start)
    expected = (start + 0.05 * grad.sign()).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    assert threat.distance(x_adv, x).max() > 0.3  # k·ε + α = 0.35 at most; the ε-ball (0.1) is far exceeded


def test_n_fgsm_keeps_a_per_feature_box_and_never_moves_immutable_features(features):
    x, y = features
    lower, upper = [0.2] * D, [0.7] * D
    lower[4], upper[4] = 0.0, 1.0
    x = 0.2 + 0.5 * x  # inside the box
    threat = ThreatModel("linf", 0.15, lower=lower, upper=upper, immutable=(0, 3))
    x_adv = create_method("n_fgsm", threat).attack(mlp(), x, y)
    assert threat.in_box(x_adv)
    assert torch.equal(x_adv[:, [0, 3]], x[:, [0, 3]])
    moved = (x_adv - x).abs()
    assert moved[:, 4].max() > 0.15 + 1e-3 and (moved <= 3 * 0.15 + 1e-6).all()


def test_n_fgsm_l2_perturbation_may_exceed_eps_up_to_k_plus_one_eps(features):
    x, y = features
    x = 0.25 + 0.5 * x  # away from the box, so clipping does not shorten the perturbation
    threat = ThreatModel("l2", 0.1)
    x_adv = create_method("n_fgsm", threat).attack(mlp(), x, y)
    size = threat.distance(x_adv, x)
    assert (size <= 0.3 + 1e-5).all()  # ‖η‖ ≤ kε plus a step of α = ε
    assert size.max() > 0.2 and (size > 0.1 + 1e-3).float().mean() > 0.5  # not projected onto the ε-ball
    assert threat.in_box(x_adv)


def test_n_fgsm_follows_the_ramped_threat(features):
    x, y = features
    threat = ThreatModel("linf", 0.3)
    method = create_method("n_fgsm", threat, step_size=0.3)  # α = ε, kept as a fraction of ε
    method.set_threat(threat.scaled(0.1))  # what the trainer's ε warm-up does every batch
    assert method.attack.step_size == pytest.approx(0.1) and method.attack.threat.eps == pytest.approx(0.1)
    size = method.threat.distance(method.attack(mlp(), x, y), x)
    assert size.max() > 0.15 and (size <= 0.3 + 1e-6).all()  # up to 3 × the ramped ε, not 3 × 0.3


def test_n_fgsm_without_noise_is_plain_fgsm_of_step_alpha(features):
    x, y = features
    x = 0.25 + 0.5 * x
    threat = ThreatModel("linf", 0.1)
    x_adv = create_method("n_fgsm", threat, k=0).attack(mlp(), x, y)
    assert torch.allclose(threat.distance(x_adv, x), torch.full((N,), 0.1))


def test_n_fgsm_options_are_checked():
    threat = ThreatModel("linf", 0.1)
    for bad in (-1, "x", float("nan"), True):
        with pytest.raises(UserError, match="k .*must be a number ≥ 0"):
            create_method("n_fgsm", threat, k=bad)
    with pytest.raises(UserError, match="step_size must be"):
        create_method("n_fgsm", threat, step_size=0)
    with pytest.raises(UserError, match="method 'n_fgsm' has no option 'kk'"):
        TrainConfig(method="n_fgsm", method_options={"kk": 1})
    assert TrainConfig(method="n_fgsm", step_size=0.1, method_options={"k": 3}).method_kwargs() == \
        {"step_size": 0.1, "k": 3}


# -- GradAlign ---------------------------------------------------------------------------------------------------------
def test_misalignment_is_zero_for_aligned_gradients_and_grows_with_the_angle():
    threat = ThreatModel("linf", 0.1)
    g = torch.randn(4, D)
    orth = torch.randn(4, D)
    orth -= (orth * g).sum(1, keepdim=True) / (g * g).sum(1, keepdim=True) * g
    gap, valid = misalignment(g, 3 * g, threat)
    assert valid.all() and torch.allclose(gap, torch.zeros(4), atol=1e-6)
    assert torch.allclose(misalignment(g, orth, threat)[0], torch.ones(4), atol=1e-5)
    assert torch.allclose(misalignment(g, -g, threat)[0], torch.full((4,), 2.0), atol=1e-6)
    zero = g.clone()
    zero[1] = 0  # a zero gradient has no direction: that example is left out
    gap, valid = misalignment(zero, g, threat)
    assert valid.tolist() == [True, False, True, True] and gap[1] == 0
    # only the features the attacker can change count
    fixed = ThreatModel("linf", 0.1, immutable=(0, 1))
    other = g.clone()
    other[:, :2] = -other[:, :2] * 5
    assert torch.allclose(misalignment(g, other, fixed)[0], torch.zeros(4), atol=1e-6)
    assert (misalignment(g, other, threat)[0] > 0.1).all()


def test_grad_align_regularizer_is_zero_for_a_linear_model_and_positive_for_a_relu_net(features):
    x, y = features
    method = create_method("grad_align", ThreatModel("linf", 0.3))
    assert method.lam == pytest.approx(0.2) and method.step_size == pytest.approx(0.3)
    # binary logistic regression: ∇ₓℓ = (p₁ − y₁)(w₁ − w₀) points the same way at every input
    linear, yb = nn.Linear(D, 2), y % 2
    _, grad_x = method.perturb(linear, x, yb)
    assert method.regularizer(linear, x, yb, grad_x).abs() < 1e-5
    net = mlp()
    _, grad_x = method.perturb(net, x, y)
    assert method.regularizer(net, x, y, grad_x) > 1e-3


def test_grad_align_loss_backpropagates_through_the_input_gradient_into_the_weights(features):
    x, y = features
    net, method = mlp(), create_method("grad_align", ThreatModel("linf", 0.3), lam=1.0)
    out = method.step(net, x, y)
    assert set(out.metrics) == {"fgsm_loss", "grad_align_cos"} and 0 < out.metrics["grad_align_cos"] < 1
    assert torch.allclose(out.loss, out.metrics["fgsm_loss"] + 1.0 * (1 - out.metrics["grad_align_cos"]))
    # the regulariser alone (double backprop) moves every weight, and descending it aligns the gradients
    opt = torch.optim.SGD(net.parameters(), lr=0.5)

    def reg():
        torch.manual_seed(7)  # the same η every time
        _, grad_x = method.perturb(net, x, y)
        return method.regularizer(net, x, y, grad_x)

    before = reg()
    opt.zero_grad()
    before.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    for _ in range(20):
        opt.zero_grad()
        r = reg()
        r.backward()
        opt.step()
    after = reg().item()
    assert after < 0.5 * before.item(), (before.item(), after)


def test_grad_align_fgsm_step_is_projected_and_follows_the_ramped_threat(features):
    x, y = features
    threat = ThreatModel("linf", 0.3, immutable=(2,))
    method = create_method("grad_align", threat)
    method.set_threat(threat.scaled(0.1))
    assert method.step_size == pytest.approx(0.1)
    x_adv, _ = method.perturb(mlp(), x, y)
    size = method.threat.distance(x_adv, x)
    assert (size <= 0.1 + 1e-6).all() and size.max() == pytest.approx(0.1)
    assert method.threat.in_box(x_adv) and torch.equal(x_adv[:, 2], x[:, 2])
    out = method.step(mlp(), x, y)  # the regulariser's η is drawn in the ramped ball too
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("clamp", [False, True])
def test_grad_align_probes_the_gradient_at_noise_outside_the_box_unless_told_to_clamp(clamp):
    seen = []
    net = mlp()
    net.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    x, y = torch.zeros(64, D), torch.zeros(64, dtype=torch.long)  # on the box's lower face
    threat = ThreatModel("linf", 0.2, immutable=(1,))
    create_method("grad_align", threat, clamp_noise=clamp).step(net, x, y)
    at_x, probe, x_adv = seen  # FGSM gradient at x, the regulariser's x + η, the training input
    assert torch.equal(at_x, x) and threat.in_box(x_adv) and (threat.distance(probe, x) <= 0.2 + 1e-6).all()
    assert threat.in_box(probe) == clamp and (probe.min() < -0.05) != clamp  # the authors' code does not clamp
    assert (probe[:, 1] == 0).all() and probe.std() > 0.05  # immutable features get no noise


def test_grad_align_options_are_checked():
    threat = ThreatModel("linf", 0.1)
    for bad in (-0.1, "x", float("inf")):
        with pytest.raises(UserError, match="lam .*must be a number ≥ 0"):
            create_method("grad_align", threat, lam=bad)
    with pytest.raises(UserError, match="method 'grad_align' has no option 'lambda'"):
        TrainConfig(method="grad_align", method_options={"lambda": 1})
    plain = create_method("grad_align", threat, lam=0)  # λ = 0 is plain FGSM training
    assert set(plain.step(mlp(), *(torch.rand(8, D), torch.zeros(8, dtype=torch.long))).metrics) == {"fgsm_loss"}


# -- both --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["n_fgsm", "grad_align"])
def test_single_step_methods_register_with_the_guard_on_by_default(name):
    assert METHODS.get(name).guard_by_default and METHODS.get(name).adversarial
    cfg = TrainConfig(method=name)
    guards = guard_callbacks(cfg, create_method(name, cfg.threat))
    assert any(isinstance(g, CatastrophicOverfittingGuard) for g in guards)
    off = TrainConfig(method=name, guard="off")
    assert not any(isinstance(g, CatastrophicOverfittingGuard) for g in guard_callbacks(off, create_method(name,
                                                                                                         off.threat)))
