"""The device a worker (or the embedded API) runs on: ``auto``, ``cpu``, ``cuda:N`` refused clearly when absent.

These tests run on CPU-only machines (CI); where torch sees a GPU the CUDA cases are skipped as needing
a machine without one.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from models.errors import DeviceUnavailableError
from models.nn.device import choose_device
from worker.registry import ModelRegistry
from worker.settings import WorkerSettings

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs an OS feature: a machine without a CUDA GPU")


@no_gpu
def test_auto_is_the_cpu_without_a_gpu():
    assert choose_device("auto") == torch.device("cpu")


def test_cpu_is_the_cpu():
    assert choose_device("cpu") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:1"])
def test_a_gpu_that_is_not_there_is_refused_clearly(requested):
    with pytest.raises(DeviceUnavailableError, match=f"'{requested}' was requested but torch sees no CUDA GPU") as e:
        choose_device(requested)
    assert "PATCHDROP_DEVICE=cpu" in str(e.value)


@no_gpu
def test_a_registry_for_a_missing_gpu_fails_when_built_not_at_the_first_request(bundle_path):
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        ModelRegistry({"default": str(bundle_path)}, "default", "cuda:0")
    assert ModelRegistry({"default": str(bundle_path)}, "default", "auto").device == torch.device("cpu")


@pytest.mark.parametrize("device", ["gpu", "cuda0", "cuda:x", "tpu:0", ""])
def test_settings_refuse_what_is_not_a_device(device):
    with pytest.raises(ValidationError, match="device"):
        WorkerSettings(device=device)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_settings_accept_devices_and_leave_presence_to_the_worker(device):
    assert WorkerSettings(device=device).device == device


@pytest.mark.parametrize("url", ["ftp://x", "localhost:6379", "http://127.0.0.1:6379"])
def test_settings_refuse_a_redis_url_that_is_not_one(url):
    with pytest.raises(ValidationError, match="redis_url"):
        WorkerSettings(redis_url=url)


@pytest.mark.parametrize("url", ["", "redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/r.sock"])
def test_settings_accept_redis_urls_and_empty_as_unset(url):
    assert WorkerSettings(redis_url=url).redis_url == url
