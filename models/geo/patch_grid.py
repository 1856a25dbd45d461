"""The patch grid: patch ids and pixel windows (no torch needed to import it).

Patch ids are row-major: id = row * cols + col, with row 0 at the top of the
image (the first raster row), as in Fig. 3 of the paper. ``expand`` and
``patch_coverage`` take tensors but need only their methods, so planning and
raster IO use the grid without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.errors import GridError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PatchGrid:
    rows: int = 4
    cols: int = 4

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise GridError(f"grid must have at least one row and column, got {self.rows}x{self.cols}")

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def row_col(self, patch_id: int) -> tuple[int, int]:
        if not 0 <= patch_id < self.num_patches:
            raise GridError(f"patch id {patch_id} outside 0..{self.num_patches - 1}")
        return divmod(patch_id, self.cols)

    def check_size(self, height: int, width: int) -> tuple[int, int]:
        """Patch height and width in pixels; the image must split evenly."""
        if height % self.rows or width % self.cols:
            raise GridError(f"image of {height}x{width} px does not split into a {self.rows}x{self.cols} grid")
        return height // self.rows, width // self.cols

    def windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """Pixel windows (row_start, col_start, row_stop, col_stop) in patch-id order."""
        ph, pw = self.check_size(height, width)
        return [(r * ph, c * pw, (r + 1) * ph, (c + 1) * pw) for r in range(self.rows) for c in range(self.cols)]

    def expand(self, actions: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, P) patch actions -> (B, 1, H, W) pixel mask, without a loop over the batch."""
        if actions.dim() != 2 or actions.shape[1] != self.num_patches:
            raise GridError(f"actions must have shape (batch, {self.num_patches}), got {tuple(actions.shape)}")
        ph, pw = self.check_size(height, width)
        grid = actions.reshape(-1, 1, self.rows, self.cols)
        return grid.repeat_interleave(ph, dim=2).repeat_interleave(pw, dim=3)

    def patch_coverage(self, pixel_mask: torch.Tensor) -> torch.Tensor:
        """(B, H, W) boolean/float map -> (B, P) count of its pixels inside each patch."""
        b, h, w = pixel_mask.shape
        ph, pw = self.check_size(h, w)
        blocks = pixel_mask.float().reshape(b, self.rows, ph, self.cols, pw)
        return blocks.sum(dim=(2, 4)).reshape(b, self.num_patches)
