"""Contract cases for the contrastive family (NT-Xent, SupCon, CLIP, SigLIP).

Labels of NT-Xent and SupCon are identities, not class indices, so no ``labels=`` range check applies.
"""

from __future__ import annotations

import torch

import losskit.functional as LF
import losskit.nn as LN
from cases import Case, randn

DIM = 4


def _views(n, dtype, gen):
    # two views per sample (SimCLR's batch): rows 2k and 2k + 1 share a label
    return {"embeddings": randn((n, DIM), dtype, gen), "labels": torch.arange(n) // 2}


def _classes(n, dtype, gen):
    # several rows per class, so an anchor has more than one positive
    return {"embeddings": randn((n, DIM), dtype, gen), "labels": torch.arange(n) % 3}


def _pairs(n, dtype, gen, bias: bool = False):
    out = {
        "image_features": randn((n, DIM), dtype, gen, 0.5),
        "text_features": randn((n, DIM), dtype, gen, 0.5),
        "logit_scale": torch.tensor(3.0, dtype=torch.float64).to(dtype),
    }
    if bias:
        out["logit_bias"] = torch.tensor(-1.5, dtype=torch.float64).to(dtype)
    return out


CASES = [
    Case(
        "nt_xent_loss",
        _views,
        lambda d, r: LF.nt_xent_loss(**d, temperature=0.5, reduction=r),
        lambda r: LN.NTXentLoss(temperature=0.5, reduction=r),
        grad_keys=("embeddings",),
        mean_is_mean_of_none=False,  # 'mean' divides by the number of positive pairs
        batch_split=False,  # each anchor's terms depend on the whole batch
    ),
    Case(
        "supcon_loss",
        _classes,
        lambda d, r: LF.supcon_loss(**d, temperature=0.5, base_temperature=0.7, reduction=r),
        lambda r: LN.SupConLoss(temperature=0.5, base_temperature=0.7, reduction=r),
        grad_keys=("embeddings",),
        mean_is_mean_of_none=False,  # 'mean' divides by the number of anchors with a positive
        batch_split=False,
    ),
    Case(
        "clip_loss",
        _pairs,
        lambda d, r: LF.clip_loss(**d, reduction=r),
        lambda r: LN.ClipLoss(reduction=r),
        grad_keys=("image_features", "text_features", "logit_scale"),
        batch_split=False,  # every pair's normalisers run over the whole batch
    ),
    Case(
        "siglip_loss",
        lambda n, dtype, gen: _pairs(n, dtype, gen, bias=True),
        lambda d, r: LF.siglip_loss(**d, reduction=r),
        lambda r: LN.SigLipLoss(reduction=r),
        grad_keys=("image_features", "text_features", "logit_scale", "logit_bias"),
        batch_split=False,  # every image is paired with every text of the batch
    ),
]
