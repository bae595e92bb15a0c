"""Model building: a :class:`ModelSpec` (what a checkpoint records) → an ``nn.Module`` taking [0, 1] inputs.

The head is part of the spec, not of the training method: ``plain`` (C outputs) or ``folded`` (2·C outputs
folded back to C, :class:`~armor.models.folded.FoldedHead`, which dummy-class AT trains). A method says which
head it needs; a checkpoint stores the spec, so evaluation rebuilds the model without knowing any method.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from torch import nn

from ..errors import UserError
from .common import MODELS, Classifier
from .folded import FoldedHead

#: head → how many outputs per class the network has
HEADS = {"plain": 1, "folded": 2}


def create_model(name: str, input_shape: Sequence[int], num_classes: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, **options: Any) -> Classifier:
    """``create_model("small_cnn", (1, 8, 8), 10, mean=[0.3], std=[0.4])`` → a [0, 1]-input classifier.

    An option the architecture does not take is a ``UserError`` naming it (``None`` = its default)."""
    try:
        body = MODELS.create(name, tuple(input_shape), int(num_classes), **options)
    except UserError:
        raise
    except (ValueError, TypeError) as exc:
        raise UserError(f"model {name!r}: {exc}") from None
    return Classifier(body, input_shape[0], mean, std)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a registered model, stored in every checkpoint."""

    name: str
    input_shape: List[int]
    num_classes: int
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    options: Dict[str, Any] = field(default_factory=dict)
    head: str = "plain"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise UserError(f"unknown model head {self.head!r}; choose one of: {', '.join(HEADS)}")
        self.input_shape = [int(v) for v in self.input_shape]
        MODELS.check(self.name, self.options)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        try:
            return cls(d["name"], list(d["input_shape"]), int(d["num_classes"]), d.get("mean"), d.get("std"),
                       dict(d.get("options") or {}), d.get("head", "plain"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"not a model description (missing or bad field {exc})") from None


def build_model(spec: ModelSpec) -> nn.Module:
    """The model as evaluated and attacked (a folded head wraps the 2·C-output network)."""
    network = create_model(spec.name, spec.input_shape, spec.num_classes * HEADS[spec.head], spec.mean, spec.std,
                           **spec.options)
    return FoldedHead(network, spec.num_classes) if spec.head == "folded" else network
