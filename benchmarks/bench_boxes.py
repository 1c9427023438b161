"""GIoU, DIoU and CIoU losses, forward + backward on 1,000,000 aligned box pairs.

Candidates: losskit's default eager path (the kernel of ``losskit._kernels.boxes``: the loss and its
closed-form gradient in one pass over 64K-pair chunks of coordinate planes), losskit under the user's
``torch.compile`` of a function that calls the loss (the definition, compiled), torchvision's
``generalized_box_iou_loss``, ``distance_box_iou_loss`` and ``complete_box_iou_loss`` eager and under
``torch.compile`` when torchvision is installed, and the naive composition of the papers' formulas from
torch ops (what torchvision does, without its masked intersection). The floor is bandwidth: read two
``(N, 4)`` box tensors, write the ``(N, 4)`` gradient. ``quick`` uses 100,000 pairs.

Targets (issue 11): the eager path at least 2x faster than torchvision eager at at most half its peak
memory; compiled, at least 3x faster than torchvision compiled; a cold first call (fresh process) at most
2x the warm time plus 0.2 s, since nothing compiles inside losskit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_boxes
    from .common import Bench

try:
    from torchvision import ops as tv_ops
except ImportError:  # optional peer
    tv_ops = None


def _setup(n: int):
    def setup() -> dict:
        gen = torch.Generator().manual_seed(0)

        def boxes() -> Tensor:  # non-square boxes spread so that about half the pairs overlap
            xy = torch.rand(n, 2, generator=gen) * 8
            wh = torch.rand(n, 2, generator=gen) * 4 + 0.5
            return torch.cat([xy, xy + wh], dim=-1)

        return {"input": boxes().requires_grad_(True), "target": boxes()}

    return setup


def naive(kind: str, p: Tensor, t: Tensor, eps: float = 1e-7) -> Tensor:
    """The papers' formulas composed from torch ops, mean over pairs."""
    x1, y1, x2, y2 = p.unbind(-1)
    u1, v1, u2, v2 = t.unbind(-1)
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0) * (
        torch.min(y2, v2) - torch.max(y1, v1)
    ).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    iou = inter / (union + eps)
    cw = torch.max(x2, u2) - torch.min(x1, u1)
    ch = torch.max(y2, v2) - torch.min(y1, v1)
    if kind == "giou":
        return (1 - iou + (cw * ch - union) / (cw * ch + eps)).mean()
    rho2 = ((x1 + x2 - u1 - u2) ** 2 + (y1 + y2 - v1 - v2) ** 2) / 4
    loss = 1 - iou + rho2 / (cw**2 + ch**2 + eps)
    if kind == "ciou":
        v = (4 / math.pi**2) * (torch.atan((u2 - u1) / (v2 - v1)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        loss = loss + alpha * v
    return loss.mean()


_LOSSKIT = {
    "giou": LF.generalized_box_iou_loss,
    "diou": LF.distance_box_iou_loss,
    "ciou": LF.complete_box_iou_loss,
}
_TV_NAMES = {
    "giou": "generalized_box_iou_loss",
    "diou": "distance_box_iou_loss",
    "ciou": "complete_box_iou_loss",
}


def _torchvision(kind: str, compiled: bool):
    if tv_ops is None:
        return None
    fn = getattr(tv_ops, _TV_NAMES[kind])
    if compiled:
        fn = torch.compile(fn)
    return lambda d: fn(d["input"], d["target"], reduction="mean")


def _losskit_compiled(kind: str):
    """The user's ``torch.compile`` of a function that calls the loss: the definition runs, compiled."""
    loss = _LOSSKIT[kind]
    step = torch.compile(lambda input, target: loss(input, target))
    return lambda d: step(d["input"], d["target"])


def benchmarks(quick: bool) -> list[Bench]:
    n = 100_000 if quick else 1_000_000
    bytes_moved = 4 * n * 4 * 3  # read input and target (N, 4), write the (N, 4) gradient, float32
    out = []
    for kind, fn in _LOSSKIT.items():
        out.append(
            Bench(
                name=fn.__name__,
                family="boxes",
                size=f"{n} pairs",
                setup=_setup(n),
                candidates={
                    "losskit": lambda d, fn=fn: fn(d["input"], d["target"]),
                    "losskit+compile": _losskit_compiled(kind),
                    "torchvision": _torchvision(kind, False),
                    "torchvision+compile": _torchvision(kind, True),
                    "naive": lambda d, kind=kind: naive(kind, d["input"], d["target"]),
                },
                baseline="torchvision" if tv_ops is not None else "naive",
                bytes_moved=bytes_moved,
                notes="targets: losskit >= 2x faster than torchvision eager at <= 1/2 its peak memory; "
                "losskit+compile >= 3x faster than torchvision+compile; cold <= 2x warm + 0.2 s",
            )
        )
    return out
