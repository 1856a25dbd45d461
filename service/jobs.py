"""``/v1/jobs/{id}`` for every kind of job: read, bring up to date, cancel, and the one public form."""

from __future__ import annotations

from typing import Any

from service.errors import JobNotFoundError
from service.estimates import EstimateService
from service.plans import PlanService
from service.security import owned
from worker.jobstore import Job, JobState, JobStore, cancel


class JobService:
    def __init__(self, jobs: JobStore, plans: PlanService, estimates: EstimateService) -> None:
        self.jobs = jobs
        self.plans = plans
        self.estimates = estimates

    def _record(self, job_id: str, tenant: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return owned(job, tenant, JobNotFoundError, "job")  # type: ignore[arg-type, return-value]

    def get(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        """The tenant's job, first brought up to date (a plan task that outlived its request, a stalled estimate)."""
        job = self._record(job_id, tenant)
        if job["kind"] == "estimate":
            self.estimates.restart_if_stalled(job)
        else:
            job = self.plans.refresh(job)
        return self.public(job)

    def cancel(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        """Cancel an unfinished job (an estimate skips its chunks not yet started); a finished one is unchanged."""
        self._record(job_id, tenant)
        cancel(job_id, self.jobs)
        return self.get(job_id, tenant=tenant)

    def public(self, job: Job) -> dict[str, Any]:
        """The job as ``JobPublic`` reads it."""
        out: dict[str, Any] = {k: job.get(k) for k in ("id", "kind", "state", "created", "finished", "error", "result")}
        base = f"/v1/jobs/{job['id']}"
        links = {"self": base}
        succeeded = job["state"] == JobState.SUCCEEDED.value
        if job["kind"] == "estimate":
            out.update(
                progress=self.estimates.progress(job),
                request=_request_summary(job["request"]),
                warnings=job.get("warnings") or [],  # records stored before warnings existed have none
            )
            if succeeded:
                links.update(tiles=f"{base}/tiles.geojson", order=f"{base}/order.geojson")
        else:
            out["plan_id"] = job["plan_id"]
            if job["kind"] == "plan" and succeeded:
                links["plan"] = f"/v1/plans/{job['plan_id']}"
        out["links"] = links
        return out


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
