"""Run configuration: every option of ``armor train`` and ``armor eval``, each defined once.

A field is declared with :func:`option` — its group, default, check and help text in one place. From these
declarations come the YAML validation (:meth:`TrainConfig.validate`), the ``armor train`` / ``armor eval`` /
``armor sweep`` flags and their help (:mod:`armor.cli` iterates :func:`fields_of`), and the error messages.

Rules the validation enforces:

- **Nothing is dropped.** An unknown key is an error (with a close-match suggestion). A method option the user
  set (``steps``, ``step_size``, ``clean_weight``, ``beta``, ``replays`` or a ``method_options`` entry) that the
  chosen method does not take is an error; their defaults are ``None`` ("the method's own default"), so a
  default never is. Options whose switch is off (``momentum`` with Adam, guard settings with the guard off,
  ``eval_steps`` with no iterative final-test attack, ...) are errors when set to anything but their default.
- **Parsed once.** ε (``8/255``), norms, numbers and names are parsed here; :attr:`TrainConfig.threat` is the
  one :class:`~armor.threat.ThreatModel` the run uses.
- **Flat YAML.** Recipes stay flat (``eps: 0.3``, ``method: pgd_at``); the groups organise help and docs.

This module imports no torch at import time (``armor --help`` and argument errors stay fast); validation
asks the registries lazily.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from . import catalog
from .budgets import NORMS, default_eps, parse_eps, parse_norm
from .errors import UserError, did_you_mean, opt
from .io import check_file

# -- checks: how a value is read and what is allowed -------------------------------------------------------------
Lazy = Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Check:
    """``parse(name, value) -> value`` (raises ``UserError``) and ``describe()`` for help texts."""

    parse: Callable[[str, Any], Any]
    describe: Callable[[], str]
    kind: str = "value"              # value | bool | switch | list | mapping: how the flag reads it
    registry: bool = False           # a registry name (or a user's FILE.py:FACTORY): checked after every other field


def _int_check(minimum: int) -> Check:
    def parse(name: str, value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
        return value
    return Check(parse, lambda: f"integer ≥ {minimum}")


def _number_check(low: Optional[float] = None, high: Optional[float] = None, low_open: bool = False,
                  below: Optional[float] = None) -> Check:
    lo = "" if low is None else (f"> {low:g}" if low_open else f"≥ {low:g}")
    hi = "" if high is None else f"≤ {high:g}"
    hi = f"< {below:g}" if below is not None else hi
    text = "number " + " and ".join(p for p in (lo, hi) if p)

    def parse(name: str, value: Any) -> float:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        bad = not math.isfinite(number) or (low is not None and (number <= low if low_open else number < low)) \
            or (high is not None and number > high) or (below is not None and number >= below)
        if bad:
            raise UserError(f"{name} must be a {text}, got {value!r}")
        return number
    return Check(parse, lambda: text)


def _eps_check() -> Check:
    return Check(lambda name, value: parse_eps(value, name), lambda: "a budget such as 0.3 or 8/255")


def _choice_check(choices: Sequence[str] | Lazy, what: str) -> Check:
    def names() -> List[str]:
        return list(choices() if callable(choices) else choices)

    def parse(name: str, value: Any) -> str:
        allowed = names()
        if not isinstance(value, str) or value not in allowed:
            raise UserError(f"unknown {what} {value!r}{did_you_mean(str(value), allowed)}; "
                            f"choose one of: {', '.join(allowed)}")
        return value
    return Check(parse, lambda: "one of: " + ", ".join(names()), registry=callable(choices))


def _text_check(describe: str = "text") -> Check:
    def parse(name: str, value: Any) -> str:
        if isinstance(value, (dict, list, bool)) or value is None:
            raise UserError(f"{name} must be {describe}, got {value!r}")
        return str(value)
    return Check(parse, lambda: describe)


_TRUE, _FALSE = ("true", "on", "yes", "1"), ("false", "off", "no", "0")


def _bool_check() -> Check:
    def parse(name: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise UserError(f"{name} must be true or false, got {value!r}")
    return Check(parse, lambda: "true or false", kind="bool")


def parse_switch(name: str, value: Any) -> Any:
    """``auto``, or a yes/no value written as YAML or a flag writes it."""
    if isinstance(value, bool) or value == "auto":
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UserError(f"{name} must be auto, true or false, got {value!r}")


def _switch_check() -> Check:
    return Check(parse_switch, lambda: "auto, true or false", kind="switch")


AMP_MODES = ("auto", "off", "bf16", "fp16")


def parse_amp(name: str, value: Any) -> str:
    """``auto | off | bf16 | fp16`` (``true`` → bf16, ``false``/``none`` → off)."""
    text = {True: "bf16", False: "off", None: "auto"}.get(value, value) if isinstance(value, (bool, type(None))) \
        else str(value).strip().lower()
    text = {"on": "bf16", "true": "bf16", "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
            "false": "off", "none": "off", "no": "off"}.get(text, text)
    if text not in AMP_MODES:
        raise UserError(f"{name} must be one of {', '.join(AMP_MODES)}, got {value!r}")
    return text


def _mapping_check() -> Check:
    def parse(name: str, value: Any) -> Dict[str, Any]:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):  # KEY=VALUE flags
            out: Dict[str, Any] = {}
            for item in value:
                key, sep, text = item.partition("=")
                if not sep or not key:
                    raise UserError(f"{name} takes KEY=VALUE pairs, got {item!r}")
                out[key] = yaml.safe_load(text) if text else None
            value = out
        if not isinstance(value, dict):
            raise UserError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    return Check(parse, lambda: "KEY=VALUE pairs (YAML: a mapping)", kind="mapping")


def _names_check(choices: Lazy, what: str, eps: bool = False) -> Check:
    one = _eps_check() if eps else _choice_check(choices, what)

    def parse(name: str, value: Any) -> List[Any]:
        items = [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise UserError(f"{name} must be a list of {one.describe()}, got {value!r}")
        return [one.parse(name, v) for v in items]
    return Check(parse, lambda: "one or more of: " + ", ".join(choices()) if not eps else "budgets such as 0.1 8/255",
                 kind="list", registry=not eps)


def _index_list_check() -> Check:
    def parse(name: str, value: Any) -> List[int]:
        items = [value] if isinstance(value, (int, str)) else value
        if not isinstance(items, (list, tuple)):
            raise UserError(f"{name} must be a list of feature indices, got {value!r}")
        out = []
        for item in items:
            text = str(item).strip()
            if isinstance(item, bool) or not text.isdigit():
                raise UserError(f"{name} must hold feature indices (integers ≥ 0), got {item!r}")
            out.append(int(text))
        return out
    return Check(parse, lambda: "feature indices (integers ≥ 0)", kind="list")


def _steps_list_check() -> Check:
    def parse(name: str, value: Any) -> List[int]:
        items = [value] if isinstance(value, (int, str)) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise UserError(f"{name} must be a list of PGD steps (integers ≥ 1, increasing), got {value!r}")
        out = []
        for item in items:
            text = str(item).strip()
            if isinstance(item, bool) or not text.isdigit() or int(text) < 1:
                raise UserError(f"{name} must hold PGD steps (integers ≥ 1), got {item!r}")
            out.append(int(text))
        if any(b <= a for a, b in zip(out, out[1:])):
            raise UserError(f"{name} must increase (each fallback safer than the one before), got {out}")
        return out
    return Check(parse, lambda: "PGD steps, increasing integers ≥ 1", kind="list")


def _model_check() -> Check:
    registered = _choice_check(_models, "model")

    def parse(name: str, value: Any) -> str:
        if isinstance(value, str) and ":" in value:
            from .models.user import check_reference

            return check_reference(value)
        return registered.parse(name, value)
    return Check(parse, lambda: registered.describe() + ", or FILE.py:FACTORY", registry=True)


def _is_armor_export(weights: Optional[str]) -> bool:
    """A ``.safetensors`` file written by ``armor export`` (its metadata describes the model and data)."""
    if weights is None or not str(weights).endswith(".safetensors") or not Path(weights).is_file():
        return False
    import json
    import struct

    try:
        with open(weights, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(min(size, 50_000_000)))
    except (OSError, ValueError, struct.error):
        return False
    return "model_spec" in (header.get("__metadata__") or {})


def _floats_check() -> Check:
    def parse(name: str, value: Any) -> List[float]:
        items = [value] if isinstance(value, (int, float, str)) else value
        try:
            out = [float(v) for v in items]
        except (TypeError, ValueError):
            raise UserError(f"{name} must be numbers (one per channel or feature), got {value!r}") from None
        if not out or not all(math.isfinite(v) for v in out):
            raise UserError(f"{name} must be finite numbers, got {value!r}")
        return out
    return Check(parse, lambda: "numbers, one per channel (or feature)", kind="list")


def _device_check() -> Check:
    from .device import DEVICES, check_device_name

    return Check(lambda name, value: check_device_name(value), lambda: ", ".join(DEVICES))


# the names a field accepts, from the torch-free catalog (the registries themselves import torch)
def _models() -> List[str]:
    return catalog.names("model")


def _methods() -> List[str]:
    return catalog.names("method")


def _attacks() -> List[str]:
    return catalog.names("attack")


def _schedules() -> List[str]:
    return catalog.names("schedule")


def _augments() -> List[str]:
    return ["auto", *catalog.names("augmentation")]


def _suites() -> List[str]:
    return catalog.names("suite")


def _losses() -> List[str]:
    return catalog.names("loss")


def option(default: Any, group: str, help: str, check: Check, *, optional: bool = False,
           flag: Optional[Dict[str, Any]] = None) -> Any:
    """A config field: default, group, help and check in one declaration. ``optional``: ``None`` is allowed
    (and means "not set"). ``flag``: extra argparse settings for its command-line flag."""
    meta = {"group": group, "help": help, "check": check, "optional": optional or default is None,
            "flag": flag or {}}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def fields_of(cls: type) -> List[dataclasses.Field]:
    """The declared options of a config class, in declaration order."""
    return [f for f in fields(cls) if "check" in f.metadata]


def _validate_fields(obj: Any) -> None:
    # the fields that need no registry first: a mistake in one of them is reported before torch is imported
    for f in sorted(fields_of(obj), key=lambda f: f.metadata["check"].registry):
        value = getattr(obj, f.name)
        if value is None and f.metadata["optional"]:
            continue
        setattr(obj, f.name, f.metadata["check"].parse(f.name, value))


def _default(cls: type, name: str) -> Any:
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _changed(obj: Any, name: str) -> bool:
    return getattr(obj, name) != _default(type(obj), name)


def _from_mapping(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise UserError(f"{where} must hold a mapping of keys to values, got {type(values).__name__}")
    known = [f.name for f in fields_of(cls)]
    for key in values:
        if key not in known:
            raise UserError(f"unknown config key {key!r}{did_you_mean(str(key), known)}; allowed keys: "
                            f"{', '.join(sorted(known))}")
    return cls(**dict(values))


GROUPS = {
    "data": "data", "model": "model", "threat": "threat model", "method": "training method",
    "optimisation": "optimisation and LR schedule", "validation": "validation and robust overfitting",
    "guards": "guards", "evaluation": "final test evaluation", "speed": "speed", "run": "run",
    "source": "what to evaluate", "attacks": "attacks", "adaptive": "adaptive attacks", "extras": "extra measurements",
}

#: the config keys ``armor sweep`` may vary
SWEEP_PARAMS = ("beta", "eps", "clean_weight", "method", "replays", "steps")

#: the method options that have a config key of their own (the rest go in ``method_options``)
METHOD_OPTION_KEYS = ("steps", "step_size", "clean_weight", "beta", "replays")


@dataclass
class TrainConfig:
    # -- data
    dataset: str = option("digits", "data", "dataset name (digits, mnist, fashion_mnist, cifar10), an .npz file "
                          "(x_train, y_train, x_test, y_test) or a CIFAR-10 python folder", _text_check())
    data_dir: Optional[str] = option(None, "data", "folder holding mnist.npz etc. (default $ARMOR_DATA_DIR, ./data, "
                                     "../shared/data)", _text_check("a folder"))
    train_size: Optional[int] = option(None, "data", "train on a fixed subset of this many examples", _int_check(1))
    val_size: Optional[int] = option(None, "data", "validation examples held out of the training set (default: "
                                     "200 for digits, else 1000)", _int_check(0))
    test_size: Optional[int] = option(None, "data", "test on a fixed subset of this many examples", _int_check(1))
    num_classes: Optional[int] = option(None, "data", "classes of an .npz dataset (default: from its labels, which "
                                        "must then be the contiguous 0..C-1)", _int_check(2))
    augment: str = option("auto", "data", "training augmentation (auto: crop+flip for 32×32 images, else none)",
                          _choice_check(_augments, "augmentation"))
    image_size: Optional[int] = option(None, "data", "image folders: resize the shorter side to this and centre-crop "
                                       "to a square (default: the images' own size, which must all match)",
                                       _int_check(2))
    memory_limit_mb: float = option(4096.0, "data", "image folders larger than this when decoded are streamed from "
                                    "disk instead of held in memory", _number_check(0.0, low_open=True))
    workers: int = option(4, "data", "worker processes decoding a streamed image folder (0 = in the training "
                          "process)", _int_check(0))
    # -- model
    model: str = option("small_cnn", "model", "architecture: a registered one, or your own as path/to/file.py:factory "
                        "or package.module:factory (a class or function returning an nn.Module)", _model_check())
    model_options: Dict[str, Any] = option({}, "model", "options of the architecture (e.g. width=64)",
                                           _mapping_check())
    # -- threat model
    norm: str = option("linf", "threat", "norm of the perturbation budget",
                       Check(lambda name, value: parse_norm(value), lambda: ", ".join(NORMS)))
    eps: Any = option(None, "threat", "perturbation budget in [0,1] input units (default: the dataset's usual one: "
                      "cifar10 8/255, mnist 0.3, fashion_mnist 0.1, digits 0.2; for l1 cifar10 12, mnist 10, "
                      "digits 2)", _eps_check())
    eps_warmup: int = option(0, "threat", "epochs over which ε ramps up linearly from 0 (adversarial methods)",
                             _int_check(0))
    immutable: List[int] = option([], "threat", "feature indices an attacker cannot change (feature-vector data; "
                                  "added to the data file's own)", _index_list_check())
    # -- training method
    method: str = option("pgd_at", "method", "training method (armor list shows each one's options)",
                         _choice_check(_methods, "method"))
    steps: Optional[int] = option(None, "method", "steps of the inner attack", _int_check(1))
    step_size: Any = option(None, "method", "step of the inner attack (kept as a fraction of ε under eps_warmup)",
                            Check(lambda name, value: parse_eps(value, name),
                                  lambda: "a positive number such as 0.01 or 2/255"))
    clean_weight: Optional[float] = option(None, "method", "weight w of the clean loss in (1-w)·CE(adv) + w·CE(clean)",
                                           _number_check(0.0, 1.0))
    beta: Optional[float] = option(None, "method", "weight of the robust term (larger = more robust, less accurate)",
                                   _number_check(0.0))
    replays: Optional[int] = option(None, "method", "replays m of each minibatch; divide epochs by m for equal cost",
                                    _int_check(1))
    method_options: Dict[str, Any] = option({}, "method", "other options of the method, e.g. clamp_start=false "
                                            "(fgsm_rs), w_adv=1 (dummy)", _mapping_check())
    # -- optimisation
    epochs: int = option(30, "optimisation", "training epochs", _int_check(1))
    batch_size: int = option(128, "optimisation", "batch size (the global batch under torchrun)", _int_check(1))
    optimizer: str = option("adam", "optimisation", "optimizer", _choice_check(("sgd", "adam"), "optimizer"))
    lr: float = option(1e-3, "optimisation", "base learning rate", _number_check(0.0, low_open=True))
    momentum: float = option(0.9, "optimisation", "SGD momentum (sgd only)", _number_check(0.0, 1.0))
    weight_decay: float = option(0.0, "optimisation", "weight decay", _number_check(0.0))
    schedule: str = option("constant", "optimisation", "LR schedule", _choice_check(_schedules, "schedule"))
    nan_policy: str = option("stop", "optimisation", "on a NaN/Inf loss: stop the run, or skip the step",
                             Check(lambda name, value: _nan_policy(value), lambda: "stop or skip"))
    # -- validation and robust overfitting
    val_every: int = option(1, "validation", "robust validation every N epochs", _int_check(1))
    val_steps: int = option(10, "validation", "PGD steps of the robust validation", _int_check(1))
    best_by: str = option("auto", "validation", "which validation accuracy picks best.pt (auto: robust for "
                          "adversarial methods, clean for standard; last: the last epoch, for short runs and sweeps "
                          "whose validation peaks by chance in the first epochs)",
                          Check(lambda name, value: _best_by(value), lambda: "auto, robust, clean or last"))
    val_subset: Optional[int] = option(None, "validation", "validate on the first N validation examples only",
                                       _int_check(1))
    test_every: int = option(0, "validation", "also log test clean/PGD accuracy every N epochs (0 = never)",
                             _int_check(0))
    test_subset: Optional[int] = option(None, "validation", "... on the first N test examples (needs test_every)",
                                        _int_check(1))
    early_stop_patience: int = option(0, "validation", "stop after N validations without a better best.pt "
                                      "(0 = never)", _int_check(0))
    ema_decay: float = option(0.0, "validation", "keep an EMA of the weights (e.g. 0.999) as a candidate, "
                              "best_ema.pt (0 = off)", _number_check(0.0, below=1.0))
    swa_start: int = option(0, "validation", "keep an SWA average from this epoch on, best_swa.pt (0 = off)",
                            _int_check(0))
    # -- guards
    guard: str = option("auto", "guards", "catastrophic-overfitting guard: stop, roll back to best.pt and stop, or "
                        "recover (roll back and go on with the next guard_fallback setting); auto: recover for the "
                        "single-step methods fgsm_rs, free, n_fgsm, grad_align, off otherwise",
                        _choice_check(("auto", "off", "stop", "rollback", "recover"), "guard"))
    guard_drop: float = option(30.0, "guards", "the guard fires when monitor PGD accuracy falls this many points",
                               _number_check(0.0, 100.0, low_open=True))
    guard_batch: int = option(256, "guards", "guard monitor examples (from the validation split)", _int_check(1))
    guard_steps: int = option(10, "guards", "PGD steps of the guard's monitor attack", _int_check(1))
    guard_fallback: List[int] = option([2, 3, 5], "guards", "guard recover: PGD steps of the safer settings it "
                                       "switches to after each collapse, in order (single-step methods become "
                                       "pgd_at with that many steps)", _steps_list_check())
    chance_patience: int = option(3, "guards", "stop after N epochs of training accuracy at chance (0 = never)",
                                  _int_check(0))
    # -- final test evaluation
    eval_attacks: List[str] = option(["fgsm", "pgd"], "evaluation", "attacks of the final test table (for norm l1 "
                                     "the default is pgd, apgd: fgsm is not defined for l1)",
                                     _names_check(_attacks, "attack"))
    eval_steps: int = option(20, "evaluation", "steps of the iterative final-test attacks", _int_check(1))
    eval_restarts: int = option(1, "evaluation", "restarts of the final-test attacks that restart (pgd, apgd)",
                                _int_check(1))
    # -- speed
    amp: str = option("auto", "speed", "mixed precision of the training step (auto: bf16 on CUDA, off on CPU)",
                      Check(parse_amp, lambda: "auto, off, bf16, fp16"), flag={"nargs": "?", "const": "bf16"})
    channels_last: Any = option("auto", "speed", "channels_last memory format (auto: CNNs on CUDA)", _switch_check())
    compile: bool = option(False, "speed", "torch.compile the training step (slow first epoch)", _bool_check())
    sync_bn: bool = option(False, "speed", "SyncBatchNorm across torchrun processes (CUDA only)", _bool_check())
    # -- run
    seed: int = option(0, "run", "random seed", _int_check(0))
    device: str = option("auto", "run", "device", _device_check())
    plot: bool = option(True, "run", "write learning_curves.png (needs matplotlib)", _bool_check())
    tensorboard: bool = option(False, "run", "also write TensorBoard event files to RUN/tensorboard: the scalars of "
                               "metrics.jsonl per epoch and the learning-curve figure (needs the tensorboard package: "
                               "pip install 'armor[tensorboard]')", _bool_check())
    cost_probe: int = option(10, "run", "after training, time this many minibatches of the method's step and of a "
                             "standard step in turn, for results.json's cost (wall-time ratio; 0 = off)",
                             _int_check(0))
    out: Optional[str] = option(None, "run", "run folder (default runs/<dataset>_<method>)", _text_check("a folder"))

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -----------------------------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        _validate_fields(self)
        from .methods import METHODS

        method = METHODS.get(self.method)
        for key in self.method_options:
            if key in METHOD_OPTION_KEYS:
                raise UserError(f"method option {key!r} is a config key of its own; set {key}: at the top level")
        options = self.method_kwargs()
        METHODS.check(self.method, options)
        from .methods import create_method

        create_method(self.method, self.threat, **options)  # the method checks its own values
        from .attacks import ATTACKS

        for name in self.final_attacks:  # an attack not defined for the norm fails now, not after training
            ATTACKS.create(name, self.threat)
        if self.eps_warmup and not method.adversarial:
            raise UserError(f"eps_warmup ramps the inner attack's ε; method {self.method!r} has no inner attack")
        self._check_switches(method)
        return self

    def _check_switches(self, method: Any) -> None:
        """Options whose switch is off are errors when set (defaults are never errors)."""
        if self.optimizer != "sgd" and _changed(self, "momentum"):
            raise UserError(f"momentum applies to optimizer sgd only; optimizer is {self.optimizer!r}")
        action = self.guard_action(method)
        for key in ("guard_drop", "guard_batch", "guard_steps", "guard_fallback"):
            if _changed(self, key) and (action == "off" or (key == "guard_fallback" and action != "recover")):
                from .methods import METHODS

                single = ", ".join(n for n in METHODS.names() if METHODS.get(n).guard_by_default)
                if action == "off":
                    raise UserError(f"{key} applies only when the catastrophic-overfitting guard is on (guard: stop, "
                                    f"rollback or recover; auto turns recover on for {single}); method "
                                    f"{self.method!r} with guard {self.guard!r} has it off")
                raise UserError(f"guard_fallback applies only to guard recover (auto for {single}); guard is "
                                f"{self.guard!r}")
        if action == "recover" and not method.adversarial:
            raise UserError(f"guard recover switches to a safer inner attack; method {self.method!r} has none "
                            f"(use guard stop or rollback)")
        if self.best_by == "last":
            if self.early_stop_patience:
                raise UserError(f"early_stop_patience {self.early_stop_patience} stops when validation stops "
                                f"improving, but best_by 'last' compares no epochs; use best_by auto, robust or clean")
            if action in ("rollback", "recover"):
                raise UserError(f"guard {action!r} reloads best.pt, which best_by 'last' makes the latest (collapsed) "
                                f"epoch; use guard stop, or another best_by")
        if self.test_subset is not None and not self.test_every:
            raise UserError("test_subset applies only with test_every ≥ 1 (the per-epoch test measurement)")
        from .attacks import ATTACKS

        for key, option_name, what in (("eval_steps", "steps", "iterative"), ("eval_restarts", "restarts", "restart")):
            if _changed(self, key) and not any(ATTACKS.takes(a, option_name) for a in self.final_attacks):
                takes = [a for a in ATTACKS.names() if ATTACKS.takes(a, option_name)]
                raise UserError(f"{key} applies to the final-test attacks that take {option_name} "
                                f"({', '.join(takes)}); eval_attacks has none: {', '.join(self.final_attacks)}")

    # -- derived values ----------------------------------------------------------------------------------------------
    def guard_action(self, method: Any = None) -> str:
        """What the catastrophic-overfitting guard does: ``off``, ``stop``, ``rollback`` or ``recover`` (``auto`` is
        ``recover`` for the single-step methods, whose ``guard_by_default`` is set, and ``off`` for the others)."""
        if self.guard != "auto":
            return self.guard
        if method is None:
            from .methods import METHODS

            method = METHODS.get(self.method)
        return "recover" if method.guard_by_default else "off"

    @property
    def final_attacks(self) -> List[str]:
        """The attacks of the final test table: ``eval_attacks``, whose default (fgsm, pgd) becomes pgd, apgd under
        L1, where FGSM is not defined (an explicit list is taken as given, and checked)."""
        if self.norm == "l1" and not _changed(self, "eval_attacks"):
            return ["pgd", "apgd"]
        return list(self.eval_attacks)

    def method_kwargs(self) -> Dict[str, Any]:
        """The options the user set for the method (``None`` = the method's default, so not passed)."""
        options = {k: getattr(self, k) for k in METHOD_OPTION_KEYS if getattr(self, k) is not None}
        return {**options, **self.method_options}

    @property
    def dataset_key(self) -> str:
        """The dataset's short name: a named dataset, or the stem of its file or folder (``/data/imagenet`` →
        ``imagenet``), which also picks its usual ε."""
        if self.dataset.endswith(".npz") or "/" in self.dataset or "\\" in self.dataset:
            return Path(self.dataset.rstrip("/\\")).stem
        return self.dataset

    def resolved_eps(self) -> float:
        return self.eps if self.eps is not None else default_eps(self.dataset_key, self.norm)

    def load_data(self, data_dir: Optional[str] = None):
        """The run's dataset with its fixed split (``data_dir`` overrides where named datasets are looked for)."""
        from .data import load_dataset

        return load_dataset(self.dataset, data_dir or self.data_dir, self.val_size, self.train_size, self.test_size,
                            seed=self.seed, image_size=self.image_size, memory_limit_mb=self.memory_limit_mb,
                            num_classes=self.num_classes)

    def threat_for(self, meta: Mapping[str, Any]):
        """The run's threat model on data described by ``meta`` (its input box and immutable features)."""
        from .threat import ThreatModel

        immutable = tuple(sorted({*meta.get("immutable", ()), *self.immutable}))
        return ThreatModel(self.norm, self.resolved_eps(), meta.get("lower", 0.0), meta.get("upper", 1.0), immutable)

    @property
    def threat(self):
        """The run's threat model in the default box (``threat_for`` adds the data's box and immutable features;
        the ε schedule ramps towards it when ``eps_warmup`` is set)."""
        from .threat import ThreatModel

        key = (self.norm, self.resolved_eps())
        cached = self.__dict__.get("_threat")
        if cached is None or (cached.norm, cached.eps) != key:
            cached = ThreatModel(*key)
            self.__dict__["_threat"] = cached
        return cached

    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset_key}_{self.method}")

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields_of(self)}

    def changed_from_default(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields_of(self) if _changed(self, f.name)}

    # -- construction ------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        return _from_mapping(cls, values, "the config")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Optional[Dict[str, Any]] = None) -> "TrainConfig":
        return cls.from_dict({**read_yaml(path), **(overrides or {})})


#: what ``--resume`` may change: the length of the run, and where it lives or looks (never what it computes)
CHANGEABLE_ON_RESUME = ("epochs", "out", "device", "data_dir", "workers", "memory_limit_mb", "plot", "tensorboard",
                        "cost_probe")


def resumed_config(saved: TrainConfig, given: Mapping[str, Any], epochs_done: int) -> TrainConfig:
    """The config a resumed run continues with: the run's own (``saved``), with the options given now that may
    change. Any other option given with another value than the run's is refused, naming it (old → new)."""
    values = saved.to_dict()
    now = TrainConfig.from_dict({**values, **{k: v for k, v in given.items() if k in CHANGEABLE_ON_RESUME}})
    probe = TrainConfig.from_dict({**values, **dict(given)}) if given else now  # parses what was given
    for key in given:
        if key in CHANGEABLE_ON_RESUME:
            continue
        old, new = getattr(saved, key), getattr(probe, key)
        if key == "model" and isinstance(old, str) and isinstance(new, str) and ":" in old and ":" in new:
            continue  # your own model: the same factory at another path (its file's sha256 is checked when built)
        if old != new:
            raise UserError(f"{opt('resume')} cannot change {key}: the run was trained with {old!r}, now {new!r}; "
                            f"start a new run (another {opt('out', 'FOLDER')}) to change it")
    if now.epochs < epochs_done:
        raise UserError(f"epochs {now.epochs} is fewer than the {epochs_done} the run has already trained; a resumed "
                        f"run can only be extended")
    return now


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _nan_policy(value: Any) -> str:
    if value not in ("stop", "skip"):
        raise UserError(f"nan_policy must be stop or skip, got {value!r}")
    return value


def _best_by(value: Any) -> str:
    if value not in ("auto", "robust", "clean", "last"):
        raise UserError(f"best_by must be auto, robust, clean or last, got {value!r}")
    return value


def read_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {str(path)!r} must hold a mapping of keys to values")
    return values


def dump_yaml(values: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(values), sort_keys=False, allow_unicode=True)


# -- evaluation ----------------------------------------------------------------------------------------------------
#: eval option → (attack constructor option it sets, the attacks it applies to when given for an attack list)
EVAL_ATTACK_OPTIONS = {"steps": "steps", "restarts": "restarts", "step_size": "step_size", "queries": "queries",
                       "loss": "loss"}


@dataclass
class EvalConfig:
    """Everything ``armor eval`` is asked: what to evaluate, on which data, with which attacks and extras."""

    # -- what to evaluate
    checkpoint: Optional[str] = option(None, "source", "armor checkpoint to evaluate (RUN/best.pt, RUN/last.pt, ...)",
                                       _text_check("a file"))
    model: Optional[str] = option(None, "source", "your own model: path/to/file.py:factory or package.module:factory "
                                  "(a class or function returning an nn.Module); imported only because you name it",
                                  _text_check("FILE.py:FACTORY"))
    model_options: Dict[str, Any] = option({}, "source", "keyword arguments for the --model factory",
                                           _mapping_check())
    weights: Optional[str] = option(None, "source", "weights for --model: a state-dict .pt (read with weights_only) "
                                    "or .safetensors (armor export's too)", _text_check("a file"))
    mean: Optional[List[float]] = option(None, "source", "the model expects inputs normalised by this per-channel "
                                         "(or per-feature) mean; armor puts the normalisation inside the model",
                                         _floats_check(), flag={"nargs": "+"})
    std: Optional[List[float]] = option(None, "source", "... and this std (with --mean)", _floats_check(),
                                        flag={"nargs": "+"})
    logits_key: Optional[str] = option(None, "source", "the model returns a dict or tuple: the key (or index) of "
                                       "its logits", _text_check("a key or an index"))
    num_classes: Optional[int] = option(None, "source", "classes the model predicts (checked against its output "
                                        "and the labels)", _int_check(2))
    # -- data
    data: Optional[str] = option(None, "data", "data to evaluate on: a dataset name (digits, mnist, ...), an .npz "
                                 "(x_test, y_test or x, y), an image folder (class sub-folders) or a CIFAR-10 python "
                                 "folder (default: the checkpoint's own dataset)", _text_check("a dataset"))
    split: str = option("test", "data", "which split of the dataset", _choice_check(("test", "val"), "split"))
    n: Optional[int] = option(None, "data", "evaluate only the first N examples of the split", _int_check(1))
    data_dir: Optional[str] = option(None, "data", "where mnist.npz etc. live (default: as the run had it)",
                                     _text_check("a folder"))
    # -- threat model
    eps: Any = option(None, "threat", "budget (default: the one the model was trained for)", _eps_check())
    norm: Optional[str] = option(None, "threat", "norm of the budget (default: the training norm; linf for --model)",
                                 Check(lambda name, value: parse_norm(value), lambda: ", ".join(NORMS)))
    immutable: List[int] = option([], "threat", "feature indices an attacker cannot change (feature-vector data)",
                                  _index_list_check())
    # -- attacks
    suite: Optional[str] = option(None, "attacks", "attack suite, run as a worst-case ensemble (default standard: "
                                  "APGD-CE, APGD-T, Square)", _choice_check(_suites, "suite"))
    attack: Optional[List[str]] = option(None, "attacks", "run these attacks instead of a suite, each on every "
                                         "example (standalone numbers)", _names_check(_attacks, "attack"),
                                         flag={"nargs": "+"})
    steps: Optional[int] = option(None, "attacks", "steps of the gradient attacks (default: 20 for --attack, 100 "
                                  "in the standard/full suites)", _int_check(1))
    restarts: Optional[int] = option(None, "attacks", "random restarts of --attack attacks that restart (pgd, apgd, "
                                     "apgd_t; default 1)", _int_check(1))
    step_size: Any = option(None, "attacks", "per-iteration step of the iterative --attack attacks (pgd; default "
                            "2.5·eps/steps)", Check(lambda name, value: parse_eps(value, name),
                                                    lambda: "a positive number such as 0.01 or 2/255"))
    queries: Optional[int] = option(None, "attacks", "Square query budget per example (default 5000)", _int_check(1))
    loss: Optional[str] = option(None, "attacks", "loss of the --attack gradient attacks: ce, or dlr (invariant to "
                                 "rescaled logits)", _choice_check(_losses, "loss"))
    # -- adaptive attacks
    eot: int = option(1, "adaptive", "average each gradient over N forward passes (randomised models)", _int_check(1))
    eot_draws: Optional[int] = option(None, "adaptive", "classify every point (clean and each attack's) N times and "
                                      "count the mean over the draws, per example at its worst point (default: 20 "
                                      "for a randomised model — eot > 1, or two passes that differ — else 1)",
                                      _int_check(1))
    bpda: Any = option(None, "adaptive", "straight-through gradients (BPDA): layer names (as in "
                       "model.named_modules(); identity approximation, output shaped like the input), "
                       "NAME=FILE.py:FACTORY (a differentiable approximation of that layer), 'ops' (round, floor, "
                       "ceil, trunc, sign, floor division and integer casts inside the model's own forward), or no "
                       "value: every layer marked non_differentiable",
                       Check(lambda name, value: _bpda(value), lambda: "NAME, NAME=FILE.py:FACTORY or ops; none for "
                             "every marked layer", kind="list"), flag={"nargs": "*", "metavar": "LAYER"})
    surrogate: Optional[str] = option(None, "adaptive", "a differentiable twin or surrogate of the model: an armor "
                                      "checkpoint (RUN/best.pt), an armor export (.safetensors) or FILE.py:FACTORY "
                                      "(with --surrogate-weights; --mean/--std/--logits-key apply to it as to the "
                                      "model); each gradient attack runs again driven by it, the model judges, and "
                                      "the checks add a transfer check", _text_check("a checkpoint or FILE.py:FACTORY"))
    surrogate_weights: Optional[str] = option(None, "adaptive", "weights for a FILE.py:FACTORY surrogate (a state-dict "
                                              ".pt or .safetensors)", _text_check("a file"))
    surrogate_options: Dict[str, Any] = option({}, "adaptive", "keyword arguments for the FILE.py:FACTORY surrogate",
                                               _mapping_check())
    surrogate_mode: Optional[str] = option(None, "adaptive", "how the surrogate drives the added attacks: twin (the "
                                           "model's logits forward, the surrogate's gradients backward; default) or "
                                           "transfer (crafted on the surrogate alone, judged on the model)",
                                           _choice_check(("twin", "transfer"), "surrogate mode"))
    # -- extras
    checks: str = option("auto", "extras", "gradient-masking sanity checks after the evaluation: quick (100 "
                         "examples, 20-step attacks, Square 300 queries), standard (200 examples, 100 steps, Square "
                         "1000 queries) or none; auto: quick after the quick and fast suites, standard otherwise "
                         "(YAML true = auto, false = none)", Check(lambda name, value: _check_level(value),
                                                      lambda: ", ".join(CHECKS)),
                         flag={"negative": "none", "metavar": "LEVEL"})
    check_n: Optional[int] = option(None, "extras", "examples the checks use (default: the level's, 100 quick, 200 "
                                    "standard)", _int_check(1))
    sweep: Optional[List[Any]] = option(None, "extras", "also sweep these budgets: <out>_sweep.json/.csv/.png",
                                        _names_check(lambda: [], "eps", eps=True), flag={"metavar": "EPS"})
    corruptions: bool = option(False, "extras", "also measure accuracy under the 15 CIFAR-10-C corruptions",
                               _bool_check())
    corruption_reference: Optional[str] = option(None, "extras", "mCE against this reference: an armor eval record "
                                                 "with corruptions (JSON), or its run folder; usually the "
                                                 "standard-trained run of the same recipe (needs --corruptions)",
                                                 _text_check("an eval record (JSON) or a run folder"))
    # -- run
    batch_size: int = option(256, "run", "evaluation batch size", _int_check(1))
    device: str = option("auto", "run", "device", _device_check())
    seed: int = option(0, "run", "random seed of the attacks", _int_check(0))
    out: Optional[str] = option(None, "run", "results JSON (default: eval.json beside the checkpoint)",
                                _text_check("a file"))
    progress: Optional[bool] = option(None, "run", "show progress bars (default: when writing to a terminal)",
                                      _bool_check())
    amp: str = option("off", "run", "mixed precision for the attacks (bf16/fp16 on GPUs; numbers are measured in "
                      "fp32 by default)", Check(parse_amp, lambda: "auto, off, bf16, fp16"),
                      flag={"nargs": "?", "const": "bf16"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "EvalConfig":
        _validate_fields(self)
        if self.suite is not None and self.attack:
            raise UserError(f"give either {opt('suite', None)} or {opt('attack', None)}, not both")
        if (self.mean is None) != (self.std is None):
            raise UserError(f"give {opt('mean', None)} and {opt('std', None)} together")
        if self.model_options and self.model is None:
            raise UserError(f"model_options are keyword arguments for the factory of {opt('model', 'FILE.py:FACTORY')}; there is no model given")
        if self.checks == "none" and self.check_n is not None:
            raise UserError(f"check_n {self.check_n} applies to the sanity checks, which are off (checks: none); "
                            f"drop it or choose {opt('checks', 'quick')} or {opt('checks', 'standard')}")
        self._check_surrogate()
        if self.corruption_reference is not None and not self.corruptions:
            raise UserError(f"corruption_reference {self.corruption_reference!r} applies with corruptions: true "
                            f"({opt('corruptions')}), which is off; turn it on or drop the reference")
        self._check_attacks()
        return self

    def _check_surrogate(self) -> None:
        if self.surrogate is None:
            for key in ("surrogate_weights", "surrogate_options", "surrogate_mode"):
                if getattr(self, key) not in (None, {}):
                    raise UserError(f"{key} applies with a surrogate ({opt('surrogate', 'S')}), and none is given")
            return
        if self.bpda is not None:
            raise UserError(f"give either {opt('bpda', None)} or {opt('surrogate', None)}, not both: with a surrogate "
                            f"the gradients come from it (bpda changes the model's own gradients; give the surrogate "
                            f"the smooth layers instead)")
        from .models.user import check_reference, is_reference

        if is_reference(self.surrogate):
            check_reference(self.surrogate, "surrogate")
            return
        if not Path(self.surrogate).is_file():
            raise UserError(f"surrogate {self.surrogate!r} is neither a file (an armor checkpoint or export) nor "
                            f"FILE.py:FACTORY")
        for key in ("surrogate_weights", "surrogate_options"):
            if getattr(self, key) not in (None, {}):
                raise UserError(f"{key} is for a FILE.py:FACTORY surrogate; {self.surrogate!r} is a saved model that "
                                f"carries its own")

    def check_source(self) -> "EvalConfig":
        """What to evaluate is fully described (the command line and ``evaluate_checkpoint`` call this)."""
        if self.checkpoint is None and self.model is None and self.weights is None:
            raise UserError(f"nothing to evaluate: give {opt('checkpoint', 'RUN/best.pt')}, or "
                            f"{opt('model', 'FILE.py:FACTORY')} (with {opt('weights', 'W')}, {opt('data', 'D')} and "
                            f"{opt('eps', 'E')})")
        for key in ("checkpoint", "weights"):  # before anything loads torch: a typo is answered at once
            if getattr(self, key) is not None:
                check_file(getattr(self, key), key)
        if self.model is not None:
            from .models.user import check_reference, is_reference

            if not is_reference(self.model):
                raise UserError(f"model takes your own model as FILE.py:FACTORY or package.module:FACTORY, got "
                                f"{self.model!r} (a registered model is rebuilt from its checkpoint)")
            check_reference(self.model)
        plain_model = self.checkpoint is None and not _is_armor_export(self.weights)
        if not plain_model:
            for key in ("mean", "std", "logits_key", "num_classes"):
                if getattr(self, key) is not None:
                    raise UserError(f"{key} is for a model of your own (a model with plain weights); an armor "
                                    f"checkpoint or export carries its normalisation and head")
        else:
            if self.model is None:
                raise UserError(f"{self.weights!r} is not an armor export; give the model it belongs to with "
                                f"{opt('model', 'FILE.py:FACTORY')}")
            if self.data is None:
                raise UserError(f"a model without an armor checkpoint needs {opt('data', 'D')} (a dataset name, an "
                                f".npz, or an image folder)")
            if self.eps is None:
                raise UserError(f"a model without an armor checkpoint carries no threat model: give {opt('eps', 'E')} "
                                f"(and {opt('norm', 'linf')}, the default)")
        return self

    def _check_attacks(self) -> None:
        if self.uses_suite:
            if all(getattr(self, key) is None for key in ("steps", "queries", "restarts", "step_size", "loss")):
                return  # the suite as defined (its name is checked): nothing to ask its attacks, no torch to load
            from .attacks.suites import SUITE_OPTIONS, check_suite_options

            check_suite_options(self.suite_name, steps=self.steps, queries=self.queries)
            for key in ("restarts", "step_size", "loss"):
                if getattr(self, key) is not None:
                    raise UserError(f"{key} applies to an attack list, not to suite {self.suite_name!r} (a suite "
                                    f"fixes its attacks; it takes {', '.join(SUITE_OPTIONS[:2])}); pass "
                                    f"{opt('attack', 'NAME')} with {opt(key, 'VALUE')}, or drop it")
        else:
            from .attacks import ATTACKS

            for key, target in EVAL_ATTACK_OPTIONS.items():
                if getattr(self, key) is None:
                    continue
                takes = [a for a in self.attack if _attack_takes(ATTACKS, a, target)]
                if not takes:
                    able = [a for a in ATTACKS.names() if _attack_takes(ATTACKS, a, target)]
                    raise UserError(f"{key} applies to attacks {', '.join(able)}; the attack list has none of them: "
                                    f"{', '.join(self.attack)}")

    @property
    def uses_suite(self) -> bool:
        return not self.attack

    @property
    def suite_name(self) -> Optional[str]:
        return None if self.attack else (self.suite or "standard")

    @property
    def check_level(self) -> Optional[str]:
        """The sanity checks to run: ``quick`` or ``standard`` (``auto``: quick after the quick and fast suites,
        standard after any other suite or an attack list), or None for none."""
        if self.checks == "none":
            return None
        if self.checks == "auto":
            return "quick" if self.suite_name in ("quick", "fast") else "standard"
        return self.checks

    def to_dict(self) -> Dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields_of(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EvalConfig":
        return _from_mapping(cls, values, "the evaluation options")


#: the levels of ``checks`` (the budgets of quick and standard are ``armor.eval.checks.LEVELS``)
CHECKS = ("auto", "quick", "standard", "none")


def _check_level(value: Any) -> str:
    if value is None:  # not set
        return "auto"
    if isinstance(value, bool):
        return "auto" if value else "none"
    text = str(value).strip().lower()
    text = "auto" if text in _TRUE else "none" if text in _FALSE else text
    if text not in CHECKS:
        raise UserError(f"checks must be one of {', '.join(CHECKS)} (true = auto, false = none), got {value!r}")
    return text


def _attack_takes(registry: Any, attack: str, option_name: str) -> bool:
    if option_name == "step_size":  # the per-iteration step of iterative attacks (not FGSM's single step)
        return bool(getattr(registry.get(attack), "iterative", False)) and registry.takes(attack, "step_size")
    return registry.takes(attack, option_name)


def _bpda(value: Any) -> Any:
    """``True``, or a list of ``NAME`` / ``NAME=FILE.py:FACTORY`` / ``ops`` (a YAML mapping ``{NAME: FILE.py:FACTORY}``
    becomes such a list; from Python the mapping may hold modules or functions)."""
    if value is True or value is None:
        return value
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) and k for k in value):
            raise UserError(f"bpda maps layer names to approximations, got {value!r}")
        if all(v is None or isinstance(v, str) for v in value.values()):
            value = [k if v is None else f"{k}={v}" for k, v in value.items()]
        else:
            return dict(value)  # from Python: approximations as modules or functions
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        from .models.user import check_reference

        for entry in value:
            name, sep, approx = entry.partition("=")
            if sep and not (name and approx):
                raise UserError(f"bpda entry {entry!r} must be NAME, NAME=FILE.py:FACTORY or ops")
            if approx:
                check_reference(approx, "bpda")
        return list(value) or True
    raise UserError(f"bpda must be true, layer names, NAME=FILE.py:FACTORY or ops, got {value!r}")


def flag_groups(cls: type) -> List[Tuple[str, List[dataclasses.Field]]]:
    """The fields of ``cls`` grouped for ``--help``, groups in declaration order."""
    groups: Dict[str, List[dataclasses.Field]] = {}
    for f in fields_of(cls):
        groups.setdefault(f.metadata["group"], []).append(f)
    return [(GROUPS.get(g, g), fs) for g, fs in groups.items()]


def help_text(f: dataclasses.Field) -> str:
    """The one help text of a field: what it is, what is allowed, its default (for a method option: which methods
    take it, with their defaults, asked of the registry)."""
    meta = f.metadata
    default = _default_text(f)
    allowed = meta["check"].describe()
    if f.name in METHOD_OPTION_KEYS:
        from .methods import METHODS

        takers = [f"{m} {_shown(METHODS.options(m)[f.name].default)}" for m in METHODS.names()
                  if METHODS.takes(m, f.name)]
        default = "the method's own: " + ", ".join(takers)
    return f"{meta['help']} [{allowed}{'; default ' + default if default else ''}]"


def _shown(value: Any) -> str:
    return "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _default_text(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is None or value == {} or value is False and f.metadata["check"].kind == "bool":
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)
