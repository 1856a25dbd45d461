"""The one job record and the one job store, for every kind of request (plan, classify, estimate).

A job is recorded before its work is dispatched and updated as it runs, so
``GET /v1/jobs/{id}`` knows every id the API gave out (Celery alone would read
an unknown id as PENDING). The store is SQLite in the embedded mode and Redis
with Celery; both keep, next to the record, the chunk results of jobs that are
split into chunks (region estimates), so a chunk that runs twice is stored once.
The API writes records, workers update estimate records: the store is shared.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import time
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from worker.sqlite_file import SQLiteFile

JobKind = Literal["plan", "classify", "estimate"]


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING)


ACTIVE = frozenset({JobState.QUEUED.value, JobState.RUNNING.value})


class Job(TypedDict, total=False):
    """A job record as stored (JSON). The first block is common to every kind."""

    id: str
    tenant: str
    kind: JobKind
    state: str  # a JobState value
    created: str
    finished: str | None
    error: dict[str, str] | None  # {"code", "detail"}, as in the API's error bodies
    result: Any
    touched: float  # epoch seconds of the last progress: a job whose tasks were lost stops moving it
    # plan and classify jobs: the plan they make or read
    plan_id: str
    # estimate jobs: the request as the worker reads it, and the tile grid fixed when the job starts
    request: dict[str, Any]
    spec: dict[str, Any] | None
    warnings: list[str]  # why the result may be unreliable (e.g. a raster from another sensor)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_job(kind: JobKind, tenant: str, *, job_id: str | None = None, **fields: Any) -> Job:
    """A queued job of ``kind`` owned by ``tenant`` (the one constructor of job records)."""
    job: Job = {
        "id": job_id or uuid.uuid4().hex,
        "tenant": tenant,
        "kind": kind,
        "state": JobState.QUEUED.value,
        "created": now(),
        "finished": None,
        "error": None,
        "result": None,
        "touched": time.time(),
    }
    job.update(fields)  # type: ignore[typeddict-item]
    return job


def error_body(exc: BaseException, what: str = "the job") -> dict[str, str]:
    """The error a failed job records: a domain error's code and message, else a generic code."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if code and message:
        return {"code": code, "detail": message}
    return {"code": "job_failed", "detail": f"{what} failed: {type(exc).__name__}: {exc}"}


def cancel(job_id: str, store: JobStore) -> None:
    """Stop an unfinished job (an estimate skips the chunks not yet started); a finished one stays as it is."""
    job = store.get(job_id)
    if job is not None and job["state"] in ACTIVE:
        store.update(job_id, state=JobState.CANCELLED.value, finished=now())


class JobStore(Protocol):
    def create(self, job: Job) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def update(self, job_id: str, **fields: Any) -> None: ...
    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None: ...
    def chunk_indexes(self, job_id: str) -> set[int]: ...
    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]: ...
    def active_jobs(self, kind: JobKind) -> list[str]: ...
    def close(self) -> None: ...


class SQLiteJobStore(SQLiteFile):
    """Job records and chunk results in the embedded mode's SQLite file."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS job_records (id TEXT PRIMARY KEY, kind TEXT, state TEXT, doc TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS job_chunks (job_id TEXT, idx INTEGER, data TEXT NOT NULL,"
        " PRIMARY KEY (job_id, idx))",
    )

    def create(self, job: Job) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO job_records (id, kind, state, doc) VALUES (?, ?, ?, ?)",
                (job["id"], job["kind"], job["state"], json.dumps(job)),
            )

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT doc FROM job_records WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def update(self, job_id: str, **fields: Any) -> None:
        with self._lock, self._conn() as conn:
            row = conn.execute("SELECT doc FROM job_records WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            doc = {**json.loads(row[0]), **fields}
            conn.execute(
                "UPDATE job_records SET state = ?, doc = ? WHERE id = ?", (doc["state"], json.dumps(doc), job_id)
            )

    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO job_chunks (job_id, idx, data) VALUES (?, ?, ?)",
                (job_id, index, json.dumps(chunk)),
            )

    def chunk_indexes(self, job_id: str) -> set[int]:
        rows = self._conn().execute("SELECT idx FROM job_chunks WHERE job_id = ?", (job_id,)).fetchall()
        return {int(r[0]) for r in rows}

    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]:
        # One row at a time: a scene's per-tile results are never all in memory.
        for index in sorted(self.chunk_indexes(job_id)):
            row = (
                self._conn()
                .execute("SELECT data FROM job_chunks WHERE job_id = ? AND idx = ?", (job_id, index))
                .fetchone()
            )
            yield json.loads(row[0])

    def active_jobs(self, kind: JobKind) -> list[str]:
        rows = (
            self._conn()
            .execute("SELECT id FROM job_records WHERE kind = ? AND state IN ('queued', 'running')", (kind,))
            .fetchall()
        )
        return [r[0] for r in rows]


class RedisJobStore:
    """``<prefix>:job:<id>`` a hash of JSON fields; ``...:chunks`` a hash index -> chunk result."""

    def __init__(self, url: str, prefix: str = "patchdrop") -> None:
        import redis  # the embedded mode needs no Redis client

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)

    def _key(self, job_id: str, part: str = "") -> str:
        return f"{self.prefix}:job:{job_id}{part}"

    def create(self, job: Job) -> None:
        key = self._key(job["id"])
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={k: json.dumps(v) for k, v in job.items()})
        pipe.execute()

    def get(self, job_id: str) -> Job | None:
        raw = self._redis.hgetall(self._key(job_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()} if raw else None  # type: ignore[return-value]

    def update(self, job_id: str, **fields: Any) -> None:
        # Field-wise writes: concurrent chunk tasks never overwrite each other's fields.
        if self._redis.exists(self._key(job_id)):
            self._redis.hset(self._key(job_id), mapping={k: json.dumps(v) for k, v in fields.items()})

    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(self._key(job_id, ":chunks"), str(index), json.dumps(chunk))
        pipe.hset(self._key(job_id), "touched", json.dumps(time.time()))  # progress, for the stall check
        pipe.execute()

    def chunk_indexes(self, job_id: str) -> set[int]:
        return {int(k) for k in self._redis.hkeys(self._key(job_id, ":chunks"))}

    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]:
        for index in sorted(self.chunk_indexes(job_id)):
            raw = self._redis.hget(self._key(job_id, ":chunks"), str(index))
            if raw is not None:
                yield json.loads(raw)

    def active_jobs(self, kind: JobKind) -> list[str]:
        return []  # Celery mode: unfinished work stays queued in Redis, no one needs to resume it

    def close(self) -> None:
        self._redis.close()


def open_job_store(redis_url: str | None, prefix: str, db_path: str | Path) -> JobStore:
    """Redis with Celery, else the embedded SQLite file: the one place that chooses."""
    return RedisJobStore(redis_url, prefix) if redis_url else SQLiteJobStore(db_path)


@lru_cache(maxsize=8)
def worker_job_store(url: str, prefix: str) -> RedisJobStore:
    """One client per Celery worker process and key prefix."""
    return RedisJobStore(url, prefix)
