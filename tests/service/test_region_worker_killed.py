"""Region estimates on Celery survive lost work: a worker killed (SIGKILL) mid-job, a task lost outright.

Needs Redis (``PATCHDROP_TEST_REDIS_URL``, set by ``.ci/run``). The workers run with a
2 s visibility timeout, so Redis hands the killed worker's unacknowledged chunk to the
next worker within seconds instead of the production default of an hour. A task lost
before Redis recorded it as unacknowledged never comes back by itself: the API sends
the job again once it has made no progress for ``estimate_stall_s``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from region_helpers import FREE_PRICING, geojson_text, tiles_box, wait_done, write_scene
from service_helpers import REDIS_ENV, start_celery_worker, stop_process

from service.app import create_app
from service.settings import Settings
from worker import estimates
from worker.jobstore import SQLiteJobStore
from worker.payloads import PricingPayload
from worker.registry import ModelRegistry

ROWS = 30  # tile rows, one chunk each: enough that the first worker is killed well before the end


@dataclass
class Setup:
    root: Path
    region: str
    settings: Settings
    redis: redis.Redis
    log_path: Path

    def start_worker(self, log) -> subprocess.Popen:
        s = self.settings
        models = {k: str(v) for k, v in s.models.items()}
        name = f"kill-{uuid.uuid4().hex[:6]}"
        return start_celery_worker(s.redis_url, s.queue, models, log, name, PATCHDROP_VISIBILITY_TIMEOUT_S="2")

    def submit(self, api: TestClient) -> str:
        form = {"region": self.region, "region_crs": "EPSG:32618", "raster_ref": "scene.tif"}
        return api.post("/v1/estimates", data={**form, "pricing": json.dumps(FREE_PRICING)}).json()["id"]

    def chunks_stored(self, job_id: str) -> int:
        return self.redis.hlen(f"{self.settings.redis_prefix}:job:{job_id}:chunks")

    def reference(self, tmp_path: Path) -> dict:
        """The same request, undisturbed and in process."""
        store = SQLiteJobStore(tmp_path / "reference.sqlite3")
        payload = estimates.EstimatePayload(
            job_id="reference", source=str(self.root / "scene.tif"), source_name="scene.tif",
            region=json.loads(self.region), region_crs="EPSG:32618", chunk_tiles=10,
            pricing=PricingPayload(**FREE_PRICING),
        )  # fmt: skip
        store.create(estimates.new_estimate_job(payload, "public"))
        return estimates.run_all("reference", store, ModelRegistry(self.settings.models, "default", "cpu"))

    def check(self, job: dict, tmp_path: Path) -> None:
        assert job["state"] == "succeeded", (job["error"], self.log_path.read_text()[-3000:])
        assert job["progress"]["chunks_done"] == ROWS
        assert job["result"] == self.reference(tmp_path)


@pytest.fixture
def setup(tmp_path, bundle_path):
    redis_url = os.environ.get(REDIS_ENV)
    if not redis_url:
        pytest.skip(f"needs a Redis server: set {REDIS_ENV} (.ci/run does)")
    root = tmp_path / "scenes"
    root.mkdir()
    write_scene(root / "scene.tif", width=160, height=16 * ROWS)
    queue, prefix = f"kill-{uuid.uuid4().hex[:8]}", f"kill-{uuid.uuid4().hex[:8]}"
    models = {"default": str(bundle_path)}
    settings = Settings(
        redis_url=redis_url, queue=queue, redis_prefix=prefix, models=models, preload_models=False,
        device="cpu", data_root=root, estimate_chunk_tiles=10, estimate_stall_s=3,
    )  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    yield Setup(root, geojson_text(tiles_box(0, 0, 10, ROWS)), settings, r, tmp_path / "workers.log")
    r.close()


def test_a_job_survives_a_worker_killed_mid_job(tmp_path, setup):
    workers: list[subprocess.Popen] = []
    with setup.log_path.open("w") as log:
        try:
            with TestClient(create_app(setup.settings)) as api:
                job_id = setup.submit(api)
                workers.append(first := setup.start_worker(log))
                deadline = time.monotonic() + 90
                while setup.chunks_stored(job_id) < 1:
                    assert first.poll() is None and time.monotonic() < deadline, setup.log_path.read_text()
                    time.sleep(0.005)
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
                assert 1 <= setup.chunks_stored(job_id) < ROWS
                assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "running"

                workers.append(setup.start_worker(log))
                job = wait_done(api, job_id, timeout=90)
        finally:
            for process in workers:
                stop_process(process)
    setup.check(job, tmp_path)


def test_a_job_whose_task_was_lost_is_sent_again(tmp_path, setup, caplog):
    worker = None
    with setup.log_path.open("w") as log:
        try:
            with TestClient(create_app(setup.settings)) as api:
                job_id = setup.submit(api)
                # What a worker killed between taking the task off the queue and recording it leaves.
                assert setup.redis.delete(setup.settings.queue) == 1
                worker = setup.start_worker(log)
                job = wait_done(api, job_id, timeout=90)
        finally:
            if worker is not None:
                stop_process(worker)
    assert any("made no progress" in record.getMessage() for record in caplog.records)
    setup.check(job, tmp_path)
