"""Issue 15: PatchDrop against the fairly trained baselines, from a benchmark's report.json.

    python benchmarks/fair_comparison.py benchmarks/reports/fashion_mnist/report.json

Prints Markdown: every method at PatchDrop's budgets, the budget sweep k = 2..8 with the
LR classifier on it, and the paper's claims and our goals, each met, missed or a tie.
Accuracies are on the test split, ± one binomial standard error. A difference between two
methods has SE sqrt(SE1^2 + SE2^2) (as if independent; both are scored on the same images,
so this overstates it a little), and it is a **tie** when smaller than two of those SEs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FAIR = ("Fixed-H", "Fixed-V", "Stochastic")
TIE_SES = 2.0


def diff(a: dict[str, float], b: dict[str, float]) -> tuple[float, float]:
    return a["accuracy"] - b["accuracy"], (a["se"] ** 2 + b["se"] ** 2) ** 0.5


def verdict(d: float, se: float, need: float = 0.0) -> str:
    """'met' / 'missed' for ``d >= need``, a tie when d - need is within the noise."""
    if abs(d - need) < TIE_SES * se:
        return "tie (within noise)" if need == 0 else f"not shown (within noise of +{need:g})"
    return "met" if d >= need else "missed"


def fmt(m: dict[str, float] | None) -> str:
    return "" if m is None else f"{m['accuracy']:.2f} ± {m['se']:.2f}"


def fmt_diff(d: float, se: float) -> str:
    return f"{d:+.2f} ± {se:.2f}"


def at_k(report: dict[str, Any], method: str, k: int) -> dict[str, float] | None:
    by_k = report["sweep"].get(method)
    return None if by_k is None else by_k.get(str(k), by_k.get(k))


def baselines_at(m: dict[str, Any], stage: str) -> Iterator[tuple[str, float, float]]:
    """Each fair baseline (single- and two-stream) run at PatchDrop ``stage``'s S: label, ``stage`` minus it, SE."""
    for base in (*FAIR, "STN"):
        for label in (f"{base} @ S({stage})", f"{base} (two-stream) @ S({stage})"):
            if label in m:
                yield (label, *diff(m[stage], m[label]))


def methods_table(report: dict[str, Any]) -> list[str]:
    m = report["methods"]
    lines = ["| method | accuracy % ± SE | mean patches S | vs PatchDrop at the same S |", "|---|---|---|---|"]
    for name in ("HR", "LR", "LR (KD)"):
        if name in m:
            ref = m.get("Ft-2")
            extra = "" if ref is None or name == "HR" else f"Ft-2 {fmt_diff(*diff(ref, m[name]))}"
            lines.append(f"| {name} | {fmt(m[name])} | {m[name]['patches']:.2f} | {extra} |")
    for stage in ("Ft-1", "Ft-2"):
        if stage not in m:
            continue
        lines.append(f"| **PatchDrop {stage}** | **{fmt(m[stage])}** | {m[stage]['patches']:.2f} | |")
        for label, d, se in baselines_at(m, stage):
            lines.append(f"| {label} | {fmt(m[label])} | {m[label]['patches']:.2f} | "
                         f"{stage} {fmt_diff(d, se)}: {verdict(d, se)} |")  # fmt: skip
    for name in ("Oracle (item patches)", "PatchDrop Ft-1 @ S(Oracle)"):
        if name in m:
            lines.append(f"| {name} | {fmt(m[name])} | {m[name]['patches']:.2f} | |")
    return lines


def sweep_table(report: dict[str, Any], ks: range = range(2, 9)) -> list[str]:
    sweep = report["sweep"]
    single = [b for b in (*FAIR, "STN") if b in sweep]
    two = [f"{b} (two-stream)" for b in FAIR if f"{b} (two-stream)" in sweep]
    cols = ["PatchDrop Ft-1", "PatchDrop Ft-2", *single, *two]
    cols = [c for c in cols if c in sweep]
    lines = ["| k | LR | " + " | ".join(cols) + " | PatchDrop − best baseline |", "|---|" + "---|" * (len(cols) + 2)]
    lr = report["methods"]["LR"]
    for k in ks:
        pd = max((at_k(report, c, k) for c in ("PatchDrop Ft-1", "PatchDrop Ft-2") if c in sweep),
                 key=lambda x: x["accuracy"])  # fmt: skip
        best = max((at_k(report, c, k) for c in (*single, *two)), key=lambda x: x["accuracy"])
        d, se = diff(pd, best)
        cells = " | ".join(fmt(at_k(report, c, k)) for c in cols)
        lines.append(f"| {k} | {fmt(lr)} | {cells} | {fmt_diff(d, se)}: {verdict(d, se)} |")
    return lines


def claims(report: dict[str, Any]) -> list[str]:
    m, sweep = report["methods"], report["sweep"]
    out = []
    hr = m["HR"]
    for stage in ("Ft-1", "Ft-2"):
        if stage in m and m[stage]["patches"] <= 6.4:
            d, se = diff(m[stage], hr)
            out.append(f"- Goal: {stage} within 0.5 pt of HR at S ≤ 6.4 (S = {m[stage]['patches']:.2f}): "
                       f"{fmt_diff(d, se)} → {'met' if d >= -0.5 else 'missed'}")  # fmt: skip
    for stage in ("Ft-1", "Ft-2"):
        if stage not in m:
            continue
        for label, d, se in baselines_at(m, stage):
            out.append(f"- {stage} ≥ 2 pt above {label}: {fmt_diff(d, se)} → {verdict(d, se, 2.0)}; "
                       f"ahead at all: {verdict(d, se)}")  # fmt: skip
    if "Ft-2" in m:
        for name in ("LR", "LR (KD)"):
            if name in m:
                d, se = diff(m["Ft-2"], m[name])
                out.append(f"- Paper: PatchDrop Ft-2 beats the {name} classifier: {fmt_diff(d, se)} → {verdict(d, se)}")
    if "LR (KD)" in m:
        d, se = diff(m["LR (KD)"], m["LR"])
        out.append(f"- Paper: KD improves the LR classifier: {fmt_diff(d, se)} → {verdict(d, se)}")
    for base in FAIR:
        full = at_k(report, base, 16)
        if full is not None:
            d = full["accuracy"] - hr["accuracy"]
            out.append(f"- {base} with all 16 patches within 1 pt of HR: {full['accuracy']:.2f} vs "
                       f"{hr['accuracy']:.2f} ({d:+.2f}) → {'met' if d >= -1.0 else 'missed'}")  # fmt: skip
    for a, b in (("Hard positives", "CutOut"), ("Hard positives", "Control (same epochs, full images)"),
                 ("Hard positives (LR-filled)", "CutOut (LR-filled)"), ("CutOut", "Control (same epochs, full images)")):  # fmt: skip
        if a in m and b in m:
            d, se = diff(m[a], m[b])
            out.append(f"- Paper: {a} better than {b} (full HR test images): {fmt_diff(d, se)} → {verdict(d, se)}")
    if "Oracle (item patches)" in m and "PatchDrop Ft-1 @ S(Oracle)" in m:
        d, se = diff(m["PatchDrop Ft-1 @ S(Oracle)"], m["Oracle (item patches)"])
        out.append(f"- Goal: at least the oracle at the oracle's S: {fmt_diff(d, se)} → "
                   f"{'met' if d >= 0 else 'tie (within noise)' if abs(d) < TIE_SES * se else 'missed'}")  # fmt: skip
    if "PatchDrop Ft-1" in sweep:
        behind = []
        for k in range(2, 9):
            pd = max((at_k(report, c, k) for c in ("PatchDrop Ft-1", "PatchDrop Ft-2") if c in sweep),
                     key=lambda x: x["accuracy"])  # fmt: skip
            for base in [b for b in sweep if b.split(" (")[0] in (*FAIR, "STN")]:
                d, se = diff(pd, at_k(report, base, k))
                if verdict(d, se) != "met":
                    behind.append(f"k={k} {base} {fmt_diff(d, se)}")
        out.append("- PatchDrop's curve above every fair baseline for k = 2..8: "
                   + ("met" if not behind else "not everywhere: " + "; ".join(behind)))  # fmt: skip
    return out


def render(report: dict[str, Any]) -> str:
    parts = ["At PatchDrop's budgets (test split):", "", *methods_table(report), "",
             "Budget sweep, exactly k patches (test split; two-stream = fused with the LR classifier by "
             f"the `{report.get('two_stream_rule', 'paper')}` rule of `models/nn/fusion.py`):", "",
             *sweep_table(report), "", "Claims and goals (tie: difference under two SEs of the difference):", "",
             *claims(report)]  # fmt: skip
    buys = report.get("baselines_buy") or {}
    if buys:
        parts += ["", "What each baseline buys first (row-major ids):", ""]
        parts += [f"- {k}: {v}" for k, v in buys.items()]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    print(render(json.loads(args.report.read_text())), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
