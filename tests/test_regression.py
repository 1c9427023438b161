"""Regression family: references, torch parity, gradients, properties and error messages."""

from __future__ import annotations

import inspect
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
        if name != "smooth_l1_loss":  # torch's smooth_l1_loss takes no weight, nor does ours
            f = lambda a, b, r=reduction: ours(a, b, weight=w, reduction=r, **kw)  # noqa: E731
            assert gradcheck(f, (x, y))
            assert gradgradcheck(f, (x, y))
        g = lambda a, b, r=reduction: ours(a, b, reduction=r, **kw)  # noqa: E731 (L1: the fast path)
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
    # weighted MSE's mean divides the weighted sum by the sum of the weights (torch 2.13):
    # (1*1 + 3*4) / (1 + 3) = 3.25, not (1*1 + 3*4) / 2 = 6.5
    got = LF.mse_loss(torch.tensor([1.0, 2.0]), torch.zeros(2), weight=torch.tensor([1.0, 3.0]))
    assert got.item() == pytest.approx(3.25)


def test_weighted_means_golden():
    # errors 1, 2, 4 with weights 1, 2, 0.5 (weight sum 3.5, 3 elements)
    x = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    # L1: (1 + 2*2 + 0.5*4) / 3.5 = 7 / 3.5 = 2
    assert LF.l1_loss(x, y, weight=w).item() == pytest.approx(2.0, rel=1e-15)
    # MSE: (1 + 2*4 + 0.5*16) / 3.5 = 17 / 3.5
    assert LF.mse_loss(x, y, weight=w).item() == pytest.approx(17 / 3.5, rel=1e-15)
    # Huber (delta 1) divides by the element count: 0.5*1 + 2*(2 - 0.5) + 0.5*(4 - 0.5) = 5.25; / 3
    assert LF.huber_loss(x, y, weight=w).item() == pytest.approx(1.75, rel=1e-15)
    # sums: the same numerators
    assert LF.l1_loss(x, y, reduction="sum", weight=w).item() == pytest.approx(7.0, rel=1e-15)
    # a weight that broadcasts counts in the divisor as its broadcast: (2, 3) input, (3,) weight
    x2, y2 = torch.stack([x, 2 * x]), torch.zeros(2, 3, dtype=torch.float64)
    # numerator 7 + 14 = 21, divisor 2 * 3.5 = 7
    assert LF.l1_loss(x2, y2, weight=w).item() == pytest.approx(3.0, rel=1e-15)


@pytest.mark.skipif(
    "weight" not in inspect.signature(F.l1_loss).parameters,
    reason="torch < 2.13 has no weighted l1_loss/mse_loss to compare with",
)
def test_weights_summing_to_zero_divide_as_torch():
    # torch does not clamp the weight sum: 0/0 is NaN and 1/0 is inf, for us too (non-empty batch)
    x, y = torch.tensor([1.0, 2.0]), torch.zeros(2)
    w = torch.tensor([1.0, -1.0])
    for ours, theirs in ((LF.l1_loss, F.l1_loss), (LF.mse_loss, F.mse_loss)):
        torch.testing.assert_close(ours(x, y, weight=w), theirs(x, y, weight=w), equal_nan=True)
        assert torch.isinf(ours(x, y, weight=w))


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
        # a Module's forward names the Module, not the function behind it
        (
            lambda: LN.L1Loss()(torch.zeros(3), torch.zeros(4)),
            ValueError,
            r"L1Loss: expected target of the same shape as input \(3,\), got \(4,\)",
        ),
        (
            lambda: LN.MSELoss()(torch.zeros(3), torch.zeros(3, dtype=torch.long)),
            TypeError,
            r"MSELoss: target must be a floating-point tensor; got dtype torch.int64",
        ),
        (
            lambda: LN.HuberLoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(4)),
            ValueError,
            r"HuberLoss: weight must broadcast to the unreduced loss of shape \(2, 3\)",
        ),
        (
            lambda: LN.SmoothL1Loss()(torch.zeros(3), torch.zeros(3, device="meta")),
            ValueError,
            r"SmoothL1Loss: expected target on the device of input \(cpu\), got target on meta",
        ),
        (
            lambda: LF.mse_loss(torch.zeros(3), torch.zeros(3), weight=torch.ones(3, device="meta")),
            ValueError,
            r"mse_loss: expected weight on the device of input \(cpu\), got weight on meta",
        ),
        (
            lambda: LF.l1_loss(torch.zeros(3, requires_grad=True), torch.zeros(3, device="meta")),
            ValueError,
            r"l1_loss: expected target on the device of input \(cpu\), got target on meta",
        ),
        (
            lambda: LN.L1Loss(reduction="avg"),
            ValueError,
            r"L1Loss: reduction must be 'none', 'mean' or 'sum'; got 'avg'",
        ),
    ],
)
def test_errors_name_the_function_argument_and_value(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- the reduced-L1 fast path


def _kernel_taken(loss: torch.Tensor) -> bool:
    return loss.grad_fn is not None and "ReducedL1" in type(loss.grad_fn).__name__


def test_reduced_l1_fast_path_is_chosen_only_where_eligible():
    x = torch.randn(5, 3, requires_grad=True)
    y = torch.randn(5, 3)
    assert _kernel_taken(LF.l1_loss(x, y))
    assert _kernel_taken(LF.l1_loss(x, y, reduction="sum"))
    assert _kernel_taken(LF.l1_loss(x.detach(), y.requires_grad_()))
    y.requires_grad_(False)
    assert not _kernel_taken(LF.l1_loss(x, y, reduction="none"))
    assert not _kernel_taken(LF.l1_loss(x, y, weight=torch.ones(5, 3)))
    assert not _kernel_taken(LF.l1_loss(x.half(), y.half()))
    assert not _kernel_taken(LF.l1_loss(x, y.double()))
    assert not _kernel_taken(LF.l1_loss(x[:0], y[:0]))
    with torch.no_grad():
        assert LF.l1_loss(x, y).grad_fn is None
    with torch.autograd.forward_ad.dual_level():
        assert not _kernel_taken(LF.l1_loss(x, y))


HARD = {
    # errors of 0 exactly (gradient 0 from sign(0)), next to cancellation at 1 + 2^-23
    "zero_and_cancellation": (
        [0.0, 1.0 + 2.0**-23, -3.0, 1e-30, 2.5],
        [0.0, 1.0, -3.0, -1e-30, 2.5],
    ),
    "large_magnitudes": ([1e30, -1e30, 3e37, 0.5], [-1e30, 1e30, -3e37, 0.25]),
    "nan": ([float("nan"), 1.0, 2.0], [0.0, 0.0, float("nan")]),
    "single": ([3.0], [-4.0]),
}


@pytest.mark.parametrize("case", sorted(HARD))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_reduced_l1_fast_path_equals_definition_at_hard_cases(case, reduction, dtype):
    xs, ys = HARD[case]
    x = torch.tensor(xs, dtype=dtype, requires_grad=True)
    y = torch.tensor(ys, dtype=dtype, requires_grad=True)
    fast = LF.l1_loss(x, y, reduction=reduction)
    assert _kernel_taken(fast)
    definition = F.l1_loss(x, y, reduction=reduction)  # torch's op: losskit's definition of l1_loss
    # the same float operations in the same order: bit for bit equal, value and both gradients
    torch.testing.assert_close(fast, definition, rtol=0, atol=0, equal_nan=True)
    g_fast = torch.autograd.grad(fast, (x, y))
    g_def = torch.autograd.grad(definition, (x, y))
    for a, b in zip(g_fast, g_def):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    # against float64 from the formula (math.fsum of |x - y|): no less accurate than the definition
    exact = [abs(a - b) for a, b in zip(xs, ys)]
    want = math.fsum(exact) / (len(exact) if reduction == "mean" else 1)
    if math.isnan(want):
        assert torch.isnan(fast)
    else:
        err_fast = abs(fast.double().item() - want)
        err_def = abs(definition.double().item() - want)
        assert err_fast <= err_def
    n = len(xs) if reduction == "mean" else 1
    sign = [0.0 if (math.isnan(a - b) or a == b) else math.copysign(1.0, a - b) for a, b in zip(xs, ys)]
    torch.testing.assert_close(g_fast[0].double(), torch.tensor(sign, dtype=torch.float64) / n)


def test_reduced_l1_fast_path_sum_accuracy_on_a_large_batch():
    # 2^20 float32 errors: the float32 sum (torch's, pairwise) against float64, fast path and definition
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1 << 20, generator=g).requires_grad_()
    y = torch.randn(1 << 20, generator=g)
    fast = LF.l1_loss(x, y)
    assert _kernel_taken(fast)
    want = (x.detach().double() - y.double()).abs().mean().item()
    assert abs(fast.item() - want) <= abs(F.l1_loss(x, y).item() - want)
    assert abs(fast.item() - want) / want < 1e-6


def test_reduced_l1_fast_path_double_backward_is_zero():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, dtype=torch.float64)
    loss = LF.l1_loss(x, y)
    assert _kernel_taken(loss)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(gg, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(g, torch.sign(x.detach() - y) / 4)
