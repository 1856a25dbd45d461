"""The Celery app: Redis as broker and result backend, JSON only.

``create_celery(settings)`` builds an app; the API builds its own client with it.
``celery -A worker.app worker --pool=solo`` finds ``app`` here, which is built
from the environment on first access (PEP 562), never at import time.
Run one ``--pool=solo`` worker per GPU: CUDA does not survive prefork's fork.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.settings import WorkerSettings

TASK_NAMES = {
    "plan": "patchdrop.plan",
    "plan_batch": "patchdrop.plan_batch",
    "classify": "patchdrop.classify",
    "models": "patchdrop.models",
    "estimate_start": "patchdrop.estimate_start",
    "estimate_chunk": "patchdrop.estimate_chunk",
}


def create_celery(settings: WorkerSettings) -> Celery:
    if not settings.redis_url:
        raise ValueError("Celery needs a Redis URL: set REDIS_URL (or PATCHDROP_REDIS_URL)")
    app = Celery("patchdrop", broker=settings.redis_url, backend=settings.redis_url, set_as_current=False)
    app.conf.update(
        include=["worker.tasks"],
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=settings.queue,
        task_acks_late=True,  # tasks are idempotent: a crash re-runs them
        task_reject_on_worker_lost=True,
        task_track_started=False,  # a STARTED write per task costs latency; jobs read queued -> done
        worker_prefetch_multiplier=1,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # A task not acknowledged within this time (its worker died) goes to another worker;
            # estimate chunks are idempotent, so an early redelivery only costs a rerun.
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": min(10.0, max(1.0, settings.visibility_timeout_s / 2)),
            "unacked_restore_throttle": 1,
        },
        worker_proc_alive_timeout=60,  # model loading can be slow
        worker_hijack_root_logger=False,
    )
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            _app = create_celery(WorkerSettings())
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
