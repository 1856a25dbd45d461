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
from worker import jobs


@worker_init.connect
def _load_models(**_: Any) -> None:
    """Load the model bundles once, before the worker takes its first task."""
    jobs.process_registry().preload()


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
