"""The common in-memory form every dataset is turned into before training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageSet:
    """HR images of one split in raw band units, their labels, and what describes them.

    ``hr`` is (N, C, H, W) float32 (or uint8 to save memory); LR images are
    derived from it by area averaging with ``lr_factor``.
    ``extra`` holds optional per-image tensors (e.g. ``object_mask`` (N, H, W)).
    """

    hr: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    bands: list[str]
    lr_factor: int
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hr.dim() != 4 or self.hr.shape[1] != len(self.bands):
            raise ValueError(f"hr must be (N, {len(self.bands)}, H, W), got {tuple(self.hr.shape)}")
        if self.labels.shape != (self.hr.shape[0],):
            raise ValueError("one label per image is required")

    def __len__(self) -> int:
        return self.hr.shape[0]

    @property
    def hr_size(self) -> tuple[int, int]:
        return int(self.hr.shape[-2]), int(self.hr.shape[-1])

    @property
    def lr_size(self) -> tuple[int, int]:
        h, w = self.hr_size
        return h // self.lr_factor, w // self.lr_factor

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        return ImageSet(
            self.hr[index],
            self.labels[index],
            self.class_names,
            self.bands,
            self.lr_factor,
            {k: v[index] for k, v in self.extra.items()},
            dict(self.info),
        )

    def band_statistics(self) -> tuple[list[float], list[float]]:
        """Per-band mean and std, computed on this split (call it on the training split)."""
        x = self.hr.float()
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return mean.tolist(), std.tolist()


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet
    test: ImageSet
