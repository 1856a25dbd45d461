"""The one module that owns rasterio: opening tiles, resampled reads, footprints.

Rasterio's own errors are translated into ``InvalidRasterError`` here, so
callers above never see a GDAL exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader, MemoryFile
from rasterio.transform import Affine

from models.errors import EmptyRasterError, InvalidRasterError, WrongBandCountError
from models.grid import PatchGrid


@dataclass(frozen=True)
class RasterTile:
    """Pixels resampled to the requested size, with the georeferencing of the full tile."""

    array: np.ndarray  # (bands, height, width) float32, nodata filled
    valid: np.ndarray  # (height, width) bool, False where every band was nodata
    crs: CRS
    transform: Affine  # of the native tile, not of the resampled array
    width: int  # native pixels
    height: int
    dtype: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)

    def patch_bounds(self, grid: PatchGrid) -> list[tuple[float, float, float, float]]:
        """Footprint (minx, miny, maxx, maxy) of each patch in the tile's CRS, in patch-id order."""
        out = []
        for pid in range(grid.num_patches):
            r, c = grid.row_col(pid)
            x0, y0 = self.transform @ (c * self.width / grid.cols, r * self.height / grid.rows)
            x1, y1 = self.transform @ ((c + 1) * self.width / grid.cols, (r + 1) * self.height / grid.rows)
            out.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        return out


@contextmanager
def open_raster(source: str | Path | bytes | IO[bytes]) -> Iterator[DatasetReader]:
    """Open a path, bytes or a binary file object; owns (and closes) every handle it opens."""
    if hasattr(source, "read"):
        source = source.read()  # type: ignore[union-attr]
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise InvalidRasterError("the file is empty (0 bytes)")
        with MemoryFile(bytes(source)) as memfile, memfile.open() as ds:
            yield ds
    else:
        with rasterio.open(source) as ds:
            yield ds


def read_tile(
    source: str | Path | bytes | IO[bytes],
    out_size: tuple[int, int],
    band_count: int | None = None,
    resampling: Resampling = Resampling.average,
) -> RasterTile:
    """Read a georeferenced tile resampled to ``out_size`` (height, width) with area averaging."""
    try:
        with open_raster(source) as ds:
            if ds.crs is None:
                raise InvalidRasterError("the raster has no CRS; a georeferenced GeoTIFF is required")
            if ds.transform == Affine.identity():
                raise InvalidRasterError("the raster has no geotransform")
            if ds.transform.b != 0 or ds.transform.d != 0:
                raise InvalidRasterError("rotated geotransforms are not supported; warp the tile north-up first")
            if band_count is not None and ds.count != band_count:
                raise WrongBandCountError(f"the raster has {ds.count} bands; the model expects {band_count}")
            data = ds.read(out_shape=(ds.count, *out_size), resampling=resampling, masked=True)
            tile_meta = (ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[0])
    except RasterioError as exc:
        raise InvalidRasterError(f"not a readable GeoTIFF: {exc}") from exc
    array = np.ma.masked_invalid(data.astype(np.float32))
    invalid = np.ma.getmaskarray(array)
    valid = ~invalid.all(axis=0)
    if not valid.any():
        raise EmptyRasterError("the tile holds only nodata")
    means = array.mean(axis=(1, 2)).filled(0.0)
    filled = np.where(invalid, means[:, None, None], array.filled(0.0)).astype(np.float32)
    return RasterTile(filled, valid, *tile_meta)
