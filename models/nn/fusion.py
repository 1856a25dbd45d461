"""The one definition of how a bundle turns LR, HR patches and a purchase into class probabilities.

Training-time evaluation (``models.training``), offline evaluation and serving
(``models.nn.inference``, hence the worker) all call :func:`bundle_probs`, so a
bundle is served with exactly the rule and settings it was trained and selected
with: the fusion rule and fill mode come from the bundle's metadata.

Inputs are in the networks' normalised units (``ModelBundle.normalise``);
``lr`` is the LR tile (B, C, h, w), upsampled here to the HR size.
"""

from __future__ import annotations

import torch

from models.errors import CheckpointError
from models.nn.checkpoint import ModelBundle
from models.nn.grid import mask_images, upsample
from models.nn.reward import confidence_fusion_probs, two_stream_probs

# "hr-only": the HR classifier on the masked image; "paper": the S/P two-stream rule
# (Sec. 5.1); "confidence": each stream weighted by its own max class probability.
FUSIONS = ("hr-only", "paper", "confidence")
# Bundles written before the rule was recorded were served with S/P, or HR-only without an LR classifier.
DEFAULT_FUSION = "paper"


def fusion_of(bundle: ModelBundle) -> str:
    """The bundle's fusion rule; a rule this code does not know is refused, never guessed."""
    rule = bundle.metadata.get("fusion", DEFAULT_FUSION if bundle.lr_classifier is not None else "hr-only")
    if rule not in FUSIONS:
        raise CheckpointError(f"unknown fusion rule {rule!r} in the bundle metadata; known: {', '.join(FUSIONS)}")
    if rule != "hr-only" and bundle.lr_classifier is None:
        raise CheckpointError(f"fusion rule {rule!r} needs an LR classifier, and this bundle has none")
    return rule


def fuse(rule: str, hr_logits: torch.Tensor, lr_logits: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
    """Class probabilities (B, K) from the two streams' logits under ``rule``."""
    if rule == "hr-only":
        return hr_logits.softmax(-1)
    if lr_logits is None:
        raise ValueError(f"fusion rule {rule!r} needs the LR classifier's logits")
    if rule == "paper":
        return two_stream_probs(hr_logits, lr_logits, actions)
    if rule == "confidence":
        return confidence_fusion_probs(hr_logits, lr_logits)
    raise ValueError(f"unknown fusion rule {rule!r}")


def masked_input(bundle: ModelBundle, hr: torch.Tensor, lr: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The HR classifier's input: bought patches in HR, the rest filled as the bundle was trained."""
    fill = upsample(lr, hr.shape[-2:]) if bundle.fill == "lr" else None
    return mask_images(hr, actions, bundle.grid, fill)


def lr_logits(bundle: ModelBundle, lr: torch.Tensor, hr_size: tuple[int, int] | None = None) -> torch.Tensor:
    if bundle.lr_classifier is None:
        raise CheckpointError("this model bundle has no LR classifier")
    return bundle.lr_classifier(upsample(lr, hr_size or bundle.hr_size))


def bundle_probs(
    bundle: ModelBundle,
    hr: torch.Tensor,
    lr: torch.Tensor,
    actions: torch.Tensor,
    *,
    rule: str | None = None,
    hr_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class probabilities of ``bundle`` for normalised HR images, their LR tiles and purchases.

    ``rule`` overrides the bundle's fusion (training evaluates the rule it is training
    with before writing it into the metadata); ``hr_logits`` reuses an HR forward
    already done on ``masked_input(bundle, hr, lr, actions)``.
    """
    rule = rule or fusion_of(bundle)
    if hr_logits is None:
        hr_logits = bundle.hr_classifier(masked_input(bundle, hr, lr, actions))
    lr_out = None if rule == "hr-only" else lr_logits(bundle, lr, tuple(hr.shape[-2:]))
    return fuse(rule, hr_logits, lr_out, actions)
