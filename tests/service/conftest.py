"""Fixtures for the API: a small random model bundle, tile and HR factories, and a client per mode.

The same API tests run embedded (tasks in process, SQLite) and through Celery
(a real ``celery -A worker.app worker --pool=solo`` process and a real Redis).
The Celery mode needs ``PATCHDROP_TEST_REDIS_URL`` (``.ci/run`` sets it) and is
skipped without it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from region_helpers import write_scene
from service_helpers import (
    BANDS,
    REDIS_ENV,
    geotiff_bytes,
    lr_array,
    random_bundle,
    start_celery_worker,
    stop_process,
)

from models.nn.checkpoint import save_bundle
from service.app import create_app
from service.settings import Settings

# The bundled default model (calibrated), as model "real": loaded only by the tests that ask for it.
REAL_MODEL = str(Path(__file__).resolve().parents[2] / "models" / "assets" / "default.pt")


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(random_bundle(), tmp_path_factory.mktemp("bundle") / "test.pt")


@pytest.fixture(scope="session")
def bundle_meta(bundle_path: Path) -> dict:
    from models.nn.checkpoint import load_bundle

    return load_bundle(bundle_path).metadata


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root holding one generated scene, ``scene.tif``, for region estimates by reference."""
    root = tmp_path / "scenes"
    root.mkdir()
    write_scene(root / "scene.tif")
    return root


@pytest.fixture
def lr_tile() -> Callable[..., bytes]:
    """LR GeoTIFF bytes: 64x64 px at 40 m in UTM 18N, 4 bands, like the bundled sample tile."""

    def make(bands: int = 4, **kwargs) -> bytes:
        kwargs.setdefault("descriptions", BANDS if bands == 4 else None)
        return geotiff_bytes(lr_array(bands), **kwargs)

    return make


@dataclass
class CeleryWorker:
    redis_url: str
    queue: str
    process: subprocess.Popen


def _wait_for_worker(redis_url: str, queue: str, process: subprocess.Popen, log: Path) -> None:
    from worker.app import TASK_NAMES, create_celery
    from worker.settings import WorkerSettings

    app = create_celery(WorkerSettings(redis_url=redis_url, queue=queue))
    try:
        result = app.send_task(TASK_NAMES["models"])
        deadline = time.monotonic() + 90
        while not result.ready():
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not answer in 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        result.get(timeout=5)
        result.forget()
    finally:
        app.close()


@pytest.fixture(scope="session")
def celery_worker(bundle_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    redis_url = os.environ.get(REDIS_ENV)
    if not redis_url:
        pytest.skip(f"Celery mode needs a Redis server: set {REDIS_ENV} (.ci/run does)")
    queue = f"patchdrop-test-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    models = {"default": str(bundle_path), "broken": str(bundle_path.parent / "no.pt"), "real": REAL_MODEL}
    with log.open("w") as out:
        process = start_celery_worker(redis_url, queue, models, out, name=queue)
    try:
        _wait_for_worker(redis_url, queue, process, log)
        yield CeleryWorker(redis_url, queue, process)
    finally:
        stop_process(process)


def _settings(mode: str, request: pytest.FixtureRequest, tmp_path: Path, bundle_path: Path, **overrides) -> Settings:
    models = {"default": str(bundle_path), "broken": str(bundle_path.parent / "no.pt"), "real": REAL_MODEL}
    base = {"models": models, "preload_models": False, "device": "cpu", "job_wait_s": 60.0}
    if mode == "celery":
        worker: CeleryWorker = request.getfixturevalue("celery_worker")
        base.update(redis_url=worker.redis_url, queue=worker.queue, redis_prefix=f"pdtest-{uuid.uuid4().hex[:8]}")
    else:
        base.update(redis_url=None, db_path=tmp_path / "plans.sqlite3")
    return Settings(**{**base, **overrides})


@pytest.fixture(params=["embedded", "celery"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_client(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path, bundle_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """Build an app for the current mode; calls with the same ``store`` share plans (a restart)."""
    clients: list[TestClient] = []
    shared: dict[str, Settings] = {}

    def make(**overrides) -> TestClient:
        if not overrides and "settings" in shared:
            settings = shared["settings"]
        else:
            settings = _settings(mode, request, tmp_path, bundle_path, **overrides)
            shared.setdefault("settings", settings)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def plan(client: TestClient, lr_tile: Callable[..., bytes]) -> dict:
    response = client.post("/v1/plans", files={"tile": ("tile.tif", lr_tile(), "image/tiff")})
    assert response.status_code == 201, response.text
    return response.json()
