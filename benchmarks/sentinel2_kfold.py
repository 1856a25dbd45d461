"""Spatial k-fold for the default model's recipe: the served sweep on three held-out strips of the scene.

    python benchmarks/sentinel2_kfold.py --data-root data/s2_chips --out runs/s2_kfold --folds 1 2 --train
    python benchmarks/sentinel2_kfold.py --data-root data/s2_chips --out runs/s2_kfold --folds 1 2

The test strip of the shipped model is 540 chips: one chip is 0.19 pt and a difference
of 1 pt is inside the noise. Folds hold out other strips of the same scene:

- fold 0 is the shipped model (``models/assets/default.pt``) on its own test strip (tile rows 0-8, validation
  rows 10-18, trained on rows 20-59);
- fold f (1, 2): test = tile rows 20f..20f+8, validation = rows 20f+10..20f+18, train = every
  other row except those next to a test or validation strip (the buffer the chip builder
  leaves between its strips). Each fold trains the shipped model's recipe
  (``benchmarks/configs/sentinel2_default.json``: the HR and LR classifiers, then Pt's policy,
  then the ``lr-kd`` stage's LR classifier) and serves them by the paper's S/P rule
  (``python -m models.train serve``), as the shipped model is built and served.

Pooled figures concatenate every fold's per-chip correctness (1,620 test chips): accuracy
± binomial SE per budget k = 0..16; differences (k against the best smaller k, k = 16
against the HR classifier, the policy's own budget against v1) ± paired SE.

v1 (``sentinel2-demo-v1``, Ft-1 served from the HR stream alone) was trained on every strip but
fold 0's, so it is compared on fold 0 only (``--previous``). Over all three strips the comparison is
recipe against recipe: v1's recipe (``benchmarks/configs/sentinel2_v1.json``, v1's checkpoint's own
settings: classifiers, Pt, Ft-1) retrained by this code on each fold's split, fold 0's included
(``--previous-runs DIR`` reads ``DIR/fold<f>/ft1.pt``; ``--train-previous`` trains them first), against
the shipped recipe (on fold 0, the shipped model is that recipe's output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from results_md import REPO, Benchmark, git_commit, write_section  # benchmarks/ is on sys.path as a script
from sentinel2_default import budget_checks, budget_entries, classifiers, entry, paired, per_chip

from models.datasets.chips import SPLITS_FILE, load_chip_splits, scan_chip_folder
from models.nn.checkpoint import ModelBundle, load_bundle
from models.train import serve

ROWS_PER_STRIP = 9
CONFIG = REPO / "benchmarks" / "configs" / "sentinel2_default.json"
V1_CONFIG = REPO / "benchmarks" / "configs" / "sentinel2_v1.json"
V1_STAGES = ("classifiers", "pt", "ft1")
OTHERS = ("v1", "v1_recipe")  # compared at each policy's own budget: the shipped v1, its recipe retrained
BENCH = Benchmark("sentinel2_kfold")


def chip_row(rel: str, chip_px: int = 32) -> int:
    return int(re.search(r"_r(\d+)_c", rel).group(1)) // chip_px


def fold_splits(rels: list[str], fold: int) -> dict[str, list[str]]:
    """Fold ``fold``'s assignment of the chips (paths relative to the chip folder) by tile row."""
    test = set(range(20 * fold, 20 * fold + ROWS_PER_STRIP))
    val = set(range(20 * fold + 10, 20 * fold + 10 + ROWS_PER_STRIP))
    held = test | val
    buffer = {r + d for r in held for d in (-1, 1)} - held
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for rel in rels:
        r = chip_row(rel)
        if r in test:
            out["test"].append(rel)
        elif r in val:
            out["val"].append(rel)
        elif r not in buffer:
            out["train"].append(rel)
    return out


def make_fold(data_root: Path, out: Path, fold: int) -> Path:
    """A chip folder for the fold: the class folders linked, and the fold's ``splits.json``."""
    chips = out / f"fold{fold}" / "chips"
    chips.mkdir(parents=True, exist_ok=True)
    class_names, listed = scan_chip_folder(data_root)
    for name in class_names:
        link = chips / name
        if not link.exists():
            link.symlink_to((data_root / name).resolve(), target_is_directory=True)
    (chips / SPLITS_FILE).write_text(json.dumps(fold_splits([rel for rel, _ in listed], fold), indent=0) + "\n")
    return chips


def train_stages(chips: Path, run: Path, config: Path, stages: tuple[str, ...], threads: int) -> None:
    for stage in stages:
        cmd = [sys.executable, "-m", "models.train", stage, "--benchmark", "chips", "--data-root", str(chips),
               "--out", str(run), "--config", str(config), "--threads", str(threads)]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True)


def train_fold(chips: Path, run: Path, threads: int) -> None:
    """The shipped model's recipe on the fold: classifiers, Pt, the LR classifier with KD, served."""
    train_stages(chips, run, CONFIG, ("classifiers", "pt", "lr-kd"), threads)
    serve(run, run / "served.pt", "lr-kd.pt")


def evaluate_fold(chips: Path, served_path: Path, others: dict[str, Path]) -> dict[str, Any]:
    """Per-chip correctness of the fold's served model, its HR and LR classifiers on its test strip, and
    at each policy's own budget of ``others`` (``"v1"``: the shipped v1; ``"v1_recipe"``: its recipe retrained).

    The served bundle holds the fold's HR classifier and served LR classifier (``serve``).
    """
    test = load_chip_splits(chips, lr_factor=4, seed=0).test
    served = load_bundle(served_path)
    hr, lr = classifiers(served, test)
    s = per_chip(served, test)
    cfg = served.metadata.get("config") or {}
    # The recipe settings this fold's model was trained with, as its checkpoint records them.
    trained_with = {k: cfg.get(k) for k in ("cls_epochs", "lr_cls_epochs", "cls_keep", "pt_epochs", "sigma_pt", "seed")}
    trained_with["served_lr_classifier"] = served.metadata.get("lr_classifier")  # the lr-kd stage's, via serve
    out = {"test_chips": len(test), "hr": hr, "lr": lr, "trained_with": trained_with, **s}
    for name, path in others.items():
        bundle = load_bundle(path)
        if name == "v1_recipe":
            check_v1_recipe(bundle, path)
        r = per_chip(bundle, test)
        out[f"{name}_greedy"], out[f"{name}_patches"] = r["greedy"], r["patches"]
    return out


def check_v1_recipe(bundle: ModelBundle, path: Path) -> None:
    """Refuse a "v1 recipe" bundle that was not trained as ``V1_CONFIG`` and ``V1_STAGES`` say."""
    wanted = json.loads(V1_CONFIG.read_text())
    cfg = bundle.metadata.get("config") or {}
    wrong = {k: (cfg.get(k), v) for k, v in wanted.items() if cfg.get(k) != v}
    if wrong or bundle.metadata.get("stage") != V1_STAGES[-1]:
        raise SystemExit(f"{path} was not trained by {V1_CONFIG.name} ({V1_STAGES[-1]}): (had, wanted) {wrong}")


def pooled(folds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The folds' per-chip results as one set of test chips (another model's only where every fold has it)."""
    chips = sum(f["test_chips"] for f in folds.values())
    others = [name for name in OTHERS if all(f"{name}_greedy" in f for f in folds.values())]
    keys = ("hr", "lr", "greedy", *(f"{name}_greedy" for name in others))
    means = ("patches", *(f"{name}_patches" for name in others))
    return {
        "test_chips": chips,
        **{key: sum(f[key] * f["test_chips"] for f in folds.values()) / chips for key in means},
        **{key: torch.cat([f[key] for f in folds.values()]) for key in keys},
        "sweep": {k: torch.cat([f["sweep"][k] for f in folds.values()]) for k in range(17)},
    }


def summary(f: dict[str, Any]) -> dict[str, Any]:
    """Accuracies ± SE and the issue's paired checks for per-chip results (one fold, or all pooled)."""
    out = {
        "test_chips": f["test_chips"],
        **({"trained_with": f["trained_with"]} if "trained_with" in f else {}),
        "HR": entry(f["hr"], 16.0),
        "LR": entry(f["lr"], 0.0),
        "served": budget_entries(f),
        "checks": {**budget_checks(f["sweep"], f["hr"], f["lr"]), "HR_minus_LR": paired(f["hr"], f["lr"])},
    }
    for name in OTHERS:
        if f"{name}_greedy" in f:
            out[f"{name}_policy_budget"] = entry(f[f"{name}_greedy"], f[f"{name}_patches"])
            out["checks"][f"served_minus_{name}_at_own_budgets"] = paired(f["greedy"], f[f"{name}_greedy"])
    if all(f"{name}_greedy" in f for name in OTHERS):  # how far a retrain of v1's settings moves its figure
        out["checks"]["v1_recipe_minus_v1"] = paired(f["v1_recipe_greedy"], f["v1_greedy"])
    return out


def section(result: dict[str, Any]) -> list[str]:
    p = result["pooled"]
    start, end = BENCH.markers
    sw = p["served"]["sweep"]
    mono = p["checks"]["monotonicity"]["worst"]
    k16, hl = p["checks"]["k16_minus_HR"], p["checks"]["HR_minus_LR"]
    lines = [
        start,
        "## Default Sentinel-2 model: spatial k-fold (issue 14)",
        "",
        "The shipped recipe (HR and LR classifiers, Pt's policy, the `lr-kd` stage's LR classifier, served by the "
        "paper's S/P rule) on three held-out strips "
        f"of the scene instead of one: fold 0 is `{result['shipped']}` itself on its test strip; folds 1 and 2 "
        f"retrain the same recipe (`{result['recipe']}`) with another strip held out for test and the next one "
        "for validation (`benchmarks/sentinel2_kfold.py`). Accuracy % ± binomial SE; differences ± paired SE.",
        "",
        f"`{result['command']}` — {result['date']}, commit `{result['commit'][:12]}`.",
        "",
        "| fold (test rows) | chips | LR | HR | policy's budget (S) | worst drop vs a smaller k |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in result["folds"].items():
        w = f["checks"]["monotonicity"]["worst"]
        pb = f["served"]["policy_budget"]
        lines.append(
            f"| {name} | {f['test_chips']} | {f['LR']['accuracy']:.2f} ± {f['LR']['se']:.2f} | "
            f"{f['HR']['accuracy']:.2f} ± {f['HR']['se']:.2f} | {pb['accuracy']:.2f} ± {pb['se']:.2f} "
            f"({pb['patches']:.2f}) | {w['diff']:+.2f} ± {w['se']:.2f} (k = {w['k']} vs {w['best_smaller_k']}) |"
        )
    lines += [
        "",
        f"Pooled ({p['test_chips']} chips), the served sweep:",
        "",
        "| k | " + " | ".join(str(k) for k in range(17)) + " |",
        "|---" * 18 + "|",
        "| % | " + " | ".join(f"{sw[str(k)]['accuracy']:.2f}" for k in range(17)) + " |",
        "| SE | " + " | ".join(f"{sw[str(k)]['se']:.2f}" for k in range(17)) + " |",
        "",
        f"- k = 16 within 0.5 pt of the HR classifier: {k16['diff']:+.2f} ± {k16['se']:.2f} → "
        + ("**met**" if k16["diff"] >= -0.5 else "**missed**")
        + (" (identical by the S/P rule)" if k16["se"] == 0 else ""),
        f"- no budget more than 1 pt below the best smaller one: worst {mono['diff']:+.2f} ± {mono['se']:.2f} "
        f"(k = {mono['k']} vs {mono['best_smaller_k']}) → " + ("**met**" if mono["diff"] >= -1.0 else "**missed**"),
        f"- what HR buys on this scene: HR − LR {hl['diff']:+.2f} ± {hl['se']:.2f} pt (pooled)",
    ]
    lines += _v1_lines(result)
    lines += ["", end]
    return lines


def _v1_lines(result: dict[str, Any]) -> list[str]:
    """Each policy's own budget against v1's: the shipped v1 (fold 0) and v1's recipe retrained (every fold)."""

    def own(name: str, f: dict[str, Any]) -> str:
        d, v1 = f["checks"][f"served_minus_{name}_at_own_budgets"], f[f"{name}_policy_budget"]
        return f"{d['diff']:+.2f} ± {d['se']:.2f} (v1 {v1['accuracy']:.2f} at {v1['patches']:.2f} patches)"

    def verdict(d: dict[str, float]) -> str:
        return "a tie within 2 SE" if abs(d["diff"]) <= 2 * d["se"] else ("ahead" if d["diff"] > 0 else "**behind**")

    lines = []
    fold0 = result["folds"].get("0 (rows 0-8)", {})
    if "v1_policy_budget" in fold0:
        lines.append(
            f"- {result['shipped']} − the shipped v1 at each policy's own budget (fold 0, the only strip v1 was not "
            f"trained on): {own('v1', fold0)}: {verdict(fold0['checks']['served_minus_v1_at_own_budgets'])}"
        )
    p = result["pooled"]
    if "v1_recipe_policy_budget" in p:
        d, ours = p["checks"]["served_minus_v1_recipe_at_own_budgets"], p["served"]["policy_budget"]
        per_fold = "; ".join(f"fold {name.split()[0]} {own('v1_recipe', f)}" for name, f in result["folds"].items())
        lines.append(
            f"- the shipped recipe − v1's recipe (`{result['v1_recipe']}`, retrained on every fold's split) at each "
            f"policy's own budget, pooled: {own('v1_recipe', p)}, ours {ours['accuracy']:.2f} at "
            f"{ours['patches']:.2f} patches: {verdict(d)}; per fold {per_fold}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder of the folds' chip lists and runs")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument(
        "--train",
        action="store_true",
        help="train each fold's recipe first (about 3 min a fold on the 2-core machine alone)",
    )
    parser.add_argument("--shipped", type=Path, default=REPO / "models" / "assets" / "default.pt")
    parser.add_argument("--previous", type=Path, default=None, help="fold 0: v1, for the own-budget comparison")
    parser.add_argument(
        "--previous-runs",
        type=Path,
        default=None,
        help="v1's recipe retrained per fold (fold 0 included), DIR/fold<f>/ft1.pt, for the own-budget comparison",
    )
    parser.add_argument("--train-previous", action="store_true", help="train v1's recipe per fold first")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.train_previous and args.previous_runs is None:
        parser.error("--train-previous needs --previous-runs DIR")
    if args.previous_runs is not None and not args.train_previous:
        missing = [f for f in (0, *args.folds) if not (args.previous_runs / f"fold{f}" / "ft1.pt").is_file()]
        if missing:
            parser.error(f"no ft1.pt under {args.previous_runs} for folds {missing} (add --train-previous)")
    torch.set_num_threads(args.threads)
    command = "python benchmarks/sentinel2_kfold.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    folds: dict[str, dict[str, Any]] = {}
    raw: dict[int, dict[str, Any]] = {}

    def v1_recipe(chips: Path, fold: int) -> dict[str, Path]:
        if args.previous_runs is None:
            return {}
        run = args.previous_runs / f"fold{fold}"
        if args.train_previous:
            train_stages(chips, run, V1_CONFIG, V1_STAGES, args.threads)
        return {"v1_recipe": run / "ft1.pt"}

    shipped_v1 = {"v1": args.previous} if args.previous else {}
    raw[0] = evaluate_fold(args.data_root, args.shipped, {**shipped_v1, **v1_recipe(args.data_root, 0)})
    folds["0 (rows 0-8)"] = summary(raw[0])
    for f in args.folds:
        chips = make_fold(args.data_root, args.out, f)
        run = args.out / f"fold{f}"
        if args.train:
            train_fold(chips, run, args.threads)
        raw[f] = evaluate_fold(chips, run / "served.pt", v1_recipe(chips, f))
        folds[f"{f} (rows {20 * f}-{20 * f + ROWS_PER_STRIP - 1})"] = summary(raw[f])
    result = {
        "pooled": summary(pooled(raw)),
        "folds": folds,
        "shipped": load_bundle(args.shipped).metadata.get("model_id", str(args.shipped)),
        "recipe": str(CONFIG.relative_to(REPO)),
        "v1_recipe": str(V1_CONFIG.relative_to(REPO)),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": command,
    }
    BENCH.json.write_text(json.dumps(result, indent=1) + "\n")
    lines = section(result)
    write_section(lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
