"""Models from the user's own code: ``path/to/file.py:factory`` or ``package.module:factory``.

Loading user code is always explicit: these functions run only for a reference the user typed (``--model``
or ``TrainConfig(model=...)``), never for one a checkpoint names. A checkpoint of such a model records the
reference and the file's sha256, and :func:`check_unchanged` refuses a file that changed since.

Also here: the adapters that make any classifier look like an armor one — :class:`Logits` picks the logits
out of a model that returns a dict or a tuple, :class:`Normalized` puts a per-channel normalisation in front
of a model that expects normalised inputs (attacks then stay in [0, 1] input units).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import UserError, opt
from .common import Normalize


def is_reference(name: str) -> bool:
    """``file.py:factory`` or ``package.module:factory`` (a registered model name never has a colon)."""
    return isinstance(name, str) and ":" in name


def _split(reference: str) -> tuple[str, str]:
    target, _, attr = reference.rpartition(":")
    if not target or not attr or not attr.isidentifier():
        raise UserError(f"model reference {reference!r} must look like path/to/file.py:factory or "
                        f"package.module:factory")
    return target, attr


def check_reference(reference: str, option: str = "model") -> str:
    """The reference, checked without importing anything: a ``.py`` file must exist (``option`` names the option
    it came from in the message)."""
    target, _ = _split(reference)
    if target.endswith(".py") and not Path(target).is_file():
        raise UserError(f"model file {target!r} does not exist (from {opt(option, reference)})")
    return reference


def source_file(reference: str) -> Optional[Path]:
    """The file that defines the factory (found without running it), or None for a module that has none."""
    target, _ = _split(reference)
    if target.endswith(".py"):
        return Path(target)
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise UserError(f"cannot find module {target!r} (from {opt('model', reference)}); is its package importable?")
    return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None


def sha256_of(reference: str) -> Optional[str]:
    path = source_file(reference)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None


def check_unchanged(reference: str, recorded: Optional[str], what: str) -> None:
    """Refuse a model file that changed since ``what`` (a checkpoint) was written with it."""
    now = sha256_of(reference)
    if recorded is not None and now != recorded:
        path = source_file(reference)
        raise UserError(f"{str(path)!r} changed since {what} was saved with it (sha256 {recorded[:12]}… then, "
                        f"{(now or 'missing')[:12]}… now); restore that file or start a new run")


def load_factory(reference: str) -> Callable[..., nn.Module]:
    """Import the user's file or module and return the factory (this runs the user's code)."""
    target, attr = _split(check_reference(reference))
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            name = f"armor_user_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except UserError:
        raise
    except Exception as exc:  # the user's code failed to import: say where, in one line
        raise UserError(f"importing {target!r} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") \
            from None
    if not hasattr(module, attr):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise UserError(f"{target!r} has no {attr!r}; callables there: {', '.join(found[:12]) or 'none'}")
    return getattr(module, attr)


def build_user_model(reference: str, options: Optional[Dict[str, Any]] = None,
                     input_shape: Optional[Sequence[int]] = None, num_classes: Optional[int] = None) -> nn.Module:
    """Call the factory (a class or a function returning an ``nn.Module``). It receives ``input_shape`` and
    ``num_classes`` if its signature names them, and ``options`` as keyword arguments."""
    factory = load_factory(reference)
    kwargs = dict(options or {})
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    for key, value in (("input_shape", input_shape), ("num_classes", num_classes)):
        if key in params and value is not None and key not in kwargs:
            kwargs[key] = tuple(value) if key == "input_shape" else int(value)
    unknown = [k for k in kwargs if params and k not in params
               and not any(p.kind is p.VAR_KEYWORD for p in params.values())]
    if unknown:
        raise UserError(f"{reference} takes no option {unknown[0]!r}; its parameters are: {', '.join(params) or 'none'}")
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise UserError(f"{reference}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{reference} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


class Logits(nn.Module):
    """The logits of a model whose forward returns a dict (``key`` is a name) or a tuple/list (``key`` an index)."""

    def __init__(self, model: nn.Module, key: Union[str, int]):
        super().__init__()
        self.model, self.key = model, key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        try:
            return out[self.key]
        except (KeyError, IndexError, TypeError):
            keys = list(out) if isinstance(out, dict) else f"{len(out)} items" if isinstance(out, (tuple, list)) \
                else type(out).__name__
            raise UserError(f"logits_key {self.key!r} is not in the model's output ({keys})") from None


def output_adapter(model: nn.Module, logits_key: Optional[str]) -> nn.Module:
    """``model`` itself, or wrapped by :class:`Logits` (``logits_key`` names a dict key or, if numeric, an index)."""
    if logits_key is None:
        return model
    key: Union[str, int] = int(logits_key) if str(logits_key).lstrip("-").isdigit() else str(logits_key)
    return Logits(model, key)


class Normalized(nn.Module):
    """A model that expects normalised inputs, behind a :class:`Normalize` layer: it takes [0, 1] inputs."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], features: bool = False):
        super().__init__()
        try:
            self.normalize = Normalize(mean, std, features=features)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))
