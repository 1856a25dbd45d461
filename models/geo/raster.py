"""The one module that owns rasterio: opening tiles, resampled reads, windows, writing, footprints.

Rasterio's own errors are translated into ``InvalidRasterError`` here, so
callers above never see a GDAL exception. Windows cross this boundary as
plain ``PixelWindow`` tuples, never as rasterio objects.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader, MemoryFile
from rasterio.transform import Affine
from rasterio.warp import reproject
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window

from models.errors import (
    EmptyRasterError,
    InvalidRasterError,
    TileTooLargeError,
    WrongBandCountError,
)
from models.geo.bands import BandMatch, match_by_meaning
from models.geo.footprints import check_transformable, crs_code
from models.geo.patch_grid import PatchGrid

# rasterio.features wraps arrays in in-memory datasets without georeferencing and warns so,
# though the transform it is given is applied to the coordinates. A module filter, not
# catch_warnings: region orders are polygonized in several threads at once.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.features")

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
    thumbnail: np.ndarray | None = None  # (bands, h, w) float32 overview, NaN where nodata
    bands: BandMatch | None = None  # how the file's bands were matched to the model's

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)

    def header(self, filename: str, band_names: Sequence[str]) -> dict[str, Any]:
        """The file as plans describe it: name, CRS code, native size and pixel size, the model's bands."""
        return {
            "filename": filename,
            "crs_code": crs_code(self.crs.to_string()),
            "width": self.width,
            "height": self.height,
            "pixel_size": [abs(self.transform.a), abs(self.transform.e)],
            "bands": list(band_names),
        }

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
    *,
    band_names: Sequence[str] | None = None,
    drivers: Sequence[str] | None = None,
    max_pixels: int | None = None,
    thumbnail_size: int | None = None,
    name: str = "the raster",
    requested_bands: Sequence[str] | None = None,
) -> RasterTile:
    """Read a georeferenced tile resampled to ``out_size`` (height, width) with area averaging.

    ``band_names`` (the model's bands) checks the count and, where the file names its
    bands, their names, and reads them in the model's order. ``drivers`` restricts the
    accepted formats (``("GTiff",)``), ``max_pixels`` the native size, and
    ``thumbnail_size`` adds a small native-resolution overview for previews.
    ``requested_bands`` names the file's bands (``models.geo.bands``), one per band in file order.
    """
    expected = len(band_names) if band_names is not None else band_count
    try:
        with open_raster(source) as ds:
            check_georeferenced(ds, name, drivers, max_pixels)
            match = None
            if band_names is not None:
                tags = [ds.tags(i) for i in range(1, ds.count + 1)]
                match = match_by_meaning(ds.descriptions, band_names, tags=tags, requested=requested_bands, name=name)
                indexes = match.indexes
            else:
                if expected is not None and ds.count != expected:
                    raise WrongBandCountError(f"the raster has {ds.count} bands; the model expects {expected}")
                indexes = list(range(1, ds.count + 1))
            data = ds.read(indexes, out_shape=(len(indexes), *out_size), resampling=resampling, masked=True)
            thumbnail = None
            if thumbnail_size:
                scale = min(1.0, thumbnail_size / max(ds.width, ds.height))
                shape = (len(indexes), max(1, round(ds.height * scale)), max(1, round(ds.width * scale)))
                thumb = ds.read(indexes, out_shape=shape, resampling=Resampling.average, masked=True)
                thumbnail = np.ma.masked_invalid(thumb.astype(np.float32)).filled(np.nan)
            tile_meta = (ds.crs, ds.transform, ds.width, ds.height, ds.dtypes[0])
            extra = {"thumbnail": thumbnail, "bands": match}
    except RasterioError as exc:
        raise InvalidRasterError(f"{name} is not a readable GeoTIFF: {_gdal_message(exc, name)}") from exc
    values = np.ma.getdata(data).astype(np.float32)
    if not np.ma.is_masked(data) and np.isfinite(values).all():  # the common case: nothing to fill
        return RasterTile(values, np.ones(values.shape[1:], bool), *tile_meta, **extra)
    array = np.ma.masked_invalid(np.ma.masked_array(values, np.ma.getmaskarray(data)))
    valid = ~np.ma.getmaskarray(array).all(axis=0)
    if not valid.any():
        raise EmptyRasterError("the tile holds only nodata")
    return RasterTile(fill_with_band_mean(array), valid, *tile_meta, **extra)


def check_georeferenced(
    ds: DatasetReader,
    name: str = "the raster",
    drivers: Sequence[str] | None = None,
    max_pixels: int | None = None,
) -> None:
    """Refuse formats outside ``drivers``, missing or rotated georeferencing, oversized rasters."""
    if drivers is not None and ds.driver not in drivers:
        raise InvalidRasterError(f"{name} is a {ds.driver} file, not a GeoTIFF")
    if max_pixels is not None and ds.width * ds.height > max_pixels:
        raise TileTooLargeError(
            f"{name} is {ds.width}x{ds.height} px ({ds.width * ds.height} px); the limit is {max_pixels} px"
        )
    if ds.crs is None:
        raise InvalidRasterError(f"{name} has no CRS; a georeferenced GeoTIFF is required")
    if ds.transform == Affine.identity():
        raise InvalidRasterError(f"{name} has no geotransform; a georeferenced GeoTIFF is required")
    t = ds.transform
    if not all(np.isfinite([t.a, t.b, t.c, t.d, t.e, t.f])) or t.a * t.e - t.b * t.d == 0:
        # A zero pixel size (or a rotation that collapses the grid) gives every pixel the same place:
        # footprints of zero area, prices of zero.
        raise InvalidRasterError(
            f"{name} has a degenerate geotransform {tuple(t)[:6]} (a pixel of zero area); fix its georeferencing"
        )
    if t.b != 0 or t.d != 0:
        raise InvalidRasterError(f"{name} has a rotated geotransform; warp it north-up first")


_VSIMEM = re.compile(
    r"'?/vsimem/[^\s']*'?|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:\.\w+)?"
)  # in-memory paths, and the bare UUID file names MemoryFile gives uploads


def _gdal_message(exc: Exception, name: str, path: str | None = None) -> str:
    """GDAL's message with in-memory file paths, and the file's own ``path`` on this server,
    replaced by the name the client knows it by.

    Read errors say only "see previous exception": the reason (which band, which block) is
    in the exception's cause, so that is the message a client gets.
    """
    message = str(exc)
    if "previous exception" in message and exc.__cause__ is not None:
        message = str(exc.__cause__)
    if path:
        message = message.replace(path, name)
    return _VSIMEM.sub(name, message)


def match_bands(
    descriptions: Sequence[str | None],
    expected: Sequence[str],
    name: str = "the raster",
    *,
    tags: Sequence[Mapping[str, str]] | None = None,
    requested: Sequence[str] | None = None,
) -> list[int]:
    """1-based indexes that read ``expected`` bands in order (matched by meaning: ``models.geo.bands``)."""
    return match_by_meaning(descriptions, expected, tags=tags, requested=requested, name=name).indexes


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

    def __enter__(self) -> BandStackReader:
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
        for path, ds in zip(self.paths[1:], self._datasets[1:], strict=True):
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
                f"window {window} (row, col, height, width) lies outside the {self.height}x{self.width} px raster"
            )
        shape = out_size or (height, width)
        win = Window(col_off, row_off, width, height)
        try:
            bands = [ds.read(1, window=win, out_shape=shape, resampling=resampling) for ds in self._datasets]
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


@dataclass(frozen=True)
class GridImage:
    """Pixels warped onto a target grid: NaN (and ``valid`` False) where the source has no data."""

    array: np.ndarray  # (bands, height, width) float32
    valid: np.ndarray  # (height, width) bool, True where every band has data


def resampled_transform(transform: Sequence[float], native: tuple[int, int], size: tuple[int, int]) -> list[float]:
    """The geotransform of a tile of ``native`` (height, width) pixels resampled to ``size`` (height, width)."""
    scaled = Affine(*transform[:6]) @ Affine.scale(native[1] / size[1], native[0] / size[0])
    return list(scaled)[:6]


def reproject_to_grid(
    source: str | Path | bytes | IO[bytes],
    crs: str,
    transform: Sequence[float],
    size: tuple[int, int],
    band_names: Sequence[str],
    *,
    name: str = "the raster",
    drivers: Sequence[str] | None = ("GTiff",),
    max_pixels: int | None = None,
    resampling: Resampling = Resampling.average,
    coarsest: float | None = None,
) -> GridImage:
    """Warp a georeferenced image in any CRS onto the grid ``crs``/``transform``/``size`` (h, w).

    Bands are matched as in ``read_tile``; pixels the source does not cover stay NaN.
    ``coarsest``: the largest source pixel accepted, in ``crs`` units (an "HR" upload coarser than the
    LR tile it should sharpen is refused rather than counted as bought imagery).
    """
    height, width = size
    dst_transform = Affine(*transform[:6])
    try:
        with open_raster(source) as ds:
            check_georeferenced(ds, name, drivers, max_pixels)
            indexes = match_bands(ds.descriptions, band_names, name)
            src = ds.read(indexes, masked=True)
            src_crs, src_transform = ds.crs, ds.transform
    except RasterioError as exc:
        raise InvalidRasterError(f"{name} is not a readable GeoTIFF: {_gdal_message(exc, name)}") from exc
    src = np.ma.masked_invalid(src.astype(np.float32)).filled(np.nan)
    if not np.isfinite(src).all(axis=0).any():
        raise EmptyRasterError(f"{name} holds no valid pixels (every one is nodata, NaN or infinite)")
    try:  # GDAL's own failure here (CPLE_NotSupportedError) is not a RasterioError
        check_transformable(src_crs.to_wkt(), crs)
    except InvalidRasterError as exc:
        raise InvalidRasterError(f"{name} cannot be reprojected to the plan's CRS: {exc}") from exc
    if coarsest is not None:
        pixel = _local_pixel_size(src_crs, src_transform, crs, dst_transform * (width / 2, height / 2))
        if pixel > coarsest * (1 + 1e-6):
            raise InvalidRasterError(
                f"{name} has pixels of about {pixel:.4g} (in {crs} units), coarser than the plan's LR "
                f"tile ({coarsest:.4g}): it is not HR imagery for this tile"
            )
    dst = np.full((len(indexes), height, width), np.nan, dtype=np.float32)
    try:
        reproject(
            source=src,
            destination=dst,
            src_transform=src_transform,
            src_crs=src_crs,
            src_nodata=np.nan,
            dst_transform=dst_transform,
            dst_crs=CRS.from_user_input(crs),
            dst_nodata=np.nan,
            resampling=resampling,
        )
    except RasterioError as exc:
        raise InvalidRasterError(f"{name} cannot be reprojected to {crs}: {exc}") from exc
    return GridImage(dst, np.isfinite(dst).all(axis=0))


def _local_pixel_size(src_crs: CRS, src_transform: Affine, dst_crs: str, at: tuple[float, float]) -> float:
    """The side, in ``dst_crs`` units, of a square as large as one source pixel at the point ``at`` (in
    ``dst_crs``): local, so neither a rotated grid nor a long strip inflates it as a whole file's extent would."""
    dst = CRS.from_user_input(dst_crs)
    (sx,), (sy,) = warp_transform(dst, src_crs, [at[0]], [at[1]])
    xs = [sx, sx + src_transform.a, sx + src_transform.b]
    ys = [sy, sy + src_transform.d, sy + src_transform.e]
    (x0, x1, x2), (y0, y1, y2) = warp_transform(src_crs, dst, xs, ys)
    area = abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
    return math.sqrt(area)


def pixel_size(source: str | Path) -> tuple[float, float]:
    """Ground size (x, y) of one pixel in CRS units."""
    try:
        with open_raster(source) as ds:
            return float(ds.res[0]), float(ds.res[1])
    except RasterioError as exc:
        raise InvalidRasterError(f"{source}: not a readable GeoTIFF: {exc}") from exc


@dataclass(frozen=True)
class SceneInfo:
    """Georeferencing of a (possibly huge) scene, read from its header only."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    block: tuple[int, int]  # (height, width) of the first band's internal blocks
    band_indexes: tuple[int, ...]  # 1-based, in the model's band order


class SceneReader:
    """Windowed, decimated reads of a large scene: a context manager owning the dataset handle.

    Region estimates read a scene chunk by chunk at the policy's input resolution
    (``out_shape`` + average resampling, so GDAL uses overviews where the file has
    them); the whole scene is never in memory. GDAL's block cache is capped
    (``cache_mb``) because its default, 5 % of RAM, would hold most of a
    Sentinel-2 scene and dominate peak memory.
    """

    def __init__(
        self,
        source: str | Path,
        band_names: Sequence[str],
        name: str | None = None,
        cache_mb: int = 256,
        requested_bands: Sequence[str] | None = None,
    ):
        self.source = str(source)
        self.band_names = list(band_names)
        self.requested_bands = list(requested_bands) if requested_bands is not None else None
        self.band_match: BandMatch | None = None
        self.name = name or self.source
        self._stack = ExitStack()
        self.cache_mb = cache_mb
        self.info: SceneInfo | None = None
        self._ds: DatasetReader | None = None

    def __enter__(self) -> SceneReader:
        try:
            self._stack.enter_context(rasterio.Env(GDAL_CACHEMAX=self.cache_mb))
            ds = self._stack.enter_context(rasterio.open(self.source))
            check_georeferenced(ds, self.name)
            tags = [ds.tags(i) for i in range(1, ds.count + 1)]
            self.band_match = match_by_meaning(
                ds.descriptions, self.band_names, tags=tags, requested=self.requested_bands, name=self.name
            )
            indexes = self.band_match.indexes
            t = ds.transform
            self.info = SceneInfo(
                ds.crs.to_string(),
                (t.a, t.b, t.c, t.d, t.e, t.f),
                ds.width,
                ds.height,
                tuple(ds.block_shapes[0]),  # type: ignore[arg-type]
                tuple(indexes),
            )
            self._ds = ds
        except RasterioError as exc:
            self._stack.close()
            message = _gdal_message(exc, self.name, self.source)
            raise InvalidRasterError(f"{self.name} cannot be opened: {message}") from exc
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._ds = None

    def read(self, window: PixelWindow, out_hw: tuple[int, int]) -> np.ma.MaskedArray:
        """(bands, h, w) float32 of a native-pixel window, area-averaged to ``out_hw``; masked where nodata.

        With overviews GDAL reads the nearest one (a decimated read). Without them, and when
        the window is a whole multiple of ``out_hw``, the window is read at full resolution
        and block-averaged here: the same average, but GDAL's average resampling costs about
        four times the decoding on a Sentinel-2 scene (measured in benchmarks/region_estimate.py).
        """
        if self._ds is None or self.info is None:
            raise RuntimeError("SceneReader is not open: use it as a context manager")
        row, col, height, width = window
        indexes = list(self.info.band_indexes)
        fy, fx = height // out_hw[0], width // out_hw[1]
        try:
            if self._ds.overviews(indexes[0]) or fy * out_hw[0] != height or fx * out_hw[1] != width:
                data = self._ds.read(
                    indexes,
                    window=Window(col, row, width, height),
                    out_shape=(len(indexes), *out_hw),
                    resampling=Resampling.average,
                    masked=True,
                )
                return data.astype(np.float32)
            if self._all_valid:
                full = self._ds.read(indexes, window=Window(col, row, width, height))
                mean = full.reshape(len(indexes), out_hw[0], fy, out_hw[1], fx).mean(axis=(2, 4), dtype=np.float32)
                return np.ma.masked_array(mean, np.zeros(mean.shape, bool))
            full = self._ds.read(indexes, window=Window(col, row, width, height), masked=True)
        except RasterioError as exc:
            raise InvalidRasterError(f"{self.name}: reading {window} failed: {_gdal_message(exc, self.name)}") from exc
        # Average of the valid pixels under each output pixel, as GDAL's average does; masked where none.
        valid = ~np.ma.getmaskarray(full)
        values = np.where(valid, np.ma.getdata(full), 0).astype(np.float32)
        shape = (len(indexes), out_hw[0], fy, out_hw[1], fx)
        total = values.reshape(shape).sum(axis=(2, 4))
        count = valid.reshape(shape).sum(axis=(2, 4))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (total / np.maximum(count, 1)).astype(np.float32)
        return np.ma.masked_array(mean, count == 0)

    @property
    def _all_valid(self) -> bool:
        """No nodata value and no mask band: every pixel is data, no mask needs reading."""
        from rasterio.enums import MaskFlags

        ds = self._ds
        return ds.nodata is None and all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)  # type: ignore[union-attr]


def _parts(mask: np.ndarray, transform: Sequence[float] | None = None) -> Iterator[dict]:
    """GeoJSON polygons of the 4-connected parts of a 2-D mask's True cells (pixel coordinates, or the
    transform's), as GDAL polygonises them, one at a time: linear in the cells."""
    from rasterio import features

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if not m.any():
        return
    at = Affine(*transform[:6]) if transform is not None else Affine.identity()
    for geom, _ in features.shapes(m, mask=m.astype(bool), transform=at, connectivity=4):
        yield geom


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels (0 = background, 1..n) of a 2-D bool mask.

    Polygonised and burnt back by GDAL (rasterio): linear in the cells, where label
    propagation in numpy takes as many passes as the longest component is long.
    """
    from rasterio import features

    out = np.zeros(mask.shape, np.int32)
    shapes = [(geom, k + 1) for k, geom in enumerate(_parts(mask))]
    if shapes:
        features.rasterize(shapes, out=out, all_touched=False)
    return out.astype(np.int64), len(shapes)


def fill_polygon_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with the holes of its polygons filled, as GDAL polygonises it (4-connected parts).

    Burning each part's outer ring back gives exactly what a hole-free order of those polygons
    covers: a gap ringed by one part through a corner contact is that polygon's hole and is
    filled; a gap ringed by separate parts touching at corners is nobody's hole and is not.
    """
    from rasterio import features

    shells = [({"type": "Polygon", "coordinates": [geom["coordinates"][0]]}, 1) for geom in _parts(mask)]
    if not shells:
        return np.zeros(mask.shape, bool)
    return features.rasterize(shells, out_shape=mask.shape, all_touched=False, dtype=np.uint8).astype(bool)


def mask_polygons(mask: np.ndarray, transform: Sequence[float]) -> np.ndarray:
    """Polygons (shapely array, in the transform's CRS) of the True cells of a 2-D mask, 4-connected.

    Polygonizing a grid mask is linear in its cells; unioning the same cells as boxes
    with shapely is far slower for the ~10^6 patches of a Sentinel-2 scene. Hole-free
    polygons (nearly all) are built in one vectorised call.
    """
    import shapely
    from shapely.geometry import Polygon

    shells: list[np.ndarray] = []
    holed = []
    for geom in _parts(mask, transform):
        rings = geom["coordinates"]
        if len(rings) == 1:
            shells.append(np.asarray(rings[0], dtype=np.float64))
        else:
            holed.append(Polygon(rings[0], rings[1:]))
    out = list(holed)
    if shells:
        ids = np.repeat(np.arange(len(shells)), [len(s) for s in shells])
        out.extend(shapely.polygons(shapely.linearrings(np.concatenate(shells), indices=ids)))
    return np.asarray(out, dtype=object)
