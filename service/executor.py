"""Where the task code runs: in this process (embedded) or on a Celery worker via Redis.

Both executors run the same functions of ``worker.jobs``; the embedded one
imports them (and torch) lazily, on first use.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from service.errors import BrokerUnavailableError, JobFailedError
from service.settings import Settings


class JobPending(Exception):
    """The task has not finished within the wait; the job stays queued or running."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class Executor(Protocol):
    mode: str

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any: ...
    def poll(self, job_id: str) -> tuple[str, Any]: ...
    def preload(self) -> None: ...
    def close(self) -> None: ...


class EmbeddedExecutor:
    """Runs the task functions in the calling thread, with one model registry per app."""

    mode = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: Any = None
        self._lock = threading.Lock()

    def registry(self) -> Any:
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    from worker.registry import ModelRegistry

                    s = self.settings
                    self._registry = ModelRegistry(s.models, s.default_model, s.device, s.torch_threads)
        return self._registry

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any:
        from worker import jobs

        if kind == "models":
            return jobs.describe_models(self.registry())
        function = {"plan": jobs.plan, "classify": jobs.classify}[kind]
        return function(payload, self.registry())

    def poll(self, job_id: str) -> tuple[str, Any]:
        # Embedded jobs finish inside their request; one left unfinished died with its process.
        return "failed", JobFailedError("the job was interrupted (the API restarted while it ran); submit it again")

    def preload(self) -> None:
        self.registry().preload()

    def close(self) -> None:
        pass


class CeleryExecutor:
    """Sends tasks by name to the worker queue and waits on the Redis result backend."""

    mode = "celery"

    def __init__(self, settings: Settings) -> None:
        from worker.app import TASK_NAMES, create_celery

        self.app = create_celery(settings)
        self.task_names = TASK_NAMES

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any:
        from celery.exceptions import TimeoutError as CeleryTimeoutError
        from kombu.exceptions import OperationalError

        args = [] if payload is None else [payload]
        try:
            result = self.app.send_task(self.task_names[kind], args=args, task_id=job_id)
        except OperationalError as exc:
            raise BrokerUnavailableError(f"the task queue (Redis) is unreachable: {exc}") from exc
        try:
            value = result.get(timeout=wait_s, propagate=True)
        except CeleryTimeoutError as exc:
            raise JobPending("running" if result.state == "STARTED" else "queued") from exc
        result.forget()  # the API keeps its own copy; do not let results pile up in Redis
        return value

    def poll(self, job_id: str) -> tuple[str, Any]:
        result = self.app.AsyncResult(job_id)
        state = result.state
        if state == "SUCCESS":
            value = result.result
            result.forget()
            return "succeeded", value
        if state == "FAILURE":
            return "failed", result.result
        return ("running" if state in ("STARTED", "RETRY") else "queued"), None

    def preload(self) -> None:
        pass  # the worker loads its models when it starts

    def close(self) -> None:
        self.app.close()


def make_executor(settings: Settings) -> Executor:
    return CeleryExecutor(settings) if settings.redis_url else EmbeddedExecutor(settings)
