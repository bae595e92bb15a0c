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

    def __init__(self, threat: ThreatModel):
        self.threat = threat

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def set_eps(self, eps: float) -> None:
        """Change the budget (the trainer ramps ε up over the first epochs when asked)."""
        self.threat = self.threat.scaled(eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.threat})"
