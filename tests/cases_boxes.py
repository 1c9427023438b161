"""Contract cases for the box-regression family (IoU, GIoU, DIoU, CIoU losses)."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case


def random_boxes(n: int, dtype: torch.dtype, gen: torch.Generator, spread: float = 4.0) -> torch.Tensor:
    """Valid, non-square xyxy boxes: corners in [0, spread), sizes in [0.5, 3.5)."""
    xy = torch.rand((n, 2), generator=gen, dtype=torch.float64) * spread
    wh = torch.rand((n, 2), generator=gen, dtype=torch.float64) * 3.0 + 0.5
    return torch.cat([xy, xy + wh], dim=-1).to(dtype)


def _pair(n, dtype, gen):
    return {"input": random_boxes(n, dtype, gen), "target": random_boxes(n, dtype, gen)}


CASES = [
    Case(
        "iou_loss",
        _pair,
        lambda d, r: LF.iou_loss(**d, reduction=r),
        lambda r: LN.IoULoss(reduction=r),
    ),
    Case(
        "iou_loss",
        _pair,
        lambda d, r: LF.iou_loss(**d, mode="log", reduction=r),
        lambda r: LN.IoULoss(mode="log", reduction=r),
    ),
    Case(
        "generalized_box_iou_loss",
        _pair,
        lambda d, r: LF.generalized_box_iou_loss(**d, reduction=r),
        lambda r: LN.GeneralizedBoxIoULoss(reduction=r),
    ),
    Case(
        "distance_box_iou_loss",
        _pair,
        lambda d, r: LF.distance_box_iou_loss(**d, reduction=r),
        lambda r: LN.DistanceBoxIoULoss(reduction=r),
    ),
    Case(
        "complete_box_iou_loss",
        _pair,
        lambda d, r: LF.complete_box_iou_loss(**d, reduction=r),
        lambda r: LN.CompleteBoxIoULoss(reduction=r),
    ),
    Case(
        "complete_box_iou_loss",
        _pair,
        lambda d, r: LF.complete_box_iou_loss(**d, gated=True, reduction=r),
        lambda r: LN.CompleteBoxIoULoss(gated=True, reduction=r),
    ),
    # eps = 0: the definition's 0/0 guards (and never the kernel), under every transform of the table
    Case(
        "generalized_box_iou_loss",
        _pair,
        lambda d, r: LF.generalized_box_iou_loss(**d, eps=0.0, reduction=r),
        lambda r: LN.GeneralizedBoxIoULoss(eps=0.0, reduction=r),
    ),
    Case(
        "complete_box_iou_loss",
        _pair,
        lambda d, r: LF.complete_box_iou_loss(**d, eps=0.0, reduction=r),
        lambda r: LN.CompleteBoxIoULoss(eps=0.0, reduction=r),
    ),
    # a target that needs a gradient too: the definition in eager mode as well
    Case(
        "distance_box_iou_loss",
        _pair,
        lambda d, r: LF.distance_box_iou_loss(**d, reduction=r),
        lambda r: LN.DistanceBoxIoULoss(reduction=r),
        grad_keys=("input", "target"),
    ),
]
