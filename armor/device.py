"""Which device a run uses: ``auto`` picks CUDA, then MPS, then the CPU."""
from __future__ import annotations

from .errors import UserError, opt

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_name(name: str) -> str:
    name = str(name)
    if name not in ("auto", "cpu", "cuda", "mps") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise UserError(f"unknown device {name!r}; choose one of: {', '.join(DEVICES)}")
    return name


def pick_device(name: str = "auto"):
    import torch

    name = check_device_name(name)
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but CUDA is not available here; use {opt('device', 'cpu')}")
        if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"device 'mps' asked for, but MPS is not available here; use {opt('device', 'cpu')}")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
