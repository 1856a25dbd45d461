"""scripts/start_redis.sh, which .ci/run uses: a Redis that cannot start or does not answer fails the run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "start_redis.sh"


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PATCHDROP_REDIS_WAIT_S": "1", **env}
    return subprocess.run(["bash", str(SCRIPT), str(tmp_path)], env=environ, capture_output=True, text=True, timeout=60)


def test_a_missing_redis_server_fails_with_a_message(tmp_path):
    result = start(tmp_path, PATCHDROP_REDIS_SERVER="no-such-redis-server")
    assert result.returncode != 0 and result.stdout == ""
    assert "'no-such-redis-server' not found" in result.stderr and "apt-get install redis-server" in result.stderr


def test_a_redis_server_that_does_not_start_fails(tmp_path):
    result = start(tmp_path, PATCHDROP_REDIS_SERVER="false")
    assert result.returncode != 0 and result.stdout == ""
    assert "did not start" in result.stderr


def test_a_redis_server_that_never_answers_fails(tmp_path):
    result = start(tmp_path, PATCHDROP_REDIS_SERVER="true")  # exits 0, listens nowhere
    assert result.returncode != 0 and result.stdout == ""
    assert "does not answer PING after 1 s" in result.stderr


def test_a_real_redis_server_is_started_and_answers(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: bash scripts/setup.sh installs it")
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    try:
        import redis

        assert url.startswith("redis://127.0.0.1:") and redis.Redis.from_url(url).ping()
    finally:
        os.kill(int((tmp_path / "redis.pid").read_text()), signal.SIGTERM)
