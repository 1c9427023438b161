"""Contract cases for the margin-softmax functions on cosine logits and the feature-based margin losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn
from losskit.functional._validation import no_autocast

C, D, K = 5, 4, 3


def _cosine(n, dtype, gen):
    cos = torch.rand((n, C), generator=gen, dtype=torch.float64) * 2 - 1
    return {"input": cos.to(dtype), "target": torch.randint(0, C, (n,), generator=gen)}


def _cosine_norms(n, dtype, gen):
    d = _cosine(n, dtype, gen)
    d["norms"] = (torch.rand((n,), generator=gen, dtype=torch.float64) * 4 + 1).to(dtype)
    return d


def _features(n, dtype, gen):
    return {"input": randn((n, D), dtype, gen, 2.0), "target": torch.randint(0, C, (n,), generator=gen)}


# a fixed class-weight matrix: kept out of the inputs so the batch-split test does not slice it.
_W = torch.randn((C, D), generator=torch.Generator().manual_seed(7), dtype=torch.float64)


_CENTERS = torch.randn((C * K, D), generator=torch.Generator().manual_seed(8), dtype=torch.float64)


def _w(d):
    return _W.to(d["input"].device, d["input"].dtype)


def _subcenter_cosine(x, centers):
    """(N, C * K) cosines, class-major, as SubCenterArcFaceLoss computes them (autocast off, as it)."""
    with no_autocast(x.device):
        return F.linear(F.normalize(x, dim=1), F.normalize(centers.to(x.dtype), dim=1))


def _module(cls, **kw):
    def build(reduction):
        torch.manual_seed(3)
        return cls(D, C, reduction=reduction, **kw)

    return build


def _call_module(module, d):
    return module(d["input"], d["target"])


CASES = [
    Case(
        "normface_loss",
        _cosine,
        lambda d, r: LF.normface_loss(d["input"], d["target"], scale=8.0, reduction=r),
        labels="target",
        num_classes=C,
    ),
    Case(
        "cosface_loss",
        _cosine,
        lambda d, r: LF.cosface_loss(d["input"], d["target"], scale=16.0, reduction=r),
        labels="target",
        num_classes=C,
    ),
    Case(
        "am_softmax_loss",
        _cosine,
        lambda d, r: LF.am_softmax_loss(d["input"], d["target"], reduction=r),
        labels="target",
        num_classes=C,
    ),
    Case(
        "arcface_loss",
        _cosine,
        lambda d, r: LF.arcface_loss(d["input"], d["target"], scale=16.0, reduction=r),
        labels="target",
        num_classes=C,
    ),
    Case(
        "combined_margin_loss",
        _cosine,
        lambda d, r: LF.combined_margin_loss(
            d["input"], d["target"], scale=16.0, m1=0.9, m2=0.4, m3=0.15, reduction=r
        ),
        labels="target",
        num_classes=C,
    ),
    Case(
        "sphereface_loss",
        _cosine_norms,
        lambda d, r: LF.sphereface_loss(d["input"], d["target"], scale=d["norms"], lambda_=5.0, reduction=r),
        grad_keys=("input", "norms"),
        labels="target",
        num_classes=C,
    ),
    Case(
        "subcenter_arcface_loss",
        _features,
        lambda d, r: LF.subcenter_arcface_loss(
            _subcenter_cosine(d["input"], _CENTERS.to(d["input"].device, d["input"].dtype)),
            d["target"],
            subcenters=K,
            scale=16.0,
            reduction=r,
        ),
        module=_module(LN.SubCenterArcFaceLoss, subcenters=K, scale=16.0),
        call_module=_call_module,
        module_reference=lambda m, d, r: LF.subcenter_arcface_loss(
            _subcenter_cosine(d["input"], m.centers.flatten(0, 1)),
            d["target"],
            subcenters=K,
            scale=16.0,
            reduction=r,
        ),
        labels="target",
        num_classes=C,
    ),
    Case(
        "l2_softmax_loss",
        _features,
        lambda d, r: LF.l2_softmax_loss(d["input"], _w(d), d["target"], alpha=3.0, reduction=r),
        module=_module(LN.L2SoftmaxLoss, alpha=3.0, bias=True),
        call_module=_call_module,
        module_reference=lambda m, d, r: LF.l2_softmax_loss(
            d["input"], m.weight, d["target"], alpha=3.0, bias=m.bias, reduction=r
        ),
        labels="target",
        num_classes=C,
    ),
    Case(
        "large_margin_softmax_loss",
        _features,
        lambda d, r: LF.large_margin_softmax_loss(
            d["input"], _w(d), d["target"], margin=3, lambda_=2.0, reduction=r
        ),
        module=_module(LN.LargeMarginSoftmaxLoss, margin=3, anneal=True, base=100.0, gamma=1.0),
        call_module=_call_module,
        module_reference=lambda m, d, r: LF.large_margin_softmax_loss(
            d["input"],
            m.weight,
            d["target"],
            margin=3,
            lambda_=LF.sphereface_lambda(int(m.iteration), base=100.0, gamma=1.0),
            reduction=r,
        ),
        stateful=True,
        labels="target",
        num_classes=C,
    ),
]
