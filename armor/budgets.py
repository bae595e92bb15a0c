"""Budgets as people write them (``8/255``, ``0.3``, ``linf``), parsed without importing torch.

:mod:`armor.threat` builds the threat model from these; the config reads user text through them.
"""
from __future__ import annotations

import math
import re
from typing import Union

from .errors import UserError

NORMS = ("linf", "l2", "l1")

#: How tables and reports write each norm, and how result records name it (RobustBench's spelling).
NORM_SYMBOLS = {"linf": "L∞", "l2": "L2", "l1": "L1"}
NORM_LABELS = {"linf": "Linf", "l2": "L2", "l1": "L1"}

#: The budgets people use for each dataset (L∞ unless noted).
DEFAULT_EPS = {"cifar10": 8 / 255, "imagenet": 4 / 255, "mnist": 0.3, "fashion_mnist": 0.1, "digits": 0.2,
               "breast_cancer": 0.1}

#: L1 budgets: CIFAR-10 ε = 12 (AutoAttack's L1 version and Croce & Hein 2021, "Mind the box"), MNIST ε = 10 (the
#: usual L1 MNIST budget since Tramèr & Boneh 2019), digits ε = 2: two of the 64 pixels of an 8×8 digit turned
#: fully on or off (or the same mass spread over more pixels), about the share of its mass that MNIST's ε = 10 is
#: of a 28×28 digit (10 of ~100 lit pixels ≈ 2 of the ~20 lit pixels of an 8×8 digit).
DEFAULT_EPS_L1 = {"cifar10": 12.0, "mnist": 10.0, "digits": 2.0}

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
    norm = {"inf": "linf", "l_inf": "linf", "linfty": "linf", "2": "l2", "1": "l1"}.get(norm, norm)
    if norm not in NORMS:
        raise UserError(f"unknown norm {value!r}; choose one of: {', '.join(NORMS)}")
    return norm


def norm_symbol(norm: str) -> str:
    """``L∞``, ``L2``, ``L1`` (anything else as given: a record from a newer armor still renders)."""
    return NORM_SYMBOLS.get(norm, str(norm))


def default_eps(dataset: str, norm: str = "linf") -> float:
    """The usual budget of ``dataset`` in ``norm``: :data:`DEFAULT_EPS` for L∞ (and, as before, for L2), and
    :data:`DEFAULT_EPS_L1` for L1, where an unknown dataset has no default (a ``UserError`` asking for ε)."""
    if norm == "l1":
        if dataset not in DEFAULT_EPS_L1:
            raise UserError(f"there is no usual L1 budget for dataset {dataset!r} (armor knows "
                            f"{', '.join(f'{k} {v:g}' for k, v in DEFAULT_EPS_L1.items())}); give eps")
        return DEFAULT_EPS_L1[dataset]
    return DEFAULT_EPS.get(dataset, 8 / 255)
