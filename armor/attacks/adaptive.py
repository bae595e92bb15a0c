"""Adaptive-attack options that defeat common gradient masking (Athalye et al. 2018; Tramèr et al. 2020).

- ``bpda``: straight-through gradients (BPDA, Backward Pass Differentiable Approximation). In the forward pass
  every value is the model's own, bit for bit (the approximation enters as ``out + (g(x) − g(x).detach())``,
  which adds exactly zero); in the backward pass a non-differentiable piece is replaced by a differentiable
  approximation ``g``. What it applies to:

  - ``True``: every module with a truthy ``non_differentiable`` attribute, approximated by the identity;
  - layer names (as ``model.named_modules()`` gives them): those modules, approximated by the identity — which
    needs an output shaped like the input;
  - ``{name: approximation}`` (CLI/YAML: ``NAME=FILE.py:FACTORY``): that module, approximated by a differentiable
    module or callable of your own, applied to the layer's inputs and returning the layer's output shape — for
    layers whose output shape differs from the input's. The factory is called with no arguments, or with the
    layer itself if its signature has a parameter named ``layer``;
  - ``"ops"``: no layer at all — a :class:`torch.overrides.TorchFunctionMode` is active during every forward
    pass the attack makes and makes the non-differentiable *operations* the model calls inside its own
    ``forward`` straight-through (:data:`STRAIGHT_THROUGH_OPS`): ``round`` (any ``decimals``), ``floor``,
    ``ceil``, ``trunc``/``fix``, ``sign``/``sgn`` (identity approximation; function, method and in-place forms),
    floor and truncating division (``//``, ``floor_divide``, ``div(..., rounding_mode=...)``; approximated by
    the true division), and casts of a float tensor to an integer dtype: the integers remember the float they came
    from, arithmetic on them passes it on, and where floats come back their gradient is that of the same
    arithmetic on the float original (``(x * 255).to(torch.uint8).float() / 255`` is the identity backward). Only
    tensors that carry the input's gradient are touched, so the attack's own arithmetic is unaffected. Not made
    straight-through: ``clamp``/``clip`` (differentiable wherever its value moves), ``fake_quantize_*`` (PyTorch
    already gives it a straight-through gradient), ``quantize_per_tensor`` (quantized tensors carry no autograd),
    comparisons (``x > t`` thresholding) and integers used as indices (a lookup table, thermometer codes) — there
    the gradient still stops. :func:`check_adaptive` reports what was intercepted and where the gradient stops, and
    refuses ``ops`` when the forward calls none of the operations.

  ``"ops"`` combines with layer names (``["ops", "quantize"]``).
- ``eot``: expectation over transformation for randomised models: each forward pass the attack sees is
  the mean of ``eot`` logits, so its gradient is the average of ``eot`` sampled gradients.

A differentiable *twin* of the whole model (BPDA with the twin) and transfer from a surrogate are
:mod:`.transfer`'s. Everything here is applied around one attack call and removed afterwards, so the model is
left as it was.
"""
from __future__ import annotations

import contextlib
import inspect
from collections import Counter
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Union

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import UserError, opt

Bpda = Union[None, bool, str, Sequence[str], Mapping[str, Any], "BpdaSpec"]

#: the keyword that turns on straight-through operations (``--bpda ops``)
OPS = "ops"


def check_eot(eot: int) -> int:
    if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
        raise UserError(f"eot must be an integer ≥ 1 (forward passes averaged per gradient), got {eot!r}")
    return eot


# -- what bpda asks for -------------------------------------------------------------------------------------------
class BpdaSpec:
    """A parsed ``bpda`` value: marked layers, named layers (with an approximation or the identity), and/or ops."""

    def __init__(self, marked: bool = False, layers: Optional[Dict[str, Any]] = None, ops: bool = False):
        self.marked, self.layers, self.ops = marked, dict(layers or {}), ops
        self._built: Dict[str, Callable] = {}

    def __bool__(self) -> bool:
        return self.marked or self.ops or bool(self.layers)

    def describe(self) -> Any:
        """JSON-able, as the option is written: ``True``, or a list of ``NAME``, ``NAME=APPROX`` and ``ops``."""
        if self.marked and not self.layers and not self.ops:
            return True
        items = [name if approx is None else f"{name}={_approx_name(approx)}" for name, approx in self.layers.items()]
        return ([OPS] if self.ops else []) + (["(every non_differentiable layer)"] if self.marked else []) + items

    def __repr__(self) -> str:
        return f"BpdaSpec({self.describe()!r})"

    def approximation(self, name: str, layer: nn.Module) -> Optional[Callable]:
        """The differentiable stand-in for layer ``name`` (built once; None = the identity)."""
        approx = self.layers.get(name)
        if approx is None:
            return None
        if name not in self._built:
            self._built[name] = _build_approximation(name, approx, layer)
        return self._built[name]


def _approx_name(approx: Any) -> str:
    return approx if isinstance(approx, str) else type(approx).__name__ if isinstance(approx, nn.Module) \
        else getattr(approx, "__name__", type(approx).__name__)


def _build_approximation(name: str, approx: Any, layer: nn.Module) -> Callable:
    if isinstance(approx, str):
        from ..models.user import load_factory

        factory = load_factory(approx)
        try:
            takes_layer = "layer" in inspect.signature(factory).parameters
        except (TypeError, ValueError):
            takes_layer = False
        try:
            approx = factory(layer=layer) if takes_layer else factory()
        except Exception as exc:  # the user's factory failed: one line
            raise UserError(f"bpda approximation {approx} for layer {name!r} failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    if not callable(approx):
        raise UserError(f"the bpda approximation of layer {name!r} must be an nn.Module or a function, got "
                        f"{type(approx).__name__}")
    if isinstance(approx, nn.Module):
        approx.eval()
    return approx


def parse_bpda(bpda: Bpda) -> Optional[BpdaSpec]:
    """``None``/``False`` → None; ``True``; a name or list of names (``NAME``, ``NAME=FILE.py:FACTORY``, ``ops``);
    a mapping ``{name: approximation or None}``; or a :class:`BpdaSpec` (returned as is)."""
    if isinstance(bpda, BpdaSpec):
        return bpda if bpda else None
    if bpda is None or bpda is False:
        return None
    if bpda is True:
        return BpdaSpec(marked=True)
    if isinstance(bpda, str):
        bpda = [bpda]
    spec = BpdaSpec()
    if isinstance(bpda, Mapping):
        items = list(bpda.items())
    elif isinstance(bpda, (list, tuple)) and all(isinstance(v, str) for v in bpda):
        if not bpda:
            return BpdaSpec(marked=True)
        items = []
        for entry in bpda:
            name, sep, approx = entry.partition("=")
            if sep and not (name and approx):
                raise UserError(f"bpda entry {entry!r} must be NAME, NAME=FILE.py:FACTORY or {OPS}")
            items.append((name, approx or None))
    else:
        raise UserError(f"bpda must be true, layer names, {{name: approximation}} or {OPS!r}, got {bpda!r}")
    for name, approx in items:
        if not isinstance(name, str) or not name:
            raise UserError(f"bpda layer names must be non-empty strings, got {name!r}")
        if name == OPS:
            if approx is not None:
                raise UserError(f"bpda {OPS!r} takes no approximation (got {OPS}={approx!r})")
            spec.ops = True
        else:
            spec.layers[name] = approx
    return spec


def bpda_modules(model: nn.Module, bpda: Bpda) -> Dict[str, nn.Module]:
    """The layers ``bpda`` makes straight-through, by name (a ``UserError`` for a name not in the model)."""
    spec = parse_bpda(bpda)
    if spec is None:
        return {}
    found: Dict[str, nn.Module] = {}
    if spec.marked:
        found = {n: m for n, m in model.named_modules() if getattr(m, "non_differentiable", False)}
        if not found:
            raise UserError("bpda=True but no layer of the model sets non_differentiable = True; "
                            f"name the layers instead (e.g. {opt('bpda', 'quantize')}), or use {opt('bpda', OPS)} "
                            f"for rounding inside the model's own forward")
    by_name = dict(model.named_modules())
    missing = [n for n in spec.layers if n not in by_name]
    if missing:
        raise UserError(f"bpda layer {missing[0]!r} is not in the model; choose from: "
                        f"{', '.join(n for n in by_name if n) or '(no named layers)'}")
    found.update({n: by_name[n] for n in spec.layers})
    return found


def _layer_hook(name: str, spec: BpdaSpec):
    def hook(module: nn.Module, inputs, output):
        if not torch.is_grad_enabled():
            return output
        if not isinstance(output, torch.Tensor):
            raise UserError(f"bpda layer {name!r} ({type(module).__name__}) returns {type(output).__name__}, not a "
                            f"tensor; straight-through needs a tensor output")
        approx = spec.approximation(name, module)
        if approx is None:
            x = inputs[0] if inputs else None
            if not isinstance(x, torch.Tensor) or x.shape != output.shape:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else "?"
                raise UserError(f"bpda layer {name!r} ({type(module).__name__}) maps {shape} to "
                                f"{tuple(output.shape)}: the identity approximation needs equal shapes; give a "
                                f"differentiable approximation ({opt('bpda', f'{name}=FILE.py:FACTORY')}) or a "
                                f"differentiable twin of the whole model ({opt('surrogate', 'FILE.py:FACTORY')})")
            stand_in = x
        else:
            first = inputs[0] if inputs else None
            if isinstance(approx, nn.Module) and isinstance(first, torch.Tensor):
                approx.to(first.device)
            stand_in = approx(*inputs)
            if not isinstance(stand_in, torch.Tensor) or stand_in.shape != output.shape:
                got = tuple(stand_in.shape) if isinstance(stand_in, torch.Tensor) else type(stand_in).__name__
                raise UserError(f"the bpda approximation of layer {name!r} returns {got}; the layer returns "
                                f"{tuple(output.shape)}")
        # the layer's exact value forward; the stand-in's gradient backward
        return output.detach() + (stand_in - stand_in.detach()).to(output.dtype)
    return hook


# -- straight-through operations inside a model's own forward -------------------------------------------------------
def _named(names: Sequence[str], *owners: Any) -> Dict[Any, str]:
    found = {}
    for owner in owners:
        for name in names:
            func = getattr(owner, name, None)
            if func is not None:
                found[func] = name.rstrip("_")
    return found


_ROUNDING = _named(["round", "floor", "ceil", "trunc", "fix", "sign", "sgn", "special_round"], torch, torch.Tensor,
                   torch.special)
_ROUNDING_INPLACE = _named(["round_", "floor_", "ceil_", "trunc_", "fix_", "sign_", "sgn_"], torch.Tensor)
_FLOOR_DIV = _named(["floor_divide", "__floordiv__"], torch, torch.Tensor)
_RFLOOR_DIV = _named(["__rfloordiv__"], torch.Tensor)
_DIV = _named(["div", "divide", "true_divide"], torch, torch.Tensor)
_CASTS = _named(["to", "type", "byte", "char", "short", "int", "long", "float", "double", "half", "bfloat16"],
                torch.Tensor)

#: what ``bpda="ops"`` makes straight-through, by name (the README and the record use these names)
STRAIGHT_THROUGH_OPS = ("round", "floor", "ceil", "trunc", "fix", "sign", "sgn", "floor_divide",
                        "div(rounding_mode=floor|trunc)", "casts to integers (back to floats)")


def _carries_grad(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad and t.is_floating_point()


def _st(out: torch.Tensor, stand_in: torch.Tensor) -> torch.Tensor:
    """``out``'s exact value with ``stand_in``'s gradient (``stand_in − stand_in.detach()`` is exactly zero)."""
    return out.detach() + (stand_in - stand_in.detach()).to(out.dtype)


class StraightThroughOps(TorchFunctionMode):
    """While active, the operations of :data:`STRAIGHT_THROUGH_OPS` applied to a tensor that carries a gradient
    return their exact value with the gradient of their approximation; ``intercepted`` counts them by name.

    A float tensor carrying a gradient cast to an integer dtype is remembered with its float original; an operation
    on such integers that returns floats is straight-through with the same operation applied to the originals
    (true division for floor division), and one that returns integers passes the remembered original on. Where no
    stand-in can be computed (e.g. the integers index a table) the gradient stops: ``cut`` counts those."""

    def __init__(self) -> None:
        super().__init__()
        self.intercepted: Counter = Counter()
        self.cut: Counter = Counter()
        self._origin: Dict[int, tuple] = {}  # id(integer tensor) → (that tensor, its differentiable stand-in)

    def _original(self, t: Any) -> Optional[torch.Tensor]:
        entry = self._origin.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0] is t else None

    def _remember(self, out: Any, stand_in: torch.Tensor) -> None:
        if isinstance(out, torch.Tensor) and not out.is_floating_point() and not out.is_complex():
            self._origin[id(out)] = (out, stand_in)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not torch.is_grad_enabled() or not args:
            return func(*args, **kwargs)
        if any(self._original(t) is not None for t in args[:2]):
            return self._on_integers(func, args, kwargs)
        a = args[0]
        if func in _ROUNDING and _carries_grad(a):
            self.intercepted[_ROUNDING[func]] += 1
            return _st(func(*args, **kwargs), a)
        if func in _ROUNDING_INPLACE and _carries_grad(a):
            self.intercepted[_ROUNDING_INPLACE[func]] += 1
            with torch.no_grad():
                delta = func(a.detach().clone(), *args[1:], **kwargs) - a.detach()
            return a.add_(delta)  # the in-place result, with the identity's gradient
        divisor = args[1] if len(args) > 1 else kwargs.get("other")
        rounding = kwargs.get("rounding_mode", args[2] if len(args) > 2 else None)
        if (func in _FLOOR_DIV or (func in _DIV and rounding in ("floor", "trunc"))) \
                and (_carries_grad(a) or _carries_grad(divisor)):
            self.intercepted["floor_divide" if func in _FLOOR_DIV else f"div({rounding})"] += 1
            return _st(func(*args, **kwargs), torch.true_divide(a, divisor))
        if func in _RFLOOR_DIV and _carries_grad(a):  # number // tensor
            self.intercepted["floor_divide"] += 1
            return _st(func(*args, **kwargs), torch.true_divide(divisor, a))
        out = func(*args, **kwargs)
        if func in _CASTS and _carries_grad(a):
            self._remember(out, a)  # an integer copy of a differentiable tensor
        return out

    def _on_integers(self, func, args, kwargs):
        """``func`` applied to integers that came from a differentiable tensor (see the class docstring)."""
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            return out
        name = _CASTS.get(func) or getattr(func, "__name__", str(func))
        smooth_args = [self._original(t) if self._original(t) is not None else t for t in args]
        smooth_kwargs = {k: v for k, v in kwargs.items() if k != "rounding_mode"}
        smooth = torch.true_divide if func in _FLOOR_DIV or func in _DIV else func
        try:
            stand_in = smooth(*smooth_args, **smooth_kwargs)
            if func in _RFLOOR_DIV:
                stand_in = torch.true_divide(smooth_args[1], smooth_args[0])
        except Exception:  # e.g. the integers index a table: no stand-in, the gradient stops here
            stand_in = None
        if not isinstance(stand_in, torch.Tensor) or stand_in.shape != out.shape or not stand_in.is_floating_point():
            self.cut[name] += 1
            return out
        if out.is_floating_point():
            self.intercepted[f"integers→{name}"] += 1
            return _st(out, stand_in)
        self._remember(out, stand_in)
        return out

    def __exit__(self, *exc):
        self._origin.clear()
        return super().__exit__(*exc)


class _WithOps(nn.Module):
    """``model`` with :class:`StraightThroughOps` active during its forward pass (counts kept in ``mode``)."""

    def __init__(self, model: nn.Module, counts: Optional[Dict[str, Counter]] = None):
        super().__init__()
        self.model = model
        self.counts = counts if counts is not None else {"intercepted": Counter(), "cut": Counter()}

    def forward(self, *args, **kwargs):
        mode = StraightThroughOps()
        with mode:
            out = self.model(*args, **kwargs)
        self.counts["intercepted"].update(mode.intercepted)
        self.counts["cut"].update(mode.cut)
        return out


class _Expectation(nn.Module):
    """Mean logits over ``samples`` forward passes (the model's own randomness is resampled each pass)."""

    def __init__(self, model: nn.Module, samples: int):
        super().__init__()
        self.model = model
        self.samples = samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.model(x).float()
        for _ in range(self.samples - 1):
            total = total + self.model(x).float()
        return total / self.samples


@contextlib.contextmanager
def adaptive(model: nn.Module, eot: int = 1, bpda: Bpda = None,
             counts: Optional[Dict[str, Counter]] = None) -> Iterator[nn.Module]:
    """The model as an adaptive attack should see it; hooks are removed on exit. ``counts`` (optional) collects
    what ``bpda="ops"`` intercepted and what cut the gradient."""
    spec = parse_bpda(bpda)
    handles = [m.register_forward_hook(_layer_hook(name, spec)) for name, m in bpda_modules(model, spec).items()]
    try:
        seen: nn.Module = _WithOps(model, counts) if spec is not None and spec.ops else model
        yield _Expectation(seen, eot) if eot > 1 else seen
    finally:
        for handle in handles:
            handle.remove()


def check_adaptive(model: nn.Module, x: torch.Tensor, bpda: Bpda) -> Dict[str, Any]:
    """One forward and backward pass on ``x`` (a couple of inputs) as the attacks will make them, before any real
    work: a layer name not in the model, a shape the identity cannot pass, a failing approximation, or ``ops`` on a
    model whose forward calls none of the operations is a ``UserError`` now. Returns, for the record, what ``ops``
    intercepted (``straight_through_ops``), where the gradient still stops (``gradient_cut_at``) and whether the
    input gradient is still zero everywhere (``zero_gradient``)."""
    spec = parse_bpda(bpda)
    if spec is None:
        return {}
    counts: Dict[str, Counter] = {"intercepted": Counter(), "cut": Counter()}
    training = model.training
    model.eval()
    grad = None
    try:
        with torch.enable_grad(), adaptive(model, 1, spec, counts) as attacked:
            probe = x.detach().clone().requires_grad_(True)
            out = attacked(probe)
            if isinstance(out, torch.Tensor) and out.requires_grad:
                (grad,) = torch.autograd.grad(torch.log_softmax(out.float(), 1).amax(1).sum(), probe,
                                              allow_unused=True)
    finally:
        model.train(training)
    if spec.ops and not counts["intercepted"]:
        if counts["cut"]:
            raise UserError(f"bpda {OPS!r}: the model's gradient stops at {', '.join(counts['cut'])} on integers made "
                            f"from the input, which no straight-through operation passes; give a differentiable twin "
                            f"({opt('surrogate', 'FILE.py:FACTORY')}) or an approximation of the layer "
                            f"({opt('bpda', 'NAME=FILE.py:FACTORY')})")
        raise UserError(f"bpda {OPS!r}: the model's forward calls none of {', '.join(STRAIGHT_THROUGH_OPS)} on the "
                        f"input's path, so there is nothing to make straight-through; drop {OPS!r}")
    found: Dict[str, Any] = {}
    if spec.ops:
        found["straight_through_ops"] = dict(counts["intercepted"])
        if counts["cut"]:
            found["gradient_cut_at"] = dict(counts["cut"])
    found["zero_gradient"] = grad is None or not bool((grad != 0).any())
    return found
