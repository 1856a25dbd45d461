"""Region cost estimates at the HTTP edge: accept a request, resolve its raster, run or dispatch the job.

Embedded: one background thread runs the jobs in this process, one at a time,
chunk results in SQLite (a job interrupted by a restart resumes when the app
starts again). Celery: ``patchdrop.estimate_start`` fixes the tile grid on a
worker and fans out one ``patchdrop.estimate_chunk`` task per chunk; chunk
results and the job live in Redis, so any number of workers share a job.
This module loads no torch: the embedded thread imports the task code lazily.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from models.errors import RegionTooLargeError
from models.footprints import geodesic_area_km2
from models.region import RegionSpec, feature_collection_chunks, parse_region
from service.errors import (
    BrokerUnavailableError,
    EstimateNotReadyError,
    JobNotFoundError,
    MissingUploadError,
    SourceNotAllowedError,
    SourceNotFoundError,
)
from service.security import owned, stamp
from service.settings import Settings
from worker.estimates import (
    EstimatePayload,
    EstimateStore,
    RedisEstimateStore,
    SQLiteEstimateStore,
    cancel,
    new_job,
    progress,
    stalled,
)

log = logging.getLogger(__name__)

ID_PREFIX = "est_"
ID_REGEX = "est_[0-9a-f]{32}"  # estimate job ids: routes match them apart from plan jobs
URL_SCHEMES = ("http", "https", "s3")


def resolve_source(ref: str, settings: Settings) -> str:
    """The path or URL rasterio opens for a reference, if the allow-list permits it.

    Paths are relative to ``data_root`` and must stay inside it (symlinks resolved);
    URLs must start with one of ``source_url_prefixes``.
    """
    ref = ref.strip()
    scheme = urlsplit(ref).scheme.lower()
    if scheme in URL_SCHEMES:
        if not any(ref.startswith(p) for p in settings.source_url_prefixes):
            raise SourceNotAllowedError(f"{ref} is not under an allowed URL prefix (PATCHDROP_SOURCE_URL_PREFIXES)")
        return ref
    if scheme and len(scheme) > 1:  # a drive letter is not a scheme
        raise SourceNotAllowedError(f"scheme {scheme!r} is not allowed; name a file under the data root or a URL")
    if settings.data_root is None:
        raise SourceNotAllowedError("this server reads no rasters by path (PATCHDROP_DATA_ROOT is unset); upload one")
    root = settings.data_root.resolve()
    path = (root / ref).resolve()
    if not path.is_relative_to(root):
        raise SourceNotAllowedError(f"{ref} lies outside the data root")
    if not path.is_file():
        raise SourceNotFoundError(f"no file {ref} under the data root")
    return str(path)


class EstimateService:
    def __init__(self, settings: Settings, registry: Any = None, celery_app: Any = None) -> None:
        self.settings = settings
        self.celery_app = celery_app
        self._registry = registry  # embedded: a callable returning the app's model registry
        self.store: EstimateStore
        if settings.redis_url:
            self.store = RedisEstimateStore(settings.redis_url, settings.redis_prefix)
        else:
            self.store = SQLiteEstimateStore(settings.db_path)
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- requests ---------------------------------------------------------------------------

    def submit(
        self,
        region: str,
        *,
        region_crs: str | None = None,
        upload: tuple[str, IO[bytes]] | None = None,
        reference: str | None = None,
        model: str | None = None,
        tile_size_m: float | None = None,
        max_patches: int | None = None,
        cloud_threshold: float | None = None,
        max_price: float | None = None,
        target_accuracy: float | None = None,
        pricing: dict[str, Any] | None = None,
        tenant: str,
    ) -> dict[str, Any]:
        """Validate, record and start a job; returns the job at once (the work runs elsewhere)."""
        geom, geom_crs = parse_region(region, region_crs)  # refuse a bad region now, not in the job
        area = geodesic_area_km2(geom, geom_crs)
        if area > self.settings.max_region_km2:
            raise RegionTooLargeError(
                f"the region covers {area:,.0f} km²; the limit is {self.settings.max_region_km2:,.0f} km² "
                "(PATCHDROP_MAX_REGION_KM2)"
            )
        if (upload is None) == (not reference):
            raise MissingUploadError("send the LR raster either as the file 'raster' or as 'raster_ref', not both")
        job_id = ID_PREFIX + uuid.uuid4().hex
        if upload is not None:
            name, fileobj = upload
            source = str(self._save_upload(job_id, fileobj))
        else:
            name = reference  # type: ignore[assignment]
            source = resolve_source(reference, self.settings)  # type: ignore[arg-type]
        payload = EstimatePayload(
            job_id=job_id,
            source=source,
            source_name=name,
            region=_as_json(region),
            region_crs=region_crs,
            model=model,
            tile_size_m=tile_size_m,
            chunk_tiles=self.settings.estimate_chunk_tiles,
            max_tiles=self.settings.max_region_tiles,
            max_patches=max_patches,
            cloud_threshold=cloud_threshold,
            max_price=max_price,
            target_accuracy=target_accuracy,
            pricing={**self.settings.pricing.payload().model_dump(), **(pricing or {})},
            redis_prefix=self.settings.redis_prefix,
        )
        self.store.create(stamp(new_job(payload), tenant))
        self._dispatch(job_id)
        return self.get(job_id, tenant=tenant)

    def _save_upload(self, job_id: str, fileobj: IO[bytes]) -> Path:
        folder = self.settings.upload_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / f"{job_id}.tif").resolve()
        with path.open("wb") as out:
            shutil.copyfileobj(fileobj, out, 1 << 20)
        if path.stat().st_size == 0:
            path.unlink()
            raise MissingUploadError("the uploaded raster is empty (0 bytes)")
        return path

    def _dispatch(self, job_id: str) -> None:
        if self.celery_app is None:
            self._queue.put(job_id)
            self._ensure_thread()
            return
        from kombu.exceptions import OperationalError

        try:
            self._send_start(job_id)
        except OperationalError as exc:
            self.store.update(job_id, state="failed", error={"code": "broker_unavailable", "detail": str(exc)})
            raise BrokerUnavailableError(f"the task queue (Redis) is unreachable: {exc}") from exc

    def _send_start(self, job_id: str) -> None:
        from worker.app import TASK_NAMES

        self.celery_app.send_task(TASK_NAMES["estimate_start"], args=[job_id, self.settings.redis_prefix])

    def _restart_if_stalled(self, job: dict[str, Any]) -> None:
        """Celery: send a stalled job's start task again; it sends the chunks still missing."""
        if self.celery_app is None or not stalled(job, self.settings.estimate_stall_s):
            return
        from kombu.exceptions import OperationalError

        log.warning(
            "estimate %s made no progress for %.0f s (PATCHDROP_ESTIMATE_STALL_S): sending its missing chunks again",
            job["id"],
            self.settings.estimate_stall_s,
        )
        self.store.update(job["id"], touched=time.time())  # one resend per stall period, whoever polls
        try:
            self._send_start(job["id"])
        except OperationalError:  # the job stays as it is; the next poll after the stall period tries again
            log.exception("could not resend estimate %s", job["id"])

    def get(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        job = self._job(job_id, tenant)
        self._restart_if_stalled(job)
        return {
            "id": job["id"],
            "kind": "estimate",
            "state": job["state"],
            "created": job["created"],
            "finished": job["finished"],
            "progress": progress(job, self.store),
            "error": job["error"],
            "request": _request_summary(job["request"]),
            "result": job["result"],
            "links": _links(job),
        }

    def cancel(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        self._job(job_id, tenant)
        cancel(job_id, self.store)
        return self.get(job_id, tenant=tenant)

    def tiles_geojson(self, job_id: str, *, tenant: str) -> Iterator[str]:
        """The per-tile plans as a FeatureCollection, streamed chunk by chunk from the store."""
        job = self._job(job_id, tenant)
        if job["state"] != "succeeded":
            raise EstimateNotReadyError(f"estimate {job_id} is {job['state']}; the tiles are ready when it succeeds")
        return feature_collection_chunks(RegionSpec.from_dict(job["spec"]), self.store.chunks(job_id))

    def order_geojson(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        job = self._job(job_id, tenant)
        if job["state"] != "succeeded":
            raise EstimateNotReadyError(f"estimate {job_id} is {job['state']}; the order is ready when it succeeds")
        return job["result"]["order_geojson"]

    def _job(self, job_id: str, tenant: str) -> dict[str, Any]:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return owned(job, tenant, JobNotFoundError, "job")  # another tenant's job reads as missing

    # --- the embedded runner ----------------------------------------------------------------

    def resume(self) -> None:
        """Embedded: queue the jobs a previous run of the app left unfinished (their stored chunks are kept)."""
        if self.celery_app is None:
            for job_id in self.store.active_jobs():
                self._dispatch(job_id)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                # A daemon: a job cut short by the process exiting resumes on the next start.
                self._thread = threading.Thread(target=self._work, name="region-estimates", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        from worker.estimates import run_all

        while True:
            job_id = self._queue.get()
            try:
                run_all(job_id, self.store, self._registry())
            except Exception:  # recorded on the job by run_all; the thread goes on with the next job
                log.exception("region estimate %s failed", job_id)
            finally:
                self._queue.task_done()

    def wait_idle(self) -> None:
        """Block until the embedded queue is empty (the CLI and tests)."""
        self._queue.join()


def _as_json(region: str) -> dict[str, Any]:
    import json

    return json.loads(region)


def _request_summary(request: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "source_name",
        "region_crs",
        "model",
        "tile_size_m",
        "max_patches",
        "cloud_threshold",
        "max_price",
        "target_accuracy",
        "pricing",
    )
    return {k: request.get(k) for k in keys}


def _links(job: dict[str, Any]) -> dict[str, str]:
    base = f"/v1/jobs/{job['id']}"
    links = {"self": base}
    if job["state"] == "succeeded":
        links.update(tiles=f"{base}/tiles.geojson", order=f"{base}/order.geojson")
    return links
