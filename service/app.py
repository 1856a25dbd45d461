"""``create_app(settings)``: the FastAPI application. Run it with ``patchdrop serve`` or
``uvicorn --factory service.app:create_app``.

Embedded (no ``REDIS_URL``): tasks run in this process, plans live in SQLite.
Celery (``REDIS_URL`` set): tasks go to ``celery -A worker.app worker``, plans live in Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from service.errors import register_error_handlers
from service.estimates import EstimateService
from service.executor import make_executor
from service.jobs import JobService
from service.plans import PlanService
from service.routes import docs, estimates, health, jobs, models, plans
from service.security import authenticate
from service.settings import Settings, get_settings
from service.store import open_plan_store
from service.timeouts import RequestTimeoutMiddleware
from service.uploads import UploadLimitMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    executor = make_executor(settings)  # the one choice between embedded and Celery; it holds the job store
    store = open_plan_store(settings.redis_url, settings.redis_prefix, settings.db_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.preload_models:
            await run_in_threadpool(executor.preload)  # embedded: the first plan does not wait for torch
        yield
        executor.close()
        store.close()

    app = FastAPI(
        title="PatchDrop acquisition planner",
        version="1",
        description="Which high-resolution patches of a Sentinel-2 tile are worth buying, what they cost, "
        "and the scene class from the LR tile plus the purchased HR patches.",
        lifespan=lifespan,
        # served by service.routes.docs instead, behind the same authentication as the API
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(authenticate)],  # every route needs a key once keys are configured
    )
    app.state.settings = settings
    app.state.plans = PlanService(settings, store, executor)
    app.state.estimates = EstimateService(settings, executor)
    app.state.jobs = JobService(executor.jobs, app.state.plans, app.state.estimates)
    register_error_handlers(app)
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestTimeoutMiddleware, timeout_s=settings.request_timeout_s)  # outermost
    for module in (health, models, plans, estimates, jobs, docs):
        app.include_router(module.router)
    executor.resume()  # embedded: estimates a previous run left unfinished carry on
    return app
