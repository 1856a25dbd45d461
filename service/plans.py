"""Plans and classifications: what the routes call.

Every request that runs task code is a job (``worker.jobstore``), recorded
before it is dispatched and updated when it ends, so ``GET /v1/jobs/{id}``
knows every id it ever gave out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from models.acquisition.preview import render_preview
from models.errors import GridError, PatchDropError
from service.errors import BrokerUnavailableError, JobFailedError, MissingUploadError, PlanNotFoundError
from service.executor import Executor, JobPending
from service.security import owned
from service.settings import Settings
from service.store import PlanStore
from worker.jobstore import ACTIVE, Job, JobKind, JobState, error_body, new_job, now
from worker.payloads import ClassifyPayload, FilePayload, PlanPayload, b64encode, decode_array


@dataclass(frozen=True)
class Outcome:
    """Either the finished result or, when the worker has not answered in time, the pending job."""

    job: Job
    value: dict[str, Any] | None = None

    @property
    def pending(self) -> bool:
        return self.value is None


class PlanService:
    def __init__(self, settings: Settings, store: PlanStore, executor: Executor) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.jobs = executor.jobs

    # --- jobs ---------------------------------------------------------------------------------

    def _run(self, kind: JobKind, plan_id: str, payload: dict[str, Any], tenant: str) -> Outcome:
        # Recorded before dispatch: a request that dies mid-way leaves a job that reads as failed, not a 404.
        job = new_job(kind, tenant, plan_id=plan_id)
        self.jobs.create(job)
        try:
            value = self.executor.run(kind, payload, job["id"], self.settings.job_wait_s)
        except JobPending as pending:
            self.jobs.update(job["id"], state=pending.state)
            return Outcome({**job, "state": pending.state})
        except Exception as exc:
            self._fail(job, exc)
            if isinstance(exc, PatchDropError):
                exc.job_id = job["id"]
            raise
        return Outcome(self.jobs.get(job["id"]) or job, self._succeed(job, value))

    def _succeed(self, job: Job, value: dict[str, Any]) -> dict[str, Any]:
        if job["kind"] == "plan":
            plan = {**value["plan"], "created": job["created"], "job_id": job["id"], "tenant": job["tenant"]}
            self.store.put_plan(plan, value["artifacts"])  # before the job says so: a succeeded job has its plan
            self.jobs.update(job["id"], state=JobState.SUCCEEDED.value, finished=now())
            return plan
        result = {**value, "job_id": job["id"]}
        self.jobs.update(job["id"], state=JobState.SUCCEEDED.value, finished=now(), result=result)
        return result

    def _fail(self, job: Job, exc: BaseException) -> None:
        self.jobs.update(job["id"], state=JobState.FAILED.value, finished=now(), error=error_body(exc, "the task"))

    def refresh(self, job: Job) -> Job:
        """An unfinished plan or classify job, brought up to date from the executor."""
        if job["state"] not in ACTIVE:
            return job
        state, value = self.executor.poll(job["id"])
        if state == JobState.SUCCEEDED.value:
            self._succeed(job, value)
        elif state == JobState.FAILED.value:
            self._fail(job, value if isinstance(value, BaseException) else JobFailedError(str(value)))
        else:
            # Celery forgets a result once read, so a poll racing the one that recorded the success
            # sees PENDING: a state is only ever moved forward (queued -> running), never back.
            current = self.jobs.get(job["id"]) or job
            if current["state"] == JobState.QUEUED.value and state == JobState.RUNNING.value:
                self.jobs.update(job["id"], state=state)
        return self.jobs.get(job["id"]) or job

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
        bands: list[str] | None = None,
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
            bands=bands,
        )
        return self._run("plan", plan_id, payload.model_dump(), tenant)

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
        return self._run("classify", plan_id, payload.model_dump(), tenant)

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
