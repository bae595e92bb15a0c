"""``armor attack``: the adversarial examples of one attack, saved to inspect, transfer or hand to another tool.

The ``.npz`` (read back with ``allow_pickle=False``) holds, per example: ``x`` (clean input), ``x_adv``
(adversarial input; the clean one where the clean input was already misclassified, since no attack is run there),
``y`` (label), ``pred_clean`` and ``pred_adv`` (the model's predictions), ``norm`` (the perturbation's size in the
threat model's norm, ≤ ε), and ``fooled`` (correct on clean, wrong on adversarial); plus ``eps`` and the attack's
description. For images a PNG grid of the first examples is written beside it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..config import EvalConfig
from ..errors import UserError
from ..io import atomic_write
from ..modes import eval_mode
from .robust import predict
from .run import _classes, _split_of, adapt_to_data, attacks_for, subject_of


def write_adversarial(options: EvalConfig, out: Optional[str] = None, grid: int = 8) -> List[Path]:
    """Run ``options.attack`` (one attack) and write ``out`` (.npz) and, for images, ``<out>.png``."""
    if not options.attack or len(options.attack) != 1:
        raise UserError("armor attack runs one attack: give --attack NAME (e.g. --attack pgd --steps 20)")
    path = Path(out) if out else Path(options.checkpoint or options.weights or ".").parent / "adversarial.npz"
    if path.suffix != ".npz":
        raise UserError(f"the output of armor attack is an .npz file, got {str(path)!r}")
    if not path.resolve().parent.is_dir():
        raise UserError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    subject = subject_of(options)
    model, threat = subject.model, subject.threat
    dev = next(iter(model.parameters()), torch.empty(0)).device
    x, y, _ = _split_of(subject.data, options)
    if options.n is not None:
        x, y = x[:options.n], y[:options.n]
    x = x[:] if hasattr(x, "rows") else x
    x, y = x.to(dev), y.to(dev)
    classes = _classes(model, x, dev, options.num_classes, y)
    attacks, notes = adapt_to_data(attacks_for(threat, options), subject.data.input_shape, classes)
    (label, attack), = attacks.items()
    torch.manual_seed(options.seed)
    with eval_mode(model):
        pred_clean = predict(model, x, options.batch_size)
        correct = pred_clean == y
        x_adv = x.clone()
        todo = correct.nonzero().squeeze(1)
        for start in range(0, len(todo), options.batch_size):
            part = todo[start:start + options.batch_size]
            x_adv[part] = attack(model, x[part], y[part])
        pred_adv = predict(model, x_adv, options.batch_size)
    norms = threat.distance(x_adv, x)
    arrays = {"x": x.cpu().numpy(), "x_adv": x_adv.cpu().numpy(), "y": y.cpu().numpy(),
              "pred_clean": pred_clean.cpu().numpy(), "pred_adv": pred_adv.cpu().numpy(),
              "norm": norms.cpu().numpy(), "fooled": (correct & (pred_adv != y)).cpu().numpy(),
              "eps": np.float64(threat.eps), "norm_kind": np.array(threat.norm),
              "attack": np.array(repr(attack)), "notes": np.array(json.dumps(notes))}

    def write(f) -> None:
        np.savez_compressed(f, **arrays)

    atomic_write(path, write)
    written = [path]
    if subject.data.is_images:
        from ..reports.plots import plot_examples

        k = min(grid, len(x))
        png = plot_examples({key: arrays[key][:k] for key in ("x", "x_adv", "y", "pred_clean", "pred_adv")},
                            path.with_suffix(".png"), title=f"{label} on {subject.title}", eps=threat.eps)
        if png:
            written.append(Path(png))
    return written


def read_adversarial(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}

