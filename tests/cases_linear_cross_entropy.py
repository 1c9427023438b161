"""Contract cases for the linear cross-entropy (the language-model head's loss).

Two cases. The first keeps the head fixed outside the inputs (so the batch-split test does not slice
it) and turns every extra on at once: bias, label smoothing, z-loss and soft-capping, over a vocabulary
that the block size does not divide; no target is ignored, so ``'mean'`` is ``none.mean()``. The second
passes the head and the class weights as inputs (their gradients and devices checked too) with every
odd token ignored: ``'mean'`` then divides by the counted targets' weight sum. Its ``ignore_index`` is
100, so that the ignored labels survive the cast to every integer dtype of the label-dtype row.
"""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn

V, D, CHUNK = 11, 4, 3  # a block size that does not divide the vocabulary
IGNORE = 100
EXTRAS = {"label_smoothing": 0.1, "z_loss": 0.01, "softcap": 4.0}

_gen = torch.Generator().manual_seed(13)
_W = torch.randn((V, D), generator=_gen, dtype=torch.float64)
_B = torch.randn((V,), generator=_gen, dtype=torch.float64)
_CLASS_WEIGHT = torch.rand((V,), generator=_gen, dtype=torch.float64) + 0.5


def _tokens(n, dtype, gen):
    return {"input": randn((n, D), dtype, gen, 2.0), "target": torch.randint(0, V, (n,), generator=gen)}


def _head(n, dtype, gen):
    target = torch.randint(0, V, (n,), generator=gen)
    target[1::2] = IGNORE  # every odd token ignored; token 0 counted (NaN in it must come out)
    return {
        "input": randn((n, D), dtype, gen, 2.0),
        "target": target,
        "linear_weight": _W.to(dtype),
        "linear_bias": _B.to(dtype),
        "weight": _CLASS_WEIGHT.to(dtype),
    }


def _fixed(d, r):
    x = d["input"]
    return LF.linear_cross_entropy(
        x,
        _W.to(x.device, x.dtype),
        d["target"],
        linear_bias=_B.to(x.device, x.dtype),
        chunk_size=CHUNK,
        reduction=r,
        **EXTRAS,
    )


def _module(reduction):
    torch.manual_seed(5)
    return LN.LinearCrossEntropyLoss(D, V, bias=True, chunk_size=CHUNK, reduction=reduction, **EXTRAS)


def _module_reference(m, d, r):
    return LF.linear_cross_entropy(
        d["input"], m.linear.weight, d["target"], linear_bias=m.linear.bias, reduction=r, **EXTRAS
    )


CASES = [
    Case(
        "linear_cross_entropy",
        _tokens,
        _fixed,
        module=_module,
        call_module=lambda m, d: m(d["input"], d["target"]),
        module_reference=_module_reference,
        labels="target",
        num_classes=V,
        variant="extras",
    ),
    Case(
        "linear_cross_entropy",
        _head,
        lambda d, r: LF.linear_cross_entropy(
            **d, ignore_index=IGNORE, label_smoothing=0.1, chunk_size=CHUNK, reduction=r
        ),
        grad_keys=("input", "linear_weight", "linear_bias"),
        mean_is_mean_of_none=False,  # divides by the counted targets' weight sum
        batch_split=False,  # the head and the class weights are not per token
        labels="target",
        num_classes=V,
        variant="head",
    ),
]
