"""``/openapi.json``, ``/docs`` and ``/redoc`` as ordinary routes.

FastAPI's built-in docs routes bypass app-level dependencies, so with API keys
configured they would answer anyone. Served from here they pass through
``authenticate`` like every other route (``Settings.public_docs`` publishes them).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)
OPENAPI_URL = "/openapi.json"


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{request.app.title} - docs",
        oauth2_redirect_url="/docs/oauth2-redirect",
        # the browser fetches /openapi.json itself: with keys configured, "Authorize" does not cover that
        # fetch, so either publish the docs (PATCHDROP_PUBLIC_DOCS) or read the schema with a key.
    )


@router.get("/docs/oauth2-redirect")
def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
