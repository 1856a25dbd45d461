"""Pixel masks and resampling on tensors: HR images masked to the bought patches, LR made from HR."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from models.errors import GridError
from models.geo.patch_grid import PatchGrid

FillMode = Literal["lr", "zeros"]


def downsample(hr: torch.Tensor, factor: int) -> torch.Tensor:
    """Antialiased (area-average) downsampling, as the LR image is made from HR."""
    if factor == 1:
        return hr
    return F.avg_pool2d(hr, kernel_size=factor, stride=factor)


def upsample(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(lr, size=size, mode="bilinear", align_corners=False)


def mask_images(
    hr: torch.Tensor,
    actions: torch.Tensor,
    grid: PatchGrid,
    fill: torch.Tensor | None = None,
) -> torch.Tensor:
    """Keep the HR pixels of sampled patches; elsewhere use ``fill`` (upsampled LR) or zeros.

    ``hr`` is (B, C, H, W) in normalised units, so zeros mean "the band mean".
    """
    mask = grid.expand(actions.to(hr.dtype), hr.shape[-2], hr.shape[-1])
    if fill is None:
        return hr * mask
    if fill.shape != hr.shape:
        raise GridError(f"fill shape {tuple(fill.shape)} differs from image shape {tuple(hr.shape)}")
    return fill + (hr - fill) * mask
