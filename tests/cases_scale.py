"""Contract cases for the fused margin softmax and the margin Modules that own class centres.

The function cases keep the centres fixed (outside the inputs, so the batch-split test does not slice
them). The Module cases compare each Module with the UNFUSED path: the cosine-logit function of
``losskit.functional.margin`` applied to the cosines between the inputs and the Module's own centres.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn

C, D, CHUNK = 7, 4, 3  # a chunk that does not divide C

_W = torch.randn((C, D), generator=torch.Generator().manual_seed(11), dtype=torch.float64)


def _features(n, dtype, gen):
    return {"input": randn((n, D), dtype, gen, 2.0), "target": torch.randint(0, C, (n,), generator=gen)}


def _cosine(x, centers):
    return F.linear(F.normalize(x, dim=1), F.normalize(centers, dim=1))


def _fused(d, r, phi, scale):
    x = d["input"]
    return LF.margin_softmax_loss(
        x, _W.to(x.device, x.dtype), d["target"], target_logit=phi, scale=scale, chunk_size=CHUNK, reduction=r
    )


def _module(cls, **kw):
    def build(reduction):
        torch.manual_seed(3)
        return cls(D, C, chunk_size=CHUNK, reduction=reduction, **kw)

    return build


def _call_module(module, d):
    return module(d["input"], d["target"])


_ARC = functools.partial(LF.arcface_target_logit, margin=0.5)


def _sphere_reference(m, d, r):
    x = d["input"]
    return LF.sphereface_loss(
        _cosine(x, m.centers), d["target"], scale=x.norm(dim=1), lambda_=m.current_lambda(), reduction=r
    )


CASES = [
    Case(
        "margin_softmax_loss",
        _features,
        lambda d, r: _fused(d, r, _ARC, 16.0),
        module=_module(LN.ArcFaceLoss, scale=16.0),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=lambda m, d, r: LF.arcface_loss(
            _cosine(d["input"], m.centers), d["target"], scale=16.0, reduction=r
        ),
    ),
    Case(
        "margin_softmax_loss",
        _features,
        lambda d, r: _fused(d, r, functools.partial(LF.cosface_target_logit, margin=0.35), 16.0),
        module=_module(LN.CosFaceLoss, scale=16.0),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=lambda m, d, r: LF.cosface_loss(
            _cosine(d["input"], m.centers), d["target"], scale=16.0, reduction=r
        ),
    ),
    Case(
        "margin_softmax_loss",
        _features,
        lambda d, r: _fused(d, r, functools.partial(LF.cosface_target_logit, margin=0.35), 30.0),
        module=_module(LN.AMSoftmaxLoss),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=lambda m, d, r: LF.am_softmax_loss(
            _cosine(d["input"], m.centers), d["target"], reduction=r
        ),
    ),
    Case(
        "margin_softmax_loss",
        _features,
        lambda d, r: _fused(
            d, r, functools.partial(LF.combined_margin_target_logit, m1=0.9, m2=0.4, m3=0.15), 16.0
        ),
        module=_module(LN.CombinedMarginLoss, scale=16.0, m1=0.9, m2=0.4, m3=0.15),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=lambda m, d, r: LF.combined_margin_loss(
            _cosine(d["input"], m.centers), d["target"], scale=16.0, m1=0.9, m2=0.4, m3=0.15, reduction=r
        ),
    ),
    Case(
        "margin_softmax_loss",
        _features,
        # SphereFace keeps the feature norms as the per-row scale
        lambda d, r: _fused(
            d, r, functools.partial(LF.sphereface_target_logit, margin=4, lambda_=5.0), d["input"].norm(dim=1)
        ),
        module=_module(LN.SphereFaceLoss, base=100.0, gamma=1.0),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=_sphere_reference,
        stateful=True,
    ),
    Case(
        "margin_softmax_loss",
        _features,
        lambda d, r: _fused(d, r, lambda c: c, 8.0),
        module=_module(LN.NormFaceLoss, scale=8.0),
        call_module=_call_module,
        labels="target",
        num_classes=C,
        module_reference=lambda m, d, r: LF.normface_loss(
            _cosine(d["input"], m.centers), d["target"], scale=8.0, reduction=r
        ),
    ),
]
