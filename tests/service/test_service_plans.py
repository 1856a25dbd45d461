"""Plans, previews, STAC, models and jobs: each test runs embedded and through Celery + Redis."""

from __future__ import annotations

import pytest
from service_helpers import BANDS, BUY, TILE_BOUNDS

TIFF = "image/tiff"


def post_plan(client, data: bytes, **form):
    return client.post("/v1/plans", files={"tile": ("tile.tif", data, TIFF)}, data=form)


def test_health_reports_the_mode(client, mode):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["mode"] == mode


def test_models_lists_loaded_bundles_with_metadata(client, bundle_meta):
    body = client.get("/v1/models").json()
    assert body["default_model"] == "default"
    models = {m["id"]: m for m in body["models"]}
    assert models["default"]["loaded"] and models["default"]["default"]
    meta = models["default"]["metadata"]
    assert meta["bands"] == bundle_meta["bands"] and meta["lr_size"] == bundle_meta["lr_size"]
    assert "band_mean" not in meta
    assert not models["broken"]["loaded"] and "does not exist" in models["broken"]["error"]


def test_a_plan_names_patches_footprints_prices_and_the_lr_class(plan, bundle_meta):
    rows, cols = bundle_meta["grid"]
    assert len(plan["patch_probabilities"]) == rows * cols == len(plan["patches"])
    purchase = plan["purchase"]
    assert purchase["recommendation"] == "patches"
    assert sorted(purchase["selected_patches"]) == purchase["patch_ids"] == sorted(BUY)
    assert [p["id"] for p in plan["patches"] if p["selected"]] == sorted(BUY)
    patch = plan["patches"][BUY[0]]
    assert patch["footprint"]["type"] == "Polygon" and patch["area_km2"] == pytest.approx(0.4096)
    lon, lat = patch["footprint_wgs84"]["coordinates"][0][0]
    assert -76 < lon < -75 and 37 < lat < 38
    # 3 patches (1.23 km²) hit the 100 USD minimum charge; the whole tile costs 6.55 km² x 20 USD.
    assert purchase["price"] == pytest.approx(100.0)
    assert purchase["order"]["minimum_charge_applied"]
    assert purchase["whole_tile"]["price"] == pytest.approx(131.07, abs=0.01)
    assert purchase["savings_vs_whole_tile"] == pytest.approx(31.07, abs=0.01)
    assert len(purchase["order"]["polygons"]) == 1  # the L of three patches is one polygon
    assert plan["tile"]["crs_code"] == "EPSG:32618"
    assert plan["tile"]["bounds"] == list(TILE_BOUNDS)
    assert plan["tile"]["area_km2"] == pytest.approx(6.5536)
    assert plan["lr_prediction"]["class"] in bundle_meta["class_names"]
    assert sum(plan["lr_prediction"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert plan["model"] == "default" and plan["model_version"] == bundle_meta["model_id"]


def test_a_plan_is_stored_and_served_again(client, plan):
    again = client.get(f"/v1/plans/{plan['id']}")
    assert again.status_code == 200
    assert again.json() == plan


def test_restarting_the_api_loses_no_plan(make_client, client, plan):
    client.close()
    restarted = make_client()
    assert restarted.get(f"/v1/plans/{plan['id']}").json()["purchase"] == plan["purchase"]


def test_plan_as_stac_item(client, plan):
    response = client.get(f"/v1/plans/{plan['id']}", params={"format": "stac"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    item = response.json()
    assert item["type"] == "Feature" and item["id"] == plan["id"]
    assert any("projection" in ext for ext in item["stac_extensions"])
    props = item["properties"]
    assert props["proj:code"] == "EPSG:32618" and props["proj:shape"] == [64, 64]
    assert props["patchdrop:patch_ids"] == plan["purchase"]["patch_ids"]
    assert item["assets"]["preview"]["href"].endswith(f"/v1/plans/{plan['id']}/preview.png")
    assert item["bbox"] == plan["tile"]["bounds_wgs84"]


def test_stac_on_creation(client, lr_tile):
    response = client.post("/v1/plans", params={"format": "stac"}, files={"tile": ("t.tif", lr_tile(), TIFF)})
    assert response.status_code == 201 and response.json()["stac_version"] == "1.1.0"


def test_preview_is_a_png(client, plan):
    response = client.get(f"/v1/plans/{plan['id']}/preview.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_max_patches_caps_the_purchase(client, lr_tile):
    body = post_plan(client, lr_tile(), max_patches="1").json()
    assert len(body["purchase"]["selected_patches"]) == 1
    assert body["budget"]["max_patches"] == 1


def test_a_price_cap_below_the_minimum_charge_buys_nothing(client, lr_tile):
    body = post_plan(client, lr_tile(), max_price="50").json()
    assert body["purchase"]["recommendation"] == "none"
    assert body["purchase"]["patch_ids"] == [] and body["purchase"]["price"] == 0
    assert "price cap" in body["purchase"]["reason"]


def test_whole_tile_is_recommended_when_minimums_make_it_cheaper(make_client, lr_tile):
    client = make_client(pricing={"min_area_km2": 3.0, "min_order_charge": 0.0})
    purchase = post_plan(client, lr_tile()).json()["purchase"]
    # 3 patches billed as 3 km² cost as much as... no: the whole tile (6.55 km²) costs more here.
    assert purchase["recommendation"] == "patches"
    client = make_client(pricing={"min_area_km2": 7.0, "min_order_charge": 0.0})
    purchase = post_plan(client, lr_tile()).json()["purchase"]
    assert purchase["recommendation"] == "whole_tile"
    assert purchase["patch_ids"] == list(range(16))
    assert purchase["price"] == purchase["whole_tile"]["price"]


def test_jobs_are_recorded(client, plan):
    job = client.get(f"/v1/jobs/{plan['job_id']}").json()
    assert job["state"] == "succeeded" and job["kind"] == "plan"
    assert job["links"]["plan"] == f"/v1/plans/{plan['id']}"
    missing = client.get("/v1/jobs/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"


def test_openapi_documents_the_versioned_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/plans", "/v1/plans/{plan_id}", "/v1/plans/{plan_id}/classify", "/v1/models"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_bands_named_in_another_order_are_accepted(client, lr_tile):
    response = post_plan(client, lr_tile(descriptions=list(reversed(BANDS))))
    assert response.status_code == 201
