"""Training settings: one dataclass, defaults for the CPU benchmarks, overridable from JSON or flags."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    # networks
    policy_depth: int = 8
    policy_width: int = 16
    classifier_depth: int = 8
    classifier_width: int = 16
    classifier_stem_stride: int = 1
    fill: str = "lr"  # dropped patches: upsampled LR ("lr") or zeros ("zeros", as the paper)
    # classifier pretraining
    cls_epochs: int = 4
    lr_cls_epochs: int = 2
    cls_lr: float = 2e-3
    cls_batch: int = 128
    # which pretrained classifier weights are kept: the best validation epoch ("best"), or the
    # last epoch of the cosine schedule ("last"), which leaves the validation split unbiased
    # for calibrating the value model's expected accuracies on it
    cls_keep: str = "best"
    augment_flip: bool = True
    # agent stages
    pt_epochs: int = 3
    ft1_epochs: int = 3
    ft2_epochs: int = 2
    policy_lr: float = 1e-3
    finetune_cls_lr: float = 5e-4
    pt_batch: int = 512
    ft_batch: int = 128
    sigma_pt: float = 2.0
    sigma_ft: float = 3.0
    sigma_ft2: float | None = None  # Ft-2's sigma; None uses sigma_ft
    alpha_start: float = 0.7
    alpha_end: float = 0.95
    fusion: str = "paper"  # Ft-2 score: "paper" (S/P) or "confidence"
    # share of each finetuning batch also trained on the policy's own top-k masks at a
    # uniformly random k in 1..P, so the classifier serves any purchase budget (the
    # service's max_patches) and not only the masks the policy samples; 0 = the paper
    budget_mix: float = 0.0
    budget_masks: str = "policy"  # "policy" (its top k), "random" (any k patches) or "both" (half each)
    budget_k_min: int = 1  # smallest random budget; 0 also trains on the LR fill alone
    # the epoch kept by Pt/Ft-1/Ft-2: best validation "reward" (the paper), or "budgets": best
    # mean validation accuracy over the policy's top k, k = 0..P, and its greedy choice
    select: str = "reward"
    # knowledge distillation from the pretrained HR classifier on full images into every
    # classifier finetuned on masked images (PatchDrop's and the baselines' alike); 0 = off
    distill: float = 0.0
    distill_temperature: float = 2.0
    # hard-positive augmentation (Sec. 7 of the paper) and CutOut next to it, same epochs
    hard_positive_epochs: int = 0
    # baselines (Fixed-H/V, Stochastic, Random, STN): epochs, None = Ft-1's (the same as PatchDrop's classifier)
    baseline_epochs: int | None = None
    # the LR classifier improved by knowledge distillation from the HR classifier (the paper's KD)
    lr_kd_weight: float = 1.0
    # evaluation
    eval_batch: int = 250  # small batches stay in cache: ~1.5x faster than 1000 on CPU

    def __post_init__(self) -> None:
        choices = {"fill": ("lr", "zeros"), "fusion": ("paper", "confidence"),
                   "budget_masks": ("policy", "random", "both"), "select": ("reward", "budgets"),
                   "cls_keep": ("best", "last")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    @classmethod
    def from_json(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        values: dict[str, Any] = json.loads(path.read_text()) if path else {}
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys in {path}: {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
