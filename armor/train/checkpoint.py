"""Checkpoints: tensors + plain metadata, written atomically, read with ``weights_only=True``.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed over the
old one, so a crash mid-write leaves the previous checkpoint intact. Loading never unpickles code.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import torch

from ..errors import UserError

FORMAT = "armor-checkpoint"


def atomic_write(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    from .. import __version__

    payload = {"format": FORMAT, "armor_version": __version__, **state}
    atomic_write(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Read an armor checkpoint safely; a missing, corrupt or foreign file is a one-line ``UserError``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {str(path)!r} is a folder; pass a file such as {str(path / 'best.pt')!r}")
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it holds pickled Python objects that could run code, and armor refuses to unpickle those"
        raise UserError(f"cannot load checkpoint {str(path)!r}: {reason[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not an armor checkpoint (no '{FORMAT}' marker)")
    return state


def export_safetensors(state_dict: Dict[str, torch.Tensor], path: Path, metadata: Dict[str, Any]) -> None:
    """Weights only, in the safetensors format (no code can hide in it)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    blob = save(tensors, metadata={k: json.dumps(v) for k, v in metadata.items()})
    atomic_write(Path(path), lambda f: f.write(blob))


def append_jsonl(path: Path, record: Dict[str, Any]) -> None:
    """One whole line per write, flushed, so a crash never leaves a half record that breaks reading."""
    line = (json.dumps(record, sort_keys=False) + "\n").encode()
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """Every complete record; a truncated last line (a crash mid-write) is ignored."""
    return list(_iter_jsonl(path))


def _iter_jsonl(path: Path) -> Iterator[Dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                break


def truncate_jsonl(path: Path, keep) -> None:
    """Rewrite ``path`` (atomically) with only the records for which ``keep(record)`` is true."""
    records = [r for r in read_jsonl(path) if keep(r)]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    atomic_write(Path(path), lambda f: f.write(data))
