"""Contract cases for the regression family (torch-named: torch's signatures, keyword calls here).

Each loss has an unweighted case (torch's fused op, and the reduced-L1 fast path where it is eligible)
and, where the function takes a per-element ``weight``, a weighted case: weighted L1/MSE divide the
mean by the sum of the weights, as torch 2.13, so their ``'mean'`` is not ``none.mean()``.
"""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _pair(n, dtype, gen):
    return {"input": randn((n, 3), dtype, gen, 2.0), "target": randn((n, 3), dtype, gen, 2.0)}


def _weighted(n, dtype, gen):
    # weights in [0.25, 1.75): positive, so the weight sum of a non-empty batch is never 0
    weight = (torch.rand((n, 3), generator=gen, dtype=torch.float64) * 1.5 + 0.25).to(dtype)
    return {**_pair(n, dtype, gen), "weight": weight}


CASES = [
    Case(
        "l1_loss",
        _pair,
        lambda d, r: LF.l1_loss(**d, reduction=r),
        lambda r: LN.L1Loss(reduction=r),
    ),
    Case(
        "l1_loss",
        _weighted,
        lambda d, r: LF.l1_loss(**d, reduction=r),
        lambda r: LN.L1Loss(reduction=r),
        mean_is_mean_of_none=False,
    ),
    Case("mse_loss", _pair, lambda d, r: LF.mse_loss(**d, reduction=r), lambda r: LN.MSELoss(reduction=r)),
    Case(
        "mse_loss",
        _weighted,
        lambda d, r: LF.mse_loss(**d, reduction=r),
        lambda r: LN.MSELoss(reduction=r),
        mean_is_mean_of_none=False,
    ),
    Case(
        "smooth_l1_loss",
        _pair,
        lambda d, r: LF.smooth_l1_loss(**d, beta=0.5, reduction=r),
        lambda r: LN.SmoothL1Loss(beta=0.5, reduction=r),
    ),
    Case(
        "huber_loss",
        _pair,
        lambda d, r: LF.huber_loss(**d, delta=0.7, reduction=r),
        lambda r: LN.HuberLoss(delta=0.7, reduction=r),
    ),
    Case(
        "huber_loss",
        _weighted,
        lambda d, r: LF.huber_loss(**d, delta=0.7, reduction=r),
        lambda r: LN.HuberLoss(delta=0.7, reduction=r),
    ),
]
