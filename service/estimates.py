"""Region cost estimates at the HTTP edge: accept a request, resolve its raster, record and start the job.

The executor runs it: embedded, one background thread in this process, chunk
results in SQLite (a job interrupted by a restart resumes when the app starts
again); with Celery, ``patchdrop.estimate_start`` fixes the tile grid on a
worker and fans out one ``patchdrop.estimate_chunk`` task per chunk, chunk
results and the job in Redis, so any number of workers share a job.
This module loads no torch.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from models.acquisition.region import RegionSpec, feature_collection_chunks, parse_region
from models.errors import RegionTooLargeError
from models.geo.footprints import geodesic_area_km2
from service.errors import (
    BrokerUnavailableError,
    EstimateNotReadyError,
    JobNotFoundError,
    MissingUploadError,
    SourceNotAllowedError,
    SourceNotFoundError,
)
from service.executor import Executor
from service.security import owned
from service.settings import Settings
from worker.estimates import EstimatePayload, new_estimate_job, progress, stalled
from worker.jobstore import Job, JobState, error_body, now

log = logging.getLogger(__name__)

ID_PREFIX = "est_"
URL_SCHEMES = ("http", "https", "s3")


def resolve_source(ref: str, settings: Settings) -> str:
    """The path or URL rasterio opens for a reference, if the allow-list permits it.

    Paths are relative to ``data_root`` and must stay inside it (symlinks resolved);
    URLs must start with one of ``source_url_prefixes``.
    """
    ref = ref.strip()
    if any(ord(ch) < 32 for ch in ref):  # a NUL cuts a path short in the OS: never a valid reference
        raise SourceNotAllowedError("a raster reference cannot contain control characters")
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
    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        self.jobs = executor.jobs

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
        bands: list[str] | None = None,
        max_price: float | None = None,
        target_accuracy: float | None = None,
        pricing: dict[str, Any] | None = None,
        tenant: str,
    ) -> str:
        """Validate, record and start a job; returns its id at once (the work runs elsewhere)."""
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
            region=json.loads(region),
            region_crs=region_crs,
            model=model,
            tile_size_m=tile_size_m,
            chunk_tiles=self.settings.estimate_chunk_tiles,
            max_tiles=self.settings.max_region_tiles,
            max_patches=max_patches,
            cloud_threshold=cloud_threshold,
            bands=bands,
            max_price=max_price,
            target_accuracy=target_accuracy,
            pricing=pricing or self.settings.pricing.payload().model_dump(),  # resolved once, by the route
            redis_prefix=self.settings.redis_prefix,
        )
        self.jobs.create(new_estimate_job(payload, tenant))
        try:
            self.executor.start_estimate(job_id)
        except BrokerUnavailableError as exc:
            self.jobs.update(job_id, state=JobState.FAILED.value, finished=now(), error=error_body(exc))
            raise
        return job_id

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

    def restart_if_stalled(self, job: Job) -> None:
        """Send a stalled job's start task again, where tasks can be lost; it sends the chunks still missing."""
        if not self.executor.resends_lost_tasks or not stalled(job, self.settings.estimate_stall_s):
            return
        log.warning(
            "estimate %s made no progress for %.0f s (PATCHDROP_ESTIMATE_STALL_S): sending its missing chunks again",
            job["id"],
            self.settings.estimate_stall_s,
        )
        self.jobs.update(job["id"], touched=time.time())  # one resend per stall period, whoever polls
        try:
            self.executor.start_estimate(job["id"])
        except BrokerUnavailableError:  # the job stays as it is; the next poll after the stall period tries again
            log.exception("could not resend estimate %s", job["id"])

    def progress(self, job: Job) -> dict[str, int]:
        return progress(job, self.jobs)

    def tiles_geojson(self, job_id: str, *, tenant: str) -> Iterator[str]:
        """The per-tile plans as a FeatureCollection, streamed chunk by chunk from the store."""
        job = self._succeeded(job_id, tenant, "tiles")
        return feature_collection_chunks(RegionSpec.from_dict(job["spec"]), self.jobs.chunks(job_id))

    def order_geojson(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        return self._succeeded(job_id, tenant, "order")["result"]["order_geojson"]

    def _succeeded(self, job_id: str, tenant: str, what: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job["kind"] != "estimate":  # the message a missing id and another tenant's id get
            raise JobNotFoundError(f"no job with id {job_id!r}")
        owned(job, tenant, JobNotFoundError, "job")  # type: ignore[arg-type]
        if job["state"] != JobState.SUCCEEDED.value:
            raise EstimateNotReadyError(f"estimate {job_id} is {job['state']}; the {what} is ready when it succeeds")
        return job
