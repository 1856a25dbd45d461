"""Plan the HR purchase for a tile through a running API and print the plan.

    python scripts/plan_over_http.py --url http://127.0.0.1:8000 [--tile models/assets/sample_lr_tile.tif]

Waits for ``/healthz``, posts the tile to ``/v1/plans``, prints the plan (JSON),
saves its preview PNG next to the SQLite store, and ends with a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx


def wait_until_up(client: httpx.Client, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the API at {client.base_url} did not answer within {seconds:g} s")
        time.sleep(0.25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tile", type=Path, default=Path("models/assets/sample_lr_tile.tif"))
    parser.add_argument("--max-patches", type=int, default=None)
    parser.add_argument("--max-price", type=float, default=None)
    parser.add_argument("--target-accuracy", type=float, default=None)
    parser.add_argument("--pricing", default=None, help="preset (archive, tasking) or JSON overrides")
    parser.add_argument("--preview", type=Path, default=Path("data/sample_plan_preview.png"))
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the API to start")
    args = parser.parse_args()

    with httpx.Client(base_url=args.url, timeout=120) as client:
        wait_until_up(client, args.wait)
        given = {
            "max_patches": args.max_patches,
            "max_price": args.max_price,
            "target_accuracy": args.target_accuracy,
            "pricing": args.pricing,
        }
        form = {k: str(v) for k, v in given.items() if v is not None}
        response = client.post(
            "/v1/plans", files={"tile": (args.tile.name, args.tile.read_bytes(), "image/tiff")}, data=form
        )
        if response.status_code != 201:
            print(f"POST /v1/plans answered {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        plan = response.json()
        print(json.dumps(plan, indent=2))
        preview = client.get(plan["links"]["preview"])
        args.preview.parent.mkdir(parents=True, exist_ok=True)
        args.preview.write_bytes(preview.content)

    purchase, lr, cur = plan["purchase"], plan["lr_prediction"], plan["purchase"]["currency"]
    spend = plan.get("spend")
    if purchase["recommendation"] == "tiles":
        order = f"{spend['tiles_bought']} of {spend['tile_grid']['planned']} tiles"
    elif purchase["recommendation"] == "whole_tile":
        order = "the whole tile"
    else:
        order = f"patches {purchase['patch_ids']}" if purchase["patch_ids"] else "nothing"
    lines = [
        f"plan {plan['id']} for {plan['tile']['filename']} ({plan['tile']['area_km2']} km², model {plan['model']} = {plan.get('model_version')}):",
        f"  recommendation: {purchase['recommendation']} — {purchase['reason']}",
        f"  policy's patches: {sorted(purchase['selected_patches'])}; order {order} for {purchase['price']:.2f} {cur}"
        f" (whole tile: {purchase['whole_tile']['price']:.2f} {cur})",
        f"  LR-only prediction: {lr['class']} ({lr['confidence']:.0%})",
        *(
            [
                f"  what the money buys: expected accuracy {spend['expected_accuracy']:.1%} for "
                f"{spend['price']:.2f} {cur} (none {spend['expected_accuracy_none']:.1%}; full HR "
                f"{spend['expected_accuracy_full_hr']:.1%} for {spend['full_hr_price']:.2f} {cur})"
            ]
            if spend
            else []
        ),
        *(f"  warning: {w}" for w in plan.get("warnings", [])),
        f"  preview: {args.preview}   again: GET {args.url}/v1/plans/{plan['id']} (while the API runs)",
    ]
    print("\n" + "\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
