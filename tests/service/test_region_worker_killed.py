"""Region estimates on Celery survive lost work, each test proving one recovery mechanism.

Needs Redis (``PATCHDROP_TEST_REDIS_URL``, set by ``.ci/run``).

- A worker killed (SIGKILL) in the middle of a chunk: its task was taken off the queue but not
  acknowledged (late acknowledgement), so Redis hands it to the next worker once the visibility
  timeout passes (2 s here instead of the production hour). The API's stall resend is off
  (an hour), so redelivery is the only way the job can finish. The kill lands mid-chunk by
  construction: the first worker runs with a ``sitecustomize`` hook (test code, on its
  PYTHONPATH only) that writes a marker file when a chunk reaches the policy and then holds the
  chunk open; the test kills the worker when the marker appears.
- A task lost before Redis recorded it as unacknowledged never comes back by itself: the API
  sends the job again once it has made no progress for ``estimate_stall_s`` (3 s here). The
  task is deleted from the queue, so redelivery cannot be what finishes the job.
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

ROWS = 30  # tile rows, one chunk each
REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 90

# Loaded by the held worker's interpreter at start-up (PYTHONPATH): the policy forward of a chunk
# writes the marker and then waits for ever, so the worker is busy inside a chunk when killed.
HOLD_CHUNK_HOOK = """
import os, pathlib, threading
import models.nn.inference

def _held(bundle, lr, *args, **kwargs):
    pathlib.Path(os.environ["PATCHDROP_TEST_CHUNK_MARKER"]).write_text(str(os.getpid()))
    threading.Event().wait()

models.nn.inference.policy_probabilities = _held
"""


@dataclass
class Setup:
    root: Path
    region: str
    settings: Settings
    redis: redis.Redis
    log_path: Path

    def start_worker(self, log, **env: str) -> subprocess.Popen:
        s = self.settings
        models = {k: str(v) for k, v in s.models.items()}
        name = f"kill-{uuid.uuid4().hex[:6]}"
        return start_celery_worker(s.redis_url, s.queue, models, log, name, PATCHDROP_VISIBILITY_TIMEOUT_S="2", **env)

    def start_held_worker(self, log, hook_dir: Path, marker: Path) -> subprocess.Popen:
        """A worker whose first chunk stops inside the policy forward (after writing ``marker``) until killed."""
        hook_dir.mkdir(exist_ok=True)
        (hook_dir / "sitecustomize.py").write_text(HOLD_CHUNK_HOOK)
        pythonpath = os.pathsep.join([str(hook_dir), str(REPO)])
        return self.start_worker(log, PYTHONPATH=pythonpath, PATCHDROP_TEST_CHUNK_MARKER=str(marker))

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
def setup(tmp_path, bundle_path, request):
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
        device="cpu", data_root=root, estimate_chunk_tiles=10, estimate_stall_s=request.param,
    )  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    yield Setup(root, geojson_text(tiles_box(0, 0, 10, ROWS)), settings, r, tmp_path / "workers.log")
    r.close()


STALL_OFF = 3600.0  # longer than the test: the API never resends
STALL_ON = 3.0


@pytest.mark.parametrize("setup", [STALL_OFF], indirect=True)
def test_a_worker_killed_mid_chunk_is_recovered_by_redelivery(tmp_path, setup, caplog):
    workers: list[subprocess.Popen] = []
    marker = tmp_path / "chunk-started"
    with setup.log_path.open("w") as log:
        try:
            with TestClient(create_app(setup.settings)) as api:
                job_id = setup.submit(api)
                workers.append(first := setup.start_held_worker(log, tmp_path / "hook", marker))
                deadline = time.monotonic() + DEADLINE_S
                while not marker.exists():  # the marker appears when a chunk is inside the policy
                    assert first.poll() is None and time.monotonic() < deadline, setup.log_path.read_text()
                    time.sleep(0.01)
                assert marker.read_text() == str(first.pid)
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
                assert setup.chunks_stored(job_id) == 0  # killed inside the first chunk
                assert api.get(f"/v1/jobs/{job_id}").json()["state"] == "running"

                workers.append(setup.start_worker(log))
                job = wait_done(api, job_id, timeout=DEADLINE_S)
        finally:
            for process in workers:
                stop_process(process)
    assert not any("made no progress" in record.getMessage() for record in caplog.records)  # no resend
    setup.check(job, tmp_path)


@pytest.mark.parametrize("setup", [STALL_ON], indirect=True)
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
