"""``/v1/estimates`` and the estimate side of ``/v1/jobs/{id}``.

Estimate job ids (``est_<32 hex>``) match their own path convertor, and this
router is included before the jobs router, so ``/v1/jobs/{id}`` serves both
kinds of job without either route knowing about the other.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.convertors import Convertor, register_url_convertor

from service.deps import TenantDep
from service.estimate_schemas import EstimateJobPublic
from service.estimates import ID_REGEX, EstimateService
from service.pricing import request_pricing
from service.schemas import ErrorBody
from service.settings import Settings


class EstimateIdConvertor(Convertor):
    regex = ID_REGEX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("estimate_id", EstimateIdConvertor())

router = APIRouter(prefix="/v1", tags=["estimates"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (403, 404, 409, 413, 422, 503)}


def get_estimates(request: Request) -> EstimateService:
    return request.app.state.estimates


def _public(job: dict[str, Any], status: int = 200) -> JSONResponse:
    body = EstimateJobPublic.model_validate(job).model_dump(mode="json")
    headers = {"Location": job["links"]["self"]} if status == 202 else None
    return JSONResponse(body, status_code=status, headers=headers)


@router.post("/estimates", status_code=202, response_model=EstimateJobPublic, responses=ERRORS)
def create_estimate(
    request: Request,
    region: Annotated[str, Form(description="GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection.")],
    raster: Annotated[UploadFile | None, File(description="The LR raster (GeoTIFF), uploaded.")] = None,
    raster_ref: Annotated[
        str | None, Form(description="Or a raster to read: a path under the data root, or an allowed COG URL.")
    ] = None,
    region_crs: Annotated[str | None, Form(description="CRS of the region (default WGS84).")] = None,
    model: Annotated[str | None, Form(description="Model id (GET /v1/models).")] = None,
    tile_size_m: Annotated[float | None, Form(gt=0, description="Tile side in metres (default: the model's).")] = None,
    max_patches: Annotated[int | None, Form(ge=0, description="Per-tile budget: at most this many patches.")] = None,
    cloud_threshold: Annotated[
        float | None, Form(description="Skip tiles whose B02 is at or above this in most pixels (cloud).")
    ] = None,
    max_price: Annotated[
        float | None, Form(ge=0, allow_inf_nan=False, description="Spend-aware order: spend at most this much.")
    ] = None,
    target_accuracy: Annotated[
        float | None,
        Form(ge=0, le=1, description="Spend-aware order: the least price reaching this expected accuracy (0..1)."),
    ] = None,
    pricing: Annotated[
        str | None,
        Form(
            description='A preset (archive, tasking) or a JSON object of overrides: {"preset": "tasking", '
            '"price_per_km2": 25}.'
        ),
    ] = None,
    *,
    tenant: TenantDep,
) -> JSONResponse:
    """Start a region cost estimate: 202 with the job; poll ``GET /v1/jobs/{id}``."""
    settings: Settings = request.app.state.settings
    overrides = request_pricing(settings, pricing).model_dump()
    job = get_estimates(request).submit(
        region,
        region_crs=region_crs,
        upload=(raster.filename or "raster.tif", raster.file) if raster is not None else None,
        reference=raster_ref,
        model=model,
        tile_size_m=tile_size_m,
        max_patches=max_patches,
        cloud_threshold=cloud_threshold,
        max_price=max_price,
        target_accuracy=target_accuracy,
        pricing=overrides,
        tenant=tenant.id,
    )
    return _public(job, 202)


@router.get("/jobs/{job_id:estimate_id}", response_model=EstimateJobPublic, responses=ERRORS)
def get_estimate(job_id: str, request: Request, tenant: TenantDep) -> JSONResponse:
    """State, progress (tiles done / total), errors; when done the campaign's prices and order."""
    return _public(get_estimates(request).get(job_id, tenant=tenant.id))


@router.delete("/jobs/{job_id:estimate_id}", response_model=EstimateJobPublic, responses=ERRORS)
def cancel_estimate(job_id: str, request: Request, tenant: TenantDep) -> JSONResponse:
    """Cancel an unfinished estimate (chunks not yet started are skipped); a finished one is unchanged."""
    return _public(get_estimates(request).cancel(job_id, tenant=tenant.id))


@router.get(
    "/jobs/{job_id:estimate_id}/tiles.geojson",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/geo+json": {}}}, **ERRORS},
)
def estimate_tiles(job_id: str, request: Request, tenant: TenantDep) -> StreamingResponse:
    """Per-tile plans as a GeoJSON FeatureCollection (WGS84), streamed chunk by chunk."""
    return StreamingResponse(
        get_estimates(request).tiles_geojson(job_id, tenant=tenant.id), media_type="application/geo+json"
    )


@router.get("/jobs/{job_id:estimate_id}/order.geojson", responses=ERRORS)
def estimate_order(job_id: str, request: Request, tenant: TenantDep) -> JSONResponse:
    """The merged PatchDrop order polygons (WGS84) with their areas and prices."""
    return JSONResponse(
        get_estimates(request).order_geojson(job_id, tenant=tenant.id), media_type="application/geo+json"
    )


def install(app: FastAPI, settings: Settings) -> None:
    """Create the estimate service next to the plan service and route it (before the jobs router)."""
    executor = app.state.plans.executor
    if settings.redis_url:
        service = EstimateService(settings, celery_app=executor.app)
    else:
        service = EstimateService(settings, registry=executor.registry)
    app.state.estimates = service
    app.include_router(router)
    service.resume()
