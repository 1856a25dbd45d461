"""The STN baseline of the paper (Sec. 5.2): a spatial transformer that learns where to zoom.

The paper treats the saliency of a Spatial Transformer Network (Jaderberg et al.) as
the policy and buys the top S patches. Here the transformer's localisation network
reads the LR image and places one square zoom window of fixed side (the HR area of
S patches: side = sqrt(S / P) of the image side); a patch's score is the share of it
the window covers (minus a small distance term, so patches outside the window are
ranked by their distance to it). The top k scores are the purchase, so the STN buys
exactly as many HR pixels as PatchDrop at the same k.

The localisation network is stored in a bundle's ``policy`` slot (a ResNet with two
outputs, the window centre), the window side in ``metadata["stn"]["side"]``.
"""

from __future__ import annotations

import torch

from models.geo.patch_grid import PatchGrid
from models.nn.networks import ResNet, ResNetConfig, build_resnet

TIE_BREAK = 1e-3  # weight of the distance term: orders uncovered patches, never outranks coverage


def build_locator(in_channels: int, depth: int = 8, width: int = 16) -> ResNet:
    """The localisation network; its zeroed head starts every window at the image centre."""
    net = build_resnet(ResNetConfig(in_channels, 2, depth, width))
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    return net


def window_side(mean_patches: float, num_patches: int) -> float:
    """Side of the square window, as a fraction of the image side, holding ``mean_patches`` patches of area."""
    if not 0 < mean_patches <= num_patches:
        raise ValueError(f"mean_patches must lie in (0, {num_patches}], got {mean_patches}")
    return (mean_patches / num_patches) ** 0.5


def window_centres(locator_out: torch.Tensor, side: float) -> torch.Tensor:
    """(B, 2) raw outputs -> window centres (y, x) in image fractions, the window kept inside the image."""
    return 0.5 + (0.5 - side / 2) * torch.tanh(locator_out)


def _overlap(centre: torch.Tensor, side: float, cells: int) -> torch.Tensor:
    """(B,) centres -> (B, cells): share of each cell of one axis the window covers."""
    edges = torch.arange(cells + 1, dtype=centre.dtype, device=centre.device) / cells
    lo = torch.maximum(edges[:-1], (centre - side / 2)[:, None])
    hi = torch.minimum(edges[1:], (centre + side / 2)[:, None])
    return (hi - lo).clamp_min(0) * cells


def window_scores(centres: torch.Tensor, side: float, grid: PatchGrid) -> torch.Tensor:
    """(B, 2) centres -> (B, P) row-major patch scores: covered share, ties broken by distance."""
    oy = _overlap(centres[:, 0], side, grid.rows)
    ox = _overlap(centres[:, 1], side, grid.cols)
    cover = (oy[:, :, None] * ox[:, None, :]).reshape(len(centres), -1)
    py = (torch.arange(grid.rows, dtype=centres.dtype, device=centres.device) + 0.5) / grid.rows
    px = (torch.arange(grid.cols, dtype=centres.dtype, device=centres.device) + 0.5) / grid.cols
    dy = py[None, :, None] - centres[:, 0, None, None]
    dx = px[None, None, :] - centres[:, 1, None, None]
    dist = torch.sqrt(dy**2 + dx**2).reshape(len(centres), -1)
    return cover - TIE_BREAK * dist


def stn_scores(locator: torch.nn.Module, lr: torch.Tensor, side: float, grid: PatchGrid) -> torch.Tensor:
    """Patch scores of the STN for normalised LR images: its first k patches are its purchase at k."""
    return window_scores(window_centres(locator(lr), side), side, grid)
