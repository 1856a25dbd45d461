"""Test-split evaluation: every method at its own budget, a budget sweep, heat maps, examples.

All methods are computed in one pass over the test batches, so the cost is one
classifier forward per (method, budget) and batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from models.datasets.base import ImageSet
from models.nn.checkpoint import ModelBundle
from models.nn.fusion import bundle_probs, fuse, fusion_of, masked_input
from models.nn.grid import mask_images, upsample
from models.nn.policy import BASELINE_BUYS, baseline_scores, first_k, fractional_k, greedy_actions
from models.nn.stn import stn_scores
from models.training.batches import Normaliser, iterate


def binomial_se(p: float, n: int) -> float:
    """Standard error, in percentage points, of an accuracy ``p`` measured on ``n`` independent images."""
    return round(100 * (p * (1 - p) / max(n, 1)) ** 0.5, 2)


@dataclass
class Tally:
    correct: float = 0.0
    patches: float = 0.0
    coverage: float = 0.0
    n: int = 0
    frequency: torch.Tensor | None = None

    def add(self, ok: torch.Tensor, actions: torch.Tensor, coverage: torch.Tensor | None) -> None:
        self.correct += float(ok.sum())
        self.patches += float(actions.sum())
        self.n += len(ok)
        if coverage is not None:
            self.coverage += float(coverage.sum())
        freq = actions.sum(0).cpu()
        self.frequency = freq if self.frequency is None else self.frequency + freq

    def result(self, with_coverage: bool) -> dict[str, float]:
        p = self.correct / self.n
        out = {
            "accuracy": round(100 * p, 2),
            "se": binomial_se(p, self.n),
            "patches": round(self.patches / self.n, 2),
        }
        if with_coverage:
            out["item_coverage"] = round(100 * self.coverage / self.n, 2)
        return out


@dataclass
class Models:
    classifiers: ModelBundle  # pretrained HR and LR classifiers
    stages: dict[str, ModelBundle]  # "Pt", "Ft-1", "Ft-2"
    baselines: dict[str, ModelBundle] = field(default_factory=dict)  # "Fixed-H" -> finetuned classifier
    stn: ModelBundle | None = None  # the STN baseline: localisation network in the policy slot
    lr_kd: ModelBundle | None = None  # the LR classifier improved by distillation from HR


BASELINE_KEYS = {
    "Fixed-H": "fixed-h",
    "Fixed-V": "fixed-v",
    "Stochastic": "stochastic",
    "Random": "random",
    "Random (Ft-1 classifier)": "random",
}


@torch.inference_mode()
def evaluate(models: Models, test: ImageSet, batch_size: int = 1000, seed: int = 0,
             device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    ref = models.classifiers
    extra = [b for b in (models.stn, models.lr_kd) if b is not None]
    for b in [ref, *models.stages.values(), *models.baselines.values(), *extra]:
        b.to(device).eval()
    # Two-stream baselines are fused with the LR classifier by Ft-2's own rule (models.nn.fusion).
    two_stream_rule = fusion_of(models.stages["Ft-2"]) if "Ft-2" in models.stages else "paper"
    if two_stream_rule == "hr-only":
        two_stream_rule = "paper"
    grid, fill_mode = ref.grid, ref.fill
    norm = Normaliser(ref.metadata["band_mean"], ref.metadata["band_std"], device)
    has_items = "object_mask" in test.extra
    P = grid.num_patches
    own: dict[str, Tally] = {}
    sweep: dict[str, dict[int, Tally]] = {}
    gen = torch.Generator().manual_seed(seed)
    stage_S: dict[str, float] = {}

    # Budgets for "same S" comparisons need each stage's mean S first: one cheap policy pass.
    for name, b in models.stages.items():
        total = 0.0
        for batch in iterate(test, batch_size, norm, device):
            total += float(greedy_actions(torch.sigmoid(b.policy(batch.lr))).sum())
        stage_S[name] = total / len(test)

    def tally(table: dict, key, ok, actions, coverage) -> None:
        table.setdefault(key, Tally()).add(ok, actions, coverage)

    oracle_S = None
    for batch in iterate(test, batch_size, norm, device):
        y = batch.labels
        size = batch.hr.shape[-2:]
        lr_up = upsample(batch.lr, size)
        items = test.extra["object_mask"][batch.index].to(device) if has_items else None
        item_px = grid.patch_coverage(items) if has_items else None

        def cover(actions: torch.Tensor) -> torch.Tensor | None:
            if item_px is None:
                return None
            return (item_px * actions).sum(-1) / item_px.sum(-1).clamp_min(1)

        def hr_pred(bundle: ModelBundle, actions: torch.Tensor) -> torch.Tensor:
            return bundle.hr_classifier(masked_input(bundle, batch.hr, batch.lr, actions))

        full = torch.ones(len(y), P, device=device)
        none = torch.zeros(len(y), P, device=device)
        tally(own, "HR", ref.hr_classifier(batch.hr).argmax(-1) == y, full, cover(full))
        lr_logits_ref = ref.lr_classifier(lr_up)
        tally(own, "LR", lr_logits_ref.argmax(-1) == y, none, cover(none))
        if models.lr_kd is not None:
            tally(own, "LR (KD)", models.lr_kd.lr_classifier(lr_up).argmax(-1) == y, none, cover(none))

        for name, b in models.stages.items():
            probs = torch.sigmoid(b.policy(batch.lr))
            actions = greedy_actions(probs)
            hr_logits = hr_pred(b, actions)
            # Each stage scored as it is served: its own fusion rule and fill (models.nn.fusion).
            rule = fusion_of(b)
            tally(own, name, bundle_probs(b, batch.hr, batch.lr, actions, hr_logits=hr_logits).argmax(-1) == y,
                  actions, cover(actions))  # fmt: skip
            if name == "Ft-2":
                lr_logits = b.lr_classifier(lr_up)
                for other in ("paper", "confidence", "hr-only"):
                    if other != rule:
                        ok = fuse(other, hr_logits, lr_logits, actions).argmax(-1) == y
                        tally(own, f"Ft-2 (fusion {other})", ok, actions, cover(actions))
            if name == "Pt":
                continue  # the sweep compares finetuned classifiers; Pt keeps the pretrained one
            for k in range(0, P + 1):
                a = first_k(probs, k)
                ok = bundle_probs(b, batch.hr, batch.lr, a).argmax(-1) == y
                tally(sweep.setdefault(f"PatchDrop {name}", {}), k, ok, a, cover(a))

        for label, b in models.baselines.items():
            key = BASELINE_KEYS[label]
            scores = baseline_scores(key, grid, len(y), gen).to(device)
            for k in range(0, P + 1):
                a = first_k(scores, k)
                logits = hr_pred(b, a)
                tally(sweep.setdefault(label, {}), k, logits.argmax(-1) == y, a, cover(a))
                ok2 = fuse(two_stream_rule, logits, lr_logits_ref, a).argmax(-1) == y
                tally(sweep.setdefault(f"{label} (two-stream)", {}), k, ok2, a, cover(a))
            for stage, S in stage_S.items():
                if stage == "Pt":
                    continue
                a = first_k(scores, fractional_k(S, len(y), gen).to(device))
                logits = hr_pred(b, a)
                tally(own, f"{label} @ S({stage})", logits.argmax(-1) == y, a, cover(a))
                if stage == "Ft-2":
                    ok2 = fuse(two_stream_rule, logits, lr_logits_ref, a).argmax(-1) == y
                    tally(own, f"{label} (two-stream) @ S(Ft-2)", ok2, a, cover(a))

        if models.stn is not None:
            stn = models.stn
            scores = stn_scores(stn.policy, batch.lr, stn.metadata["stn"]["side"], grid)
            for k in range(0, P + 1):
                a = first_k(scores, k)
                tally(sweep.setdefault("STN", {}), k, hr_pred(stn, a).argmax(-1) == y, a, cover(a))
            for stage, S in stage_S.items():
                if stage != "Pt":
                    a = first_k(scores, fractional_k(S, len(y), gen).to(device))
                    tally(own, f"STN @ S({stage})", hr_pred(stn, a).argmax(-1) == y, a, cover(a))

        if has_items and "Ft-1" in models.stages:
            oracle = (item_px > 0).float()
            ft1 = models.stages["Ft-1"]
            tally(own, "Oracle (item patches)", hr_pred(ft1, oracle).argmax(-1) == y, oracle, cover(oracle))

    if has_items and "Ft-1" in models.stages:
        # PatchDrop at the oracle's mean S: a second pass, since that S is known only now.
        oracle_S = own["Oracle (item patches)"].patches / own["Oracle (item patches)"].n
        ft1 = models.stages["Ft-1"]
        for batch in iterate(test, batch_size, norm, device):
            fill = upsample(batch.lr, batch.hr.shape[-2:]) if fill_mode == "lr" else None
            item_px = grid.patch_coverage(test.extra["object_mask"][batch.index].to(device))
            a = first_k(torch.sigmoid(ft1.policy(batch.lr)), fractional_k(oracle_S, len(batch.labels), gen).to(device))
            ok = ft1.hr_classifier(mask_images(batch.hr, a, grid, fill)).argmax(-1) == batch.labels
            tally(own, "PatchDrop Ft-1 @ S(Oracle)", ok, a, (item_px * a).sum(-1) / item_px.sum(-1).clamp_min(1))

    return {
        "methods": {k: v.result(has_items) for k, v in own.items()},
        "sweep": {m: {k: t.result(has_items) for k, t in by_k.items()} for m, by_k in sweep.items()},
        "frequency": {k: (v.frequency / v.n).tolist() for k, v in own.items() if k in models.stages},
        "stage_patches": stage_S,
        "two_stream_rule": two_stream_rule,
        "baselines_buy": {label: BASELINE_BUYS[BASELINE_KEYS[label]] for label in models.baselines},
    }


def plot_sweep(report: dict[str, Any], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=90)
    for method, by_k in report["sweep"].items():
        ks = sorted(by_k, key=int)
        ax.plot([int(k) for k in ks], [by_k[k]["accuracy"] for k in ks], marker=".", label=method)
    for name, style in (("HR", "k--"), ("LR", "k:")):
        ax.axhline(report["methods"][name]["accuracy"], linestyle=style[1:], color="k", lw=1, label=name)
    for name in ("Pt", "Ft-1", "Ft-2"):
        if name in report["methods"]:
            m = report["methods"][name]
            ax.scatter([m["patches"]], [m["accuracy"]], marker="*", s=120, zorder=5, label=f"{name} (greedy)")
    ax.set_xlabel("HR patches bought (of 16)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_heatmaps(report: dict[str, Any], rows: int, cols: int, path: Path) -> None:
    freqs = report["frequency"]
    fig, axes = plt.subplots(1, len(freqs), figsize=(3 * len(freqs), 3), dpi=90, squeeze=False)
    for ax, (name, f) in zip(axes[0], freqs.items(), strict=False):
        im = ax.imshow(torch.tensor(f).reshape(rows, cols), vmin=0, vmax=1, cmap="viridis")
        for i, v in enumerate(f):
            ax.text(i % cols, i // cols, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_title(f"{name}: P(patch bought)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.savefig(path)
    plt.close(fig)


@torch.inference_mode()
def plot_examples(bundle: ModelBundle, test: ImageSet, path: Path, count: int = 6) -> None:
    """LR input, bought HR patches over the upsampled LR, and the two-stream or HR prediction."""
    bundle.eval()
    device = next(bundle.policy.parameters()).device
    norm = Normaliser(bundle.metadata["band_mean"], bundle.metadata["band_std"], device)
    batch = next(iterate(test.subset(slice(0, count)), count, norm, device))
    actions = greedy_actions(torch.sigmoid(bundle.policy(batch.lr)))
    lr_up = upsample(batch.lr, batch.hr.shape[-2:])
    masked = mask_images(batch.hr, actions, bundle.grid, lr_up)
    probs = bundle_probs(bundle, batch.hr, batch.lr, actions)
    names = bundle.class_names
    fig, axes = plt.subplots(2, count, figsize=(2 * count, 4.4), dpi=90)

    def show(ax, x: torch.Tensor) -> None:
        img = x[:3].permute(1, 2, 0) if x.shape[0] >= 3 else x[0]
        img = (img - img.min()) / (img.max() - img.min() + 1e-6)
        ax.imshow(img.cpu(), cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])

    for i in range(count):
        show(axes[0, i], lr_up[i])
        axes[0, i].set_title(f"LR: {names[batch.labels[i]]}", fontsize=7)
        show(axes[1, i], masked[i])
        pred = int(probs[i].argmax())
        axes[1, i].set_title(f"{int(actions[i].sum())} patches -> {names[pred]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_markdown(report: dict[str, Any], path: Path, title: str, extra: str = "") -> None:
    has_cov = any("item_coverage" in m for m in report["methods"].values())
    head = "| method | accuracy (%) | SE | mean patches S |" + (" item coverage (%) |" if has_cov else "")
    lines = [f"# {title}", "", head, "|---|---|---|---|" + ("---|" if has_cov else "")]
    for name, m in report["methods"].items():
        row = f"| {name} | {m['accuracy']:.2f} | {m['se']:.2f} | {m['patches']:.2f} |"
        if has_cov:
            row += f" {m.get('item_coverage', float('nan')):.1f} |"
        lines.append(row)
    lines += ["", "## Budget sweep (accuracy % ± SE at exactly k patches)", ""]
    methods = list(report["sweep"])
    lines.append("| k | " + " | ".join(methods) + " |")
    lines.append("|---|" + "---|" * len(methods))
    budgets = sorted({int(k) for by_k in report["sweep"].values() for k in by_k})

    def cell(method: str, k: int) -> str:
        by_k = report["sweep"][method]
        m = by_k.get(k, by_k.get(str(k)))
        return "" if m is None else f"{m['accuracy']:.2f} ± {m['se']:.2f}"

    for k in budgets:
        lines.append(f"| {k} | " + " | ".join(cell(m, k) for m in methods) + " |")
    lines += ["", extra]
    path.write_text("\n".join(lines) + "\n")


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
