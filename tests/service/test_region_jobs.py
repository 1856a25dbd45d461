"""Region estimates without HTTP: the tile grid, skipped tiles, prices, idempotent chunks, cancellation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from region_helpers import FREE_PRICING, PATCH_KM2, geojson_text, save_scene, tiles_box, write_scene
from service_helpers import BUY
from shapely.geometry import Polygon

from models.acquisition.region import STATUSES, fixed_h_patches, select_patches
from models.errors import RegionError
from models.geo.footprints import WGS84, transform_geometry
from worker import estimates
from worker.jobstore import SQLiteJobStore, cancel
from worker.payloads import PricingPayload
from worker.registry import ModelRegistry


@pytest.fixture(scope="module")
def registry(bundle_path):
    return ModelRegistry({"default": str(bundle_path)}, "default", "cpu")


@pytest.fixture
def store(tmp_path):
    return SQLiteJobStore(tmp_path / "estimates.sqlite3")


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.tif"
    write_scene(path)
    return path


def submit(store, source, region, *, region_crs="EPSG:32618", chunk_tiles=20, job_id="job", **options) -> str:
    payload = estimates.EstimatePayload(
        job_id=job_id,
        source=str(source),
        source_name="scene.tif",
        region=json.loads(geojson_text(region)),
        region_crs=region_crs,
        chunk_tiles=chunk_tiles,
        pricing=PricingPayload(**FREE_PRICING),
        **options,
    )
    store.create(estimates.new_estimate_job(payload, "public"))
    return job_id


def run(store, registry, source, region, **kwargs) -> dict:
    job_id = submit(store, source, region, **kwargs)
    return estimates.run_all(job_id, store, registry)


def test_a_region_covering_the_scene_plans_every_tile_and_prices_three_campaigns(store, registry, scene):
    result = run(store, registry, scene, tiles_box(-3, -3, 13, 13))
    assert result["tiles"]["planned"] == 100
    assert result["tiles"]["skipped"] == {s: 0 for s in STATUSES[1:]}
    pd, fixed, full = result["patchdrop"], result["fixed_h"], result["full"]
    assert pd["patches"] == 100 * len(BUY) and fixed["patches"] == pd["patches"] and full["patches"] == 1600
    assert pd["area_km2"] == pytest.approx(300 * PATCH_KM2) and full["area_km2"] == pytest.approx(2.56)
    assert pd["price"] == pytest.approx(0.48 * 20) and full["price"] == pytest.approx(2.56 * 20)
    assert result["saving_pct"] == pytest.approx(81.25)
    assert full["polygons"] == 1  # 100 tiles merged across tile and chunk borders into one order polygon
    assert len(result["order_geojson"]["features"]) == pd["polygons"]


def test_a_region_partly_outside_the_raster_plans_only_whole_tiles_inside(store, registry, tmp_path):
    path = tmp_path / "wide.tif"
    write_scene(path, width=170)  # 10 whole tile columns and a partial 11th
    result = run(store, registry, path, tiles_box(2, -1, 20, 11))
    assert result["tiles"]["planned"] == 8 * 10
    assert result["tiles"]["skipped"]["outside_raster"] == 10
    assert result["full"]["area_km2"] == pytest.approx(80 * 0.0256)


def test_a_region_in_wgs84_plans_the_same_tiles_as_in_utm(store, registry, scene):
    utm = tiles_box(1.5, 1.5, 8.5, 8.5)
    a = run(store, registry, scene, utm, job_id="utm")
    b = run(store, registry, scene, transform_geometry(utm, "EPSG:32618", WGS84), region_crs=None, job_id="wgs")
    assert a["tiles"] == b["tiles"] and a["tiles"]["planned"] == 64
    assert a["patchdrop"]["patches"] == b["patchdrop"]["patches"]
    assert b["full"]["area_km2"] == pytest.approx(a["full"]["area_km2"], rel=0.005)
    assert a["full"]["area_km2"] == pytest.approx(7 * 7 * 0.0256)  # clipped to the region: half tiles at its edges


def test_holes_in_the_region_are_neither_planned_nor_bought(store, registry, scene):
    outer = tiles_box(0, 0, 10, 10)
    hole = tiles_box(3, 3, 7, 7)
    region = Polygon(outer.exterior.coords, [hole.exterior.coords])
    result = run(store, registry, scene, region)
    assert result["tiles"]["planned"] == 100 - 16 and result["tiles"]["skipped"]["outside_region"] == 16
    assert result["full"]["area_km2"] == pytest.approx(84 * 0.0256)


def test_nodata_empty_and_cloudy_tiles_are_skipped_by_reason(store, registry, tmp_path):
    data = np.random.default_rng(0).integers(300, 2500, (4, 160, 160)).astype("uint16")
    data[:, :32, :32] = 0  # nodata: tiles (0,0), (0,1), (1,0), (1,1)
    data[:, 32:48, :16] = 1000  # constant: tile (2,0) is empty
    data[0, 48:64, :16] = 6000  # bright blue: tile (3,0) is cloud
    path = save_scene(tmp_path / "gaps.tif", data, nodata=0)
    result = run(store, registry, path, tiles_box(0, 0, 10, 10), cloud_threshold=3000)
    assert result["tiles"]["skipped"] == {
        "outside_region": 0,
        "outside_raster": 0,
        "nodata": 4,
        "empty": 1,
        "cloud": 1,
    }
    assert result["tiles"]["planned"] == 94 and result["patchdrop"]["patches"] == 94 * len(BUY)


def test_a_chunk_delivered_twice_changes_nothing(store, registry, scene, tmp_path):
    region = tiles_box(0, 0, 10, 10)
    undisturbed = run(store, registry, scene, region, chunk_tiles=10, job_id="once")
    job_id = submit(store, scene, region, chunk_tiles=10, job_id="twice")
    todo = estimates.start(job_id, store, registry)
    assert todo == list(range(10))
    estimates.run_chunks(job_id, [3], store, registry)
    first = json.dumps(next(c for c in store.chunks(job_id) if c["index"] == 3), sort_keys=True)
    # A redelivered task finds its chunk stored; a duplicate that computed it anyway stores the same bytes.
    estimates.run_chunks(job_id, [3], store, registry)
    other = SQLiteJobStore(tmp_path / "other.sqlite3")
    submit(other, scene, region, chunk_tiles=10, job_id="twice")
    estimates.start("twice", other, registry)
    estimates.run_chunks("twice", [3], other, registry)
    again = json.dumps(next(c for c in other.chunks("twice") if c["index"] == 3), sort_keys=True)
    assert again == first
    assert estimates.start(job_id, store, registry) == [i for i in range(10) if i != 3]
    assert estimates.run_chunks(job_id, todo, store, registry) == undisturbed
    assert estimates.run_chunks(job_id, [3], store, registry) == undisturbed  # after the end: still the same


def test_cancel_stops_a_job_between_chunks(store, registry, scene):
    job_id = submit(store, scene, tiles_box(0, 0, 10, 10), chunk_tiles=10)
    todo = estimates.start(job_id, store, registry)
    estimates.run_chunks(job_id, todo[:1], store, registry)
    cancel(job_id, store)
    assert store.get(job_id)["state"] == "cancelled"
    assert estimates.run_chunks(job_id, todo, store, registry) is None
    job = store.get(job_id)
    assert job["state"] == "cancelled" and job["result"] is None
    assert store.chunk_indexes(job_id) == {0}


def test_a_cancel_while_the_raster_is_opened_is_kept(store, registry, scene, monkeypatch):
    """DELETE between reading the job and fixing its grid: the job stays cancelled and runs nothing."""
    job_id = submit(store, scene, tiles_box(0, 0, 10, 10), chunk_tiles=10)
    build = estimates.build_spec

    def slow_open(req, reg):
        built = build(req, reg)
        cancel(job_id, store)  # the user's DELETE lands while the raster is opened
        return built

    monkeypatch.setattr(estimates, "build_spec", slow_open)
    assert estimates.start(job_id, store, registry) == []
    job = store.get(job_id)
    assert job["state"] == "cancelled" and job["spec"] is None and store.chunk_indexes(job_id) == set()


def test_a_cancel_before_a_failure_is_kept(store, registry, scene, monkeypatch):
    job_id = submit(store, scene, tiles_box(20, 20, 30, 30))  # beside the raster: build_spec fails
    build = estimates.build_spec

    def cancelled_then_failing(req, reg):
        cancel(job_id, store)
        return build(req, reg)

    monkeypatch.setattr(estimates, "build_spec", cancelled_then_failing)
    with pytest.raises(RegionError):
        estimates.start(job_id, store, registry)
    assert store.get(job_id)["state"] == "cancelled" and store.get(job_id)["error"] is None


def test_a_region_beside_the_raster_fails_the_job_with_its_code(store, registry, scene):
    job_id = submit(store, scene, tiles_box(20, 20, 30, 30))
    with pytest.raises(RegionError):
        estimates.run_all(job_id, store, registry)
    assert store.get(job_id)["error"]["code"] == "invalid_region"


def test_select_patches_caps_to_the_most_probable_eligible_patches():
    probs = np.array([[0.9, 0.8, 0.7, 0.2] + [0.0] * 12, [0.6] * 16], np.float32)
    eligible = np.array([0b1111111111111110, 0xFFFF], np.uint32)  # patch 0 outside the region in tile 0
    chosen = select_patches(probs, eligible, max_patches=2)
    assert chosen.tolist() == [0b0110, 0b0011]
    fixed = fixed_h_patches(chosen, eligible, (5, 6, 9, 10, 13, 14, 1, 2, 0, 3, 4, 7, 8, 11, 15, 12))
    assert fixed.tolist() == [(1 << 5) | (1 << 6), (1 << 5) | (1 << 6)]


def test_a_request_that_no_longer_validates_fails_the_job_instead_of_leaving_it_running(store, registry, scene):
    job_id = submit(store, scene, tiles_box(0, 0, 4, 4))
    todo = estimates.start(job_id, store, registry)
    job = store.get(job_id)
    store.update(job_id, request={**job["request"], "max_patches": -3})  # e.g. written by an older release
    with pytest.raises(Exception):  # noqa: B017 - the task fails; the job record says why
        estimates.run_chunks(job_id, todo, store, registry)
    job = store.get(job_id)
    assert job["state"] == "failed" and job["finished"] and "max_patches" in job["error"]["detail"]


def test_preloading_logs_a_bundle_that_does_not_load(bundle_path, tmp_path, caplog):
    registry = ModelRegistry({"default": str(bundle_path), "broken": str(tmp_path / "missing.pt")}, "default", "cpu")
    with caplog.at_level("ERROR", logger="worker.registry"):
        registry.preload()
    assert any("'broken'" in r.getMessage() and "missing.pt" in r.getMessage() for r in caplog.records)
    assert [m["loaded"] for m in registry.describe()] == [False, True]  # broken, default (sorted by id)
