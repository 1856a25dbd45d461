from __future__ import annotations

from fastapi import APIRouter

from service.deps import PlanServiceDep, TenantDep
from service.routes.plans import job_public
from service.schemas import ErrorBody, JobPublic

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobPublic, responses={404: {"model": ErrorBody}})
def get_job(job_id: str, service: PlanServiceDep, tenant: TenantDep) -> dict:
    """A plan or classification request, including one still running after its request answered 202."""
    return job_public(service.get_job(job_id, tenant=tenant.id))
