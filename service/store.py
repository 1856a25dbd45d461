"""Durable storage of plans and jobs: SQLite in the embedded mode, Redis with ``REDIS_URL``.

A plan is stored as its public document plus private artifacts (the LR model
input and a preview thumbnail) that classification and previews need.
Restarting the API loses nothing: every write is committed before the answer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Protocol

from service.errors import JobNotFoundError, PlanNotFoundError
from worker.sqlite_file import SQLiteFile


class Store(Protocol):
    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any], job: dict[str, Any] | None = None) -> None: ...
    def get_plan(self, plan_id: str) -> dict[str, Any]: ...
    def get_artifacts(self, plan_id: str) -> dict[str, Any]: ...
    def put_job(self, job: dict[str, Any]) -> None: ...
    def get_job(self, job_id: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


def _plan_missing(plan_id: str) -> PlanNotFoundError:
    return PlanNotFoundError(f"no plan with id {plan_id!r}")


def _job_missing(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"no job with id {job_id!r}")


class SQLiteStore(SQLiteFile):
    """One SQLite file (WAL); one connection per thread, as FastAPI runs ``def`` routes in a pool."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS plans (id TEXT PRIMARY KEY, created TEXT, plan TEXT NOT NULL,"
        " artifacts TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created TEXT, job TEXT NOT NULL)",
    )

    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any], job: dict[str, Any] | None = None) -> None:
        """Store a plan (and the job that made it) in one transaction."""
        conn = self._conn()
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO plans (id, created, plan, artifacts) VALUES (?, ?, ?, ?)",
                (plan["id"], plan.get("created"), json.dumps(plan), json.dumps(artifacts)),
            )
            if job is not None:
                self._insert_job(conn, job)

    @staticmethod
    def _insert_job(conn: sqlite3.Connection, job: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO jobs (id, created, job) VALUES (?, ?, ?)",
            (job["id"], job.get("created"), json.dumps(job)),
        )

    def _plan_column(self, plan_id: str, column: str) -> dict[str, Any]:
        row = self._conn().execute(f"SELECT {column} FROM plans WHERE id = ?", (plan_id,)).fetchone()
        if row is None:
            raise _plan_missing(plan_id)
        return json.loads(row[0])

    def get_plan(self, plan_id: str) -> dict[str, Any]:
        return self._plan_column(plan_id, "plan")

    def get_artifacts(self, plan_id: str) -> dict[str, Any]:
        return self._plan_column(plan_id, "artifacts")

    def put_job(self, job: dict[str, Any]) -> None:
        conn = self._conn()
        with conn:
            self._insert_job(conn, job)

    def get_job(self, job_id: str) -> dict[str, Any]:
        row = self._conn().execute("SELECT job FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise _job_missing(job_id)
        return json.loads(row[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


class RedisStore:
    """Plans as hashes ``<prefix>:plan:<id>`` (fields plan, artifacts), jobs as ``<prefix>:job:<id>``."""

    def __init__(self, url: str, prefix: str = "patchdrop") -> None:
        import redis  # the embedded mode needs no Redis client

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def _key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}:{kind}:{ident}"

    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any], job: dict[str, Any] | None = None) -> None:
        """Store a plan (and the job that made it) in one round trip (MULTI/EXEC)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key("plan", plan["id"]), mapping={"plan": json.dumps(plan), "artifacts": json.dumps(artifacts)})
        if job is not None:
            pipe.set(self._key("job", job["id"]), json.dumps(job))
        pipe.execute()

    def _plan_field(self, plan_id: str, field: str) -> dict[str, Any]:
        raw = self._redis.hget(self._key("plan", plan_id), field)
        if raw is None:
            raise _plan_missing(plan_id)
        return json.loads(raw)

    def get_plan(self, plan_id: str) -> dict[str, Any]:
        return self._plan_field(plan_id, "plan")

    def get_artifacts(self, plan_id: str) -> dict[str, Any]:
        return self._plan_field(plan_id, "artifacts")

    def put_job(self, job: dict[str, Any]) -> None:
        self._redis.set(self._key("job", job["id"]), json.dumps(job))

    def get_job(self, job_id: str) -> dict[str, Any]:
        raw = self._redis.get(self._key("job", job_id))
        if raw is None:
            raise _job_missing(job_id)
        return json.loads(raw)

    def close(self) -> None:
        self._redis.close()
