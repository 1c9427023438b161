"""Contract cases for the metric-learning family (center, contrastive, triplet)."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn

NUM_CLASSES, DIM = 3, 4


def _fixed_centers(like: torch.Tensor) -> torch.Tensor:
    # deterministic, non-zero centres in the input's dtype, so that batch splits see the same ones
    grid = torch.arange(NUM_CLASSES * DIM, dtype=torch.float64).reshape(NUM_CLASSES, DIM)
    return (0.25 * grid - 1.0).to(like.device, like.dtype)


def _labels(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (n,), generator=gen)


def _center(n, dtype, gen):
    return {"input": randn((n, DIM), dtype, gen), "target": _labels(n, gen)}


def _pairs(n, dtype, gen):
    return {
        "x1": randn((n, DIM), dtype, gen),
        "x2": randn((n, DIM), dtype, gen, 0.5),
        "same": torch.randint(0, 2, (n,), generator=gen).bool(),
    }


def _triplets(n, dtype, gen):
    return {
        "anchor": randn((n, DIM), dtype, gen),
        "positive": randn((n, DIM), dtype, gen),
        "negative": randn((n, DIM), dtype, gen),
    }


def _batch(n, dtype, gen):
    return {"embeddings": randn((n, DIM), dtype, gen, 0.5), "labels": _labels(n, gen)}


def _batch_triplet_case(mining: str, *, soft_margin: bool = False, distance: str = "euclidean") -> Case:
    kw = {"margin": 0.3, "mining": mining, "soft_margin": soft_margin, "distance": distance}
    return Case(
        "batch_triplet_loss",
        _batch,
        lambda d, r: LF.batch_triplet_loss(**d, **kw, reduction=r),
        lambda r: LN.TripletLoss(**kw, reduction=r),
        grad_keys=("embeddings",),
        mean_is_mean_of_none=False,  # 'mean' divides by the number of valid triplets
        batch_split=False,  # each anchor's triplets depend on the whole batch
    )


CASES = [
    Case(
        "center_loss",
        _center,
        lambda d, r: LF.center_loss(d["input"], d["target"], _fixed_centers(d["input"]), reduction=r),
        lambda r: LN.CenterLoss(NUM_CLASSES, DIM, reduction=r),
        module_reference=lambda m, d, r: LF.center_loss(d["input"], d["target"], m.centers, reduction=r),
        stateful=True,
        labels="target",
        num_classes=NUM_CLASSES,
    ),
    Case(
        "contrastive_loss",
        _pairs,
        lambda d, r: LF.contrastive_loss(**d, margin=1.5, reduction=r),
        lambda r: LN.ContrastiveLoss(margin=1.5, reduction=r),
        grad_keys=("x1", "x2"),
    ),
    Case(
        "batch_contrastive_loss",
        _batch,
        lambda d, r: LF.batch_contrastive_loss(**d, margin=1.0, reduction=r),
        lambda r: LN.BatchContrastiveLoss(margin=1.0, reduction=r),
        grad_keys=("embeddings",),
        mean_is_mean_of_none=False,  # 'mean' divides by the number of pairs
        batch_split=False,
    ),
    Case(
        "triplet_margin_loss",
        _triplets,
        lambda d, r: LF.triplet_margin_loss(**d, margin=0.5, reduction=r),
        lambda r: LN.TripletMarginLoss(margin=0.5, reduction=r),
        grad_keys=("anchor", "positive", "negative"),
    ),
    Case(  # torch's other options: the distance swap and another p-norm
        "triplet_margin_loss",
        _triplets,
        lambda d, r: LF.triplet_margin_loss(**d, margin=2.0, p=1.5, swap=True, reduction=r),
        lambda r: LN.TripletMarginLoss(margin=2.0, p=1.5, swap=True, reduction=r),
        grad_keys=("anchor", "positive", "negative"),
    ),
    Case(
        "facenet_triplet_loss",
        _triplets,
        lambda d, r: LF.facenet_triplet_loss(**d, margin=1.5, reduction=r),
        lambda r: LN.FaceNetTripletLoss(margin=1.5, reduction=r),
        grad_keys=("anchor", "positive", "negative"),
    ),
    _batch_triplet_case("batch_hard"),
    _batch_triplet_case("semi_hard"),
    _batch_triplet_case("batch_all"),
    _batch_triplet_case("batch_hard", soft_margin=True),
    _batch_triplet_case("semi_hard", distance="squared_euclidean"),
    _batch_triplet_case("batch_all", distance="squared_euclidean"),
]
