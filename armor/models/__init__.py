"""Models, found through the ``MODELS`` registry; every model takes inputs in [0, 1]."""
from __future__ import annotations

from typing import Sequence

from ..errors import UserError
from . import mlp, preact_resnet, small_cnn, wide_resnet  # noqa: F401  (register)
from .common import MODELS, Classifier, Normalize


def create_model(name: str, input_shape: Sequence[int], num_classes: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, **options) -> Classifier:
    """``create_model("small_cnn", (1, 8, 8), 10, mean=[0.3], std=[0.4])`` → a [0, 1]-input classifier."""
    try:
        body = MODELS.create(name, input_shape=tuple(input_shape), num_classes=num_classes, **options)
    except ValueError as exc:
        raise UserError(f"model {name!r}: {exc}") from None
    return Classifier(body, input_shape[0], mean, std)


__all__ = ["MODELS", "Classifier", "Normalize", "create_model"]
