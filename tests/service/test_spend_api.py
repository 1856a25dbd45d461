"""Spend-aware orders over HTTP, embedded and through Celery: max_price, target_accuracy, pricing presets."""

from __future__ import annotations

import json

import pytest
from region_helpers import geojson_text, tiles_box, wait_done

REGION = geojson_text(tiles_box(0, 0, 10, 10))


@pytest.fixture
def api(make_client, data_root, tmp_path):
    return make_client(data_root=data_root, upload_dir=tmp_path / "uploads", estimate_chunk_tiles=50)


def estimate(api, **form) -> dict:
    form = {"region": REGION, "region_crs": "EPSG:32618", "raster_ref": "scene.tif", **form}
    response = api.post("/v1/estimates", data=form)
    assert response.status_code == 202, response.text
    job = wait_done(api, response.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    return job


def test_an_estimate_within_a_price_cap_says_what_the_money_buys(api):
    free = {"price_per_km2": 20.0, "min_area_km2": 0.0, "min_width_m": 0.0, "min_order_charge": 0.0}
    job = estimate(api, max_price="2.5", pricing=json.dumps(free))
    spend = job["result"]["spend"]
    assert job["request"]["max_price"] == 2.5
    # 100 tiles of 160 m (0.0256 km², 0.512 each): the cap buys at most 4 tiles.
    assert 0 < spend["price"] <= 2.5 and spend["tiles_bought"] == 4
    assert spend["order"]["price"] == spend["price"] and spend["order"]["geojson"]["features"]
    # Every tile: 80 % right from LR, 95 % with HR (the test bundle's value model).
    assert spend["expected_accuracy_none"] == pytest.approx(0.8)
    assert spend["expected_accuracy_full_hr"] == pytest.approx(0.95)
    assert spend["expected_accuracy"] == pytest.approx(0.8 + 0.15 * 4 / 100)
    assert spend["full_hr_price"] == pytest.approx(51.2)
    prices = [p["price"] for p in spend["curve"]]
    accs = [p["expected_accuracy"] for p in spend["curve"]]
    assert prices == sorted(prices) and accs == sorted(accs) and len(prices) >= 3


def test_a_target_accuracy_is_reached_at_the_least_price_under_a_preset(api):
    job = estimate(api, target_accuracy="0.9", pricing="archive")
    spend = job["result"]["spend"]
    assert job["request"]["pricing"]["min_area_km2"] == 1.0
    assert spend["expected_accuracy"] >= 0.9
    assert all(p["expected_accuracy"] < 0.9 for p in spend["curve"] if p["price"] < spend["price"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pricing", '{"price_per_km2": Infinity}'),
        ("pricing", "gold"),
        ("max_price", "-1"),
        ("max_price", "inf"),
        ("target_accuracy", "1.5"),
    ],
)
def test_bad_spend_fields_are_refused_before_any_work(api, field, value):
    response = api.post(
        "/v1/estimates", data={"region": REGION, "region_crs": "EPSG:32618", "raster_ref": "scene.tif", field: value}
    )
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
