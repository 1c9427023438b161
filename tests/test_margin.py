"""Margin softmax: golden target logits, float64 references, properties, gradients, edges and errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN
import references_margin as R

D64 = torch.float64
ANGLES = [0, 30, 45, 60, 90, 120, 150, 170, 180]  # degrees


def _cos_of(angles) -> torch.Tensor:
    return torch.tensor([math.cos(math.radians(a)) for a in angles], dtype=D64)


# ---------------------------------------------------------------------------------------------------------
# 1. golden target logits (before scaling) at 0, 30, ..., 180 degrees, worked out by hand
# ---------------------------------------------------------------------------------------------------------

S3, S2 = math.sqrt(3) / 2, math.sqrt(2) / 2
C170 = -0.984807753012208  # cos 170 = -cos 10
HALF_SIN_HALF = 0.5 * 0.479425538604203  # m sin m for m = 0.5 (sin 0.5 = 0.4794255386)

GOLDEN = {
    # plain softmax: cos(theta); combined (1, 0, 0) must reproduce it through its atan2 angle.
    "softmax": [1.0, S3, S2, 0.5, 0.0, -0.5, -S3, C170, -1.0],
    # CosFace m = 0.35: cos(theta) - 0.35.
    "cosface": [0.65, S3 - 0.35, S2 - 0.35, 0.15, -0.35, -0.85, -S3 - 0.35, C170 - 0.35, -1.35],
    # ArcFace m = 0.5 without fallback: cos(theta + 0.5) = cos(theta) cos(0.5) - sin(theta) sin(0.5), with
    # cos 0.5 = 0.8775825619, sin 0.5 = 0.4794255386; e.g. 60: 0.5 * 0.87758 - 0.86603 * 0.47943 = 0.02360;
    # 180: cos(pi + 0.5) = -cos 0.5 (the curve rises again past theta + m = pi).
    "arcface_none": [
        0.8775825619,
        0.5202960232,
        0.2815395311,
        0.0235965853,
        -0.4794255386,
        -0.8539859766,
        -0.9997215618,
        -0.9475014820,
        -0.8775825619,
    ],
    # ArcFace m = 0.5 with the linear fallback: theta + 0.5 > pi  <=>  theta > 151.35 degrees, so only 170
    # and 180 change, to cos(theta) - 0.5 sin 0.5.
    "arcface_linear": [
        0.8775825619,
        0.5202960232,
        0.2815395311,
        0.0235965853,
        -0.4794255386,
        -0.8539859766,
        -0.9997215618,
        C170 - HALF_SIN_HALF,
        -1.0 - HALF_SIN_HALF,
    ],
    # SphereFace m = 4, lambda = 5: phi = (5 cos + psi) / 6, k = floor(theta / 45 deg) capped at 3,
    # psi = (-1)^k cos(4 theta) - 2k.
    #   0: k=0, psi=cos 0=1 -> 1;  30: k=0, psi=cos 120=-1/2 -> (5 S3 - 1/2)/6;
    #   45: k=1, psi=-cos 180-2=-1 -> (5 S2 - 1)/6;  60: k=1, psi=-cos 240-2=-3/2 -> (5/2-3/2)/6=1/6;
    #   90: k=2, psi=cos 360-4=-3 -> -1/2;  120: k=2, psi=cos 480-4=-9/2 -> (-5/2-9/2)/6=-7/6;
    #   150: k=3, psi=-cos 600-6=-11/2 -> (-5 S3 - 11/2)/6;  170: k=3, psi=-cos 680-6=-cos 40-6;
    #   180: k=3, psi=-cos 720-6=-7 -> (-5-7)/6=-2.
    "sphereface": [
        1.0,
        (5 * S3 - 0.5) / 6,
        (5 * S2 - 1) / 6,
        1 / 6,
        -0.5,
        -7 / 6,
        (-5 * S3 - 5.5) / 6,
        (5 * C170 - 0.766044443118978 - 6) / 6,  # cos 40 = 0.7660444431
        -2.0,
    ],
    # combined (1, 0.3, 0.2): cos(theta + 0.3) - 0.2; e.g. 0: cos 0.3 - 0.2 = 0.9553365 - 0.2;
    # 180: cos(pi + 0.3) - 0.2 = -0.9553365 - 0.2 (no fallback).
    "combined_1": [
        0.7553364891,
        0.4795855654,
        0.2665605677,
        0.0217402383,
        -0.4955202067,
        -0.9335962509,
        -1.1751057721,
        -1.1921393266,
        -1.1553364891,
    ],
    # combined (0.9, 0.4, 0.15): cos(0.9 theta + 0.4) - 0.15; e.g. 90: cos(1.4137 + 0.4) - 0.15 =
    # cos(1.8137) - 0.15 = -0.2405 - 0.15.
    "combined_2": [
        0.7710609940,
        0.4938791270,
        0.2974732921,
        0.0763400119,
        -0.3905382724,
        -0.8049823520,
        -1.0766488253,
        -1.1474635827,
        -1.1463179459,
    ],
}

TARGET_LOGIT_FNS = {
    "softmax": lambda c: LF.combined_margin_target_logit(c),
    "cosface": lambda c: LF.cosface_target_logit(c, margin=0.35),
    "arcface_none": lambda c: LF.arcface_target_logit(c, margin=0.5, fallback="none"),
    "arcface_linear": lambda c: LF.arcface_target_logit(c, margin=0.5, fallback="linear"),
    "sphereface": lambda c: LF.sphereface_target_logit(c, margin=4, lambda_=5.0),
    "combined_1": lambda c: LF.combined_margin_target_logit(c, m1=1.0, m2=0.3, m3=0.2),
    "combined_2": lambda c: LF.combined_margin_target_logit(c, m1=0.9, m2=0.4, m3=0.15),
}


@pytest.mark.parametrize("family", list(GOLDEN))
def test_golden_target_logits(family):
    got = TARGET_LOGIT_FNS[family](_cos_of(ANGLES))
    torch.testing.assert_close(got, torch.tensor(GOLDEN[family], dtype=D64), rtol=0, atol=1e-9)


def test_golden_arcface_easy_margin():
    # easy margin: cos(theta + 0.5) where cos > 0, cos itself elsewhere (90 degrees excluded: cos 90 in
    # floating point is 6e-17 > 0, on the kink).
    angles = [0, 30, 60, 120, 180]
    want = [0.8775825619, 0.5202960232, 0.0235965853, -0.5, -1.0]
    got = LF.arcface_target_logit(_cos_of(angles), margin=0.5, fallback="easy")
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64), rtol=0, atol=1e-9)


def test_golden_loss_two_classes():
    # cosine [[cos 60, 0]], target 0, ArcFace s=64, m=0.5: phi = 0.0235965853 (table above), so
    # loss = log(1 + exp(64 * (0 - 0.0235965853))) = log(1 + exp(-1.51018146)); exp(-1.5) = 0.223130,
    # exp(-0.01018) = 0.989872, product 0.220870, log(1.220870) = 0.199564.
    cos = torch.tensor([[0.5, 0.0]], dtype=D64)
    loss = LF.arcface_loss(cos, torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-64 * 0.0235965853)), rel=1e-8)
    assert loss.item() == pytest.approx(0.199564, abs=2e-6)


def test_sphereface_lambda_schedule():
    # 1000 / (1 + 0.12 * 1) = 892.857; 1000 / (1 + 0.12 t) <= 5  <=>  t >= 1658.33, so 5 from 1659.
    assert LF.sphereface_lambda(0) == 1000.0
    assert LF.sphereface_lambda(1) == pytest.approx(892.857, abs=1e-3)
    assert (
        LF.sphereface_lambda(1658) == pytest.approx(1000 / (1 + 0.12 * 1658))
        and LF.sphereface_lambda(1658) > 5
    )
    assert LF.sphereface_lambda(1659) == 5.0
    assert LF.sphereface_lambda(10, base=8.0, gamma=1.0, power=2.0, lambda_min=0.0) == pytest.approx(8 / 121)
    t = LF.sphereface_lambda(torch.tensor(1))
    assert isinstance(t, torch.Tensor) and t.dim() == 0
    assert t.item() == pytest.approx(892.857, abs=1e-3)
    assert LF.sphereface_lambda(torch.tensor(5000)).item() == 5.0


def test_l2_softmax_alpha_lower_bound():
    # C = 10000, p = 0.9: log(0.9 * 9998 / 0.1) = log(89982) = log(9e4) + log(0.9998) = 11.40756 - 0.00020
    assert LF.l2_softmax_alpha_lower_bound(10_000, 0.9) == pytest.approx(11.40736, abs=1e-5)
    # C = 3, p = 0.5: log(0.5 * 1 / 0.5) = 0
    assert LF.l2_softmax_alpha_lower_bound(3, 0.5) == pytest.approx(0.0, abs=1e-15)
    assert LF.l2_softmax_alpha_lower_bound(57, 0.99) == pytest.approx(
        R.l2_softmax_alpha_lower_bound(57, 0.99)
    )


# ---------------------------------------------------------------------------------------------------------
# 2. float64 references on Hypothesis inputs (cosines in [-1, 1], the endpoints included)
# ---------------------------------------------------------------------------------------------------------

cos_value = st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-1.0, 1.0, 0.0]))


@st.composite
def cosine_batch(draw, max_n=4, max_c=5):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    cos = draw(st.lists(st.lists(cos_value, min_size=c, max_size=c), min_size=n, max_size=n))
    target = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return cos, target


LOSSES = {
    "normface": (lambda c, t: LF.normface_loss(c, t, scale=8.0, reduction="none"), lambda x: x, 8.0),
    "cosface": (lambda c, t: LF.cosface_loss(c, t, reduction="none"), lambda x: R.cosface_phi(x, 0.35), 64.0),
    "am_softmax": (lambda c, t: LF.am_softmax_loss(c, t, reduction="none"), lambda x: x - 0.35, 30.0),
    "arcface_linear": (
        lambda c, t: LF.arcface_loss(c, t, reduction="none"),
        lambda x: R.arcface_phi(x, 0.5, "linear"),
        64.0,
    ),
    "arcface_easy": (
        lambda c, t: LF.arcface_loss(c, t, scale=30.0, margin=0.3, fallback="easy", reduction="none"),
        lambda x: R.arcface_phi(x, 0.3, "easy"),
        30.0,
    ),
    "arcface_none": (
        lambda c, t: LF.arcface_loss(c, t, margin=0.7, fallback="none", reduction="none"),
        lambda x: R.arcface_phi(x, 0.7, "none"),
        64.0,
    ),
    "combined": (
        lambda c, t: LF.combined_margin_loss(c, t, m1=0.9, m2=0.4, m3=0.15, reduction="none"),
        lambda x: R.combined_phi(x, 0.9, 0.4, 0.15),
        64.0,
    ),
    "sphereface": (
        lambda c, t: LF.sphereface_loss(c, t, scale=7.0, margin=4, lambda_=5.0, reduction="none"),
        lambda x: R.sphereface_phi(x, 4, 5.0),
        7.0,
    ),
    "sphereface_m3": (
        lambda c, t: LF.sphereface_loss(c, t, scale=3.0, margin=3, reduction="none"),
        lambda x: R.sphereface_phi(x, 3, 0.0),
        3.0,
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
@settings(max_examples=25)
@given(batch=cosine_batch())
def test_cosine_losses_match_reference(name, batch):
    fn, phi, s = LOSSES[name]
    cos, target = batch
    got = fn(torch.tensor(cos, dtype=D64), torch.tensor(target))
    want = R.margin_loss(cos, target, phi, s)
    # the chord replacing sqrt within machine epsilon of |cos| = 1 moves sin by < 4e-9, times s <= 64.
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64), rtol=1e-9, atol=1e-6)


@settings(max_examples=25)
@given(batch=cosine_batch(), norms=st.lists(st.floats(0.1, 20.0), min_size=4, max_size=4))
def test_sphereface_with_feature_norms_matches_reference(batch, norms):
    cos, target = batch
    norms = norms[: len(cos)]
    got = LF.sphereface_loss(
        torch.tensor(cos, dtype=D64),
        torch.tensor(target),
        scale=torch.tensor(norms, dtype=D64),
        reduction="none",
    )
    want = R.margin_loss(cos, target, lambda x: R.sphereface_phi(x, 4, 0.0), norms)
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64), rtol=1e-9, atol=1e-6)


@settings(max_examples=25)
@given(data=st.data(), k=st.integers(1, 3))
def test_subcenter_arcface_matches_reference(data, k):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    cos = data.draw(st.lists(st.lists(st.lists(cos_value, min_size=k, max_size=k), min_size=c, max_size=c),
                             min_size=n, max_size=n))  # fmt: skip
    target = data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    t = torch.tensor(cos, dtype=D64)
    want = torch.tensor(R.subcenter_arcface_loss(cos, target, 64.0, 0.5, "linear"), dtype=D64)
    got3 = LF.subcenter_arcface_loss(t, torch.tensor(target), reduction="none")
    got2 = LF.subcenter_arcface_loss(t.flatten(1), torch.tensor(target), subcenters=k, reduction="none")
    torch.testing.assert_close(got3, want, rtol=1e-9, atol=1e-6)
    torch.testing.assert_close(got2, want, rtol=1e-9, atol=1e-6)


def _features(seed, n=5, c=4, d=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D64)
    w = torch.randn(c, d, generator=g, dtype=D64)
    y = torch.randint(0, c, (n,), generator=g)
    return x, w, y


@pytest.mark.parametrize("seed", range(3))
def test_l2_softmax_matches_reference(seed):
    x, w, y = _features(seed)
    b = torch.linspace(-1, 1, w.shape[0], dtype=D64)
    got = LF.l2_softmax_loss(x, w, y, alpha=4.0, bias=b, reduction="none")
    want = R.l2_softmax_loss(x.tolist(), w.tolist(), y.tolist(), 4.0, b.tolist())
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("seed", "margin", "lam"), [(0, 4, 0.0), (1, 2, 0.0), (2, 3, 5.0), (3, 1, 0.0)])
def test_large_margin_softmax_matches_reference(seed, margin, lam):
    x, w, y = _features(seed)
    got = LF.large_margin_softmax_loss(x, w, y, margin=margin, lambda_=lam, reduction="none")
    want = R.large_margin_softmax_loss(x.tolist(), w.tolist(), y.tolist(), margin, lam)
    torch.testing.assert_close(got, torch.tensor(want, dtype=D64), rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------
# 3. properties
# ---------------------------------------------------------------------------------------------------------


def _rand_cos(seed, n=6, c=5, dtype=D64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, c, generator=g, dtype=D64) * 2 - 1).to(dtype), torch.randint(
        0, c, (n,), generator=g
    )


ZERO_MARGIN = {
    "normface": lambda c, t: LF.normface_loss(c, t, scale=30.0),
    "cosface": lambda c, t: LF.cosface_loss(c, t, scale=30.0, margin=0.0),
    "am_softmax": lambda c, t: LF.am_softmax_loss(c, t, margin=0.0),
    "arcface_linear": lambda c, t: LF.arcface_loss(c, t, scale=30.0, margin=0.0),
    "arcface_easy": lambda c, t: LF.arcface_loss(c, t, scale=30.0, margin=0.0, fallback="easy"),
    "arcface_none": lambda c, t: LF.arcface_loss(c, t, scale=30.0, margin=0.0, fallback="none"),
    "combined": lambda c, t: LF.combined_margin_loss(c, t, scale=30.0),
    "sphereface_m1": lambda c, t: LF.sphereface_loss(c, t, scale=30.0, margin=1),
    "subcenter_k1": lambda c, t: LF.subcenter_arcface_loss(c.unsqueeze(2), t, scale=30.0, margin=0.0),
    "core": lambda c, t: LF.margin_cross_entropy(c, t, c.gather(1, t[:, None])[:, 0], scale=30.0),
}


@pytest.mark.parametrize("name", list(ZERO_MARGIN))
def test_zero_margin_is_cross_entropy_on_scaled_cosine(name):
    cos, t = _rand_cos(0)
    torch.testing.assert_close(ZERO_MARGIN[name](cos, t), F.cross_entropy(30.0 * cos, t))


MONOTONE = {
    "cosface": lambda c, t, m: LF.cosface_loss(c, t, margin=m, reduction="none"),
    "arcface_linear": lambda c, t, m: LF.arcface_loss(c, t, margin=m, reduction="none"),
    "arcface_easy": lambda c, t, m: LF.arcface_loss(c, t, margin=m, fallback="easy", reduction="none"),
    "combined_m2": lambda c, t, m: LF.combined_margin_loss(c, t, m1=0.9, m2=m, m3=0.1, reduction="none"),
    "combined_m3": lambda c, t, m: LF.combined_margin_loss(c, t, m1=1.0, m2=0.2, m3=m, reduction="none"),
}


@pytest.mark.parametrize("name", list(MONOTONE))
@settings(max_examples=30)
@given(batch=cosine_batch(), ms=st.lists(st.floats(0.0, math.pi / 2), min_size=2, max_size=2))
def test_loss_never_decreases_as_margin_grows(name, batch, ms):
    cos, target = torch.tensor(batch[0], dtype=D64), torch.tensor(batch[1])
    if name == "combined_m2":  # 0.9 theta + m2 stays <= pi only for m2 <= 0.1 pi: the curve has no fallback
        ms = [m * 0.2 for m in ms]
    lo, hi = sorted(ms)
    small, large = MONOTONE[name](cos, target, lo), MONOTONE[name](cos, target, hi)
    assert (large >= small - 1e-9).all() and (small >= 0).all()


@settings(max_examples=30)
@given(batch=cosine_batch())
def test_sphereface_psi_decreases_with_integer_margin(batch):
    cos, target = torch.tensor(batch[0], dtype=D64), torch.tensor(batch[1])
    losses = [LF.sphereface_loss(cos, target, scale=2.0, margin=m, reduction="none") for m in (1, 2, 3, 4, 5)]
    for a, b in itertools.pairwise(losses):
        assert (b >= a - 1e-9).all()


def test_straight_through_keeps_value_and_cosine_gradient():
    cos, t = _rand_cos(1)
    exact = cos.clone().requires_grad_(True)
    st_ = cos.clone().requires_grad_(True)
    le = LF.arcface_loss(exact, t, scale=16.0, reduction="sum")
    ls = LF.arcface_loss(st_, t, scale=16.0, gradient="straight_through", reduction="sum")
    torch.testing.assert_close(ls, le)
    (gs,) = torch.autograd.grad(ls, st_)
    # by hand: with the margin logits z (target phi), dl/dz = s (softmax(z) - onehot) and the target's
    # dphi/dcos is taken as 1.
    phi = torch.tensor([R.arcface_phi(c, 0.5) for c in cos.gather(1, t[:, None])[:, 0].tolist()], dtype=D64)
    z = 16.0 * cos.scatter(1, t[:, None], phi[:, None])
    want = 16.0 * (torch.softmax(z, 1) - F.one_hot(t, cos.shape[1]).to(D64))
    torch.testing.assert_close(gs, want)
    (ge,) = torch.autograd.grad(le, exact)
    assert not torch.allclose(ge, gs)  # the exact gradient differs at the target column


def test_l2_softmax_with_unit_weights_is_normface():
    x, w, y = _features(4)
    got = LF.l2_softmax_loss(x, F.normalize(w, dim=1), y, alpha=9.0)
    want = LF.normface_loss(F.normalize(x, dim=1) @ F.normalize(w, dim=1).T, y, scale=9.0)
    torch.testing.assert_close(got, want)


def test_large_margin_softmax_margin_one_is_plain_softmax():
    x, w, y = _features(5)
    torch.testing.assert_close(LF.large_margin_softmax_loss(x, w, y, margin=1), F.cross_entropy(x @ w.T, y))


def test_weight_scales_per_sample_losses():
    cos, t = _rand_cos(2)
    wt = torch.linspace(0, 2, cos.shape[0], dtype=D64)
    none = LF.arcface_loss(cos, t, reduction="none")
    torch.testing.assert_close(LF.arcface_loss(cos, t, weight=wt, reduction="sum"), (none * wt).sum())
    x, w, y = _features(6)
    sw = torch.linspace(0, 2, 5, dtype=D64)
    for fn in (
        lambda **k: LF.l2_softmax_loss(x, w, y, alpha=2.0, **k),
        lambda **k: LF.large_margin_softmax_loss(x, w, y, **k),
    ):
        torch.testing.assert_close(fn(sample_weight=sw, reduction="mean"), (fn(reduction="none") * sw).mean())


# ---------------------------------------------------------------------------------------------------------
# 4. gradients
# ---------------------------------------------------------------------------------------------------------


def _grad_cos(seed, n=4, c=3, k=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, c) if k is None else (n, c, k)
    cos = (torch.rand(shape, generator=g, dtype=D64) * 1.6 - 0.8).requires_grad_(True)  # away from +-1
    return cos, torch.randint(0, c, (n,), generator=g)


GRAD = {
    "arcface": lambda c, t: LF.arcface_loss(c, t, scale=4.0),
    "cosface": lambda c, t: LF.cosface_loss(c, t, scale=4.0),
    "combined": lambda c, t: LF.combined_margin_loss(c, t, scale=4.0, m1=0.9, m2=0.4, m3=0.15),
    "sphereface": lambda c, t: LF.sphereface_loss(c, t, scale=2.0, lambda_=1.0),
    "normface": lambda c, t: LF.normface_loss(c, t, scale=3.0),
}
SMOOTH = {"arcface", "cosface", "combined", "normface"}


@pytest.mark.parametrize("name", list(GRAD))
def test_gradcheck_cosine_losses(name):
    cos, t = _grad_cos(0)
    assert torch.autograd.gradcheck(lambda c: GRAD[name](c, t), (cos,))
    if name in SMOOTH:
        assert torch.autograd.gradgradcheck(lambda c: GRAD[name](c, t), (cos,))


def test_gradcheck_scale_tensors_and_subcenters():
    cos, t = _grad_cos(1)
    norms = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=D64, requires_grad=True)
    lam = torch.tensor(2.0, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda c, s, la: LF.sphereface_loss(c, t, scale=s, margin=3, lambda_=la), (cos, norms, lam)
    )
    phi = cos.detach()[torch.arange(4), t].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda c, p, s: LF.margin_cross_entropy(c, t, p, scale=s), (cos, phi, norms)
    )
    sub, ts = _grad_cos(2, k=3)
    assert torch.autograd.gradcheck(lambda c: LF.subcenter_arcface_loss(c, ts, scale=4.0), (sub,))


def test_gradcheck_feature_losses():
    x, w, y = _features(7)
    x.requires_grad_(True)
    w.requires_grad_(True)
    b = torch.zeros(w.shape[0], dtype=D64, requires_grad=True)
    alpha = torch.tensor(3.0, dtype=D64, requires_grad=True)
    l2 = lambda x_, w_, b_, a_: LF.l2_softmax_loss(x_, w_, y, alpha=a_, bias=b_)  # noqa: E731
    assert torch.autograd.gradcheck(l2, (x, w, b, alpha))
    assert torch.autograd.gradgradcheck(l2, (x, w, b, alpha))
    ls = lambda x_, w_: LF.large_margin_softmax_loss(x_, w_, y, margin=3, lambda_=1.0)  # noqa: E731
    assert torch.autograd.gradcheck(ls, (x, w))
    assert torch.autograd.gradgradcheck(
        lambda x_, w_: LF.large_margin_softmax_loss(x_, w_, y, margin=2), (x, w)
    )


# ---------------------------------------------------------------------------------------------------------
# 5. edges: cos = +-1, one class, zero features, low precision
# ---------------------------------------------------------------------------------------------------------

EDGE = {
    "normface": lambda c, t: LF.normface_loss(c, t, scale=64.0),
    "cosface": lambda c, t: LF.cosface_loss(c, t),
    "arcface_linear": lambda c, t: LF.arcface_loss(c, t),
    "arcface_easy": lambda c, t: LF.arcface_loss(c, t, fallback="easy"),
    "arcface_none": lambda c, t: LF.arcface_loss(c, t, fallback="none"),
    "arcface_st": lambda c, t: LF.arcface_loss(c, t, gradient="straight_through"),
    "combined": lambda c, t: LF.combined_margin_loss(c, t, m1=0.9, m2=0.4, m3=0.15),
    "sphereface": lambda c, t: LF.sphereface_loss(c, t, scale=10.0, lambda_=5.0),
    "subcenter": lambda c, t: LF.subcenter_arcface_loss(c, t, subcenters=1),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(EDGE))
def test_cosine_of_plus_minus_one_is_finite_with_finite_gradient(name, dtype):
    # targets at cos = 1, -1, 1 - ulp, and a non-target at +-1; also slightly outside [-1, 1].
    eps = torch.finfo(dtype).eps
    cos = torch.tensor(
        [[1.0, -1.0, 0.3], [-1.0, 1.0, 0.0], [1 - eps, 0.2, -1.0], [1 + eps, -1 - eps, 0.5]], dtype=D64
    ).to(dtype)
    cos.requires_grad_(True)
    loss = EDGE[name](cos, torch.tensor([0, 0, 0, 1]))
    assert loss.dtype == dtype and torch.isfinite(loss)
    (g,) = torch.autograd.grad(loss, cos)
    assert torch.isfinite(g).all()


def test_target_logit_functions_at_endpoints_and_dtype():
    for dtype in (torch.float64, torch.float32, torch.float16):
        c = torch.tensor([-1.0, 1.0], dtype=dtype, requires_grad=True)
        for fn in TARGET_LOGIT_FNS.values():
            out = fn(c)
            assert out.dtype == dtype and torch.isfinite(out).all()
            (g,) = torch.autograd.grad(out.sum(), c)
            assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", list(EDGE))
def test_one_class_gives_zero_loss_and_zero_gradient(name):
    cos = torch.tensor([[0.3], [-0.9], [1.0]], dtype=D64, requires_grad=True)
    loss = EDGE[name](cos, torch.zeros(3, dtype=torch.int64))
    (g,) = torch.autograd.grad(loss, cos)
    assert loss.item() == 0.0
    torch.testing.assert_close(g, torch.zeros_like(g))


def test_feature_losses_zero_feature_and_empty_batch():
    w = torch.randn(3, 2, dtype=D64)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=D64, requires_grad=True)
    y = torch.tensor([1, 2])
    for fn in (
        lambda x_: LF.l2_softmax_loss(x_, w, y[: len(x_)], alpha=5.0),
        lambda x_: LF.large_margin_softmax_loss(x_, w, y[: len(x_)]),
    ):
        loss = fn(x)
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
        empty = x[:0]
        e = fn(empty)
        assert e.item() == 0.0 and e.requires_grad
    # a zero feature has all three logits 0: loss log 3 for both losses, not NaN.
    for loss in (
        LF.l2_softmax_loss(x[:1], w, y[:1], alpha=5.0),
        LF.large_margin_softmax_loss(x[:1], w, y[:1]),
    ):
        torch.testing.assert_close(loss, torch.tensor(math.log(3), dtype=D64))


# ---------------------------------------------------------------------------------------------------------
# 6. Modules
# ---------------------------------------------------------------------------------------------------------


def test_large_margin_module_anneals_and_counts_only_in_training():
    torch.manual_seed(0)
    m = LN.LargeMarginSoftmaxLoss(3, 4, margin=2, anneal=True)
    x, y = torch.randn(5, 3), torch.randint(0, 4, (5,))
    assert m.current_lambda().item() == 1000.0
    m(x, y)
    assert int(m.iteration) == 1
    assert m.current_lambda().item() == pytest.approx(892.857, abs=1e-3)
    m.eval()
    m(x, y)
    assert int(m.iteration) == 1
    fixed = LN.LargeMarginSoftmaxLoss(3, 4, margin=2, lambda_=2.5)
    fixed(x, y)
    assert fixed.current_lambda() == 2.5
    assert m.logits(x).shape == (5, 4)
    assert set(m.state_dict()) == {"weight", "iteration"}


def test_subcenter_module_with_one_subcentre_is_arcface():
    torch.manual_seed(0)
    m = LN.SubCenterArcFaceLoss(4, 6, subcenters=1, scale=10.0).double()
    x, y = torch.randn(5, 4, dtype=D64), torch.randint(0, 6, (5,))
    cos = F.normalize(x, dim=1) @ F.normalize(m.centers[:, 0], dim=1).T
    torch.testing.assert_close(m(x, y), LF.arcface_loss(cos, y, scale=10.0))
    torch.testing.assert_close(m.logits(x), 10.0 * cos)
    assert set(m.state_dict()) == {"centers"} and m.centers.shape == (6, 1, 4)


def test_l2_softmax_module_logits_and_autocast_keeps_master_weights():
    torch.manual_seed(0)
    m = LN.L2SoftmaxLoss(4, 3, alpha=6.0, bias=True)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    z = m.logits(x)
    torch.testing.assert_close(z, (6.0 * x / x.norm(dim=1, keepdim=True)) @ m.weight.T + m.bias)
    torch.testing.assert_close(m(x, y), F.cross_entropy(z, y))
    sub = LN.SubCenterArcFaceLoss(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sub(x, y)
    loss.float().backward()
    assert sub.centers.dtype == torch.float32 and sub.centers.grad.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(sub.centers.grad).all()


def _insightface_combined_margin(logits, labels, s, m2, m3):
    """insightface's arcface_torch ``CombinedMarginLoss.forward`` (m1 = 1), transcribed: the ArcFace
    margin is applied in place under ``no_grad`` (a straight-through gradient) with no fallback; the
    CosFace branch subtracts m3."""
    index_positive = torch.where(labels != -1)[0]
    target_logit = logits[index_positive, labels[index_positive].view(-1)]
    if m3 == 0.0:
        with torch.no_grad():
            target_logit.arccos_()
            logits.arccos_()
            final_target_logit = target_logit + m2
            logits[index_positive, labels[index_positive].view(-1)] = final_target_logit
            logits.cos_()
        logits = logits * s
    else:
        final_target_logit = target_logit - m3
        logits[index_positive, labels[index_positive].view(-1)] = final_target_logit
        logits = logits * s
    return F.cross_entropy(logits, labels)


@pytest.mark.parametrize(("m2", "m3"), [(0.5, 0.0), (0.3, 0.0), (0.0, 0.35)])
def test_combined_margin_reproduces_insightface(m2, m3):
    cos, t = _rand_cos(3, n=8, c=6)
    cos[:3] = cos[:3].scatter(1, t[:3, None], -0.99)  # targets past pi - m2: no fallback there
    mine = cos.clone().requires_grad_(True)
    got = LF.combined_margin_loss(mine, t, scale=64.0, m2=m2, m3=m3, gradient="straight_through")
    (g_got,) = torch.autograd.grad(got, mine)
    theirs = cos.clone().requires_grad_(True)
    want = _insightface_combined_margin(theirs * 1.0, t, 64.0, m2, m3)
    (g_want,) = torch.autograd.grad(want, theirs)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(g_got, g_want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("m3", [0.0, 0.2])
def test_combined_margin_defaults_equal_normface_at_cos_plus_minus_one(dtype, m3):
    # m2 = 0 used to give a zero gradient w.r.t. the target cosine at exactly cos = +-1 (cos(atan2(...)):
    # the angle's slope times sin(0)); with m1 = 1 it is now cos - m3 exactly, as CosFace / NormFace
    cos = torch.tensor([[1.0, 0.2, -0.3], [0.1, -1.0, 0.4], [0.5, 0.2, 1.0]], dtype=dtype)
    t = torch.tensor([0, 1, 2])
    a, b = cos.clone().requires_grad_(True), cos.clone().requires_grad_(True)
    got = LF.combined_margin_loss(a, t, scale=8.0, m3=m3)
    want = LF.cosface_loss(b, t, scale=8.0, margin=m3)
    (ga,), (gb,) = torch.autograd.grad(got, a), torch.autograd.grad(want, b)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(ga, gb, rtol=0, atol=0)
    assert (ga[torch.arange(3), t] != 0).all()  # d loss / d cos_target = -s (1 - p_t) / N, not 0


@pytest.mark.parametrize("fallback", ["linear", "easy", "none"])
@pytest.mark.parametrize("gradient", ["exact", "straight_through"])
def test_combined_margin_with_m1_one_is_arcface(fallback, gradient):
    cos, t = _rand_cos(4, n=8, c=5)
    cos[:3] = cos[:3].scatter(1, t[:3, None], -0.95)  # past pi - m: the fallbacks differ there
    a, b = cos.clone().requires_grad_(True), cos.clone().requires_grad_(True)
    got = LF.combined_margin_loss(a, t, scale=30.0, m2=0.5, fallback=fallback, gradient=gradient)
    want = LF.arcface_loss(b, t, scale=30.0, margin=0.5, fallback=fallback, gradient=gradient)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(
        torch.autograd.grad(got, a)[0], torch.autograd.grad(want, b)[0], rtol=0, atol=0
    )
    c = _cos_of(ANGLES)
    torch.testing.assert_close(
        LF.combined_margin_target_logit(c, m2=0.5, fallback=fallback, gradient=gradient),
        LF.arcface_target_logit(c, margin=0.5, fallback=fallback, gradient=gradient),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.float32])
def test_subcenter_module_follows_arcface_dtype_rule(dtype):
    # float32 parameters with float16 / float64 input used to raise; the cosines are computed in float32
    # or wider and the loss comes back in the input's dtype
    torch.manual_seed(0)
    m = LN.SubCenterArcFaceLoss(6, 5, subcenters=2, scale=64.0)
    x, y = torch.randn(7, 6), torch.randint(0, 5, (7,))
    got = m(x.to(dtype), y)
    assert got.dtype == dtype
    ref = LF.subcenter_arcface_loss(
        F.normalize(x.double(), dim=1) @ F.normalize(m.centers.detach().double().flatten(0, 1), dim=1).T,
        y,
        subcenters=2,
        scale=64.0,
    )
    tolerance = {torch.float16: 2e-3, torch.float32: 1e-5, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(got.double(), ref, rtol=tolerance, atol=tolerance)
    got.float().backward()
    assert m.centers.grad.dtype == torch.float32


def test_subcenter_module_half_parameters_compute_in_float32_and_double_module_takes_float32():
    torch.manual_seed(0)
    m = LN.SubCenterArcFaceLoss(6, 5, subcenters=2, scale=64.0)
    x, y = torch.randn(7, 6), torch.randint(0, 5, (7,))
    exact = m.double()(x.double(), y)  # float64 reference (the module in float64)
    assert m(x, y).dtype == torch.float32  # after .to(float64), a float32 input used to fail
    torch.testing.assert_close(m(x, y).double(), exact, rtol=1e-5, atol=1e-5)
    half = m.half()
    got = half(x.half(), y)  # float16 parameters: cosines in float32 (they were 0.03 off at scale 64)
    ref = LF.subcenter_arcface_loss(
        F.normalize(x.half().double(), dim=1) @ F.normalize(half.centers.double().flatten(0, 1), dim=1).T,
        y,
        subcenters=2,
        scale=64.0,
    )
    assert got.dtype == torch.float16
    assert (got.double() - ref).abs().item() < 5e-3


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: LN.L2SoftmaxLoss(4, 5, alpha=2.0), "L2SoftmaxLoss"),
        (lambda: LN.LargeMarginSoftmaxLoss(4, 5), "LargeMarginSoftmaxLoss"),
        (lambda: LN.SubCenterArcFaceLoss(4, 5), "SubCenterArcFaceLoss"),
    ],
)
def test_feature_modules_name_themselves_and_embedding_dim(build, name):
    module = build()
    match = rf"^{name}: expected input of shape \(N, 4\) \(its last dimension must be embedding_dim=4\)"
    with pytest.raises(ValueError, match=match):
        module(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=rf"^{name}: target must hold class indices in \[0, 5\)"):
        module(torch.randn(3, 4), torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=rf"^{name}: expected target on the device of"):
        module(torch.randn(3, 4), torch.tensor([0, 1, 2], device="meta"))


# ---------------------------------------------------------------------------------------------------------
# 7. every error path
# ---------------------------------------------------------------------------------------------------------

COS, TGT = torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64)
X, W = torch.zeros(3, 2), torch.zeros(4, 2)

ERRORS = [
    (
        lambda: LF.arcface_loss(COS.long(), TGT),
        TypeError,
        "arcface_loss: cosine must be a floating-point tensor",
    ),
    (lambda: LF.arcface_loss(COS, TGT.float()), TypeError, "arcface_loss: target must be an integer tensor"),
    (lambda: LF.cosface_loss(COS[0], TGT), ValueError, r"cosface_loss: expected cosine of shape \(N, C\)"),
    (lambda: LF.normface_loss(COS, TGT[:2], scale=1.0), ValueError, r"expected target of shape \(3,\)"),
    (
        lambda: LF.normface_loss(COS, TGT, scale=0.0),
        ValueError,
        "normface_loss: scale must be a finite number > 0",
    ),
    (lambda: LF.normface_loss(COS, TGT, scale="s"), TypeError, "normface_loss: scale must be a number"),
    (
        lambda: LF.cosface_loss(COS, TGT, scale=torch.ones(3).long()),
        TypeError,
        "scale must be a floating-point",
    ),
    (
        lambda: LF.cosface_loss(COS, TGT, scale=torch.ones(2)),
        ValueError,
        r"expected scale of shape \(\) or \(3,\)",
    ),
    (
        lambda: LF.cosface_loss(COS, TGT, margin=-0.1),
        ValueError,
        "cosface_loss: margin must be a finite number >= 0",
    ),
    (lambda: LF.am_softmax_loss(COS, TGT, margin=math.inf), ValueError, "am_softmax_loss: margin must be"),
    (
        lambda: LF.arcface_loss(COS, TGT, margin=4.0),
        ValueError,
        r"arcface_loss: margin must be in \[0.0, 3.14",
    ),
    (
        lambda: LF.arcface_loss(COS, TGT, fallback="x"),
        ValueError,
        "fallback must be 'linear', 'easy' or 'none'",
    ),
    (
        lambda: LF.arcface_loss(COS, TGT, gradient="x"),
        ValueError,
        "gradient must be 'exact' or 'straight_through'",
    ),
    (lambda: LF.arcface_loss(COS, TGT, weight=torch.ones(4)), ValueError, "weight must broadcast"),
    (
        lambda: LF.arcface_loss(COS, TGT, reduction="avg"),
        ValueError,
        "reduction must be 'none', 'mean' or 'sum'",
    ),
    (lambda: LF.combined_margin_loss(COS, TGT, m1=0.0), ValueError, "combined_margin_loss: m1 must be"),
    (lambda: LF.combined_margin_loss(COS, TGT, m2=-1.0), ValueError, "combined_margin_loss: m2 must be"),
    (lambda: LF.combined_margin_loss(COS, TGT, m3=-1.0), ValueError, "combined_margin_loss: m3 must be"),
    (lambda: LF.sphereface_loss(COS, TGT, margin=2.5), TypeError, "sphereface_loss: margin must be an int"),
    (lambda: LF.sphereface_loss(COS, TGT, margin=0), ValueError, "sphereface_loss: margin must be >= 1"),
    (lambda: LF.sphereface_loss(COS, TGT, lambda_=-1.0), ValueError, "lambda_ must be a finite number >= 0"),
    (
        lambda: LF.sphereface_loss(COS, TGT, lambda_=torch.ones(2)),
        TypeError,
        "lambda_ must be a number or a 0-dim",
    ),
    (lambda: LF.margin_cross_entropy(COS, TGT, TGT), TypeError, "target_logit must be a floating-point"),
    (lambda: LF.margin_cross_entropy(COS, TGT, COS), ValueError, r"expected target_logit of shape \(3,\)"),
    (
        lambda: LF.arcface_target_logit(TGT),
        TypeError,
        "arcface_target_logit: cosine must be a floating-point",
    ),
    (
        lambda: LF.arcface_target_logit(COS, margin=-1.0),
        ValueError,
        "arcface_target_logit: margin must be in",
    ),
    (
        lambda: LF.arcface_target_logit(COS, fallback="y"),
        ValueError,
        "arcface_target_logit: fallback must be",
    ),
    (
        lambda: LF.arcface_target_logit(COS, gradient="y"),
        ValueError,
        "arcface_target_logit: gradient must be",
    ),
    (
        lambda: LF.cosface_target_logit(TGT),
        TypeError,
        "cosface_target_logit: cosine must be a floating-point",
    ),
    (lambda: LF.cosface_target_logit(COS, margin=-1.0), ValueError, "cosface_target_logit: margin must be"),
    (lambda: LF.combined_margin_target_logit(TGT), TypeError, "combined_margin_target_logit: cosine must be"),
    (
        lambda: LF.combined_margin_target_logit(COS, m1=-1.0),
        ValueError,
        "combined_margin_target_logit: m1 must",
    ),
    (
        lambda: LF.combined_margin_target_logit(COS, m2=-1.0),
        ValueError,
        "combined_margin_target_logit: m2 must",
    ),
    (
        lambda: LF.combined_margin_target_logit(COS, m3=-1.0),
        ValueError,
        "combined_margin_target_logit: m3 must",
    ),
    (
        lambda: LF.sphereface_target_logit(TGT),
        TypeError,
        "sphereface_target_logit: cosine must be a floating",
    ),
    (
        lambda: LF.sphereface_target_logit(COS, margin=True),
        TypeError,
        "sphereface_target_logit: margin must be",
    ),
    (
        lambda: LF.sphereface_target_logit(COS, lambda_=-2),
        ValueError,
        "sphereface_target_logit: lambda_ must be",
    ),
    (lambda: LF.sphereface_lambda(-1), ValueError, "sphereface_lambda: iteration must be >= 0; got -1"),
    (lambda: LF.sphereface_lambda(1.5), TypeError, "sphereface_lambda: iteration must be an int or a 0-dim"),
    (
        lambda: LF.sphereface_lambda(torch.ones(2)),
        TypeError,
        "sphereface_lambda: iteration must be an int or",
    ),
    (lambda: LF.sphereface_lambda(1, base=-1.0), ValueError, "sphereface_lambda: base must be"),
    (lambda: LF.sphereface_lambda(1, gamma=-1.0), ValueError, "sphereface_lambda: gamma must be"),
    (lambda: LF.sphereface_lambda(1, power=-1.0), ValueError, "sphereface_lambda: power must be"),
    (lambda: LF.sphereface_lambda(1, lambda_min=-1.0), ValueError, "sphereface_lambda: lambda_min must be"),
    (
        lambda: LF.subcenter_arcface_loss(TGT, TGT),
        TypeError,
        "subcenter_arcface_loss: cosine must be a floating",
    ),
    (lambda: LF.subcenter_arcface_loss(COS[0], TGT), ValueError, r"expected cosine of shape \(N, C, K\) or"),
    (lambda: LF.subcenter_arcface_loss(COS, TGT), ValueError, "expected subcenters=K with cosine of shape"),
    (
        lambda: LF.subcenter_arcface_loss(COS, TGT, subcenters=3),
        ValueError,
        r"expected cosine of shape \(N, C \* 3\)",
    ),
    (lambda: LF.subcenter_arcface_loss(COS[..., None], TGT, subcenters=2), ValueError, r"shape \(N, C, 2\)"),
    (lambda: LF.subcenter_arcface_loss(COS, TGT, subcenters=0), ValueError, "subcenters must be >= 1"),
    (
        lambda: LF.l2_softmax_loss(X.long(), W, TGT, alpha=1.0),
        TypeError,
        "l2_softmax_loss: input must be a float",
    ),
    (
        lambda: LF.l2_softmax_loss(X, W.long(), TGT, alpha=1.0),
        TypeError,
        "l2_softmax_loss: weight must be a float",
    ),
    (lambda: LF.l2_softmax_loss(X, W, X, alpha=1.0), TypeError, "l2_softmax_loss: target must be an integer"),
    (lambda: LF.l2_softmax_loss(X[0], W, TGT, alpha=1.0), ValueError, r"expected input of shape \(N, D\)"),
    (lambda: LF.l2_softmax_loss(X, W[0], TGT, alpha=1.0), ValueError, r"expected weight of shape \(C, D\)"),
    (lambda: LF.l2_softmax_loss(X, W.T, TGT, alpha=1.0), ValueError, r"expected weight of shape \(C, 2\)"),
    (lambda: LF.l2_softmax_loss(X, W, TGT[:1], alpha=1.0), ValueError, r"expected target of shape \(3,\)"),
    (lambda: LF.l2_softmax_loss(X, W, TGT, alpha=0.0), ValueError, "l2_softmax_loss: alpha must be"),
    (
        lambda: LF.l2_softmax_loss(X, W, TGT, alpha=torch.ones(3)),
        TypeError,
        "alpha must be a number or a 0-dim",
    ),
    (lambda: LF.l2_softmax_loss(X, W, TGT, alpha=1.0, bias=TGT), TypeError, "bias must be a floating-point"),
    (
        lambda: LF.l2_softmax_loss(X, W, TGT, alpha=1.0, bias=X[0]),
        ValueError,
        r"expected bias of shape \(4,\)",
    ),
    (lambda: LF.l2_softmax_loss(X, W, TGT, alpha=1.0, sample_weight=W), ValueError, "weight must broadcast"),
    (
        lambda: LF.large_margin_softmax_loss(X, W[0], TGT),
        ValueError,
        "large_margin_softmax_loss: expected weight",
    ),
    (lambda: LF.large_margin_softmax_loss(X, W, TGT, margin=0), ValueError, "margin must be >= 1"),
    (lambda: LF.large_margin_softmax_loss(X, W, TGT, lambda_=-1.0), ValueError, "lambda_ must be"),
    (lambda: LF.large_margin_softmax_loss(X, W, TGT, reduction="x"), ValueError, "reduction must be"),
    (lambda: LF.l2_softmax_alpha_lower_bound(2, 0.9), ValueError, "num_classes must be >= 3; got 2"),
    (lambda: LF.l2_softmax_alpha_lower_bound(0, 0.9), ValueError, "num_classes must be >= 1; got 0"),
    (lambda: LF.l2_softmax_alpha_lower_bound(3.0, 0.9), TypeError, "num_classes must be an int"),
    (lambda: LF.l2_softmax_alpha_lower_bound(10, 1.0), ValueError, r"p must be in \(0.0, 1.0\); got 1.0"),
    (lambda: LN.L2SoftmaxLoss(0, 3, alpha=1.0), ValueError, "L2SoftmaxLoss: embedding_dim must be >= 1"),
    (lambda: LN.L2SoftmaxLoss(2, 3, alpha=-1.0), ValueError, "L2SoftmaxLoss: alpha must be"),
    (lambda: LN.LargeMarginSoftmaxLoss(2, 0), ValueError, "LargeMarginSoftmaxLoss: num_classes must be >= 1"),
    (lambda: LN.LargeMarginSoftmaxLoss(2, 3, margin=0), ValueError, "LargeMarginSoftmaxLoss: margin must be"),
    (
        lambda: LN.LargeMarginSoftmaxLoss(2, 3, lambda_=-1.0),
        ValueError,
        "LargeMarginSoftmaxLoss: lambda_ must",
    ),
    (
        lambda: LN.LargeMarginSoftmaxLoss(2, 3, anneal=1),
        TypeError,
        "LargeMarginSoftmaxLoss: anneal must be a bool",
    ),
    (
        lambda: LN.LargeMarginSoftmaxLoss(2, 3, gamma=-1.0),
        ValueError,
        "LargeMarginSoftmaxLoss: gamma must be",
    ),
    (lambda: LN.LargeMarginSoftmaxLoss(2, 3, base=-1.0), ValueError, "LargeMarginSoftmaxLoss: base must be"),
    (
        lambda: LN.SubCenterArcFaceLoss(2, 3, subcenters=0),
        ValueError,
        "SubCenterArcFaceLoss: subcenters must",
    ),
    (lambda: LN.SubCenterArcFaceLoss(2, 3, scale=0.0), ValueError, "SubCenterArcFaceLoss: scale must be"),
    (
        lambda: LN.SubCenterArcFaceLoss(2, 3, fallback="z"),
        ValueError,
        "SubCenterArcFaceLoss: fallback must be",
    ),
    (
        lambda: LN.SubCenterArcFaceLoss(2, 3, margin=4.0),
        ValueError,
        r"SubCenterArcFaceLoss: margin must be in",
    ),
    (
        lambda: LN.SubCenterArcFaceLoss(2, 3, gradient="z"),
        ValueError,
        "SubCenterArcFaceLoss: gradient must be",
    ),
    # sub-center errors name sub-center ArcFace, not arcface_loss
    (
        lambda: LF.subcenter_arcface_loss(COS[..., None], TGT, margin=4.0),
        ValueError,
        r"^subcenter_arcface_loss: margin must be in",
    ),
    (
        lambda: LF.subcenter_arcface_loss(COS[..., None], TGT, scale=0.0),
        ValueError,
        r"^subcenter_arcface_loss: scale must be",
    ),
    (
        lambda: LF.subcenter_arcface_loss(COS[..., None], TGT[:2]),
        ValueError,
        r"^subcenter_arcface_loss: expected target of shape \(3,\)",
    ),
    (
        lambda: LF.subcenter_arcface_loss(COS[..., None], TGT, fallback="x"),
        ValueError,
        r"^subcenter_arcface_loss: fallback must be",
    ),
    (
        lambda: LF.subcenter_arcface_loss(COS[..., None], TGT + 4),
        ValueError,
        r"^subcenter_arcface_loss: target must hold class indices in \[0, 4\)",
    ),
    # the per-sample weights of the feature losses are named as the caller named them
    (
        lambda: LF.l2_softmax_loss(X, W, TGT, alpha=1.0, sample_weight=torch.ones(2)),
        ValueError,
        r"^l2_softmax_loss: sample_weight must broadcast to the unreduced loss of shape \(3,\); "
        r"got sample_weight of shape \(2,\)",
    ),
    (
        lambda: LF.large_margin_softmax_loss(X, W, TGT, sample_weight=torch.ones(2)),
        ValueError,
        r"^large_margin_softmax_loss: sample_weight must broadcast",
    ),
    (
        lambda: LF.large_margin_softmax_loss(X, W, TGT, sample_weight=TGT),
        TypeError,
        r"^large_margin_softmax_loss: sample_weight must be a floating-point tensor",
    ),
    (
        lambda: LN.L2SoftmaxLoss(2, 4, alpha=1.0)(X, TGT, torch.ones(2)),
        ValueError,
        r"^L2SoftmaxLoss: weight must broadcast",
    ),
    (
        lambda: LN.LargeMarginSoftmaxLoss(2, 4)(X, TGT, torch.ones(2)),
        ValueError,
        r"^LargeMarginSoftmaxLoss: weight must broadcast",
    ),
    # one argument elsewhere: a clear error naming both (the class matrix used to read garbage)
    (
        lambda: LF.l2_softmax_loss(X, W.to("meta"), TGT, alpha=1.0),
        ValueError,
        r"^l2_softmax_loss: expected weight on the device of input \(cpu\), got weight on meta",
    ),
    (
        lambda: LF.l2_softmax_loss(X, W, TGT, alpha=1.0, bias=torch.zeros(4, device="meta")),
        ValueError,
        r"^l2_softmax_loss: expected bias on the device of input",
    ),
    (
        lambda: LF.large_margin_softmax_loss(X, W.to("meta"), TGT),
        ValueError,
        r"^large_margin_softmax_loss: expected weight on the device of input \(cpu\)",
    ),
    (
        lambda: LF.sphereface_loss(COS, TGT, lambda_=torch.ones((), device="meta")),
        ValueError,
        r"^sphereface_loss: expected lambda_ on the device of cosine",
    ),
    (
        lambda: LF.margin_cross_entropy(COS, TGT, COS[:, 0].to("meta")),
        ValueError,
        r"^margin_cross_entropy: expected target_logit on the device of cosine",
    ),
    (
        lambda: LF.margin_cross_entropy(COS, TGT - 1, COS[:, 0]),
        ValueError,
        r"^margin_cross_entropy: target must hold class indices in \[0, 4\); got 3 outside it, the first -1",
    ),
    (
        lambda: LF.combined_margin_loss(COS, TGT, m1=0.9, fallback="easy"),
        ValueError,
        r"^combined_margin_loss: fallback='easy' is ArcFace's and needs m1=1",
    ),
    (
        lambda: LF.combined_margin_loss(COS, TGT, gradient="x"),
        ValueError,
        "combined_margin_loss: gradient must be",
    ),
    (
        lambda: LF.combined_margin_target_logit(COS, m1=2.0, fallback="linear"),
        ValueError,
        r"^combined_margin_target_logit: fallback='linear' is ArcFace's",
    ),
]


@pytest.mark.parametrize(("call", "exc", "match"), ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------------------------------------------------
# 8. parity with pytorch-metric-learning (optional)
# ---------------------------------------------------------------------------------------------------------


def test_parity_with_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    n, c, d = 8, 5, 6
    x, y = torch.randn(n, d, dtype=D64), torch.randint(0, c, (n,))
    w = torch.randn(c, d, dtype=D64)  # losskit centres (C, D); PML stores W as (D, C)
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    # PML's ArcFace: margin in degrees, the linear fallback past theta + m > pi (see the test below).
    arc = pml.ArcFaceLoss(c, d, margin=math.degrees(0.5), scale=64.0).double()
    arc.W.data.copy_(w.T)
    torch.testing.assert_close(arc(x, y), LF.arcface_loss(cos, y, fallback="linear"), rtol=1e-6, atol=1e-6)
    cf = pml.CosFaceLoss(c, d, margin=0.35, scale=64.0).double()
    cf.W.data.copy_(w.T)
    torch.testing.assert_close(cf(x, y), LF.cosface_loss(cos, y), rtol=1e-6, atol=1e-6)
    # PML's SphereFace keeps the feature norm as the scale, like the paper, with lambda = 0.
    sp = pml.SphereFaceLoss(c, d, margin=4, scale=1.0).double()
    sp.W.data.copy_(w.T)
    torch.testing.assert_close(
        sp(x, y), LF.sphereface_loss(cos, y, scale=x.norm(dim=1)), rtol=1e-6, atol=1e-6
    )
    # PML's sub-center W is (D, C * K), class-major like losskit's (N, C * K) layout.
    wk = torch.randn(c * 3, d, dtype=D64)
    sub = pml.SubCenterArcFaceLoss(
        num_classes=c, embedding_size=d, margin=math.degrees(0.5), scale=64.0, sub_centers=3
    ).double()  # this class takes its sizes by keyword only
    sub.W.data.copy_(wk.T)
    cosk = F.normalize(x, dim=1) @ F.normalize(wk, dim=1).T
    want = LF.subcenter_arcface_loss(cosk, y, subcenters=3, fallback="linear")
    torch.testing.assert_close(sub(x, y), want, rtol=1e-6, atol=1e-6)


def test_parity_with_pytorch_metric_learning_past_pi_minus_m():
    # embeddings whose target centre lies past pi - m (theta > 151.35 degrees at m = 0.5): PML's ArcFace
    # applies the linear fallback there, so it equals fallback='linear' and not fallback='none'
    # (the docstring used to say PML applies none); its default margin 28.6 degrees is 0.4992 rad
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    torch.manual_seed(0)
    n, c, d = 6, 4, 5
    x, y = torch.randn(n, d, dtype=D64), torch.tensor([0, 1, 2, 3, 0, 1])
    w = torch.randn(c, d, dtype=D64)
    w[y[:4]] = -x[:4] + 0.05 * torch.randn(4, d, dtype=D64)  # four rows near theta = pi
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    theta = torch.acos(cos[torch.arange(n), y])
    assert (theta[:4] > math.pi - 0.5).all()
    for degrees in (28.6, math.degrees(0.5)):
        m = math.radians(degrees)
        arc = pml.ArcFaceLoss(c, d, margin=degrees, scale=30.0).double()
        arc.W.data.copy_(w.T)
        got = arc(x, y)
        torch.testing.assert_close(got, LF.arcface_loss(cos, y, scale=30.0, margin=m), rtol=1e-6, atol=1e-6)
        none = LF.arcface_loss(cos, y, scale=30.0, margin=m, fallback="none")
        assert not torch.allclose(got, none, rtol=1e-3)
    assert round(math.radians(28.6), 4) == 0.4992
    assert pml.ArcFaceLoss(c, d).margin == pytest.approx(0.4992, abs=1e-4)
