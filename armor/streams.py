"""Per-example random streams: an attack's randomness that does not depend on how examples are batched.

An evaluation draws every random start, restart and Square proposal from :class:`Streams`: row ``i`` of a draw
comes from the stream of example ``index[i]`` (its position in the evaluated split) under a key — the seed, the
attack's label and what the draw is for (``("start", restart)``, ``("window", query)``, ...). The numbers are a
counter-based hash of (seed, key, draw number, example index, element position), computed with 32-bit integer
arithmetic (numpy uint32, wrapping mod 2^32) and moved to the inputs' device, so every device gives the same bits:
no ``torch.Generator`` per example and no global RNG. An example therefore gets the same random numbers in a
batch of 17 or 256, on one process or eight, and after a resume. (Floating-point results of a model can still
differ slightly between batch shapes; the random numbers do not.)

The hash is Wellons' ``lowbias32`` integer mixer applied three times (row, element, key); its output is
uniform enough for attack starts and proposals, and it is not meant for anything cryptographic.

Where no stream is given (training, a direct ``attack(model, x, y)`` call) :func:`uniform`, :func:`normal` and
:func:`integers` draw from torch's global RNG (or a ``torch.Generator``) exactly as ``torch.rand``/``randn``/
``randint`` would, so training keeps its speed and its random sequence.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

_M32 = 0xFFFFFFFF
_U16, _U15 = np.uint32(16), np.uint32(15)
_C1, _C2 = np.uint32(0x7FEB352D), np.uint32(0x846CA68B)


def _mix(h: np.ndarray) -> np.ndarray:
    """lowbias32 (C. Wellons): a bijection of 32-bit values with good avalanche (uint32 arrays, products mod 2^32)."""
    h = h ^ (h >> _U16)
    h = h * _C1
    h = h ^ (h >> _U15)
    h = h * _C2
    return h ^ (h >> _U16)


class Streams:
    """The random streams of a batch's rows: row ``i`` draws from example ``index[i]``'s stream under ``key``.

    ``child(*labels)`` extends the key (a restart, a target class, a query); ``rows(sel)`` keeps the streams of
    some rows only (an attack working on a subset). Successive draws from one object differ (a draw counter is
    part of the key); use a fresh ``child`` for each purpose, so that what an example draws never depends on
    which other examples were drawn for.
    """

    def __init__(self, seed: int, index: torch.Tensor, key: Tuple[Any, ...] = ()):
        self.seed = int(seed)
        self.index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        self.key = tuple(key)
        self._draws = 0

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed}, key={self.key}, rows={len(self)})"

    def child(self, *labels: Any) -> "Streams":
        return Streams(self.seed, self.index, self.key + tuple(labels))

    def rows(self, sel: Union[torch.Tensor, slice, Sequence[int]]) -> "Streams":
        sub = Streams(self.seed, self.index[sel.to(self.index.device) if isinstance(sel, torch.Tensor) else sel],
                      self.key)
        sub._draws = self._draws
        return sub

    # -- raw bits ----------------------------------------------------------------------------------------------------
    def _words(self) -> Tuple[int, int, int]:
        digest = hashlib.blake2b(repr((self.seed, self.key, self._draws)).encode(), digest_size=12).digest()
        self._draws += 1
        return tuple(int.from_bytes(digest[i:i + 4], "little") for i in (0, 4, 8))  # type: ignore[return-value]

    def bits(self, shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """Uniform 32-bit integers (int64 tensor of ``shape``; ``shape[0]`` = number of rows)."""
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self):
            raise ValueError(f"a draw from {self!r} must have one row per stream, got shape {shape}")
        k1, k2, k3 = self._words()
        # numpy's uint32 arithmetic wraps mod 2^32 by definition (the same bits on every machine), and a dozen
        # numpy operations on a Square proposal's few numbers cost a tenth of as many torch kernel calls
        idx = self.index.cpu().numpy().astype(np.int64)
        row = _mix(_mix((idx & _M32).astype(np.uint32) ^ np.uint32(k1)) ^ (idx >> 32).astype(np.uint32)
                   ^ np.uint32(k2))
        per_row = math.prod(shape[1:])
        pos = _mix(np.arange(per_row, dtype=np.uint32) ^ np.uint32(k3))
        out = _mix(row[:, None] ^ pos[None, :]).astype(np.int64).reshape(shape)
        return torch.from_numpy(out).to(device)

    # -- distributions -----------------------------------------------------------------------------------------------
    def uniform(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Uniform in [0, 1) (24-bit resolution), dtype and device of ``like``."""
        return ((self.bits(shape, like.device) >> 8).to(torch.float32) * 2.0 ** -24).to(like.dtype)

    def normal(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Standard normal (Box–Muller on two uniform draws)."""
        u1 = ((self.bits(shape, like.device) >> 8).to(torch.float32) + 0.5) * 2.0 ** -24  # in (0, 1)
        u2 = (self.bits(shape, like.device) >> 8).to(torch.float32) * 2.0 ** -24
        return ((-2.0 * u1.log()).sqrt() * torch.cos(2 * math.pi * u2)).to(like.dtype)

    def integers(self, low: int, high: int, shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """Uniform integers in [low, high) (int64)."""
        span = int(high) - int(low)
        if span < 1 or span > 2 ** 31:
            raise ValueError(f"integers needs 1 ≤ high − low ≤ 2^31, got [{low}, {high})")
        return int(low) + (((self.bits(shape, device) >> 8) * span) >> 24)


Source = Union[None, torch.Generator, Streams]


def uniform(shape: Sequence[int], like: torch.Tensor, source: Source = None) -> torch.Tensor:
    """``torch.rand`` from ``source``: per-example :class:`Streams`, a ``torch.Generator`` or (None) the global RNG."""
    if isinstance(source, Streams):
        return source.uniform(shape, like)
    return torch.rand(tuple(shape), device=like.device, dtype=like.dtype, generator=source)


def normal(shape: Sequence[int], like: torch.Tensor, source: Source = None) -> torch.Tensor:
    """``torch.randn`` from ``source`` (see :func:`uniform`)."""
    if isinstance(source, Streams):
        return source.normal(shape, like)
    return torch.randn(tuple(shape), device=like.device, dtype=like.dtype, generator=source)


def integers(low: int, high: int, shape: Sequence[int], device: torch.device, source: Source = None) -> torch.Tensor:
    """``torch.randint(low, high, shape)`` from ``source`` (see :func:`uniform`)."""
    if isinstance(source, Streams):
        return source.integers(low, high, shape, device)
    return torch.randint(int(low), int(high), tuple(shape), device=device, generator=source)


def child(source: Optional[Streams], *labels: Any, rows: Any = None) -> Optional[Streams]:
    """``source.child(*labels)`` (restricted to ``rows``), or None where there are no per-example streams."""
    if source is None:
        return None
    out = source.child(*labels)
    return out if rows is None else out.rows(rows)
