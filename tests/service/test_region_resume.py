"""The embedded API resumes the estimates a previous run of it left unfinished, keeping their stored chunks."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done, write_scene

from service.app import create_app
from service.settings import Settings
from worker import estimates
from worker.jobstore import SQLiteJobStore
from worker.payloads import PricingPayload
from worker.registry import ModelRegistry


def test_an_interrupted_embedded_estimate_resumes_when_the_app_starts(tmp_path, bundle_path):
    scene = tmp_path / "scene.tif"
    write_scene(scene)
    db = tmp_path / "plans.sqlite3"
    models = {"default": str(bundle_path)}
    registry = ModelRegistry(models, "default", "cpu")
    store = SQLiteJobStore(db)
    job_id = "est_" + "a" * 32
    payload = estimates.EstimatePayload(
        job_id=job_id, source=str(scene), source_name="scene.tif", region=json.loads(geojson_text(tiles_box(0, 0, 10, 10))),
        region_crs="EPSG:32618", chunk_tiles=10, pricing=PricingPayload(**FREE_PRICING),
    )  # fmt: skip
    store.create(estimates.new_estimate_job(payload, "public"))
    todo = estimates.start(job_id, store, registry)
    estimates.run_chunks(job_id, todo[:4], store, registry)  # then the process "died"
    stored = {c["index"]: c for c in store.chunks(job_id)}

    settings = Settings(redis_url=None, db_path=db, models=models, preload_models=False, device="cpu")
    with TestClient(create_app(settings)) as api:
        job = wait_done(api, job_id)
    assert job["state"] == "succeeded" and job["progress"]["chunks_done"] == 10
    assert {c["index"]: c for c in store.chunks(job_id) if c["index"] < 4} == stored  # kept, not redone
    assert job["result"]["tiles"]["planned"] == 100
