"""The training stages: classifier pretraining, Pt, Ft-1, Ft-2, baseline finetuning, hard positives."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import ModelBundle
from models.datasets.base import ImageSet, Splits
from models.grid import mask_images, upsample
from models.policy import (
    action_log_prob,
    alpha_at,
    baseline_scores,
    explore,
    first_k,
    fractional_k,
    greedy_actions,
)
from models.reward import confidence_fusion_probs, reward, two_stream_probs
from models.training.batches import Batch, Normaliser, iterate, num_batches
from models.training.config import TrainConfig
from models.training.loop import fit


@dataclass
class Context:
    """What every stage needs: the bundle being trained, the data and the settings."""

    bundle: ModelBundle
    splits: Splits
    cfg: TrainConfig
    device: torch.device
    teacher: nn.Module | None = None  # frozen full-image HR classifier, when distilling
    generator: torch.Generator = field(init=False)
    norm: Normaliser = field(init=False)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.norm = Normaliser(self.bundle.metadata["band_mean"], self.bundle.metadata["band_std"], self.device)

    def batches(self, split: ImageSet, batch_size: int, train: bool = False):
        return iterate(
            split, batch_size, self.norm, self.device,
            shuffle=train, generator=self.generator if train else None,
            flip=train and self.cfg.augment_flip,
        )  # fmt: skip

    def fill(self, batch: Batch) -> torch.Tensor | None:
        return upsample(batch.lr, batch.hr.shape[-2:]) if self.bundle.fill == "lr" else None

    def masked(self, batch: Batch, actions: torch.Tensor) -> torch.Tensor:
        return mask_images(batch.hr, actions, self.bundle.grid, self.fill(batch))

    def lr_input(self, batch: Batch) -> torch.Tensor:
        return upsample(batch.lr, batch.hr.shape[-2:])

    def distill_loss(self, student_logits: torch.Tensor, batch: Batch) -> torch.Tensor | float:
        """KL from the full-image teacher to a classifier that sees masked images (Hinton et al.).

        The teacher's soft labels say what the missing patches would have shown, which
        plain labels cannot; the T^2 factor keeps the gradient scale independent of T.
        """
        if self.teacher is None or self.cfg.distill <= 0:
            return 0.0
        t = self.cfg.distill_temperature
        with torch.no_grad():
            target = F.log_softmax(self.teacher(batch.hr) / t, -1)
        student = F.log_softmax(student_logits / t, -1)
        return self.cfg.distill * t * t * F.kl_div(student, target, log_target=True, reduction="batchmean")


def _cosine(optimizer: torch.optim.Optimizer, base: list[float], progress: float) -> None:
    for group, lr in zip(optimizer.param_groups, base, strict=False):
        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.inference_mode()
def accuracy(ctx: Context, net: nn.Module, split: ImageSet, inputs) -> float:
    net.eval()
    correct = 0
    for batch in ctx.batches(split, ctx.cfg.eval_batch):
        correct += int((net(inputs(batch)).argmax(-1) == batch.labels).sum())
    return correct / len(split)


def train_classifier(
    ctx: Context,
    net: nn.Module,
    name: str,
    epochs: int,
    inputs,
    lr: float,
    *,
    batch_size: int | None = None,
    evaluate=None,
    distill: bool = False,
) -> dict[str, float]:
    """Supervised training of one classifier on ``inputs(batch)``; best epoch on validation kept.

    ``evaluate`` replaces the default validation (accuracy on ``inputs``) where the
    validation inputs must differ from the training ones.
    """
    batch_size = batch_size or ctx.cfg.cls_batch
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    base = [lr]

    def step(batch: Batch, progress: float) -> dict[str, float]:
        _cosine(opt, base, progress)
        logits = net(inputs(batch))
        loss = F.cross_entropy(logits, batch.labels)
        if distill:
            loss = loss + ctx.distill_loss(logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": (logits.argmax(-1) == batch.labels).float().mean().item()}

    return fit(
        name=name,
        epochs=epochs,
        batches=lambda: ctx.batches(ctx.splits.train, batch_size, train=True),
        steps_per_epoch=num_batches(ctx.splits.train, batch_size),
        step=step,
        evaluate=evaluate or (lambda: {"acc": accuracy(ctx, net, ctx.splits.val, inputs)}),
        score_key="acc",
        keep={name: net},
        train_modes=net.train,
    )


def pretrain_classifiers(ctx: Context) -> dict[str, dict[str, float]]:
    """HR classifier on full HR images, then the LR classifier initialised from it (Sec. 4.2)."""
    cfg, b = ctx.cfg, ctx.bundle
    hr = train_classifier(ctx, b.hr_classifier, "hr_classifier", cfg.cls_epochs, lambda x: x.hr, cfg.cls_lr)
    assert b.lr_classifier is not None
    b.lr_classifier.load_state_dict(b.hr_classifier.state_dict())
    lr = train_classifier(ctx, b.lr_classifier, "lr_classifier", cfg.lr_cls_epochs, ctx.lr_input, cfg.cls_lr)
    return {"hr_classifier": hr, "lr_classifier": lr}


def _scores(
    ctx: Context,
    stage: str,
    hr_logits: torch.Tensor,
    batch: Batch,
    actions: torch.Tensor,
    lr_logits: torch.Tensor | None,
) -> torch.Tensor:
    """Class probabilities of the classifier used in ``stage`` (two-stream for Ft-2)."""
    if stage != "ft2" or lr_logits is None:
        return hr_logits.softmax(-1)
    if ctx.cfg.fusion == "confidence":
        return confidence_fusion_probs(hr_logits, lr_logits)
    return two_stream_probs(hr_logits, lr_logits, actions)


@torch.inference_mode()
def evaluate_agent(ctx: Context, stage: str, split: ImageSet, sigma: float) -> dict[str, float]:
    """Greedy actions on a split: accuracy, mean patches S and mean reward."""
    b = ctx.bundle.eval()
    correct, patches, rewards = 0, 0.0, 0.0
    for batch in ctx.batches(split, ctx.cfg.eval_batch):
        actions = greedy_actions(torch.sigmoid(b.policy(batch.lr)))
        lr_logits = b.lr_classifier(ctx.lr_input(batch)) if stage == "ft2" else None
        probs = _scores(ctx, stage, b.hr_classifier(ctx.masked(batch, actions)), batch, actions, lr_logits)
        ok = probs.argmax(-1) == batch.labels
        correct += int(ok.sum())
        patches += float(actions.sum())
        rewards += float(reward(ok, actions, sigma).sum())
    n = len(split)
    return {"acc": correct / n, "patches": patches / n, "reward": rewards / n}


def train_agent(ctx: Context, stage: str) -> dict[str, float]:
    """Pt (policy only), Ft-1 (policy + HR classifier) or Ft-2 (two-stream, LR classifier frozen).

    REINFORCE with the self-critical baseline: advantage = R(sampled) - R(greedy).
    """
    cfg, b = ctx.cfg, ctx.bundle
    finetune = stage in ("ft1", "ft2")
    epochs = {"pt": cfg.pt_epochs, "ft1": cfg.ft1_epochs, "ft2": cfg.ft2_epochs}[stage]
    ft2_sigma = cfg.sigma_ft if cfg.sigma_ft2 is None else cfg.sigma_ft2
    sigma = {"pt": cfg.sigma_pt, "ft1": cfg.sigma_ft, "ft2": ft2_sigma}[stage]
    batch_size = cfg.pt_batch if stage == "pt" else cfg.ft_batch
    groups = [{"params": b.policy.parameters(), "lr": cfg.policy_lr}]
    if finetune:
        groups.append({"params": b.hr_classifier.parameters(), "lr": cfg.finetune_cls_lr})
    opt = torch.optim.Adam(groups)
    base = [g["lr"] for g in opt.param_groups]

    def modes() -> None:
        b.policy.train()
        b.hr_classifier.train(finetune)
        if b.lr_classifier is not None:
            b.lr_classifier.eval()

    def step(batch: Batch, progress: float) -> dict[str, float]:
        _cosine(opt, base, progress)
        probs = torch.sigmoid(b.policy(batch.lr))
        explored = explore(probs, alpha_at(progress, cfg.alpha_start, cfg.alpha_end))
        sampled = torch.bernoulli(explored.detach())
        greedy = greedy_actions(probs.detach())
        lr_logits = None
        if stage == "ft2":
            with torch.no_grad():
                lr_logits = b.lr_classifier(ctx.lr_input(batch))
        with torch.set_grad_enabled(finetune):
            hr_logits = b.hr_classifier(ctx.masked(batch, sampled))
        with torch.no_grad():
            greedy_logits = b.hr_classifier(ctx.masked(batch, greedy))
        scores = _scores(ctx, stage, hr_logits, batch, sampled, lr_logits)
        greedy_scores = _scores(ctx, stage, greedy_logits, batch, greedy, lr_logits)
        ok = scores.argmax(-1) == batch.labels
        r_sampled = reward(ok, sampled, sigma)
        r_greedy = reward(greedy_scores.argmax(-1) == batch.labels, greedy, sigma)
        advantage = (r_sampled - r_greedy).detach()
        loss = -(advantage * action_log_prob(explored, sampled)).mean()
        if finetune:
            loss = loss + F.nll_loss(scores.clamp_min(1e-8).log(), batch.labels) + ctx.distill_loss(hr_logits, batch)
            loss = loss + budget_loss(probs.detach(), batch, lr_logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"reward": r_sampled.mean().item(), "acc": ok.float().mean().item(), "S": sampled.sum(-1).mean().item()}

    def budget_loss(probs: torch.Tensor, batch: Batch, lr_logits: torch.Tensor | None) -> torch.Tensor | float:
        """Classifier loss on the policy's top-k masks at random k, for the first rows of the batch."""
        n = round(cfg.budget_mix * len(batch.labels))
        if n == 0:
            return 0.0
        k = torch.randint(1, b.grid.num_patches + 1, (n,), generator=ctx.generator).to(ctx.device)
        actions = first_k(probs[:n], k)
        fill = ctx.fill(batch)
        logits = b.hr_classifier(mask_images(batch.hr[:n], actions, b.grid, None if fill is None else fill[:n]))
        part = Batch(batch.hr[:n], batch.lr[:n], batch.labels[:n], batch.index[:n])
        topk_scores = _scores(ctx, stage, logits, part, actions, None if lr_logits is None else lr_logits[:n])
        return cfg.budget_mix * F.nll_loss(topk_scores.clamp_min(1e-8).log(), part.labels)

    keep: dict[str, nn.Module] = {"policy": b.policy}
    if finetune:
        keep["hr_classifier"] = b.hr_classifier
    return fit(
        name=stage,
        epochs=epochs,
        batches=lambda: ctx.batches(ctx.splits.train, batch_size, train=True),
        steps_per_epoch=num_batches(ctx.splits.train, batch_size),
        step=step,
        evaluate=lambda: evaluate_agent(ctx, stage, ctx.splits.val, sigma),
        score_key="reward",
        keep=keep,
        train_modes=modes,
    )


def baseline_batch_actions(
    ctx: Context, name: str, mean_patches: float, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """A baseline's masks at per-image budgets whose mean is ``mean_patches``."""
    k = fractional_k(mean_patches, batch_size, generator)
    return first_k(baseline_scores(name, ctx.bundle.grid, batch_size, generator), k).to(ctx.device)


def finetune_baseline(ctx: Context, name: str, mean_patches: float) -> dict[str, float]:
    """Finetune the pretrained HR classifier on a baseline's own masks, as long as Ft-1 ran."""
    cfg = ctx.cfg
    net = ctx.bundle.hr_classifier
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    def inputs(batch: Batch, g: torch.Generator = gen) -> torch.Tensor:
        return ctx.masked(batch, baseline_batch_actions(ctx, name, mean_patches, len(batch.labels), g))

    def val_inputs(batch: Batch) -> torch.Tensor:
        return inputs(batch, val_gen)

    val_gen = torch.Generator()

    def evaluate() -> dict[str, float]:
        val_gen.manual_seed(cfg.seed + 2)  # the same validation masks every epoch
        return {"acc": accuracy(ctx, net, ctx.splits.val, val_inputs)}

    return train_classifier(
        ctx,
        net,
        name,
        cfg.ft1_epochs,
        inputs,
        cfg.finetune_cls_lr,
        batch_size=cfg.ft_batch,
        evaluate=evaluate,
        distill=True,
    )


def hard_positive_finetune(ctx: Context, policy: nn.Module, use_policy: bool) -> dict[str, float]:
    """Finetune the HR classifier with the policy's 1-4 top patches masked (Sec. 7), or a control run.

    The control (``use_policy=False``) trains the same epochs on full images so the
    difference measures the augmentation, not the extra epochs.
    """
    cfg = ctx.cfg
    net = ctx.bundle.hr_classifier
    policy.eval()

    def inputs(batch: Batch) -> torch.Tensor:
        if not use_policy:
            return batch.hr
        with torch.no_grad():
            probs = torch.sigmoid(policy(batch.lr))
        m = torch.randint(1, 5, (len(batch.labels),), generator=ctx.generator).to(ctx.device)
        hidden = first_k(probs, m)
        return ctx.masked(batch, 1.0 - hidden)

    return train_classifier(
        ctx,
        net,
        "hard_positive" if use_policy else "control",
        cfg.hard_positive_epochs,
        inputs,
        cfg.finetune_cls_lr,
        evaluate=lambda: {"acc": accuracy(ctx, net, ctx.splits.val, lambda b: b.hr)},  # full images, as the paper tests
    )


def clone_bundle(bundle: ModelBundle) -> ModelBundle:
    return copy.deepcopy(bundle)
