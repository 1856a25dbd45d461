"""Where the task code runs: in this process (embedded) or on a Celery worker via Redis.

Both executors run the same functions of ``worker.jobs`` and ``worker.estimates``;
the embedded one imports them (and torch) lazily, on first use. This is the one
place that tells the two modes apart (``make_executor``); everything above it
talks to the ``Executor`` interface.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Protocol

from service.errors import BrokerUnavailableError, JobFailedError
from service.settings import Settings
from worker.jobstore import JobState, JobStore, open_job_store


class JobPending(Exception):
    """The task has not finished within the wait; the job stays queued or running."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


log = logging.getLogger(__name__)


class Executor(Protocol):
    mode: str
    jobs: JobStore  # the job records of every kind, where this mode keeps them
    resends_lost_tasks: bool  # whether a stalled estimate should be sent again (a broker can lose tasks)

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any:
        """Run a plan, classify or models task and wait up to ``wait_s`` (``JobPending`` after that)."""

    def poll(self, job_id: str) -> tuple[str, Any]:
        """(state, value or error) of a task that outlived its request."""

    def start_estimate(self, job_id: str) -> None:
        """Start (or restart) a recorded estimate job; returns at once."""

    def resume(self) -> None:
        """Start the estimate jobs a previous run of this process left unfinished, where that is this mode's job."""

    def preload(self) -> None: ...
    def close(self) -> None: ...


class EmbeddedExecutor:
    """Runs the task functions in the calling thread, with one model registry per app."""

    mode = "embedded"
    resends_lost_tasks = False  # estimates run on this process's own thread: nothing is lost in transit

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = open_job_store(None, settings.redis_prefix, settings.db_path)
        self._registry: Any = None
        self._lock = threading.Lock()
        self._estimates: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None

    def registry(self) -> Any:
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    from worker.registry import ModelRegistry

                    s = self.settings
                    self._registry = ModelRegistry(
                        s.models, s.default_model, s.device, s.torch_threads, batch_requests=s.batch_requests
                    )
        return self._registry

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any:
        from worker import jobs

        if kind == "models":
            return jobs.describe_models(self.registry())
        function = {"plan": jobs.plan, "classify": jobs.classify}[kind]
        return function(payload, self.registry())

    def poll(self, job_id: str) -> tuple[str, Any]:
        # Embedded jobs finish inside their request; one left unfinished died with its process.
        return JobState.FAILED.value, JobFailedError(
            "the job was interrupted (the API restarted while it ran); submit it again"
        )

    def start_estimate(self, job_id: str) -> None:
        self._estimates.put(job_id)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # A daemon: a job cut short by the process exiting resumes on the next start.
                self._thread = threading.Thread(target=self._run_estimates, name="region-estimates", daemon=True)
                self._thread.start()

    def _run_estimates(self) -> None:
        from worker.estimates import run_all

        while True:
            job_id = self._estimates.get()
            try:
                run_all(job_id, self.jobs, self.registry())
            except Exception:  # recorded on the job by run_all; the thread goes on with the next job
                log.exception("region estimate %s failed", job_id)
            finally:
                self._estimates.task_done()

    def resume(self) -> None:
        for job_id in self.jobs.active_jobs("estimate"):  # their stored chunks are kept
            self.start_estimate(job_id)

    def preload(self) -> None:
        self.registry().preload()

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
        self.jobs.close()


class CeleryExecutor:
    """Sends tasks by name to the worker queue and waits on the Redis result backend."""

    mode = "celery"
    resends_lost_tasks = True  # Redis can lose a task taken by a worker killed at the wrong moment

    def __init__(self, settings: Settings) -> None:
        from worker.app import TASK_NAMES, create_celery

        self.settings = settings
        self.jobs = open_job_store(settings.redis_url, settings.redis_prefix, settings.db_path)
        self.app = create_celery(settings)
        # Fail fast in the API during a Redis outage (503 within about a second) instead of Celery's
        # default ~20 s of reconnects per request; workers keep the defaults and ride the outage out.
        fail_fast = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
        self.app.conf.update(
            task_publish_retry_policy=fail_fast, result_backend_transport_options={"retry_policy": fail_fast}
        )
        self.task_names = TASK_NAMES

    def run(self, kind: str, payload: Any, job_id: str, wait_s: float) -> Any:
        from celery.exceptions import TimeoutError as CeleryTimeoutError
        from kombu.exceptions import OperationalError

        args = [] if payload is None else [payload]
        try:
            result = self.app.send_task(self.task_names[kind], args=args, task_id=job_id)
        except OperationalError as exc:
            raise BrokerUnavailableError(f"the task queue (Redis) is unreachable: {exc}") from exc
        except RuntimeError as exc:
            # Celery's result backend gives up reconnecting with a RuntimeError whose cause is Redis's.
            if _redis_connection_error(exc.__cause__):
                raise BrokerUnavailableError("the task queue (Redis) is unreachable; retry in a few seconds") from exc
            raise
        try:
            value = result.get(timeout=wait_s, propagate=True)
        except CeleryTimeoutError as exc:
            raise JobPending(JobState.RUNNING.value if result.state == "STARTED" else JobState.QUEUED.value) from exc
        result.forget()  # the API keeps its own copy; do not let results pile up in Redis
        return value

    def poll(self, job_id: str) -> tuple[str, Any]:
        result = self.app.AsyncResult(job_id)
        state = result.state
        if state == "SUCCESS":
            value = result.result
            result.forget()
            return JobState.SUCCEEDED.value, value
        if state == "FAILURE":
            return JobState.FAILED.value, result.result
        return (JobState.RUNNING.value if state in ("STARTED", "RETRY") else JobState.QUEUED.value), None

    def start_estimate(self, job_id: str) -> None:
        from kombu.exceptions import OperationalError

        try:
            self.app.send_task(self.task_names["estimate_start"], args=[job_id, self.settings.redis_prefix])
        except OperationalError as exc:
            raise BrokerUnavailableError(f"the task queue (Redis) is unreachable: {exc}") from exc

    def resume(self) -> None:
        pass  # unfinished work stays queued in Redis for the workers

    def preload(self) -> None:
        pass  # the worker loads its models when it starts

    def close(self) -> None:
        self.app.close()
        self.jobs.close()


def _redis_connection_error(exc: BaseException | None) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))


def make_executor(settings: Settings) -> Executor:
    return CeleryExecutor(settings) if settings.redis_url else EmbeddedExecutor(settings)
