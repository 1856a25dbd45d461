"""The one module that owns rasterio: opening tiles, resampled reads, windows, writing, footprints.

Rasterio's own errors are translated into ``InvalidRasterError`` here, so
callers above never see a GDAL exception. Windows cross this boundary as
plain ``PixelWindow`` tuples, never as rasterio objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
from rasterio.windows import Window

from models.errors import EmptyRasterError, InvalidRasterError, WrongBandCountError
from models.grid import PatchGrid

PixelWindow = tuple[int, int, int, int]  # (row_off, col_off, height, width) in native pixels


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
    valid = ~np.ma.getmaskarray(array).all(axis=0)
    if not valid.any():
        raise EmptyRasterError("the tile holds only nodata")
    return RasterTile(fill_with_band_mean(array), valid, *tile_meta)


def fill_with_band_mean(array: np.ma.MaskedArray) -> np.ndarray:
    """(bands, h, w) masked -> float32 with each masked pixel set to its band's mean of valid pixels.

    The band mean keeps the filled pixels neutral for per-band normalisation;
    a band with no valid pixel at all is filled with 0.
    """
    array = np.ma.masked_invalid(np.ma.asarray(array, dtype=np.float32))
    invalid = np.ma.getmaskarray(array)
    means = np.ma.filled(array.mean(axis=(1, 2)), 0.0)
    return np.where(invalid, means[:, None, None], array.filled(0.0)).astype(np.float32)


def band_names_of(descriptions: Sequence[str | None]) -> list[str]:
    """Band descriptions where set, else ``band_<1-based index>`` (GDAL leaves them empty by default)."""
    return [d if d else f"band_{i}" for i, d in enumerate(descriptions, start=1)]


def resolve_bands(available: Sequence[str], bands: Sequence[int | str] | None) -> list[int]:
    """1-based band indexes for a selection given by 1-based index or by band name."""
    if bands is None:
        return list(range(1, len(available) + 1))
    indexes = []
    for band in bands:
        if isinstance(band, str):
            if band not in available:
                raise InvalidRasterError(f"no band named {band!r}; the bands are {list(available)}")
            indexes.append(list(available).index(band) + 1)
        elif not 1 <= band <= len(available):
            raise WrongBandCountError(
                f"band {band} requested but the raster has {len(available)} bands (indexes start at 1)"
            )
        else:
            indexes.append(int(band))
    if not indexes:
        raise InvalidRasterError("the band selection is empty")
    return indexes


@dataclass(frozen=True)
class BandArray:
    """Pixels of selected bands at native resolution; georeferencing is optional (plain chips)."""

    array: np.ma.MaskedArray  # (bands, height, width) float32, masked where nodata
    band_names: list[str]


def read_bands(source: str | Path, bands: Sequence[int | str] | None = None) -> BandArray:
    """Read whole bands, selected by 1-based index or description, masked where nodata."""
    try:
        with open_raster(source) as ds:
            names = band_names_of(ds.descriptions)
            indexes = resolve_bands(names, bands)
            data = ds.read(indexes, masked=True)
    except RasterioError as exc:
        raise InvalidRasterError(f"{source}: not a readable GeoTIFF: {exc}") from exc
    array = np.ma.masked_invalid(data.astype(np.float32))
    return BandArray(array, [names[i - 1] for i in indexes])


class BandStackReader:
    """Single-band files on one pixel grid (e.g. Sentinel-2 band files), read as one stack.

    A context manager that owns every handle it opens; windows are read from all
    files at once so a scene never has to fit in memory.
    """

    def __init__(self, paths: Sequence[str | Path], band_names: Sequence[str]) -> None:
        if len(paths) != len(band_names) or not paths:
            raise InvalidRasterError("one band name per file is required")
        self.paths = [Path(p) for p in paths]
        self.band_names = list(band_names)
        self._stack = ExitStack()
        self._datasets: list[DatasetReader] = []

    def __enter__(self) -> BandStackReader:  # noqa: PYI034 (typing.Self needs 3.11)
        try:
            for path in self.paths:
                ds = self._stack.enter_context(rasterio.open(path))
                if ds.count != 1:
                    raise WrongBandCountError(f"{path}: expected a single-band file, got {ds.count} bands")
                self._datasets.append(ds)
        except RasterioError as exc:
            self.__exit__()
            raise InvalidRasterError(f"not a readable GeoTIFF: {exc}") from exc
        except InvalidRasterError:
            self.__exit__()
            raise
        first = self._datasets[0]
        for path, ds in zip(self.paths[1:], self._datasets[1:]):
            grid = (ds.crs, ds.transform, ds.width, ds.height)
            if grid != (first.crs, first.transform, first.width, first.height):
                self.__exit__()
                raise InvalidRasterError(f"{path} is not on the pixel grid of {self.paths[0]}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
        self._datasets = []

    @property
    def _first(self) -> DatasetReader:
        if not self._datasets:
            raise InvalidRasterError("the band stack is not open; use it as a context manager")
        return self._datasets[0]

    @property
    def width(self) -> int:
        return self._first.width

    @property
    def height(self) -> int:
        return self._first.height

    @property
    def crs(self) -> CRS:
        return self._first.crs

    @property
    def transform(self) -> Affine:
        return self._first.transform

    @property
    def dtype(self) -> str:
        return self._first.dtypes[0]

    def read(
        self,
        window: PixelWindow,
        out_size: tuple[int, int] | None = None,
        resampling: Resampling = Resampling.average,
    ) -> np.ndarray:
        """(bands, h, w) in the files' dtype; ``out_size`` (h, w) resamples the window."""
        row_off, col_off, height, width = window
        if row_off < 0 or col_off < 0 or row_off + height > self.height or col_off + width > self.width:
            raise InvalidRasterError(
                f"window {window} (row, col, height, width) lies outside the "
                f"{self.height}x{self.width} px raster"
            )
        shape = out_size or (height, width)
        win = Window(col_off, row_off, width, height)
        try:
            bands = [
                ds.read(1, window=win, out_shape=shape, resampling=resampling)
                for ds in self._datasets
            ]
        except RasterioError as exc:
            raise InvalidRasterError(f"reading window {window} failed: {exc}") from exc
        return np.stack(bands)

    def window_transform(self, window: PixelWindow, out_size: tuple[int, int] | None = None) -> Affine:
        """Geotransform of a window, rescaled when it is read at ``out_size``."""
        row_off, col_off, height, width = window
        transform = self.transform @ Affine.translation(col_off, row_off)
        if out_size is not None:
            transform = transform @ Affine.scale(width / out_size[1], height / out_size[0])
        return transform


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    crs: CRS | str,
    transform: Affine,
    band_names: Sequence[str],
    nodata: float | None = None,
) -> Path:
    """Write (bands, h, w) as a compressed GeoTIFF with band descriptions."""
    count, height, width = array.shape
    if len(band_names) != count:
        raise WrongBandCountError(f"{count} bands but {len(band_names)} band names")
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "nodata": nodata,
    }
    if np.issubdtype(array.dtype, np.integer):
        profile["predictor"] = 2  # horizontal differencing: smaller files for smooth integer bands
    try:
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array)
            for i, name in enumerate(band_names, start=1):
                dst.set_band_description(i, name)
    except RasterioError as exc:
        raise InvalidRasterError(f"{path}: writing the GeoTIFF failed: {exc}") from exc
    return Path(path)
