"""All file I/O of armor in one place: atomic writes, JSON / JSONL, checkpoints, safetensors.

Every write goes to a temporary file in the target's folder, is flushed to disk and renamed over the
target, so a crash mid-write leaves the previous file intact. Checkpoints are read with
``torch.load(weights_only=True)`` and ``.npz`` files with ``allow_pickle=False``: loading never runs code.
Nothing here knows what the files mean; :mod:`armor.results` owns the record schema.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from . import faults
from .errors import UserError, opt

CHECKPOINT_FORMAT = "armor-checkpoint"


def atomic_write(path: str | Path, write: Callable[[Any], None], fault: Optional[str] = None) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, fsync, then rename over ``path``. ``fault`` names
    the write's fault-injection points (``<fault>_tmp_written``, ``<fault>_renamed``; see :mod:`armor.faults`)."""
    path = Path(path)
    if path.exists() and not path.is_file():  # never rename over a folder, a device (/dev/null) or a pipe
        raise UserError(f"cannot write {str(path)!r}: it exists and is not a regular file")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fault:
                faults.point(f"{fault}_tmp_written")
            os.fsync(f.fileno())
        os.replace(tmp, path)
        if fault:
            faults.point(f"{fault}_renamed")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def stale_temp_files(folder: Path, prefix: str = ".") -> List[Path]:
    """Temp files of :func:`atomic_write` (``.<name>.<random>.tmp``) that a killed write left behind."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(prefix) and p.name.endswith(".tmp"))


def remove_stale_temp_files(folder: Path, prefix: str = ".") -> None:
    """Remove them (call with the folder locked: no other armor process is writing there)."""
    import logging

    for path in stale_temp_files(folder, prefix):
        try:
            path.unlink()
            logging.getLogger("armor").info("removed %s, left by an interrupted write", path)
        except OSError:
            pass


# -- JSON --------------------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(_clean(data), indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``; a missing or unreadable file is a one-line ``UserError``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"cannot read {str(path)!r} as JSON: {str(exc).splitlines()[0][:120]}") from None


# -- JSON lines --------------------------------------------------------------------------------------------------
def append_jsonl(path: str | Path, record: Dict[str, Any]) -> None:
    """One whole line per write, flushed, so a crash never leaves a half record that breaks reading."""
    line = (json.dumps(_clean(record), sort_keys=False) + "\n").encode()
    with open(path, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> List[Dict[str, Any]]:
    """Every complete record; a truncated last line (a crash mid-write) is ignored."""
    return list(_iter_jsonl(path))


def _iter_jsonl(path: str | Path) -> Iterator[Dict[str, Any]]:
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


def truncate_jsonl(path: str | Path, keep: Callable[[Dict[str, Any]], bool]) -> None:
    """Rewrite ``path`` (atomically) with only the records for which ``keep(record)`` is true."""
    records = [r for r in read_jsonl(path) if keep(r)]
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


# -- checkpoints -------------------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, state: Dict[str, Any]) -> None:
    import torch

    from .version import __version__

    payload = {"format": CHECKPOINT_FORMAT, "armor_version": __version__, **state}
    atomic_write(Path(path), lambda f: torch.save(payload, f), fault="checkpoint")


def check_file(path: str | Path, what: str = "checkpoint") -> Path:
    """``path`` as a ``Path`` if it is an existing file; a folder or a missing path is a one-line ``UserError``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; pass a file such as {str(path / 'best.pt')!r}")
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} does not exist")
    return path


def load_torch_file(path: str | Path, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with one-line errors: tensors and plain data only, never code."""
    import torch

    path = check_file(path, what)
    kind = _file_kind(path)
    if kind not in ("zip", "pickle"):
        raise UserError(f"cannot load {what} {str(path)!r}: it is not a PyTorch file ({kind}; a checkpoint is a zip "
                        f"archive written by torch.save)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        damaged = "central directory" in text or "failed reading zip" in text
        if "Unsupported global" in text or ("weights_only" in text and not damaged):
            reason = "it holds pickled Python objects that could run code, and armor refuses to unpickle those"
        elif damaged or kind == "zip":
            reason = "it is truncated or damaged (an incomplete zip archive): re-copy it, or resume from another one"
        else:
            reason = text[:200] or type(exc).__name__
        raise UserError(f"cannot load {what} {str(path)!r}: {reason}") from None


def _file_kind(path: Path) -> str:
    """What a file looks like from its first bytes: ``zip`` (torch.save), ``pickle``, ``empty``, ``text`` or
    ``unknown bytes``."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "unknown bytes"


def is_checkpoint(state: Any) -> bool:
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read an armor checkpoint safely; a missing, corrupt or foreign file is a one-line ``UserError``."""
    state = load_torch_file(path, map_location)
    if not is_checkpoint(state):
        raise UserError(f"{str(path)!r} is not an armor checkpoint (no '{CHECKPOINT_FORMAT}' marker); for a "
                        f"model of your own, pass {opt('model', 'FILE.py:FACTORY')} {opt('weights', str(path))}")
    return state


# -- safetensors ---------------------------------------------------------------------------------------------------
def export_safetensors(state_dict: Dict[str, Any], path: str | Path, metadata: Dict[str, Any]) -> None:
    """Weights only, in the safetensors format (no code can hide in it); ``metadata`` values are JSON."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    blob = save(tensors, metadata={k: json.dumps(v) for k, v in metadata.items()})
    write_bytes(path, blob)


def read_safetensors(path: str | Path) -> tuple[Dict[str, Any], Dict[str, Any]]:
    """(tensors, metadata with JSON values decoded) of a ``.safetensors`` file, as one-line errors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights {str(path)!r} do not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            raw = f.metadata() or {}
    except Exception as exc:
        raise UserError(f"cannot read {str(path)!r} as safetensors ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    meta: Dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return tensors, meta
