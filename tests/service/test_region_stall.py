"""Celery mode: an estimate whose tasks were lost (no progress for ``estimate_stall_s``) is sent again when polled.

The Celery executor here sends to an app that only records what would be sent, and keeps its jobs in
SQLite, so no Redis is needed.
"""

from __future__ import annotations

import time

import pytest
from kombu.exceptions import OperationalError
from region_helpers import FREE_PRICING

from service.estimates import EstimateService
from service.executor import CeleryExecutor, EmbeddedExecutor
from service.jobs import JobService
from service.settings import Settings
from worker import estimates
from worker.app import TASK_NAMES
from worker.jobstore import SQLiteJobStore
from worker.payloads import PricingPayload

STALL_S = 60.0


class RecordingCelery:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, list]] = []
        self.fail = fail

    def send_task(self, name: str, args: list) -> None:
        if self.fail:
            raise OperationalError("Redis is down")
        self.sent.append((name, args))


def job_service(settings: Settings, executor) -> JobService:
    return JobService(executor.jobs, plans=None, estimates=EstimateService(settings, executor))  # type: ignore[arg-type]


def make_service(tmp_path, celery: RecordingCelery) -> JobService:
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0", db_path=tmp_path / "jobs.sqlite3", preload_models=False,
        estimate_stall_s=STALL_S,
    )  # fmt: skip
    executor = CeleryExecutor(settings)  # no connection is made: the app and the store are replaced
    executor.app, executor.jobs = celery, SQLiteJobStore(settings.db_path)
    return job_service(settings, executor)


def add_job(service: JobService, *, state: str, idle_s: float) -> str:
    job_id = "est_" + "b" * 32
    payload = estimates.EstimatePayload(
        job_id=job_id, source="scene.tif", source_name="scene.tif", region={"type": "Point", "coordinates": [0, 0]},
        pricing=PricingPayload(**FREE_PRICING),
    )  # fmt: skip
    job = {**estimates.new_estimate_job(payload, "public"), "state": state, "touched": time.time() - idle_s}
    service.jobs.create(job)
    return job_id


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_stalled_job_is_sent_again_once_per_stall_period(tmp_path, state):
    celery = RecordingCelery()
    service = make_service(tmp_path, celery)
    job_id = add_job(service, state=state, idle_s=STALL_S + 1)
    assert service.get(job_id, tenant="public")["state"] == state
    assert celery.sent == [(TASK_NAMES["estimate_start"], [job_id, "patchdrop"])]
    service.get(job_id, tenant="public")  # polled again at once: the resend reset the clock
    assert len(celery.sent) == 1


@pytest.mark.parametrize(("state", "idle_s"), [("running", STALL_S - 5), ("succeeded", 10 * STALL_S)])
def test_a_job_making_progress_or_finished_is_left_alone(tmp_path, state, idle_s):
    celery = RecordingCelery()
    service = make_service(tmp_path, celery)
    service.get(add_job(service, state=state, idle_s=idle_s), tenant="public")
    assert celery.sent == []


def test_a_resend_failing_on_the_broker_keeps_the_job_and_answers(tmp_path):
    service = make_service(tmp_path, RecordingCelery(fail=True))
    job_id = add_job(service, state="running", idle_s=STALL_S + 1)
    assert service.get(job_id, tenant="public")["state"] == "running"
    assert service.jobs.get(job_id)["error"] is None


def test_the_embedded_mode_never_resends(tmp_path, monkeypatch):
    settings = Settings(redis_url=None, db_path=tmp_path / "jobs.sqlite3", preload_models=False, estimate_stall_s=1)
    executor = EmbeddedExecutor(settings)
    started: list[str] = []
    monkeypatch.setattr(executor, "start_estimate", started.append)
    service = job_service(settings, executor)
    job_id = add_job(service, state="running", idle_s=100)
    service.get(job_id, tenant="public")
    assert started == []
