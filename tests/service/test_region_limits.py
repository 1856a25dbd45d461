"""Region limits: area (checked by the API on the ellipsoid) and tile count (checked from the
raster's header before any chunk runs). Each test runs embedded and through Celery + Redis."""

from __future__ import annotations

import json

import pytest
import shapely
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done

from models.geo.footprints import geodesic_area_km2

REGION = geojson_text(tiles_box(0, 0, 10, 10))  # 100 tiles


def post(client, region: str = REGION, crs: str | None = "EPSG:32618"):
    form = {"region": region, "raster_ref": "scene.tif", "pricing": json.dumps(FREE_PRICING)}
    if crs:
        form["region_crs"] = crs
    return client.post("/v1/estimates", data=form)


def test_a_region_over_the_area_limit_is_refused_with_413(make_client, data_root, tmp_path):
    client = make_client(data_root=data_root, upload_dir=tmp_path / "up", max_region_km2=1.0)
    response = post(client)
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == "region_too_large" and "PATCHDROP_MAX_REGION_KM2" in body["detail"]


def test_a_region_over_the_tile_limit_fails_before_any_chunk(make_client, data_root, tmp_path):
    client = make_client(data_root=data_root, upload_dir=tmp_path / "up", max_region_tiles=99)
    job = wait_done(client, post(client).json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == "region_too_large"
    assert "100 tiles" in job["error"]["detail"] and "limit is 99" in job["error"]["detail"]


def test_geodesic_area_matches_in_any_crs():
    lonlat = shapely.box(-75.6, 37.0, -75.5, 37.1)
    utm = shapely.box(430000.0, 4100000.0, 440000.0, 4110000.0)
    assert geodesic_area_km2(lonlat, "EPSG:4326") == pytest.approx(98.6, rel=0.01)
    assert geodesic_area_km2(utm, "EPSG:32618") == pytest.approx(100.0, rel=0.002)  # UTM scale factor ~0.9996
