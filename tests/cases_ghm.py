"""Contract cases for the GHM family (weights depend on the whole batch: no batch-split test)."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _binary(n, dtype, gen):
    target = (torch.rand((n, 4), generator=gen) < 0.3).to(dtype)
    return {"input": randn((n, 4), dtype, gen, 3.0), "target": target}


def _regression(n, dtype, gen):
    return {"input": randn((n, 4), dtype, gen, 0.1), "target": randn((n, 4), dtype, gen, 0.1)}


CASES = [
    Case(
        "ghmc_loss",
        _binary,
        lambda d, r: LF.ghmc_loss(**d, bins=10, reduction=r),
        lambda r: LN.GHMCLoss(bins=10, momentum=0.75, reduction=r),
        batch_split=False,
        stateful=True,
    ),
    Case(
        "ghmr_loss",
        _regression,
        lambda d, r: LF.ghmr_loss(**d, mu=0.02, bins=10, reduction=r),
        lambda r: LN.GHMRLoss(mu=0.02, bins=10, momentum=0.75, reduction=r),
        batch_split=False,
        stateful=True,
    ),
]
