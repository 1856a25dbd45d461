"""A Celery worker that cannot serve requests naming no model refuses to start, with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from service_helpers import REDIS_ENV

from models.errors import CheckpointError
from worker.errors import UnknownModelError
from worker.registry import ModelRegistry


def test_preload_can_require_the_default_model(bundle_path, tmp_path):
    missing = str(tmp_path / "missing.pt")
    ModelRegistry({"default": str(bundle_path), "broken": missing}, "default", "cpu").preload(require_default=True)
    with pytest.raises(CheckpointError, match="missing.pt"):
        ModelRegistry({"default": missing}, "default", "cpu").preload(require_default=True)
    with pytest.raises(UnknownModelError, match="unknown model 'main'"):
        ModelRegistry({"default": str(bundle_path)}, "main", "cpu").preload(require_default=True)


def test_a_worker_whose_default_model_does_not_load_exits_at_start(tmp_path):
    redis_url = os.environ.get(REDIS_ENV)
    if not redis_url:
        pytest.skip(f"needs a Redis server: set {REDIS_ENV} (.ci/run does)")
    command = [sys.executable, "-m", "patchdrop.cli", "worker", "--redis-url", redis_url, "--device", "cpu"]
    command += ["--checkpoint", str(tmp_path / "missing.pt")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode != 0
    assert "patchdrop worker cannot start: [invalid_checkpoint]" in done.stderr + done.stdout
    assert "missing.pt does not exist" in done.stderr + done.stdout
