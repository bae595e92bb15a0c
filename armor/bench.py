"""``armor bench``: the cost of an adversarial training step, measured side by side in one run.

All variants share one model, one batch and one device, and are timed alternately (A B C A B C …) so
drift in the machine's speed hits them alike; each number is the median of ``repeats`` runs.

Training steps (model in train mode, forward + backward + optimizer step):
  clean step          the floor's unit: one forward+backward on clean inputs
  hand AT step        a minimal hand-written PGD-k loop + the outer step
  armor AT step       armor's ``pgd_at`` method + the trainer's backward/step (AMP scaler included)
Attacks alone (model in eval mode): hand PGD, armor PGD, torchattacks PGD and ART PGD when installed.

The floor of a PGD-k AT step is (k+1)× the clean step: k input-gradient passes and one weight update.
``compare_trainers`` (``armor bench --trainers``) trains ART's AdversarialTrainerMadryPGD and armor's
PGD-AT for the same epochs on digits and reports time and test accuracy of both.
"""
from __future__ import annotations

import logging
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .accel import Precision, maybe_compile, resolve_amp, to_memory_format, use_channels_last
from .attacks import PGD
from .data import load_dataset
from .device import pick_device
from .errors import UserError
from .methods import create_method
from .models import create_model
from .threat import DEFAULT_EPS, ThreatModel

log = logging.getLogger("armor")


def hand_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
             steps: int) -> torch.Tensor:
    """The loop people write by hand: random start, signed input gradient, clip to the ball and the box."""
    delta = torch.empty_like(x).uniform_(-eps, eps)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta).float(), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(variants: Dict[str, Callable[[], Any]], device: torch.device, repeats: int,
                      warmup: int = 2) -> Dict[str, List[float]]:
    """Seconds per call of each variant, interleaved round by round."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _batch(dataset: str, input_shape: Optional[Sequence[int]], batch: int, device: torch.device, seed: int):
    """A real batch of ``dataset`` or, with ``input_shape``, synthetic uniform images and random labels."""
    g = torch.Generator().manual_seed(seed)
    if input_shape is not None:
        x = torch.rand((batch, *input_shape), generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        return x.to(device), y.to(device), tuple(input_shape), 10, [0.5] * input_shape[0], [0.25] * input_shape[0]
    data = load_dataset(dataset, seed=seed)
    if len(data.x_train) < batch:
        raise UserError(f"batch {batch} is larger than the {len(data.x_train)} training images of {dataset!r}")
    idx = torch.randperm(len(data.x_train), generator=g)[:batch]
    return (data.x_train[idx].to(device), data.y_train[idx].to(device), data.input_shape, data.num_classes,
            data.mean, data.std)


def run_bench(model: str = "small_cnn", dataset: str = "digits", input_shape: Optional[Sequence[int]] = None,
              batch: int = 256, steps: int = 10, eps: Optional[float] = None, repeats: int = 10, warmup: int = 2,
              device: str = "auto", amp: str = "off", channels_last: Any = False, compile: bool = False,
              third_party: bool = True, seed: int = 0) -> Dict[str, Any]:
    """Time the variants; returns a plain dict (rows with median ms and ratios, plus the set-up)."""
    dev = pick_device(device)
    logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every attack's success rate at INFO
    torch.manual_seed(seed)
    x, y, shape, classes, mean, std = _batch(dataset, input_shape, batch, dev, seed)
    eps = float(eps if eps is not None else (DEFAULT_EPS.get(dataset, 8 / 255) if input_shape is None else 8 / 255))
    alpha = 2.5 * eps / steps
    net = create_model(model, shape, classes, mean, std).to(dev)
    precision = Precision(dev, resolve_amp(amp, dev))
    cl = use_channels_last(channels_last, dev, net)
    if cl:
        net.to(memory_format=torch.channels_last)
        x = to_memory_format(x, True)
    fast = maybe_compile(net, compile)
    # plain SGD keeps the optimizer's own cost small and identical for every variant
    opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    threat = ThreatModel("linf", eps)
    method = create_method("pgd_at", threat, steps=steps)

    def outer_step(inputs: torch.Tensor) -> None:
        with precision.autocast():
            loss = F.cross_entropy(fast(inputs).float(), y)
        opt.zero_grad(set_to_none=True)
        precision.backward_step(loss, opt)

    def clean_step() -> None:
        fast.train()
        outer_step(x)

    def hand_at_step() -> None:
        fast.train()
        with precision.autocast():
            x_adv = hand_pgd(fast, x, y, eps, alpha, steps)
        outer_step(x_adv)

    def armor_at_step() -> None:  # the trainer's own calls
        fast.train()
        with precision.autocast():
            out = method.step(fast, x, y)
        opt.zero_grad(set_to_none=True)
        precision.backward_step(out.loss, opt)

    armor_pgd = PGD(threat, steps=steps, keep_best=False)

    def in_eval(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            fast.eval()
            with precision.autocast():
                return fn()
        return run

    variants: Dict[str, Callable[[], Any]] = {
        "clean step": clean_step,
        "hand AT step": hand_at_step,
        "armor AT step": armor_at_step,
        "hand PGD": in_eval(lambda: hand_pgd(fast, x, y, eps, alpha, steps)),
        "armor PGD": in_eval(lambda: armor_pgd(fast, x, y)),
    }
    notes: List[str] = []
    if third_party:
        _add_third_party(variants, notes, fast, x, y, eps, alpha, steps, shape, classes, dev, precision, in_eval)
    times = time_side_by_side(variants, dev, repeats, warmup)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    floor = (steps + 1) * med["clean step"]
    rows = []
    for name, seconds in med.items():
        step = name.endswith("step")
        base = "hand AT step" if step else "hand PGD"
        rows.append({"name": name, "ms": seconds * 1000, "vs_hand": seconds / med[base],
                     "vs_floor": seconds / floor if step and name != "clean step" else None})
    return {"model": model, "data": f"synthetic {tuple(shape)}" if input_shape is not None else dataset,
            "batch": batch, "steps": steps, "eps": eps, "device": str(dev), "device_name": _device_name(dev),
            "threads": torch.get_num_threads(), "precision": precision.name, "channels_last": cl,
            "compile": bool(compile), "repeats": repeats, "torch": torch.__version__, "rows": rows,
            "notes": notes}


def _add_third_party(variants, notes, model, x, y, eps, alpha, steps, shape, classes, dev, precision,
                     in_eval) -> None:
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        variants["torchattacks PGD"] = in_eval(lambda: ta(x, y))
    except Exception as exc:  # not installed, or an incompatible version
        notes.append(f"torchattacks skipped ({type(exc).__name__}: {exc})"[:160])
    try:
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescentPyTorch
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(shape), nb_classes=classes,
                                clip_values=(0.0, 1.0), device_type="gpu" if dev.type == "cuda" else "cpu")
        art_pgd = ProjectedGradientDescentPyTorch(clf, norm=np.inf, eps=eps, eps_step=alpha, max_iter=steps,
                                                  num_random_init=1, batch_size=len(x), verbose=False)
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()  # ART's interface is numpy: the copies are its real cost
        variants["ART PGD"] = in_eval(lambda: art_pgd.generate(x_np, y_np))
    except ImportError:
        notes.append("ART skipped (pip install adversarial-robustness-toolbox)")
    except Exception as exc:
        notes.append(f"ART skipped ({type(exc).__name__}: {exc})"[:160])


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return platform.processor() or platform.machine()


def format_bench(result: Dict[str, Any]) -> str:
    from .reports import format_table

    head = (f"PGD-{result['steps']} (ε={result['eps']:.4g}), {result['model']}, {result['data']}, batch "
            f"{result['batch']}, {result['device']} ({result['device_name']}, {result['threads']} threads), "
            f"{result['precision']}{', channels_last' if result['channels_last'] else ''}"
            f"{', compiled' if result['compile'] else ''}; median of {result['repeats']}, torch {result['torch']}")
    rows = [[r["name"], f"{r['ms']:.2f}", f"{r['vs_hand']:.3f}",
             "" if r["vs_floor"] is None else f"{r['vs_floor']:.3f}"] for r in result["rows"]]
    k1 = result["steps"] + 1
    lines = [head, format_table(["variant", "ms", "× hand", f"× floor ({k1}× clean)"], rows)]
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)


# -- whole trainers at equal settings ------------------------------------------------------------
def compare_trainers(epochs: int = 10, steps: int = 10, batch_size: int = 120, seed: int = 0,
                     out: str = "runs/bench_trainers") -> Dict[str, Any]:
    """ART's AdversarialTrainerMadryPGD vs armor's PGD-AT on digits (SmallCNN, Adam 1e-3, L∞ ε=0.2).

    Same data (armor's 1200-image training split; batch 120 divides it, so both take the same 10 steps per
    epoch: armor drops a ragged last batch, ART keeps it), model, optimizer, batch, ε, step size and steps; the
    time is the training loop alone (armor's ``train_epoch`` calls, no validation; ART's ``fit``), the two
    alternating epoch by epoch. Both models are then tested by armor's PGD-20 on the 397 test images.
    """
    logging.getLogger("art").setLevel(logging.WARNING)
    try:
        from art.defences.trainer import AdversarialTrainerMadryPGD
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        raise UserError("--trainers needs ART: pip install adversarial-robustness-toolbox") from None
    from .config import TrainConfig
    from .eval.robust import evaluate
    from .training import Trainer

    eps = DEFAULT_EPS["digits"]
    cfg = TrainConfig(method="pgd_at", eps=eps, steps=steps, epochs=epochs, batch_size=batch_size, lr=1e-3,
                      optimizer="adam", val_every=epochs, eval_attacks=["pgd"], eval_steps=20, seed=seed,
                      device="cpu", out=out + "/armor")
    trainer = Trainer(cfg, overwrite=True, progress=False)
    data = trainer.data
    torch.manual_seed(seed)
    model = create_model("small_cnn", data.input_shape, 10, data.mean, data.std)
    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                            input_shape=data.input_shape, nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    # one epoch per fit() call, so the two trainers alternate epoch by epoch and share the machine's drift
    art_trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=batch_size, eps=eps,
                                             eps_step=2.5 * eps / steps, max_iter=steps, num_random_init=1)
    x_np, y_np = data.x_train.numpy(), data.y_train.numpy()
    armor_times, art_times = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        armor_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        art_trainer.fit(x_np, y_np)
        art_times.append(time.perf_counter() - start)
    armor_seconds, art_seconds = sum(armor_times), sum(art_times)
    attacks = {"pgd-20": PGD(ThreatModel("linf", eps), steps=20)}
    armor_test = evaluate(trainer.model, data.x_test, data.y_test, attacks)
    art_test = evaluate(model.eval(), data.x_test, data.y_test, attacks)
    return {"epochs": epochs, "steps": steps, "batch_size": batch_size, "eps": eps,
            "armor": {"seconds": armor_seconds, "clean_acc": armor_test.clean_acc,
                      "pgd20_acc": armor_test.acc("pgd-20")},
            "art": {"seconds": art_seconds, "clean_acc": art_test.clean_acc,
                    "pgd20_acc": art_test.acc("pgd-20")},
            "art_over_armor": art_seconds / armor_seconds,
            "art_over_armor_epoch_median": statistics.median(a / b for a, b in zip(art_times, armor_times))}


def format_trainers(r: Dict[str, Any]) -> str:
    from .reports import format_table

    rows = [[name, f"{r[key]['seconds']:.1f}", f"{r[key]['clean_acc']:.1f}", f"{r[key]['pgd20_acc']:.1f}"]
            for name, key in (("armor pgd_at", "armor"), ("ART AdversarialTrainerMadryPGD", "art"))]
    return "\n".join([f"PGD-{r['steps']} AT, {r['epochs']} epochs, digits SmallCNN, batch {r['batch_size']}, "
                      f"L∞ ε={r['eps']:g}, test accuracy in %:",
                      format_table(["trainer", "train s", "clean", "pgd-20"], rows),
                      f"ART / armor training time: {r['art_over_armor']:.2f}× (median per epoch "
                      f"{r['art_over_armor_epoch_median']:.2f}×; epochs alternate between the two)"])
