"""Contract cases for the GHM family (weights depend on the whole batch: no batch-split test)."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _binary(n, dtype, gen):
    target = (torch.rand((n, 4), generator=gen) < 0.3).to(dtype)
    return {"input": randn((n, 4), dtype, gen, 3.0), "target": target}


def _masked(n, dtype, gen):
    inputs = _binary(n, dtype, gen)
    inputs["label_weight"] = (torch.rand((n, 4), generator=gen) < 0.8).to(dtype)  # counted elements
    inputs["weight"] = torch.rand((n, 4), generator=gen, dtype=torch.float64).to(dtype)
    return inputs


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
        "ghmc_loss",
        _masked,
        lambda d, r: LF.ghmc_loss(**d, bins=7, reduction=r),
        lambda r: LN.GHMCLoss(bins=7, reduction=r),
        batch_split=False,
        stateful=True,
        mean_is_mean_of_none=False,  # 'mean' divides by the number of counted elements
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
