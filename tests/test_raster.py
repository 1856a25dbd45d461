import numpy as np
import pytest

from models.errors import EmptyRasterError, InvalidRasterError, WrongBandCountError
from models.geo.patch_grid import PatchGrid
from models.geo.raster import read_tile


def test_read_tile_resamples_by_area_average_and_keeps_georeferencing(geotiff):
    data = np.zeros((2, 64, 64), dtype="uint16")
    data[0, :32, :32] = 400  # top-left quarter
    tile = read_tile(geotiff(data, pixel_size=10.0), (4, 4))
    assert tile.array.shape == (2, 4, 4)
    assert tile.array[0, 0, 0] == 400 and tile.array[0, 3, 3] == 0
    assert tile.crs.to_epsg() == 32618 and (tile.width, tile.height) == (64, 64)
    assert tile.bounds == (435730.0, 4179460.0 - 640, 435730.0 + 640, 4179460.0)


def test_patch_footprints_are_row_major_from_the_top(geotiff):
    tile = read_tile(geotiff(np.ones((1, 16, 16), "uint8"), pixel_size=10.0), (8, 8))
    boxes = tile.patch_bounds(PatchGrid(4, 4))
    x0, y1 = 435730.0, 4179460.0
    assert boxes[0] == (x0, y1 - 40, x0 + 40, y1)
    assert boxes[1] == (x0 + 40, y1 - 40, x0 + 80, y1)
    assert boxes[4] == (x0, y1 - 80, x0 + 40, y1 - 40)


def test_nodata_is_filled_and_reported(geotiff):
    data = np.full((1, 8, 8), 100, dtype="int16")
    data[0, :4] = -9999
    tile = read_tile(geotiff(data, nodata=-9999), (8, 8))
    assert not tile.valid[:4].any() and tile.valid[4:].all()
    assert np.allclose(tile.array, 100)


def test_bad_rasters_raise_domain_errors(geotiff, tmp_path):
    with pytest.raises(EmptyRasterError):
        read_tile(geotiff(np.zeros((1, 8, 8), "int16"), nodata=0), (4, 4))
    with pytest.raises(InvalidRasterError, match="no CRS"):
        read_tile(geotiff(np.ones((1, 8, 8), "uint8"), crs=None), (4, 4))
    with pytest.raises(WrongBandCountError, match="3 bands"):
        read_tile(geotiff(np.ones((3, 8, 8), "uint8")), (4, 4), band_count=4)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage")
    with pytest.raises(InvalidRasterError, match="not a readable GeoTIFF"):
        read_tile(junk, (4, 4))
    with pytest.raises(InvalidRasterError):
        read_tile(b"", (4, 4))
