"""``POST /v1/estimates`` and estimate jobs over HTTP: each test runs embedded and through Celery + Redis."""

from __future__ import annotations

import json

import pytest
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done, write_scene
from service_helpers import BUY


@pytest.fixture
def api(make_client, data_root, tmp_path):
    return make_client(data_root=data_root, upload_dir=tmp_path / "uploads", estimate_chunk_tiles=10)


REGION = geojson_text(tiles_box(0, 0, 10, 10))


def post(api, **form):
    form = {"region": REGION, "region_crs": "EPSG:32618", "pricing": json.dumps(FREE_PRICING), **form}
    files = form.pop("files", None)
    return api.post("/v1/estimates", data=form, files=files)


def test_an_uploaded_raster_is_estimated_in_the_background(api, data_root):
    response = post(api, files={"raster": ("scene.tif", (data_root / "scene.tif").read_bytes(), "image/tiff")})
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["state"] in ("queued", "running") and response.headers["Location"] == f"/v1/jobs/{queued['id']}"
    job = wait_done(api, queued["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"]["tiles_done"] == job["progress"]["tiles_total"] == 100
    assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"] == 10
    result = job["result"]
    assert result["tiles"]["planned"] == 100 and result["patchdrop"]["patches"] == 300
    assert result["saving_pct"] == pytest.approx(81.25)


def test_a_referenced_raster_gives_per_tile_plans_and_the_order_as_geojson(api):
    job = wait_done(api, post(api, raster_ref="scene.tif").json()["id"])
    assert job["state"] == "succeeded", job["error"]
    tiles = api.get(job["links"]["tiles"])
    assert tiles.status_code == 200 and tiles.headers["content-type"].startswith("application/geo+json")
    features = tiles.json()["features"]
    assert len(features) == 100
    assert all(f["properties"]["patches"] == sorted(BUY) for f in features)
    assert {(f["properties"]["row"], f["properties"]["col"]) for f in features} == {
        (r, c) for r in range(10) for c in range(10)
    }
    order = api.get(job["links"]["order"]).json()
    assert order["type"] == "FeatureCollection" and len(order["features"]) == job["result"]["patchdrop"]["polygons"]
    assert sum(f["properties"]["area_km2"] for f in order["features"]) == pytest.approx(
        job["result"]["patchdrop"]["area_km2"]
    )


@pytest.mark.parametrize(
    ("ref", "status", "code"),
    [
        ("../outside.tif", 403, "source_not_allowed"),
        ("https://example.com/scene.tif", 403, "source_not_allowed"),
        ("file:///etc/passwd", 403, "source_not_allowed"),
        ("missing.tif", 404, "source_not_found"),
    ],
)
def test_references_outside_the_allow_list_are_refused(api, ref, status, code):
    response = post(api, raster_ref=ref)
    assert response.status_code == status and response.json()["code"] == code


def test_a_region_that_is_not_a_polygon_is_refused(api):
    response = post(api, raster_ref="scene.tif", region=json.dumps({"type": "Point", "coordinates": [0, 0]}))
    assert response.status_code == 422 and response.json()["code"] == "invalid_region"


def test_an_unreadable_raster_fails_the_job_with_its_code(api, data_root):
    (data_root / "broken.tif").write_bytes(b"not a tiff")
    job = wait_done(api, post(api, raster_ref="broken.tif").json()["id"])
    assert job["state"] == "failed" and job["error"]["code"] == "invalid_raster"


def test_delete_leaves_a_finished_estimate_as_it_is(api):
    job = wait_done(api, post(api, raster_ref="scene.tif").json()["id"])
    after = api.delete(f"/v1/jobs/{job['id']}").json()
    assert after["state"] == "succeeded" and after["result"] == job["result"]


def test_unknown_estimate_ids_are_404(api):
    missing = "est_" + "0" * 32
    for response in (api.get(f"/v1/jobs/{missing}"), api.delete(f"/v1/jobs/{missing}")):
        assert response.status_code == 404 and response.json()["code"] == "job_not_found"


def test_delete_cancels_an_estimate_waiting_behind_another(api, data_root):
    write_scene(data_root / "tall.tif", width=160, height=16 * 200)
    tall = geojson_text(tiles_box(0, 0, 10, 200))
    busy = post(api, raster_ref="tall.tif", region=tall).json()  # 200 one-row chunks: runs for a while
    waiting = post(api, raster_ref="scene.tif").json()
    cancelled = api.delete(f"/v1/jobs/{waiting['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert wait_done(api, busy["id"])["state"] == "succeeded"
    job = api.get(f"/v1/jobs/{waiting['id']}").json()
    assert job["state"] == "cancelled" and job["result"] is None and job["progress"]["chunks_done"] == 0
    assert api.get(f"/v1/jobs/{waiting['id']}/tiles.geojson").json()["code"] == "estimate_not_ready"
