import pytest
import torch

from models.errors import GridError
from models.geo.patch_grid import PatchGrid
from models.nn.grid import downsample, mask_images, upsample


def test_patch_ids_are_row_major():
    grid = PatchGrid(4, 4)
    assert grid.row_col(0) == (0, 0)
    assert grid.row_col(3) == (0, 3)
    assert grid.row_col(4) == (1, 0)
    assert grid.row_col(15) == (3, 3)
    assert grid.windows(32, 32)[6] == (8, 16, 16, 24)


def test_expand_keeps_exactly_the_chosen_patch_pixels():
    grid = PatchGrid(4, 4)
    actions = torch.zeros(2, 16)
    actions[0, 6] = 1  # row 1, col 2
    actions[1, [0, 15]] = 1
    mask = grid.expand(actions, 32, 32)
    assert mask.shape == (2, 1, 32, 32)
    assert mask[0].sum() == 64
    assert mask[0, 0, 8:16, 16:24].all()
    assert mask[1, 0, :8, :8].all() and mask[1, 0, 24:, 24:].all()
    assert mask[1].sum() == 128


def test_expand_on_rectangular_grid():
    grid = PatchGrid(2, 3)
    actions = torch.tensor([[0.0, 0, 1, 0, 0, 0]])
    mask = grid.expand(actions, 4, 6)
    assert mask[0, 0, :2, 4:].all() and mask.sum() == 4


def test_mask_fills_dropped_patches_with_lr_or_zeros():
    grid = PatchGrid(4, 4)
    hr = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    fill = torch.full_like(hr, -1.0)
    actions = torch.zeros(2, 16)
    actions[:, 5] = 1
    out = mask_images(hr, actions, grid, fill)
    assert torch.equal(out[:, :, 4:8, 4:8], hr[:, :, 4:8, 4:8])
    assert (out[:, :, :4] == -1).all()
    zero = mask_images(hr, actions, grid, None)
    assert (zero[:, :, :4] == 0).all()
    assert torch.equal(zero[:, :, 4:8, 4:8], hr[:, :, 4:8, 4:8])


def test_indivisible_image_is_refused():
    with pytest.raises(GridError, match="does not split"):
        PatchGrid(4, 4).expand(torch.ones(1, 16), 30, 32)
    with pytest.raises(GridError, match="shape"):
        PatchGrid(4, 4).expand(torch.ones(1, 9), 32, 32)


def test_downsample_is_area_average_and_upsample_restores_size():
    hr = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    assert downsample(hr, 2).item() == 4.0
    assert upsample(torch.ones(1, 2, 8, 8), (32, 32)).shape == (1, 2, 32, 32)


def test_patch_coverage_counts_pixels_per_patch():
    grid = PatchGrid(2, 2)
    m = torch.zeros(1, 4, 4)
    m[0, 0, 0] = 1
    m[0, 3, 2:] = 1
    assert grid.patch_coverage(m).tolist() == [[1.0, 0.0, 0.0, 2.0]]
