"""Models, found through the ``MODELS`` registry; every model takes inputs in [0, 1].

:mod:`.build` is the one place that turns a description (:class:`ModelSpec`: architecture, options, input
shape, classes, normalisation, head) into a module — for training, for ``armor eval`` and for resuming.
"""
from __future__ import annotations

from . import mlp, preact_resnet, resnet, small_cnn, wide_resnet  # noqa: F401  (register)
from .build import HEADS, ModelSpec, build_model, create_model
from .common import MODELS, Classifier, Normalize

__all__ = ["HEADS", "MODELS", "Classifier", "ModelSpec", "Normalize", "build_model", "create_model"]
