"""Plans, classifications and jobs: what the routes call.

Every request that runs task code is a job, recorded before it is dispatched
and updated when it ends, so ``GET /v1/jobs/{id}`` knows every id it ever gave
out (Celery alone would report an unknown id as PENDING).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from models.errors import GridError, PatchDropError
from models.preview import render_preview
from service.errors import (
    BrokerUnavailableError,
    JobFailedError,
    JobNotFoundError,
    MissingUploadError,
    PlanNotFoundError,
)
from service.executor import Executor, JobPending
from service.security import owned
from service.settings import Settings
from service.store import Store
from worker.payloads import ClassifyPayload, FilePayload, PlanPayload, b64encode, decode_array


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """Either the finished result or, when the worker has not answered in time, the pending job."""

    job: dict[str, Any]
    value: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.value is None


class PlanService:
    def __init__(self, settings: Settings, store: Store, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor

    # --- jobs ---------------------------------------------------------------------------------

    def _new_job(self, kind: str, plan_id: str, tenant: str) -> dict[str, Any]:
        # Stored when it ends or outlives its request: until then no client knows its id.
        return {
            "id": uuid.uuid4().hex,
            "tenant": tenant,
            "kind": kind,
            "state": "queued",
            "plan_id": plan_id,
            "created": _now(),
            "finished": None,
            "error": None,
            "result": None,
        }

    def _run(self, job: dict[str, Any], payload: dict[str, Any]) -> Outcome:
        try:
            value = self.executor.run(job["kind"], payload, job["id"], self.settings.job_wait_s)
        except JobPending as pending:
            job["state"] = pending.state
            self.store.put_job(job)
            return Outcome(job)
        except Exception as exc:
            self._fail(job, exc)
            raise
        return Outcome(job, self._succeed(job, value))

    def _succeed(self, job: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
        job.update(state="succeeded", finished=_now())
        if job["kind"] == "plan":
            plan = {**value["plan"], "created": job["created"], "job_id": job["id"], "tenant": job["tenant"]}
            self.store.put_plan(plan, value["artifacts"], job)
            return plan
        job["result"] = {**value, "job_id": job["id"]}
        self.store.put_job(job)
        return job["result"]

    def _fail(self, job: dict[str, Any], exc: BaseException) -> None:
        if isinstance(exc, PatchDropError):
            error = {"code": exc.code, "detail": exc.message}
        else:
            error = {"code": "job_failed", "detail": f"the task failed: {type(exc).__name__}"}
        job.update(state="failed", finished=_now(), error=error)
        self.store.put_job(job)

    def get_job(self, job_id: str, *, tenant: str) -> dict[str, Any]:
        """The tenant's job record; an unfinished one is first brought up to date from the executor."""
        job = owned(self.store.get_job(job_id), tenant, JobNotFoundError, "job")
        if job["state"] in ("queued", "running"):
            state, value = self.executor.poll(job_id)
            if state == "succeeded":
                self._succeed(job, value)
            elif state == "failed":
                self._fail(job, value if isinstance(value, BaseException) else JobFailedError(str(value)))
            elif state != job["state"]:
                job["state"] = state
                self.store.put_job(job)
        return job

    # --- plans --------------------------------------------------------------------------------

    def create_plan(
        self,
        tile: bytes,
        filename: str,
        max_patches: int | None = None,
        max_price: float | None = None,
        model: str | None = None,
        *,
        tenant: str,
        target_accuracy: float | None = None,
        pricing: Any = None,
    ) -> Outcome:
        if not tile:
            raise MissingUploadError("the uploaded tile is empty (0 bytes)")
        plan_id = uuid.uuid4().hex
        s = self.settings
        payload = PlanPayload(
            plan_id=plan_id,
            model=model,
            filename=filename,
            tile=b64encode(tile),
            max_patches=max_patches,
            max_price=max_price,
            target_accuracy=target_accuracy,
            pricing=pricing if pricing is not None else s.pricing.payload(),
            max_tile_pixels=s.max_tile_pixels,
            thumbnail_px=s.thumbnail_px,
        )
        return self._run(self._new_job("plan", plan_id, tenant), payload.model_dump())

    def get_plan(self, plan_id: str, *, tenant: str) -> dict[str, Any]:
        return owned(self.store.get_plan(plan_id), tenant, PlanNotFoundError, "plan")

    def classify(self, plan_id: str, files: list[tuple[str, bytes]], *, tenant: str) -> Outcome:
        plan = self.get_plan(plan_id, tenant=tenant)
        if plan["purchase"]["recommendation"] == "tiles":
            raise GridError(
                "this plan covers several model tiles; classification takes one tile: plan and classify "
                "each tile of the order on its own"
            )
        artifacts = self.store.get_artifacts(plan_id)
        empty = [name for name, data in files if not data]
        if empty:
            raise MissingUploadError(f"uploaded file(s) {', '.join(empty)} are empty (0 bytes)")
        payload = ClassifyPayload(
            plan_id=plan_id,
            model=plan["model"],
            crs=artifacts["crs"],
            transform=artifacts["transform"],
            width=artifacts["width"],
            height=artifacts["height"],
            lr_input=artifacts["lr_input"],
            purchased=plan["purchase"]["patch_ids"],
            files=[FilePayload(filename=name, data=b64encode(data)) for name, data in files],
            min_patch_coverage=self.settings.min_patch_coverage,
            max_tile_pixels=self.settings.max_tile_pixels,
        )
        return self._run(self._new_job("classify", plan_id, tenant), payload.model_dump())

    def preview_png(self, plan_id: str, *, tenant: str) -> bytes:
        plan = self.get_plan(plan_id, tenant=tenant)
        artifacts = self.store.get_artifacts(plan_id)
        rgb = decode_array(artifacts["thumbnail"])
        purchase = plan["purchase"]
        cost = f"{purchase['price']:.2f} {purchase['currency']}"
        spend = plan.get("spend")
        expected = (
            f"\nexpected accuracy {spend['expected_accuracy']:.1%} (none {spend['expected_accuracy_none']:.1%}, "
            f"full HR {spend['expected_accuracy_full_hr']:.1%})"
            if spend
            else ""
        )
        if purchase["recommendation"] == "tiles":
            grid = spend["tile_grid"]
            gains, bought = [0.0] * (grid["rows"] * grid["cols"]), []
            for t in spend["tiles"]:
                k = t["row"] * grid["cols"] + t["col"]
                gains[k] = t["p_right_hr"] - t["p_right_lr"]
                if t["bought"]:
                    bought.append(k)
            title = (
                f"{plan['tile']['filename']} ({plan['model']})\nbuy {len(bought)} of {grid['planned']} tiles "
                f"for {cost}{expected}"
            )
            return render_preview(rgb, grid["rows"], grid["cols"], gains, bought, title)
        action = {
            "patches": f"buy {len(purchase['patch_ids'])} patches for {cost}",
            "whole_tile": f"buy the whole tile for {cost}: no dearer than the selected patches",
            "none": "buy nothing",
        }[purchase["recommendation"]]
        title = f"{plan['tile']['filename']} ({plan['model']})\n{action}{expected}"
        return render_preview(
            rgb,
            plan["grid"]["rows"],
            plan["grid"]["cols"],
            plan["patch_probabilities"],
            purchase["patch_ids"] if purchase["recommendation"] == "patches" else purchase["selected_patches"],
            title,
        )

    # --- models -------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        try:
            return self.executor.run("models", None, uuid.uuid4().hex, self.settings.job_wait_s)
        except JobPending as exc:
            raise BrokerUnavailableError(
                f"no worker answered within {self.settings.job_wait_s:g} s; is a Celery worker running?"
            ) from exc
