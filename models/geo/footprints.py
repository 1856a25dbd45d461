"""Patch footprints as shapely geometry: CRS transforms, a metric working CRS, GeoJSON.

Pure functions on coordinates: no rasters, files or settings. CRSs are passed
as strings (``"EPSG:32618"`` or WKT), which is what crosses a JSON boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from pyproj.exceptions import ProjError
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from models.errors import InvalidRasterError

WGS84 = "EPSG:4326"
Bounds = tuple[float, float, float, float]  # (minx, miny, maxx, maxy)


@lru_cache(maxsize=128)
def parse_crs(crs: str) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises CRSError, a plain Exception subclass, among others
        raise InvalidRasterError(f"unknown or invalid CRS {crs!r}: {exc}") from exc


@lru_cache(maxsize=128)
def _transformer(src: str, dst: str) -> Transformer:
    # Building a transformer costs milliseconds; plans reuse a handful of CRSs.
    try:
        return Transformer.from_crs(parse_crs(src), parse_crs(dst), always_xy=True)
    except ProjError as exc:  # e.g. a local engineering CRS, which has no way to the Earth's
        raise InvalidRasterError(f"coordinates in {src!r} cannot be transformed to {dst!r}: {exc}") from exc


def check_transformable(crs: str, to: str = WGS84) -> None:
    """Raise ``InvalidRasterError`` unless ``crs`` is known and has a way to ``to`` (footprints need WGS84)."""
    _transformer(crs, to)


def crs_code(crs: str) -> str | None:
    """``"EPSG:32618"``-style authority code of a CRS, or None when it has none."""
    parsed = parse_crs(crs)
    auth = parsed.to_authority(min_confidence=90)
    return f"{auth[0]}:{auth[1]}" if auth else None


def transform_geometry(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    if src == dst:
        return geom
    transformer = _transformer(src, dst)

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    out = shapely.transform(geom, _xy)
    if not np.isfinite(shapely.get_coordinates(out)).all():
        raise InvalidRasterError(f"the footprint cannot be expressed in {dst} (coordinates out of range)")
    return out


def transform_coords(coords: np.ndarray, src: str, dst: str) -> np.ndarray:
    """(..., 2) x/y coordinates from ``src`` to ``dst`` in one vectorised call."""
    coords = np.asarray(coords, dtype=np.float64)
    if src == dst:
        return coords
    x, y = _transformer(src, dst).transform(coords[..., 0], coords[..., 1])
    out = np.stack([np.asarray(x), np.asarray(y)], axis=-1)
    if not np.isfinite(out).all():
        raise InvalidRasterError(f"the footprint cannot be expressed in {dst} (coordinates out of range)")
    return out


def box_rings(bounds: Sequence[Bounds]) -> np.ndarray:
    """(N, 5, 2) closed counter-clockwise rings of axis-aligned boxes."""
    b = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    xs = np.stack([x1, x1, x0, x0, x1], axis=1)
    ys = np.stack([y0, y1, y1, y0, y0], axis=1)
    return np.stack([xs, ys], axis=-1)


def ring_geojson(ring: np.ndarray, ndigits: int | None = None) -> dict[str, Any]:
    """GeoJSON Polygon from one (n, 2) closed ring."""
    if ndigits is not None:
        ring = np.round(ring, ndigits)
    return {"type": "Polygon", "coordinates": [ring.tolist()]}


def _is_metric(crs: CRS) -> bool:
    return crs.is_projected and all((axis.unit_name or "").lower() in ("metre", "meter") for axis in crs.axis_info)


@lru_cache(maxsize=128)
def _utm_for(lon: float, lat: float) -> str:
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    if not infos:
        raise InvalidRasterError(f"no UTM zone for longitude {lon}, latitude {lat}")
    return f"{infos[0].auth_name}:{infos[0].code}"


def metric_crs(crs: str, geom: BaseGeometry) -> str:
    """A CRS in metres to measure widths and areas in: the tile's own when it is one, else UTM."""
    if _is_metric(parse_crs(crs)):
        return crs
    centre = transform_geometry(geom.centroid, crs, WGS84)
    return _utm_for(round(centre.x, 3), round(centre.y, 3))


def area_km2(geom: BaseGeometry) -> float:
    """Area of a geometry given in a metric CRS, in km²."""
    return geom.area / 1e6


def geodesic_area_km2(geom: BaseGeometry, crs: str) -> float:
    """Area on the WGS84 ellipsoid, in km², of a geometry in any CRS (no projection distorts it)."""
    lonlat = transform_geometry(geom, crs, "EPSG:4326")
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(lonlat)[0]) / 1e6


def geojson(geom: BaseGeometry, ndigits: int | None = None) -> dict[str, Any]:
    """GeoJSON geometry dict (tuples for coordinates); coordinates rounded to ``ndigits`` decimals."""
    if ndigits is not None:
        geom = shapely.transform(geom, lambda coords: np.round(coords, ndigits))
    return mapping(geom)


def bounds_in(bounds: Bounds, src: str, dst: str) -> Bounds:
    """Bounding box in ``dst`` of a box given in ``src`` (edges densified)."""
    if src == dst:
        return tuple(float(v) for v in bounds)  # type: ignore[return-value]
    transformer = _transformer(src, dst)
    out = transformer.transform_bounds(*bounds, densify_pts=21)
    return tuple(float(v) for v in out)  # type: ignore[return-value]


# --- WGS84 output as RFC 7946 wants it ---------------------------------------------------------
# A footprint projected to longitude/latitude corner by corner is wrong in two places: across the
# antimeridian its edges run the long way round the globe, and around a pole its corners collapse
# onto a line or a self-crossing ring (zero area). RFC 7946 (3.1.9, 5.2, 5.3) asks for geometries
# cut at the antimeridian and bboxes with west > east there; a pole cap is a polygon that runs along
# the antimeridian up to the pole. Edges are densified first: straight in the tile's CRS, curved in
# longitude/latitude.

_DENSIFY_SEGMENTS = 64  # points per ring (at least); a tile edge bends little between them


def _pole_inside(geom: BaseGeometry, crs: str, strict: bool = False) -> int:
    """+1 when ``geom`` (in ``crs``) holds the North Pole, -1 the South Pole, else 0
    (``strict``: inside, not on the boundary)."""
    for lat, sign in ((90.0, 1), (-90.0, -1)):
        try:
            x, y = _transformer(WGS84, crs).transform(0.0, lat)
        except Exception:  # pyproj raises ProjError for points outside the projection's domain
            continue
        pole = shapely.Point(x, y)
        if np.isfinite([x, y]).all() and (geom.contains(pole) if strict else geom.covers(pole)):
            return sign
    return 0


def _unwrapped_ring(ring_xy: np.ndarray, crs: str) -> np.ndarray:
    """A ring's lon/lat with longitudes continuous (may leave -180..180; ends 360 apart around a pole).

    A vertex on a pole has no longitude of its own: it becomes two, at the longitudes of the
    edges that meet there, so the ring runs along the pole instead of through one point.
    """
    lonlat = transform_coords(ring_xy[:-1], crs, WGS84)  # open ring
    on_pole = np.isclose(np.abs(lonlat[:, 1]), 90.0, rtol=0.0, atol=1e-9)
    if on_pole.all():
        raise InvalidRasterError("the footprint has no area in WGS84")
    start = int(np.argmin(on_pole))  # begin at a vertex with a longitude
    lonlat, on_pole = np.roll(lonlat, -start, axis=0), np.roll(on_pole, -start)
    lonlat = np.vstack([lonlat, lonlat[:1]])  # closed again, ending where it starts
    on_pole = np.append(on_pole, False)
    lon = lonlat[~on_pole, 0]
    lonlat[~on_pole, 0] = np.unwrap(lon, period=360.0)
    out: list[np.ndarray] = []
    for i in range(len(lonlat)):
        if on_pole[i]:
            prev_lon = out[-1][0]
            nxt = i + 1 + int(np.argmin(on_pole[i + 1 :]))
            out.append(np.array([prev_lon, lonlat[i, 1]]))
            out.append(np.array([lonlat[nxt, 0], lonlat[i, 1]]))
        else:
            out.append(lonlat[i])
    return np.array(out)


def _split_antimeridian(poly: BaseGeometry) -> list[shapely.Polygon]:
    """Pieces of a polygon in unwrapped longitudes, each moved into -180..180."""
    pieces: list[shapely.Polygon] = []
    minx, _, maxx, _ = poly.bounds
    for k in range(int(np.floor((minx + 180) / 360)), int(np.floor((maxx + 180) / 360)) + 1):
        part = poly.intersection(box(-180 + 360 * k, -90, 180 + 360 * k, 90))
        part = shapely.transform(part, lambda c, k=k: c - [360.0 * k, 0.0])
        pieces.extend(p for p in getattr(part, "geoms", [part]) if isinstance(p, shapely.Polygon) and p.area > 0)
    return pieces


def _wgs84_parts(geom: BaseGeometry, crs: str) -> tuple[list[shapely.Polygon], list[shapely.Polygon]]:
    """(unwrapped polygons, their pieces cut at the antimeridian) of a polygonal geometry in ``crs``."""
    unwrapped: list[shapely.Polygon] = []
    for poly in getattr(geom, "geoms", [geom]):
        step = max(poly.exterior.length / _DENSIFY_SEGMENTS, 1e-9)
        dense = shapely.segmentize(poly, step)
        ext = _unwrapped_ring(np.asarray(dense.exterior.coords)[:, :2], crs)
        pole = _pole_inside(poly, crs, strict=True)
        if pole:  # the ring winds once round the pole: close it along the pole's parallel
            lat = 90.0 * pole
            ext = np.vstack([ext, [[ext[-1, 0], lat], [ext[0, 0], lat]], ext[:1]])
        holes = []
        for interior in dense.interiors:
            hole = _unwrapped_ring(np.asarray(interior.coords)[:, :2], crs)
            hole[:, 0] += 360.0 * np.round((ext[:, 0].mean() - hole[:, 0].mean()) / 360.0)
            holes.append(hole)
        candidate = shapely.Polygon(ext, holes)
        if not candidate.is_valid:
            candidate = shapely.make_valid(candidate)
        unwrapped.extend(p for p in getattr(candidate, "geoms", [candidate]) if isinstance(p, shapely.Polygon))
    # A pole cap's pieces meet along a meridian; merging them leaves one polygon from -180 to 180.
    merged = shapely.union_all([piece for p in unwrapped for piece in _split_antimeridian(p)])
    pieces = [p for p in getattr(merged, "geoms", [merged]) if isinstance(p, shapely.Polygon) and p.area > 0]
    return unwrapped, pieces


def wgs84_geometry(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """A polygonal geometry in ``crs`` as valid RFC 7946 lon/lat: densified, cut at the antimeridian,
    closed over a pole, exterior rings counter-clockwise."""
    if parse_crs(crs) == parse_crs(WGS84):
        return geom
    plain = transform_geometry(geom, crs, WGS84)
    minx, _, maxx, _ = plain.bounds
    if maxx - minx <= 180.0 and plain.is_valid and not _pole_inside(geom, crs):
        return plain  # corner by corner is right: no antimeridian, no pole (the common case)
    _, pieces = _wgs84_parts(geom, crs)
    if not pieces:
        raise InvalidRasterError("the footprint has no area in WGS84")
    out = pieces[0] if len(pieces) == 1 else shapely.MultiPolygon(pieces)
    return shapely.orient_polygons(out) if hasattr(shapely, "orient_polygons") else out


def wgs84_bbox(geom: BaseGeometry, crs: str) -> Bounds:
    """RFC 7946 bbox of a polygonal geometry in ``crs``: west > east when it crosses the antimeridian,
    -180..180 in longitude when it holds a pole."""
    if parse_crs(crs) == parse_crs(WGS84):
        return tuple(float(v) for v in geom.bounds)  # type: ignore[return-value]
    unwrapped, _ = _wgs84_parts(geom, crs)
    minx, miny, maxx, maxy = shapely.MultiPolygon(unwrapped).bounds
    if maxx - minx >= 360.0:
        return (-180.0, float(miny), 180.0, float(maxy))
    west = (minx + 180.0) % 360.0 - 180.0
    east = 180.0 - (180.0 - maxx) % 360.0
    return (float(west), float(miny), float(east), float(maxy))


def wgs84_geojson(geom: BaseGeometry, crs: str, ndigits: int | None = None) -> dict[str, Any]:
    return geojson(wgs84_geometry(geom, crs), ndigits)


def rings_wgs84_geojson(rings: np.ndarray, crs: str, ndigits: int | None = None) -> list[dict[str, Any]]:
    """GeoJSON Polygons in WGS84 of (N, 5, 2) box rings in ``crs``: corner by corner (fast) where that is
    right, through ``wgs84_geometry`` for rings across the antimeridian or around a pole."""
    rings = np.asarray(rings, dtype=np.float64)
    if len(rings) == 0:
        return []
    lonlat = transform_coords(rings, crs, WGS84)
    xy = rings.reshape(-1, 2)
    around_pole = _pole_inside(box(*xy.min(axis=0), *xy.max(axis=0)), crs) != 0
    out = []
    for ring, ring_wgs84 in zip(rings, lonlat, strict=True):
        if around_pole or np.ptp(ring_wgs84[:, 0]) > 180.0:
            out.append(wgs84_geojson(shapely.Polygon(ring), crs, ndigits))
        else:
            out.append(ring_geojson(ring_wgs84, ndigits))
    return out
