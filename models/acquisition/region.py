"""Region cost estimates: cut a region into the model's tile grid, plan every tile, price the campaign.

The work is split into chunks of whole tile rows. ``RegionSpec`` (JSON-able)
fixes the grid once; ``compute_chunk`` turns one chunk into a small JSON-able
result (tile states, chosen patches as bitmasks, quantised probabilities) that
depends only on the spec and the chunk index, so running a chunk twice gives
the same result; ``summarize`` merges the chunk results into the campaign's
numbers and order polygons. No settings, stores or queues here: ``worker.estimates``
adds the idempotent job around these functions, and the CLI runs them directly.

Three campaigns are priced over the same tiles: PatchDrop (the policy's patches),
Fixed-H with as many patches per tile as PatchDrop bought there, and full HR
coverage of every planned tile. All are clipped to the region, merged across
tile borders, and priced as one order with ``models.acquisition.pricing``'s minimums.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from models.acquisition.pricing import PricingProfile, bill, grid_orderable
from models.errors import InvalidRasterError, RegionError
from models.geo.footprints import (
    WGS84,
    box_rings,
    check_transformable,
    metric_crs,
    parse_crs,
    rings_wgs84_geojson,
    transform_geometry,
    wgs84_geojson,
)

STATUSES = ("planned", "outside_region", "outside_raster", "nodata", "empty", "cloud")
PLANNED, OUTSIDE_REGION, OUTSIDE_RASTER, NODATA, EMPTY, CLOUD = range(len(STATUSES))
MAX_COORDINATE = 1e9  # metres (or degrees): beyond the extent of any CRS on Earth
MIN_PATCH_OVERLAP = 0.01  # share of a patch the region must cover for the patch to be bought
PROB_SCALE = 255  # probabilities are stored as uint8: 0.004 resolution is plenty for a report


# --- the region ---------------------------------------------------------------------------------


def parse_region(obj: dict[str, Any] | str, crs: str | None = None) -> tuple[BaseGeometry, str]:
    """A (Multi)Polygon from GeoJSON (geometry, Feature or FeatureCollection) and its CRS.

    ``crs`` wins; else a legacy GeoJSON ``crs`` member; else WGS84 (RFC 7946).
    """
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
            raise RegionError(f"the region is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(obj, dict):
        raise RegionError("the region must be a GeoJSON object (Polygon, MultiPolygon, Feature or FeatureCollection)")
    crs = crs or _legacy_crs_name(obj) or WGS84
    try:
        check_transformable(crs)
    except InvalidRasterError as exc:
        raise RegionError(f"the region's CRS is not usable: {exc}") from exc
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features") or []
        if not isinstance(features, list) or not all(isinstance(f, dict) for f in features):
            raise RegionError("the region's FeatureCollection must hold a list of Feature objects")
        geoms = [_geometry(f.get("geometry")) for f in features]
        if not geoms:
            raise RegionError("the region's FeatureCollection has no features")
        geom = shapely.union_all(geoms)
    elif kind == "Feature":
        geom = _geometry(obj.get("geometry"))
    else:
        geom = _geometry(obj)
    if geom.is_empty or geom.area <= 0:
        raise RegionError("the region has no area")
    if parse_crs(crs).is_geographic:
        minx, miny, maxx, maxy = geom.bounds
        if miny < -90 or maxy > 90:
            raise RegionError(f"the region's latitudes must lie in -90..90, got {miny:g}..{maxy:g}")
        # Wider than -180..180: a region across the antimeridian may run on to 182, and a
        # 0..360 convention is a longitude too; beyond this it is no place on Earth.
        if minx < -540 or maxx > 540:
            raise RegionError(f"the region's longitudes must lie in -540..540, got {minx:g}..{maxx:g}")
    return geom, crs


def _legacy_crs_name(obj: dict[str, Any]) -> str | None:
    """The CRS named by a GeoJSON object's legacy ``crs`` member (``{"properties": {"name": ...}}``)."""
    member = obj.get("crs")
    props = member.get("properties") if isinstance(member, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if name is not None and not isinstance(name, str):
        raise RegionError("the region's crs.properties.name must be a string such as \"EPSG:32618\"")
    return name


def _geometry(obj: Any) -> BaseGeometry:
    if not isinstance(obj, dict) or obj.get("type") not in ("Polygon", "MultiPolygon"):
        kind = obj.get("type") if isinstance(obj, dict) else type(obj).__name__
        raise RegionError(f"the region must be a Polygon or MultiPolygon, got {kind}")
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise RegionError(f"the region's coordinates are malformed: {exc}") from exc
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise RegionError("the region's coordinates must be finite numbers")
    if len(coords) and np.abs(coords).max() > MAX_COORDINATE:  # far beyond any CRS's extent; GEOS overflows
        raise RegionError(f"the region's coordinates must lie within ±{MAX_COORDINATE:g} of the CRS's origin")
    # A bowtie's signed lobes cancel to zero area, so ask whether a repaired ring would enclose any.
    if not geom.is_valid and shapely.make_valid(geom).area > 0:
        # Refused rather than repaired: a silent make_valid can drop or flip parts of the area
        # the user prices, and vendors refuse such polygons too (NOTES, "Buying imagery").
        raise RegionError(
            f"the region polygon is not valid ({shapely.is_valid_reason(geom)}); "
            "remove the self-intersection and send it again"
        )
    return geom


def region_in(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    """The region in another CRS, its edges densified first so they bend as they should."""
    if src == dst:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    step = max(maxx - minx, maxy - miny) / 256 or 1.0
    return shapely.make_valid(transform_geometry(shapely.segmentize(geom, step), src, dst))


# --- the tile grid ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionSpec:
    """Everything a chunk needs: the raster's grid, the region in its CRS, the tiling and the options."""

    source: str
    crs: str
    transform: tuple[float, ...]  # a, b, c, d, e, f of the raster (north-up)
    width: int
    height: int
    region: dict[str, Any]  # GeoJSON geometry in the raster's CRS
    tile_px: int  # native pixels per tile side
    lr_size: tuple[int, int]  # the policy's input (h, w)
    grid: tuple[int, int]  # patch rows, cols
    row0: int  # tile window over the region's bounding box, in tiles from the raster origin
    col0: int
    n_rows: int
    n_cols: int
    chunk_rows: int  # tile rows per chunk
    bands: tuple[str, ...]
    band_indexes: tuple[int, ...]
    max_patches: int | None = None
    cloud_threshold: float | None = None
    # Spend-aware plan: the bundle's value model (``models.acquisition.spend.ValueModel.to_dict``) and the request's goal.
    value_model: dict[str, Any] | None = None
    max_price: float | None = None
    target_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegionSpec:
        d = dict(d)
        for key in ("transform", "lr_size", "grid", "bands", "band_indexes"):
            d[key] = tuple(d[key])
        return cls(**d)

    @property
    def n_chunks(self) -> int:
        first = self.row0 // self.chunk_rows
        last = (self.row0 + self.n_rows - 1) // self.chunk_rows
        return last - first + 1

    def chunk_rows_of(self, index: int) -> tuple[int, int]:
        """Absolute tile rows [r0, r1) of a chunk; chunk borders sit on multiples of ``chunk_rows``."""
        if not 0 <= index < self.n_chunks:
            raise IndexError(f"chunk {index} outside 0..{self.n_chunks - 1}")
        start = (self.row0 // self.chunk_rows + index) * self.chunk_rows
        return max(start, self.row0), min(start + self.chunk_rows, self.row0 + self.n_rows)

    def chunk_tiles(self, index: int) -> int:
        r0, r1 = self.chunk_rows_of(index)
        return (r1 - r0) * self.n_cols

    @property
    def n_tiles(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def tile_bounds(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N, 4) minx, miny, maxx, maxy of tiles at absolute tile rows/cols."""
        a, _, c, _, e, f = self.transform
        x0 = c + a * cols * self.tile_px
        x1 = x0 + a * self.tile_px
        y0 = f + e * rows * self.tile_px
        y1 = y0 + e * self.tile_px
        return np.stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)], axis=-1)

    def region_geometry(self) -> BaseGeometry:
        return _cached_region(json.dumps(self.region, sort_keys=True))


# One cache per thread: GEOS prepared geometries are not thread-safe (libgeos/geos#825), and the
# chunk reader and the order builders use the region from several threads at once; a shared
# prepared region crashed a worker with a segfault in libgeos.
_REGION_CACHE = threading.local()


def _cached_region(text: str) -> BaseGeometry:
    # Each chunk of a job parses the same region; a complex one costs milliseconds to rebuild.
    cache: dict[str, BaseGeometry] | None = getattr(_REGION_CACHE, "regions", None)
    if cache is None:
        cache = _REGION_CACHE.regions = {}
    geom = cache.get(text)
    if geom is None:
        if len(cache) > 16:
            cache.clear()
        geom = shape(json.loads(text))
        shapely.prepare(geom)
        cache[text] = geom
    return geom


def tile_px_for(pixel_size: float, lr_width: int, lr_pixel_size: float | None, tile_size_m: float | None) -> int:
    """Native pixels per tile side: the tile's ground size (default: the model's) over the raster's pixel."""
    ground = tile_size_m if tile_size_m else (lr_width * lr_pixel_size if lr_pixel_size else None)
    if ground is None:
        return lr_width  # the model does not say its scale: one native pixel per LR pixel
    px = round(ground / pixel_size)
    if px < 1:
        raise RegionError(f"a tile of {ground:g} m is smaller than one raster pixel ({pixel_size:g} m)")
    return px


def spec_for_model(
    source: str, info: Any, region: BaseGeometry, region_crs: str, bundle: Any, **options: Any
) -> RegionSpec:
    """``make_spec`` for a scene's header (``models.geo.raster.SceneInfo``) and a model bundle's tile geometry."""
    return make_spec(
        source, info.crs, info.transform, info.width, info.height, info.block, info.band_indexes, region, region_crs,
        bands=bundle.bands, lr_size=bundle.lr_size, grid=(bundle.grid.rows, bundle.grid.cols),
        lr_pixel_size=bundle.metadata.get("lr_pixel_size"), **options,
    )  # fmt: skip


def make_spec(
    source: str,
    crs: str,
    transform: Sequence[float],
    width: int,
    height: int,
    block: tuple[int, int],
    band_indexes: Sequence[int],
    region: BaseGeometry,
    region_crs: str,
    *,
    bands: Sequence[str],
    lr_size: tuple[int, int],
    grid: tuple[int, int],
    lr_pixel_size: float | None,
    tile_size_m: float | None = None,
    chunk_tiles: int = 4096,
    max_patches: int | None = None,
    cloud_threshold: float | None = None,
    value_model: dict[str, Any] | None = None,
    max_price: float | None = None,
    target_accuracy: float | None = None,
) -> RegionSpec:
    """The tile grid over the region, aligned to the raster's pixel grid and clipped to the raster."""
    a, _, c, _, e, f = transform
    tile_px = tile_px_for(abs(a), lr_size[1], lr_pixel_size, tile_size_m)
    local = region_in(region, region_crs, crs)
    minx, miny, maxx, maxy = local.bounds
    # Pixel coordinates of the region's box, then tiles; clipped to the tiles that touch the raster.
    cols = sorted(((minx - c) / a, (maxx - c) / a))
    rows = sorted(((maxy - f) / e, (miny - f) / e))
    col_lo = max(0, math.floor(cols[0] / tile_px))
    col_hi = min(math.ceil(width / tile_px), math.ceil(cols[1] / tile_px))
    row_lo = max(0, math.floor(rows[0] / tile_px))
    row_hi = min(math.ceil(height / tile_px), math.ceil(rows[1] / tile_px))
    if (
        col_hi <= col_lo
        or row_hi <= row_lo
        or not local.intersects(shapely.box(*_raster_bounds(transform, width, height)))
    ):
        raise RegionError("the region does not overlap the raster; check its coordinates and CRS")
    n_cols = col_hi - col_lo
    chunk_rows = max(1, math.ceil(chunk_tiles / n_cols))
    block_h = block[0]
    if block_h % tile_px == 0 and block_h // tile_px > 1:
        # Chunk borders on block borders: no block is decoded twice by neighbouring chunks.
        step = block_h // tile_px
        chunk_rows = math.ceil(chunk_rows / step) * step
    return RegionSpec(
        source=source,
        crs=crs,
        transform=tuple(float(v) for v in transform[:6]),
        width=int(width),
        height=int(height),
        region=mapping(local),
        tile_px=int(tile_px),
        lr_size=(int(lr_size[0]), int(lr_size[1])),
        grid=(int(grid[0]), int(grid[1])),
        row0=row_lo,
        col0=col_lo,
        n_rows=row_hi - row_lo,
        n_cols=n_cols,
        chunk_rows=chunk_rows,
        bands=tuple(bands),
        band_indexes=tuple(int(i) for i in band_indexes),
        max_patches=max_patches,
        cloud_threshold=cloud_threshold,
        value_model=value_model,
        max_price=max_price,
        target_accuracy=target_accuracy,
    )


def _raster_bounds(transform: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = transform[:6]
    xs, ys = (c, c + a * width), (f, f + e * height)
    return min(xs), min(ys), max(xs), max(ys)


# --- one chunk ----------------------------------------------------------------------------------


def _bits(mask: np.ndarray) -> np.ndarray:
    """(N, P) bool -> (N,) uint32 bitmask, bit i = patch i."""
    return (mask.astype(np.uint32) << np.arange(mask.shape[1], dtype=np.uint32)).sum(axis=1).astype(np.uint32)


def _unbits(bits: np.ndarray, num_patches: int) -> np.ndarray:
    return ((np.asarray(bits, np.uint32)[:, None] >> np.arange(num_patches, dtype=np.uint32)) & 1).astype(bool)


def geometry_status(spec: RegionSpec, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tile of rows [r0, r1): status (PLANNED / OUTSIDE_REGION / OUTSIDE_RASTER) and eligible patches.

    A patch is eligible when it overlaps the region with some area: the campaign never
    buys a patch that lies wholly outside the region.
    """
    rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(spec.col0, spec.col0 + spec.n_cols), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    bounds = spec.tile_bounds(rows, cols)
    region = spec.region_geometry()
    tiles = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    overlaps = shapely.intersects(region, tiles)
    overlaps[overlaps] &= ~shapely.touches(region, tiles[overlaps])
    inside = ((rows + 1) * spec.tile_px <= spec.height) & ((cols + 1) * spec.tile_px <= spec.width)
    status = np.where(~overlaps, OUTSIDE_REGION, np.where(inside, PLANNED, OUTSIDE_RASTER)).astype(np.uint8)
    p = spec.num_patches
    eligible = np.zeros(len(rows), np.uint32)
    eligible[overlaps] = (1 << p) - 1
    edge = np.flatnonzero(overlaps & ~shapely.covers(region, tiles))
    if len(edge):
        pb = _patch_bounds(bounds[edge], spec.grid)  # (E, P, 4)
        patches = shapely.box(pb[..., 0], pb[..., 1], pb[..., 2], pb[..., 3])
        # At least 1 % of the patch inside: a region edge on a patch edge, reprojected, leaves
        # millimetre slivers that must not make a patch buyable.
        inside = shapely.area(shapely.intersection(region, patches)) / shapely.area(patches)
        eligible[edge] = _bits(inside >= MIN_PATCH_OVERLAP)
        status[edge[eligible[edge] == 0]] = OUTSIDE_REGION  # only a sliver: no patch overlaps
    return status, eligible


def _patch_bounds(tile_bounds: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(N, P, 4) patch boxes in patch-id order (row-major from the tile's top-left)."""
    gr, gc = grid
    x0, y0, x1, y1 = (tile_bounds[:, i : i + 1] for i in range(4))
    r, c = np.divmod(np.arange(gr * gc), gc)
    w, h = (x1 - x0) / gc, (y1 - y0) / gr
    px0 = x0 + c * w
    py1 = y1 - r * h  # row 0 is the top (north) of a north-up tile
    return np.stack([px0, py1 - h, px0 + w, py1], axis=-1)


@dataclass
class LoadedChunk:
    """A chunk's geometry and, for its plannable tiles, the LR input read from the scene."""

    index: int
    rows: tuple[int, int]
    status: np.ndarray  # (N,) uint8
    eligible: np.ndarray  # (N,) uint32
    lr: np.ndarray  # (M, bands, h, w) float32 for the tiles still PLANNED
    planned: np.ndarray  # (M,) indexes into the chunk's tiles


def load_chunk(reader: Any, spec: RegionSpec, index: int) -> LoadedChunk:
    """Geometry of a chunk and one decimated read covering its plannable tiles; skips nodata/empty/cloud."""
    r0, r1 = spec.chunk_rows_of(index)
    status, eligible = geometry_status(spec, r0, r1)
    grid_status = status.reshape(r1 - r0, spec.n_cols)
    todo = np.argwhere(grid_status == PLANNED)
    lh, lw = spec.lr_size
    nb = len(spec.bands)
    if len(todo) == 0:
        return LoadedChunk(index, (r0, r1), status, eligible, np.zeros((0, nb, lh, lw), np.float32), np.zeros(0, int))
    # One window over the planned tiles' rows and columns: GDAL decodes each block once.
    tr0, tr1 = todo[:, 0].min(), todo[:, 0].max() + 1
    tc0, tc1 = todo[:, 1].min(), todo[:, 1].max() + 1
    t = spec.tile_px
    window = ((r0 + tr0) * t, (spec.col0 + tc0) * t, (tr1 - tr0) * t, (tc1 - tc0) * t)
    data = reader.read(window, ((tr1 - tr0) * lh, (tc1 - tc0) * lw))
    nr, nc = tr1 - tr0, tc1 - tc0
    values = np.ma.getdata(data).reshape(nb, nr, lh, nc, lw).transpose(1, 3, 0, 2, 4)
    masked = np.ma.getmaskarray(data).any(axis=0).reshape(nr, lh, nc, lw).transpose(0, 2, 1, 3)
    local = (todo[:, 0] - tr0, todo[:, 1] - tc0)
    lr = values[local]  # (M, bands, h, w)
    flat = todo[:, 0] * spec.n_cols + todo[:, 1]
    # Any LR pixel without data (every source pixel under it nodata): the policy never saw such tiles.
    nodata = masked[local].reshape(len(flat), -1).any(axis=1) | ~np.isfinite(lr).reshape(len(flat), -1).all(axis=1)
    flat_lr = lr.reshape(len(flat), nb, -1)
    empty = (flat_lr.max(axis=2) == flat_lr.min(axis=2)).all(axis=1) & ~nodata
    cloud = np.zeros(len(flat), bool)
    if spec.cloud_threshold is not None and "B02" in spec.bands:
        blue = flat_lr[:, spec.bands.index("B02")]
        cloud = ((blue >= spec.cloud_threshold).mean(axis=1) > 0.5) & ~nodata & ~empty
    status[flat[nodata]] = NODATA
    status[flat[empty]] = EMPTY
    status[flat[cloud]] = CLOUD
    keep = ~(nodata | empty | cloud)
    return LoadedChunk(index, (r0, r1), status, eligible, np.ascontiguousarray(lr[keep]), flat[keep])


def select_patches(probs: np.ndarray, eligible: np.ndarray, max_patches: int | None) -> np.ndarray:
    """Greedy choice (s >= 0.5) among eligible patches, capped to the ``max_patches`` most probable; bitmasks."""
    n, p = probs.shape
    ok = _unbits(eligible, p)
    score = np.where(ok, probs, -1.0)
    chosen = score >= 0.5
    if max_patches is not None:
        order = np.argsort(-score, axis=1, kind="stable")
        rank = np.empty_like(order)
        rank[np.arange(n)[:, None], order] = np.arange(p)
        chosen &= rank < max_patches
    return _bits(chosen)


def fixed_h_patches(selected: np.ndarray, eligible: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Fixed-H at PatchDrop's count: per tile the first S eligible patches of the fixed order."""
    p = len(order)
    count = _unbits(selected, p).sum(axis=1)
    ok = _unbits(eligible, p)[:, list(order)]
    take_in_order = ok & (np.cumsum(ok, axis=1) <= count[:, None])
    take = np.zeros_like(take_in_order)
    take[:, list(order)] = take_in_order
    return _bits(take)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def decide_chunk(
    loaded: LoadedChunk,
    spec: RegionSpec,
    probabilities: Callable[[np.ndarray], np.ndarray],
    fixed_order: Sequence[int],
) -> dict[str, Any]:
    """The chunk's result: JSON-able, a function of the spec and the chunk only (so reruns are no-ops)."""
    n = len(loaded.status)
    p = spec.num_patches
    probs = np.zeros((n, p), np.float32)
    selected = np.zeros(n, np.uint32)
    if len(loaded.planned):
        probs[loaded.planned] = probabilities(loaded.lr)
        selected[loaded.planned] = select_patches(
            probs[loaded.planned], loaded.eligible[loaded.planned], spec.max_patches
        )
    fixed = fixed_h_patches(selected, loaded.eligible, fixed_order)
    return {
        "index": loaded.index,
        "rows": list(loaded.rows),
        "tiles": n,
        "status": _b64(loaded.status.astype(np.uint8)),
        "eligible": _b64(loaded.eligible.astype(np.uint32)),
        "selected": _b64(selected),
        "fixed_h": _b64(fixed),
        "probs": _b64(np.round(probs * PROB_SCALE).astype(np.uint8)),
    }


def iter_chunks(
    reader: Any,
    spec: RegionSpec,
    indexes: Iterable[int],
    probabilities: Callable[[np.ndarray], np.ndarray],
    fixed_order: Sequence[int],
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, Any]]:
    """Chunk results in order, the next chunk's read overlapping this chunk's forward pass.

    GDAL releases the GIL while it decodes and torch while it computes, so on two
    cores the read and the policy run side by side.
    """
    indexes = list(indexes)
    if not indexes:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="region-read") as pool:
        pending = pool.submit(load_chunk, reader, spec, indexes[0])
        for k in range(len(indexes)):
            loaded = pending.result()
            if k + 1 < len(indexes) and not should_stop():
                pending = pool.submit(load_chunk, reader, spec, indexes[k + 1])
            yield decide_chunk(loaded, spec, probabilities, fixed_order)
            if should_stop():
                return


# --- merging the chunks -------------------------------------------------------------------------


@dataclass
class Merged:
    status: np.ndarray  # (n_rows, n_cols) uint8
    eligible: np.ndarray  # (n_rows, n_cols) uint32
    selected: np.ndarray
    fixed_h: np.ndarray
    probs: np.ndarray  # (n_rows, n_cols, P) uint8, PROB_SCALE = 1


def merge_arrays(spec: RegionSpec, chunks: Iterable[dict[str, Any]]) -> Merged:
    shape_ = (spec.n_rows, spec.n_cols)
    out = Merged(
        *(np.zeros(shape_, dt) for dt in (np.uint8, np.uint32, np.uint32, np.uint32)),
        np.zeros((*shape_, spec.num_patches), np.uint8),
    )
    out.status[:] = OUTSIDE_REGION
    seen = set()
    for ch in chunks:
        r0, r1 = ch["rows"]
        sl = slice(r0 - spec.row0, r1 - spec.row0)
        out.status[sl] = _unb64(ch["status"], np.uint8).reshape(r1 - r0, spec.n_cols)
        out.eligible[sl] = _unb64(ch["eligible"], np.uint32).reshape(r1 - r0, spec.n_cols)
        out.selected[sl] = _unb64(ch["selected"], np.uint32).reshape(r1 - r0, spec.n_cols)
        out.fixed_h[sl] = _unb64(ch["fixed_h"], np.uint32).reshape(r1 - r0, spec.n_cols)
        out.probs[sl] = _unb64(ch["probs"], np.uint8).reshape(r1 - r0, spec.n_cols, spec.num_patches)
        seen.add(ch["index"])
    missing = sorted(set(range(spec.n_chunks)) - seen)
    if missing:
        raise RegionError(f"chunks {missing[:10]} have no result yet")
    return out


def _patch_mask(spec: RegionSpec, bits: np.ndarray) -> np.ndarray:
    """(n_rows*gr, n_cols*gc) bool mask of patches from per-tile bitmasks."""
    gr, gc = spec.grid
    m = _unbits(bits.ravel(), gr * gc).reshape(spec.n_rows, spec.n_cols, gr, gc)
    return m.transpose(0, 2, 1, 3).reshape(spec.n_rows * gr, spec.n_cols * gc)


def _order(spec: RegionSpec, bits: np.ndarray, pricing: PricingProfile, work_crs: str) -> dict[str, Any]:
    """Merged, region-clipped, orderable polygons of the patches in ``bits``, priced as one order."""
    gr, gc = spec.grid
    order = _cells_order(spec, _patch_mask(spec, bits), (gr, gc), pricing, work_crs)
    return {"patches": int(_unbits(bits.ravel(), gr * gc).sum()), **order}


def tiles_order(spec: RegionSpec, tiles: np.ndarray, pricing: PricingProfile, work_crs: str) -> dict[str, Any]:
    """The order for whole tiles ((n_rows, n_cols) bool), region-clipped: the spend-aware plan's unit."""
    gr, gc = spec.grid
    return {"patches": int(tiles.sum()) * gr * gc, **_cells_order(spec, tiles, (1, 1), pricing, work_crs)}


def _cells_order(
    spec: RegionSpec, cells: np.ndarray, per_tile: tuple[int, int], pricing: PricingProfile, work_crs: str
) -> dict[str, Any]:
    """Polygons of a cell mask over the tile grid (``per_tile`` cells per tile side), clipped, priced."""
    gr, gc = per_tile
    a, b, c, d, e, f = spec.transform
    t = spec.tile_px
    origin_x, origin_y = c + a * spec.col0 * t, f + e * spec.row0 * t
    transform = (a * t / gc, 0.0, origin_x, 0.0, e * t / gr, origin_y)
    from models.geo.raster import mask_polygons  # rasterio only where polygons are built

    polys = mask_polygons(cells, transform)
    region = spec.region_geometry()
    if len(polys):
        # Only polygons crossing the region's edge need clipping; inside ones are kept as they are.
        edge = ~shapely.covers(region, polys)
        if edge.any():
            clipped = shapely.intersection(polys[edge], region)
            inner = [p for g in clipped for p in getattr(g, "geoms", [g]) if p.geom_type == "Polygon" and p.area > 0]
            polys = np.asarray([*polys[~edge], *inner], dtype=object)
    if len(polys) and work_crs != spec.crs:
        polys = np.asarray([transform_geometry(p, spec.crs, work_crs) for p in polys], dtype=object)
    area = float(shapely.area(polys).sum()) / 1e6 if len(polys) else 0.0
    ordered = grid_orderable(polys, pricing.min_width_m) if len(polys) else []
    bill_ = bill(ordered, pricing)
    return {
        "area_km2": round(area, 4),
        "billable_km2": round(bill_.billable_km2, 4),
        "price": round(bill_.price, 2),
        "currency": pricing.currency,
        "polygons": len(ordered),
        "minimum_charge_applied": bill_.minimum_charge_applied,
        "_geoms": [p.geometry for p in bill_.polygons],
    }


def summarize(spec: RegionSpec, chunks: Iterable[dict[str, Any]], pricing: PricingProfile) -> dict[str, Any]:
    """The campaign's numbers and its order polygons (GeoJSON FeatureCollection in WGS84)."""
    m = merge_arrays(spec, chunks)
    counts = {name: int((m.status == code).sum()) for code, name in enumerate(STATUSES)}
    planned = m.status == PLANNED
    full = np.where(planned, m.eligible, 0)
    region = spec.region_geometry()
    work_crs = metric_crs(spec.crs, region)
    masks = {"patchdrop": np.where(planned, m.selected, 0), "fixed_h": np.where(planned, m.fixed_h, 0), "full": full}
    # GEOS and GDAL release the GIL: the three orders are built side by side.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="region-order") as pool:
        futures = {k: pool.submit(_order, spec, bits, pricing, work_crs) for k, bits in masks.items()}
        orders = {k: f.result() for k, f in futures.items()}
    geoms = orders["patchdrop"].pop("_geoms")
    for o in orders.values():
        o.pop("_geoms", None)

    def saving(other: dict[str, Any]) -> float | None:
        return round(100 * (1 - orders["patchdrop"]["price"] / other["price"]), 2) if other["price"] else None

    features = _features_geojson(geoms, pricing, work_crs)["features"]
    result = {
        "tiles": {
            "grid": counts["planned"] + sum(counts[s] for s in STATUSES[2:]),
            "planned": counts["planned"],
            "skipped": {s: counts[s] for s in STATUSES[1:]},
            "tile_size_m": round(abs(spec.transform[0]) * spec.tile_px, 3),
        },
        "region_km2": round(transform_geometry(region, spec.crs, work_crs).area / 1e6, 4),
        "patchdrop": orders["patchdrop"],
        "fixed_h": orders["fixed_h"],
        "full": orders["full"],
        "saving_pct": saving(orders["full"]),
        "saving_vs_fixed_h_pct": saving(orders["fixed_h"]),
        "pricing": pricing.to_dict(),
        "order_geojson": {"type": "FeatureCollection", "features": features},
    }
    if spec.value_model:
        result["spend"] = spend_summary(spec, m, pricing, work_crs)
    return json.loads(json.dumps(result))


def _features_geojson(geoms: Sequence[BaseGeometry], pricing: PricingProfile, work_crs: str) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": wgs84_geojson(p.geometry, work_crs),
                "properties": {
                    "area_km2": round(p.area_km2, 4),
                    "billable_km2": round(p.billable_km2, 4),
                    "price": round(p.price, 2),
                },
            }
            for p in bill(geoms, pricing).polygons
        ],
    }


def spend_plan(spec: RegionSpec, m: Merged, pricing: PricingProfile, work_crs: str) -> Any:
    """The spend-aware plan over the region's planned tiles, valued from the policy alone."""
    from models.acquisition.spend import ValueModel, tile_features

    vm = ValueModel.from_dict(spec.value_model or {})
    probs = m.probs.reshape(-1, spec.num_patches).astype(np.float32) / PROB_SCALE
    p_lr, p_hr = vm.predict(tile_features(probs))
    return plan_tiles(spec, m.status == PLANNED, p_lr, p_hr, pricing, work_crs, spec.max_price, spec.target_accuracy)


def plan_tiles(
    spec: RegionSpec,
    planned: np.ndarray,
    p_lr: np.ndarray,
    p_hr: np.ndarray,
    pricing: PricingProfile,
    work_crs: str,
    max_price: float | None,
    target_accuracy: float | None,
) -> Any:
    """``models.acquisition.spend.plan_spend`` over the spec's tile grid, each candidate priced as its order."""
    from models.acquisition.spend import plan_spend

    shape = planned.shape
    tile_m = (abs(spec.transform[4]) * spec.tile_px, abs(spec.transform[0]) * spec.tile_px)
    return plan_spend(
        p_lr.reshape(shape),
        p_hr.reshape(shape),
        planned,
        lambda mask: tiles_order(spec, mask, pricing, work_crs)["price"],
        pricing,
        tile_m,
        max_price=max_price,
        target_accuracy=target_accuracy,
    )


def spend_summary(spec: RegionSpec, m: Merged, pricing: PricingProfile, work_crs: str) -> dict[str, Any]:
    """What the money buys: the spend-aware order, its expected accuracy and the accuracy-against-spend curve."""
    plan = spend_plan(spec, m, pricing, work_crs)
    order = tiles_order(spec, plan.mask, pricing, work_crs)
    geoms = order.pop("_geoms")
    return {
        **plan.summary(pricing.currency),
        "max_price": spec.max_price,
        "target_accuracy": spec.target_accuracy,
        "value_model_feature": (spec.value_model or {}).get("feature"),
        "order": {**order, "geojson": _features_geojson(geoms, pricing, work_crs)},
    }  # plain lists, as the result reads back from any store


def tile_features(spec: RegionSpec, chunk: dict[str, Any], ndigits: int = 7) -> Iterator[dict[str, Any]]:
    """Per-tile plans of one chunk as GeoJSON Features (WGS84): streamable chunk by chunk."""
    r0, r1 = chunk["rows"]
    p = spec.num_patches
    status = _unb64(chunk["status"], np.uint8)
    keep = np.flatnonzero(status != OUTSIDE_REGION)
    if not len(keep):
        return
    rows = r0 + keep // spec.n_cols
    cols = spec.col0 + keep % spec.n_cols
    geometries = rings_wgs84_geojson(box_rings(spec.tile_bounds(rows, cols)), spec.crs, ndigits)
    selected = _unbits(_unb64(chunk["selected"], np.uint32)[keep], p)
    fixed = _unbits(_unb64(chunk["fixed_h"], np.uint32)[keep], p)
    probs = _unb64(chunk["probs"], np.uint8).reshape(-1, p)[keep]
    for k in range(len(keep)):
        planned = status[keep[k]] == PLANNED
        yield {
            "type": "Feature",
            "geometry": geometries[k],
            "properties": {
                "row": int(rows[k]),
                "col": int(cols[k]),
                "status": STATUSES[status[keep[k]]],
                "patches": np.flatnonzero(selected[k]).tolist(),
                "fixed_h_patches": np.flatnonzero(fixed[k]).tolist(),
                "probabilities": (np.round(probs[k] / PROB_SCALE, 3).tolist() if planned else None),
            },
        }


def feature_collection_chunks(spec: RegionSpec, chunks: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A GeoJSON FeatureCollection as text pieces, one chunk's features at a time (never all in memory)."""
    yield '{"type": "FeatureCollection", "features": ['
    first = True
    for chunk in chunks:
        parts = [json.dumps(f, separators=(",", ":")) for f in tile_features(spec, chunk)]
        if parts:
            yield ("" if first else ",") + ",".join(parts)
            first = False
    yield "]}"
