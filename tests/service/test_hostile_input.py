"""Inputs a fuzzing pass found answered with a 500, or accepted and failed later: each now gets a
specific 4xx at once, in both modes, and leaves no job behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done
from service_helpers import BANDS, TILE_BOUNDS, geotiff_bytes, hr_over

TIFF = "image/tiff"
LOCAL_CS = 'LOCAL_CS["site grid",LOCAL_DATUM["x",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}


@pytest.fixture
def api(make_client, data_root, tmp_path):
    return make_client(data_root=data_root, upload_dir=tmp_path / "uploads")


def estimate(api, region: str, **form):
    data = {"region": region, "raster_ref": "scene.tif", "pricing": json.dumps(FREE_PRICING), **form}
    return api.post("/v1/estimates", data=data)


def expect(response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and fragment in body["detail"], body


REGIONS = {
    "crs_name_not_a_string": ({**SQUARE, "crs": {"properties": {"name": [1]}}}, "must be a string"),
    "features_not_objects": ({"type": "FeatureCollection", "features": [1]}, "list of Feature objects"),
    "features_a_string": ({"type": "FeatureCollection", "features": "abc"}, "list of Feature objects"),
    "infinite_coordinate": (
        {"type": "Polygon", "coordinates": [[[0, 0], [float("-inf"), 0], [1, 1], [0, 0]]]},
        "finite numbers",
    ),
    "latitude_over_90": (
        {"type": "Polygon", "coordinates": [[[0, 80], [1, 80], [1, 95], [0, 95], [0, 80]]]},
        "latitudes must lie in -90..90",
    ),
    "longitude_beyond_540": (
        {"type": "Polygon", "coordinates": [[[-600, 0], [200, 0], [200, 1], [-600, 1], [-600, 0]]]},
        "longitudes must lie in -540..540",
    ),
    "huge_coordinate": (
        {"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1e308, 1], [0, 1], [0, 0]]]},
        "within ±1e+09 of the CRS's origin",
    ),
}


@pytest.mark.parametrize("case", sorted(REGIONS))
def test_malformed_regions_are_invalid_region(api, case):
    region, fragment = REGIONS[case]
    expect(estimate(api, json.dumps(region)), 422, "invalid_region", fragment)


def test_a_region_nested_deeper_than_json_parsing_goes(api):
    expect(estimate(api, "[" * 100_000 + "]" * 100_000), 422, "invalid_region", "not valid JSON")


@pytest.mark.parametrize(("crs", "fragment"), [("EPSG:99999", "EPSG:99999"), (LOCAL_CS, "cannot be transformed")])
def test_an_unusable_region_crs_is_invalid_region(api, crs, fragment):
    response = estimate(api, geojson_text(tiles_box(0, 0, 2, 2)), region_crs=crs)
    expect(response, 422, "invalid_region", fragment)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("cloud_threshold", "nan", "finite"),
        ("cloud_threshold", "inf", "finite"),
        ("tile_size_m", "inf", "finite"),
        ("tile_size_m", "1e300", "less than or equal to 100000"),
    ],
)
def test_non_finite_or_huge_estimate_options_are_refused_before_a_job(api, field, value, fragment):
    response = estimate(api, geojson_text(tiles_box(0, 0, 2, 2)), region_crs="EPSG:32618", **{field: value})
    expect(response, 422, "invalid_request", fragment)
    assert "X-Job-Id" not in response.headers  # refused at the edge: no job was created


def test_a_raster_reference_with_a_nul_byte_is_refused(api):
    response = estimate(api, geojson_text(tiles_box(0, 0, 2, 2)), region_crs="EPSG:32618", raster_ref="scene.tif\x00")
    expect(response, 403, "source_not_allowed", "control characters")


def test_overflowing_prices_are_refused_before_the_plan_is_stored(client, lr_tile):
    form = {"pricing": '{"price_per_km2": 1e308}'}
    response = client.post("/v1/plans", files={"tile": ("tile.tif", lr_tile(), TIFF)}, data=form)
    expect(response, 422, "invalid_request", "price_per_km2")
    assert "X-Job-Id" not in response.headers


def test_a_tile_in_a_local_engineering_crs_is_invalid_raster(client):
    data = geotiff_bytes(np.ones((4, 64, 64), "uint16") * 1000, crs=LOCAL_CS, descriptions=BANDS)
    response = client.post("/v1/plans", files={"tile": ("site.tif", data, TIFF)})
    expect(response, 422, "invalid_raster", "cannot be transformed")


def classify(client, plan_id: str, name: str, data: bytes):
    return client.post(f"/v1/plans/{plan_id}/classify", files=[("files", (name, data, TIFF))])


def test_hr_in_a_local_engineering_crs_is_invalid_raster(client, plan):
    data = geotiff_bytes(np.ones((4, 64, 64), "uint16") * 1000, crs=LOCAL_CS, descriptions=BANDS)
    expect(classify(client, plan["id"], "site.tif", data), 422, "invalid_raster", "site.tif")


@pytest.mark.parametrize("fill", ["nodata", "nan"])
def test_hr_with_no_valid_pixel_is_empty_raster_not_off_the_tile(client, plan, fill):
    from rasterio.transform import from_bounds

    transform = from_bounds(*TILE_BOUNDS, 64, 64)
    if fill == "nodata":
        data = geotiff_bytes(np.zeros((4, 64, 64), "uint16"), transform=transform, nodata=0, descriptions=BANDS)
    else:
        data = geotiff_bytes(np.full((4, 64, 64), np.nan, "float32"), transform=transform, descriptions=BANDS)
    expect(classify(client, plan["id"], "blank.tif", data), 422, "empty_raster", "blank.tif holds no valid pixels")
    # a file that has pixels but lies elsewhere still says so
    x0, y0, x1, y1 = TILE_BOUNDS
    far = hr_over((x0 + 50_000, y0, x1 + 50_000, y1))
    expect(classify(client, plan["id"], "far.tif", far), 422, "hr_not_covering", "far.tif")


def test_an_unreadable_uploaded_raster_does_not_name_the_servers_path(api, tmp_path):
    form = {"region": geojson_text(tiles_box(0, 0, 2, 2)), "region_crs": "EPSG:32618"}
    response = api.post("/v1/estimates", data=form, files={"raster": ("mine.tif", b"garbage bytes", TIFF)})
    if response.status_code == 202:
        job = wait_done(api, response.json()["id"])
        assert job["state"] == "failed"
        detail = job["error"]["detail"]
    else:
        detail = response.json()["detail"]
    assert str(tmp_path) not in detail and "uploads" not in detail, detail
    assert "mine.tif" in detail


def test_hr_coarser_than_the_lr_tile_is_refused(client, plan, bundle_meta):
    lr_h, lr_w = bundle_meta["lr_size"]
    coarse = hr_over(TILE_BOUNDS, px=max(1, lr_w // 2), descriptions=BANDS)
    expect(classify(client, plan["id"], "coarse.tif", coarse), 422, "invalid_raster", "coarser than the plan's LR tile")
    as_fine_as_lr = hr_over(TILE_BOUNDS, px=lr_w, descriptions=BANDS)
    assert classify(client, plan["id"], "lr_like.tif", as_fine_as_lr).status_code == 200


def test_a_form_field_sent_twice_is_refused_not_resolved_to_the_last(client, lr_tile):
    files = [("tile", ("a.tif", lr_tile(), TIFF)), ("tile", ("b.tif", lr_tile(), TIFF))]
    expect(client.post("/v1/plans", files=files), 422, "invalid_request", "tile: sent 2 times")
    one = [("tile", ("a.tif", lr_tile(), TIFF))]
    response = client.post("/v1/plans", files=one, data={"max_price": ["50", "500"]})
    expect(response, 422, "invalid_request", "max_price: sent 2 times")


def test_classify_still_takes_many_files(client, plan):
    from service_helpers import BUY, patch_bounds

    files = [("files", (f"patch_{i}.tif", hr_over(patch_bounds(i), px=32), TIFF)) for i in BUY]
    assert client.post(f"/v1/plans/{plan['id']}/classify", files=files).status_code == 200


def test_an_estimate_field_sent_twice_is_refused(api):
    region = geojson_text(tiles_box(0, 0, 2, 2))
    data = {"region": region, "raster_ref": ["scene.tif", "other.tif"], "region_crs": "EPSG:32618"}
    expect(api.post("/v1/estimates", data=data), 422, "invalid_request", "raster_ref: sent 2 times")
