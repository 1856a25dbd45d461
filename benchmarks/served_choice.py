"""Choose between served bundles on the validation split only: what each buys a spend-aware plan.

    B=runs/scattered_fashion_mnist
    python benchmarks/served_choice.py --region scattered_fashion_mnist \
        --bundle lr2=$B/served-lr2.pt --bundle lr6=$B/served.pt --bundle lr6-kd=$B/served-lr6kd.pt

Per bundle, on the region's validation split (never its test data): the LR-only and full-HR
accuracy, the value model ``models.training.spend_calibrate`` would fit (its feature and
ranking score), and the accuracy when the value model's cross-fitted ranking (2 folds, so
no tile is ranked by bins fitted on itself) buys HR for the best 10-40 % of the tiles. That
last figure leaves the vendor minimums out: it compares how well each bundle's free answer
and its ranking combine, which is what the minimums then act on. Differences against the
first bundle are paired (the same tiles), with their standard errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_md import git_commit  # noqa: E402
from benchmarks.spend import canvas_region  # noqa: E402
from benchmarks.stats import paired  # noqa: E402
from models.acquisition.spend import FEATURES, fit_bins, fit_value_model, tile_features  # noqa: E402
from models.nn.checkpoint import load_bundle  # noqa: E402
from models.training.spend_calibrate import chip_outcomes, load_split  # noqa: E402

FRACTIONS = (0.1, 0.2, 0.3, 0.4)
BINS = 8


def cross_fitted_gain(feature: np.ndarray, lr_right: np.ndarray, hr_right: np.ndarray, name: str) -> np.ndarray:
    """Each tile's predicted gain from bins fitted on the other half of the tiles."""
    n = len(lr_right)
    fold = np.random.default_rng(0).permutation(n) % 2 == 0
    pred = np.empty(n)
    for part in (fold, ~fold):
        m = fit_bins(feature[~part], lr_right[~part], hr_right[~part], name, BINS)
        p_lr, p_hr = m.predict({name: feature[part]})
        pred[part] = p_hr - p_lr
    return pred


def measure(bundle_path: str, images) -> tuple[dict, dict[str, np.ndarray]]:
    bundle = load_bundle(bundle_path)
    out = chip_outcomes(bundle, images)
    feats = tile_features(out["policy"], out["lr_probs"])
    lr_right, hr_right = out["lr_right"], out["hr_right"]
    vm, scores = fit_value_model(feats, lr_right, hr_right, BINS, FEATURES)
    pred = cross_fitted_gain(np.asarray(feats[vm.feature]), lr_right, hr_right, vm.feature)
    n = len(lr_right)
    order = np.lexsort((np.random.default_rng(1).random(n), -pred))  # ties inside a bin at random
    rights = {"lr": lr_right}
    for f in FRACTIONS:
        right = lr_right.copy()
        k = int(round(f * n))
        right[order[:k]] = hr_right[order[:k]]
        rights[f"ranked_{round(100 * f)}"] = right
    res = {
        "bundle": bundle_path,
        "lr_classifier": bundle.metadata.get("lr_classifier"),
        "lr_accuracy": round(100 * float(lr_right.mean()), 2),
        "hr_accuracy": round(100 * float(hr_right.mean()), 2),
        "value_model": {"feature": vm.feature, "score": scores[vm.feature]},
        "ranked_accuracy": {
            f"{round(100 * f)}%": round(100 * float(rights[f"ranked_{round(100 * f)}"].mean()), 2) for f in FRACTIONS
        },
    }
    return res, rights


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--region", default="sentinel2", choices=["sentinel2", "scattered_fashion_mnist"])
    ap.add_argument("--bundle", action="append", required=True, help="NAME=PATH; the first is the reference")
    ap.add_argument("--chips", default="data/s2_chips", help="sentinel2: the chip folder")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    named = [b.split("=", 1) for b in args.bundle]
    if any(len(b) != 2 for b in named):
        raise SystemExit("--bundle takes NAME=PATH")
    if args.region == "sentinel2":
        images = load_split(args.chips, "val")[0]
    else:
        images = canvas_region(load_bundle(named[0][1]), None).validation()
    results, first = {}, None
    for name, path in named:
        res, rights = measure(path, images)
        if first is not None:
            res["minus_first"] = {k: paired(rights[k], first[k], scale=100, ndigits=2) for k in rights}
        first = first or rights
        results[name] = res
        print(name, json.dumps({k: v for k, v in res.items() if k != "minus_first"}), flush=True)
    doc = {
        "region": args.region,
        "split": "validation",
        "images": len(images),
        "bundles": results,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": "python benchmarks/served_choice.py " + " ".join(sys.argv[1:]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"served_choice_{args.region}.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
