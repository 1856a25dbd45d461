"""Classification from a plan's LR tile and uploaded HR imagery (both modes)."""

from __future__ import annotations

import pytest
from rasterio.warp import transform_bounds
from service_helpers import BANDS, BUY, TILE_BOUNDS, hr_over, patch_bounds

TIFF = "image/tiff"


def classify(client, plan_id: str, *files: tuple[str, bytes]):
    return client.post(f"/v1/plans/{plan_id}/classify", files=[("files", (n, d, TIFF)) for n, d in files])


def expect_error(response, code: str, *fragments: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], body


def test_one_hr_image_covering_the_tile(client, plan, bundle_meta):
    response = classify(client, plan["id"], ("hr.tif", hr_over(TILE_BOUNDS, descriptions=BANDS)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["class"] in bundle_meta["class_names"]
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert body["patches_used"] == len(plan["purchase"]["patch_ids"]) == len(BUY)
    assert body["purchased_patches"] == sorted(BUY)
    assert all(v == 1.0 for v in body["patch_coverage"].values())
    job = client.get(f"/v1/jobs/{body['job_id']}").json()
    assert job["kind"] == "classify" and job["state"] == "succeeded"
    assert job["result"]["class"] == body["class"]


def test_one_file_per_patch(client, plan):
    files = [(f"patch_{i}.tif", hr_over(patch_bounds(i), px=32)) for i in BUY]
    response = classify(client, plan["id"], *files)
    assert response.status_code == 200, response.text
    assert response.json()["patches_used"] == len(BUY)


def test_hr_in_another_crs_is_reprojected(client, plan):
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:32618", "EPSG:4326", *TILE_BOUNDS)
    pad = 0.003  # a little wider than the tile: UTM squares are not lon/lat squares
    data = hr_over((lon0 - pad, lat0 - pad, lon1 + pad, lat1 + pad), crs="EPSG:4326", px=200)
    response = classify(client, plan["id"], ("wgs84.tif", data))
    assert response.status_code == 200, response.text
    assert response.json()["patches_used"] == len(BUY)


def test_missing_purchased_patches_are_named(client, plan):
    files = [(f"patch_{i}.tif", hr_over(patch_bounds(i), px=32)) for i in BUY[:1]]
    missing = ", ".join(f"{i} (0% covered)" for i in sorted(BUY)[1:])
    expect_error(classify(client, plan["id"], *files), "hr_not_covering", missing)


def test_no_upload_for_a_plan_that_bought_patches(client, plan):
    expect_error(client.post(f"/v1/plans/{plan['id']}/classify"), "hr_not_covering", "5, 6, 9")


def test_hr_somewhere_else(client, plan):
    x0, y0, x1, y1 = TILE_BOUNDS
    elsewhere = (x0 + 50_000, y0, x1 + 50_000, y1)
    expect_error(classify(client, plan["id"], ("far.tif", hr_over(elsewhere))), "hr_not_covering", "far.tif")


def test_hr_with_wrong_bands(client, plan):
    three = hr_over(TILE_BOUNDS, bands=3)
    expect_error(classify(client, plan["id"], ("rgb.tif", three)), "wrong_band_count", "rgb.tif", "3 bands")
    named = hr_over(TILE_BOUNDS, descriptions=["B02", "B03", "B04", "B11"])
    expect_error(classify(client, plan["id"], ("swir.tif", named)), "wrong_bands", "unexpected B11", "missing B08")


def test_hr_that_is_not_a_geotiff(client, plan):
    expect_error(classify(client, plan["id"], ("hr.jpg", b"\xff\xd8\xff\xe0 not really")), "invalid_raster", "hr.jpg")


def test_a_plan_that_buys_nothing_classifies_from_lr_alone(client, lr_tile):
    plan = client.post("/v1/plans", files={"tile": ("t.tif", lr_tile(), TIFF)}, data={"max_patches": "0"}).json()
    assert plan["purchase"]["patch_ids"] == []
    body = client.post(f"/v1/plans/{plan['id']}/classify").json()
    assert body["patches_used"] == 0
    assert body["probabilities"] == pytest.approx(plan["lr_prediction"]["probabilities"], abs=1e-5)
