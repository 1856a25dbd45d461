"""Keys and the settings that refuse unsafe configuration (no HTTP here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.security import KeyRing, hash_key, new_key
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_a_key_maps_to_its_tenant():
    key = new_key()
    ring = KeyRing({"acme": hash_key(key), "globex": hash_key(new_key())})
    assert ring.tenant_for(key) == "acme" and ring.tenant_for(key + "x") is None


def test_production_refuses_to_run_without_keys(tmp_path):
    with pytest.raises(ValueError, match="production needs API keys"):
        Settings(environment="production", db_path=tmp_path / "x.sqlite3")


def test_plaintext_keys_are_refused_in_the_configuration():
    with pytest.raises(ValueError, match="not the key itself"):
        Settings(api_keys={"acme": new_key()})


def test_the_anonymous_tenant_name_is_reserved():
    with pytest.raises(ValueError, match="not be 'public'"):
        Settings(api_keys={"public": hash_key(new_key())})


def test_request_timeout_must_leave_room_for_the_job_wait():
    with pytest.raises(ValueError, match="must exceed job_wait_s"):
        Settings(job_wait_s=30, request_timeout_s=10)


def test_new_key_prints_a_key_and_its_hash():
    out = subprocess.run(
        [sys.executable, "-m", "service.security", "new-key", "acme"], cwd=REPO, capture_output=True, text=True
    ).stdout
    key = out.split("shown once): ")[1].split()[0]
    assert f'"acme": "{hash_key(key)}"' in out
