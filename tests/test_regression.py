"""Regression family: references, torch parity, gradients, properties and error messages."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import losskit.functional as LF
import losskit.nn as LN

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
vectors = st.lists(st.tuples(finite, finite), min_size=1, max_size=12)


# Naive float64 references written from the definitions (math on Python floats, one element at a time).
def l1_ref(d: float) -> float:
    return abs(d)


def mse_ref(d: float) -> float:
    return d * d


def smooth_l1_ref(d: float, beta: float) -> float:
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def huber_ref(d: float, delta: float) -> float:
    return 0.5 * d * d if abs(d) <= delta else delta * (abs(d) - 0.5 * delta)


REFERENCES = {
    "l1_loss": (lambda x, y, **k: LF.l1_loss(x, y, **k), lambda d: l1_ref(d)),
    "mse_loss": (lambda x, y, **k: LF.mse_loss(x, y, **k), lambda d: mse_ref(d)),
    "smooth_l1_loss": (
        lambda x, y, **k: LF.smooth_l1_loss(x, y, beta=0.7, **k),
        lambda d: smooth_l1_ref(d, 0.7),
    ),
    "huber_loss": (lambda x, y, **k: LF.huber_loss(x, y, delta=1.3, **k), lambda d: huber_ref(d, 1.3)),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
@given(pairs=vectors)
def test_matches_naive_reference_and_reductions(name, pairs):
    fn, ref = REFERENCES[name]
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    want = [ref(a - b) for a, b in pairs]
    got = fn(x, y, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert (got >= 0).all()
    assert fn(x, y, reduction="sum").item() == pytest.approx(math.fsum(want), rel=1e-12, abs=1e-12)
    assert fn(x, y).item() == pytest.approx(math.fsum(want) / len(want), rel=1e-12, abs=1e-12)


TORCH = {
    "l1_loss": (LF.l1_loss, F.l1_loss, {}),
    "mse_loss": (LF.mse_loss, F.mse_loss, {}),
    "smooth_l1_loss": (LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5}),
    "huber_loss": (LF.huber_loss, F.huber_loss, {"delta": 2.0}),
}


@pytest.mark.parametrize("name", sorted(TORCH))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_values_and_gradients_match_torch(name, reduction):
    ours, theirs, kw = TORCH[name]
    x = (torch.randn(64, 3, dtype=torch.float64) * 3).requires_grad_()
    y = torch.randn(64, 3, dtype=torch.float64, requires_grad=True)
    a = ours(x, y, reduction=reduction, **kw)
    b = theirs(x, y, reduction=reduction, **kw)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(a.sum(), (x, y))
    gb = torch.autograd.grad(b.sum(), (x, y))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TORCH))
def test_gradcheck_and_gradgradcheck_away_from_kinks(name):
    ours, _, kw = TORCH[name]
    # errors of 0.3..0.9 and 2.5..3.5 in magnitude: away from 0 and from beta/delta (0.5, 2.0)
    mag = torch.tensor([0.3, 0.9, 2.5, 3.5, 0.35, 3.1], dtype=torch.float64)
    sign = torch.tensor([1, -1, 1, -1, -1, 1], dtype=torch.float64)
    y = torch.randn(6, dtype=torch.float64, requires_grad=True)
    x = (y.detach() + mag * sign).requires_grad_()
    w = torch.rand(6, dtype=torch.float64) + 0.5
    for reduction in ("mean", "sum", "none"):
        f = lambda a, b, r=reduction: ours(a, b, weight=w, reduction=r, **kw)  # noqa: E731
        assert gradcheck(f, (x, y))
        assert gradgradcheck(f, (x, y))
        g = lambda a, b, r=reduction: ours(a, b, reduction=r, **kw)  # noqa: E731 (unweighted fast path)
        assert gradcheck(g, (x, y))
        assert gradgradcheck(g, (x, y))


@given(d=st.floats(-20, 20, allow_nan=False), beta=st.floats(0.05, 5.0))
def test_smooth_l1_is_huber_divided_by_beta(d, beta):
    x = torch.tensor([d], dtype=torch.float64)
    y = torch.zeros(1, dtype=torch.float64)
    s = LF.smooth_l1_loss(x, y, beta=beta, reduction="sum")
    h = LF.huber_loss(x, y, delta=beta, reduction="sum")
    assert s.item() == pytest.approx(h.item() / beta, rel=1e-12, abs=1e-12)


def test_smooth_l1_beta_zero_is_exact_l1_with_finite_gradient_at_zero_error():
    x = torch.tensor([0.0, 1.5, -2.0, 0.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    s = LF.smooth_l1_loss(x, y, beta=0.0, reduction="none")
    torch.testing.assert_close(s, torch.tensor([0.0, 1.5, 2.0, 0.0], dtype=torch.float64))
    (g,) = torch.autograd.grad(s.sum(), x)
    torch.testing.assert_close(g, torch.tensor([0.0, 1.0, -1.0, 0.0], dtype=torch.float64))


def test_hand_worked_values():
    # error 3 with delta 2: quadratic part would be 4.5, linear part is 2 * (3 - 1) = 4
    assert LF.huber_loss(torch.tensor([3.0]), torch.tensor([0.0]), delta=2.0).item() == pytest.approx(4.0)
    # error 0.5 with beta 1: 0.5 * 0.25 / 1 = 0.125; error 3: 3 - 0.5 = 2.5
    got = LF.smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
    torch.testing.assert_close(got, torch.tensor([0.125, 2.5]))
    # weighted mean divides the weighted sum by the number of elements: (1*1 + 3*4) / 2 = 6.5
    got = LF.mse_loss(torch.tensor([1.0, 2.0]), torch.zeros(2), weight=torch.tensor([1.0, 3.0]))
    assert got.item() == pytest.approx(6.5)


def test_logits_of_large_magnitude_stay_finite_in_half_precision():
    x = torch.tensor([100.0, -100.0, 60000.0], dtype=torch.float16, requires_grad=True)
    y = torch.zeros(3, dtype=torch.float16)
    for fn in (LF.l1_loss, LF.smooth_l1_loss, LF.huber_loss):
        loss = fn(x, y)
        assert loss.dtype == torch.float16 and torch.isfinite(loss)
        (g,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(g).all()
    # mse of 60000 overflows float16 itself (3.6e9 > 65504): computed in float32, then cast, gives inf
    # as the honest float16 answer; the gradient (2 * 60000 / 3 = 40000) is representable and finite.
    (g,) = torch.autograd.grad(LF.mse_loss(x, y), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: LF.l1_loss(torch.zeros(3), torch.zeros(4)),
            ValueError,
            r"l1_loss: expected target of the same shape as input \(3,\), got \(4,\)",
        ),
        (
            lambda: LF.mse_loss(torch.zeros(3, dtype=torch.long), torch.zeros(3)),
            TypeError,
            r"mse_loss: input must be a floating-point tensor; got dtype torch.int64",
        ),
        (
            lambda: LF.mse_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long)),
            TypeError,
            r"mse_loss: target must be a floating-point tensor; got dtype torch.int64",
        ),
        (
            lambda: LF.smooth_l1_loss(torch.zeros(3), torch.zeros(3), beta=-1.0),
            ValueError,
            r"smooth_l1_loss: beta must be a finite number >= 0; got -1.0",
        ),
        (
            lambda: LF.huber_loss(torch.zeros(3), torch.zeros(3), delta=0.0),
            ValueError,
            r"huber_loss: delta must be a finite number > 0; got 0.0",
        ),
        (
            lambda: LF.huber_loss(torch.zeros(3), torch.zeros(3), delta="1"),
            TypeError,
            r"huber_loss: delta must be a number; got str",
        ),
        (
            lambda: LF.l1_loss(torch.zeros(2, 3), torch.zeros(2, 3), weight=torch.ones(4)),
            ValueError,
            r"l1_loss: weight must broadcast to the unreduced loss of shape \(2, 3\); "
            r"got weight of shape \(4,\)",
        ),
        (
            lambda: LF.l1_loss(torch.zeros(3), torch.zeros(3), weight=torch.ones(2, 3)),
            ValueError,
            r"l1_loss: weight must broadcast to the unreduced loss of shape \(3,\); "
            r"got weight of shape \(2, 3\)",
        ),
        (
            lambda: LF.l1_loss(torch.zeros(3), torch.zeros(3), weight=[1, 2, 3]),
            TypeError,
            r"l1_loss: weight must be a Tensor or None; got list",
        ),
        (lambda: LF.l1_loss([0.0], torch.zeros(1)), TypeError, r"l1_loss: input must be a Tensor; got list"),
        (
            lambda: LN.HuberLoss(delta=-2.0),
            ValueError,
            r"HuberLoss: delta must be a finite number > 0; got -2.0",
        ),
        (
            lambda: LN.SmoothL1Loss(beta=float("nan")),
            ValueError,
            r"SmoothL1Loss: beta must not be NaN; got nan",
        ),
    ],
)
def test_errors_name_the_function_argument_and_value(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
