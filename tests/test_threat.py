import math

import pytest
import torch

from armor import ThreatModel, UserError, parse_eps


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), (8 / 255, 8 / 255), ("0.3", 0.3), (0.3, 0.3),
                                        (" 4 / 255 ", 4 / 255), ("1e-2", 0.01), (2, 2.0)])
def test_parse_eps_reads_budgets_as_people_write_them(text, value):
    assert math.isclose(parse_eps(text), value)


@pytest.mark.parametrize("bad", [0, -0.1, "0", "abc", "8/0", "nan", "inf", None, True, "", [0.1]])
def test_parse_eps_refuses_non_positive_or_non_numbers(bad):
    with pytest.raises(UserError, match="eps must be a positive number"):
        parse_eps(bad)


def test_unknown_norm_is_a_user_error():
    with pytest.raises(UserError, match="unknown norm 'l3'; choose one of: linf, l2, l1"):
        ThreatModel("l3", 0.1)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5), ("l1", 3.0)])
def test_projection_and_random_start_stay_in_ball_and_box(norm, eps):
    threat = ThreatModel(norm, eps)
    x = torch.rand(64, 3, 8, 8)
    far = x + 3 * torch.randn_like(x)
    for x_adv in (threat.project(far, x), threat.random_init(x)):
        assert (threat.distance(x_adv, x) <= eps + 1e-6).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    # the projection of a point already inside the ball ∩ box is the point itself
    inside = threat.random_init(x)
    assert torch.allclose(threat.project(inside, x), inside)


def test_random_start_fills_the_linf_ball():
    threat = ThreatModel("linf", 0.1)
    x = torch.full((256, 1, 8, 8), 0.5)
    delta = threat.random_init(x) - x
    assert delta.abs().max() > 0.09 and delta.mean().abs() < 0.01


def test_step_direction_is_sign_for_linf_and_unit_for_l2():
    g = torch.tensor([[[[3.0, -0.5], [0.0, 4.0]]]])
    x = torch.zeros_like(g)
    assert torch.equal(ThreatModel("linf", 0.1).step(x, g, 0.1), 0.1 * g.sign())
    moved = ThreatModel("l2", 1.0).step(x, g, 0.5)
    assert math.isclose(moved.norm().item(), 0.5, rel_tol=1e-6)
    assert torch.allclose(moved / moved.norm(), g / g.norm())


def test_channels_last_inputs_project_correctly():
    threat = ThreatModel("l2", 0.5)
    x = torch.rand(8, 3, 8, 8).to(memory_format=torch.channels_last)
    far = (x + torch.randn_like(x)).contiguous(memory_format=torch.channels_last)
    assert (threat.distance(threat.project(far, x), x) <= 0.5 + 1e-6).all()
