import pytest
import torch

from armor import MODELS, UserError, create_model

OPTIONS = {"wide_resnet": {"depth": 10, "widen_factor": 1}, "preact_resnet18": {"width": 8}, "resnet50": {"width": 4}}


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_model_maps_unit_box_images_to_logits(name, shape):
    model = create_model(name, shape, 10, mean=[0.5] * shape[0], std=[0.25] * shape[0], **OPTIONS.get(name, {}))
    out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_normalisation_is_the_first_layer():
    model = create_model("mlp", (1, 2, 2), 2, mean=[0.5], std=[0.25])
    x = torch.full((1, 1, 2, 2), 0.75)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))


def test_unknown_model_and_bad_option_are_user_errors():
    with pytest.raises(UserError, match="unknown model 'resnet9000'"):
        create_model("resnet9000", (1, 8, 8), 10)
    with pytest.raises(UserError, match="depth must be 6n\\+4"):
        create_model("wide_resnet", (3, 32, 32), 10, depth=11)
