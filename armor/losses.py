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


def kl_div(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_ref ‖ p) with p = softmax(logits): how far ``logits`` moved from the reference.

    TRADES' robust term (Zhang et al. 2019) is ``kl_div(f(x'), f(x))`` summed over classes; its inner
    attack maximises the same quantity with the clean distribution held fixed.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    log_ref = F.log_softmax(reference_logits.float(), dim=1)
    return (log_ref.exp() * (log_ref - log_p)).sum(dim=1)


def mart(adv_logits: torch.Tensor, clean_logits: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-example MART loss (Wang et al. 2020): boosted CE on x' + β·KL(p(x) ‖ p(x'))·(1 − p_y(x)).

    The boosted CE adds −log(1 − max_{k≠y} p_k(x')) so the strongest wrong class is pushed down too;
    the KL term is weighted by how badly the clean input is classified, so misclassified examples
    get the most robustness regularisation.
    """
    adv_logits, clean_logits = adv_logits.float(), clean_logits.float()
    adv_probs = F.softmax(adv_logits, dim=1)
    best_wrong = adv_probs.scatter(1, y[:, None], 0.0).amax(dim=1)
    boosted_ce = F.cross_entropy(adv_logits, y, reduction="none") - torch.log((1.0 - best_wrong).clamp_min(1e-12))
    clean_true = F.softmax(clean_logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return boosted_ce + beta * kl_div(adv_logits, clean_logits) * (1.0 - clean_true)


def soft_ce(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy against a soft label distribution (rows of ``target_probs``)."""
    return -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(dim=1)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020), to be maximised: pushes the ``target`` logit above the true one.

    The denominator (top logit minus the mean of the 3rd and 4th) makes it invariant to scaling the
    logits, so saturated or rescaled logits cannot hide the gradient; it needs at least 4 classes.
    """
    logits = logits.float()
    sorted_logits, _ = logits.sort(dim=1)
    true = logits.gather(1, y[:, None]).squeeze(1)
    tgt = logits.gather(1, target[:, None]).squeeze(1)
    scale = sorted_logits[:, -1] - 0.5 * (sorted_logits[:, -3] + sorted_logits[:, -4]) + 1e-12
    return -(true - tgt) / scale
