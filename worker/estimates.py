"""Region estimate jobs: chunked, idempotent, resumable; the same functions run embedded and on Celery.

A job lives in the job store (``worker.jobstore``: SQLite embedded, Redis with
Celery): the request, the ``RegionSpec`` fixed when the job starts, one result
per chunk and the final summary. Every step checks what is already stored, so any step may
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

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.acquisition.planning import Budget
from models.acquisition.region import RegionSpec, iter_chunks, parse_region, spec_for_model, summarize
from models.acquisition.spend import ValueModel
from models.errors import RegionTooLargeError, UncalibratedModelError
from models.geo.bands import sensor_warning
from worker.jobstore import ACTIVE, Job, JobState, JobStore, error_body, new_job, now
from worker.payloads import PricingPayload

MAX_TILE_SIZE_M = 100_000.0  # a 100 km tile: far beyond any model tile, and its pixel counts stay finite


class EstimatePayload(BaseModel):
    """What the API sends: the request, resolved (the raster as a path or URL rasterio opens)."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    source: str
    source_name: str
    region: dict[str, Any]  # GeoJSON as sent
    region_crs: str | None = None
    model: str | None = None
    tile_size_m: float | None = Field(default=None, gt=0, le=MAX_TILE_SIZE_M, allow_inf_nan=False)
    chunk_tiles: int = Field(default=4096, ge=1)
    max_tiles: int | None = Field(default=None, ge=1)
    max_patches: int | None = Field(default=None, ge=0)
    cloud_threshold: float | None = Field(default=None, allow_inf_nan=False)
    bands: list[str] | None = None  # what each band of the raster is, in file order (models.geo.bands)
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    target_accuracy: float | None = Field(default=None, ge=0, le=1)
    pricing: PricingPayload
    redis_prefix: str = "patchdrop"


# --- the job ------------------------------------------------------------------------------------


def new_estimate_job(payload: EstimatePayload, tenant: str) -> Job:
    return new_job("estimate", tenant, job_id=payload.job_id, request=payload.model_dump(), spec=None, warnings=[])


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise KeyError(f"estimate job {job_id!r} is not in the store")
    return job


def _recording_failure(store: JobStore, job_id: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; on an error record the job as failed (then re-raise: the task fails too)."""
    try:
        return work()
    except Exception as exc:
        if (store.get(job_id) or {}).get("state") in ACTIVE:  # a job cancelled meanwhile stays cancelled
            store.update(job_id, state=JobState.FAILED.value, finished=now(), error=error_body(exc, "the estimate"))
        raise


def start(job_id: str, store: JobStore, registry: Any) -> list[int]:
    """Fix the job's spec (once) and return the chunks that have no result yet."""
    job = _job(store, job_id)
    if job["state"] not in ACTIVE:
        return []

    def work() -> list[int]:
        spec = job["spec"]
        if spec is None:
            built, warnings = build_spec(EstimatePayload.model_validate(job["request"]), registry)
            if _job(store, job_id)["state"] not in ACTIVE:  # cancelled while the raster was opened
                return []
            spec = built.to_dict()
            store.update(job_id, spec=spec, warnings=warnings, state=JobState.RUNNING.value, touched=time.time())
        n = RegionSpec.from_dict(spec).n_chunks
        done = store.chunk_indexes(job_id)
        return [i for i in range(n) if i not in done]

    return _recording_failure(store, job_id, work)


def build_spec(req: EstimatePayload, registry: Any) -> tuple[RegionSpec, list[str]]:
    """The job's tile grid, and warnings about the raster (bands from another sensor than the model's)."""
    from models.geo.raster import SceneReader

    _, bundle = registry.get(req.model)
    Budget(req.max_patches, req.max_price).check_grid(bundle.grid.num_patches)
    policy_model = ValueModel.of_bundle(bundle.metadata, lr_available=False)
    if (req.max_price is not None or req.target_accuracy is not None) and policy_model is None:
        raise UncalibratedModelError(
            f"model {bundle.metadata.get('model_id')} has no value model, which max_price and target_accuracy "
            "need: run `python -m models.training.spend_calibrate --bundle <checkpoint>`"
        )
    region, region_crs = parse_region(req.region, req.region_crs)
    with SceneReader(req.source, bundle.bands, name=req.source_name, requested_bands=req.bands) as reader:
        info = reader.info
        warning = sensor_warning(reader.band_match, bundle.bands, bundle.metadata.get("sensor"))
    spec = spec_for_model(
        req.source,
        info,
        region,
        region_crs,
        bundle,
        tile_size_m=req.tile_size_m,
        chunk_tiles=req.chunk_tiles,
        max_patches=req.max_patches,
        cloud_threshold=req.cloud_threshold,
        # Region estimates run the policy only (their time budget): the policy-feature value model.
        value_model=policy_model.to_dict() if policy_model else None,
        max_price=req.max_price,
        target_accuracy=req.target_accuracy,
    )
    if req.max_tiles is not None and spec.n_tiles > req.max_tiles:
        # Refused before any chunk runs: the tile count is known from the raster's header alone.
        raise RegionTooLargeError(
            f"the region covers {spec.n_tiles} tiles of {spec.tile_px} px over {req.source_name}; "
            f"the limit is {req.max_tiles} (PATCHDROP_MAX_REGION_TILES)"
        )
    return spec, [warning] if warning else []


def run_chunks(
    job_id: str,
    indexes: list[int],
    store: JobStore,
    registry: Any,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any] | None:
    """Compute and store the given chunks that have no result yet (one scene handle), then ``finish``.

    Stops between chunks when the job is cancelled. Returns the summary once the job is done.
    """
    from models.geo.raster import SceneReader
    from models.nn.inference import policy_probabilities  # torch: only where tiles are planned
    from models.nn.policy import fixed_order

    job = _job(store, job_id)
    if job["state"] not in ACTIVE or job["spec"] is None:
        return job.get("result")

    def work() -> dict[str, Any] | None:
        spec = RegionSpec.from_dict(job["spec"])
        req = EstimatePayload.model_validate(job["request"])
        done = store.chunk_indexes(job_id)
        todo = [i for i in indexes if i not in done]
        if todo:
            _, bundle = registry.get(req.model)
            order = fixed_order("fixed-h", bundle.grid)

            def cancelled() -> bool:
                return (store.get(job_id) or {}).get("state") == JobState.CANCELLED.value

            with SceneReader(spec.source, spec.bands, name=req.source_name, requested_bands=req.bands) as reader:
                for chunk in iter_chunks(
                    reader, spec, todo, lambda lr: policy_probabilities(bundle, lr), order, cancelled
                ):
                    store.put_chunk(job_id, chunk["index"], chunk)
                    if on_chunk:
                        on_chunk(chunk["index"])
        return finish(job_id, store)

    return _recording_failure(store, job_id, work)


def finish(job_id: str, store: JobStore) -> dict[str, Any] | None:
    """Merge the chunks into the summary once all are stored; a no-op before that and after it."""
    job = _job(store, job_id)
    if job["state"] != JobState.RUNNING.value or job["spec"] is None:
        return job.get("result")
    spec = RegionSpec.from_dict(job["spec"])
    if len(store.chunk_indexes(job_id)) < spec.n_chunks:
        return None
    pricing = EstimatePayload.model_validate(job["request"]).pricing.profile()
    result = summarize(spec, store.chunks(job_id), pricing)
    if (store.get(job_id) or {}).get("state") == JobState.RUNNING.value:  # not cancelled while merging
        store.update(job_id, state=JobState.SUCCEEDED.value, finished=now(), result=result)
    return result


def stalled(job: Job, stall_s: float) -> bool:
    """An unfinished job with no progress for ``stall_s`` seconds (jobs stored before ``touched`` count as stalled)."""
    return job["state"] in ACTIVE and time.time() - float(job.get("touched") or 0.0) >= stall_s


def progress(job: Job, store: JobStore) -> dict[str, int]:
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


def run_all(job_id: str, store: JobStore, registry: Any, on_chunk: Callable[[int], None] | None = None) -> Any:
    """The whole job in this process: the embedded mode and the CLI."""
    return run_chunks(job_id, start(job_id, store, registry), store, registry, on_chunk)


def dispatch(job_id: str, store: JobStore, registry: Any, send_chunk: Callable[[int], None]) -> int:
    """Celery: fix the spec and send one task per chunk still to do (resending is harmless)."""
    todo = start(job_id, store, registry)
    for index in todo:
        send_chunk(index)
    if not todo:
        finish(job_id, store)  # every chunk was stored before a crash: merge now
    return len(todo)
