"""WGS84 footprints as RFC 7946 wants them: cut at the antimeridian, closed over a pole, never zero-area."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import box, shape

from models.geo.footprints import box_rings, geodesic_area_km2, rings_wgs84_geojson, wgs84_bbox, wgs84_geometry

GEOD = Geod(ellps="WGS84")


def km2(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def in_range(geom) -> bool:
    lon, lat = shapely.get_coordinates(geom).T
    return bool(lon.min() >= -180 and lon.max() <= 180 and lat.min() >= -90 and lat.max() <= 90)


@pytest.mark.parametrize(
    ("crs", "bounds", "kind"),
    [
        ("EPSG:3413", (-50000, -50000, 50000, 50000), "Polygon"),  # the North Pole inside
        ("EPSG:3031", (-50000, -50000, 50000, 50000), "Polygon"),  # the South Pole inside
        ("EPSG:3413", (0, 0, 50000, 50000), "Polygon"),  # the pole at a corner
        ("EPSG:3413", (-50000, -50000, -10000, 50000), "MultiPolygon"),  # near the pole, across 180°
        ("EPSG:32660", (800000, 100000, 860000, 160000), "MultiPolygon"),  # across the antimeridian
        ("EPSG:32618", (500000, 4400000, 510000, 4410000), "Polygon"),  # an ordinary tile
    ],
)
def test_footprints_are_valid_and_keep_their_area(crs, bounds, kind):
    tile = box(*bounds)
    geom = wgs84_geometry(tile, crs)
    assert geom.geom_type == kind and geom.is_valid and in_range(geom)
    assert km2(geom) == pytest.approx(geodesic_area_km2(shapely.segmentize(tile, 500.0), crs), rel=1e-3)


def test_an_ordinary_footprint_is_its_four_corners():
    geom = wgs84_geometry(box(500000, 4400000, 510000, 4410000), "EPSG:32618")
    assert len(shapely.get_coordinates(geom)) == 5


def test_bboxes_follow_rfc_7946():
    west, south, east, north = wgs84_bbox(box(800000, 100000, 860000, 160000), "EPSG:32660")
    assert west > 179 and east < -179 and 0 < south < north  # west > east across the antimeridian
    assert wgs84_bbox(box(-5e4, -5e4, 5e4, 5e4), "EPSG:3413")[::2] == (-180.0, 180.0)
    assert wgs84_bbox(box(-5e4, -5e4, 5e4, 5e4), "EPSG:3413")[3] == 90.0


def test_region_tile_rings_take_the_careful_path_only_where_needed():
    bounds = [(800000 + 8000 * i, 100000, 808000 + 8000 * i, 108000) for i in range(8)]  # a row across 180°
    features = rings_wgs84_geojson(box_rings(bounds), "EPSG:32660", 7)
    geoms = [shape(f) for f in features]
    assert all(g.is_valid and in_range(g) and g.area > 0 for g in geoms)
    kinds = [g.geom_type for g in geoms]
    assert "MultiPolygon" in kinds and kinds.count("Polygon") >= 6
    total = sum(km2(g) for g in geoms)
    assert total == pytest.approx(km2(wgs84_geometry(box(800000, 100000, 864000, 108000), "EPSG:32660")), rel=1e-3)
    assert np.isfinite(total)
