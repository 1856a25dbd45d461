"""``/v1/estimates`` and an estimate job's results (``/v1/jobs/{id}/tiles.geojson``, ``order.geojson``).

The job itself is read and cancelled through ``/v1/jobs/{id}`` like every other job.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from service.deps import EstimateServiceDep, JobServiceDep, TenantDep
from service.forms import BandsForm, PricingForm, TargetAccuracyForm, band_list, one_value_per_field
from service.pricing import request_pricing
from service.routes.jobs import job_response
from service.schemas import ErrorBody, JobPublic
from service.settings import Settings
from service.uploads import LargeFormRoute
from worker.estimates import MAX_TILE_SIZE_M

router = APIRouter(
    prefix="/v1", tags=["estimates"], route_class=LargeFormRoute, dependencies=[Depends(one_value_per_field)]
)
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (403, 404, 409, 413, 422, 503)}


@router.post("/estimates", status_code=202, response_model=JobPublic, responses=ERRORS)
def create_estimate(
    request: Request,
    region: Annotated[
        str,
        Form(
            description="GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection, as a field or a file part, "
            "up to the upload limit (PATCHDROP_MAX_UPLOAD_BYTES)."
        ),
    ],
    raster: Annotated[UploadFile | None, File(description="The LR raster (GeoTIFF), uploaded.")] = None,
    raster_ref: Annotated[
        str | None, Form(description="Or a raster to read: a path under the data root, or an allowed COG URL.")
    ] = None,
    region_crs: Annotated[str | None, Form(description="CRS of the region (default WGS84).")] = None,
    model: Annotated[str | None, Form(description="Model id (GET /v1/models).")] = None,
    tile_size_m: Annotated[
        float | None,
        Form(gt=0, le=MAX_TILE_SIZE_M, allow_inf_nan=False, description="Tile side in metres (default: the model's)."),
    ] = None,
    max_patches: Annotated[int | None, Form(ge=0, description="Per-tile budget: at most this many patches.")] = None,
    cloud_threshold: Annotated[
        float | None,
        Form(allow_inf_nan=False, description="Skip tiles whose B02 is at or above this in most pixels (cloud)."),
    ] = None,
    max_price: Annotated[
        float | None, Form(ge=0, allow_inf_nan=False, description="Spend-aware order: spend at most this much.")
    ] = None,
    target_accuracy: TargetAccuracyForm = None,
    pricing: PricingForm = None,
    bands: BandsForm = None,
    *,
    estimates: EstimateServiceDep,
    jobs: JobServiceDep,
    tenant: TenantDep,
) -> JSONResponse:
    """Start a region cost estimate: 202 with the job; poll ``GET /v1/jobs/{id}``."""
    settings: Settings = request.app.state.settings
    overrides = request_pricing(settings, pricing).model_dump()
    job_id = estimates.submit(
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
        bands=band_list(bands),
    )
    return job_response(jobs.get(job_id, tenant=tenant.id), 202)


@router.get(
    "/jobs/{job_id}/tiles.geojson",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/geo+json": {}}}, **ERRORS},
)
def estimate_tiles(job_id: str, estimates: EstimateServiceDep, tenant: TenantDep) -> StreamingResponse:
    """An estimate's per-tile plans as a GeoJSON FeatureCollection (WGS84), streamed chunk by chunk."""
    return StreamingResponse(estimates.tiles_geojson(job_id, tenant=tenant.id), media_type="application/geo+json")


@router.get("/jobs/{job_id}/order.geojson", responses=ERRORS)
def estimate_order(job_id: str, estimates: EstimateServiceDep, tenant: TenantDep) -> JSONResponse:
    """An estimate's merged PatchDrop order polygons (WGS84) with their areas and prices."""
    return JSONResponse(estimates.order_geojson(job_id, tenant=tenant.id), media_type="application/geo+json")
