"""``patchdrop`` command line: plan purchases for a tile with a model bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.errors import PatchDropError

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "default.pt"


def _plan(args: argparse.Namespace) -> int:
    from models.checkpoint import load_bundle
    from models.inference import decide_patches
    from models.raster import read_tile

    bundle = load_bundle(args.checkpoint)
    tile = read_tile(args.tile, bundle.lr_size, band_count=len(bundle.bands))
    decision = decide_patches(bundle, tile.array, max_patches=args.max_patches)[0]
    footprints = tile.patch_bounds(bundle.grid)
    plan = {
        "tile": str(args.tile),
        "crs": tile.crs.to_string(),
        "model": bundle.metadata.get("model_id", Path(args.checkpoint).stem),
        "probabilities": decision.probabilities,
        "selected_patches": decision.selected,
        "footprints": {str(i): footprints[i] for i in decision.selected},
        "lr_prediction": {"class": decision.lr_class, "confidence": round(decision.lr_confidence, 4)},
    }
    json.dump(plan, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patchdrop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="which HR patches of an LR GeoTIFF tile are worth buying")
    plan.add_argument("tile", type=Path, help="LR GeoTIFF tile (bands in the model's order)")
    plan.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    plan.add_argument("--max-patches", type=int, default=None, help="buy at most this many patches")
    plan.set_defaults(func=_plan)
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
