"""Small CIFAR-style ResNets (He et al. 2016, option-B shortcuts) written here, no torchvision.

Depth follows the CIFAR rule 6n + 2 (8, 14, 20, 32, ...): three stages of n
basic blocks with widths w, 2w, 4w. ``stem_stride`` > 1 lets a 64-px input
cost what a 32-px one does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ResNetConfig:
    in_channels: int
    num_outputs: int
    depth: int = 8
    width: int = 16
    stem_stride: int = 1

    def __post_init__(self) -> None:
        if (self.depth - 2) % 6 or self.depth < 8:
            raise ValueError(f"ResNet depth must be 6n + 2 with n >= 1, got {self.depth}")
        if self.in_channels < 1 or self.num_outputs < 1 or self.width < 1 or self.stem_stride < 1:
            raise ValueError(f"invalid ResNet config {self}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        n = (config.depth - 2) // 6
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, config.stem_stride, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        in_planes = w
        for stage, planes in enumerate((w, 2 * w, 4 * w)):
            for block in range(n):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(in_planes, config.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last runs these small convolutions about 1.4x faster on CPU (oneDNN).
        x = self.layers(self.stem(x.contiguous(memory_format=torch.channels_last)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_resnet(config: ResNetConfig | dict) -> ResNet:
    if isinstance(config, dict):
        config = ResNetConfig(**config)
    return ResNet(config).to(memory_format=torch.channels_last)
