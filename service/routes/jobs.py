"""``/v1/jobs/{id}``: every kind of job (plan, classify, estimate), one route and one schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.deps import JobServiceDep, TenantDep
from service.schemas import ErrorBody, JobPublic

router = APIRouter(prefix="/v1", tags=["jobs"])


def job_response(job: dict[str, Any], status: int = 200) -> JSONResponse:
    """The job as JSON; a 202 (work accepted, not finished) says where to poll."""
    body = JobPublic.model_validate(job).model_dump(mode="json")
    headers = {"Location": job["links"]["self"]} if status == 202 else None
    return JSONResponse(body, status_code=status, headers=headers)


@router.get("/jobs/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorBody}})
def get_job(job_id: str, jobs: JobServiceDep, tenant: TenantDep) -> JSONResponse:
    """Any job: state, error, result; estimates also their progress (tiles done / total) and request."""
    return job_response(jobs.get(job_id, tenant=tenant.id))


@router.delete("/jobs/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorBody}})
def cancel_job(job_id: str, jobs: JobServiceDep, tenant: TenantDep) -> JSONResponse:
    """Cancel an unfinished job (an estimate skips the chunks not yet started); a finished one is unchanged."""
    return job_response(jobs.cancel(job_id, tenant=tenant.id))
