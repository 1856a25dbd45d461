"""Region estimate jobs: chunked, idempotent, resumable; the same functions run embedded and on Celery.

A job lives in an ``EstimateStore`` (SQLite embedded, Redis with Celery): the
request, the ``RegionSpec`` fixed when the job starts, one result per chunk and
the final summary. Every step checks what is already stored, so any step may
run twice (Redis redelivers unacknowledged tasks after a crash or a visibility
timeout) without changing the outcome:

- ``start`` fixes the spec once and returns the chunks still to do;
- ``run_chunk`` computes a chunk only if it has no result yet, then ``finish``;
- ``finish`` merges once every chunk is stored (whoever stores the last one).

A worker killed mid-chunk leaves that chunk's task unacknowledged; Redis hands
it to the next worker and the job completes with the same result. A worker
killed between taking a task off the queue and recording it as unacknowledged
loses that task (Redis's BRPOP is not atomic with the bookkeeping): the job's
``touched`` time then stops moving, and ``stalled`` tells the API to send the
job's start task again, which sends the chunks still missing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from models.errors import PatchDropError, RegionTooLargeError
from models.region import RegionSpec, iter_chunks, make_spec, parse_region, summarize
from worker.payloads import PricingPayload
from worker.sqlite_file import SQLiteFile

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EstimatePayload(BaseModel):
    """What the API sends: the request, resolved (the raster as a path or URL rasterio opens)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    source: str
    source_name: str
    region: dict[str, Any]  # GeoJSON as sent
    region_crs: str | None = None
    model: str | None = None
    tile_size_m: float | None = Field(default=None, gt=0)
    chunk_tiles: int = Field(default=4096, ge=1)
    max_tiles: int | None = Field(default=None, ge=1)
    max_patches: int | None = Field(default=None, ge=0)
    cloud_threshold: float | None = None
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    target_accuracy: float | None = Field(default=None, ge=0, le=1)
    pricing: PricingPayload
    redis_prefix: str = "patchdrop"


# --- storage ------------------------------------------------------------------------------------


class EstimateStore(Protocol):
    def create(self, job: dict[str, Any]) -> None: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def update(self, job_id: str, **fields: Any) -> None: ...
    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None: ...
    def chunk_indexes(self, job_id: str) -> set[int]: ...
    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]: ...
    def active_jobs(self) -> list[str]: ...


class SQLiteEstimateStore(SQLiteFile):
    """Estimate jobs and chunk results in the embedded mode's SQLite file (own tables)."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS estimate_jobs (id TEXT PRIMARY KEY, state TEXT, doc TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS estimate_chunks (job_id TEXT, idx INTEGER, data TEXT NOT NULL,"
        " PRIMARY KEY (job_id, idx))",
    )

    def create(self, job: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO estimate_jobs (id, state, doc) VALUES (?, ?, ?)",
                (job["id"], job["state"], json.dumps(job)),
            )

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT doc FROM estimate_jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def update(self, job_id: str, **fields: Any) -> None:
        with self._lock, self._conn() as conn:
            row = conn.execute("SELECT doc FROM estimate_jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            doc = {**json.loads(row[0]), **fields}
            conn.execute(
                "UPDATE estimate_jobs SET state = ?, doc = ? WHERE id = ?", (doc["state"], json.dumps(doc), job_id)
            )

    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO estimate_chunks (job_id, idx, data) VALUES (?, ?, ?)",
                (job_id, index, json.dumps(chunk)),
            )

    def chunk_indexes(self, job_id: str) -> set[int]:
        rows = self._conn().execute("SELECT idx FROM estimate_chunks WHERE job_id = ?", (job_id,)).fetchall()
        return {int(r[0]) for r in rows}

    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]:
        # One row at a time: a scene's per-tile results are never all in memory.
        for index in sorted(self.chunk_indexes(job_id)):
            row = (
                self._conn()
                .execute("SELECT data FROM estimate_chunks WHERE job_id = ? AND idx = ?", (job_id, index))
                .fetchone()
            )
            yield json.loads(row[0])

    def active_jobs(self) -> list[str]:
        rows = self._conn().execute("SELECT id FROM estimate_jobs WHERE state IN ('queued', 'running')").fetchall()
        return [r[0] for r in rows]


class RedisEstimateStore:
    """``<prefix>:estimate:<id>`` a hash of JSON fields; ``...:chunks`` a hash index -> chunk result."""

    def __init__(self, url: str, prefix: str = "patchdrop") -> None:
        import redis

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)

    def _key(self, job_id: str, part: str = "") -> str:
        return f"{self.prefix}:estimate:{job_id}{part}"

    def create(self, job: dict[str, Any]) -> None:
        self._redis.hset(self._key(job["id"]), mapping={k: json.dumps(v) for k, v in job.items()})

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self._redis.hgetall(self._key(job_id))
        return {k.decode(): json.loads(v) for k, v in raw.items()} if raw else None

    def update(self, job_id: str, **fields: Any) -> None:
        # Field-wise writes: concurrent chunk tasks never overwrite each other's fields.
        self._redis.hset(self._key(job_id), mapping={k: json.dumps(v) for k, v in fields.items()})

    def put_chunk(self, job_id: str, index: int, chunk: dict[str, Any]) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(self._key(job_id, ":chunks"), str(index), json.dumps(chunk))
        pipe.hset(self._key(job_id), "touched", json.dumps(time.time()))  # progress, for ``stalled``
        pipe.execute()

    def chunk_indexes(self, job_id: str) -> set[int]:
        return {int(k) for k in self._redis.hkeys(self._key(job_id, ":chunks"))}

    def chunks(self, job_id: str) -> Iterator[dict[str, Any]]:
        for index in sorted(self.chunk_indexes(job_id)):
            raw = self._redis.hget(self._key(job_id, ":chunks"), str(index))
            if raw is not None:
                yield json.loads(raw)

    def active_jobs(self) -> list[str]:
        return []  # Celery mode: unfinished work stays queued in Redis, no one needs to resume it

    def close(self) -> None:
        self._redis.close()


@lru_cache(maxsize=8)
def redis_store(url: str, prefix: str) -> RedisEstimateStore:
    """One client per worker process and key prefix."""
    return RedisEstimateStore(url, prefix)


# --- the job ------------------------------------------------------------------------------------


def new_job(payload: EstimatePayload) -> dict[str, Any]:
    return {
        "id": payload.job_id,
        "kind": "estimate",
        "state": "queued",
        "created": now(),
        "touched": time.time(),  # last progress (epoch s): a job whose tasks were lost stops moving it
        "finished": None,
        "error": None,
        "request": payload.model_dump(),
        "spec": None,
        "result": None,
    }


def _job(store: EstimateStore, job_id: str) -> dict[str, Any]:
    job = store.get(job_id)
    if job is None:
        raise KeyError(f"estimate job {job_id!r} is not in the store")
    return job


def _recording_failure(store: EstimateStore, job_id: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; on an error record the job as failed (then re-raise: the task fails too)."""
    try:
        return work()
    except Exception as exc:
        if isinstance(exc, PatchDropError):
            error = {"code": exc.code, "detail": exc.message}
        else:
            error = {"code": "job_failed", "detail": f"the estimate failed: {type(exc).__name__}: {exc}"}
        store.update(job_id, state="failed", finished=now(), error=error)
        raise


def start(job_id: str, store: EstimateStore, registry: Any) -> list[int]:
    """Fix the job's spec (once) and return the chunks that have no result yet."""
    job = _job(store, job_id)
    if job["state"] in FINAL:
        return []

    def work() -> list[int]:
        spec = job["spec"]
        if spec is None:
            spec = build_spec(EstimatePayload.model_validate(job["request"]), registry).to_dict()
            store.update(job_id, spec=spec, state="running", touched=time.time())
        n = RegionSpec.from_dict(spec).n_chunks
        done = store.chunk_indexes(job_id)
        return [i for i in range(n) if i not in done]

    return _recording_failure(store, job_id, work)


def build_spec(req: EstimatePayload, registry: Any) -> RegionSpec:
    from models.raster import SceneReader

    _, bundle = registry.get(req.model)
    region, region_crs = parse_region(req.region, req.region_crs)
    with SceneReader(req.source, bundle.bands, name=req.source_name) as reader:
        info = reader.info
    spec = make_spec(
        req.source,
        info.crs,
        info.transform,
        info.width,
        info.height,
        info.block,
        info.band_indexes,
        region,
        region_crs,
        bands=bundle.bands,
        lr_size=bundle.lr_size,
        grid=(bundle.grid.rows, bundle.grid.cols),
        lr_pixel_size=bundle.metadata.get("lr_pixel_size"),
        tile_size_m=req.tile_size_m,
        chunk_tiles=req.chunk_tiles,
        max_patches=req.max_patches,
        cloud_threshold=req.cloud_threshold,
        # Region estimates run the policy only (their time budget): the policy-feature value model.
        value_model=bundle.metadata.get("value_model_policy"),
        max_price=req.max_price,
        target_accuracy=req.target_accuracy,
    )
    if req.max_tiles is not None and spec.n_tiles > req.max_tiles:
        # Refused before any chunk runs: the tile count is known from the raster's header alone.
        raise RegionTooLargeError(
            f"the region covers {spec.n_tiles} tiles of {spec.tile_px} px over {req.source_name}; "
            f"the limit is {req.max_tiles} (PATCHDROP_MAX_REGION_TILES)"
        )
    return spec


def run_chunks(
    job_id: str,
    indexes: list[int],
    store: EstimateStore,
    registry: Any,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any] | None:
    """Compute and store the given chunks that have no result yet (one scene handle), then ``finish``.

    Stops between chunks when the job is cancelled. Returns the summary once the job is done.
    """
    from models.inference import policy_probabilities  # torch: only where tiles are planned
    from models.policy import fixed_order
    from models.raster import SceneReader

    job = _job(store, job_id)
    if job["state"] in FINAL or job["spec"] is None:
        return job.get("result")
    spec = RegionSpec.from_dict(job["spec"])
    req = EstimatePayload.model_validate(job["request"])

    def work() -> dict[str, Any] | None:
        done = store.chunk_indexes(job_id)
        todo = [i for i in indexes if i not in done]
        if todo:
            _, bundle = registry.get(req.model)
            order = fixed_order("fixed-h", bundle.grid)

            def cancelled() -> bool:
                return (store.get(job_id) or {}).get("state") == "cancelled"

            with SceneReader(spec.source, spec.bands, name=req.source_name) as reader:
                for chunk in iter_chunks(
                    reader, spec, todo, lambda lr: policy_probabilities(bundle, lr), order, cancelled
                ):
                    store.put_chunk(job_id, chunk["index"], chunk)
                    if on_chunk:
                        on_chunk(chunk["index"])
        return finish(job_id, store)

    return _recording_failure(store, job_id, work)


def finish(job_id: str, store: EstimateStore) -> dict[str, Any] | None:
    """Merge the chunks into the summary once all are stored; a no-op before that and after it."""
    job = _job(store, job_id)
    if job["state"] != "running" or job["spec"] is None:
        return job.get("result")
    spec = RegionSpec.from_dict(job["spec"])
    if len(store.chunk_indexes(job_id)) < spec.n_chunks:
        return None
    pricing = EstimatePayload.model_validate(job["request"]).pricing.profile()
    result = summarize(spec, store.chunks(job_id), pricing)
    if (store.get(job_id) or {}).get("state") == "running":  # not cancelled while merging
        store.update(job_id, state="succeeded", finished=now(), result=result)
    return result


def stalled(job: dict[str, Any], stall_s: float) -> bool:
    """An unfinished job with no progress for ``stall_s`` seconds (jobs stored before ``touched`` count as stalled)."""
    return job["state"] in ACTIVE and time.time() - float(job.get("touched") or 0.0) >= stall_s


def cancel(job_id: str, store: EstimateStore) -> dict[str, Any]:
    """Stop an unfinished job: chunks not yet started are skipped. Finished jobs stay as they are."""
    job = _job(store, job_id)
    if job["state"] in ACTIVE:
        store.update(job_id, state="cancelled", finished=now())
        job = _job(store, job_id)
    return job


def progress(job: dict[str, Any], store: EstimateStore) -> dict[str, int]:
    if job.get("spec") is None:
        return {"tiles_done": 0, "tiles_total": 0, "chunks_done": 0, "chunks_total": 0}
    spec = RegionSpec.from_dict(job["spec"])
    done = store.chunk_indexes(job["id"])
    return {
        "tiles_done": sum(spec.chunk_tiles(i) for i in done if i < spec.n_chunks),
        "tiles_total": spec.n_tiles,
        "chunks_done": len(done),
        "chunks_total": spec.n_chunks,
    }


def run_all(job_id: str, store: EstimateStore, registry: Any, on_chunk: Callable[[int], None] | None = None) -> Any:
    """The whole job in this process: the embedded mode and the CLI."""
    return run_chunks(job_id, start(job_id, store, registry), store, registry, on_chunk)


def dispatch(job_id: str, store: EstimateStore, registry: Any, send_chunk: Callable[[int], None]) -> int:
    """Celery: fix the spec and send one task per chunk still to do (resending is harmless)."""
    todo = start(job_id, store, registry)
    for index in todo:
        send_chunk(index)
    if not todo:
        finish(job_id, store)  # every chunk was stored before a crash: merge now
    return len(todo)
