"""What a training run cost, relative to standard training of the same model on the same data.

Two numbers per training setting (the configured method, and any safer setting the guard switched to):

- **passes**: forward+backward passes through the model per training example and epoch, as the method counts them
  (:meth:`armor.methods.Method.passes`; standard training = 1, PGD-10 AT = 11, FGSM-RS = 2). Exact, and checked
  against the passes a step really makes (``tests/test_methods.py``).
- **wall ratio**: a probe at the end of training times ``batches`` minibatches of the method's step (its forward and
  backward passes, the weight update and the optimizer step; every replay for Free AT) and as many standard training
  steps on the same model and the same minibatch, **interleaved** (method, standard, method, standard, ...) so that
  a change in machine load hits both alike, after one untimed warm-up pair. The ratio is the median of the
  per-pair ratios; ``spread`` holds their lower and upper quartiles, a measure of how far a single ratio can be
  trusted (under noise the quartiles widen). It runs on copies of the model and optimizer, in eager mode, on one
  process's share of the batch, and restores the random-number state afterwards, so it changes nothing in the run:
  a resumed run gives the same weights and test numbers whether or not a probe ran before the kill.

The run's total weights each setting by the epochs trained with it.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from ..methods import Method, create_method

StepFn = Callable[[], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(values: List[float]) -> List[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return [q[0], q[2]]


def interleaved_ratio(method_step: StepFn, standard_step: StepFn, batches: int,
                      device: torch.device) -> Dict[str, Any]:
    """Time ``method_step`` and ``standard_step`` in turn ``batches`` times (after one untimed pair); the median of
    the per-pair time ratios, their quartiles and the mean seconds of each."""
    method_step(), standard_step()  # warm-up: allocations, first-call overheads
    ratios: List[float] = []
    totals = [0.0, 0.0]
    for _ in range(batches):
        seconds = []
        for fn in (method_step, standard_step):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            seconds.append(time.perf_counter() - start)
        totals[0] += seconds[0]
        totals[1] += seconds[1]
        ratios.append(seconds[0] / max(seconds[1], 1e-9))
    return {"wall_ratio": round(statistics.median(ratios), 3),
            "spread": [round(v, 3) for v in _quartiles(ratios)],
            "method_seconds": round(totals[0] / batches, 6), "standard_seconds": round(totals[1] / batches, 6)}


def _training_step(method: Method, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor, precision: Any) -> StepFn:
    def step() -> None:
        for _ in range(method.replays):
            with precision.autocast():
                out = method.step(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
    return step


def probe_wall_ratio(method: Method, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
                     x: torch.Tensor, y: torch.Tensor, batches: int, precision: Any) -> Dict[str, Any]:
    """The wall-time ratio of ``method``'s training step to a standard one on copies of ``model`` (see the module
    docstring). ``method`` should be a fresh instance: Free AT keeps a perturbation between steps."""
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        fast, plain = copy.deepcopy(model).train(), copy.deepcopy(model).train()
        standard = create_method("standard", method.threat)
        result = interleaved_ratio(_training_step(method, fast, make_optimizer(fast), x, y, precision),
                                   _training_step(standard, plain, make_optimizer(plain), x, y, precision),
                                   batches, x.device)
    finally:
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return {**result, "batches": batches, "batch_size": len(x)}


def setting_label(name: str, options: Optional[Dict[str, Any]] = None) -> str:
    """``pgd_at steps=2``: a training setting as records and logs name it."""
    return " ".join([name, *(f"{k}={v}" for k, v in sorted((options or {}).items()))])


def run_cost(settings: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The run's cost from its settings (``label``, ``epochs``, ``passes``, optional ``wall_ratio``): each setting's
    numbers and their epoch-weighted means."""
    epochs = sum(s["epochs"] for s in settings)
    cost: Dict[str, Any] = {"settings": settings}
    if epochs:
        cost["passes"] = round(sum(s["epochs"] * s["passes"]["total"] for s in settings) / epochs, 3)
        if all("wall_ratio" in s for s in settings):
            cost["wall_ratio"] = round(sum(s["epochs"] * s["wall_ratio"] for s in settings) / epochs, 3)
    return cost
