from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from service.deps import SettingsDep
from service.schemas import HealthPublic

router = APIRouter(tags=["health"])


def _version() -> str:
    try:
        return version("patchdrop")
    except PackageNotFoundError:
        return "unknown"


@router.get("/healthz", response_model=HealthPublic)
def healthz(settings: SettingsDep) -> HealthPublic:
    """Liveness: the API answers. Model and worker readiness: ``GET /v1/models``."""
    return HealthPublic(status="ok", mode=settings.mode, version=_version())  # type: ignore[arg-type]
