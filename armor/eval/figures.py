"""The model passes a report's pictures need, computed once and stored beside the run's JSON.

``armor report`` is a pure renderer: it reads JSON/NPZ and never runs a model. The two pictures that do
need a model — clean / adversarial / perturbation images, and input-gradient saliency (Tsipras et al.
2019: the loss gradient of a robust model looks like the object, a standard model's looks like noise) —
are computed here by ``armor report --compute-figures`` (or :func:`compute_figures`) and written to
``RUN/figures.npz`` (arrays, read back with ``allow_pickle=False``) and ``RUN/figures.json`` (what was
computed, with which attack and checkpoint).

The examples are the first test image of each class, so every run on the same dataset shows the same
images and saliency maps of different models line up side by side.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..attacks import PGD, input_gradient
from ..checkpoints import load_model
from ..errors import UserError
from ..io import atomic_write
from ..losses import ce
from ..modes import eval_mode
from ..results import FiguresRecord

log = logging.getLogger(__name__)

FIGURES_NPZ = "figures.npz"
FIGURES_JSON = "figures.json"


def pick_examples(y: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first example of each class (in class order), then the next ones, ``n`` in all."""
    first = []
    for c in torch.unique(y).tolist():
        hits = (y == c).nonzero().squeeze(1)
        if hits.numel():
            first.append(int(hits[0]))
    rest = [i for i in range(len(y)) if i not in set(first)]
    return torch.tensor(sorted(first)[:n] + rest[:max(0, n - len(first))], dtype=torch.long)


def input_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂ CE(model(x), y) / ∂x per example, in eval mode, without touching parameter gradients."""
    with eval_mode(model):
        grad, _, _ = input_gradient(model, x, lambda logits: ce(logits, y))
    return grad


def compute_figures(run_dir: str | Path, n: int = 8, steps: int = 20, checkpoint: str = "best.pt",
                    device: str = "auto", seed: int = 0, data_dir: Optional[str] = None) -> FiguresRecord:
    """Write ``figures.npz``/``figures.json`` for one run folder; returns the JSON record."""
    run = Path(run_dir)
    path = run / checkpoint
    if not path.is_file():
        raise UserError(f"cannot compute figures: {str(path)!r} does not exist (a run folder holds best.pt)")
    if n < 1:
        raise UserError(f"n must be an integer ≥ 1, got {n!r}")
    model, cfg, state = load_model(path, device)
    dev = next(model.parameters()).device
    data = cfg.load_data(data_dir)
    index = pick_examples(data.y_test, n)
    x, y = data.x_test[index].to(dev), data.y_test[index].to(dev)
    threat = cfg.threat
    attack = PGD(threat, steps=steps)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        x_adv = attack(model, x, y)
    with torch.no_grad():
        pred_clean, pred_adv = model(x).argmax(1), model(x_adv).argmax(1)
    arrays = {"index": index.numpy(), "x": x.cpu().numpy(), "y": y.cpu().numpy(), "x_adv": x_adv.cpu().numpy(),
              "pred_clean": pred_clean.cpu().numpy(), "pred_adv": pred_adv.cpu().numpy(),
              "saliency": input_gradients(model, x, y).cpu().numpy()}

    def write(f) -> None:
        np.savez_compressed(f, **arrays)

    atomic_write(run / FIGURES_NPZ, write)
    record = FiguresRecord(checkpoint=checkpoint, epoch=state.get("epoch"), dataset=data.name, model=cfg.model,
                           method=cfg.method, threat=threat.to_dict(), attack=repr(attack), seed=seed,
                           indices=index.tolist(), split="test",
                           saliency="gradient of the cross-entropy loss with respect to the input (eval mode)",
                           arrays=FIGURES_NPZ)
    record.write(run / FIGURES_JSON)
    log.info("figures: %s (%d test images, %s)", run / FIGURES_NPZ, len(index), attack)
    return record
