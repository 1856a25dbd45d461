"""``patchdrop estimate``: the same estimate in process, with the result files the API serves."""

from __future__ import annotations

import json

import pytest
from region_helpers import geojson_text, tiles_box, write_scene
from service_helpers import BUY

from patchdrop.cli import main
from service.estimates import resolve_source
from service.settings import Settings


def test_the_cli_writes_the_estimate_the_order_and_the_tiles(tmp_path, bundle_path, capsys):
    write_scene(tmp_path / "scene.tif")
    (tmp_path / "region.geojson").write_text(geojson_text(tiles_box(0, 0, 10, 10)))
    pricing = json.dumps({"min_area_km2": 0, "min_width_m": 0, "min_order_charge": 0})
    code = main([
        "estimate", str(tmp_path / "region.geojson"), str(tmp_path / "scene.tif"), "--region-crs", "EPSG:32618",
        "--out", str(tmp_path / "out"), "--checkpoint", str(bundle_path), "--pricing", pricing, "--quiet",
    ])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "out" / "estimate.json").read_text())
    assert result["tiles"]["planned"] == 100 and result["patchdrop"]["patches"] == 100 * len(BUY)
    assert result["saving_pct"] == 81.25
    order = json.loads((tmp_path / "out" / "order.geojson").read_text())
    assert len(order["features"]) == result["patchdrop"]["polygons"]
    tiles = json.loads((tmp_path / "out" / "tiles.geojson").read_text())
    assert len(tiles["features"]) == 100 and tiles["features"][0]["properties"]["patches"] == sorted(BUY)
    assert "100 tiles planned" in capsys.readouterr().out


def test_allowed_url_prefixes_pass_the_allow_list_as_given(tmp_path):
    settings = Settings(source_url_prefixes=["https://data.example.org/cogs/"], data_root=tmp_path)
    url = "https://data.example.org/cogs/S2A_T18SUJ.tif"
    assert resolve_source(url, settings) == url
    (tmp_path / "a.tif").write_bytes(b"x")
    assert resolve_source("a.tif", settings) == str((tmp_path / "a.tif").resolve())


@pytest.mark.parametrize("mode", ["embedded"])
def test_the_cli_writes_the_result_the_api_answers(make_client, mode, data_root, bundle_path, tmp_path):
    """One estimate pipeline: ``patchdrop estimate`` and ``POST /v1/estimates`` agree on the same input."""
    from region_helpers import FREE_PRICING, wait_done

    region = geojson_text(tiles_box(0, 0, 10, 10))
    pricing = json.dumps(FREE_PRICING)
    client = make_client(data_root=data_root, upload_dir=tmp_path / "uploads")
    form = {"region": region, "region_crs": "EPSG:32618", "raster_ref": "scene.tif", "pricing": pricing}
    job = wait_done(client, client.post("/v1/estimates", data=form).json()["id"])
    assert job["state"] == "succeeded", job
    (tmp_path / "region.geojson").write_text(region)
    code = main([
        "estimate", str(tmp_path / "region.geojson"), str(data_root / "scene.tif"), "--region-crs", "EPSG:32618",
        "--out", str(tmp_path / "out"), "--checkpoint", str(bundle_path), "--pricing", pricing, "--quiet",
    ])  # fmt: skip
    assert code == 0
    api = dict(job["result"])
    assert json.loads((tmp_path / "out" / "order.geojson").read_text()) == api.pop("order_geojson")
    assert json.loads((tmp_path / "out" / "estimate.json").read_text()) == api
