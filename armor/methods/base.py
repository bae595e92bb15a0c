"""The training-method protocol: ``method.step(model, x, y) -> StepOutput(loss, logits, metrics)``.

The trainer calls ``loss.backward()``, steps the optimizer and logs ``metrics``; a method owns only the
inner maximisation and the outer loss. A new method is one file and one ``@METHODS.register`` entry; its
constructor's keyword arguments are its options (``armor train --method NAME`` refuses any other).

Every method states its cost (:meth:`Method.passes`): how many forward+backward passes through the model it makes
per training example and epoch, split into input-gradient passes (the inner attack) and weight-update passes (the
loss the optimizer steps on); standard training is 0 + 1. ``tests/test_methods.py`` counts the passes a step really
makes and checks them against this.

The threat model is handed in: ``set_threat`` is called by the trainer with the ε schedule's current value
(:class:`armor.schedules.ThreatSchedule`, the one owner of a ramped ε). A method never computes ε itself; an
attacking method rebuilds its inner attack only when the threat actually changed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..attacks.base import Attack, check_norm, check_step_size, check_steps
from ..registry import Registry
from ..threat import NORMS, ThreatModel

#: why the single-step (FGSM-based) methods refuse L1
SINGLE_STEP_L1 = ("its inner attack is one FGSM-type step, which is not defined for l1 (a single L1 steepest-ascent "
                  "step of size ε moves a few features and is cut by the box); use pgd_at, trades or mart")

METHODS = Registry("method")


@dataclass(frozen=True)
class Passes:
    """A method's cost per training example and epoch, in passes through the model.

    ``input_gradient``: forward+backward passes whose gradient is taken with respect to the input only (the inner
    attack: PGD-K makes K). ``weight_update``: forward+backward passes of the loss the optimizer steps on, counted
    per example (1 for standard training; 2 when that loss sees the clean and the adversarial batch, as TRADES').
    ``second_order``: backward passes through a gradient (GradAlign's double backprop, which costs about as much as
    one more pass). ``forward_only``: forward passes without a backward (TRADES' clean reference logits); not in
    :attr:`total`. ``total`` = input_gradient + weight_update + second_order, so standard training = 1 and PGD-10 AT
    = 11: the number to compare, with the wall-time ratio the trainer measures (it also pays for the
    optimizer step and the attack's bookkeeping, and a backward pass costs about twice a forward).
    """

    input_gradient: float
    weight_update: float
    second_order: float = 0.0
    forward_only: float = 0.0

    @property
    def total(self) -> float:
        return self.input_gradient + self.weight_update + self.second_order

    def to_dict(self) -> Dict[str, float]:
        return {"input_gradient": self.input_gradient, "weight_update": self.weight_update,
                "second_order": self.second_order, "forward_only": self.forward_only, "total": self.total}


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
    #: the model head this method trains (:data:`armor.models.HEADS`): dummy-class AT needs ``folded``
    head = "plain"
    #: the norms the method is defined for; any other is a ``UserError`` naming ``norm_hint``
    norms: Tuple[str, ...] = NORMS
    norm_hint = ""

    def __init__(self, threat: ThreatModel):
        if not isinstance(threat, ThreatModel):
            raise TypeError(f"threat must be a ThreatModel, got {type(threat).__name__}")
        check_norm(threat, f"method {self.name!r}", self.norms, self.norm_hint)
        self.threat = threat
        self.step_fraction: Optional[float] = None

    def _fix_step_size(self, step_size: Any) -> None:
        """Keep a fixed step size as a fraction of ε, so it scales with the ε ramp (``None``: the default)."""
        size = check_step_size(step_size)
        self.step_fraction = None if size is None else size / self.threat.eps

    @property
    def step_size(self) -> Optional[float]:
        """The step at the current ε (``None``: the inner attack's own default)."""
        return None if self.step_fraction is None else self.step_fraction * self.threat.eps

    def set_threat(self, threat: ThreatModel) -> None:
        """Train against ``threat`` from the next step on (the trainer's ε schedule calls this every batch)."""
        if threat != self.threat:
            self.threat = threat

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        raise NotImplementedError

    def passes(self) -> Passes:
        """Forward+backward passes per training example and epoch (see :class:`Passes`); standard: 0 + 1."""
        return Passes(0, self.replays)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.threat})"


class AttackingMethod(Method):
    """A method with an inner attack (``make_attack``), built for the current threat and rebuilt only when the
    threat changes."""

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: Any = None):
        super().__init__(threat)
        self._fix_step_size(step_size)
        self.steps = check_steps(steps)
        self._attack: Attack = self.make_attack()
        self._attack_threat = threat

    @property
    def attack(self) -> Attack:
        if self._attack_threat != self.threat:
            self._attack, self._attack_threat = self.make_attack(), self.threat
        return self._attack

    def make_attack(self) -> Attack:
        raise NotImplementedError
