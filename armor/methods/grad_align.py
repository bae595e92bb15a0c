"""GradAlign (Andriushchenko & Flammarion 2020, "Understanding and improving fast adversarial training")."""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import input_gradient
from ..errors import UserError
from ..threat import ThreatModel
from .base import METHODS, SINGLE_STEP_L1, Method, Passes, StepOutput


def check_lam(lam) -> float:
    try:
        value = float(lam)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(lam, bool) or not (value >= 0 and math.isfinite(value)):
        raise UserError(f"lam (the GradAlign weight λ) must be a number ≥ 0, got {lam!r}")
    return value


def misalignment(g1: torch.Tensor, g2: torch.Tensor, threat: ThreatModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-example ``1 − cos(g1, g2)`` over the features the threat model lets change, and a mask of the examples
    where both gradients are non-zero (a zero gradient has no direction; those examples are left out, as in the
    authors' code). Differentiable in both gradients."""
    a = threat.changeable(g1).reshape(len(g1), -1)
    b = threat.changeable(g2).reshape(len(g2), -1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    valid = (na > 0) & (nb > 0)
    cos = (a * b).sum(1) / (na * nb).clamp_min(torch.finfo(a.dtype).tiny)
    return torch.where(valid, 1 - cos, torch.zeros_like(cos)), valid


@METHODS.register("grad_align")
class GradAlign(Method):
    """FGSM training plus λ·(1 − cos(∇ₓℓ(x), ∇ₓℓ(x + η))), η ~ U[−ε, ε] (uniform in the ball for L2).

    As in the paper and its code: the FGSM step starts at ``x`` (no random start), step ε, projected onto the ball
    and the box; the cosine is taken per example and averaged over the batch, skipping examples with a zero
    gradient. The gradient at ``x`` is the FGSM step's own and is not back-propagated through; the gradient at
    ``x + η`` is (double backprop, ``create_graph``). The authors found back-propagating through both no better,
    and this saves a pass. ``x + η`` is only a probe of the loss surface and, as in the authors' code, is not clipped
    to the input box (``clamp_noise: true`` clips it); immutable features get no noise.

    λ: the paper tunes it per dataset and ε — on CIFAR-10 λ = 0.2 at ε = 8/255, interpolated log-linearly
    (λ = 0.02·10^(ε·255/8)); on SVHN λ = 2.5 at ε = 8/255. The default here is the CIFAR-10 ε = 8/255 value, 0.2;
    set ``lam`` for another dataset or ε (it stays fixed while ε ramps up). On MNIST at ε = 0.3 (10k-image
    subset, tiny_cnn) it did not prevent catastrophic overfitting for λ from 0.2 to 10; there use N-FGSM or PGD-AT.
    Cost per batch: three forward passes and about five backward-pass equivalents (the double backprop costs
    about two): measured 3–5× standard training on one CPU thread, where FGSM-RS and N-FGSM take about 2×.
    """

    name = "grad_align"
    norms = ("linf", "l2")
    norm_hint = SINGLE_STEP_L1
    guard_by_default = True

    def __init__(self, threat: ThreatModel, lam: float = 0.2, step_size: float | None = None,
                 clamp_noise: bool = False):
        super().__init__(threat)
        self.lam = check_lam(lam)
        self.clamp_noise = bool(clamp_noise)
        self._fix_step_size(step_size)
        if self.step_fraction is None:
            self.step_fraction = 1.0  # FGSM step ε (the authors: 1.25·ε from x, clipped to ε)

    def regularizer(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_x: torch.Tensor) -> torch.Tensor:
        """The batch mean of ``1 − cos(grad_x, ∇ₓℓ(x + η))`` (without λ), with a graph back to the weights."""
        x_eta = self.threat.random_init(x, clamp=self.clamp_noise).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x_eta), y, reduction="sum")  # the sum: per-example gradients, no 1/N
            (grad_eta,) = torch.autograd.grad(loss, x_eta, create_graph=True)
        gap, valid = misalignment(grad_x, grad_eta, self.threat)
        return gap.sum() / valid.sum().clamp_min(1)  # 0 when no example has two non-zero gradients

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The FGSM example (from ``x``, projected onto the ball and the box) and the gradient at ``x`` it used."""
        grad_x, _, _ = input_gradient(model, x, lambda logits: F.cross_entropy(logits, y, reduction="none"))
        return self.threat.project(self.threat.step(x, grad_x, self.step_size), x).detach(), grad_x

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        # input-gradient passes go to the module itself: DDP must see only the training forward and its backward
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        x = x.detach()
        x_adv, grad_x = self.perturb(inner, x, y)
        reg = self.regularizer(inner, x, y, grad_x) if self.lam > 0 else None
        logits = model(x_adv)
        fgsm_loss = F.cross_entropy(logits, y)
        metrics = {"fgsm_loss": fgsm_loss.detach()}
        if reg is None:
            return StepOutput(fgsm_loss, logits, metrics)
        metrics["grad_align_cos"] = 1 - reg.detach()  # falls sharply at catastrophic overfitting
        return StepOutput(fgsm_loss + self.lam * reg, logits, metrics)

    def passes(self) -> Passes:
        # ∇ℓ(x) for FGSM and the cosine, ∇ℓ(x + η) with its graph kept, the weight update, and (λ > 0) the backward
        # through ∇ℓ(x + η) that the weight gradient of the regulariser needs
        if self.lam == 0:
            return Passes(1, 1)
        return Passes(2, 1, second_order=1)

    def __repr__(self) -> str:
        return f"GradAlign({self.threat}, lam={self.lam:g}, step_size={self.step_size:.4g})"
