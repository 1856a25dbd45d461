"""Which torch device a process runs on: one rule for the worker, the CLI and training."""

from __future__ import annotations

import torch

from models.errors import DeviceUnavailableError


def choose_device(requested: str = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one (one solo worker per GPU), else the CPU.

    A named device that this machine lacks is refused here, when the process starts, rather
    than by torch's first tensor copy with a message about how torch was compiled.
    """
    if requested == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise DeviceUnavailableError(f"device {requested!r} is not a torch device: use auto, cpu or cuda:N") from exc
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceUnavailableError(f"device {requested!r} is not supported: use auto, cpu or cuda:N")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise DeviceUnavailableError(
            f"device {requested!r} was requested but torch sees no CUDA GPU here (torch {torch.__version__}, "
            f"{build}): use PATCHDROP_DEVICE=cpu (or --device cpu), or auto to take a GPU only when there is one"
        )
    count = torch.cuda.device_count()
    if (device.index or 0) >= count:
        raise DeviceUnavailableError(
            f"device {requested!r} was requested but this machine has {count} CUDA GPU(s): cuda:0..cuda:{count - 1}"
        )
    return device
