from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from service.deps import JobServiceDep, PlanServiceDep, TenantDep
from service.forms import PENDING, BandsForm, PricingForm, TargetAccuracyForm, band_list, one_value_per_field
from service.pricing import request_pricing
from service.routes.jobs import job_response
from service.schemas import ClassificationPublic, ErrorBody, PlanPublic
from service.stac import MEDIA_TYPE, plan_item

router = APIRouter(prefix="/v1", tags=["plans"], dependencies=[Depends(one_value_per_field)])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
    422: {"model": ErrorBody},
    503: {"model": ErrorBody},
}
Format = Annotated[Literal["json", "stac"], Query(description="json: the plan; stac: the same plan as a STAC Item.")]


def plan_links(plan_id: str) -> dict[str, str]:
    base = f"/v1/plans/{plan_id}"
    return {
        "self": base,
        "stac": f"{base}?format=stac",
        "preview": f"{base}/preview.png",
        "classify": f"{base}/classify",
    }


def _plan_body(plan: dict[str, Any], fmt: str, request: Request, status: int) -> Response:
    if fmt == "stac":
        return JSONResponse(plan_item(plan, str(request.base_url)), status_code=status, media_type=MEDIA_TYPE)
    body = PlanPublic.model_validate({**plan, "links": plan_links(plan["id"])})
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status)


@router.post(
    "/plans",
    status_code=201,
    response_model=PlanPublic,
    responses=PENDING,
)
def create_plan(
    request: Request,
    service: PlanServiceDep,
    jobs: JobServiceDep,
    tenant: TenantDep,
    tile: Annotated[UploadFile, File(description="LR GeoTIFF tile (e.g. Sentinel-2 B02, B03, B04, B08).")],
    max_patches: Annotated[int | None, Form(ge=0, description="Buy at most this many patches.")] = None,
    max_price: Annotated[
        float | None, Form(ge=0, allow_inf_nan=False, description="Spend at most this much on the order.")
    ] = None,
    model: Annotated[str | None, Form(description="Model id (GET /v1/models); default model if unset.")] = None,
    bands: BandsForm = None,
    target_accuracy: TargetAccuracyForm = None,
    pricing: PricingForm = None,
    format: Format = "json",
) -> Response:
    """Plan the HR purchase for an LR tile: which patches, as which order polygons, at what price.

    An upload larger than one model tile is cut into the model's tile grid and its tiles are
    bought jointly (``purchase.recommendation`` = ``tiles``; ``spend`` has the grid).
    """
    price_list = request_pricing(request.app.state.settings, pricing)
    outcome = service.create_plan(
        tile.file.read(),
        tile.filename or "tile.tif",
        max_patches,
        max_price,
        model,
        tenant=tenant.id,
        bands=band_list(bands),
        target_accuracy=target_accuracy,
        pricing=price_list,
    )
    if outcome.pending:
        return job_response(jobs.public(outcome.job), 202)
    response = _plan_body(outcome.value, format, request, 201)  # type: ignore[arg-type]
    response.headers["Location"] = f"/v1/plans/{outcome.value['id']}"  # type: ignore[index]
    return response


@router.get("/plans/{plan_id}", response_model=PlanPublic, responses=ERRORS)
def get_plan(
    plan_id: str, request: Request, service: PlanServiceDep, tenant: TenantDep, format: Format = "json"
) -> Response:
    return _plan_body(service.get_plan(plan_id, tenant=tenant.id), format, request, 200)


@router.get(
    "/plans/{plan_id}/preview.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorBody}},
)
def get_preview(plan_id: str, service: PlanServiceDep, tenant: TenantDep) -> Response:
    """The LR tile in true colour, the patch grid with probabilities, the patches to buy outlined."""
    return Response(service.preview_png(plan_id, tenant=tenant.id), media_type="image/png")


@router.post(
    "/plans/{plan_id}/classify",
    response_model=ClassificationPublic,
    responses=PENDING,
)
def classify_plan(
    plan_id: str,
    service: PlanServiceDep,
    jobs: JobServiceDep,
    tenant: TenantDep,
    files: Annotated[
        list[UploadFile] | None,
        File(description="The HR GeoTIFF(s) bought: one covering the tile or one per patch; any CRS."),
    ] = None,
) -> Response:
    """Classify the scene from the plan's LR tile and the HR imagery of the purchased patches."""
    uploads = [(f.filename or f"file_{i}.tif", f.file.read()) for i, f in enumerate(files or [])]
    outcome = service.classify(plan_id, uploads, tenant=tenant.id)
    if outcome.pending:
        return job_response(jobs.public(outcome.job), 202)
    body = ClassificationPublic.model_validate(outcome.value)
    return JSONResponse(body.model_dump(mode="json", by_alias=True))
