"""Run configuration: a dataclass read from YAML and/or CLI flags, validated with one-line errors."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from .errors import UserError
from .threat import DEFAULT_EPS, parse_eps, parse_norm

OPTIMIZERS = ("sgd", "adam")
GUARD_ACTIONS = ("auto", "off", "stop", "rollback")


@dataclass
class TrainConfig:
    # data
    dataset: str = "digits"
    data_dir: Optional[str] = None
    train_size: Optional[int] = None
    val_size: Optional[int] = None
    test_size: Optional[int] = None
    augment: str = "auto"
    # model
    model: str = "small_cnn"
    model_options: Dict[str, Any] = field(default_factory=dict)
    # method and its threat model
    method: str = "pgd_at"
    norm: str = "linf"
    eps: Any = None                   # None → the dataset's usual budget
    steps: int = 7                    # PGD steps during training
    step_size: Any = None             # None → 2.5·ε/steps
    clean_weight: float = 0.0
    eps_warmup: int = 0               # epochs of linear ε ramp from 0
    method_options: Dict[str, Any] = field(default_factory=dict)  # extra keyword options of the method
    beta: Any = None                  # TRADES/MART robust-term weight (None → the method's default, 6)
    replays: int = 4                  # Free AT: replays m of each minibatch (scale epochs by 1/m)
    # catastrophic-overfitting guard (armor/train/guards.py): PGD on a held-out monitor batch every epoch
    guard: str = "auto"               # auto (on for fgsm_rs, free) | off | stop | rollback
    guard_drop: float = 30.0          # fires when monitor PGD accuracy falls this many points below its best
    guard_batch: int = 256            # monitor examples (from the validation split)
    guard_steps: int = 10             # PGD steps on the monitor batch
    chance_patience: int = 3          # stop after this many epochs of training accuracy at chance (0 = never)
    # optimisation
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    # held-out robust validation every `val_every` epochs
    val_every: int = 1
    val_steps: int = 10
    best_by: str = "auto"             # robust | clean | auto (robust for adversarial methods, clean for standard)
    val_subset: Optional[int] = None  # validate on the first N val examples only (a fixed subset, for speed)
    test_every: int = 0               # also log test clean/PGD accuracy every N epochs (0 = never; for curves)
    test_subset: Optional[int] = None  # ... on the first N test examples
    early_stop_patience: int = 0      # stop after N validations without a better best.pt (0 = never)
    ema_decay: float = 0.0            # EMA of the weights as an extra candidate, e.g. 0.999 (0 = off)
    swa_start: int = 0                # SWA: equal average of the weights from this epoch on (0 = off)
    nan_policy: str = "stop"          # non-finite loss: stop the run, or skip the step
    plot: bool = True                 # write learning_curves.png (needs matplotlib)
    # final test evaluation
    eval_attacks: List[str] = field(default_factory=lambda: ["fgsm", "pgd"])
    eval_steps: int = 20
    eval_restarts: int = 1
    # run
    seed: int = 0
    device: str = "auto"
    # speed (see armor/train/accel.py): auto = bf16 + channels_last on CUDA, off on CPU
    amp: str = "auto"                 # auto | off | bf16 | fp16
    channels_last: Any = "auto"       # auto | true | false
    compile: bool = False             # torch.compile the training step's model
    sync_bn: bool = False             # SyncBatchNorm across torchrun processes (CUDA only)
    out: Optional[str] = None

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        from .attacks import ATTACKS
        from .data.augment import PRESETS
        from .methods import METHODS
        from .models import MODELS
        from .train.schedule import SCHEDULES

        MODELS.get(self.model)
        METHODS.get(self.method)
        for name in self.eval_attacks:
            ATTACKS.get(name)
        self.norm = parse_norm(self.norm)
        if self.eps is not None:
            self.eps = parse_eps(self.eps)
        if self.step_size is not None:
            self.step_size = parse_eps(self.step_size, "step_size")
        for name in ("steps", "replays", "guard_batch", "guard_steps", "epochs", "batch_size", "val_every", "val_steps", "eval_steps", "eval_restarts"):
            _positive_int(self, name)
        for name in ("train_size", "test_size"):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        for name in ("val_subset", "test_subset"):
            if getattr(self, name) is not None:
                _positive_int(self, name)
        for name in ("val_size", "eps_warmup", "seed", "chance_patience", "test_every", "early_stop_patience",
                     "swa_start"):
            if getattr(self, name) is not None:
                _positive_int(self, name, minimum=0)
        _number(self, "lr", low=0.0, low_open=True)
        _number(self, "momentum", low=0.0, high=1.0)
        _number(self, "weight_decay", low=0.0)
        _number(self, "clean_weight", low=0.0, high=1.0)
        _number(self, "guard_drop", low=0.0, high=100.0, low_open=True)
        if self.beta is not None:
            _number(self, "beta", low=0.0)
        if self.guard not in GUARD_ACTIONS:
            raise UserError(f"unknown guard {self.guard!r}; choose one of: {', '.join(GUARD_ACTIONS)}")
        _number(self, "ema_decay", low=0.0, high=1.0)
        if self.ema_decay == 1.0:
            raise UserError("ema_decay must be below 1 (1 would never move the average), got 1")
        if self.nan_policy not in ("stop", "skip"):
            raise UserError(f"nan_policy must be stop or skip, got {self.nan_policy!r}")
        if isinstance(self.plot, str) and self.plot.lower() in ("true", "false", "yes", "no", "1", "0"):
            self.plot = self.plot.lower() in ("true", "yes", "1")
        if not isinstance(self.plot, bool):
            raise UserError(f"plot must be true or false, got {self.plot!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.augment != "auto" and self.augment not in PRESETS:
            raise UserError(f"unknown augmentation {self.augment!r}; choose one of: auto, {', '.join(PRESETS)}")
        if self.best_by not in ("auto", "robust", "clean"):
            raise UserError(f"best_by must be auto, robust or clean, got {self.best_by!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not str(self.device).startswith("cuda:"):
            raise UserError(f"unknown device {self.device!r}; choose one of: auto, cpu, cuda, cuda:N, mps")
        from .train.accel import parse_amp, parse_switch

        self.amp = parse_amp(self.amp)
        self.channels_last = parse_switch(self.channels_last, "channels_last")
        for name in ("compile", "sync_bn"):
            value = parse_switch(getattr(self, name), name)
            if value == "auto":
                raise UserError(f"{name} must be true or false, got 'auto'")
            setattr(self, name, value)
        if not isinstance(self.method_options, dict):
            raise UserError(f"method_options must be a mapping, got {self.method_options!r}")
        _check_options(METHODS.get(self.method), self.method_options, f"method {self.method!r}")
        for key in self.method_options:
            if key in {f.name for f in fields(self)}:
                raise UserError(f"method option {key!r} is a config key of its own; set {key}: at the top level")
        if not isinstance(self.model_options, dict):
            raise UserError(f"model_options must be a mapping, got {self.model_options!r}")
        return self

    # -- derived values --------------------------------------------------------------------------
    @property
    def dataset_key(self) -> str:
        return Path(self.dataset).stem if self.dataset.endswith(".npz") else self.dataset

    def resolved_eps(self) -> float:
        return self.eps if self.eps is not None else DEFAULT_EPS.get(self.dataset_key, 8 / 255)

    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset_key}_{self.method}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(sorted(known))}")
        try:
            return cls(**values)
        except TypeError as exc:  # e.g. a list where a number belongs
            raise UserError(f"bad config value: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Optional[Dict[str, Any]] = None) -> "TrainConfig":
        return cls.from_dict({**read_yaml(path), **(overrides or {})})


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


def _check_options(factory: Any, options: Dict[str, Any], what: str) -> None:
    import inspect

    allowed = [n for n in inspect.signature(factory).parameters if n not in ("self", "threat")]
    for key in options:
        if key not in allowed:
            raise UserError(f"{what} has no option {key!r}; its options are: {', '.join(allowed)}")


def _positive_int(cfg: Any, name: str, minimum: int = 1) -> None:
    value = getattr(cfg, name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
        setattr(cfg, name, value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


def _number(cfg: Any, name: str, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> None:
    value = getattr(cfg, name)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    bad = not math.isfinite(number) or (low is not None and (number <= low if low_open else number < low)) \
        or (high is not None and number > high)
    if bad:
        lo = "" if low is None else (f"> {low:g}" if low_open else f"≥ {low:g}")
        hi = "" if high is None else f"≤ {high:g}"
        raise UserError(f"{name} must be a number {' and '.join(p for p in (lo, hi) if p)}, got {value!r}")
    setattr(cfg, name, number)
