from __future__ import annotations

from fastapi import APIRouter

from service.deps import PlanServiceDep, SettingsDep
from service.schemas import ErrorBody, ModelsPublic

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelsPublic, responses={503: {"model": ErrorBody}})
def list_models(service: PlanServiceDep, settings: SettingsDep) -> dict:
    """The configured model bundles, loaded by whoever runs the tasks, with their metadata."""
    return {"default_model": settings.default_model, "models": service.models()}
