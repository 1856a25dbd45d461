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
from shapely.geometry import mapping
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
    return Transformer.from_crs(parse_crs(src), parse_crs(dst), always_xy=True)


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
