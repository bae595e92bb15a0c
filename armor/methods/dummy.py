from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..errors import UserError
from ..losses import soft_ce
from ..models.folded import Unfolded, fold
from ..threat import ThreatModel
from .base import METHODS, AttackingMethod, Passes, StepOutput


@METHODS.register("dummy")
class DummyClassAT(AttackingMethod):
    """Dummy-class adversarial training (DUCAT, Wang et al. 2024).

    The head has C real and C dummy outputs. A clean image of class c is trained towards
    ``(1 − w_benign)·e_c + w_benign·e_{c+C}``, its PGD example towards
    ``(1 − w_adv)·e_c + w_adv·e_{c+C}`` (the defaults 0.25 and 1 are the paper's): the adversarial
    example may land in the dummy twin instead of being forced into the clean class. At inference
    class c's score is folded from c and c+C (:class:`~armor.models.folded.FoldedHead`), and the trainer
    builds that folded model, so validation, the test table and every attack see the C-class output.
    The inner training attack runs on the folded output by default (``attack_head="folded"``); the
    reference code attacks the raw 2C head with the real label (``attack_head="raw"``), whose examples
    drift into the dummy twin and so stop being hard for the folded decision — on digits that variant
    ends up less robust under the folded PGD-20 (see README).
    """

    name = "dummy"
    head = "folded"

    def __init__(self, threat: ThreatModel, steps: int = 7, step_size: float | None = None,
                 w_benign: float = 0.25, w_adv: float = 1.0, attack_head: str = "folded"):
        if attack_head not in ("raw", "folded"):
            raise UserError(f"attack_head must be 'raw' or 'folded', got {attack_head!r}")
        self.attack_head = attack_head
        for key, value in (("w_benign", w_benign), ("w_adv", w_adv)):
            if not 0.0 <= float(value) <= 1.0:
                raise UserError(f"{key} must be in [0, 1], got {value!r}")
        self.w_benign, self.w_adv = float(w_benign), float(w_adv)
        super().__init__(threat, steps, step_size)

    def make_attack(self) -> PGD:
        return PGD(self.threat, steps=self.steps, step_size=self.step_size, keep_best=False)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        try:
            clean_raw = model(x, unfolded=True)
        except TypeError:
            raise TypeError("dummy-class AT trains a FoldedHead model (armor.models.build_model with head='folded')") \
                from None
        c = clean_raw.shape[1] // 2
        x_adv = self.attack(Unfolded(model) if self.attack_head == "raw" else model, x, y)
        real, dummy = F.one_hot(y, 2 * c).float(), F.one_hot(y + c, 2 * c).float()
        targets = torch.cat([(1 - self.w_benign) * real + self.w_benign * dummy,
                             (1 - self.w_adv) * real + self.w_adv * dummy])
        raw_logits = torch.cat([clean_raw, model(x_adv, unfolded=True)])
        loss = soft_ce(raw_logits, targets).mean()
        folded = fold(raw_logits, c)
        clean_acc = (folded[: len(x)].argmax(1) == y).float().mean()
        dummy_fraction = (raw_logits[len(x):].argmax(1) >= c).float().mean()
        return StepOutput(loss, folded[len(x):], {"clean_acc": clean_acc, "adv_dummy_fraction": dummy_fraction})

    def passes(self) -> Passes:
        return Passes(self.steps, 2)  # PGD, then the clean and the adversarial batch in one weight update

    def __repr__(self) -> str:
        return f"DummyClassAT({self.threat}, w_benign={self.w_benign:g}, w_adv={self.w_adv:g})"
