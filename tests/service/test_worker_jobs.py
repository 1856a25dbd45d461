"""The worker's plain job functions, without Celery; and jobs that outlive their request."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from rasterio.transform import from_origin
from service_helpers import BANDS, BUY, X0, Y1, geotiff_bytes, lr_array

from models.errors import CoverageError, WrongBandCountError
from models.nn.device import choose_device
from worker import jobs
from worker.jobstore import new_job
from worker.payloads import PricingPayload, b64encode
from worker.registry import ModelRegistry

PRICING = PricingPayload(price_per_km2=20, min_area_km2=1, min_width_m=500, min_order_charge=100).model_dump()


@pytest.fixture(scope="module")
def registry(bundle_path):
    return ModelRegistry({"default": bundle_path}, "default", "cpu")


def payload(plan_id: str, data: bytes, **extra) -> dict:
    return {"plan_id": plan_id, "tile": b64encode(data), "pricing": PRICING, **extra}


def test_tiles_for_one_model_share_a_forward_pass(registry):
    _, bundle = registry.get()
    calls = []
    hook = bundle.policy.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        tiles = [geotiff_bytes(lr_array(seed=s), descriptions=BANDS) for s in range(3)]
        results = jobs.plan_many([payload(f"p{i}", t) for i, t in enumerate(tiles)], registry)
    finally:
        hook.remove()
    assert calls == [3]
    assert [r["plan"]["id"] for r in results] == ["p0", "p1", "p2"]
    assert all(r["plan"]["purchase"]["patch_ids"] == sorted(BUY) for r in results)
    assert results[0]["artifacts"]["lr_input"]["shape"] == [4, *bundle.lr_size]


def test_bundles_load_once_per_process(registry):
    assert registry.get()[1] is registry.get("default")[1]
    assert choose_device("auto").type in ("cpu", "cuda")


def test_job_errors_are_domain_errors(registry):
    with pytest.raises(WrongBandCountError):
        jobs.plan(payload("p", geotiff_bytes(lr_array(bands=3))), registry)
    plan = jobs.plan(payload("p", geotiff_bytes(lr_array(), descriptions=BANDS)), registry)
    art = plan["artifacts"]
    request = {
        "plan_id": "p", "model": "default", "crs": art["crs"], "transform": art["transform"],
        "width": art["width"], "height": art["height"], "lr_input": art["lr_input"],
        "purchased": list(BUY), "files": [],
    }  # fmt: skip
    with pytest.raises(CoverageError, match="5, 6, 9"):
        jobs.classify(request, registry)
    request["purchased"] = []
    out = jobs.classify(request, registry)
    assert out["patches_used"] == 0 and np.isclose(sum(out["probabilities"].values()), 1, atol=1e-4)


@pytest.mark.parametrize("mode", ["embedded"])
def test_a_job_interrupted_by_a_restart_reads_as_failed(client, mode):
    client.app.state.plans.jobs.create(new_job("plan", "public", job_id="j1", plan_id="p1", state="running"))
    job = client.get("/v1/jobs/j1").json()
    assert job["state"] == "failed" and job["error"]["code"] == "job_failed"


@pytest.mark.parametrize("mode", ["celery"])  # embedded jobs finish inside their request
def test_a_job_not_done_in_time_answers_202_and_is_finished_by_polling(make_client, mode, lr_tile, registry):
    """No worker consumes this queue, so the request gives up waiting; then the result arrives."""
    import redis

    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    client = make_client(job_wait_s=0.2, queue=queue)
    tile = lr_tile()
    response = client.post("/v1/plans", files={"tile": ("t.tif", tile, "image/tiff")})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and "plan" not in job["links"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"
    assert client.get(f"/v1/plans/{job['plan_id']}").status_code == 404

    # A worker finishes the task: its result lands in the result backend.
    result = jobs.plan(payload(job["plan_id"], tile), registry)
    celery_app = client.app.state.plans.executor.app
    celery_app.backend.store_result(job["id"], result, "SUCCESS")

    job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["state"] == "succeeded" and job["links"]["plan"] == f"/v1/plans/{job['plan_id']}"
    plan = client.get(job["links"]["plan"]).json()
    assert plan["purchase"]["patch_ids"] == sorted(BUY) and plan["job_id"] == job["id"]
    redis.Redis.from_url(client.app.state.settings.redis_url).delete(queue)


def test_a_tile_at_another_scale_than_the_training_tiles_is_flagged(registry, bundle_path, tmp_path):
    from models.nn.checkpoint import load_bundle, save_bundle

    bundle = load_bundle(bundle_path)
    bundle.metadata["lr_pixel_size"] = 40.0  # trained on 16 px x 40 m = 640 m tiles
    path = save_bundle(bundle, tmp_path / "scaled.pt")
    scaled = ModelRegistry({"default": path}, "default", "cpu")
    # 32 px x 5 m = 160 m, less than one 640 m model tile: read whole, as 10 m pixels.
    small = geotiff_bytes(lr_array(size=32), transform=from_origin(X0, Y1, 5.0, 5.0), descriptions=BANDS)
    warnings = jobs.plan(payload("p", small), scaled)["plan"]["warnings"]
    assert len(warnings) == 1 and "10 m" in warnings[0] and "40 m pixels" in warnings[0]
    assert jobs.plan(payload("p", small), registry)["plan"]["warnings"] == []  # no scale in the metadata
    # 64 px x 40 m = 2560 m, four model tiles a side: cut into 4 x 4 model tiles, planned jointly.
    big = jobs.plan(payload("p", geotiff_bytes(lr_array(), descriptions=BANDS)), scaled)["plan"]
    assert big["warnings"] == [] and big["purchase"]["recommendation"] == "tiles"
    assert big["spend"]["tile_grid"]["rows"] == big["spend"]["tile_grid"]["cols"] == 4


@pytest.mark.parametrize("mode", ["celery"])
def test_a_cancelled_plan_job_stays_cancelled_when_its_task_finishes_later(make_client, mode, lr_tile, registry):
    import redis

    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    client = make_client(job_wait_s=0.2, queue=queue)
    tile = lr_tile()
    job = client.post("/v1/plans", files={"tile": ("t.tif", tile, "image/tiff")}).json()
    cancelled = client.delete(f"/v1/jobs/{job['id']}").json()
    assert cancelled["state"] == "cancelled" and cancelled["kind"] == "plan" and cancelled["finished"]
    client.app.state.plans.executor.app.backend.store_result(
        job["id"], jobs.plan(payload(job["plan_id"], tile), registry), "SUCCESS"
    )
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"
    assert client.get(f"/v1/plans/{job['plan_id']}").status_code == 404
    redis.Redis.from_url(client.app.state.settings.redis_url).delete(queue)


def test_every_kind_of_job_is_served_by_one_route_and_one_schema(client):
    paths = client.app.openapi()["paths"]
    jobs_paths = [p for p in paths if p.startswith("/v1/jobs/")]
    assert sorted(jobs_paths) == [
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/order.geojson",
        "/v1/jobs/{job_id}/tiles.geojson",
    ]
    assert set(paths["/v1/jobs/{job_id}"]) == {"get", "delete"}
    schema = client.app.openapi()["components"]["schemas"]["JobPublic"]
    assert schema["properties"]["kind"]["enum"] == ["plan", "classify", "estimate"]


@pytest.mark.parametrize("mode", ["embedded"])
def test_a_poll_that_lost_the_race_never_moves_a_job_back(make_client, mode, monkeypatch):
    """Celery forgets a result once read: a second poll sees PENDING after the first recorded the success."""
    from worker.jobstore import new_job

    plans = make_client().app.state.plans
    job = new_job("plan", "public", plan_id="p")
    job["state"] = "running"
    plans.jobs.create(job)
    plans.jobs.update(job["id"], state="succeeded")  # recorded by the poll that read the result
    monkeypatch.setattr(plans.executor, "poll", lambda job_id: ("queued", None))
    assert plans.refresh(job)["state"] == "succeeded"
    queued = new_job("plan", "public", plan_id="q")
    plans.jobs.create(queued)
    monkeypatch.setattr(plans.executor, "poll", lambda job_id: ("running", None))
    assert plans.refresh(queued)["state"] == "running"
    monkeypatch.setattr(plans.executor, "poll", lambda job_id: ("queued", None))
    assert plans.refresh(plans.jobs.get(queued["id"]))["state"] == "running"
