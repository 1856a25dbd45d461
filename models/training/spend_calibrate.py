"""Calibrate a bundle's value model on the validation chips and store it in the bundle's metadata.

    python -m models.training.spend_calibrate --bundle models/assets/default.pt --chips data/s2_chips

Per validation chip: the LR-only prediction, the prediction with all HR patches, the
policy's patch probabilities and the LR classifier's class probabilities. Two value
models are fitted (``models.acquisition.spend.fit_value_model``, the feature chosen by 2-fold
cross-fitting on the validation chips): ``value_model`` over every feature, and
``value_model_policy`` over the policy's features only, which region estimates use
(they run the policy alone, not the LR classifier, to stay within their time budget).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from models.acquisition.spend import FEATURES, LR_FEATURES, fit_value_model, tile_features
from models.datasets.base import ImageSet
from models.datasets.chips import SPLITS_FILE, load_chips, read_splits_file, scan_chip_folder
from models.errors import PatchDropError
from models.nn.checkpoint import ModelBundle, load_bundle, save_bundle
from models.nn.grid import downsample


def load_split(root: str | Path, split: str, lr_factor: int = 4) -> tuple[ImageSet, list[str]]:
    """One split of a chip folder, in ``splits.json`` order, and the chips' relative paths."""
    root = Path(root)
    class_names, chips = scan_chip_folder(root)
    listed = read_splits_file(root / SPLITS_FILE, chips)[split]
    return load_chips(root, listed, class_names, lr_factor), [rel for rel, _ in listed]


@torch.inference_mode()
def chip_outcomes(bundle: ModelBundle, images: ImageSet, batch: int = 512) -> dict[str, np.ndarray]:
    """Per chip: LR input, policy probabilities, LR class probabilities, LR and full-HR correctness."""
    from models.nn.inference import _lr_logits, classify, policy_probabilities

    factor = bundle.hr_size[0] // bundle.lr_size[0]
    lr = downsample(images.hr.float(), factor).numpy()
    labels = images.labels.numpy()
    names = bundle.class_names
    policy = policy_probabilities(bundle, lr)
    lr_probs, lr_pred, full_pred = [], [], []
    all_patches = list(range(bundle.grid.num_patches))
    for start in range(0, len(lr), batch):
        x = lr[start : start + batch]
        h = images.hr[start : start + batch].float().numpy()
        lr_res = classify(bundle, x, h, [[] for _ in x])  # no patches: the LR stream alone
        # The planner buys whole tiles (a sub-tile order is billed as the tile), so a bought
        # tile is classified with all its patches.
        all_res = classify(bundle, x, h, [all_patches for _ in x])
        full_pred.extend(names.index(r.class_name) for r in all_res)
        # Features from the LR classifier, as plans report it; "LR right" is what a user gets
        # when buying nothing (the bundle's own fusion with no HR patch).
        lr_norm = bundle.normalise(torch.from_numpy(np.ascontiguousarray(x)))
        lr_probs.extend(_lr_logits(bundle, lr_norm).softmax(-1).tolist())
        lr_pred.extend(names.index(r.class_name) for r in lr_res)
    lr_probs_a = np.asarray(lr_probs, np.float64)
    return {
        "lr": lr,
        "policy": policy,
        "lr_probs": lr_probs_a,
        "lr_right": np.asarray(lr_pred) == labels,
        "hr_right": np.asarray(full_pred) == labels,
        "labels": labels,
    }


def calibrate(bundle: ModelBundle, chips: str | Path, bins: int = 8) -> dict[str, dict]:
    """The value models of ``bundle`` fitted on a chip folder's validation split."""
    return calibrate_on(bundle, load_split(chips, "val")[0], bins)


def calibrate_on(bundle: ModelBundle, images: ImageSet, bins: int = 8) -> dict[str, dict]:
    """The value models of ``bundle`` fitted on ``images`` (a validation split, never test data)."""
    out = chip_outcomes(bundle, images)
    feats = tile_features(out["policy"], out["lr_probs"])
    full, _ = fit_value_model(feats, out["lr_right"], out["hr_right"], bins, FEATURES)
    policy_only = tuple(f for f in FEATURES if f not in LR_FEATURES)
    pol, _ = fit_value_model(feats, out["lr_right"], out["hr_right"], bins, policy_only)
    for m in (full, pol):
        m.info["all_patches_accuracy"] = float(out["hr_right"].mean())
    return {"value_model": full.to_dict(), "value_model_policy": pol.to_dict()}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="models/assets/default.pt")
    p.add_argument("--chips", default="data/s2_chips")
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--out", default=None, help="write the calibrated bundle here (default: re-save --bundle)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bins < 1:
        parser.error(f"--bins must be at least 1, got {args.bins}")
    torch.set_num_threads(2)
    try:
        bundle = load_bundle(args.bundle)
        models_ = calibrate(bundle, args.chips, args.bins)
    except PatchDropError as exc:  # a bundle or chip folder that is missing or unusable
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2
    bundle.metadata.update(models_)
    save_bundle(bundle, args.out or args.bundle)
    for key, d in models_.items():
        print(key, json.dumps({k: d[k] for k in ("feature", "info")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
