"""Split CIFAR-10 (or any x_train/y_train/x_test/y_test .npz) into .npy chunks small enough to carry to a
GPU machine one at a time, plus ``manifest.json`` with the sha256 of every chunk and of every whole array.

    python benchmarks/make_cifar_chunks.py                      # ../shared/data/cifar10.npz → data_chunks/
    python benchmarks/make_cifar_chunks.py --src my.npz --out chunks --max-mib 20

The exact CIFAR-10 copy is checked against the raw-array sha256 of ``../shared/data/README.md`` (the table
armor keeps in ``armor.data.datasets.ARRAY_SHA256``) before anything is written. The arrays are stored as they
are (uint8, channel-last for CIFAR-10); each array is split along its first axis into pieces of at most
``--max-mib`` MiB (default 55). ``data_chunks/`` is git-ignored, so the chunks never enter a commit; they
travel only where a call names them. The inverse is ``python benchmarks/gpu_check.py assemble``, which
verifies every chunk and the reassembled arrays against the manifest.

The script also prints a transfer plan: which chunks to carry in which call (at most ``--call-mib`` MiB a
call, the checkout's own size left aside), lightest call last, since the last call also runs the check.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # gpu_check beside this file; the checkout's armor, installed or not

from armor.errors import UserError  # noqa: E402  (torch-free)
from gpu_check import ARRAYS, FORMAT, MANIFEST, MIB, check_exact_copy, sha256_array, sha256_file  # noqa: E402

#: room for a .npy header (a few hundred bytes at most) inside each chunk's limit
HEADER_ROOM = 4096
CHUNK_NAME = re.compile(r"^(x|y)_(train|test)\.\d+\.npy$")


def read_arrays(src: Path) -> Dict[str, np.ndarray]:
    src = Path(src)
    if not src.is_file():
        raise UserError(f"source {str(src)!r} does not exist; pass --src PATH.npz (x_train, y_train, x_test, y_test)")
    try:
        with np.load(src, allow_pickle=False) as archive:
            missing = [k for k in ARRAYS if k not in archive.files]
            if missing:
                raise UserError(f"{src} lacks array(s) {', '.join(missing)}; it needs {', '.join(ARRAYS)}")
            return {k: archive[k] for k in ARRAYS}
    except UserError:
        raise
    except Exception as exc:  # not a zip, truncated, pickled object arrays
        raise UserError(f"cannot read {src} as an .npz archive of arrays ({type(exc).__name__}: {exc})") from None


def _clear_old_chunks(out: Path) -> None:
    """Remove an earlier chunk set (its manifest and chunk files) so no stale chunk is left beside the new ones."""
    for path in out.iterdir():
        if path.name == MANIFEST or CHUNK_NAME.match(path.name):
            path.unlink()


def transfer_plan(chunks: Dict[str, Dict[str, Any]], call_bytes: int) -> List[List[str]]:
    """Chunks grouped into calls of at most ``call_bytes`` each (first-fit, largest first), lightest call last."""
    calls: List[List[str]] = []
    loads: List[int] = []
    for name in sorted(chunks, key=lambda n: (-chunks[n]["bytes"], n)):
        size = chunks[name]["bytes"]
        for i, load in enumerate(loads):
            if load + size <= call_bytes:
                calls[i].append(name)
                loads[i] += size
                break
        else:
            calls.append([name])
            loads.append(size)
    order = sorted(range(len(calls)), key=lambda i: -loads[i])
    return [sorted(calls[i]) for i in order]


def make_chunks(src: Path, out: Path, max_bytes: int = 55 * MIB, name: str = "cifar10",
                verify: Optional[bool] = None, call_bytes: int = 60 * MIB) -> Dict[str, Any]:
    """Write the chunks of ``src`` and their manifest into ``out``; returns the manifest.

    ``verify`` (default: when ``name`` has a checksum table, i.e. cifar10/mnist/fashion_mnist) checks the
    source arrays against the exact copy before anything is written.
    """
    if max_bytes <= HEADER_ROOM:
        raise UserError(f"the chunk limit must exceed {HEADER_ROOM} bytes, got {max_bytes}")
    if call_bytes < max_bytes:
        raise UserError(f"a call ({call_bytes} bytes) must hold at least one chunk ({max_bytes} bytes)")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise UserError(f"name must be letters, digits, '_' or '-', got {name!r}")
    src = Path(src)
    arrays = read_arrays(src)
    if verify is None:
        from armor.data.datasets import ARRAY_SHA256

        verify = name in ARRAY_SHA256
    if verify:
        check_exact_copy(arrays, name, str(src), hint="re-copy it, or pass --name NAME to chunk other data")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {str(out)!r} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    _clear_old_chunks(out)
    manifest: Dict[str, Any] = {"format": FORMAT, "version": 1, "name": name, "source": src.name,
                                "source_bytes": src.stat().st_size, "exact_copy_checked": bool(verify),
                                "max_chunk_bytes": max_bytes, "arrays": {}, "chunks": {}}
    for key in ARRAYS:
        a = np.ascontiguousarray(arrays[key])
        if a.ndim == 0 or len(a) == 0:
            raise UserError(f"{src}: array {key} is empty or a scalar; it needs at least one row")
        row_bytes = max(1, a.nbytes // len(a))
        rows_fit = (max_bytes - HEADER_ROOM) // row_bytes
        if rows_fit < 1:
            raise UserError(f"one row of {key} ({row_bytes} bytes) does not fit in a {max_bytes}-byte chunk")
        pieces = math.ceil(len(a) / rows_fit)
        per = math.ceil(len(a) / pieces)  # balanced pieces
        names = []
        for i, start in enumerate(range(0, len(a), per)):
            stop = min(start + per, len(a))
            chunk = f"{key}.{i}.npy"
            path = out / chunk
            np.save(path, a[start:stop], allow_pickle=False)
            size = path.stat().st_size
            if size > max_bytes:  # cannot happen with HEADER_ROOM, but a chunk over the limit must never pass
                raise UserError(f"chunk {chunk} is {size} bytes, over the {max_bytes}-byte limit")
            manifest["chunks"][chunk] = {"array": key, "rows": [start, stop], "bytes": size,
                                         "sha256": sha256_file(path)}
            names.append(chunk)
        manifest["arrays"][key] = {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": sha256_array(a),
                                   "chunks": names}
    manifest["id"] = hashlib.sha256("".join(manifest["arrays"][k]["sha256"] for k in ARRAYS).encode()).hexdigest()
    manifest["calls"] = transfer_plan(manifest["chunks"], call_bytes)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / MANIFEST)  # written last: a manifest means every chunk it lists is complete
    return manifest


def _ignored_by_git(path: Path) -> Optional[bool]:
    import subprocess

    try:
        res = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path.resolve())],
                             capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(res.returncode)


def describe(manifest: Dict[str, Any], out: Path) -> str:
    lines = [f"{len(manifest['chunks'])} chunks of {manifest['name']} in {out} (each ≤ "
             f"{manifest['max_chunk_bytes'] / MIB:g} MiB; exact copy checked: {manifest['exact_copy_checked']}):"]
    for chunk, info in manifest["chunks"].items():
        lines.append(f"  {chunk:16s} {info['bytes'] / MIB:7.2f} MiB  rows {info['rows'][0]}:{info['rows'][1]}  "
                     f"sha256 {info['sha256'][:16]}…")
    try:
        rel = out.resolve().relative_to(ROOT)
    except ValueError:
        rel = out
    lines.append("carry them to the device in these calls (the manifest goes with every call; the last one "
                 "runs the check):")
    for i, call in enumerate(manifest["calls"], 1):
        carry = [f"{rel}/{c}" for c in call] + [f"{rel}/{MANIFEST}"]
        command = "bash benchmarks/gpu_check.sh" + ("" if i == len(manifest["calls"]) else " stash")
        lines.append(f"  call {i}: carry {json.dumps(carry)}  command: {command}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Split an x_train/y_train/x_test/y_test .npz into ≤ 55 MiB .npy chunks "
                                            "plus manifest.json (sha256 of each chunk and array).")
    p.add_argument("--src", default=None, help="source .npz (default: cifar10.npz in $ARMOR_DATA_DIR, ./data or "
                                               "../shared/data)")
    p.add_argument("--out", default=str(ROOT / "data_chunks"), help="output folder (default data_chunks/, "
                                                                    "git-ignored)")
    p.add_argument("--max-mib", type=float, default=55.0, help="largest chunk in MiB (default 55)")
    p.add_argument("--call-mib", type=float, default=60.0, help="most chunk data carried in one call, in MiB "
                                                                "(default 60: the 64 MiB limit less the checkout)")
    p.add_argument("--name", default="cifar10", help="dataset name; cifar10/mnist/fashion_mnist are checked against "
                                                     "their exact-copy checksums (default cifar10)")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=None,
                   help="skip the exact-copy checksum check")
    args = p.parse_args(argv)
    try:
        src = Path(args.src) if args.src else None
        if src is None:
            from armor.data.datasets import default_data_dir

            folder = default_data_dir()
            src = (folder or Path("../shared/data")) / f"{args.name}.npz"
        if not (0 < args.max_mib <= 1024):
            raise UserError(f"--max-mib must be a number in (0, 1024], got {args.max_mib}")
        out = Path(args.out)
        manifest = make_chunks(src, out, max_bytes=int(args.max_mib * MIB), name=args.name, verify=args.verify,
                               call_bytes=int(args.call_mib * MIB))
        print(describe(manifest, out))
        if _ignored_by_git(out) is False:
            print(f"warning: {out} is not git-ignored here: its chunks would travel as untracked files in every call")
    except UserError as exc:
        print(f"make_cifar_chunks: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
