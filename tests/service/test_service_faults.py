"""Faults: Redis stopped and started again under a running API and worker; the API restarted.

The Redis tests run their own ``redis-server`` (loopback, a free port, append-only file in a
temporary folder, fsync on every write) and their own solo Celery worker, because they stop
and start both; they are skipped where ``redis-server`` is not installed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _wait_for_worker
from fastapi.testclient import TestClient
from service_helpers import geotiff_bytes, lr_array, start_celery_worker, stop_process

from service.app import create_app
from service.settings import Settings

TIFF = "image/tiff"
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: Redis flushes the append-only file and exits
            self.process.wait(timeout=10)
            self.process = None


class Worker:
    def __init__(self, redis_url: str, queue: str, bundle_path: Path, log: Path) -> None:
        self.redis_url, self.queue, self.bundle_path, self.log = redis_url, queue, bundle_path, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        models = {"default": str(self.bundle_path)}
        with self.log.open("a") as out:
            self.process = start_celery_worker(self.redis_url, self.queue, models, out, name=self.queue)
        _wait_for_worker(self.redis_url, self.queue, self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker(redis_server: RedisServer, bundle_path: Path, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(redis_server.url, f"faults-{uuid.uuid4().hex[:8]}", bundle_path, tmp_path / "worker.log")
    w.start()
    yield w
    w.stop()


def api(worker: Worker, **overrides) -> TestClient:
    settings = Settings(
        **{
            "redis_url": worker.redis_url,
            "queue": worker.queue,
            "models": {"default": str(worker.bundle_path)},
            "preload_models": False,
            "device": "cpu",
            "job_wait_s": 30.0,
            **overrides,
        }
    )
    return TestClient(create_app(settings))


def post_plan(client: TestClient):
    tile = geotiff_bytes(lr_array(), descriptions=["B02", "B03", "B04", "B08"])
    return client.post("/v1/plans", files={"tile": ("t.tif", tile, TIFF)})


def test_redis_down_answers_503_with_a_clear_message_not_a_hang(redis_server, worker):
    with api(worker) as client:
        redis_server.stop()
        started = time.monotonic()
        response = post_plan(client)
        assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response.json() == {
        "code": "store_unavailable",
        "detail": "the plan store and task queue (Redis) are unreachable; retry in a few seconds",
    }


def test_reading_a_plan_while_redis_is_down_answers_503(redis_server, worker):
    with api(worker) as client:
        plan = post_plan(client).json()
        redis_server.stop()
        response = client.get(f"/v1/plans/{plan['id']}")
    assert response.status_code == 503 and response.json()["code"] == "store_unavailable"


def test_the_api_recovers_when_redis_is_back(redis_server, worker):
    with api(worker) as client:
        plan = post_plan(client).json()
        redis_server.stop()
        assert client.get(f"/v1/plans/{plan['id']}").status_code == 503
        redis_server.start()
        assert client.get(f"/v1/plans/{plan['id']}").json() == plan
        assert post_plan(client).status_code == 201  # the worker reconnected too


def test_a_job_accepted_before_a_redis_restart_is_not_lost(redis_server, worker):
    worker.stop()  # nobody consumes: the request answers 202 and its task waits in Redis
    with api(worker, job_wait_s=0.5) as client:
        accepted = post_plan(client)
        assert accepted.status_code == 202
        job_id = accepted.json()["id"]
        redis_server.stop()
        redis_server.start()
        worker.start()
        deadline = time.monotonic() + 60
        while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["state"] == "succeeded", job
        assert client.get(job["links"]["plan"]).status_code == 200


def test_every_plan_and_job_is_readable_after_an_api_restart(make_client, lr_tile):
    client = make_client()
    plans = [client.post("/v1/plans", files={"tile": ("t.tif", lr_tile(), TIFF)}).json() for _ in range(3)]
    client.close()
    restarted = make_client()
    for plan in plans:
        assert restarted.get(f"/v1/plans/{plan['id']}").json() == plan
        assert restarted.get(f"/v1/jobs/{plan['job_id']}").json()["state"] == "succeeded"


def estimate_form(**extra) -> dict:
    from region_helpers import FREE_PRICING, geojson_text, tiles_box

    region = geojson_text(tiles_box(0, 0, 4, 4))
    form = {"region": region, "region_crs": "EPSG:32618", "raster_ref": "scene.tif"}
    return {**form, "pricing": __import__("json").dumps(FREE_PRICING), **extra}


def test_estimates_during_a_redis_outage_answer_503_then_recover_with_nothing_lost(
    redis_server, worker, data_root, tmp_path
):
    from region_helpers import wait_done

    with api(worker, data_root=data_root, upload_dir=tmp_path / "up", estimate_chunk_tiles=4) as client:
        before = wait_done(client, client.post("/v1/estimates", data=estimate_form()).json()["id"])
        assert before["state"] == "succeeded", before
        tiles_before = client.get(before["links"]["tiles"]).json()
        plan = post_plan(client).json()

        redis_server.stop()
        started = time.monotonic()
        refused = client.post("/v1/estimates", data=estimate_form())
        assert refused.status_code == 503 and refused.json()["code"] in ("broker_unavailable", "store_unavailable")
        assert "Redis" in refused.json()["detail"]
        for path in (f"/v1/jobs/{before['id']}", before["links"]["tiles"], before["links"]["order"]):
            response = client.get(path)
            assert response.status_code == 503 and response.json()["code"] == "store_unavailable", path
        assert post_plan(client).status_code == 503
        assert time.monotonic() - started < 20  # answers, not hangs

        redis_server.start()
        assert client.get(f"/v1/jobs/{before['id']}").json() == before
        assert client.get(before["links"]["tiles"]).json() == tiles_before
        assert client.get(f"/v1/plans/{plan['id']}").json() == plan
        after = wait_done(client, client.post("/v1/estimates", data=estimate_form()).json()["id"])
        assert after["state"] == "succeeded", after
        assert after["result"] == before["result"]
        jobs = [client.get(f"/v1/jobs/{j}").json()["state"] for j in (before["id"], after["id"])]
        assert jobs == ["succeeded", "succeeded"]


def test_a_broker_that_refuses_tasks_answers_503_broker_unavailable_and_leaves_no_phantom_job(
    redis_server, worker, data_root, tmp_path, monkeypatch
):
    """The store reachable but the publish refused (what kombu raises when the broker connection fails)."""
    from kombu.exceptions import OperationalError
    from region_helpers import wait_done

    with api(worker, data_root=data_root, upload_dir=tmp_path / "up", estimate_chunk_tiles=4) as client:
        celery_app = client.app.state.plans.executor.app
        real_send = celery_app.send_task

        def refuse(*args, **kwargs):
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        monkeypatch.setattr(celery_app, "send_task", refuse)
        refused = client.post("/v1/estimates", data=estimate_form())
        assert refused.status_code == 503 and refused.json()["code"] == "broker_unavailable"
        plan = post_plan(client)
        assert plan.status_code == 503 and plan.json()["code"] == "broker_unavailable"
        jobs = client.app.state.plans.executor.jobs  # the Redis job store: every record it holds
        ids = [k.decode().rsplit(":", 1)[1] for k in jobs._redis.scan_iter(jobs._key("*")) if b":chunks" not in k]
        assert ids and {jobs.get(i)["state"] for i in ids} == {"failed"}  # recorded as failed, not left queued

        monkeypatch.setattr(celery_app, "send_task", real_send)
        job = wait_done(client, client.post("/v1/estimates", data=estimate_form()).json()["id"])
        assert job["state"] == "succeeded", job
        assert post_plan(client).status_code == 201
