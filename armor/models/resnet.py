"""ResNet-50 (He et al. 2016, bottleneck blocks [3, 4, 6, 3]): the standard ImageNet model of robust training
(e.g. Salman et al. 2020, Wong et al. 2020 at L∞ 4/255). The ImageNet stem (7×7 stride-2 convolution and max
pooling) is used for inputs of 64 pixels and more; smaller inputs get a 3×3 stride-1 stem."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .common import MODELS


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn3.weight)  # each block starts as the identity (Goyal et al. 2017)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks: Sequence[int], channels: int, num_classes: int, width: int = 64,
                 large_stem: bool = True):
        super().__init__()
        if large_stem:
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(inplace=True))
        layers, cin = [], width
        for i, n in enumerate(blocks):
            w = width * 2 ** i
            for j in range(n):
                layers.append(Bottleneck(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


@MODELS.register("resnet50")
def resnet50(input_shape: Sequence[int], num_classes: int, width: int = 64) -> nn.Module:
    return ResNet([3, 4, 6, 3], input_shape[0], num_classes, width, large_stem=min(input_shape[1:]) >= 64)
