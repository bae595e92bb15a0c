"""Model building: a :class:`ModelSpec` (what a checkpoint records) → an ``nn.Module`` taking [0, 1] inputs.

The head is part of the spec, not of the training method: ``plain`` (C outputs) or ``folded`` (2·C outputs
folded back to C, :class:`~armor.models.folded.FoldedHead`, which dummy-class AT trains). A method says which
head it needs; a checkpoint stores the spec, so evaluation rebuilds the model without knowing any method.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import UserError, opt
from .common import MODELS, Classifier
from .folded import FoldedHead
from .user import build_user_model, check_unchanged, is_reference

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
    return Classifier(body, list(input_shape), mean, std)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model, stored in every checkpoint: a registered architecture by name, or the
    user's own factory by reference (``file.py:factory``) with the sha256 of its file."""

    name: str
    input_shape: List[int]
    num_classes: int
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    options: Dict[str, Any] = field(default_factory=dict)
    head: str = "plain"
    factory_sha256: Optional[str] = None

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise UserError(f"unknown model head {self.head!r}; choose one of: {', '.join(HEADS)}")
        self.input_shape = [int(v) for v in self.input_shape]
        if not self.user_code:
            MODELS.check(self.name, self.options)

    @property
    def user_code(self) -> bool:
        return is_reference(self.name)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        try:
            return cls(d["name"], list(d["input_shape"]), int(d["num_classes"]), d.get("mean"), d.get("std"),
                       dict(d.get("options") or {}), d.get("head", "plain"), d.get("factory_sha256"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"not a model description (missing or bad field {exc})") from None


def check_outputs(model: nn.Module, input_shape: List[int], outputs: int, name: str) -> None:
    """A user model must map (N, *input_shape) to (N, outputs) logits: say so in one line if it does not."""
    probe = torch.zeros(2, *input_shape)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:
        raise UserError(f"{name} fails on inputs shaped {tuple(probe.shape)}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, outputs):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{name} must return logits shaped (N, {outputs}) for inputs (N, {', '.join(map(str, input_shape))}), "
                        f"got {shape}")


def build_model(spec: ModelSpec, user_code: Optional[str] = None, what: str = "the checkpoint") -> nn.Module:
    """The model as evaluated and attacked (a folded head wraps the 2·C-output network).

    A spec naming the user's own factory is built only when the user named the same factory now
    (``user_code``, e.g. ``--model file.py:net``) and its file is unchanged since ``what`` was saved: armor never
    imports code because a checkpoint names it."""
    outputs = spec.num_classes * HEADS[spec.head]
    if spec.user_code:
        if user_code is None:
            raise UserError(f"{what} holds a model from your own code ({spec.name}); pass {opt('model', spec.name)} to "
                            f"build it (armor never imports code a checkpoint names)")
        if user_code.rpartition(":")[2] != spec.name.rpartition(":")[2]:
            raise UserError(f"{what} was trained with {opt('model', spec.name)}, not {user_code}")
        check_unchanged(user_code, spec.factory_sha256, what)  # the file may have moved; its content may not change
        body = build_user_model(user_code, spec.options, spec.input_shape, outputs)
        network = Classifier(body, list(spec.input_shape), spec.mean, spec.std)
        check_outputs(network, spec.input_shape, outputs, spec.name)
    else:
        if user_code is not None:
            raise UserError(f"{what} holds the registered model {spec.name!r}; {opt('model', 'FILE.py:FACTORY')} is for models from your own "
                            f"code")
        network = create_model(spec.name, spec.input_shape, outputs, spec.mean, spec.std, **spec.options)
    return FoldedHead(network, spec.num_classes) if spec.head == "folded" else network
