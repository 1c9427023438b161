"""Metric-learning losses: center loss, contrastive (DeepID2), triplet (FaceNet) and online mining."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN
from conftest import tol
from references_metric import (
    batch_contrastive_ref,
    batch_triplet_ref,
    center_loss_ref,
    contrastive_ref,
    torch_triplet_ref,
    triplet_ref,
    update_centers_ref,
)

F64 = torch.float64
MININGS = ["batch_all", "batch_hard", "semi_hard"]


def _rows(t: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in t]


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t]


def _batch(seed: int, b: int, d: int, classes: int, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=gen, dtype=F64).to(dtype)
    y = torch.randint(0, classes, (b,), generator=gen)
    return x, y


# --------------------------------------------------------------------------------------------------
# golden values, derived by hand


def test_center_loss_golden():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]], dtype=F64)
    c = torch.tensor([[1.0, 0.0], [2.0, 2.0]], dtype=F64)
    y = torch.tensor([0, 1, 0])
    # x - c_y: (0, 2), (1, -3), (-1, 0) -> halves of 4, 10, 1 = 2, 5, 0.5; sum 7.5, mean 2.5
    torch.testing.assert_close(
        LF.center_loss(x, y, c, reduction="none"), torch.tensor([2.0, 5.0, 0.5], dtype=F64)
    )
    assert LF.center_loss(x, y, c, reduction="sum").item() == pytest.approx(7.5)
    assert LF.center_loss(x, y, c).item() == pytest.approx(2.5)


def test_center_loss_module_one_step_update_by_hand():
    m = LN.CenterLoss(2, 2, alpha=0.5).double().train()
    x = torch.tensor([[2.0, 0.0], [4.0, 2.0], [1.0, 1.0]], dtype=F64, requires_grad=True)
    y = torch.tensor([0, 0, 1])
    loss = m(x, y)
    # old (zero) centres: 0.5 * (4 + 20 + 2) / 3 = 13 / 3
    assert loss.item() == pytest.approx(13 / 3)
    # class 0: n=2, sum(c - x) = (-6, -2), / 3 = (-2, -2/3), c0 = 0 - 0.5 * that = (1, 1/3)
    # class 1: n=1, sum(c - x) = (-1, -1), / 2 = (-0.5, -0.5), c1 = (0.25, 0.25)
    want = torch.tensor([[1.0, 1 / 3], [0.25, 0.25]], dtype=F64)
    torch.testing.assert_close(m.centers, want)
    loss.backward()  # the in-place update did not break the graph
    torch.testing.assert_close(x.grad, x.detach() / 3)  # d/dx of mean 1/2 ||x - 0||^2
    # a second step uses the new centres: (2,0)-(1,1/3), (4,2)-(1,1/3), (1,1)-(0.25,0.25)
    second = m(x, y)
    expected = 0.5 * ((1 + 1 / 9) + (9 + 25 / 9) + (0.5625 + 0.5625)) / 3
    assert second.item() == pytest.approx(expected)
    # eval mode: no update
    m.eval()
    before = m.centers.clone()
    m(x, y)
    torch.testing.assert_close(m.centers, before)


def test_update_centers_matches_reference_and_leaves_absent_classes():
    x, y = _batch(3, 9, 3, 3)
    y[y == 2] = 0  # class 2 absent from the batch
    c = torch.randn(4, 3, dtype=F64)
    want = update_centers_ref(_rows(c), _rows(x), _ints(y), 0.3)
    LF.update_centers(c, x, y, alpha=0.3)
    torch.testing.assert_close(c, torch.tensor(want, dtype=F64))


def test_center_loss_learnable_variant_is_a_parameter_trained_by_the_optimiser():
    m = LN.CenterLoss(3, 2, learnable=True).double().train()
    assert isinstance(m.centers, torch.nn.Parameter)
    assert [n for n, _ in m.named_parameters()] == ["centers"]
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    m(x, torch.tensor([0, 2])).backward()
    torch.testing.assert_close(m.centers.detach(), torch.zeros(3, 2, dtype=F64))  # forward did not move it
    # d/dc_j of mean 1/2 ||x_i - c_j||^2 = -(x_i - c_j) / N
    torch.testing.assert_close(
        m.centers.grad, torch.tensor([[-0.5, 0.0], [0.0, 0.0], [0.0, -1.0]], dtype=F64)
    )
    buffers = LN.CenterLoss(3, 2)
    assert "centers" in buffers.state_dict() and list(buffers.parameters()) == []


def test_contrastive_golden():
    x1 = torch.zeros(3, 2, dtype=F64)
    x2 = torch.tensor([[3.0, 0.0], [0.3, 0.4], [0.0, 3.0]], dtype=F64)
    same = torch.tensor([True, False, False])
    # d = 3 (same): 9/2; d = 0.5 (different, m=2): (1.5)^2 / 2 = 1.125; d = 3 > m: 0
    got = LF.contrastive_loss(x1, x2, same, margin=2.0, reduction="none")
    torch.testing.assert_close(got, torch.tensor([4.5, 1.125, 0.0], dtype=F64))


def test_triplet_margin_and_facenet_golden():
    a = torch.zeros(1, 2, dtype=F64)
    p = torch.tensor([[3.0, 4.0]], dtype=F64)
    n = torch.tensor([[0.0, 4.5]], dtype=F64)
    # torch's (eps=0): 1 + 5 - 4.5 = 1.5; FaceNet's squared, margin 1: 25 - 20.25 + 1 = 5.75
    assert LF.triplet_margin_loss(a, p, n, eps=0.0).item() == pytest.approx(1.5, abs=1e-15)
    assert LF.facenet_triplet_loss(a, p, n, margin=1.0).item() == pytest.approx(5.75)
    # with torch's eps=1e-6 added to each difference: |(-3, -4) + eps| and |(0, -4.5) + eps|
    d_ap, d_an = math.hypot(3 - 1e-6, 4 - 1e-6), math.hypot(1e-6, 4.5 - 1e-6)
    assert LF.triplet_margin_loss(a, p, n).item() == pytest.approx(1 + d_ap - d_an, rel=1e-15)
    # p = 1: 1 + 7 - 4.5 = 3.5; swap: d(p, n) = |(3, -0.5)| = 3.041 < 4.5 -> 1 + 5 - 3.041
    assert LF.triplet_margin_loss(a, p, n, p=1, eps=0.0).item() == pytest.approx(3.5)
    assert LF.triplet_margin_loss(a, p, n, swap=True, eps=0.0).item() == pytest.approx(6 - math.hypot(3, 0.5))
    # FaceNet's default margin 0.2 on the docstring's example: 0.25 - 0.36 + 0.2 = 0.09
    p2, n2 = torch.tensor([[0.3, 0.4]], dtype=F64), torch.tensor([[0.6, 0.0]], dtype=F64)
    assert LF.facenet_triplet_loss(a, p2, n2).item() == pytest.approx(0.09)


# 1-D points 0, 1 (class 0) and 3, 2.5 (class 1); pairwise distances |x_i - x_j|, margin 1.2.
_X = torch.tensor([[0.0], [1.0], [3.0], [2.5]], dtype=F64)
_Y = torch.tensor([0, 0, 1, 1])


def test_batch_all_golden():
    # anchor 0: p=1 (1); n at 3, 2.5: 1-3+1.2 < 0, 1-2.5+1.2 < 0          -> 0
    # anchor 1: p=0 (1); n at 2, 1.5: 1-2+1.2 = 0.2, 1-1.5+1.2 = 0.7         -> 0.9
    # anchor 2: p=3 (0.5); n at 3, 2: both < 0                               -> 0
    # anchor 3: p=2 (0.5); n at 2.5, 1.5: 0.5-2.5+1.2 < 0, 0.5-1.5+1.2 = 0.2 -> 0.2
    loss, stats = LF.batch_triplet_loss(
        _X, _Y, margin=1.2, mining="batch_all", return_stats=True, reduction="none"
    )
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.9, 0.0, 0.2], dtype=F64))
    assert (stats.num_valid.item(), stats.num_active.item()) == (8, 3)
    assert stats.active_fraction.item() == pytest.approx(3 / 8)
    assert LF.batch_triplet_loss(_X, _Y, margin=1.2, mining="batch_all").item() == pytest.approx(1.1 / 8)


def test_batch_hard_golden():
    # hardest positive / closest negative: a0 (1, 2.5) a1 (1, 1.5) a2 (0.5, 2) a3 (0.5, 1.5)
    # hinges: -0.3 -> 0, 0.7, -0.3 -> 0, 0.2; 'mean' over 4 valid anchors = 0.225
    loss, stats = LF.batch_triplet_loss(_X, _Y, margin=1.2, return_stats=True, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.7, 0.0, 0.2], dtype=F64))
    assert (stats.num_valid.item(), stats.num_active.item()) == (4, 2)
    assert LF.batch_triplet_loss(_X, _Y, margin=1.2).item() == pytest.approx(0.225)
    # squared distances: a1 1 - 2.25 + 1.2 = -0.05 -> 0; a3 0.25 - 2.25 + 1.2 -> 0; a0 1 - 6.25 + 1.2 -> 0
    sq = LF.batch_triplet_loss(_X, _Y, margin=1.2, distance="squared_euclidean", reduction="sum")
    assert sq.item() == 0.0


def test_semi_hard_golden_strictness_and_fallback():
    x = torch.tensor([[0.0], [3.0], [1.0], [2.0]], dtype=F64)
    y = torch.tensor([0, 0, 1, 1])
    # a0: d(a,p)=3, negatives at 1 and 2, none farther -> fallback: farthest negative 2 -> 3 - 2 + .5 = 1.5
    #     (batch-hard would take the closest, 1, giving 2.5)
    # a1: d(a,p)=3, negatives at 2 and 1 -> fallback 2 -> 1.5
    # a2 (x=1): p at 1; negatives at 1 (tie: not strictly farther) and 2 -> 2 -> 1 - 2 + .5 < 0 -> 0
    # a3 (x=2): p at 1; negatives at 2 and 1 (tie) -> 2 -> 0
    loss = LF.batch_triplet_loss(x, y, margin=0.5, mining="semi_hard", reduction="none")
    torch.testing.assert_close(loss, torch.tensor([1.5, 1.5, 0.0, 0.0], dtype=F64))
    hard = LF.batch_triplet_loss(x, y, margin=0.5, mining="batch_hard", reduction="none")
    torch.testing.assert_close(hard[:2], torch.tensor([2.5, 2.5], dtype=F64))


def test_batch_contrastive_golden_mean_divisor():
    # pairs (0,1) same d=1 -> 0.5; (0,2) diff d=0.5 -> 0.125; (1,2) diff d=sqrt(2.05) > 1 -> 0
    x = torch.tensor([[0.0, 0.0], [0.6, 0.8], [0.0, -0.5]], dtype=F64)
    y = torch.tensor([0, 0, 1])
    none = LF.batch_contrastive_loss(x, y, reduction="none")
    torch.testing.assert_close(none, torch.tensor([0.3125, 0.25, 0.0625], dtype=F64))  # halves per row
    assert LF.batch_contrastive_loss(x, y).item() == pytest.approx(0.625 / 3)  # 3 pairs


# --------------------------------------------------------------------------------------------------
# against the plain-loop references


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 6), margin=st.floats(0.0, 3.0))
def test_pair_and_triplet_losses_match_reference(seed, n, margin):
    gen = torch.Generator().manual_seed(seed)
    a, p, q = (torch.randn(n, 3, generator=gen, dtype=F64) for _ in range(3))
    same = torch.randint(0, 2, (n,), generator=gen).bool()
    got = LF.contrastive_loss(a, p, same, margin=margin, reduction="none")
    want = [contrastive_ref(u, v, bool(s), margin) for u, v, s in zip(_rows(a), _rows(p), same)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64).reshape(n))
    assert (got >= 0).all()
    got = LF.facenet_triplet_loss(a, p, q, margin=margin, reduction="none")
    want = [triplet_ref(u, v, w, margin, True) for u, v, w in zip(_rows(a), _rows(p), _rows(q))]
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64).reshape(n))
    assert (got >= 0).all()
    if margin > 0:
        for norm, eps, swap in ((2.0, 1e-6, False), (1.0, 0.0, True), (3.0, 1e-3, True)):
            got = LF.triplet_margin_loss(a, p, q, margin, norm, eps, swap, reduction="none")
            want = [
                torch_triplet_ref(u, v, w, margin, norm, eps, swap)
                for u, v, w in zip(_rows(a), _rows(p), _rows(q))
            ]
            torch.testing.assert_close(got, torch.tensor(want, dtype=F64).reshape(n))
            assert (got >= 0).all()
    c = torch.randn(3, 3, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (n,), generator=gen)
    want = center_loss_ref(_rows(a), _ints(y), _rows(c))
    torch.testing.assert_close(
        LF.center_loss(a, y, c, reduction="none"), torch.tensor(want, dtype=F64).reshape(n)
    )


@settings(max_examples=80)
@given(
    seed=st.integers(0, 2**31 - 1),
    b=st.integers(1, 9),
    classes=st.integers(1, 4),
    margin=st.sampled_from([0.0, 0.3, 1.0, 2.5]),
    mining=st.sampled_from(MININGS),
    distance=st.sampled_from(["euclidean", "squared_euclidean"]),
    soft=st.booleans(),
)
def test_batch_triplet_matches_b_cubed_enumeration(seed, b, classes, margin, mining, distance, soft):
    soft = soft and mining != "batch_all"
    x, y = _batch(seed, b, 3, classes)
    loss, stats = LF.batch_triplet_loss(
        x,
        y,
        margin=margin,
        mining=mining,
        distance=distance,
        soft_margin=soft,
        return_stats=True,
        reduction="none",
    )
    sq = distance == "squared_euclidean"
    want, valid, active = batch_triplet_ref(
        _rows(x), _ints(y), margin=margin, mining=mining, squared=sq, soft=soft
    )
    torch.testing.assert_close(loss, torch.tensor(want, dtype=F64), rtol=1e-9, atol=1e-9)
    assert (loss >= 0).all()
    assert (stats.num_valid.item(), stats.num_active.item()) == (valid, active)
    mean = LF.batch_triplet_loss(x, y, margin=margin, mining=mining, distance=distance, soft_margin=soft)
    assert mean.item() == pytest.approx(sum(want) / valid if valid else 0.0, rel=1e-9, abs=1e-12)


@given(seed=st.integers(0, 2**31 - 1), b=st.integers(1, 8), classes=st.integers(1, 4), margin=st.floats(0, 3))
def test_batch_contrastive_matches_reference(seed, b, classes, margin):
    x, y = _batch(seed, b, 3, classes)
    got = LF.batch_contrastive_loss(x, y, margin=margin, reduction="none")
    want = batch_contrastive_ref(_rows(x), _ints(y), margin)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-9, atol=1e-9)
    # 'sum' is the sum over pairs i < j
    pairs = sum(
        contrastive_ref(_rows(x)[i], _rows(x)[j], int(y[i]) == int(y[j]), margin)
        for i in range(b)
        for j in range(i + 1, b)
    )
    assert LF.batch_contrastive_loss(x, y, margin=margin, reduction="sum").item() == pytest.approx(
        pairs, abs=1e-9
    )
    mean = LF.batch_contrastive_loss(x, y, margin=margin)
    assert mean.item() == pytest.approx(pairs / (b * (b - 1) / 2) if b > 1 else 0.0, abs=1e-9)


# --------------------------------------------------------------------------------------------------
# properties


@given(
    seed=st.integers(0, 2**31 - 1),
    margin=st.floats(1e-3, 2.0),
    extra=st.floats(0.0, 3.0),
    distance=st.sampled_from(["euclidean", "squared_euclidean"]),
)
def test_triplet_is_zero_once_the_negative_is_margin_farther(seed, margin, extra, distance):
    gen = torch.Generator().manual_seed(seed)
    a, p, u = (torch.randn(4, 3, generator=gen, dtype=F64) for _ in range(3))
    d_ap = (a - p).norm(dim=1, keepdim=True)
    if distance == "euclidean":
        radius = d_ap + margin + extra + 1e-9
    else:  # squared distances: d_an^2 >= d_ap^2 + margin
        radius = (d_ap.pow(2) + margin + extra + 1e-9).sqrt()
    n = a + radius * u / u.norm(dim=1, keepdim=True)
    if distance == "euclidean":
        loss = LF.triplet_margin_loss(a, p, n, margin=margin, eps=0.0, reduction="none")
    else:
        loss = LF.facenet_triplet_loss(a, p, n, margin=margin, reduction="none")
    assert (loss == 0).all()


@given(seed=st.integers(0, 2**31 - 1), mining=st.sampled_from(MININGS))
def test_batch_triplet_is_zero_for_separated_clusters(seed, mining):
    # clusters of radius < 0.5 whose centres are 10 apart: every d(a,n) > d(a,p) + margin
    gen = torch.Generator().manual_seed(seed)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    x = 10.0 * torch.eye(3, dtype=F64)[y] + 0.1 * torch.rand(8, 3, generator=gen, dtype=F64)
    loss, stats = LF.batch_triplet_loss(x, y, margin=1.0, mining=mining, return_stats=True)
    assert loss.item() == 0.0 and stats.num_active.item() == 0 and stats.num_valid.item() > 0


@given(seed=st.integers(0, 2**31 - 1), margin=st.floats(0.0, 3.0))
def test_contrastive_is_symmetric(seed, margin):
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(5, 3, generator=gen, dtype=F64), torch.randn(5, 3, generator=gen, dtype=F64)
    same = torch.randint(0, 2, (5,), generator=gen).bool()
    f = LF.contrastive_loss
    torch.testing.assert_close(
        f(a, b, same, margin=margin, reduction="none"), f(b, a, same, margin=margin, reduction="none")
    )


@given(seed=st.integers(0, 2**31 - 1), mining=st.sampled_from(MININGS))
def test_batch_losses_are_permutation_equivariant(seed, mining):
    x, y = _batch(seed, 8, 3, 3)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed + 1))
    f = LF.batch_triplet_loss
    torch.testing.assert_close(
        f(x[perm], y[perm], mining=mining, reduction="none"), f(x, y, mining=mining, reduction="none")[perm]
    )
    g = LF.batch_contrastive_loss
    torch.testing.assert_close(g(x[perm], y[perm], reduction="none"), g(x, y, reduction="none")[perm])


# --------------------------------------------------------------------------------------------------
# gradients


def _leaf(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)


def test_gradcheck_pair_center_and_triplet_losses():
    a, p, n = _leaf(5, 3, seed=1), _leaf(5, 3, seed=2), _leaf(5, 3, seed=3)
    same = torch.tensor([True, False, True, False, False])
    c = _leaf(3, 3, seed=4)
    y = torch.tensor([0, 2, 1, 0, 2])
    fns = [
        lambda a, p: LF.contrastive_loss(a, p, same, margin=3.0),
        lambda a, p: LF.facenet_triplet_loss(a, p, n, margin=1.0),
        lambda a, p: LF.triplet_margin_loss(a, p, n, margin=1.0),
        lambda a, p: LF.triplet_margin_loss(a, p, n, 2.0, 3.0, 1e-3, True),
        lambda a, p: LF.center_loss(a, y, p[:3]),
    ]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (a, p))
        assert torch.autograd.gradgradcheck(fn, (a, p))
    assert torch.autograd.gradcheck(lambda x, c: LF.center_loss(x, y, c, reduction="sum"), (a, c))


@pytest.mark.parametrize(
    ("mining", "soft", "distance"),
    [
        ("batch_hard", False, "euclidean"),
        ("batch_hard", True, "squared_euclidean"),
        ("semi_hard", False, "euclidean"),
        ("semi_hard", True, "euclidean"),
        ("batch_all", False, "euclidean"),
        ("batch_all", False, "squared_euclidean"),
    ],
)
def test_gradcheck_batch_triplet(mining, soft, distance):
    x = _leaf(8, 3, seed=5)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])

    def fn(x):
        return LF.batch_triplet_loss(x, y, margin=0.8, mining=mining, distance=distance, soft_margin=soft)

    assert fn(x).item() > 0  # some hinge is active, so the check is not vacuous
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_gradcheck_batch_contrastive_and_with_candidates():
    x, r = _leaf(6, 3, seed=6), _leaf(9, 3, seed=7)
    y, ry = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda x: LF.batch_contrastive_loss(x, y, margin=2.0), (x,))
    assert torch.autograd.gradgradcheck(lambda x: LF.batch_contrastive_loss(x, y, margin=2.0), (x,))
    for mining in MININGS:

        def fn(x, r, mining=mining):
            return LF.batch_triplet_loss(
                x, y, mining=mining, ref_embeddings=r, ref_labels=ry, anchor_offset=3
            )

        assert torch.autograd.gradcheck(fn, (x, r))


# --------------------------------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("mining", MININGS)
def test_identical_embeddings_give_finite_gradients(mining):
    x = torch.ones(6, 3, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = LF.batch_triplet_loss(x, y, margin=0.3, mining=mining)
    # every distance is 0, so every valid triplet costs the margin (semi-hard: no negative is farther)
    assert loss.item() == pytest.approx(0.3)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    x.grad = None
    c = LF.batch_contrastive_loss(x, y, margin=2.0)
    # 3 same pairs cost 0, 12 different pairs cost 2^2 / 2 = 2 each: mean 24 / 15
    assert c.item() == pytest.approx(24 / 15)
    c.backward()
    assert torch.isfinite(x.grad).all()
    z = torch.zeros(2, 3, requires_grad=True)
    LF.contrastive_loss(z, z.detach(), torch.tensor([False, False])).backward()
    LF.triplet_margin_loss(z, z, z).backward()
    LF.facenet_triplet_loss(z, z, z).backward()
    assert torch.isfinite(z.grad).all()


def test_near_identical_embeddings_float32_gradients_stay_finite():
    x = (torch.ones(16, 8) + 1e-4 * torch.randn(16, 8)).requires_grad_(True)
    y = torch.arange(16) % 4
    for mining in MININGS:
        LF.batch_triplet_loss(x, y, mining=mining).backward()
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize(
    "labels", [[0, 0, 0, 0], [0, 1, 2, 3], [5]], ids=["one-class", "all-distinct", "single"]
)
def test_no_valid_triplet_gives_zero_with_gradient(mining, labels):
    y = torch.tensor(labels)
    x = torch.randn(len(labels), 3, requires_grad=True)
    loss, stats = LF.batch_triplet_loss(x, y, mining=mining, return_stats=True)
    assert loss.item() == 0.0 and stats.num_valid.item() == 0 and stats.active_fraction.item() == 0.0
    loss.backward()
    assert x.grad is not None and (x.grad == 0).all()


def test_batch_contrastive_one_class_and_all_distinct():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=F64)
    # one class: only the pull term, 1/2 * 25; all distinct: d = 5 > margin 1 -> 0
    assert LF.batch_contrastive_loss(x, torch.tensor([1, 1])).item() == pytest.approx(12.5)
    assert LF.batch_contrastive_loss(x, torch.tensor([1, 2])).item() == 0.0


def test_empty_anchors_against_candidates():
    x = torch.zeros(0, 3, requires_grad=True)
    r = torch.randn(5, 3)
    ry = torch.tensor([0, 0, 1, 1, 2])
    for mining in MININGS:
        loss = LF.batch_triplet_loss(
            x,
            torch.zeros(0, dtype=torch.long),
            mining=mining,
            ref_embeddings=r,
            ref_labels=ry,
            anchor_offset=None,
        )
        assert loss.item() == 0.0 and loss.requires_grad
    loss = LF.batch_contrastive_loss(x, torch.zeros(0, dtype=torch.long), ref_embeddings=r, ref_labels=ry)
    assert loss.item() == 0.0 and loss.requires_grad


def test_autocast_bfloat16_computes_and_returns_float32_as_torch():
    lin = torch.nn.Linear(6, 4)
    inp, y = torch.randn(12, 6), torch.arange(12) % 3
    center = LN.CenterLoss(3, 4).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = lin(inp)
        assert emb.dtype == torch.bfloat16
        losses = [LF.batch_triplet_loss(emb, y, mining=m) for m in MININGS]
        losses += [LF.batch_contrastive_loss(emb, y), center(emb, y)]
        a, p, n = emb[:4], emb[4:8], emb[8:]
        losses += [LF.triplet_margin_loss(a, p, n), LF.facenet_triplet_loss(a, p, n)]
        theirs = F.triplet_margin_loss(a, p, n)
    assert theirs.dtype == torch.float32  # torch's rule under autocast
    for loss in losses:
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.stack(losses).float().sum().backward()
    assert torch.isfinite(lin.weight.grad).all()
    assert center.centers.dtype == torch.float32 and center.centers.abs().sum() > 0


# --------------------------------------------------------------------------------------------------
# candidate sets (the cross-rank design) and mining functions


@pytest.mark.parametrize("mining", MININGS)
def test_shards_against_the_whole_batch_reproduce_the_whole_batch(mining):
    x, y = _batch(11, 12, 4, 3)
    whole, stats = LF.batch_triplet_loss(x, y, mining=mining, return_stats=True, reduction="none")
    parts, valid, ssum = [], 0, 0.0
    for rank in range(3):  # 3 "ranks" of 4 rows, candidates = all 12 rows
        rows = slice(4 * rank, 4 * rank + 4)
        kw = {"mining": mining, "ref_embeddings": x, "ref_labels": y, "anchor_offset": 4 * rank}
        part, st_ = LF.batch_triplet_loss(x[rows], y[rows], **kw, return_stats=True, reduction="none")
        parts.append(part)
        valid += st_.num_valid.item()
        ssum += LF.batch_triplet_loss(x[rows], y[rows], **kw, reduction="sum").item()
    torch.testing.assert_close(torch.cat(parts), whole)
    assert valid == stats.num_valid.item()
    assert ssum == pytest.approx(whole.sum().item())
    c_whole = LF.batch_contrastive_loss(x, y)
    c_means = [
        LF.batch_contrastive_loss(
            x[4 * k : 4 * k + 4], y[4 * k : 4 * k + 4], ref_embeddings=x, ref_labels=y, anchor_offset=4 * k
        )
        for k in range(3)
    ]
    torch.testing.assert_close(torch.stack(c_means).mean(), c_whole)


def test_query_gallery_mode_matches_reference():
    q, qy = _batch(12, 4, 3, 2)
    g, gy = _batch(13, 7, 3, 2)
    for mining in MININGS:
        got = LF.batch_triplet_loss(
            q, qy, mining=mining, ref_embeddings=g, ref_labels=gy, anchor_offset=None, reduction="none"
        )
        want, _, _ = batch_triplet_ref(
            _rows(q),
            _ints(qy),
            margin=0.2,
            mining=mining,
            squared=False,
            ref=_rows(g),
            ref_y=_ints(gy),
            offset=None,
        )
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64))
    got = LF.batch_contrastive_loss(
        q, qy, ref_embeddings=g, ref_labels=gy, anchor_offset=None, reduction="none"
    )
    want = batch_contrastive_ref(_rows(q), _ints(qy), 1.0, _rows(g), _ints(gy), None)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64))


def test_mining_functions_against_brute_force():
    x, y = _batch(21, 10, 3, 3)
    d = [[math.dist(u, v) for v in _rows(x)] for u in _rows(x)]
    pos_idx, neg_idx, valid = LF.batch_hard_triplets(x, y)
    sneg, svalid = LF.semi_hard_triplets(x, y)
    pos_mask, neg_mask = LF.triplet_label_masks(y)
    for a in range(10):
        positives = [j for j in range(10) if int(y[j]) == int(y[a]) and j != a]
        negatives = [j for j in range(10) if int(y[j]) != int(y[a])]
        assert pos_mask[a].nonzero().flatten().tolist() == positives
        assert neg_mask[a].nonzero().flatten().tolist() == negatives
        assert bool(valid[a]) == bool(positives and negatives)
        if positives and negatives:
            assert int(pos_idx[a]) == max(positives, key=lambda j: d[a][j])
            assert int(neg_idx[a]) == min(negatives, key=lambda j: d[a][j])
        for p in range(10):
            assert bool(svalid[a, p]) == (p in positives and bool(negatives))
            if svalid[a, p]:
                farther = [n for n in negatives if d[a][n] > d[a][p]]
                want = (
                    min(farther, key=lambda n: d[a][n]) if farther else max(negatives, key=lambda n: d[a][n])
                )
                assert int(sneg[a, p]) == want


def test_label_masks_with_offset_and_without_self():
    y, ry = torch.tensor([2, 1]), torch.tensor([2, 1, 2, 1])
    pos, neg = LF.triplet_label_masks(y, ry, anchor_offset=2)  # anchors are candidates 2 and 3
    # anchor 0 (label 2) is candidate 2: its only other label-2 candidate is 0
    assert pos.tolist() == [[True, False, False, False], [False, True, False, False]]
    assert neg.tolist() == [[False, True, False, True], [True, False, True, False]]
    pos_none, _ = LF.triplet_label_masks(y, ry, anchor_offset=None)  # queries: nothing excluded
    assert pos_none.tolist() == [[True, False, True, False], [False, True, False, True]]


def test_distance_matrix_matches_cdist_and_has_zero_gradient_at_zero():
    x, _ = _batch(31, 5, 4, 1)
    r, _ = _batch(32, 7, 4, 1)
    torch.testing.assert_close(LF.distance_matrix(x, r), torch.cdist(x, r))
    torch.testing.assert_close(LF.distance_matrix(x, r, distance="squared_euclidean"), torch.cdist(x, r) ** 2)
    z = torch.ones(3, 2, requires_grad=True)
    LF.distance_matrix(z).sum().backward()
    assert (z.grad == 0).all()


# --------------------------------------------------------------------------------------------------
# Modules


def test_triplet_module_returns_stats_when_asked_and_caches_nothing():
    m = LN.TripletLoss(margin=1.2, mining="batch_all").double()
    before = {k: v for k, v in vars(m).items() if k != "_modules"}
    loss = m(_X, _Y)
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(1.1 / 8)
    loss, stats = m(_X, _Y, return_stats=True)
    assert loss.item() == pytest.approx(1.1 / 8)
    assert stats.active_fraction.item() == pytest.approx(3 / 8)  # from test_batch_all_golden
    assert (stats.num_valid.item(), stats.num_active.item()) == (8, 3)
    # forward left nothing on the Module: no buffer, no attribute (issue 11)
    assert {k: v for k, v in vars(m).items() if k != "_modules"} == before
    assert list(m.buffers()) == [] and m.state_dict() == {}
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)  # an empty state_dict saves and loads
    buffer.seek(0)
    LN.TripletLoss().load_state_dict(torch.load(buffer))


def test_modules_pass_candidates_and_weight_through():
    x, y = _batch(41, 6, 3, 2)
    w = torch.rand(3, dtype=F64)
    kw = {"ref_embeddings": x, "ref_labels": y, "anchor_offset": 3}
    got = LN.TripletLoss(mining="semi_hard", reduction="sum")(x[3:], y[3:], w, **kw)
    want = LF.batch_triplet_loss(x[3:], y[3:], mining="semi_hard", weight=w, reduction="sum", **kw)
    torch.testing.assert_close(got, want)
    got = LN.BatchContrastiveLoss(margin=2.0)(x[3:], y[3:], w, **kw)
    torch.testing.assert_close(got, LF.batch_contrastive_loss(x[3:], y[3:], margin=2.0, weight=w, **kw))


def test_weights_scale_per_anchor_values():
    x, y = _batch(42, 8, 3, 3)
    w = torch.rand(8, dtype=F64)
    for mining in MININGS:
        none = LF.batch_triplet_loss(x, y, mining=mining, reduction="none")
        torch.testing.assert_close(
            LF.batch_triplet_loss(x, y, mining=mining, weight=w, reduction="none"), none * w
        )
        _, stats = LF.batch_triplet_loss(x, y, mining=mining, return_stats=True)
        mean = LF.batch_triplet_loss(x, y, mining=mining, weight=w)
        torch.testing.assert_close(mean, (none * w).sum() / stats.num_valid)


# --------------------------------------------------------------------------------------------------
# parity with peers


def _same_up_to_annotations(ours, theirs) -> bool:
    import inspect

    def strip(sig):
        params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
        return [(p.name, p.kind, p.default) for p in params]

    return strip(inspect.signature(ours)) == strip(inspect.signature(theirs))


def test_triplet_margin_loss_has_torch_signature():
    assert _same_up_to_annotations(LF.triplet_margin_loss, F.triplet_margin_loss)
    assert _same_up_to_annotations(LN.TripletMarginLoss.__init__, torch.nn.TripletMarginLoss.__init__)
    assert _same_up_to_annotations(LN.TripletMarginLoss.forward, torch.nn.TripletMarginLoss.forward)


@pytest.mark.parametrize("legacy", [{"size_average": True}, {"reduce": False}, {"size_average": False}])
def test_triplet_margin_legacy_arguments_point_at_reduction(legacy):
    a = torch.randn(3, 2)
    with pytest.raises(TypeError, match=r"triplet_margin_loss: size_average and reduce .* use reduction="):
        LF.triplet_margin_loss(a, a, a, **legacy)
    with pytest.raises(TypeError, match=r"TripletMarginLoss: size_average and reduce .* use reduction="):
        LN.TripletMarginLoss(**legacy)
    # positional calls written for torch bind the same way: (margin, p, eps, swap, None, None, reduction)
    torch.testing.assert_close(
        LN.TripletMarginLoss(1.0, 2.0, 1e-6, False, None, None, "sum")(a, a + 1, a),
        torch.nn.TripletMarginLoss(1.0, 2.0, 1e-6, False, None, None, "sum")(a, a + 1, a),
    )


TORCH_TRIPLET_OPTIONS = [
    {},
    {"margin": 0.3},
    {"p": 1},
    {"p": 3.0, "eps": 1e-3},
    {"p": float("inf")},
    {"swap": True},
    {"margin": 2.0, "p": 1.5, "swap": True, "eps": 0.0},
]
TRIPLET_SHAPES = [((6, 5),) * 3, ((5,),) * 3, ((6, 5), (1, 5), (6, 5)), ((2, 3, 4),) * 3]


@pytest.mark.parametrize("options", TORCH_TRIPLET_OPTIONS, ids=str)
@pytest.mark.parametrize("shapes", TRIPLET_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_triplet_margin_loss_equals_torch_values_and_gradients(options, shapes, reduction):
    gen = torch.Generator().manual_seed(len(str(options)) + len(shapes[1]))
    leaves = [torch.randn(s, generator=gen, dtype=F64, requires_grad=True) for s in shapes]
    twins = [t.detach().clone().requires_grad_(True) for t in leaves]
    ours = LF.triplet_margin_loss(*leaves, **options, reduction=reduction)
    theirs = F.triplet_margin_loss(*twins, **options, reduction=reduction)
    torch.testing.assert_close(ours, theirs, rtol=1e-15, atol=1e-15)
    module = LN.TripletMarginLoss(**options, reduction=reduction)(*leaves)
    torch.testing.assert_close(module, theirs, rtol=1e-15, atol=1e-15)
    upstream = torch.randn(theirs.shape, generator=gen, dtype=F64)
    mine = torch.autograd.grad(ours, leaves, upstream)
    want = torch.autograd.grad(theirs, twins, upstream)
    for g, w in zip(mine, want):
        torch.testing.assert_close(g, w, rtol=1e-14, atol=1e-15)


def test_triplet_margin_loss_torch_defaults_on_the_issue_inputs():
    # issue 10: with torch's defaults the old loss (squared distance, margin 0.2) was about 5x torch's
    gen = torch.Generator().manual_seed(7)
    a, p, n = (torch.randn(16, 8, generator=gen) for _ in range(3))
    torch.testing.assert_close(LF.triplet_margin_loss(a, p, n), F.triplet_margin_loss(a, p, n))
    torch.testing.assert_close(LN.TripletMarginLoss()(a, p, n), torch.nn.TripletMarginLoss()(a, p, n))
    for t in (torch.float16, torch.bfloat16):  # computed in float32 inside, returned in the input's dtype
        got = LF.triplet_margin_loss(a.to(t), p.to(t), n.to(t))
        assert got.dtype == t
        want = F.triplet_margin_loss(a.to(t).double(), p.to(t).double(), n.to(t).double())
        torch.testing.assert_close(got.double(), want, **tol(t))
    # mixed dtypes promote as in torch
    assert LF.triplet_margin_loss(a.double(), p, n).dtype == F.triplet_margin_loss(a.double(), p, n).dtype


def test_triplet_margin_loss_empty_batch_is_zero_where_torch_is_nan():
    a = torch.zeros(0, 3, requires_grad=True)
    assert torch.isnan(F.triplet_margin_loss(a, a, a))  # torch's mean over nothing
    loss = LF.triplet_margin_loss(a, a, a)  # losskit's rule: 0 with a gradient
    assert loss.item() == 0.0 and loss.requires_grad


def test_parity_with_pytorch_metric_learning_batch_hard():
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    x, y = _batch(61, 32, 8, 4, dtype=torch.float32)
    x = F.normalize(x, dim=1)  # PML normalises embeddings by default; so does this input
    miner = pml_miners.BatchHardMiner()
    pml = pml_losses.TripletMarginLoss(margin=0.2)(x, y, miner(x, y))
    loss, stats = LF.batch_triplet_loss(x, y, margin=0.2, return_stats=True, reduction="sum")
    # PML averages over the non-zero triplets only (AvgNonZeroReducer): sum / num_active here
    torch.testing.assert_close(loss / stats.num_active.clamp_min(1), pml, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# every error path

_x = torch.zeros(4, 3)
_y = torch.tensor([0, 0, 1, 1])
_c = torch.zeros(2, 3)
_same = torch.tensor([True, False, True, False])

ERRORS = [
    # distance_matrix
    (
        lambda: LF.distance_matrix(_x, distance="cosine"),
        ValueError,
        "distance_matrix: distance must be 'euclidean' or",
    ),
    (
        lambda: LF.distance_matrix(_y),
        TypeError,
        r"distance_matrix: x must be a floating-point tensor; got dtype torch.int64",
    ),
    (
        lambda: LF.distance_matrix(_x[0]),
        ValueError,
        r"distance_matrix: expected x of shape \(B, D\), got \(3,\)",
    ),
    (lambda: LF.distance_matrix(_x, _y), TypeError, "distance_matrix: y must be a floating-point tensor"),
    (
        lambda: LF.distance_matrix(_x, _x[0]),
        ValueError,
        r"distance_matrix: expected y of shape \(R, D\), got \(3,\)",
    ),
    (
        lambda: LF.distance_matrix(_x, _c[:, :2]),
        ValueError,
        r"distance_matrix: expected y of shape \(R, 3\), got \(2, 2\)",
    ),
    # candidate checks (shared by the miners and the batch losses)
    (
        lambda: LF.batch_hard_triplets(_y, _y),
        TypeError,
        "batch_hard_triplets: embeddings must be a floating-point",
    ),
    (
        lambda: LF.batch_hard_triplets(_x[0], _y),
        ValueError,
        r"batch_hard_triplets: expected embeddings of shape \(B, D\)",
    ),
    (
        lambda: LF.batch_hard_triplets(_x, _x),
        TypeError,
        "batch_hard_triplets: labels must be an integer tensor",
    ),
    (
        lambda: LF.semi_hard_triplets(_x, _y[:3]),
        ValueError,
        r"semi_hard_triplets: expected labels of shape \(4,\), got \(3,\)",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_x),
        ValueError,
        "batch_triplet_loss: expected ref_embeddings and ref_labels both or neither",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, anchor_offset=1.0),
        TypeError,
        "batch_triplet_loss: anchor_offset must be an int or None; got float",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, anchor_offset=2),
        ValueError,
        "batch_triplet_loss: anchor_offset must be 0 without ref_embeddings; got 2",
    ),
    (
        lambda: LF.batch_contrastive_loss(_x, _y, ref_embeddings=_y, ref_labels=_y),
        TypeError,
        "batch_contrastive_loss: ref_embeddings must be a floating-point",
    ),
    (
        lambda: LF.batch_contrastive_loss(_x, _y, ref_embeddings=_x, ref_labels=_x),
        TypeError,
        "batch_contrastive_loss: ref_labels must be an integer",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_c[:, :2], ref_labels=_y[:2]),
        ValueError,
        r"batch_triplet_loss: expected ref_embeddings of shape \(R, 3\), got \(2, 2\)",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_x, ref_labels=_y[:3]),
        ValueError,
        r"batch_triplet_loss: expected ref_labels of shape \(4,\), got \(3,\)",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_x, ref_labels=_y, anchor_offset=1),
        ValueError,
        r"batch_triplet_loss: anchor_offset must be in \[0, R - B\] = \[0, 0\]",
    ),
    # triplet_label_masks
    (lambda: LF.triplet_label_masks(_x), TypeError, "triplet_label_masks: labels must be an integer tensor"),
    (
        lambda: LF.triplet_label_masks(_y[None]),
        ValueError,
        r"triplet_label_masks: expected labels of shape \(B,\), got \(1, 4\)",
    ),
    (
        lambda: LF.triplet_label_masks(_y, _x),
        TypeError,
        "triplet_label_masks: ref_labels must be an integer tensor",
    ),
    (
        lambda: LF.triplet_label_masks(_y, _y[None]),
        ValueError,
        r"triplet_label_masks: expected ref_labels of shape \(R,\)",
    ),
    (
        lambda: LF.triplet_label_masks(_y, anchor_offset=1),
        ValueError,
        "triplet_label_masks: anchor_offset must be 0 without",
    ),
    # center loss and update
    (lambda: LF.center_loss(_y, _y, _c), TypeError, "center_loss: input must be a floating-point tensor"),
    (
        lambda: LF.center_loss(_x[0], _y, _c),
        ValueError,
        r"center_loss: expected input of shape \(N, D\), got \(3,\)",
    ),
    (lambda: LF.center_loss(_x, _x, _c), TypeError, "center_loss: target must be an integer tensor"),
    (
        lambda: LF.center_loss(_x, _y[:2], _c),
        ValueError,
        r"center_loss: expected target of shape \(4,\), got \(2,\)",
    ),
    (lambda: LF.center_loss(_x, _y, _y), TypeError, "center_loss: centers must be a floating-point tensor"),
    (
        lambda: LF.center_loss(_x, _y, _c[:, :2]),
        ValueError,
        r"center_loss: expected centers of shape \(C, 3\), got \(2, 2\)",
    ),
    (
        lambda: LF.center_loss(_x, _y, _c, weight=torch.ones(3)),
        ValueError,
        r"center_loss: weight must broadcast to the unreduced loss of shape \(4,\)",
    ),
    (
        lambda: LF.update_centers(_c.clone(), _x, _y, alpha=1.5),
        ValueError,
        r"update_centers: alpha must be in \[0.0, 1.0\]; got 1.5",
    ),
    (
        lambda: LF.update_centers(_c.clone(), _x, _y[:1]),
        ValueError,
        r"update_centers: expected target of shape \(4,\)",
    ),
    # contrastive
    (
        lambda: LF.contrastive_loss(_y, _x, _same),
        TypeError,
        "contrastive_loss: x1 must be a floating-point tensor",
    ),
    (
        lambda: LF.contrastive_loss(_x, _y, _same),
        TypeError,
        "contrastive_loss: x2 must be a floating-point tensor",
    ),
    (
        lambda: LF.contrastive_loss(_x[0], _x[0], _same),
        ValueError,
        r"contrastive_loss: expected x1 of shape \(N, D\)",
    ),
    (
        lambda: LF.contrastive_loss(_x, _c, _same),
        ValueError,
        r"contrastive_loss: expected x2 of the same shape as x1 \(4, 3\), got \(2, 3\)",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, [True]),
        TypeError,
        "contrastive_loss: same must be a Tensor; got list",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, _same.float()),
        TypeError,
        "contrastive_loss: same must be a bool or integer tensor; got dtype torch.float32",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, _same[:2]),
        ValueError,
        r"contrastive_loss: expected same of shape \(4,\), got \(2,\)",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, _same, margin=-1.0),
        ValueError,
        "contrastive_loss: margin must be a finite number >= 0; got -1.0",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, _same, weight=torch.ones(2)),
        ValueError,
        "contrastive_loss: weight must broadcast",
    ),
    (
        lambda: LF.batch_contrastive_loss(_x, _y, margin=-0.5),
        ValueError,
        "batch_contrastive_loss: margin must be a finite number >= 0",
    ),
    (
        lambda: LF.batch_contrastive_loss(_x, _y, weight=torch.ones(4, 4)),
        ValueError,
        "batch_contrastive_loss: weight must broadcast",
    ),
    # triplets
    (
        lambda: LF.triplet_margin_loss(_y, _x, _x),
        TypeError,
        "triplet_margin_loss: anchor must be a floating-point tensor",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _y, _x),
        TypeError,
        "triplet_margin_loss: positive must be a floating-point tensor",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _y),
        TypeError,
        "triplet_margin_loss: negative must be a floating-point tensor",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x[0], _x),
        ValueError,
        r"triplet_margin_loss: expected anchor, positive and negative with the same number of dim.*"
        r"got \(4, 3\), \(3,\) and \(4, 3\)",
    ),
    (
        lambda: LF.triplet_margin_loss(_x[0, 0], _x[0, 0], _x[0, 0]),
        ValueError,
        r"triplet_margin_loss: expected anchor, positive and negative with the same number of dim",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _c, _x),
        ValueError,
        r"triplet_margin_loss: expected anchor, positive and negative of broadcastable shapes, got "
        r"\(4, 3\), \(2, 3\) and \(4, 3\)",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, margin=0.0),
        ValueError,
        "triplet_margin_loss: margin must be a finite number > 0; got 0.0",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, margin=float("nan")),
        ValueError,
        "triplet_margin_loss: margin must not be NaN",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, p=float("nan")),
        ValueError,
        "triplet_margin_loss: p must not be NaN",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, eps="small"),
        TypeError,
        "triplet_margin_loss: eps must be a number; got str",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, swap=1),
        TypeError,
        "triplet_margin_loss: swap must be a bool; got int",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x, reduction="avg"),
        ValueError,
        "triplet_margin_loss: reduction must be 'none', 'mean' or 'sum'; got 'avg'",
    ),
    (
        lambda: LF.triplet_margin_loss(_x, _x, _x.to("meta")),
        ValueError,
        r"triplet_margin_loss: expected negative on the device of anchor \(cpu\), got negative on meta",
    ),
    (
        lambda: LF.facenet_triplet_loss(_y, _x, _x),
        TypeError,
        "facenet_triplet_loss: anchor must be a floating-point tensor",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x[0], _x[0], _x[0]),
        ValueError,
        r"facenet_triplet_loss: expected anchor of shape \(N, D\)",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x, _c, _x),
        ValueError,
        r"facenet_triplet_loss: expected positive of the same shape as anchor",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x, _x, _c),
        ValueError,
        r"facenet_triplet_loss: expected negative of the same shape as anchor",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x, _x, _x, margin=-0.1),
        ValueError,
        "facenet_triplet_loss: margin must be a finite number >= 0",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x, _x, _x, weight=torch.ones(3)),
        ValueError,
        "facenet_triplet_loss: weight must broadcast",
    ),
    (
        lambda: LF.facenet_triplet_loss(_x, _x, _x, weight=torch.ones(4, device="meta")),
        ValueError,
        r"facenet_triplet_loss: expected weight on the device of anchor \(cpu\), got weight on meta",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, margin=-1),
        ValueError,
        "batch_triplet_loss: margin must be a finite number >= 0; got -1",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, mining="hard"),
        ValueError,
        "batch_triplet_loss: mining must be 'batch_all', 'batch_hard' or 'semi_hard'; got 'hard'",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, distance="cos"),
        ValueError,
        "batch_triplet_loss: distance must be 'euclidean' or",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, soft_margin=1),
        TypeError,
        "batch_triplet_loss: soft_margin must be a bool; got int",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, mining="batch_all", soft_margin=True),
        ValueError,
        "batch_triplet_loss: soft_margin must be False with mining='batch_all'",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, weight=torch.ones(5)),
        ValueError,
        "batch_triplet_loss: weight must broadcast",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, return_stats="yes"),
        TypeError,
        "batch_triplet_loss: return_stats must be a bool; got str",
    ),
    # Modules check at construction
    (lambda: LN.CenterLoss(0, 3), ValueError, "CenterLoss: num_classes must be >= 1; got 0"),
    (lambda: LN.CenterLoss(2, 2.0), TypeError, "CenterLoss: embedding_dim must be an int; got float"),
    (
        lambda: LN.CenterLoss(2, 3, alpha=-0.1),
        ValueError,
        r"CenterLoss: alpha must be in \[0.0, 1.0\]; got -0.1",
    ),
    (
        lambda: LN.ContrastiveLoss(margin=-1.0),
        ValueError,
        "ContrastiveLoss: margin must be a finite number >= 0",
    ),
    (
        lambda: LN.BatchContrastiveLoss(margin=-1.0),
        ValueError,
        "BatchContrastiveLoss: margin must be a finite number >= 0",
    ),
    (
        lambda: LN.TripletMarginLoss(margin=-1.0),
        ValueError,
        "TripletMarginLoss: margin must be a finite number > 0",
    ),
    (lambda: LN.TripletMarginLoss(swap="no"), TypeError, "TripletMarginLoss: swap must be a bool; got str"),
    (lambda: LN.TripletMarginLoss(p=None), TypeError, "TripletMarginLoss: p must be a number; got NoneType"),
    (
        lambda: LN.TripletMarginLoss()(_x, _x[:, :2], _x),
        ValueError,
        "TripletMarginLoss: expected anchor, positive and negative of broadcastable shapes",
    ),
    (
        lambda: LN.FaceNetTripletLoss(margin=-1.0),
        ValueError,
        "FaceNetTripletLoss: margin must be a finite number >= 0",
    ),
    (
        lambda: LN.FaceNetTripletLoss()(_x, _c, _x),
        ValueError,
        "FaceNetTripletLoss: expected positive of the same shape as anchor",
    ),
    (
        lambda: LN.TripletLoss()(_x, _y[:3]),
        ValueError,
        r"TripletLoss: expected labels of shape \(4,\), got \(3,\)",
    ),
    (
        lambda: LN.TripletLoss()(_x, _y, return_stats=1),
        TypeError,
        "TripletLoss: return_stats must be a bool; got int",
    ),
    (
        lambda: LN.ContrastiveLoss()(_x, _x, _same[:2]),
        ValueError,
        r"ContrastiveLoss: expected same of shape \(4,\)",
    ),
    (
        lambda: LN.BatchContrastiveLoss()(_x, _y.float()),
        TypeError,
        "BatchContrastiveLoss: labels must be an integer tensor",
    ),
    # center loss: labels are class indices (checked for free on CPU), devices, the Module's own names
    (
        lambda: LF.center_loss(_x, torch.tensor([0, 1, 2, 0]), _c),
        ValueError,
        r"center_loss: target must hold class indices in \[0, 2\); got 1 outside it, the first 2",
    ),
    (
        lambda: LF.center_loss(_x, torch.tensor([0, -1, 0, 0]), _c),
        ValueError,
        r"center_loss: target must hold class indices in \[0, 2\); got 1 outside it, the first -1",
    ),
    (
        lambda: LF.update_centers(_c.clone(), _x, torch.tensor([0, 1, 5, 0])),
        ValueError,
        r"update_centers: target must hold class indices in \[0, 2\)",
    ),
    (
        lambda: LF.center_loss(_x, _y.to("meta"), _c),
        ValueError,
        r"center_loss: expected target on the device of input \(cpu\), got target on meta",
    ),
    (
        lambda: LF.center_loss(_x, _y, _c.to("meta")),
        ValueError,
        r"center_loss: expected centers on the device of input \(cpu\), got centers on meta",
    ),
    (
        lambda: LF.update_centers(_c.to("meta"), _x, _y),
        ValueError,
        r"update_centers: expected centers on the device of input \(cpu\), got centers on meta",
    ),
    (
        lambda: LN.CenterLoss(2, 3)(torch.zeros(4, 4), _y),
        ValueError,
        r"CenterLoss: expected input of shape \(N, embedding_dim=3\), got \(4, 4\)",
    ),
    (
        lambda: LN.CenterLoss(2, 3)(_x, torch.tensor([0, 0, 2, 1])),
        ValueError,
        r"CenterLoss: target must hold class indices in \[0, 2\)",
    ),
    (
        lambda: LN.CenterLoss(2, 3)(_x, _y.to("meta")),
        ValueError,
        r"CenterLoss: expected target on the device of input \(cpu\), got target on meta",
    ),
    # batch losses: every tensor argument on the device of the embeddings
    (
        lambda: LF.batch_triplet_loss(_x, _y.to("meta")),
        ValueError,
        r"batch_triplet_loss: expected labels on the device of embeddings \(cpu\), got labels on meta",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_x.to("meta"), ref_labels=_y),
        ValueError,
        r"batch_triplet_loss: expected ref_embeddings on the device of embeddings \(cpu\)",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, ref_embeddings=_x, ref_labels=_y.to("meta")),
        ValueError,
        r"batch_triplet_loss: expected ref_labels on the device of embeddings \(cpu\)",
    ),
    (
        lambda: LF.batch_triplet_loss(_x, _y, weight=torch.ones(4, device="meta")),
        ValueError,
        r"batch_triplet_loss: expected weight on the device of embeddings \(cpu\)",
    ),
    (
        lambda: LF.batch_contrastive_loss(_x, _y, weight=torch.ones(4, device="meta")),
        ValueError,
        r"batch_contrastive_loss: expected weight on the device of embeddings \(cpu\)",
    ),
    (
        lambda: LF.contrastive_loss(_x, _x, _same.to("meta")),
        ValueError,
        r"contrastive_loss: expected same on the device of x1 \(cpu\), got same on meta",
    ),
    (
        lambda: LF.batch_hard_triplets(_x, _y.to("meta")),
        ValueError,
        r"batch_hard_triplets: expected labels on the device of embeddings \(cpu\)",
    ),
    (
        lambda: LF.distance_matrix(_x, _x.to("meta")),
        ValueError,
        r"distance_matrix: expected y on the device of x \(cpu\), got y on meta",
    ),
    (lambda: LN.TripletLoss(margin=-1.0), ValueError, "TripletLoss: margin must be a finite number >= 0"),
    (
        lambda: LN.TripletLoss(mining="all"),
        ValueError,
        "TripletLoss: mining must be 'batch_all', 'batch_hard' or 'semi_hard'",
    ),
    (lambda: LN.TripletLoss(distance="l1"), ValueError, "TripletLoss: distance must be 'euclidean' or"),
    (
        lambda: LN.TripletLoss(soft_margin="yes"),
        TypeError,
        "TripletLoss: soft_margin must be a bool; got str",
    ),
    (
        lambda: LN.TripletLoss(mining="batch_all", soft_margin=True),
        ValueError,
        "TripletLoss: soft_margin must be False with mining='batch_all'",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), ERRORS, ids=[e[2][:60] for e in ERRORS])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------------------------------
# issue 10 items 3, 12, 15: NaN in gives NaN out; float32 distances on close embeddings; tiny scales


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("where", ["anchor", "candidate"])
def test_batch_triplet_nan_in_gives_nan_out(mining, where):
    # before: 0.0 / 0.033 / 0.54 with NaN only in the gradient (the mining comparisons dropped the row)
    x, y = _batch(5, 8, 3, 3)
    if where == "anchor":
        x[0, 0] = float("nan")
        loss = LF.batch_triplet_loss(x, y, mining=mining, reduction="none")
        assert torch.isnan(loss).all()  # every anchor's mining compared itself with row 0
        for reduction in ("mean", "sum"):
            assert torch.isnan(LF.batch_triplet_loss(x, y, mining=mining, reduction=reduction))
        assert torch.isnan(LN.TripletLoss(mining=mining)(x, y))
    else:  # a NaN among the candidates only (the cross-rank design): every anchor is NaN
        ref = torch.cat([x, x[:2]])
        ref[-1, 1] = float("nan")
        ref_y = torch.cat([y, y[:2]])
        loss = LF.batch_triplet_loss(x, y, mining=mining, ref_embeddings=ref, ref_labels=ref_y)
        assert torch.isnan(loss)


def test_batch_contrastive_and_contrastive_nan_in_gives_nan_out():
    x, y = _batch(6, 6, 3, 2)
    x[2, 1] = float("nan")
    assert torch.isnan(LF.batch_contrastive_loss(x, y, reduction="none")).all()
    same = torch.tensor([False] * 6)  # before: the NaN distance of a different pair became 0
    assert torch.isnan(LF.contrastive_loss(x, torch.zeros_like(x), same, reduction="none")[2])


def _close_batch(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    gen = torch.Generator().manual_seed(seed)
    b, d = 32, 64
    y = torch.arange(b) % 4
    noise = torch.randn(b, d, generator=gen, dtype=F64)
    if kind == "collapsed":  # L2-normalised embeddings early in training: all within 0.01 of each other
        base = F.normalize(torch.randn(1, d, generator=gen, dtype=F64), dim=1)
        x, margin = F.normalize(base + 0.003 * noise, dim=1), 0.005
    elif kind == "far":  # a tight batch far from the origin
        x, margin = 100.0 + 0.01 * noise, 0.01
    else:  # four tight classes on the sphere, far apart from each other
        centres = F.normalize(torch.randn(4, d, generator=gen, dtype=F64), dim=1)
        x, margin = F.normalize(centres[y] + 0.003 * noise, dim=1), 1.42
    return x.float(), y, margin


@pytest.mark.parametrize("kind", ["collapsed", "far", "clusters"])
@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_close_embeddings_match_a_float64_loop(kind, mining, seed):
    # before: Gram cancellation counted 468 active triplets where float64 counts 470 (collapsed), and
    # lost every digit on the batch far from the origin
    x, y, margin = _close_batch(kind, seed)
    loss, stats = LF.batch_triplet_loss(
        x, y, margin=margin, mining=mining, return_stats=True, reduction="none"
    )
    # the reference sees the same float32 numbers, exactly, in float64 arithmetic
    want, valid, active = batch_triplet_ref(
        _rows(x.double()), _ints(y), margin=margin, mining=mining, squared=False
    )
    assert (stats.num_valid.item(), stats.num_active.item()) == (valid, active)
    total = sum(want)
    assert total > 0
    # a few float32 roundings of the distances (exact float32 differences reach about 5e-7 here)
    rtol = 3e-6 if kind == "clusters" else 1e-6
    assert loss.sum().item() == pytest.approx(total, rel=rtol)
    torch.testing.assert_close(loss.double(), torch.tensor(want, dtype=F64), rtol=0, atol=rtol * total / 8)


@pytest.mark.parametrize("kind", ["collapsed", "far"])
def test_float32_close_embeddings_contrastive_and_distance_matrix(kind):
    x, y, margin = _close_batch(kind, 3)
    rows = _rows(x.double())
    want = batch_contrastive_ref(rows, _ints(y), 10 * margin)
    got = LF.batch_contrastive_loss(x, y, margin=10 * margin, reduction="none")
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=F64), rtol=2e-6, atol=1e-12)
    exact = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    off = ~torch.eye(32, dtype=torch.bool)
    rel = ((LF.distance_matrix(x).double() - exact).abs() / exact)[off].max()
    assert rel < 1e-6, rel  # before: relative errors of order 1 far from the origin


TINY = [(torch.float32, 1e-20), (torch.float64, 1e-160)]


def _hessian(fn, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
    rows = [
        torch.autograd.grad(g.reshape(-1)[i], x, retain_graph=True)[0].reshape(-1) for i in range(x.numel())
    ]
    return g.detach(), torch.stack(rows)


@pytest.mark.parametrize(("dtype", "scale"), TINY, ids=["float32-1e-20", "float64-1e-160"])
@pytest.mark.parametrize("mining", MININGS)
def test_second_derivatives_at_tiny_scales(dtype, scale, mining):
    # before: NaN second derivatives (the squared distances underflow, 1/d^3 overflows)
    x, _ = _batch(8, 8, 3, 3)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])

    def fn(x):  # every distance is tiny, so every hinge is active: linear in the distances
        return LF.batch_triplet_loss(x, y, margin=0.8, mining=mining)

    x = x.to(dtype).double()  # the same numbers at both scales
    g1, h1 = _hessian(fn, x * 1e-3)  # float64, distances far below the margin: all hinges active
    g, h = _hessian(fn, (x * scale).to(dtype))
    assert torch.isfinite(g).all() and torch.isfinite(h).all()
    # Euclidean distances are 1-homogeneous: the gradient is scale-free, the Hessian scales as 1/scale
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(g.double(), g1, rtol=rtol, atol=rtol)
    torch.testing.assert_close(h.double() * (scale / 1e-3), h1, rtol=rtol, atol=rtol * h1.abs().max().item())


@pytest.mark.parametrize(("dtype", "scale"), TINY, ids=["float32-1e-20", "float64-1e-160"])
def test_contrastive_second_derivatives_at_tiny_scales(dtype, scale):
    x, y = _batch(9, 6, 3, 2)
    same = torch.tensor([False, True, False, False, True, False])
    fns = [
        lambda x: LF.contrastive_loss(x, x.flip(0), same, margin=1.0),
        lambda x: LF.batch_contrastive_loss(x, y, margin=1.0),
    ]
    for fn in fns:
        g, h = _hessian(fn, (x * scale).to(dtype))
        assert torch.isfinite(g).all() and torch.isfinite(h).all()


def test_gradgradcheck_at_tiny_scale_float64():
    scale = 1e-20
    x = (_leaf(8, 3, seed=5).detach() * scale).requires_grad_(True)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    for mining in MININGS:

        def fn(x, mining=mining):  # margin 0: the loss itself is of the order of the distances
            return LF.batch_triplet_loss(x, y, margin=0.0, mining=mining)

        assert fn(x).item() > 0  # some hinge is active, so the check is not vacuous
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-6 * scale)
        # Hessian entries are of order 1 / scale: gradgradcheck's rtol decides
        assert torch.autograd.gradgradcheck(fn, (x,), eps=1e-6 * scale, atol=1e-6 / scale)


@given(
    seed=st.integers(0, 2**31 - 1),
    shift=st.floats(-50.0, 50.0),
    k=st.floats(0.01, 100.0),
    mining=st.sampled_from(MININGS),
)
def test_batch_triplet_is_translation_invariant_and_homogeneous(seed, shift, k, mining):
    # the frames (centre, scale) must change nothing but rounding
    x, y = _batch(seed, 9, 3, 3)
    base = LF.batch_triplet_loss(x, y, margin=0.5, mining=mining, reduction="none")
    moved = LF.batch_triplet_loss(x + shift, y, margin=0.5, mining=mining, reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-9, atol=1e-9 * (1 + abs(shift)))
    scaled = LF.batch_triplet_loss(k * x, y, margin=0.5 * k, mining=mining, reduction="none")
    torch.testing.assert_close(scaled, k * base, rtol=1e-9, atol=1e-12 * k)


# --------------------------------------------------------------------------------------------------
# torch.func for every loss of the family (the contract row differentiates the labels too, so this
# one takes the gradient with respect to the float inputs only)


def _func_cases():
    from cases_metric import CASES

    return [pytest.param(c, id=f"{c.name}-{i}") for i, c in enumerate(CASES)]


@pytest.mark.parametrize("case", _func_cases())
def test_func_vmap_of_grad_equals_a_loop(case):
    calls = []
    for s in range(3):
        gen = torch.Generator().manual_seed(s)
        calls.append(
            {k: v.double() if v.is_floating_point() else v for k, v in case.make(5, F64, gen).items()}
        )
    stacked = {k: torch.stack([c[k] for c in calls]) for k in calls[0]}
    keys = case.grad_keys

    def loss(floats, rest):
        return case.call({**rest, **floats}, "sum")

    floats = {k: stacked[k] for k in keys}
    rest = {k: v for k, v in stacked.items() if k not in keys}
    got = torch.func.vmap(loss)(floats, rest)
    grads = torch.func.vmap(torch.func.grad(loss))(floats, rest)
    for i, c in enumerate(calls):
        leaves = {k: v.clone().requires_grad_(k in keys) for k, v in c.items()}
        want = case.call(leaves, "sum")
        torch.testing.assert_close(got[i], want.detach())
        refs = torch.autograd.grad(want, [leaves[k] for k in keys])
        for key, ref in zip(keys, refs):
            torch.testing.assert_close(grads[key][i], ref)
    # jacrev of the per-element losses too
    c = calls[0]
    key = keys[0]
    jac = torch.func.jacrev(lambda v: case.call({**c, key: v}, "none"))(c[key])
    leaf = c[key].clone().requires_grad_(True)
    none = case.call({**c, key: leaf}, "none")
    rows = [torch.autograd.grad(v, leaf, retain_graph=True)[0] for v in none.reshape(-1)]
    torch.testing.assert_close(jac, torch.stack(rows).reshape(*none.shape, *leaf.shape))
