"""Contract cases for the regression family."""

from __future__ import annotations

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _pair(n, dtype, gen):
    return {"input": randn((n, 3), dtype, gen, 2.0), "target": randn((n, 3), dtype, gen, 2.0)}


CASES = [
    Case(
        "l1_loss",
        _pair,
        lambda d, r: LF.l1_loss(**d, reduction=r),
        lambda r: LN.L1Loss(reduction=r),
    ),
    Case("mse_loss", _pair, lambda d, r: LF.mse_loss(**d, reduction=r), lambda r: LN.MSELoss(reduction=r)),
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
]
