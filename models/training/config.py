"""Training settings: one dataclass, defaults for the CPU benchmarks, overridable from JSON or flags."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

# The least value of each numeric setting, and whether it must lie strictly above it.
RANGES: dict[str, tuple[float, bool]] = {
    **{f"{n}_epochs": (0, False) for n in ("cls", "lr_cls", "pt", "ft1", "ft2", "hard_positive", "baseline")},
    **{n: (1, False) for n in ("threads", "policy_depth", "policy_width", "classifier_depth", "classifier_width",
                               "classifier_stem_stride", "cls_batch", "pt_batch", "ft_batch", "eval_batch")},
    **{n: (0, True) for n in ("cls_lr", "policy_lr", "finetune_cls_lr", "sigma_pt", "sigma_ft", "sigma_ft2",
                              "distill_temperature")},
    **{n: (0, False) for n in ("alpha_start", "alpha_end", "budget_mix", "budget_k_min", "distill", "lr_kd_weight")},
}  # fmt: skip


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
        self._check_types()
        choices = {"fill": ("lr", "zeros"), "fusion": ("paper", "confidence"),
                   "budget_masks": ("policy", "random", "both"), "select": ("reward", "budgets"),
                   "cls_keep": ("best", "last")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name, (least, strict) in RANGES.items():
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < least or (strict and value == least)):
                raise ValueError(f"{name} must be {'above' if strict else 'at least'} {least:g}, got {value}")
        for name in ("policy_depth", "classifier_depth"):  # the ResNet's rule (models.nn.networks)
            depth = getattr(self, name)
            if (depth - 2) % 6 or depth < 8:
                raise ValueError(f"{name} must be 6n + 2 with n >= 1 (8, 14, 20, ...), got {depth}")
        for name in ("budget_mix", "alpha_start", "alpha_end"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must lie in 0..1, got {getattr(self, name)}")

    @classmethod
    def _field_types(cls, name: str) -> tuple[type, ...]:
        """The types a field may hold, ``NoneType`` among them for an optional one."""
        hint = get_type_hints(cls)[name]
        return get_args(hint) or (hint,)

    @staticmethod
    def _type_names(allowed: tuple[type, ...]) -> str:
        return " or ".join(getattr(t, "__name__", str(t)) for t in allowed)

    def _check_types(self) -> None:
        """Each field holds its declared type (a JSON config or ``--set`` can give "false" for a bool)."""
        for f in fields(self):
            value, allowed = getattr(self, f.name), self._field_types(f.name)
            if value is None and type(None) in allowed:
                continue
            if float in allowed and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))
                continue
            ok = any(
                isinstance(value, t) and not (t is int and isinstance(value, bool))
                for t in allowed
                if t is not type(None)
            )
            if not ok:
                raise ValueError(f"{f.name} must be {self._type_names(allowed)}, got {value!r}")

    @classmethod
    def setting_from_text(cls, key: str, text: str) -> Any:
        """A ``--set KEY=VALUE`` value as the field's type: true/false (any case), numbers as Python
        reads them (.5, 1e-3, +3), null/None for an optional field, else the text."""
        if key not in {f.name for f in fields(cls)}:
            raise ValueError(f"unknown setting {key!r}")
        allowed = cls._field_types(key)
        word = text.strip()
        if word.lower() in ("null", "none") and type(None) in allowed:
            return None
        if bool in allowed:
            if word.lower() in ("true", "false"):
                return word.lower() == "true"
            raise ValueError(f"{key} must be true or false, got {text!r}")
        for kind in (int, float):
            if kind in allowed:
                try:
                    return kind(word)
                except ValueError:
                    pass
        if str in allowed:
            return text
        raise ValueError(f"{key} must be {cls._type_names(allowed)}, got {text!r}")

    @classmethod
    def from_json(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        values: dict[str, Any] = json.loads(path.read_text()) if path else {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object of TrainConfig fields")
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys in {path}: {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
