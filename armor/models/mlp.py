from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from .common import MODELS


@MODELS.register("mlp")
def mlp(input_shape: Sequence[int], num_classes: int, hidden: int = 256, depth: int = 2) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
