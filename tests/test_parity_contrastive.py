"""Parity of the contrastive losses with the peers that carry their names, where installed.

pytorch-metric-learning (``NTXentLoss``, ``SupConLoss``) and open_clip (``ClipLoss``, ``SigLipLoss``)
live in the benchmark environment: ``.venv-bench/bin/python -m pytest tests/test_parity_contrastive.py``.
Values and gradients are compared in float64 (1e-9) and float32 (1e-6, as the issue asks); the one
intended difference from pytorch-metric-learning's ``SupConLoss`` is a test of its own.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF


def _batch(n: int, d: int, labels: int, seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    y = torch.arange(n) % labels  # every label at least twice: positives and negatives for all
    return x, y[torch.randperm(n, generator=g)]


def _grad(loss_fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    loss = loss_fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


TOL = {torch.float64: {"rtol": 1e-9, "atol": 1e-12}, torch.float32: {"rtol": 1e-6, "atol": 1e-6}}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@settings(max_examples=30)
@given(
    n=st.integers(4, 40),
    labels=st.integers(2, 6),
    t=st.sampled_from([0.07, 0.1, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_nt_xent_equals_pml(dtype, n, labels, t, seed):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = _batch(n, 8, min(labels, n // 2), seed, dtype)
    want, want_grad = _grad(lambda e: pml.NTXentLoss(temperature=t)(e, y), x)
    got, got_grad = _grad(lambda e: LF.nt_xent_loss(e, y, temperature=t), x)
    torch.testing.assert_close(got, want, **TOL[dtype])
    torch.testing.assert_close(got_grad[0], want_grad[0], **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@settings(max_examples=30)
@given(
    n=st.integers(4, 40),
    labels=st.integers(2, 6),
    t=st.sampled_from([0.07, 0.1, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_supcon_equals_pml_with_base_temperature_equal_to_temperature(dtype, n, labels, t, seed):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, y = _batch(n, 8, min(labels, n // 2), seed, dtype)
    want, want_grad = _grad(lambda e: pml.SupConLoss(temperature=t)(e, y), x)
    got, got_grad = _grad(lambda e: LF.supcon_loss(e, y, temperature=t, base_temperature=t), x)
    torch.testing.assert_close(got, want, **TOL[dtype])
    torch.testing.assert_close(got_grad[0], want_grad[0], **TOL[dtype])


def test_supcon_anchors_without_positives_are_dropped_as_pml_does():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    x, _ = _batch(7, 5, 1, 3, torch.float64)
    y = torch.tensor([0, 0, 1, 1, 1, 5, 6])  # two anchors without a positive
    want = pml.SupConLoss(temperature=0.2)(x, y)
    torch.testing.assert_close(
        LF.supcon_loss(x, y, temperature=0.2, base_temperature=0.2), want, **TOL[torch.float64]
    )


def test_supcon_differs_from_pml_only_where_its_reducer_drops_zero_losses():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    # one label only: no negative pair anywhere. pytorch-metric-learning returns 0; L_out is defined
    # there (each anchor's softmax over its positives: log 3 for equal similarities).
    x = torch.ones(4, 3, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    assert pml.SupConLoss(temperature=1.0)(x, y).item() == 0.0
    got = LF.supcon_loss(x, y, temperature=1.0, base_temperature=1.0)
    assert got.item() == pytest.approx(math.log(3), rel=1e-12)
    # an anchor whose loss rounds to exactly 0 (float32, temperature 0.01, a far negative) is dropped
    # from pytorch-metric-learning's mean (AvgNonZeroReducer); here it still counts
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.6, 0.8]])
    y = torch.tensor([0, 0, 1, 1, 1])
    rows = LF.supcon_loss(x, y, temperature=0.01, base_temperature=0.01, reduction="none")
    assert (rows == 0).sum() == 2 and (rows > 0).sum() == 3
    want_pml = rows.sum() / 3
    torch.testing.assert_close(pml.SupConLoss(temperature=0.01)(x, y), want_pml)
    torch.testing.assert_close(LF.supcon_loss(x, y, temperature=0.01, base_temperature=0.01), rows.sum() / 5)


def _paired(n: int, d: int, seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    y = F.normalize(x + torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    s = torch.tensor(1 / 0.07, dtype=torch.float64)
    b = torch.tensor(-10.0, dtype=torch.float64)
    return x.to(dtype), y.to(dtype), s.to(dtype), b.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [None, 3])
@settings(max_examples=20)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_clip_equals_open_clip(dtype, chunk, n, seed):
    oc = pytest.importorskip("open_clip.loss")
    x, y, s, _ = _paired(n, 16, seed, dtype)
    want, want_grads = _grad(lambda a, b, t: oc.ClipLoss()(a, b, t), x, y, s)
    got, got_grads = _grad(lambda a, b, t: LF.clip_loss(a, b, logit_scale=t, chunk_size=chunk), x, y, s)
    torch.testing.assert_close(got, want, **TOL[dtype])
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk", [None, 3])
@settings(max_examples=20)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_siglip_equals_open_clip(dtype, chunk, n, seed):
    oc = pytest.importorskip("open_clip.loss")
    x, y, s, b = _paired(n, 16, seed, dtype)
    want, want_grads = _grad(lambda a, c, t, u: oc.SigLipLoss()(a, c, t, u), x, y, s, b)
    got, got_grads = _grad(
        lambda a, c, t, u: LF.siglip_loss(a, c, logit_scale=t, logit_bias=u, chunk_size=chunk), x, y, s, b
    )
    torch.testing.assert_close(got, want, **TOL[dtype])
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, **TOL[dtype])
