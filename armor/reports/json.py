"""Results are plain dicts written as JSON first; every table and plot is made from the JSON."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..train.checkpoint import atomic_write


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(_clean(data), indent=2) + "\n"
    atomic_write(Path(path), lambda f: f.write(text.encode()))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
