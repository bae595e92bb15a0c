"""Budgets as people write them (``8/255``, ``0.3``, ``linf``), parsed without importing torch.

:mod:`armor.threat` builds the threat model from these; the config reads user text through them.
"""
from __future__ import annotations

import math
import re
from typing import Union

from .errors import UserError

NORMS = ("linf", "l2")

#: The budgets people use for each dataset (L∞ unless noted).
DEFAULT_EPS = {"cifar10": 8 / 255, "imagenet": 4 / 255, "mnist": 0.3, "fashion_mnist": 0.1, "digits": 0.2,
               "breast_cancer": 0.1}

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*/\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*$", re.I)


def parse_eps(value: Union[str, float, int], name: str = "eps") -> float:
    """Read a budget written as people write it: ``8/255``, ``"8/255"``, ``0.3``, ``"0.3"``."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a positive number such as 0.3 or 8/255, got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        match = _FRACTION.match(value)
        try:
            if match:
                denominator = float(match.group(2))
                eps = float(match.group(1)) / denominator if denominator else math.inf
            else:
                eps = float(value)
        except ValueError:
            eps = math.nan
    else:
        eps = math.nan
    if not math.isfinite(eps) or eps <= 0:
        raise UserError(f"{name} must be a positive number such as 0.3 or 8/255, got {value!r}")
    return eps


def parse_norm(value: str) -> str:
    norm = str(value).lower().replace("∞", "inf")
    norm = {"inf": "linf", "l_inf": "linf", "linfty": "linf", "2": "l2"}.get(norm, norm)
    if norm not in NORMS:
        raise UserError(f"unknown norm {value!r}; choose one of: {', '.join(NORMS)}")
    return norm
