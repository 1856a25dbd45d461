"""One file per model bundle: policy, HR and LR classifier weights plus metadata.

The file is a plain dict of tensors and JSON-like values, so it loads with
``torch.load(weights_only=True)``: no pickle of arbitrary objects, ever.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.errors import CheckpointError
from models.geo.patch_grid import PatchGrid
from models.nn.networks import ResNet, ResNetConfig, build_resnet

FORMAT = "patchdrop-bundle"
FORMAT_VERSION = 1
NETWORKS = ("policy", "hr_classifier", "lr_classifier")
REQUIRED_METADATA = (
    "class_names",
    "bands",
    "band_mean",
    "band_std",
    "hr_size",
    "lr_size",
    "grid",
    "architecture",
)


def standardise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - band mean) / band std per band of (B, C, H, W): the one normalisation, in training and serving."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[:, None, None]
    return (x.float() - m) / s


@dataclass
class ModelBundle:
    """The three networks of PatchDrop and what is needed to feed them."""

    policy: ResNet
    hr_classifier: ResNet
    lr_classifier: ResNet | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> PatchGrid:
        rows, cols = self.metadata["grid"]
        return PatchGrid(rows, cols)

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def bands(self) -> list[str]:
        return list(self.metadata["bands"])

    @property
    def hr_size(self) -> tuple[int, int]:
        return tuple(self.metadata["hr_size"])  # type: ignore[return-value]

    @property
    def lr_size(self) -> tuple[int, int]:
        return tuple(self.metadata["lr_size"])  # type: ignore[return-value]

    @property
    def fill(self) -> str:
        return self.metadata.get("fill", "lr")

    def networks(self) -> dict[str, nn.Module]:
        nets = {"policy": self.policy, "hr_classifier": self.hr_classifier}
        if self.lr_classifier is not None:
            nets["lr_classifier"] = self.lr_classifier
        return nets

    def to(self, device: torch.device | str) -> ModelBundle:
        for net in self.networks().values():
            net.to(device)
        return self

    def eval(self) -> ModelBundle:
        for net in self.networks().values():
            net.eval()
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Raw band values (B, C, H, W) -> the standardised units the networks were trained on."""
        return standardise(x, self.metadata["band_mean"], self.metadata["band_std"])


def build_bundle(
    *,
    class_names: list[str],
    bands: list[str],
    band_mean: list[float],
    band_std: list[float],
    hr_size: tuple[int, int],
    lr_size: tuple[int, int],
    grid: PatchGrid = PatchGrid(),
    policy_depth: int = 8,
    policy_width: int = 16,
    classifier_depth: int = 8,
    classifier_width: int = 16,
    classifier_stem_stride: int = 1,
    fill: str = "lr",
    **extra: Any,
) -> ModelBundle:
    """A freshly initialised bundle whose architecture is recorded in its metadata."""
    bands_n = len(bands)
    if len(band_mean) != bands_n or len(band_std) != bands_n:
        raise CheckpointError("band_mean and band_std need one value per band")
    grid.check_size(*hr_size)
    grid.check_size(*lr_size)
    policy_cfg = ResNetConfig(bands_n, grid.num_patches, policy_depth, policy_width)
    cls_cfg = ResNetConfig(bands_n, len(class_names), classifier_depth, classifier_width, classifier_stem_stride)
    metadata = {
        "class_names": list(class_names),
        "bands": list(bands),
        "band_mean": [float(v) for v in band_mean],
        "band_std": [float(v) for v in band_std],
        "hr_size": list(hr_size),
        "lr_size": list(lr_size),
        "grid": [grid.rows, grid.cols],
        "fill": fill,
        "architecture": {
            "policy": policy_cfg.to_dict(),
            "hr_classifier": cls_cfg.to_dict(),
            "lr_classifier": cls_cfg.to_dict(),
        },
        **extra,
    }
    return ModelBundle(build_resnet(policy_cfg), build_resnet(cls_cfg), build_resnet(cls_cfg), metadata)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def save_bundle(bundle: ModelBundle, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(bundle.metadata)
    metadata.setdefault("created", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    metadata.setdefault("git_commit", git_commit())
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": metadata,
        "state_dicts": {
            name: {k: v.detach().cpu() for k, v in net.state_dict().items()} for name, net in bundle.networks().items()
        },
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def load_bundle(path: str | Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a model bundle file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save's format; anything else is not a bundle
        raise CheckpointError(f"{path} is not a PatchDrop checkpoint (not a torch.save zip archive)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        # Not torch's text: it suggests weights_only=False, i.e. running the file's code.
        reason = (
            "it holds Python objects besides tensors, which are not loaded (that would run code from the file)"
            if "Weights only load failed" in str(exc)
            else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        )
        raise CheckpointError(f"{path} is not a readable PatchDrop checkpoint: {reason}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a PatchDrop model bundle (format tag missing)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has bundle format version {version}; this code reads version {FORMAT_VERSION}")
    metadata = payload.get("metadata")
    states = payload.get("state_dicts")
    if not isinstance(metadata, dict) or not isinstance(states, dict):
        raise CheckpointError(f"{path} lacks metadata or weights")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f"{path} metadata lacks {', '.join(missing)}")
    nets: dict[str, ResNet | None] = {}
    for name in NETWORKS:
        if name not in states:
            if name == "lr_classifier":
                nets[name] = None
                continue
            raise CheckpointError(f"{path} has no weights for the {name}")
        try:
            net = build_resnet(metadata["architecture"][name])
            net.load_state_dict(states[name])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: weights of the {name} do not match its architecture: {exc}") from exc
        nets[name] = net.to(map_location)
    bundle = ModelBundle(nets["policy"], nets["hr_classifier"], nets["lr_classifier"], metadata)  # type: ignore[arg-type]
    return bundle.eval()
