"""Offline training CLI: one subcommand per stage, and ``chain`` for the whole benchmark.

    python -m models.train chain --benchmark fashion_mnist --out runs/fmnist

Each stage reads the previous stage's bundle from ``--out`` and writes its own:
classifiers.pt -> pt.pt -> ft1.pt -> ft2.pt; baseline-<name>.pt (Fixed-H, Fixed-V, Stochastic,
Random), baseline-stn.pt (STN), lr-kd.pt (LR classifier with KD); hard positives and CutOut; then a report.
``serve`` builds a served bundle from a run (Pt's policy, the classifiers, the S/P rule).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from models.datasets.base import Splits
from models.errors import CheckpointError, PatchDropError
from models.nn.checkpoint import ModelBundle, build_bundle, git_commit, load_bundle, save_bundle
from models.nn.device import choose_device
from models.nn.policy import BASELINE_BUYS
from models.training import evaluate as ev
from models.training import stages
from models.training.config import TrainConfig

log = logging.getLogger("patchdrop.train")
STAGE_FILES = {"Pt": "pt.pt", "Ft-1": "ft1.pt", "Ft-2": "ft2.pt"}
BASELINE_NAMES = {"fixed-h": "Fixed-H", "fixed-v": "Fixed-V", "stochastic": "Stochastic", "random": "Random"}


def load_benchmark(name: str, data_root: Path | None, seed: int, subset: int | None) -> Splits:
    if name in ("fashion_mnist", "scattered_fashion_mnist"):
        from models.datasets.fashion_mnist import BENCHMARKS, DEFAULT_ROOT

        splits = BENCHMARKS[name](data_root or DEFAULT_ROOT, seed=seed)
    elif name == "chips":
        from models.datasets.chips import load_chip_splits

        if data_root is None:
            raise SystemExit("--data-root is required for --benchmark chips")
        splits = load_chip_splits(data_root, lr_factor=4, seed=seed)
    else:
        raise SystemExit(f"unknown benchmark {name!r}")
    if subset:
        splits = Splits(*(s.subset(slice(0, subset)) for s in (splits.train, splits.val, splits.test)))
    return splits


class Run:
    """One benchmark's output folder, its data and its settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        overrides = {k: getattr(args, k, None) for k in ("seed", "device", "threads")}
        self.cfg = TrainConfig.from_json(args.config, **overrides)
        for kv in args.set or []:
            key, _, text = kv.partition("=")
            value = TrainConfig.setting_from_text(key, text)
            # rebuilt, so the setting is checked as a config file's would be
            self.cfg = TrainConfig(**{**self.cfg.to_dict(), key: value})
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)
        self.device = choose_device(self.cfg.device)
        self.benchmark = args.benchmark
        handler = logging.FileHandler(self.out / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
        t = time.time()
        self.splits = load_benchmark(args.benchmark, args.data_root, self.cfg.seed, args.subset)
        log.info(
            "loaded %s: %d/%d/%d images in %.1fs",
            args.benchmark,
            len(self.splits.train),
            len(self.splits.val),
            len(self.splits.test),
            time.time() - t,
        )

    def path(self, name: str) -> Path:
        return self.out / name

    def context(self, bundle: ModelBundle, *, distill: bool = False) -> stages.Context:
        """A stage's context; ``distill`` adds the pretrained HR classifier as a frozen teacher."""
        teacher = None
        if distill and self.cfg.distill > 0:
            teacher = self.load("classifiers.pt").hr_classifier.eval().requires_grad_(False)
        return stages.Context(bundle.to(self.device), self.splits, self.cfg, self.device, teacher)

    def load(self, name: str) -> ModelBundle:
        return load_bundle(self.path(name), map_location=self.device)

    def save(self, bundle: ModelBundle, name: str, stage: str, metrics: dict[str, Any], seconds: float) -> None:
        meta = bundle.metadata
        meta.update(
            stage=stage,
            model_id=f"{self.benchmark}-{stage}",
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            git_commit=git_commit(),
            config=self.cfg.to_dict(),
        )
        meta.setdefault("metrics", {})[stage] = {**metrics, "seconds": round(seconds, 1)}
        save_bundle(bundle, self.path(name))
        log.info("wrote %s (%s, %.0fs)", self.path(name), metrics, seconds)


def cmd_classifiers(run: Run) -> None:
    train = run.splits.train
    mean, std = train.band_statistics()
    cfg = run.cfg
    bundle = build_bundle(
        class_names=train.class_names, bands=train.bands, band_mean=mean, band_std=std,
        hr_size=train.hr_size, lr_size=train.lr_size,
        policy_depth=cfg.policy_depth, policy_width=cfg.policy_width,
        classifier_depth=cfg.classifier_depth, classifier_width=cfg.classifier_width,
        classifier_stem_stride=cfg.classifier_stem_stride, fill=cfg.fill,
        training_data={"benchmark": run.benchmark, "train": len(train), "val": len(run.splits.val),
                       "test": len(run.splits.test), "seed": cfg.seed, **train.info},
    )  # fmt: skip
    bundle.metadata["training_data"] = json.loads(json.dumps(bundle.metadata["training_data"], default=str))
    if run.benchmark == "chips":
        from models.geo.raster import pixel_size

        first = next(iter(sorted(Path(train.info["root"]).glob("*/*.tif"))))
        hr_res = pixel_size(first)[0]
        bundle.metadata.update(hr_pixel_size=hr_res, lr_pixel_size=hr_res * train.lr_factor)
    t = time.time()
    metrics = stages.pretrain_classifiers(run.context(bundle))
    run.save(bundle, "classifiers.pt", "classifiers", metrics, time.time() - t)


def _agent_stage(run: Run, stage: str, source: str, target: str) -> None:
    bundle = run.load(source)
    bundle.metadata["fusion"] = stages.stage_fusion(run.cfg, stage)
    t = time.time()
    metrics = stages.train_agent(run.context(bundle, distill=stage != "pt"), stage)
    run.save(bundle, target, stage, metrics, time.time() - t)


def cmd_pt(run: Run) -> None:
    _agent_stage(run, "pt", "classifiers.pt", "pt.pt")


def cmd_ft1(run: Run) -> None:
    _agent_stage(run, "ft1", "pt.pt", "ft1.pt")


def cmd_ft2(run: Run) -> None:
    _agent_stage(run, "ft2", "ft1.pt", "ft2.pt")


def _patchdrop_budgets(run: Run) -> dict[str, float]:
    """Mean S of Ft-1 and Ft-2 on validation, as their bundles recorded it."""
    budgets = {}
    for stage, f in (("Ft-1", "ft1.pt"), ("Ft-2", "ft2.pt")):
        if run.path(f).exists():
            meta = run.load(f).metadata
            budgets[stage] = meta["metrics"][meta["stage"]]["patches"]
    if not budgets:
        raise SystemExit("run ft1 (and ft2) first: baselines are trained at PatchDrop's budgets")
    return budgets


def cmd_baselines(run: Run, names: list[str]) -> None:
    """Each baseline's classifier finetuned on its own masks in PatchDrop's budget regime.

    Mean budget: the mean of Ft-1's and Ft-2's S; with ``budget_mix`` also every k (see
    ``stages.finetune_baseline``), so each baseline is trained for the k it is tested at.
    """
    budgets = _patchdrop_budgets(run)
    mean_patches = sum(budgets.values()) / len(budgets)
    for name in names:
        bundle = run.load("classifiers.pt")
        t = time.time()
        metrics = stages.finetune_baseline(run.context(bundle, distill=True), name, mean_patches)
        bundle.metadata["baseline"] = {
            "name": name, "mean_patches": mean_patches, "buys": BASELINE_BUYS[name],
            "budget_mix": run.cfg.budget_mix, "budget_k_min": run.cfg.budget_k_min,
            "epochs": run.cfg.baseline_epochs or run.cfg.ft1_epochs,
        }  # fmt: skip
        run.save(bundle, f"baseline-{name}.pt", f"baseline-{name}", metrics, time.time() - t)


def cmd_stn(run: Run) -> None:
    """The STN baseline: a zoom window of S(Ft-1) patches' area, placed by a localisation network."""
    from models.nn.stn import build_locator, window_side

    s_ft1 = _patchdrop_budgets(run).get("Ft-1")
    if s_ft1 is None:
        raise SystemExit("run ft1 first: the STN zooms on S(Ft-1) patches' area")
    bundle = run.load("classifiers.pt")
    cfg = run.cfg
    locator = build_locator(len(bundle.bands), cfg.policy_depth, cfg.policy_width)
    bundle.policy = locator
    bundle.metadata["architecture"]["policy"] = locator.config.to_dict()
    side = window_side(s_ft1, bundle.grid.num_patches)
    ctx = run.context(bundle, distill=True)
    t = time.time()
    metrics = stages.train_stn(ctx, bundle.policy, side, s_ft1)
    bundle.metadata["stn"] = {"side": side, "mean_patches": s_ft1, "budget_mix": cfg.budget_mix,
                              "epochs": cfg.baseline_epochs or cfg.ft1_epochs}  # fmt: skip
    run.save(bundle, "baseline-stn.pt", "baseline-stn", metrics, time.time() - t)


def cmd_lr_kd(run: Run) -> None:
    """The LR classifier improved by knowledge distillation from the HR classifier (the paper's KD)."""
    bundle = run.load("classifiers.pt")
    teacher = run.load("classifiers.pt").hr_classifier.eval().requires_grad_(False)
    ctx = stages.Context(bundle.to(run.device), run.splits, run.cfg, run.device, teacher)
    t = time.time()
    metrics = stages.train_lr_kd(ctx)
    bundle.metadata["lr_kd"] = {"weight": run.cfg.lr_kd_weight, "temperature": run.cfg.distill_temperature,
                                "epochs": run.cfg.lr_cls_epochs}  # fmt: skip
    run.save(bundle, "lr-kd.pt", "lr-kd", metrics, time.time() - t)


# Augmentation runs of ``hard-positives``: (report label, mode, fill). The paper zeroes hidden patches.
AUGMENTATIONS = (
    ("Hard positives", "hard-positives", "zeros"),
    ("Hard positives (LR-filled)", "hard-positives", "lr"),
    ("CutOut", "cutout", "zeros"),
    ("CutOut (LR-filled)", "cutout", "lr"),
    ("Control (same epochs, full images)", "control", "lr"),
)


def cmd_hard_positives(run: Run) -> dict[str, Any]:
    """Finetune the HR classifier with hard positives, with CutOut, and without; test on full HR images."""
    policy = run.load("ft1.pt").policy
    out = {}
    n = len(run.splits.test)
    for label, mode, fill in AUGMENTATIONS:
        bundle = run.load("classifiers.pt")
        ctx = run.context(bundle)
        t = time.time()
        val = stages.augment_finetune(ctx, policy if mode == "hard-positives" else None, mode, fill)
        test_acc = stages.accuracy(ctx, bundle.hr_classifier, run.splits.test, lambda b: b.hr)
        out[label] = {"accuracy": round(100 * test_acc, 2), "se": ev.binomial_se(test_acc, n), "patches": 16.0,
                      "val_accuracy": round(100 * val["acc"], 2), "mode": mode, "fill": fill,
                      "epochs": run.cfg.hard_positive_epochs, "seconds": round(time.time() - t, 1)}  # fmt: skip
        log.info("%s: %s", label, out[label])
    ev.write_json(out, run.path("hard_positives.json"))
    return out


def cmd_evaluate(run: Run, results_json: Path | None, command: str) -> dict[str, Any]:
    t = time.time()
    models = ev.Models(
        classifiers=run.load("classifiers.pt"),
        stages={k: run.load(f) for k, f in STAGE_FILES.items() if run.path(f).exists()},
        baselines={
            label: run.load(f"baseline-{key}.pt")
            for key, label in BASELINE_NAMES.items()
            if run.path(f"baseline-{key}.pt").exists()
        },
    )
    if run.path("baseline-stn.pt").exists():
        models.stn = run.load("baseline-stn.pt")
    if run.path("lr-kd.pt").exists():
        models.lr_kd = run.load("lr-kd.pt")
    if "Random" not in models.baselines and "Ft-1" in models.stages:
        # Without its own finetuned classifier, Random borrows PatchDrop's and says so.
        models.baselines["Random (Ft-1 classifier)"] = models.stages["Ft-1"]
    report = ev.evaluate(models, run.splits.test, run.cfg.eval_batch, run.cfg.seed, run.device)
    report_dir = run.path("report")
    report_dir.mkdir(exist_ok=True)
    grid = models.classifiers.grid
    title = f"PatchDrop on {run.benchmark} (test split, {len(run.splits.test)} images)"
    ev.plot_sweep(report, report_dir / "accuracy_vs_patches.png", title)
    if report["frequency"]:
        ev.plot_heatmaps(report, grid.rows, grid.cols, report_dir / "patch_heatmap.png")
    if "Ft-2" in models.stages:
        ev.plot_examples(models.stages["Ft-2"], run.splits.test, report_dir / "examples.png")
    timings = {k: b.metadata["metrics"] for k, b in models.stages.items()}
    hp = run.path("hard_positives.json")
    report["hard_positives"] = json.loads(hp.read_text()) if hp.exists() else None
    if report["hard_positives"] and "Hard positives" in report["hard_positives"]:
        for label, m in report["hard_positives"].items():
            report["methods"][label] = {k: m[k] for k in ("accuracy", "se", "patches")}
    report["training"] = {"config": run.cfg.to_dict(), "stage_metrics": timings}
    report["evaluation_seconds"] = round(time.time() - t, 1)
    ev.write_json(report, report_dir / "report.json")
    ev.write_markdown(report, report_dir / "report.md", title, f"Command: `{command}`")
    if results_json:
        flat: dict[str, Any] = {name: m for name, m in report["methods"].items()}
        flat.update(date=dt.date.today().isoformat(), commit=git_commit(), command=command)
        results_json.parent.mkdir(parents=True, exist_ok=True)
        ev.write_json(flat, results_json)
    log.info("evaluation done in %.0fs: %s", time.time() - t, report["methods"])
    return report


def export_best(outs: Path | list[Path], target: Path, model_id: str, notes: str | None = None) -> Path:
    """Copy the finetuned stage with the best validation score to ``target`` as a named model.

    Candidates: Ft-1 and Ft-2 of every run folder in ``outs`` (e.g. variants of one setting).
    The score is the one the stages were selected by (``select`` in the run's config: the
    reward, or the mean accuracy over every budget); validation split only.
    """
    outs = [outs] if isinstance(outs, Path) else outs
    if len(outs) == 1 and outs[0].is_file():
        # One bundle chosen elsewhere (e.g. by benchmarks/sentinel2_default.py --select, on validation):
        # shipped with the fusion rule it was chosen with, which its metadata already says.
        bundle = load_bundle(outs[0])
        bundle.metadata.update(model_id=model_id, exported_from=str(outs[0]))
        if notes:
            bundle.metadata["training_notes"] = notes
        save_bundle(bundle, target)
        log.info("exported %s as %s (%s)", outs[0], target, model_id)
        return target
    candidates = []
    for out in outs:
        for name in ("ft1.pt", "ft2.pt"):
            if (out / name).exists():
                bundle = load_bundle(out / name)
                stage = bundle.metadata["stage"]
                key = "budgets" if bundle.metadata.get("config", {}).get("select") == "budgets" else "reward"
                score = bundle.metadata["metrics"][stage][key]
                log.info("candidate %s: validation %s %.4f", out / name, key, score)
                candidates.append((score, out / name, bundle))
    if not candidates:
        raise SystemExit(f"no ft1.pt or ft2.pt under {', '.join(map(str, outs))}")
    _, path, bundle = max(candidates, key=lambda c: c[0])
    bundle.metadata["fusion"] = stages.stage_fusion(TrainConfig(**bundle.metadata["config"]), bundle.metadata["stage"])
    bundle.metadata.update(model_id=model_id, exported_from=str(path))
    if notes:
        bundle.metadata["training_notes"] = notes
    save_bundle(bundle, target)
    log.info("exported %s as %s (%s)", path, target, model_id)
    return target


def serve(run_dir: Path, to: Path, lr_classifier: str | None = None) -> ModelBundle:
    """The served bundle of a run: Pt's policy and HR classifier with an LR classifier, by the paper's S/P rule.

    Pt trains the policy alone, so its bundle holds the classifiers it was trained beside; the
    S/P rule makes no patches the LR classifier's answer and the whole tile the HR classifier's.
    ``lr_classifier``: a stage checkpoint in ``run_dir`` (e.g. ``lr-kd.pt``) whose LR classifier
    replaces the pretrained one; the policy never sees the LR classifier (Pt scores HR-only), so
    the swap changes only the answers with fewer than all patches.
    """
    bundle = load_bundle(run_dir / "pt.pt")
    bundle.metadata["fusion"] = "paper"
    if lr_classifier:
        donor = load_bundle(run_dir / lr_classifier)
        if bundle.lr_classifier is None or donor.lr_classifier is None:
            raise CheckpointError(f"{run_dir / 'pt.pt'} and {run_dir / lr_classifier} must both hold an LR classifier")
        # The LR classifier answers for the same classes, bands and scaling, and was trained beside the same HR
        # classifier (the lr-kd stage leaves it as classifiers.pt has it, as Pt does): not one from another run.
        same_input = all(
            bundle.metadata.get(k) == donor.metadata.get(k)
            for k in ("class_names", "bands", "band_mean", "band_std", "hr_size", "lr_size")
        )
        ours, theirs = bundle.hr_classifier.state_dict(), donor.hr_classifier.state_dict()
        same_hr = ours.keys() == theirs.keys() and all(
            ours[k].shape == theirs[k].shape and torch.equal(ours[k], theirs[k]) for k in ours
        )
        if not (same_input and same_hr):
            raise CheckpointError(f"{run_dir / lr_classifier} is not from the run of {run_dir / 'pt.pt'}")
        bundle.lr_classifier.load_state_dict(donor.lr_classifier.state_dict())
        meta = donor.metadata
        bundle.metadata["lr_classifier"] = {
            "source": lr_classifier,
            "stage": meta.get("stage"),
            **(meta.get("lr_kd") or {}),
            "validation": (meta.get("metrics") or {}).get(meta.get("stage") or "", {}),
        }
    save_bundle(bundle, to)
    log.info("served bundle %s from %s (LR classifier: %s)", to, run_dir, lr_classifier or "pretrained")
    return bundle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="ship the finetuned stage with the best validation reward")
    exp.add_argument(
        "--out", type=Path, required=True, nargs="+",
        help="run folder(s): candidates are their Ft-1, Ft-2; or one bundle file, shipped as it is",
    )  # fmt: skip
    exp.add_argument("--to", type=Path, required=True, help="target checkpoint path")
    exp.add_argument("--model-id", required=True)
    exp.add_argument("--notes", default=None, help="how the model was trained and chosen, kept in its metadata")
    srv = sub.add_parser(
        "serve", help="Pt's policy and HR classifier with an LR classifier (--lr-classifier), by the S/P rule"
    )
    srv.add_argument("--out", type=Path, required=True, help="run folder holding pt.pt")
    srv.add_argument("--to", type=Path, required=True, help="where to write the served bundle")
    srv.add_argument("--lr-classifier", default=None, help="stage checkpoint in --out whose LR classifier is served")
    for name in ("classifiers", "pt", "ft1", "ft2", "baselines", "stn", "lr-kd", "hard-positives", "evaluate", "chain"):
        p = sub.add_parser(name)
        p.add_argument("--benchmark", required=True, choices=["fashion_mnist", "scattered_fashion_mnist", "chips"])
        p.add_argument("--out", type=Path, required=True, help="run folder holding the stage checkpoints")
        p.add_argument("--data-root", type=Path, default=None)
        p.add_argument("--config", type=Path, default=None, help="JSON file of TrainConfig fields")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--device", default=None, help="cpu, cuda or auto (a GPU when present)")
        p.add_argument("--threads", type=int, default=None)
        p.add_argument("--subset", type=int, default=None, help="use only the first N images of each split")
        p.add_argument("--baselines", default="fixed-h,fixed-v,stochastic,random")
        p.add_argument(
            "--start",
            default="classifiers",
            choices=["classifiers", "pt", "ft1", "ft2", "baselines", "stn", "lr-kd", "hard-positives", "evaluate"],
            help="chain only: resume at this stage, reusing the checkpoints before it",
        )
        p.add_argument("--results-json", type=Path, default=None, help="flat results file for benchmarks/")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except PatchDropError as exc:  # a missing stage bundle, a device that is not there, ...
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    import shlex

    args = build_parser().parse_args(argv)
    if args.command == "export":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        export_best(args.out, args.to, args.model_id, args.notes)
        return 0
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        serve(args.out, args.to, args.lr_classifier)
        return 0
    command = "python -m models.train " + shlex.join(argv if argv is not None else sys.argv[1:])
    try:
        run = Run(args)
    except PatchDropError:
        raise
    except (ValueError, OSError) as exc:  # a bad --config, --set or --out: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    baselines = [b for b in args.baselines.split(",") if b]
    t = time.time()
    steps = {
        "classifiers": lambda: cmd_classifiers(run),
        "pt": lambda: cmd_pt(run),
        "ft1": lambda: cmd_ft1(run),
        "ft2": lambda: cmd_ft2(run),
        "baselines": lambda: cmd_baselines(run, baselines),
        "stn": lambda: cmd_stn(run),
        "lr-kd": lambda: cmd_lr_kd(run),
        "hard-positives": lambda: cmd_hard_positives(run),
        "evaluate": lambda: cmd_evaluate(run, args.results_json, command),
    }
    if args.command == "chain":
        order = ["classifiers", "pt", "ft1", "ft2", "baselines", "stn", "lr-kd"]
        if run.cfg.hard_positive_epochs:
            order.append("hard-positives")
        order.append("evaluate")
        if args.start not in order:
            raise SystemExit(f"--start {args.start}: this chain's steps are {', '.join(order)}")
        for step in order[order.index(args.start) :]:
            steps[step]()
    else:
        steps[args.command]()
    log.info("%s finished in %.1f min", args.command, (time.time() - t) / 60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
