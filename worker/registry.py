"""Model bundles by id, loaded once per process on the chosen device."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import CheckpointError
from models.nn.checkpoint import ModelBundle, load_bundle
from models.nn.device import choose_device
from models.nn.inference import PatchDecision, decide_patches
from worker.batching import DynamicBatcher
from worker.errors import UnknownModelError

log = logging.getLogger(__name__)

# Metadata worth showing to API users; weights statistics and the like stay inside.
PUBLIC_METADATA = (
    "model_id",
    "class_names",
    "bands",
    "lr_size",
    "hr_size",
    "grid",
    "fill",
    "fusion",
    "architecture",
    "metrics",
    "dataset",
    "created",
    "git_commit",
)


class ModelRegistry:
    """Loads each bundle on first use and keeps it for the life of the process; thread-safe.

    With ``batch_requests``, single-tile decisions from concurrent threads are batched
    per model (``DynamicBatcher``): the embedded API's request threads share forwards.
    """

    def __init__(
        self,
        checkpoints: Mapping[str, str | Path],
        default: str,
        device: str = "auto",
        torch_threads: int | None = None,
        *,
        batch_requests: bool = False,
        max_batch: int = 64,
    ) -> None:
        if torch_threads:
            torch.set_num_threads(torch_threads)  # process-wide: one registry per process
        self.checkpoints = {k: Path(v) for k, v in checkpoints.items()}
        self.default = default
        self.device = choose_device(device)
        self._bundles: dict[str, ModelBundle] = {}
        self._lock = threading.Lock()
        self.batch_requests = batch_requests
        self.max_batch = max_batch
        self._batchers: dict[str, DynamicBatcher[np.ndarray, PatchDecision]] = {}

    def resolve(self, model_id: str | None) -> str:
        model_id = model_id or self.default
        if model_id not in self.checkpoints:
            raise UnknownModelError(
                f"unknown model {model_id!r}; available: {', '.join(sorted(self.checkpoints)) or 'none'}"
            )
        return model_id

    def get(self, model_id: str | None = None) -> tuple[str, ModelBundle]:
        model_id = self.resolve(model_id)
        bundle = self._bundles.get(model_id)
        if bundle is None:
            with self._lock:
                bundle = self._bundles.get(model_id)
                if bundle is None:
                    bundle = load_bundle(self.checkpoints[model_id], map_location=self.device)
                    self._bundles[model_id] = bundle
        return model_id, bundle

    def decide(self, model_id: str, tiles: np.ndarray) -> list[PatchDecision]:
        """``decide_patches`` for a stack of LR tiles; a lone tile may share a batch with other threads'."""
        model_id, bundle = self.get(model_id)
        if not self.batch_requests or len(tiles) != 1:
            return decide_patches(bundle, tiles)
        batcher = self._batchers.get(model_id)
        if batcher is None:
            with self._lock:
                batcher = self._batchers.get(model_id)
                if batcher is None:
                    batcher = DynamicBatcher(
                        lambda items, b=bundle: decide_patches(b, np.stack(items)), self.max_batch, f"decide-{model_id}"
                    )
                    self._batchers[model_id] = batcher
        return [batcher.submit(tiles[0])]

    def close(self) -> None:
        with self._lock:
            batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            batcher.close()

    def preload(self, require_default: bool = False) -> None:
        """Load every bundle that loads; a failure is logged now and answered when the model is asked for.

        ``require_default``: the default model's failure is raised instead (a worker that cannot answer
        a request naming no model should not start).
        """
        if require_default:
            self.resolve(self.default)  # a default id that names no configured model
        for model_id in self.checkpoints:
            try:
                self.get(model_id)
            except Exception as exc:  # CheckpointError, or e.g. out of GPU memory while moving it there
                if require_default and model_id == self.default:
                    raise
                reason = exc.message if isinstance(exc, CheckpointError) else f"{type(exc).__name__}: {exc}"
                log.error("model %r (%s) does not load: %s", model_id, self.checkpoints[model_id], reason)

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for model_id, path in sorted(self.checkpoints.items()):
            entry: dict[str, Any] = {
                "id": model_id,
                "default": model_id == self.default,
                "checkpoint": str(path),
                "device": str(self.device),
            }
            try:
                _, bundle = self.get(model_id)
            except CheckpointError as exc:
                entry.update(loaded=False, error=exc.message, metadata={})
            else:
                meta = bundle.metadata
                entry.update(loaded=True, error=None, metadata={k: meta[k] for k in PUBLIC_METADATA if k in meta})
            out.append(entry)
        return out
