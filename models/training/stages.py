"""The training stages: classifier pretraining, Pt, Ft-1, Ft-2, baseline finetuning, hard positives."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.datasets.base import ImageSet, Splits
from models.nn.checkpoint import ModelBundle
from models.nn.fusion import bundle_probs, fuse, masked_input
from models.nn.grid import mask_images, upsample
from models.nn.policy import (
    action_log_prob,
    alpha_at,
    baseline_scores,
    explore,
    first_k,
    fractional_k,
    greedy_actions,
)
from models.nn.reward import reward
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

    def masked(self, batch: Batch, actions: torch.Tensor) -> torch.Tensor:
        return masked_input(self.bundle, batch.hr, batch.lr, actions)

    def lr_input(self, batch: Batch) -> torch.Tensor:
        return upsample(batch.lr, batch.hr.shape[-2:])

    def distill_loss(
        self, student_logits: torch.Tensor, batch: Batch, weight: float | None = None
    ) -> torch.Tensor | float:
        """KL from the full-image teacher to a classifier that sees masked images (Hinton et al.).

        The teacher's soft labels say what the missing patches would have shown, which
        plain labels cannot; the T^2 factor keeps the gradient scale independent of T.
        ``weight`` replaces ``cfg.distill`` (the LR classifier's KD has its own weight).
        """
        weight = self.cfg.distill if weight is None else weight
        if self.teacher is None or weight <= 0:
            return 0.0
        t = self.cfg.distill_temperature
        with torch.no_grad():
            target = F.log_softmax(self.teacher(batch.hr) / t, -1)
        student = F.log_softmax(student_logits / t, -1)
        return weight * t * t * F.kl_div(student, target, log_target=True, reduction="batchmean")


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
    distill: bool | float = False,
    budget_inputs=None,
    keep_best: bool = True,
) -> dict[str, float]:
    """Supervised training of one classifier on ``inputs(batch)``; best epoch on validation kept
    (the last one with ``keep_best=False``).

    ``evaluate`` replaces the default validation (accuracy on ``inputs``) where the
    validation inputs must differ from the training ones. ``distill``: True for the
    config's weight, a number for another. ``budget_inputs(part)`` adds the budget rows
    of PatchDrop's finetuning (``budget_mix`` of each batch, in the same forward, weighted
    ``budget_mix`` in the loss), so a baseline trains in the same budget regime.
    """
    batch_size = batch_size or ctx.cfg.cls_batch
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    base = [lr]
    weight = None if distill is True else float(distill)

    def kd(logits: torch.Tensor, batch: Batch) -> torch.Tensor | float:
        return ctx.distill_loss(logits, batch, weight) if distill else 0.0

    def step(batch: Batch, progress: float) -> dict[str, float]:
        _cosine(opt, base, progress)
        x = inputs(batch)
        n = len(batch.labels)
        n_budget = round(ctx.cfg.budget_mix * n) if budget_inputs is not None else 0
        part = _head(batch, n_budget)
        if n_budget:
            x = torch.cat([x, budget_inputs(part)])
        all_logits = net(x)
        logits = all_logits[:n]
        loss = F.cross_entropy(logits, batch.labels) + kd(logits, batch)
        if n_budget:
            extra = all_logits[n:]
            loss = loss + ctx.cfg.budget_mix * (F.cross_entropy(extra, part.labels) + kd(extra, part))
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
        keep_best=keep_best,
    )


def pretrain_classifiers(ctx: Context) -> dict[str, dict[str, float]]:
    """HR classifier on full HR images, then the LR classifier initialised from it (Sec. 4.2)."""
    cfg, b = ctx.cfg, ctx.bundle
    best = cfg.cls_keep == "best"
    hr = train_classifier(
        ctx, b.hr_classifier, "hr_classifier", cfg.cls_epochs, lambda x: x.hr, cfg.cls_lr, keep_best=best
    )
    assert b.lr_classifier is not None
    b.lr_classifier.load_state_dict(b.hr_classifier.state_dict())
    lr = train_classifier(
        ctx, b.lr_classifier, "lr_classifier", cfg.lr_cls_epochs, ctx.lr_input, cfg.cls_lr, keep_best=best
    )
    return {"hr_classifier": hr, "lr_classifier": lr}


def stage_fusion(cfg: TrainConfig, stage: str) -> str:
    """The fusion rule a stage trains with, and that its bundle is served with.

    Pt and Ft-1 classify from the HR stream alone; only Ft-2 learns with the LR stream.
    """
    return cfg.fusion if stage == "ft2" else "hr-only"


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[None]:
    """Batch norm from running statistics, which the forward does not update; mode restored after."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def _head(batch: Batch, n: int) -> Batch:
    """The first ``n`` images of a batch (the rows that also train at random budgets)."""
    return Batch(batch.hr[:n], batch.lr[:n], batch.labels[:n], batch.index[:n])


def random_budgets(ctx: Context, n: int, num_patches: int) -> torch.Tensor:
    """``n`` budgets k drawn uniformly from ``budget_k_min``..P (PatchDrop's budget regime)."""
    return torch.randint(ctx.cfg.budget_k_min, num_patches + 1, (n,), generator=ctx.generator).to(ctx.device)


def budget_actions(ctx: Context, probs: torch.Tensor) -> torch.Tensor:
    """Masks at uniformly random budgets k in ``budget_k_min``..P for ``len(probs)`` rows.

    ``budget_masks``: "policy" buys the policy's top k patches (what a capped purchase,
    ``max_patches``, serves); "random" any k patches (imagery bought or owned for other
    reasons, a whole tile); "both" alternates the two row by row.
    """
    cfg, n, p = ctx.cfg, len(probs), probs.shape[-1]
    k = random_budgets(ctx, n, p).to(probs.device)
    random_scores = torch.rand(n, p, generator=ctx.generator).to(probs.device)
    if cfg.budget_masks == "policy":
        scores = probs
    elif cfg.budget_masks == "random":
        scores = random_scores
    else:
        rows = (torch.arange(n, device=probs.device) % 2 == 0)[:, None]
        scores = torch.where(rows, probs, random_scores)
    return first_k(scores, k)


@torch.inference_mode()
def evaluate_agent(ctx: Context, stage: str, split: ImageSet, sigma: float) -> dict[str, float]:
    """Greedy actions on a split: accuracy, mean patches S and mean reward.

    With ``select="budgets"`` also the accuracy at the policy's top k patches for every
    k in 0..P, and ``budgets``: the mean of those and the greedy accuracy.
    """
    b = ctx.bundle.eval()
    rule = stage_fusion(ctx.cfg, stage)
    p = b.grid.num_patches
    sweep = ctx.cfg.select == "budgets"
    correct, patches, rewards = 0, 0.0, 0.0
    at_k = [0] * (p + 1)
    for batch in ctx.batches(split, ctx.cfg.eval_batch):
        scores = torch.sigmoid(b.policy(batch.lr))
        actions = greedy_actions(scores)
        probs = bundle_probs(b, batch.hr, batch.lr, actions, rule=rule)
        ok = probs.argmax(-1) == batch.labels
        correct += int(ok.sum())
        patches += float(actions.sum())
        rewards += float(reward(ok, actions, sigma).sum())
        if sweep:
            for k in range(p + 1):
                a = first_k(scores, k)
                at_k[k] += int((bundle_probs(b, batch.hr, batch.lr, a, rule=rule).argmax(-1) == batch.labels).sum())
    n = len(split)
    out = {"acc": correct / n, "patches": patches / n, "reward": rewards / n}
    if sweep:
        out["sweep"] = [c / n for c in at_k]
        out["budgets"] = (sum(at_k) + correct) / (n * (p + 2))
    return out


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

    rule = stage_fusion(cfg, stage)

    def step(batch: Batch, progress: float) -> dict[str, float]:
        _cosine(opt, base, progress)
        probs = torch.sigmoid(b.policy(batch.lr))
        explored = explore(probs, alpha_at(progress, cfg.alpha_start, cfg.alpha_end))
        sampled = torch.bernoulli(explored.detach())
        greedy = greedy_actions(probs.detach())
        lr_logits = None
        if rule != "hr-only":
            with torch.no_grad():
                lr_logits = b.lr_classifier(ctx.lr_input(batch))
        # The self-critical baseline is what evaluation would answer: running statistics,
        # and a forward that must not move them towards the greedy masks.
        with torch.no_grad(), eval_mode(b.hr_classifier):
            greedy_logits = b.hr_classifier(ctx.masked(batch, greedy))
        # Sampled masks and, when finetuning, the budget masks in one forward, so batch
        # norm sees one batch (one set of batch statistics, one running-statistics update).
        n_budget = round(cfg.budget_mix * len(batch.labels)) if finetune else 0
        inputs = ctx.masked(batch, sampled)
        if n_budget:
            part = _head(batch, n_budget)
            budget = budget_actions(ctx, probs.detach()[:n_budget])
            inputs = torch.cat([inputs, ctx.masked(part, budget)])
        with torch.set_grad_enabled(finetune):
            all_logits = b.hr_classifier(inputs)
        hr_logits = all_logits[: len(batch.labels)]
        scores = fuse(rule, hr_logits, lr_logits, sampled)
        greedy_scores = fuse(rule, greedy_logits, lr_logits, greedy)
        ok = scores.argmax(-1) == batch.labels
        r_sampled = reward(ok, sampled, sigma)
        r_greedy = reward(greedy_scores.argmax(-1) == batch.labels, greedy, sigma)
        advantage = (r_sampled - r_greedy).detach()
        loss = -(advantage * action_log_prob(explored, sampled)).mean()
        if finetune:
            loss = loss + F.nll_loss(scores.clamp_min(1e-8).log(), batch.labels) + ctx.distill_loss(hr_logits, batch)
        if n_budget:
            # Classifier loss at random budgets, so it serves any purchase (see budget_actions).
            budget_lr = None if lr_logits is None else lr_logits[:n_budget]
            budget_scores = fuse(rule, all_logits[len(batch.labels) :], budget_lr, budget)
            loss = loss + cfg.budget_mix * (
                F.nll_loss(budget_scores.clamp_min(1e-8).log(), part.labels)
                + ctx.distill_loss(all_logits[len(batch.labels) :], part)
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"reward": r_sampled.mean().item(), "acc": ok.float().mean().item(), "S": sampled.sum(-1).mean().item()}

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
        score_key="budgets" if cfg.select == "budgets" else "reward",
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
    """Finetune the pretrained HR classifier on a baseline's own masks in PatchDrop's budget regime.

    As PatchDrop's classifier in Ft-1: each batch at the baseline's masks with per-image
    budgets whose mean is ``mean_patches`` (Ft-1's sampled masks have mean S), plus, with
    ``budget_mix`` > 0, that share of the batch again at the baseline's first k patches for
    k uniform in ``budget_k_min``..P; as many epochs (``baseline_epochs``, default Ft-1's).
    """
    cfg = ctx.cfg
    net = ctx.bundle.hr_classifier
    grid = ctx.bundle.grid
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    def inputs(batch: Batch, g: torch.Generator = gen) -> torch.Tensor:
        return ctx.masked(batch, baseline_batch_actions(ctx, name, mean_patches, len(batch.labels), g))

    def budget_inputs(part: Batch) -> torch.Tensor:
        k = random_budgets(ctx, len(part.labels), grid.num_patches)
        return ctx.masked(part, first_k(baseline_scores(name, grid, len(part.labels), gen).to(ctx.device), k))

    def val_inputs(batch: Batch) -> torch.Tensor:
        return inputs(batch, val_gen)

    val_gen = torch.Generator()

    def evaluate() -> dict[str, float]:
        val_gen.manual_seed(cfg.seed + 2)  # the same validation masks every epoch
        return {"acc": accuracy(ctx, net, ctx.splits.val, val_inputs)}

    return train_classifier(
        ctx, net, name, cfg.baseline_epochs or cfg.ft1_epochs, inputs, cfg.finetune_cls_lr,
        batch_size=cfg.ft_batch, evaluate=evaluate, distill=True,
        budget_inputs=budget_inputs if cfg.budget_mix > 0 else None,
    )  # fmt: skip


def _straight_through(actions: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Hard 0/1 actions forward, the gradient of ``scores`` backward (straight-through estimator)."""
    return actions + scores - scores.detach()


def train_stn(ctx: Context, locator: nn.Module, side: float, mean_patches: float) -> dict[str, float]:
    """The STN baseline: localisation network and HR classifier trained jointly on its top-k patches.

    Same regime as PatchDrop's Ft-1 and the baselines: per-image budgets with mean
    ``mean_patches`` plus ``budget_mix`` of each batch at a random k, as many epochs. The
    classifier sees exactly the patch-masked images it is tested on; the window's place
    learns through the straight-through gradient of its patch scores.
    """
    from models.nn.stn import stn_scores

    cfg, b = ctx.cfg, ctx.bundle
    grid, net = b.grid, b.hr_classifier
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    opt = torch.optim.Adam([{"params": locator.parameters(), "lr": cfg.policy_lr},
                            {"params": net.parameters(), "lr": cfg.finetune_cls_lr}])  # fmt: skip
    base = [g["lr"] for g in opt.param_groups]

    def masked(batch: Batch, scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return ctx.masked(batch, _straight_through(first_k(scores.detach(), k), scores))

    def step(batch: Batch, progress: float) -> dict[str, float]:
        _cosine(opt, base, progress)
        n = len(batch.labels)
        scores = stn_scores(locator, batch.lr, side, grid)
        k = fractional_k(mean_patches, n, gen).to(ctx.device)
        x = masked(batch, scores, k)
        n_budget = round(cfg.budget_mix * n)
        part = _head(batch, n_budget)
        if n_budget:
            x = torch.cat([x, masked(part, scores[:n_budget], random_budgets(ctx, n_budget, grid.num_patches))])
        all_logits = net(x)
        logits = all_logits[:n]
        loss = F.cross_entropy(logits, batch.labels) + ctx.distill_loss(logits, batch)
        if n_budget:
            extra = all_logits[n:]
            loss = loss + cfg.budget_mix * (F.cross_entropy(extra, part.labels) + ctx.distill_loss(extra, part))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "acc": (logits.argmax(-1) == batch.labels).float().mean().item()}

    val_gen = torch.Generator()

    @torch.inference_mode()
    def evaluate() -> dict[str, float]:
        val_gen.manual_seed(cfg.seed + 4)
        locator.eval()
        net.eval()
        correct = 0
        for batch in ctx.batches(ctx.splits.val, cfg.eval_batch):
            scores = stn_scores(locator, batch.lr, side, grid)
            a = first_k(scores, fractional_k(mean_patches, len(batch.labels), val_gen).to(ctx.device))
            correct += int((net(ctx.masked(batch, a)).argmax(-1) == batch.labels).sum())
        return {"acc": correct / len(ctx.splits.val)}

    def modes() -> None:
        locator.train()
        net.train()

    return fit(
        name="stn", epochs=cfg.baseline_epochs or cfg.ft1_epochs,
        batches=lambda: ctx.batches(ctx.splits.train, cfg.ft_batch, train=True),
        steps_per_epoch=num_batches(ctx.splits.train, cfg.ft_batch), step=step, evaluate=evaluate,
        score_key="acc", keep={"locator": locator, "hr_classifier": net}, train_modes=modes,
    )  # fmt: skip


def train_lr_kd(ctx: Context) -> dict[str, float]:
    """The paper's KD LR improver: the LR classifier trained as ours is, plus distillation from the HR one.

    Initialised from the pretrained HR classifier and trained ``lr_cls_epochs`` on upsampled
    LR images, like the plain LR classifier; the loss adds the KL to the frozen HR classifier
    on the HR image (weight ``lr_kd_weight``, temperature ``distill_temperature``).
    """
    cfg, b = ctx.cfg, ctx.bundle
    if ctx.teacher is None:
        raise ValueError("LR (KD) needs the HR classifier as its teacher")
    assert b.lr_classifier is not None
    b.lr_classifier.load_state_dict(b.hr_classifier.state_dict())
    return train_classifier(ctx, b.lr_classifier, "lr_kd", cfg.lr_cls_epochs, ctx.lr_input, cfg.cls_lr,
                            distill=cfg.lr_kd_weight, keep_best=cfg.cls_keep == "best")  # fmt: skip


AUGMENTATIONS = ("hard-positives", "cutout", "control")


def augment_finetune(ctx: Context, policy: nn.Module | None, mode: str, fill: str) -> dict[str, float]:
    """Finetune the HR classifier with 1-4 patches hidden (Sec. 7), or a control run on full images.

    ``mode``: "hard-positives" hides the policy's M most probable patches, "cutout" M
    patches drawn at random (CutOut on the patch grid, the same M), "control" hides
    nothing, so differences measure the augmentation, not the extra epochs. ``fill``:
    hidden patches zeroed ("zeros", as in the paper) or filled with the upsampled LR image.
    """
    if mode not in AUGMENTATIONS:
        raise ValueError(f"mode must be one of {', '.join(AUGMENTATIONS)}, got {mode!r}")
    cfg = ctx.cfg
    net = ctx.bundle.hr_classifier
    grid = ctx.bundle.grid
    if policy is not None:
        policy.eval()

    def inputs(batch: Batch) -> torch.Tensor:
        if mode == "control":
            return batch.hr
        m = torch.randint(1, 5, (len(batch.labels),), generator=ctx.generator).to(ctx.device)
        if mode == "hard-positives":
            assert policy is not None
            with torch.no_grad():
                scores = torch.sigmoid(policy(batch.lr))
        else:
            scores = torch.rand(len(batch.labels), grid.num_patches, generator=ctx.generator).to(ctx.device)
        keep = 1.0 - first_k(scores, m)
        return mask_images(batch.hr, keep, grid, ctx.lr_input(batch) if fill == "lr" else None)

    return train_classifier(
        ctx, net, f"{mode}-{fill}", cfg.hard_positive_epochs, inputs, cfg.finetune_cls_lr,
        evaluate=lambda: {"acc": accuracy(ctx, net, ctx.splits.val, lambda b: b.hr)},  # full images, as the paper tests
    )  # fmt: skip
