"""Contract cases for the focal family."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _binary(n, dtype, gen):
    target = (torch.rand((n, 4), generator=gen) < 0.3).to(dtype)
    return {"input": randn((n, 4), dtype, gen, 3.0), "target": target}


def _soft(n, dtype, gen):
    # label-smoothed binary targets and quality (IoU-like) targets in (0, 1)
    target = torch.rand((n, 4), generator=gen, dtype=torch.float64).to(dtype)
    return {"input": randn((n, 4), dtype, gen, 3.0), "target": target}


def _indices(n, dtype, gen):
    return {"input": randn((n, 5), dtype, gen, 2.0), "target": torch.randint(0, 5, (n,), generator=gen)}


CASES = [
    Case(
        "sigmoid_focal_loss",
        _binary,
        lambda d, r: LF.sigmoid_focal_loss(**d, reduction=r),
        lambda r: LN.SigmoidFocalLoss(reduction=r),
    ),
    Case(
        "sigmoid_focal_loss",
        _soft,
        lambda d, r: LF.sigmoid_focal_loss(**d, gamma=0.5, reduction=r),
        lambda r: LN.SigmoidFocalLoss(gamma=0.5, reduction=r),
    ),
    Case(
        "softmax_focal_loss",
        _indices,
        lambda d, r: LF.softmax_focal_loss(**d, gamma=1.5, reduction=r),
        lambda r: LN.SoftmaxFocalLoss(gamma=1.5, reduction=r),
        labels="target",
        num_classes=5,
    ),
]
