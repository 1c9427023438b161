"""Sigmoid focal loss and GHM-C, forward + backward at 100000 anchors x 80 classes (float32).

Candidates: losskit's default eager path (the fused chunked kernel of ``losskit._kernels.focal`` /
``_kernels.ghm`` on the CPU), the same call with soft targets (the kernel is exact for them: no
faster binary special case), the user's ``torch.compile`` of a function calling the loss (the
definition compiled by inductor), torchvision's ``sigmoid_focal_loss`` eager and compiled when
torchvision is installed, the naive composition of the paper's formula, an mmdetection-style GHM-C
loop over bins, and torch's BCE with logits on the same tensor, the baseline the targets are stated
against. ``quick`` uses 10000 x 80.

Targets (issue 11): eager sigmoid focal <= 1.0x BCE's time and <= 0.5x its peak memory; compiled
no slower than torchvision compiled; GHM-C near 1.2x BCE; cold first call <= 2x warm + 0.2 s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_focal
    from .common import Bench

try:
    from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss
except ImportError:  # optional peer
    tv_sigmoid_focal_loss = None

BASELINE = "torch BCE"


def _setup(n: int, c: int):
    def setup() -> dict:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=gen) * 3
        y = (torch.rand(n, c, generator=gen) < 0.01).float()  # sparse positives, as in detection
        soft = y * torch.rand(n, c, generator=gen)  # IoU-aware quality targets on the positives
        return {"input": x.requires_grad_(True), "target": y, "soft": soft}

    return setup


def naive_focal(d: dict, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """The paper's formula composed from torch ops, as torchvision writes it."""
    x, y = d["input"], d["target"]
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    return ((alpha * y + (1 - alpha) * (1 - y)) * loss).mean()


def naive_ghmc(d: dict, bins: int = 10) -> Tensor:
    """The authors' GHM-C: a Python loop over bins with a host sync per bin."""
    x, y = d["input"], d["target"]
    g = (torch.sigmoid(x).detach() - y).abs()
    edges = torch.arange(bins + 1, dtype=x.dtype) / bins
    edges[-1] += 1e-6
    weights = torch.zeros_like(x)
    tot, n = float(x.numel()), 0
    for i in range(bins):
        inds = (g >= edges[i]) & (g < edges[i + 1])
        num = inds.sum().item()
        if num > 0:
            weights[inds] = tot / num
            n += 1
    weights = weights / max(n, 1)
    return F.binary_cross_entropy_with_logits(x, y, weights, reduction="sum") / tot


def _torchvision(compiled: bool):
    if tv_sigmoid_focal_loss is None:
        return None
    fn = torch.compile(tv_sigmoid_focal_loss) if compiled else tv_sigmoid_focal_loss
    return lambda d: fn(d["input"], d["target"], reduction="mean")


def _focal(d: dict) -> Tensor:
    return LF.sigmoid_focal_loss(d["input"], d["target"])


def _bce(d: dict) -> Tensor:
    return F.binary_cross_entropy_with_logits(d["input"], d["target"])


def benchmarks(quick: bool) -> list[Bench]:
    n, c = (10_000, 80) if quick else (100_000, 80)
    bytes_moved = 4 * n * c * 3  # read x and y, write the gradient
    compiled_focal = torch.compile(_focal)  # the user's compile; compiled on its first call
    return [
        Bench(
            name="sigmoid_focal_loss",
            family="focal",
            size=f"{n} x {c}",
            setup=_setup(n, c),
            candidates={
                "losskit": _focal,
                "losskit, soft targets": lambda d: LF.sigmoid_focal_loss(d["input"], d["soft"]),
                "losskit+compile": compiled_focal,
                "torchvision": _torchvision(False),
                "torchvision+compile": _torchvision(True),
                "naive": naive_focal,
                BASELINE: _bce,
            },
            baseline=BASELINE,
            bytes_moved=bytes_moved,
            notes="targets: eager <= 1.0x and <= 0.5x the peak memory of torch BCE; "
            "losskit+compile no slower than torchvision+compile",
        ),
        Bench(
            name="ghmc_loss",
            family="focal",
            size=f"{n} x {c}",
            setup=_setup(n, c),
            candidates={
                "losskit": lambda d: LF.ghmc_loss(d["input"], d["target"], bins=10),
                "torchvision focal": _torchvision(False),
                "naive (authors' loop)": naive_ghmc,
                BASELINE: _bce,
            },
            baseline=BASELINE,
            bytes_moved=bytes_moved,
            notes="target: near 1.2x torch BCE",
        ),
    ]
