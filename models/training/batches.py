"""Mini-batches on the training device: normalised HR, its LR version, labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from models.datasets.base import ImageSet
from models.nn.checkpoint import standardise
from models.nn.grid import downsample


@dataclass
class Batch:
    hr: torch.Tensor  # normalised (B, C, H, W)
    lr: torch.Tensor  # normalised (B, C, h, w), area-averaged from hr
    labels: torch.Tensor
    index: torch.Tensor  # rows of the ImageSet


class Normaliser:
    """The bundle's band statistics applied to training batches (``models.nn.checkpoint.standardise``)."""

    def __init__(self, mean: list[float], std: list[float], device: torch.device) -> None:
        self.mean, self.std = list(mean), list(std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return standardise(x, self.mean, self.std)


def iterate(
    data: ImageSet,
    batch_size: int,
    normalise: Normaliser,
    device: torch.device,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    flip: bool = False,
) -> Iterator[Batch]:
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        hr = normalise(data.hr[idx].to(device))
        if flip:
            # Horizontal flips only: they keep the patch grid's rows, and labels are flip-invariant.
            flips = torch.rand(len(idx), generator=generator) < 0.5
            hr[flips.to(device)] = hr[flips.to(device)].flip(-1)
        yield Batch(hr, downsample(hr, data.lr_factor), data.labels[idx].to(device), idx)


def num_batches(data: ImageSet, batch_size: int) -> int:
    return (len(data) + batch_size - 1) // batch_size
