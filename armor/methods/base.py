"""The training-method protocol: ``method.step(model, x, y) -> StepOutput(loss, logits, metrics)``.

The trainer calls ``loss.backward()``, steps the optimizer and logs ``metrics``; a method owns only the
inner maximisation and the outer loss. A new method is one file and one ``@METHODS.register`` entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch
from torch import nn

from ..registry import Registry
from ..threat import ThreatModel

METHODS = Registry("method")


@dataclass
class StepOutput:
    loss: torch.Tensor                      # scalar, to be back-propagated by the trainer
    logits: torch.Tensor                    # logits on the inputs the model was trained on (adversarial for AT)
    metrics: Dict[str, torch.Tensor] = field(default_factory=dict)  # scalars, averaged over the epoch


class Method:
    name = "method"
    #: ``True`` when ``logits`` come from adversarial inputs, so the trainer logs them as train robust accuracy.
    adversarial = True
    #: how many times the trainer replays each minibatch (optimizer step after each); Free AT uses m > 1.
    replays = 1
    #: whether the trainer's catastrophic-overfitting guard is on by default (single-step methods)
    guard_by_default = False
    #: the model's head has ``head_factor · C`` outputs (dummy-class AT uses 2)
    head_factor = 1

    @staticmethod
    def wrap_model(model: nn.Module, num_classes: int) -> nn.Module:
        """The model evaluated and attacked, built around the trained network (dummy AT folds its head)."""
        return model

    def __init__(self, threat: ThreatModel):
        self.threat = threat

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def set_eps(self, eps: float) -> None:
        """Change the budget (the trainer ramps ε up over the first epochs when asked)."""
        self.threat = self.threat.scaled(eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.threat})"


class AttackingMethod(Method):
    """A method with an inner attack rebuilt whenever ε changes (the trainer may ramp ε up).

    A fixed ``step_size`` is kept as a fraction of ε, so it scales with the ramp; ``None`` leaves the
    attack's own default.
    """

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: float | None = None):
        super().__init__(threat)
        self.steps = steps
        self.step_fraction = None if step_size is None else float(step_size) / threat.eps
        self.attack = self.make_attack()

    @property
    def step_size(self) -> float | None:
        return None if self.step_fraction is None else self.step_fraction * self.threat.eps

    def make_attack(self):
        raise NotImplementedError

    def set_eps(self, eps: float) -> None:
        super().set_eps(eps)
        self.attack = self.make_attack()
