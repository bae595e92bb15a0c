"""The small CNN of the TRADES/MART MNIST experiments, sized from the input (8×8 digits, 28×28, 32×32)."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from .common import MODELS


@MODELS.register("small_cnn")
def small_cnn(input_shape: Sequence[int], num_classes: int, width: int = 32, hidden: int = 200,
              dropout: float = 0.0) -> nn.Module:
    """conv(w)-conv(w)-pool-conv(2w)-conv(2w)-pool-fc(hidden)-fc(hidden)-fc(classes)."""
    channels, height, width_px = input_shape
    if height < 4 or width_px < 4:
        raise ValueError(f"small_cnn needs inputs of at least 4×4 pixels, got {height}×{width_px}")

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

    features = nn.Sequential(*conv(channels, width), *conv(width, width), nn.MaxPool2d(2),
                             *conv(width, 2 * width), *conv(2 * width, 2 * width), nn.MaxPool2d(2))
    flat = 2 * width * (height // 4) * (width_px // 4)
    head = [nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(inplace=True)]
    if dropout:
        head.append(nn.Dropout(dropout))
    head += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)]
    return nn.Sequential(features, *head)


@MODELS.register("tiny_cnn")
def tiny_cnn(input_shape: Sequence[int], num_classes: int, width: int = 16, hidden: int = 100) -> nn.Module:
    """Wong et al.'s MNIST net: conv(w, 4×4, stride 2)-conv(2w, 4×4, stride 2)-fc(hidden)-fc(classes)."""
    channels, height, width_px = input_shape
    out_h, out_w = (height + 2 - 4) // 2 + 1, (width_px + 2 - 4) // 2 + 1
    out_h, out_w = (out_h + 2 - 4) // 2 + 1, (out_w + 2 - 4) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(2 * width * out_h * out_w, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes))
