"""A Celery worker killed (SIGKILL) during a region estimate: a new worker finishes the job, same result.

Needs Redis (``PATCHDROP_TEST_REDIS_URL``, set by ``.ci/run``). The workers run with a
2 s visibility timeout, so Redis hands the killed worker's unacknowledged chunk to the
next worker within seconds instead of the production default of an hour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from fastapi.testclient import TestClient
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done, write_scene
from service_helpers import REDIS_ENV, REPO, stop_process

from service.app import create_app
from service.settings import Settings
from worker import estimates
from worker.payloads import PricingPayload
from worker.registry import ModelRegistry

ROWS = 30  # tile rows, one chunk each: enough that the first worker is killed well before the end


def start_worker(env: dict[str, str], log) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"kill-{uuid.uuid4().hex[:6]}@%h",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_job_survives_a_worker_killed_mid_job(tmp_path, bundle_path):
    redis_url = os.environ.get(REDIS_ENV)
    if not redis_url:
        pytest.skip(f"needs a Redis server: set {REDIS_ENV} (.ci/run does)")
    root = tmp_path / "scenes"
    root.mkdir()
    write_scene(root / "scene.tif", width=160, height=16 * ROWS)
    region = geojson_text(tiles_box(0, 0, 10, ROWS))
    queue, prefix = f"kill-{uuid.uuid4().hex[:8]}", f"kill-{uuid.uuid4().hex[:8]}"
    models = {"default": str(bundle_path)}
    env = {
        **os.environ,
        "PATCHDROP_REDIS_URL": redis_url,
        "PATCHDROP_QUEUE": queue,
        "PATCHDROP_MODELS": json.dumps(models),
        "PATCHDROP_DEVICE": "cpu",
        "PATCHDROP_VISIBILITY_TIMEOUT_S": "2",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    settings = Settings(
        redis_url=redis_url, queue=queue, redis_prefix=prefix, models=models, preload_models=False,
        device="cpu", data_root=root, estimate_chunk_tiles=10,
    )  # fmt: skip
    chunks_key = f"{prefix}:estimate:{{}}:chunks"
    r = redis.Redis.from_url(redis_url)
    log = (tmp_path / "workers.log").open("w")
    first = second = None
    try:
        with TestClient(create_app(settings)) as api:
            form = {"region": region, "region_crs": "EPSG:32618", "raster_ref": "scene.tif"}
            job_id = api.post("/v1/estimates", data={**form, "pricing": json.dumps(FREE_PRICING)}).json()["id"]
            first = start_worker(env, log)
            deadline = time.monotonic() + 90
            while r.hlen(chunks_key.format(job_id)) < 1:
                assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
                time.sleep(0.005)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            at_kill = r.hlen(chunks_key.format(job_id))
            assert 1 <= at_kill < ROWS
            assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "running"

            second = start_worker(env, log)
            job = wait_done(api, job_id, timeout=90)
        assert job["state"] == "succeeded", (job["error"], (tmp_path / "workers.log").read_text()[-3000:])
        assert job["progress"]["chunks_done"] == ROWS

        # The same request, undisturbed and in process.
        store = estimates.SQLiteEstimateStore(tmp_path / "reference.sqlite3")
        payload = estimates.EstimatePayload(
            job_id="reference", source=str(root / "scene.tif"), source_name="scene.tif",
            region=json.loads(region), region_crs="EPSG:32618", chunk_tiles=10,
            pricing=PricingPayload(**FREE_PRICING),
        )  # fmt: skip
        store.create(estimates.new_job(payload))
        reference = estimates.run_all("reference", store, ModelRegistry(models, "default", "cpu"))
        assert job["result"] == reference
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        log.close()
        r.close()
