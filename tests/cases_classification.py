"""Contract cases for the classification family."""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn


def _binary(n, dtype, gen):
    target = (torch.rand((n, 3), generator=gen) < 0.4).to(dtype)
    return {"input": randn((n, 3), dtype, gen, 2.0), "target": target}


def _indices(n, dtype, gen):
    return {"input": randn((n, 5), dtype, gen, 2.0), "target": torch.randint(0, 5, (n,), generator=gen)}


CASES = [
    Case(
        "binary_cross_entropy_with_logits",
        _binary,
        lambda d, r: LF.binary_cross_entropy_with_logits(**d, reduction=r),
        lambda r: LN.BCEWithLogitsLoss(reduction=r),
    ),
    Case(
        "cross_entropy",
        _indices,
        lambda d, r: LF.cross_entropy(**d, label_smoothing=0.1, reduction=r),
        lambda r: LN.CrossEntropyLoss(label_smoothing=0.1, reduction=r),
    ),
]
