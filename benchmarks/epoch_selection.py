"""How much keeping the best validation epoch overstates a classifier's accuracy, from training logs.

    python benchmarks/epoch_selection.py NAME=runs/<run>/train.log [NAME=...]

A training run logs every epoch's validation accuracy (``models.training.loop.fit``). The
best of 30 noisy epochs reads higher than the weights will score on new chips; the mean of
the last half of the epochs (a cosine schedule has settled there) is the comparison. Writes
``benchmarks/results/epoch_selection.json``: per run and classifier, every epoch's validation
accuracy, the best and its epoch, the last, the mean of the last half and best minus that mean.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import sys
from pathlib import Path
from statistics import mean

from results_md import Benchmark, git_commit  # benchmarks/ is on sys.path as a script

EPOCH = re.compile(r"(hr_classifier|lr_classifier) epoch (\d+)/\d+ .*val \{'acc': ([0-9.]+)")


def classifier_epochs(log: Path) -> dict[str, list[float]]:
    """Each pretrained classifier's validation accuracy (%) per epoch, in order (the last run in the log)."""
    out: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").replace("\r", "\n").splitlines():
        m = EPOCH.search(line)
        if m:
            if m.group(2) == "1":  # a log appended to by a rerun: keep the latest run only
                out[m.group(1)] = []
            out.setdefault(m.group(1), []).append(round(100 * float(m.group(3)), 2))
    if not out:
        raise SystemExit(f"{log}: no classifier epochs logged")
    return out


def summary(accs: list[float]) -> dict[str, float | int | list[float]]:
    settled = mean(accs[len(accs) // 2 :])
    best = max(accs)
    return {
        "epochs": accs,
        "best": best,
        "best_epoch": accs.index(best) + 1,
        "last": accs[-1],
        "mean_last_half": round(settled, 2),
        "best_minus_last": round(best - accs[-1], 2),
        "best_minus_mean_last_half": round(best - settled, 2),
    }


def main(argv: list[str]) -> int:
    runs = {}
    for arg in argv:
        name, _, path = arg.partition("=")
        runs[name] = {k: summary(v) for k, v in classifier_epochs(Path(path)).items()}
    result = {
        "runs": runs,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": "python benchmarks/epoch_selection.py " + shlex.join(argv),
    }
    Benchmark("epoch_selection").json.write_text(json.dumps(result, indent=1) + "\n")
    for name, r in runs.items():
        for k, s in r.items():
            print(f"{name:12s} {k:14s} best {s['best']:.2f} (epoch {s['best_epoch']}), last {s['last']:.2f}, "
                  f"mean of last half {s['mean_last_half']:.2f}: best − that {s['best_minus_mean_last_half']:+.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
