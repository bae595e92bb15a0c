"""Wide ResNet (Zagoruyko & Komodakis 2016); WRN-34-10 is the usual robust CIFAR-10 model."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import MODELS
from .preact_resnet import PreActBlock  # the same pre-activation block, wider


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen_factor: int, channels: int, num_classes: int):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"wide_resnet depth must be 6n+4 (e.g. 16, 28, 34), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(PreActBlock(cin, cout, 2 if (j == 0 and stage > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.linear = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("wide_resnet")
def wide_resnet(input_shape: Sequence[int], num_classes: int, depth: int = 34, widen_factor: int = 10) -> nn.Module:
    return WideResNet(depth, widen_factor, input_shape[0], num_classes)
