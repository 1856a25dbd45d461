"""Regions that cannot be estimated get invalid_region (422) naming the problem, at once or as the
job's error; each case runs embedded and through Celery + Redis."""

from __future__ import annotations

import json

import pytest
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done


@pytest.fixture
def api(make_client, data_root, tmp_path):
    return make_client(data_root=data_root, upload_dir=tmp_path / "uploads")


def post(api, region: str):
    form = {
        "region": region,
        "region_crs": "EPSG:32618",
        "raster_ref": "scene.tif",
        "pricing": json.dumps(FREE_PRICING),
    }
    return api.post("/v1/estimates", data=form)


REFUSED = {
    "invalid_json": ('{"type": "Polygon", "coordinates": [[', "not valid JSON"),
    "empty_polygon": (json.dumps({"type": "Polygon", "coordinates": []}), "no area"),
    "zero_area_polygon": (
        json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}),
        "no area",
    ),
    "self_intersecting_polygon": (
        json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]}),
        "Self-intersection",
    ),
    "empty_feature_collection": (json.dumps({"type": "FeatureCollection", "features": []}), "no features"),
    "a_line": (json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}), "Polygon or MultiPolygon"),
    "not_an_object": ("[1, 2, 3]", "GeoJSON object"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_unusable_region_is_refused_at_once(api, case):
    region, fragment = REFUSED[case]
    response = post(api, region)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_region" and fragment in response.json()["detail"]


def test_a_region_outside_the_raster_fails_its_job_with_invalid_region(api):
    job = wait_done(api, post(api, geojson_text(tiles_box(50, 50, 60, 60))).json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == "invalid_region"
    assert "does not overlap the raster" in job["error"]["detail"]


@pytest.mark.parametrize("pricing", ["null", "[1, 2]", "25"])
def test_pricing_that_is_not_a_json_object_is_invalid_request(api, pricing):
    form = {"region": geojson_text(tiles_box(0, 0, 2, 2)), "region_crs": "EPSG:32618", "raster_ref": "scene.tif"}
    response = api.post("/v1/estimates", data={**form, "pricing": pricing})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request" and "JSON object" in response.json()["detail"]


def test_a_per_tile_budget_over_the_models_patches_fails_its_job_like_a_plan(api):
    """The one budget rule (``Budget.check_grid``): 17 patches of a 16-patch grid is refused, not clipped."""
    form = {
        "region": geojson_text(tiles_box(0, 0, 2, 2)),
        "region_crs": "EPSG:32618",
        "raster_ref": "scene.tif",
        "max_patches": "17",
    }
    job = wait_done(api, api.post("/v1/estimates", data=form).json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == "invalid_budget"
    assert "max_patches must lie in 0..16, got 17" in job["error"]["detail"]
