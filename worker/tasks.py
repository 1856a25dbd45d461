"""Thin Celery tasks: validate nothing themselves, call one plain function, return JSON.

Domain errors propagate (the task is recorded as failed and the API maps the
error's code to a status); they are declared in ``throws`` so the worker logs
them without a traceback.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_init

from models.errors import PatchDropError
from worker import estimates, jobs
from worker.jobstore import RedisJobStore, worker_job_store


@worker_init.connect
def _load_models(**_: Any) -> None:
    """Load the model bundles once, before the worker takes its first task.

    A worker that cannot serve (a GPU it lacks, a missing or broken default bundle) must not start: Celery
    logs an ``Exception`` from a signal handler and goes on, so the failure leaves as ``SystemExit``.
    """
    try:
        jobs.process_registry().preload(require_default=True)
    except Exception as exc:
        reason = f"[{exc.code}] {exc.message}" if isinstance(exc, PatchDropError) else f"{type(exc).__name__}: {exc}"
        raise SystemExit(f"patchdrop worker cannot start: {reason}") from exc


@shared_task(name="patchdrop.plan", throws=(PatchDropError,))
def plan(payload: dict[str, Any]) -> dict[str, Any]:
    return jobs.plan(payload)


@shared_task(name="patchdrop.plan_batch", throws=(PatchDropError,))
def plan_batch(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return jobs.plan_many(payloads)


@shared_task(name="patchdrop.classify", throws=(PatchDropError,))
def classify(payload: dict[str, Any]) -> dict[str, Any]:
    return jobs.classify(payload)


@shared_task(name="patchdrop.models", throws=(PatchDropError,))
def models() -> list[dict[str, Any]]:
    return jobs.describe_models()


def _estimate_store(prefix: str) -> RedisJobStore:
    from worker.settings import WorkerSettings

    return worker_job_store(WorkerSettings().redis_url or "", prefix)


@shared_task(name="patchdrop.estimate_start", bind=True, throws=(PatchDropError,))
def estimate_start(self: Any, job_id: str, prefix: str) -> int:
    """Fix a region estimate's tile grid and send one ``estimate_chunk`` task per chunk still to do."""

    def send(index: int) -> None:
        self.app.send_task("patchdrop.estimate_chunk", args=[job_id, prefix, index])

    return estimates.dispatch(job_id, _estimate_store(prefix), jobs.process_registry(), send)


@shared_task(name="patchdrop.estimate_chunk", throws=(PatchDropError,))
def estimate_chunk(job_id: str, prefix: str, index: int) -> bool:
    """One chunk of tiles (skipped if stored already); whoever stores the last chunk merges the job."""
    return estimates.run_chunks(job_id, [index], _estimate_store(prefix), jobs.process_registry()) is not None
