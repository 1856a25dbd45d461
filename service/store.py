"""Durable storage of plans: SQLite in the embedded mode, Redis with ``REDIS_URL`` (jobs: ``worker.jobstore``).

A plan is stored as its public document plus private artifacts (the LR model
input and a preview thumbnail) that classification and previews need.
Restarting the API loses nothing: every write is committed before the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from service.errors import PlanNotFoundError
from worker.sqlite_file import SQLiteFile


class PlanStore(Protocol):
    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any]) -> None: ...
    def get_plan(self, plan_id: str) -> dict[str, Any]: ...
    def get_artifacts(self, plan_id: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


def _plan_missing(plan_id: str) -> PlanNotFoundError:
    return PlanNotFoundError(f"no plan with id {plan_id!r}")


class SQLitePlanStore(SQLiteFile):
    """One SQLite file (WAL); one connection per thread, as FastAPI runs ``def`` routes in a pool."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS plans (id TEXT PRIMARY KEY, created TEXT, plan TEXT NOT NULL,"
        " artifacts TEXT NOT NULL)",
    )

    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO plans (id, created, plan, artifacts) VALUES (?, ?, ?, ?)",
                (plan["id"], plan.get("created"), json.dumps(plan), json.dumps(artifacts)),
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


class RedisPlanStore:
    """Plans as hashes ``<prefix>:plan:<id>`` (fields plan, artifacts)."""

    def __init__(self, url: str, prefix: str = "patchdrop") -> None:
        import redis  # the embedded mode needs no Redis client

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def _key(self, kind: str, ident: str) -> str:
        return f"{self.prefix}:{kind}:{ident}"

    def put_plan(self, plan: dict[str, Any], artifacts: dict[str, Any]) -> None:
        self._redis.hset(
            self._key("plan", plan["id"]), mapping={"plan": json.dumps(plan), "artifacts": json.dumps(artifacts)}
        )

    def _plan_field(self, plan_id: str, field: str) -> dict[str, Any]:
        raw = self._redis.hget(self._key("plan", plan_id), field)
        if raw is None:
            raise _plan_missing(plan_id)
        return json.loads(raw)

    def get_plan(self, plan_id: str) -> dict[str, Any]:
        return self._plan_field(plan_id, "plan")

    def get_artifacts(self, plan_id: str) -> dict[str, Any]:
        return self._plan_field(plan_id, "artifacts")

    def close(self) -> None:
        self._redis.close()


def open_plan_store(redis_url: str | None, prefix: str, db_path: str | Path) -> PlanStore:
    """Redis with Celery, else the embedded SQLite file."""
    return RedisPlanStore(redis_url, prefix) if redis_url else SQLitePlanStore(db_path)
