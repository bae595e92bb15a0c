"""Per-example losses (``reduction='none'``); attacks and methods reduce them as they need."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import Registry

LOSSES = Registry("loss")


@LOSSES.register("ce")
def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y, reduction="none")


@LOSSES.register("dlr")
def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits ratio (Croce & Hein 2020): invariant to shifting and scaling the logits."""
    logits = logits.float()
    sorted_logits, _ = logits.sort(dim=1)
    true = logits.gather(1, y[:, None]).squeeze(1)
    top = sorted_logits[:, -1]
    second = sorted_logits[:, -2]
    best_other = torch.where(top == true, second, top)
    return -(true - best_other) / (sorted_logits[:, -1] - sorted_logits[:, -3] + 1e-12)


@LOSSES.register("margin")
def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin: best other logit minus the true logit (positive = misclassified)."""
    logits = logits.float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return other - true
