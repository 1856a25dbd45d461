"""``patchdrop`` command line: plan purchases for tiles, estimate a region, run the API or a Celery worker.

``plan`` and ``estimate`` run in this process through the worker's own pipelines
(``worker.jobs.plan_many``, ``worker.estimates.run_all``) with the service's settings
(``PATCHDROP_*``: pricing, tile size limits), so they answer with the JSON the API gives
for the same input. The region limits that protect a shared server
(``PATCHDROP_MAX_REGION_KM2``, ``PATCHDROP_MAX_REGION_TILES``) do not apply to a run on
one's own machine. ``serve`` and ``worker`` start uvicorn and Celery as programs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from models.assets import DEFAULT_CHECKPOINT
from models.errors import PatchDropError


def _settings(args: argparse.Namespace) -> Any:
    from service.settings import Settings

    # The CLI runs one bundle in this process: no Redis, no batching across requests.
    return Settings(redis_url=None, models={"default": Path(args.checkpoint)}, preload_models=False)


def _registry(settings: Any) -> Any:
    from worker.registry import ModelRegistry

    return ModelRegistry(settings.models, settings.default_model, settings.device, settings.torch_threads)


def _plan(args: argparse.Namespace) -> int:
    from worker.jobs import plan_many
    from worker.payloads import PlanPayload, b64encode

    settings = _settings(args)
    pricing = settings.pricing.for_request(args.pricing)
    payloads = [
        PlanPayload(
            plan_id=uuid.uuid4().hex,
            filename=path.name,
            tile=b64encode(path.read_bytes()),
            max_patches=args.max_patches,
            max_price=args.max_price,
            target_accuracy=args.target_accuracy,
            pricing=pricing,
            max_tile_pixels=settings.max_tile_pixels,
            thumbnail_px=settings.thumbnail_px,
            bands=args.bands.split(",") if args.bands else None,
        ).model_dump()
        for path in args.tile
    ]
    plans = [result["plan"] for result in plan_many(payloads, _registry(settings))]
    json.dump(plans[0] if len(plans) == 1 else plans, sys.stdout, indent=2)
    sys.stdout.write("\n")
    for path, plan in zip(args.tile, plans, strict=True):
        if plan.get("spend"):
            print(_spend_line(str(path), plan["spend"], plan["purchase"]["order"]["polygons"]), file=sys.stderr)
    return 0


def _spend_line(name: str, spend: dict, polygons: list) -> str:
    """What the money buys, in one line per plan or estimate."""
    return (
        f"{name}: buy {spend['tiles_bought']} tile(s) as {len(polygons)} polygon(s) for {spend['price']:.2f} "
        f"{spend['currency']} -> expected accuracy {spend['expected_accuracy']:.1%} (none "
        f"{spend['expected_accuracy_none']:.1%}; full HR {spend['expected_accuracy_full_hr']:.1%} for "
        f"{spend['full_hr_price']:.2f}); {spend['reason']}"
    )


def _estimate(args: argparse.Namespace) -> int:
    """A region cost estimate run as the embedded API runs one, in a job store of its own, with a progress bar."""
    from tqdm import tqdm

    from models.acquisition.region import RegionSpec, feature_collection_chunks, parse_region
    from worker.estimates import EstimatePayload, new_estimate_job, progress, run_all
    from worker.jobstore import JobState, SQLiteJobStore

    settings = _settings(args)
    region_text = Path(args.region).read_text()
    parse_region(region_text, args.region_crs)  # a bad region is refused before the raster is opened
    payload = EstimatePayload(
        job_id=uuid.uuid4().hex,
        source=str(args.scene),
        source_name=str(args.scene),
        region=json.loads(region_text),
        region_crs=args.region_crs,
        tile_size_m=args.tile_size_m,
        chunk_tiles=args.chunk_tiles,
        max_patches=args.max_patches,
        cloud_threshold=args.cloud_threshold,
        bands=args.bands.split(",") if args.bands else None,
        max_price=args.max_price,
        target_accuracy=args.target_accuracy,
        pricing=settings.pricing.for_request(args.pricing),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="patchdrop-estimate-") as tmp:
        store = SQLiteJobStore(Path(tmp) / "jobs.sqlite3")
        store.create(new_estimate_job(payload, tenant="cli"))
        lock = threading.Lock()
        with tqdm(unit="tile", desc="estimate", disable=args.quiet) as bar:

            def on_chunk(_: int) -> None:
                with lock:
                    done = progress(store.get(payload.job_id), store)  # type: ignore[arg-type]
                    bar.total = done["tiles_total"]
                    bar.update(done["tiles_done"] - bar.n)

            run_all(payload.job_id, store, _registry(settings), on_chunk)
        job = store.get(payload.job_id)
        assert job is not None
        if job["state"] != JobState.SUCCEEDED.value:  # run_all raises on a failure; a cancel cannot come here
            raise PatchDropError(f"the estimate ended {job['state']}")
        result = dict(job["result"])
        (out / "order.geojson").write_text(json.dumps(result.pop("order_geojson")))
        (out / "estimate.json").write_text(json.dumps(result, indent=2))
        with (out / "tiles.geojson").open("w") as f:
            for piece in feature_collection_chunks(RegionSpec.from_dict(job["spec"]), store.chunks(payload.job_id)):
                f.write(piece)
        store.close()
    for warning in job.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    pd, full = result["patchdrop"], result["full"]
    print(
        f"{result['tiles']['planned']} tiles planned, {sum(result['tiles']['skipped'].values())} skipped; "
        f"PatchDrop {pd['area_km2']:.2f} km2 for {pd['price']:.2f} {pd['currency']}, "
        f"full HR {full['area_km2']:.2f} km2 for {full['price']:.2f} (saving {result['saving_pct']} %); "
        f"files in {out}"
    )
    if "spend" in result:
        print(_spend_line("spend-aware order", result["spend"], result["spend"]["order"]["geojson"]["features"]))
    return 0


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The uvicorn command line and environment for ``patchdrop serve``."""
    env = dict(os.environ)
    if args.redis_url:
        env["PATCHDROP_REDIS_URL"] = args.redis_url
    if args.checkpoint:
        env["PATCHDROP_MODELS"] = json.dumps({"default": str(Path(args.checkpoint).resolve())})
    argv = [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app"]
    argv += ["--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    return argv, env


def worker_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The Celery worker command line: one solo-pool process (run one per GPU)."""
    env = dict(os.environ)
    env["PATCHDROP_DEVICE"] = args.device
    if args.redis_url:
        env["PATCHDROP_REDIS_URL"] = args.redis_url
    if args.checkpoint:
        env["PATCHDROP_MODELS"] = json.dumps({"default": str(Path(args.checkpoint).resolve())})
    name = f"patchdrop-{args.device.replace(':', '')}@%h"
    argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool=solo", "-n", name]
    argv += ["--loglevel", args.loglevel]
    return argv, env


def _exec(command: tuple[list[str], dict[str, str]]) -> int:
    argv, env = command
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)  # replaces this process: signals reach uvicorn/celery directly
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patchdrop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bands_help = "what each band of the file is, in file order, comma-separated (blue,green,red,nir or B2,B3,B4,B8)"
    plan = sub.add_parser("plan", help="which HR patches of LR GeoTIFF tiles are worth buying, and their price")
    plan.add_argument("tile", type=Path, nargs="+", help="LR GeoTIFF tile(s) (several share one forward pass)")
    plan.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    plan.add_argument("--max-patches", type=int, default=None, help="buy at most this many patches")
    plan.add_argument("--max-price", type=float, default=None, help="spend at most this much on the order")
    plan.add_argument("--target-accuracy", type=float, default=None, help="least price reaching this (0..1)")
    plan.add_argument(
        "--pricing", default=None, help="preset (archive, tasking) or JSON overrides, e.g. '{\"price_per_km2\": 25}'"
    )
    plan.add_argument("--bands", default=None, help=bands_help)
    plan.set_defaults(func=_plan)

    est = sub.add_parser("estimate", help="price HR coverage of a region with and without PatchDrop's plans")
    est.add_argument("region", type=Path, help="GeoJSON Polygon/MultiPolygon (Feature or FeatureCollection)")
    est.add_argument("scene", help="LR raster (GeoTIFF or COG path/URL rasterio opens)")
    est.add_argument("--region-crs", default=None, help="CRS of the region (default WGS84)")
    est.add_argument("--out", type=Path, default=Path("estimate"), help="folder for estimate.json, order/tiles.geojson")
    est.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    est.add_argument("--tile-size-m", type=float, default=None, help="tile side (default: the model's)")
    est.add_argument("--max-patches", type=int, default=None, help="per-tile budget")
    est.add_argument("--cloud-threshold", type=float, default=None, help="skip tiles mostly at or above this B02")
    est.add_argument("--chunk-tiles", type=int, default=4096, help="tiles per chunk")
    est.add_argument("--pricing", default=None, help="preset (archive, tasking) or JSON overrides")
    est.add_argument("--max-price", type=float, default=None, help="spend-aware order: spend at most this much")
    est.add_argument("--target-accuracy", type=float, default=None, help="spend-aware order: least price reaching")
    est.add_argument("--bands", default=None, help=bands_help)
    est.add_argument("--quiet", action="store_true", help="no progress bar")
    est.set_defaults(func=_estimate)

    serve = sub.add_parser("serve", help="run the HTTP API (embedded unless REDIS_URL is set)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--redis-url", default=None, help="use Celery workers and Redis (else REDIS_URL)")
    serve.add_argument("--checkpoint", type=Path, default=None, help="serve this bundle as the default model")
    serve.set_defaults(func=lambda a: _exec(serve_command(a)))

    worker = sub.add_parser("worker", help="run a Celery worker (one per GPU) for the API's Celery mode")
    worker.add_argument("--device", default="auto", help="auto, cpu, cuda:0, cuda:1, ...")
    worker.add_argument("--redis-url", default=None, help="Redis broker/backend (else REDIS_URL)")
    worker.add_argument("--checkpoint", type=Path, default=None, help="serve this bundle as the default model")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=lambda a: _exec(worker_command(a)))
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PatchDropError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
    except ValidationError as exc:  # an option the payload schema refuses (as the API answers 422)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        print(f"error [invalid_request]: {problems}", file=sys.stderr)
    except UnicodeDecodeError as exc:
        print(f"error [invalid_request]: a text file (GeoJSON) is not UTF-8 text: {exc.reason}", file=sys.stderr)
    except OSError as exc:  # a file that is missing, a folder, unreadable, or in the way of an output
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error [invalid_request]:{where}: {exc.strerror or exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
