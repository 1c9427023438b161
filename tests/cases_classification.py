"""Contract cases for the classification family (torch-named: torch's signatures, keyword calls here).

Cross-entropy has three cases: class indices (``labels=``, the range and dtype rows), class indices
with per-class weights (``'mean'`` divides by the targets' weight sum), and probability targets.
"""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn

# per-class weights of the weighted cross-entropy case; class 3 weighs 0 (counted in no divisor)
CLASS_WEIGHT = (0.5, 1.0, 2.0, 0.0, 1.5)


def _binary(n, dtype, gen):
    target = (torch.rand((n, 3), generator=gen) < 0.4).to(dtype)
    return {"input": randn((n, 3), dtype, gen, 2.0), "target": target}


def _binary_weighted(n, dtype, gen):
    weight = (torch.rand((n, 3), generator=gen, dtype=torch.float64) + 0.5).to(dtype)
    pos_weight = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64).to(dtype)
    return {**_binary(n, dtype, gen), "weight": weight, "pos_weight": pos_weight}


def _indices(n, dtype, gen):
    return {"input": randn((n, 5), dtype, gen, 2.0), "target": torch.randint(0, 5, (n,), generator=gen)}


def _indices_weighted(n, dtype, gen):
    # classes 0-2 and 4 only, so a non-empty batch never has a weight sum of 0
    target = torch.tensor([0, 1, 2, 4])[torch.randint(0, 4, (n,), generator=gen)]
    weight = torch.tensor(CLASS_WEIGHT, dtype=torch.float64).to(dtype)
    return {"input": randn((n, 5), dtype, gen, 2.0), "target": target, "weight": weight}


def _probabilities(n, dtype, gen):
    target = torch.softmax(randn((n, 5), torch.float64, gen, 2.0), dim=1).to(dtype)
    return {"input": randn((n, 5), dtype, gen, 2.0), "target": target}


def _weighted_ce_module(r):
    return LN.CrossEntropyLoss(torch.tensor(CLASS_WEIGHT), label_smoothing=0.1, reduction=r)


CASES = [
    Case(
        "binary_cross_entropy_with_logits",
        _binary,
        lambda d, r: LF.binary_cross_entropy_with_logits(**d, reduction=r),
        lambda r: LN.BCEWithLogitsLoss(reduction=r),
    ),
    Case(
        "binary_cross_entropy_with_logits",
        _binary_weighted,
        lambda d, r: LF.binary_cross_entropy_with_logits(**d, reduction=r),
        lambda r: LN.BCEWithLogitsLoss(reduction=r),
        # the buffers of the Module are None: it is called with the function's own weights below
        call_module=lambda m, d: m(d["input"], d["target"]),
        module_reference=lambda m, d, r: LF.binary_cross_entropy_with_logits(
            d["input"], d["target"], reduction=r
        ),
        batch_split=False,  # pos_weight is (C,), not per sample
    ),
    Case(
        "cross_entropy",
        _indices,
        lambda d, r: LF.cross_entropy(**d, label_smoothing=0.1, reduction=r),
        lambda r: LN.CrossEntropyLoss(label_smoothing=0.1, reduction=r),
        labels="target",
        num_classes=5,
    ),
    Case(
        "cross_entropy",
        _indices_weighted,
        lambda d, r: LF.cross_entropy(**d, label_smoothing=0.1, reduction=r),
        _weighted_ce_module,
        call_module=lambda m, d: m(d["input"], d["target"]),
        mean_is_mean_of_none=False,  # divides by the targets' weight sum
        batch_split=False,  # weight is (C,), not per sample
        labels="target",
        num_classes=5,
    ),
    Case(
        "cross_entropy",
        _probabilities,
        lambda d, r: LF.cross_entropy(**d, label_smoothing=0.1, reduction=r),
        lambda r: LN.CrossEntropyLoss(label_smoothing=0.1, reduction=r),
    ),
]
