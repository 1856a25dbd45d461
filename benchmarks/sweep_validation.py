"""Choose finetuning settings on the validation split: several Ft-1/Ft-2 variants side by side.

The classifiers and Pt are trained once; each variant then runs Ft-1, Ft-2 and the
Fixed-H baseline (the strongest baseline on both benchmarks) in its own process from
copies of those checkpoints. Only validation metrics are read: the test split is
never touched here, so the chosen settings can be used for the benchmark's test run.

    python benchmarks/sweep_validation.py --benchmark fashion_mnist --out runs/sweep_a \\
        --config benchmarks/configs/fashion_mnist.json --device auto \\
        --variant plain:sigma_ft=6,distill=0 --variant kd:sigma_ft=6,distill=1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from models.nn.checkpoint import load_bundle


def train(args: argparse.Namespace, out: Path, command: str, sets: list[str], log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "models.train", command, "--benchmark", args.benchmark, "--out", str(out),
           "--device", args.device, "--threads", "1", *[f"--set={s}" for s in sets]]  # fmt: skip
    if args.config:
        cmd += ["--config", str(args.config)]
    if args.data_root:
        cmd += ["--data-root", str(args.data_root)]
    if args.subset:
        cmd += ["--subset", str(args.subset)]
    if command == "baselines":
        cmd += ["--baselines", "fixed-h"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def run_all(args: argparse.Namespace, out: Path, commands: list[str], sets: list[str]) -> int:
    with open(out / "stdout.log", "a") as log:
        for command in commands:
            code = train(args, out, command, sets, log).wait()
            if code:
                return code
    return 0


def val_metrics(folder: Path) -> dict[str, dict]:
    metrics = {}
    for name in ("ft1.pt", "ft2.pt", "baseline-fixed-h.pt"):
        if (folder / name).exists():
            meta = load_bundle(folder / name).metadata
            metrics[name.removesuffix(".pt")] = meta["metrics"][meta["stage"]]
    return metrics


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config", type=Path)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", action="append", required=True, metavar="NAME:KEY=VALUE,...")
    p.add_argument("--subset", type=int, help="first N images of each split (smoke runs)")
    p.add_argument("--summary", type=Path, help="also write the summary JSON here")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not (args.out / "pt.pt").exists():
        missing = ["classifiers", "pt"] if not (args.out / "classifiers.pt").exists() else ["pt"]
        if run_all(args, args.out, missing, []):
            raise SystemExit(f"shared stages failed: see {args.out / 'stdout.log'}")
    shared_s = round(time.time() - t0, 1)
    variants = {}
    for spec in args.variant:
        name, _, sets = spec.partition(":")
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        for f in ("classifiers.pt", "pt.pt"):
            shutil.copy2(args.out / f, folder / f)
        variants[name] = [s for s in sets.split(",") if s]
    # Threads only wait on the training processes, which do the work side by side.
    with ThreadPoolExecutor(len(variants)) as pool:
        codes = dict(zip(variants, pool.map(
            lambda n: run_all(args, args.out / n, ["ft1", "ft2", "baselines"], variants[n]), variants
        ), strict=True))  # fmt: skip
    summary = {n: {"settings": variants[n], "exit": codes[n], **val_metrics(args.out / n)} for n in variants}
    classifiers = load_bundle(args.out / "classifiers.pt").metadata["metrics"]["classifiers"]
    result = {"benchmark": args.benchmark, "classifiers": classifiers, "variants": summary,
              "shared_seconds": shared_s, "seconds": round(time.time() - t0, 1)}  # fmt: skip
    text = json.dumps(result, indent=1, default=str)
    print(text)
    (args.out / "summary.json").write_text(text)
    if args.summary:
        args.summary.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
