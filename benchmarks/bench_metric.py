"""Triplet losses, forward + backward: losskit against pytorch-metric-learning, torch and the naive
composition of the papers' formulas.

Mined triplets: sizes follow the re-identification setting of Hermans et al., a P x K batch (128
identities x 4 images) of 512 L2-normalised 128-d embeddings (``quick``: 128 x 64). Explicit triplets:
``triplet_margin_loss`` (torch's name and definition) against torch on 65536 triplets of 128-d rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_metric
    from .common import Bench

try:
    from pytorch_metric_learning import losses as pml_losses
    from pytorch_metric_learning import miners as pml_miners
except ImportError:  # optional peer
    pml_losses = pml_miners = None


def _setup(b: int, d: int, k: int = 4) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(b, d, generator=gen), dim=1)
    labels = torch.arange(b) // k  # P identities x K samples each
    return {"embeddings": x.requires_grad_(True), "labels": labels}


def _naive_distances(x: Tensor) -> Tensor:
    return torch.cdist(x, x)  # (B, B)


def naive_batch_hard(inputs: dict, margin: float = 0.2) -> Tensor:
    """Hermans et al. eq. 5 as usually written: full distance matrix, masked max and min."""
    x, y = inputs["embeddings"], inputs["labels"]
    d = _naive_distances(x)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    hardest_pos = (d * (same & ~eye)).max(dim=1).values
    hardest_neg = (d + 1e9 * same).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def naive_batch_all(inputs: dict, margin: float = 0.2) -> Tensor:
    """Every triplet through a (B, B, B) tensor: the O(B^3) memory the losskit version avoids."""
    x, y = inputs["embeddings"], inputs["labels"]
    d = _naive_distances(x)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    valid = (same & ~eye)[:, :, None] & ~same[:, None, :]  # (B, B, B)
    loss = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid
    return loss.sum() / valid.sum()


def naive_semi_hard(inputs: dict, margin: float = 0.2) -> Tensor:
    """FaceNet's semi-hard choice through a (B, B, B) tensor, with the same fallback as losskit."""
    x, y = inputs["embeddings"], inputs["labels"]
    d = _naive_distances(x)
    same = y[:, None] == y[None, :]
    pos = same & ~torch.eye(len(y), dtype=torch.bool)
    inf = torch.tensor(float("inf"))
    farther = ~same[:, None, :] & (d[:, None, :] > d[:, :, None])  # (a, p, n)
    closest = torch.where(farther, d[:, None, :], inf).min(dim=2).values  # (B, B)
    fallback = torch.where(~same, d, -inf).max(dim=1, keepdim=True).values  # (B, 1)
    d_an = torch.where(torch.isfinite(closest), closest, fallback)
    return (F.relu(d - d_an + margin) * pos).sum() / pos.sum()


def _pml(miner_factory) -> object:
    if pml_losses is None:
        return None
    loss_fn = pml_losses.TripletMarginLoss(margin=0.2)
    miner = miner_factory() if miner_factory is not None else None

    def run(inputs: dict) -> Tensor:
        x, y = inputs["embeddings"], inputs["labels"]
        return loss_fn(x, y, miner(x, y)) if miner is not None else loss_fn(x, y)

    return run


def _setup_triplets(n: int, d: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(n, d, generator=gen).requires_grad_(True) for k in ("a", "p", "n")}


def benchmarks(quick: bool) -> list[Bench]:
    n = 4096 if quick else 65536
    explicit = Bench(
        name="triplet_margin_loss",
        family="metric",
        size=f"{n} x 128",
        setup=lambda: _setup_triplets(n, 128),
        candidates={
            "losskit": lambda i: LF.triplet_margin_loss(i["a"], i["p"], i["n"]),
            "torch": lambda i: F.triplet_margin_loss(i["a"], i["p"], i["n"]),
        },
        baseline="torch",
        bytes_moved=6 * n * 128 * 4,
        notes="torch's name, signature and definition (pairwise_distance with eps, margin 1).",
    )
    b, d = (128, 64) if quick else (512, 128)
    size = f"{b} x {d}"
    gram_flops = 2.0 * b * b * d  # the one (B, D) x (D, B) product
    io = 2 * b * d * 4  # read the embeddings, write their gradient (float32)
    return [
        explicit,
        Bench(
            name="batch_triplet_loss[batch_hard]",
            family="metric",
            size=size,
            setup=lambda: _setup(b, d),
            candidates={
                "losskit": lambda i: LF.batch_triplet_loss(i["embeddings"], i["labels"], margin=0.2),
                "naive": naive_batch_hard,
                "pytorch-metric-learning": _pml(pml_miners.BatchHardMiner if pml_miners else None),
            },
            baseline="naive",
            bytes_moved=io,
            flops=gram_flops,
            notes="PML: TripletMarginLoss(margin=0.2) + BatchHardMiner (mean over non-zero triplets).",
        ),
        Bench(
            name="batch_triplet_loss[batch_all]",
            family="metric",
            size=size,
            setup=lambda: _setup(b, d),
            candidates={
                "losskit": lambda i: LF.batch_triplet_loss(
                    i["embeddings"], i["labels"], margin=0.2, mining="batch_all"
                ),
                "naive": naive_batch_all,
                "pytorch-metric-learning": _pml(None),
            },
            baseline="naive",
            bytes_moved=io,
            flops=2 * gram_flops,
            notes="naive builds (B, B, B) tensors; losskit sorts negatives per anchor, O(B^2) memory. "
            "PML: TripletMarginLoss without miner (all triplets as index lists).",
        ),
        Bench(
            name="batch_triplet_loss[semi_hard]",
            family="metric",
            size=size,
            setup=lambda: _setup(b, d),
            candidates={
                "losskit": lambda i: LF.batch_triplet_loss(
                    i["embeddings"], i["labels"], margin=0.2, mining="semi_hard"
                ),
                "naive": naive_semi_hard,
            },
            baseline="naive",
            bytes_moved=io,
            flops=2 * gram_flops,
            notes="naive: FaceNet's choice through (B, B, B) masks. PML's semi-hard miner keeps every "
            "semi-hard triplet rather than the closest one, a different loss, so it is not timed here.",
        ),
    ]
