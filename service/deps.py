"""``Annotated`` dependency aliases: route signatures read like typed functions; tests override one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.estimates import EstimateService
from service.jobs import JobService
from service.plans import PlanService
from service.security import Tenant, authenticate
from service.settings import Settings


def get_plan_service(request: Request) -> PlanService:
    return request.app.state.plans


def get_estimate_service(request: Request) -> EstimateService:
    return request.app.state.estimates


def get_job_service(request: Request) -> JobService:
    return request.app.state.jobs


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


PlanServiceDep = Annotated[PlanService, Depends(get_plan_service)]
EstimateServiceDep = Annotated[EstimateService, Depends(get_estimate_service)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
TenantDep = Annotated[Tenant, Depends(authenticate)]  # see service.security: stamp and owned
