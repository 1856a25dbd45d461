"""The epoch loop shared by every stage: progress bar, logging, best-on-validation selection."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn
from tqdm import tqdm

log = logging.getLogger("patchdrop.train")

StepFn = Callable[[Any, float], dict[str, float]]
EvalFn = Callable[[], dict[str, float]]


class RunningMean:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, float]) -> None:
        self.count += 1
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + float(v)

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.totals.items()}


def fit(
    *,
    name: str,
    epochs: int,
    batches: Callable[[], Iterable[Any]],
    steps_per_epoch: int,
    step: StepFn,
    evaluate: EvalFn,
    score_key: str,
    keep: dict[str, nn.Module],
    train_modes: Callable[[], None],
    keep_best: bool = True,
) -> dict[str, float]:
    """Train ``epochs`` epochs; restore the weights of ``keep`` from the best validation epoch.

    ``step`` gets the batch and the overall progress in [0, 1] (for schedules such as alpha).
    ``keep_best=False`` keeps the last epoch's weights instead: the validation split then only
    reports, and stays an unbiased sample of the model's accuracy (the best of many noisy
    epochs reads higher than the model will score on new data).
    """
    best_score, best_state, best_metrics = float("-inf"), None, {}
    metrics: dict[str, float] = {}
    total = max(epochs * steps_per_epoch, 1)
    for epoch in range(epochs):
        train_modes()
        running = RunningMean()
        bar = tqdm(batches(), total=steps_per_epoch, desc=f"{name} {epoch + 1}/{epochs}", leave=False, mininterval=2.0)
        for i, batch in enumerate(bar):
            running.add(step(batch, (epoch * steps_per_epoch + i) / total))
            if i % 20 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in running.means().items()})
        metrics = evaluate()
        train_means = {f"train_{k}": round(v, 4) for k, v in running.means().items()}
        log.info("%s epoch %d/%d train %s val %s", name, epoch + 1, epochs, train_means, metrics)
        if metrics[score_key] > best_score:
            best_score, best_metrics = metrics[score_key], {**metrics, "epoch": epoch + 1}
            if keep_best:
                best_state = {k: copy.deepcopy(m.state_dict()) for k, m in keep.items()}
    if not keep_best:
        log.info("%s last epoch kept, val %s (best was %s)", name, metrics, best_metrics)
        return {**metrics, "epoch": epochs} if metrics else {}
    if best_state is not None:
        for k, m in keep.items():
            m.load_state_dict(best_state[k])
    log.info("%s best val %s", name, best_metrics)
    return best_metrics
