"""``patchdrop`` command line: plan purchases for tiles, run the API, run a Celery worker.

``serve`` and ``worker`` start uvicorn and Celery as programs: this module
imports no web or queue code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from models.errors import PatchDropError

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "default.pt"


def _plan(args: argparse.Namespace) -> int:
    from models.checkpoint import load_bundle
    from models.inference import decide_patches
    from models.planning import Budget, TileFootprint, plan_purchase
    from models.pricing import PricingSchema
    from models.raster import read_tile
    from models.scene_plan import is_scene, plan_scene, spend_single

    price_list = PricingSchema().with_request(args.pricing)
    pricing = price_list.profile()
    req = argparse.Namespace(
        max_price=args.max_price, target_accuracy=args.target_accuracy, pricing=price_list, filename=""
    )
    bundle = load_bundle(args.checkpoint)
    budget = Budget(args.max_patches, args.max_price)
    tiles = [read_tile(t, bundle.lr_size, band_names=bundle.bands, name=str(t)) for t in args.tile]
    plans: list[dict] = []
    summaries: list[str] = []
    singles = []
    for path, tile in zip(args.tile, tiles, strict=True):
        if is_scene(tile, bundle):  # larger than one model tile: its tiles, planned jointly
            req.filename = str(path)
            scene = plan_scene(
                req, str(args.checkpoint), bundle, lambda lr: decide_patches(bundle, lr), tile, path.read_bytes()
            )
            plans.append({"tile": str(path), "model": bundle.metadata.get("model_id"), **scene})
            summaries.append(_spend_line(str(path), scene["spend"], scene["purchase"]["order"]["polygons"]))
        else:
            singles.append((path, tile))
    decisions = (
        decide_patches(bundle, np.stack([t.array for _, t in singles]), max_patches=args.max_patches) if singles else []
    )
    for (path, tile), decision in zip(singles, decisions, strict=True):
        footprints = tile.patch_bounds(bundle.grid)
        crs = tile.crs.to_string()
        purchase = plan_purchase(
            decision.probabilities,
            decision.selected,
            TileFootprint(crs, tile.bounds, tuple(footprints)),
            budget,
            pricing,
        )
        plans.append(
            {
                "tile": str(path),
                "crs": crs,
                "model": bundle.metadata.get("model_id", Path(args.checkpoint).stem),
                "probabilities": decision.probabilities,
                "selected_patches": decision.selected,
                "footprints": {str(i): footprints[i] for i in decision.selected},
                "lr_prediction": {"class": decision.lr_class, "confidence": round(decision.lr_confidence, 4)},
                "purchase": purchase.to_dict(),
                "spend": spend_single(decision, bundle, purchase.whole_tile_quote.price, pricing, req),
            }
        )
        if plans[-1]["spend"]:
            summaries.append(_spend_line(str(path), plans[-1]["spend"], purchase.to_dict()["order"]["polygons"]))
    json.dump(plans[0] if len(plans) == 1 else plans, sys.stdout, indent=2)
    sys.stdout.write("\n")
    for line in summaries:
        print(line, file=sys.stderr)
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
    """A region cost estimate in this process, with a progress bar; the API's result files."""
    from tqdm import tqdm

    from models.checkpoint import load_bundle
    from models.inference import policy_probabilities
    from models.policy import fixed_order
    from models.pricing import PricingSchema
    from models.raster import SceneReader
    from models.region import feature_collection_chunks, iter_chunks, make_spec, parse_region, summarize

    pricing = PricingSchema().with_request(args.pricing).profile()
    bundle = load_bundle(args.checkpoint)
    region, region_crs = parse_region(Path(args.region).read_text(), args.region_crs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with SceneReader(args.scene, bundle.bands, name=str(args.scene)) as reader:
        info = reader.info
        spec = make_spec(
            str(args.scene), info.crs, info.transform, info.width, info.height, info.block, info.band_indexes,
            region, region_crs, bands=bundle.bands, lr_size=bundle.lr_size,
            grid=(bundle.grid.rows, bundle.grid.cols), lr_pixel_size=bundle.metadata.get("lr_pixel_size"),
            tile_size_m=args.tile_size_m, chunk_tiles=args.chunk_tiles, max_patches=args.max_patches,
            cloud_threshold=args.cloud_threshold, value_model=bundle.metadata.get("value_model_policy"),
            max_price=args.max_price, target_accuracy=args.target_accuracy,
        )  # fmt: skip
        chunks = []
        order = fixed_order("fixed-h", bundle.grid)
        with tqdm(total=spec.n_tiles, unit="tile", desc="estimate", disable=args.quiet) as bar:
            for chunk in iter_chunks(
                reader, spec, range(spec.n_chunks), lambda lr: policy_probabilities(bundle, lr), order
            ):
                chunks.append(chunk)  # a few bytes per tile: a whole scene's chunks fit easily
                bar.update(chunk["tiles"])
    result = summarize(spec, chunks, pricing)
    (out / "order.geojson").write_text(json.dumps(result.pop("order_geojson")))
    (out / "estimate.json").write_text(json.dumps(result, indent=2))
    with (out / "tiles.geojson").open("w") as f:
        for piece in feature_collection_chunks(spec, chunks):
            f.write(piece)
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
    """The uvicorn command line and environment for ``patchdrop serve`` (models imports no web code)."""
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
    plan = sub.add_parser("plan", help="which HR patches of LR GeoTIFF tiles are worth buying, and their price")
    plan.add_argument("tile", type=Path, nargs="+", help="LR GeoTIFF tile(s) (several share one forward pass)")
    plan.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    plan.add_argument("--max-patches", type=int, default=None, help="buy at most this many patches")
    plan.add_argument("--max-price", type=float, default=None, help="spend at most this much on the order")
    plan.add_argument("--target-accuracy", type=float, default=None, help="least price reaching this (0..1)")
    plan.add_argument(
        "--pricing", default=None, help="preset (archive, tasking) or JSON overrides, e.g. '{\"price_per_km2\": 25}'"
    )
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PatchDropError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
