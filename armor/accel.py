"""Speed options of the training step: mixed precision, channels_last, torch.compile.

Defaults (``auto``): on CUDA, bf16 autocast where the card supports it (fp16 with a GradScaler where it
does not) and channels_last for convolutional models; on CPU and MPS everything stays off unless asked.
``torch.compile`` is only used when asked (``--compile``): it costs a compile of tens of seconds.

Only the training step runs under autocast. The attack's perturbation stays an fp32 tensor (autocast
casts inside the layers, never the input), losses are computed in fp32 (``armor.losses`` casts the
logits), and validation/test evaluation run in fp32.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from .errors import UserError, opt

log = logging.getLogger("armor")

AMP_MODES = ("auto", "off", "bf16", "fp16")  # parsed from user text by armor.config


def resolve_amp(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``mode`` on ``device`` (None = full fp32)."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp mode must be one of {AMP_MODES}, got {mode!r}")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if mode == "bf16":
            log.warning("this GPU has no bf16 support; using fp16 with a gradient scaler instead")
        return torch.float16
    return torch.bfloat16


@dataclass
class Precision:
    """Autocast context + (for fp16) a GradScaler; ``dtype=None`` runs plain fp32."""

    device: torch.device
    dtype: Optional[torch.dtype] = None

    def __post_init__(self) -> None:
        fp16 = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16) if fp16 else None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``loss.backward(); optimizer.step()``, through the gradient scaler under fp16."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(option: Any, device: torch.device, model: nn.Module) -> bool:
    """``auto`` = on for convolutional models on CUDA (where cuDNN's NHWC kernels pay off), off elsewhere."""
    if option == "auto":
        return device.type == "cuda" and has_conv(model)
    return bool(option)


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` sharing its parameters with ``model`` (state_dict keys stay unprefixed
    because the trainer saves the original module, not the compiled wrapper)."""
    if not enabled:
        return model
    if not hasattr(torch, "compile"):
        raise UserError(f"{opt('compile')} needs PyTorch ≥ 2.0")
    return torch.compile(model)
