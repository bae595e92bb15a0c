"""``armor eval``: evaluate a model under attack and write an :class:`~armor.results.EvaluationRecord`.

Three kinds of subject, one evaluation:

- an **armor checkpoint** (``checkpoint``): the model is rebuilt from the checkpoint's own description
  (:class:`~armor.models.ModelSpec`), the data and threat model from its config;
- an **armor export** (``weights=model.safetensors`` written by ``armor export``): the same, from its metadata;
- **your own model** (``model=file.py:factory`` with plain ``weights``, ``data`` and ``eps``): the factory is
  imported because you named it, the weights are read with ``weights_only``, ``mean``/``std`` put a
  normalisation in front of it (attacks stay in [0, 1]) and ``logits_key`` picks logits out of a dict/tuple.

:func:`evaluate_robustness` is the Python form for a model already in memory. Options are an
:class:`~armor.config.EvalConfig`, checked before any work.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..accel import Precision, resolve_amp
from ..attacks import Attack
from ..attacks.suites import adapt_to_data, attack_list, suite_attacks, suite_entries, suite_shortfall
from ..checkpoints import load_model, load_weights, saved_config
from ..config import EvalConfig
from ..data import Dataset, load_dataset
from ..device import pick_device
from ..errors import UserError, opt
from ..io import load_torch_file, read_safetensors, remove_stale_temp_files
from ..models import ModelSpec, build_model
from ..models.user import Normalized, build_user_model, output_adapter, sha256_of
from ..modes import eval_mode
from ..results import EvaluationRecord
from ..threat import ThreatModel, check_budget
from .robust import DEFAULT_DRAWS, evaluate, randomised

log = logging.getLogger("armor")


def attacks_for(threat: ThreatModel, options: EvalConfig) -> Dict[str, Attack]:
    """The attacks ``options`` asks for: its suite (default standard) or its ``--attack`` list."""
    adaptive = {"eot": options.eot, "bpda": options.bpda}
    if options.uses_suite:
        return suite_attacks(options.suite_name, threat, steps=options.steps, queries=options.queries, **adaptive)
    return attack_list(threat, options.attack, steps=options.steps, restarts=options.restarts,
                       step_size=options.step_size, queries=options.queries, loss=options.loss, **adaptive)


def output_path(options: EvalConfig) -> Path:
    """``--out``, else beside the checkpoint: ``eval.json`` for ``best.pt``, ``eval_<name>.json`` for any other
    checkpoint (so evaluations of best.pt, last.pt and best_ema.pt never share a file or a resume state)."""
    if options.out:
        return Path(options.out)
    source = options.checkpoint or options.weights
    if not source:
        return Path("eval.json")
    source = Path(source)
    return source.parent / ("eval.json" if source.name == "best.pt" else f"eval_{source.stem}.json")


def check_output(path: Path) -> None:
    """The record can be written there (checked before any evaluation work)."""
    if path.exists() and not path.is_file():
        raise UserError(f"cannot write {str(path)!r}: it exists and is not a regular file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    probe = folder / f".{path.name}.armor-probe"
    try:  # a real write: permissions, read-only file systems and full disks all show here (root ignores modes)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


@dataclass
class Subject:
    """What is evaluated, on what, under which threat model."""

    model: nn.Module
    data: Dataset
    threat: ThreatModel
    source: Dict[str, Any]
    architecture: str
    method: Optional[str] = None
    title: str = ""
    notes: List[str] = field(default_factory=list)
    surrogate: Optional[nn.Module] = None   # a differentiable twin / surrogate (see attacks/transfer.py)
    surrogate_source: Optional[str] = None


def _threat(options: EvalConfig, norm: str, eps: float, data: Dataset) -> ThreatModel:
    immutable = tuple(sorted({*data.immutable, *options.immutable}))
    if options.norm and options.norm != norm and options.eps is None:
        raise UserError(f"norm {options.norm} differs from the training norm {norm} (ε={eps:.4g}), whose budget means "
                        f"nothing in {options.norm}; give --eps")
    return ThreatModel(options.norm or norm, options.eps if options.eps is not None else eps, data.lower,
                       data.upper, immutable)


def _load_data(cfg: Any, options: EvalConfig) -> Dataset:
    if options.data is not None:  # the user's data: evaluated as given (its test split, or its only split)
        return load_eval_data(options.data, options.data_dir)
    return cfg.load_data(options.data_dir)


def load_eval_data(name: str, data_dir: Optional[str] = None) -> Dataset:
    """Data to evaluate on: a dataset name, a CIFAR-10 folder or an image folder (its test split), an ``.npz`` with
    ``x_test``/``y_test`` (a full dataset) or just ``x``/``y``, or a plain folder of class sub-folders."""
    path = Path(name)
    if path.is_dir():
        from ..data.folder import FolderTensor, folder_splits, is_image_folder

        if not (path / "data_batch_1").is_file() and is_image_folder(path):
            train, test = folder_splits(path, None)
            split = test if test is not None else train  # a train/test folder: its test split; else all of it
            x, y = FolderTensor(split), torch.from_numpy(split.labels)
            return Dataset(path.resolve().name, x[:0], y[:0], x[:0], y[:0], x, y, len(split.classes))
    if str(name).endswith(".npz") and path.is_file():
        import numpy as np

        from ..data.datasets import from_arrays

        try:
            with np.load(path, allow_pickle=False) as archive:
                files = set(archive.files)
                if {"x", "y"} <= files and "x_test" not in files:
                    extra = {k: archive[k] for k in ("lower", "upper", "immutable") if k in files}
                    x, y = archive["x"], archive["y"]
                    return from_arrays(path.stem, x[:1], y[:1], x, y, val_size=0, **extra,
                                       num_classes=int(np.max(y)) + 1 if len(y) else None)
        except ValueError as exc:
            raise UserError(f"cannot read {str(path)!r} as an .npz archive of arrays ({exc})") from None
    return load_dataset(name, data_dir, val_size=0)


def _from_checkpoint(options: EvalConfig, dev: torch.device) -> Subject:
    model, cfg, state = load_model(options.checkpoint, options.device, user_code=options.model)
    data = _load_data(cfg, options)
    spec = state.get("model_spec") or state.get("dataset", {})
    _same_shape(data, spec.get("input_shape"), "the checkpoint's model")
    meta = state.get("dataset", {})
    if options.data is None:  # the run's own box and immutable features
        data.lower, data.upper = meta.get("lower", data.lower), meta.get("upper", data.upper)
        data.immutable = tuple(meta.get("immutable", data.immutable))
    threat = _threat(options, cfg.norm, cfg.resolved_eps(), data)
    return Subject(model, data, threat, {"checkpoint": str(options.checkpoint), "epoch": state.get("epoch"),
                                         "method": cfg.method}, cfg.model, cfg.method,
                   f"{data.name} {cfg.model} ({cfg.method})")


def _export_model(path: str, user_code: Optional[str], dev: torch.device) -> Tuple[nn.Module, ModelSpec, Dict]:
    """(model, its spec, the export's metadata) from an ``armor export`` file."""
    tensors, meta = read_safetensors(path)
    spec = ModelSpec.from_dict(meta["model_spec"])
    model = build_model(spec, user_code, f"export {path!r}").to(dev)
    load_weights(model, tensors, path)
    return model, spec, meta


def _from_export(options: EvalConfig, dev: torch.device) -> Subject:
    model, spec, meta = _export_model(options.weights, options.model, dev)
    cfg = saved_config({"config": meta["config"], "armor_version": meta.get("armor_version")})
    data = _load_data(cfg, options)
    _same_shape(data, spec.input_shape, "the exported model")
    ds = meta.get("dataset", {})
    if options.data is None:
        data.lower, data.upper = ds.get("lower", data.lower), ds.get("upper", data.upper)
        data.immutable = tuple(ds.get("immutable", data.immutable))
    threat = _threat(options, cfg.norm, cfg.resolved_eps(), data)
    return Subject(model.eval(), data, threat, {"weights": str(options.weights), "epoch": meta.get("epoch"),
                                                "method": cfg.method}, spec.name, cfg.method,
                   f"{data.name} {spec.name} ({cfg.method})")


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Weights of a model of your own: a ``.safetensors`` file, or a ``.pt`` state dict (or a dict holding one under
    ``state_dict`` / ``model``), read with ``weights_only=True``."""
    if str(path).endswith(".safetensors"):
        return read_safetensors(path)[0]
    state = load_torch_file(path, what="weights")
    from ..io import is_checkpoint

    if is_checkpoint(state):
        raise UserError(f"{path!r} is an armor checkpoint; pass it as {opt('checkpoint', path)}")
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path!r} is not a state dict (a mapping of parameter names to tensors)")
    return state


def _user_model(reference: str, factory_options: Dict[str, Any], weights: Optional[str], options: EvalConfig,
                features: bool, dev: torch.device) -> nn.Module:
    """A model of your own (``FILE.py:FACTORY`` with optional weights), with ``options``' logits key and
    normalisation, in eval mode on ``dev``."""
    module = build_user_model(reference, factory_options)
    if weights is not None:
        try:
            module.load_state_dict(read_state_dict(weights))
        except RuntimeError as exc:
            raise UserError(f"the weights in {weights!r} do not fit {reference} "
                            f"({' '.join(str(exc).split())[:200]})") from None
    model: nn.Module = output_adapter(module, options.logits_key)
    if options.mean is not None:
        model = Normalized(model, options.mean, options.std, features=features)
    return model.to(dev).eval()


def _from_user_model(options: EvalConfig, dev: torch.device) -> Subject:
    data = load_eval_data(options.data, options.data_dir)
    model = _user_model(options.model, options.model_options, options.weights, options, not data.is_images, dev)
    threat = _threat(options, "linf", options.eps, data)
    source = {"model": options.model, "model_sha256": sha256_of(options.model), "weights": options.weights,
              "mean": options.mean, "std": options.std, "logits_key": options.logits_key}
    return Subject(model, data, threat, source, options.model, None, f"{data.name} {options.model}")


def _same_shape(data: Dataset, expected: Optional[Sequence[int]], what: str) -> None:
    if expected is not None and list(data.input_shape) != list(expected):
        raise UserError(f"data {data.name!r} has inputs {tuple(data.input_shape)}, but {what} expects "
                        f"{tuple(expected)}")


def subject_of(options: EvalConfig) -> Subject:
    """Build what ``options`` asks to evaluate (runs user code only if ``options.model`` names it)."""
    dev = pick_device(options.device)
    from ..config import _is_armor_export

    if options.checkpoint is not None:
        subject = _from_checkpoint(options, dev)
    elif _is_armor_export(options.weights):
        subject = _from_export(options, dev)
    else:
        subject = _from_user_model(options, dev)
    if options.surrogate is not None:
        subject.surrogate, subject.surrogate_source = load_surrogate(options, subject.data, dev), options.surrogate
        subject.source["surrogate"] = options.surrogate
    return subject


def load_surrogate(options: EvalConfig, data: Dataset, dev: torch.device) -> nn.Module:
    """``options.surrogate``: a ``FILE.py:FACTORY`` (with ``surrogate_weights``/``surrogate_options``, and the
    model's ``mean``/``std``/``logits_key``), an armor export or an armor checkpoint, in eval mode on ``dev``."""
    from ..config import _is_armor_export
    from ..models.user import is_reference

    ref = options.surrogate
    if is_reference(ref):
        return _user_model(ref, options.surrogate_options, options.surrogate_weights, options, not data.is_images,
                           dev)
    if _is_armor_export(ref):
        model, spec, _ = _export_model(ref, None, dev)
        expected = spec.input_shape
    else:
        model, _, state = load_model(ref, options.device)
        expected = (state.get("model_spec") or state.get("dataset", {})).get("input_shape")
    _same_shape(data, expected, f"the surrogate {ref!r}")
    return model.eval()


def check_surrogate(surrogate: nn.Module, x: Any, device: torch.device, classes: int) -> None:
    """The surrogate takes the model's inputs and predicts as many classes (a one-line ``UserError`` if not)."""
    with torch.no_grad(), eval_mode(surrogate):
        try:
            out = surrogate(x[:2].to(device))
        except Exception as exc:  # the user's module fails on these inputs: one line
            raise UserError(f"the surrogate fails on the model's inputs {tuple(x.shape[1:])}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"the surrogate returns {shape}, not logits shaped (N, classes)")
    if int(out.shape[1]) != classes:
        raise UserError(f"the surrogate predicts {int(out.shape[1])} classes but the model {classes}; a surrogate "
                        f"must share the model's classes")


def _split_of(data: Dataset, options: EvalConfig) -> Tuple[Any, torch.Tensor, int]:
    x, y = (data.x_test, data.y_test) if options.split == "test" else (data.x_val, data.y_val)
    if len(x) == 0:
        raise UserError(f"data {data.name!r} has no {options.split} split")
    return x, y, len(x)


@torch.no_grad()
def _classes(model: nn.Module, x: Any, device: torch.device, expected: Optional[int], y: torch.Tensor) -> int:
    with eval_mode(model):
        out = model(x[:2].to(device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"the model returns {shape}, not logits shaped (N, classes); if it returns a dict or tuple, "
                        f"name its logits with {opt('logits_key', 'NAME')}")
    classes = int(out.shape[1])
    if expected is not None and classes != expected:
        raise UserError(f"the model has {classes} outputs but num_classes is {expected}")
    if len(y) and int(y.max()) >= classes:
        raise UserError(f"the data has label {int(y.max())} but the model predicts only {classes} classes")
    return classes


def eval_draws(model: nn.Module, x: Any, options: EvalConfig) -> int:
    """How often every point is classified: ``eot_draws`` as given; else 20 for a randomised model (``eot`` > 1, or
    two forward passes over the same examples that differ), 1 for a deterministic one."""
    if options.eot_draws is not None:
        return options.eot_draws
    if options.eot > 1:
        return DEFAULT_DRAWS
    return DEFAULT_DRAWS if randomised(model, _in_memory(x, 32)) else 1


def run_evaluation(subject: Subject, options: EvalConfig, path: Optional[Path], dist: Any = None) -> EvaluationRecord:
    """Evaluate ``subject`` as ``options`` says; the record is written to ``path`` (None: not written). With
    ``dist`` (torchrun) the ranks share the evaluation; only rank 0 runs the extras and writes the record."""
    model, data, threat = subject.model, subject.data, subject.threat
    reference = None
    if options.corruption_reference:  # read and checked before any work
        from .corruptions import load_reference

        reference = load_reference(options.corruption_reference, dataset=data.name, split=options.split)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    x, y, split_size = _split_of(data, options)
    if options.n is not None:
        x, y = (x.rows(slice(0, options.n)) if hasattr(x, "rows") else x[:options.n]), y[:options.n]
    classes = _classes(model, x, dev, options.num_classes, y)
    named, notes = adapt_to_data(attacks_for(threat, options), data.input_shape, classes)
    adaptive: Dict[str, Any] = {"eot": options.eot, "bpda": options.bpda}
    if options.bpda:  # fail now, with one line, rather than after the clean pass; what ops intercepted, recorded
        from ..attacks.adaptive import check_adaptive, parse_bpda

        spec = parse_bpda(options.bpda)
        adaptive["bpda"] = spec.describe()
        adaptive.update(check_adaptive(model, _in_memory(x, 2).to(dev), spec))
    surrogate = subject.surrogate
    if surrogate is not None:
        check_surrogate(surrogate, x, dev, classes)
        before = set(named)
        named = _with_surrogate(named, subject, options)
        adaptive["surrogate"] = {"source": subject.surrogate_source, "mode": options.surrogate_mode or "twin",
                                 "attacks": [label for label in named if label not in before]}
    x, y = x.to(dev), y.to(dev)  # a streamed image folder stays lazy: batches are decoded as the evaluation goes
    progress = sys.stderr.isatty() if options.progress is None else options.progress
    precision = Precision(dev, resolve_amp(options.amp, dev)) if options.amp != "off" else None
    amp = precision.autocast() if precision is not None else contextlib.nullcontext()
    mode = "ensemble" if options.uses_suite else "independent"
    state = path.with_name(path.name + ".state.json") if path is not None else None
    with amp:
        draws = eval_draws(model, x, options)
        result = evaluate(model, x, y, named, batch_size=options.batch_size, mode=mode, progress=progress,
                          state_path=state, seed=options.seed, draws=draws, dist=dist)
    suite = options.suite_name
    reduced = suite_shortfall(suite, options.steps, options.queries, norm=threat.norm) if suite else []
    reduced += [n for n in notes if "dropped" in n]
    if len(x) < split_size:
        reduced.append(f"{len(x)} of the {split_size} {options.split} examples")
    budget = {"steps": options.steps, "restarts": options.restarts, "step_size": options.step_size,
              "queries": options.queries, "examples": len(x), "split_size": split_size}
    if suite:
        budget["suite"] = [(label, name, opts) for label, name, opts in suite_entries(suite, threat.norm)]
    record = EvaluationRecord(
        source=subject.source, dataset=data.name, split=options.split, architecture=subject.architecture,
        threat=threat.to_dict(), suite=suite, attacks={label: repr(a) for label, a in named.items()},
        budget={k: v for k, v in budget.items() if v is not None}, reduced=reduced, seed=options.seed,
        adaptive={**adaptive, "eot_draws": draws}, result=result, substitutions=notes)
    if dist is not None and not dist.is_main:
        return record  # the extras and the file are rank 0's
    with amp:
        level = options.check_level
        if level is not None:
            from .checks import LEVELS, run_checks

            budget = dict(LEVELS[level])
            n = options.check_n or budget.pop("n")
            budget.pop("n", None)
            record.checks = run_checks(model, _in_memory(x, n), y[:n], threat, n=n, **budget, seed=options.seed,
                                       eot=options.eot, bpda=options.bpda, surrogate=surrogate,
                                       progress=progress)
            record.checks["level"] = level
        if options.sweep:
            from .sweep import eps_sweep, write_sweep

            record.sweep = eps_sweep(model, x, y, threat, options.sweep, lambda t: _with_surrogate(adapt_to_data(
                attacks_for(t, options), data.input_shape, classes)[0], subject, options),
                batch_size=options.batch_size, seed=options.seed)
            if path is not None:
                write_sweep(record.sweep, path.with_name(path.stem + "_sweep"), subject.title)
        if options.corruptions:
            from .corruptions import evaluate_corruptions

            if not data.is_images:
                raise UserError("corruptions are image transformations; these inputs are feature vectors")
            record.corruptions = evaluate_corruptions(model, _in_memory(x, None), y, batch_size=options.batch_size,
                                                      seed=options.seed)
            if reference is not None:
                from .corruptions import reference_mce

                record.corruptions["mce"] = reference_mce(record.corruptions, reference)
    if path is not None:
        record.write(path)
    return record


def _with_surrogate(attacks: Dict[str, Attack], subject: Subject, options: EvalConfig) -> Dict[str, Attack]:
    """``attacks``, and with a surrogate each gradient attack again driven by it (``surrogate_mode``)."""
    if subject.surrogate is None:
        return attacks
    from ..attacks.transfer import add_surrogate_attacks

    return add_surrogate_attacks(attacks, subject.surrogate, options.surrogate_mode or "twin",
                                 subject.surrogate_source)


def _in_memory(x: Any, n: Optional[int]) -> torch.Tensor:
    """The first ``n`` rows (all with None) as a real tensor (a streamed split is decoded)."""
    if hasattr(x, "rows"):
        return x[slice(0, n)]
    return x if n is None else x[:n]


def evaluate_checkpoint(checkpoint: Optional[str | Path] = None, config: Optional[EvalConfig] = None,
                        **options: Any) -> EvaluationRecord:
    """Evaluate an armor checkpoint (or, with ``model=``/``weights=``, any model) and write its record
    (``eval.json`` beside it, or ``out``).

    ``options`` are :class:`~armor.config.EvalConfig` fields (``suite="standard"``, ``attack=["pgd"]``, ``steps``,
    ``n``, ``eps``, ``checks``, ...). A suite runs as a shrinking-mask ensemble (cumulative per-attack numbers); an
    ``attack`` list runs every attack on every clean-correct example (standalone numbers). Progress is saved after
    every batch in ``<out>.state.json``; the same evaluation run again resumes from it.
    """
    if config is not None and options:
        raise TypeError("pass either an EvalConfig or keyword options, not both")
    if config is None:
        config = EvalConfig(checkpoint=None if checkpoint is None else str(checkpoint), **options)
    elif checkpoint is not None:
        config.checkpoint = str(checkpoint)
    config.check_source()
    path = output_path(config)
    from .. import distributed, locks

    ctx = distributed.setup(config.device)  # torchrun: every rank evaluates its slice, rank 0 writes
    try:
        ctx.run_on_main(lambda: check_output(path))
        subject = subject_of(config)
        check_budget(subject.threat)
        for eps in config.sweep or ():  # every budget checked before any work
            check_budget(subject.threat.scaled(eps), "sweep eps")
        lock = path.with_name(f".{path.name}.armor.lock")
        ctx.run_on_main(lambda: locks.acquire(lock, f"evaluation output {str(path)!r}"))
        try:
            ctx.run_on_main(lambda: remove_stale_temp_files(path.parent, prefix=f".{path.name}"))
            return run_evaluation(subject, config, path, dist=ctx if ctx.enabled else None)
        finally:
            if ctx.is_main:
                locks.release(lock)
    finally:
        ctx.close()


def _surrogate_mode(mode: Optional[str]) -> Optional[str]:
    from ..attacks.transfer import SURROGATE_MODES

    if mode is not None and mode not in SURROGATE_MODES:
        raise UserError(f"surrogate_mode must be one of {', '.join(SURROGATE_MODES)}, got {mode!r}")
    return mode


def evaluate_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                        suite: Optional[str] = "standard", attacks: Optional[List[str]] = None,
                        normalize: Optional[Tuple[Sequence[float], Sequence[float]]] = None,
                        logits_key: Optional[str | int] = None, n: Optional[int] = None, batch_size: int = 256,
                        checks: bool = True, seed: int = 0, out: Optional[str | Path] = None,
                        progress: Optional[bool] = None, name: str = "data",
                        surrogate: Optional[nn.Module | str] = None, **options: Any) -> EvaluationRecord:
    """How robust is this model? One call, AutoAttack-style: ``evaluate_robustness(model, x, y, threat)``.

    ``model`` takes inputs in ``threat``'s box ([0, 1] for images) — pass ``normalize=(mean, std)`` if it expects
    normalised inputs, and ``logits_key`` if it returns a dict or a tuple. Runs ``suite`` (default standard:
    APGD-CE, APGD-T, Square as a worst case; or ``attacks=["pgd", ...]`` each alone) and the gradient-masking
    checks; further ``options`` are :class:`~armor.config.EvalConfig` fields (``steps``, ``queries``, ``eot``, ...).
    ``name`` is the data's name in the record. ``surrogate`` (an ``nn.Module`` taking the same inputs as ``model``,
    wrapped with the same ``normalize``/``logits_key``; or a path / ``FILE.py:FACTORY`` as ``armor eval --surrogate``
    takes) adds each gradient attack again driven by it (``surrogate_mode="twin"`` or ``"transfer"``) and a transfer
    check (see :mod:`armor.attacks.transfer`).
    Returns the :class:`~armor.results.EvaluationRecord` (``print(record)`` shows the table; ``record.result`` has
    per-example results; ``record.to_json()``); with ``out`` it is also written there.
    """
    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(threat, ThreatModel):
        raise UserError(f"threat must be an armor.ThreatModel, e.g. ThreatModel('linf', 8/255), got {threat!r}")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if len(x) != len(y):
        raise UserError(f"x has {len(x)} examples but y has {len(y)} labels; they must match")
    if x.dim() not in (2, 4):
        raise UserError(f"x must be images (N, C, H, W) or feature vectors (N, F), got shape {tuple(x.shape)}")
    if not threat.in_box(x, tol=1e-6):
        box = "[0, 1]" if threat.default_box else "the threat model's box"
        hint = "; if your model expects normalised inputs pass normalize=(mean, std) and unnormalised x" \
            if threat.default_box else ""
        raise UserError(f"x must lie in {box} (got values in [{x.min().item():.3g}, {x.max().item():.3g}]){hint}")
    in_memory = isinstance(surrogate, nn.Module)
    if surrogate is not None and not in_memory and not isinstance(surrogate, (str, Path)):
        raise UserError(f"surrogate must be a torch.nn.Module, a checkpoint path or FILE.py:FACTORY, got "
                        f"{type(surrogate).__name__}")
    mode = options.pop("surrogate_mode", None) if in_memory else None
    if not in_memory and surrogate is not None:
        options["surrogate"] = str(surrogate)
    config = EvalConfig(suite=None if attacks else suite, attack=attacks, n=n,
                        batch_size=batch_size, checks=checks, seed=seed, out=None if out is None else str(out),
                        progress=progress, **options)
    if in_memory:
        if config.bpda is not None:
            raise UserError(f"give either {opt('bpda', None)} or {opt('surrogate', None)}, not both")
        config.surrogate_mode = _surrogate_mode(mode)
    wrapped: nn.Module = output_adapter(model, None if logits_key is None else str(logits_key))
    if normalize is not None:
        mean, std = normalize
        wrapped = Normalized(wrapped, mean, std, features=x.dim() == 2)
    dev = next(iter(model.parameters()), torch.empty(0)).device
    wrapped = wrapped.to(dev)
    data = Dataset(name, x[:0], y[:0], x[:0], y[:0], x, y.long(), 0, lower=threat.lower, upper=threat.upper,
                   immutable=threat.immutable)
    subject = Subject(wrapped, data, threat, {"model": type(model).__name__, "in_memory": True},
                      type(model).__name__, None)
    if in_memory:
        twin: nn.Module = output_adapter(surrogate, None if logits_key is None else str(logits_key))
        if normalize is not None:
            twin = Normalized(twin, normalize[0], normalize[1], features=x.dim() == 2)
        subject.surrogate, subject.surrogate_source = twin.to(dev), type(surrogate).__name__
    elif surrogate is not None:
        subject.surrogate, subject.surrogate_source = load_surrogate(config, data, dev), str(surrogate)
    if subject.surrogate is not None:
        subject.source["surrogate"] = subject.surrogate_source
    with eval_mode(model):
        return run_evaluation(subject, config, None if out is None else Path(out))
