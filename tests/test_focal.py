"""Sigmoid and softmax focal loss: the paper's numbers, references, properties, fused path, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN

REDUCTIONS = ["none", "mean", "sum"]


def focal_reference(x: float, y: float, alpha: float | None, gamma: float) -> float:
    """The paper's FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t for a binary label, in plain math."""
    p = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    p_t = p if y == 1 else 1.0 - p
    a_t = 1.0 if alpha is None else (alpha if y == 1 else 1.0 - alpha)
    log_pt = -math.log1p(math.exp(-x)) if y == 1 else -math.log1p(math.exp(x))  # stable log p_t
    return -a_t * (1.0 - p_t) ** gamma * log_pt


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# --------------------------------------------------------------------------- the paper's numbers


def test_paper_numbers():
    # FL/CE = (1 - p_t)^gamma: 0.1^2 = 1/100 at p_t = 0.9 and (1 - 0.96838)^2 ~ 1/1000 at p_t = 0.96838.
    for p_t, factor in [(0.9, 100.0), (0.96838, 1000.0)]:
        x = torch.tensor([_logit(p_t)], dtype=torch.float64)
        y = torch.ones(1, dtype=torch.float64)
        fl = LF.sigmoid_focal_loss(x, y, alpha=None, gamma=2.0)
        ce = F.binary_cross_entropy_with_logits(x, y)
        assert (ce / fl).item() == pytest.approx(factor, rel=1e-3)
    # FL(p_t = 0.5, gamma = 2) = 0.25 * ln 2 = 0.173287
    fl = LF.sigmoid_focal_loss(torch.zeros(1), torch.ones(1), alpha=None, gamma=2.0)
    assert fl.item() == pytest.approx(0.173287, abs=1e-6)


def test_sigmoid_focal_golden_with_alpha():
    # x=3, y=1: p_t = sigmoid(3) = 0.952574, 0.25 * 0.047426^2 * 0.048587 = 2.7321e-05
    # x=-1, y=0: p_t = 0.731059, 0.75 * 0.268941^2 * 0.313262 = 1.6994e-02
    out = LF.sigmoid_focal_loss(torch.tensor([3.0, -1.0]), torch.tensor([1.0, 0.0]), reduction="none")
    torch.testing.assert_close(out, torch.tensor([2.7321e-05, 1.6994e-02]), rtol=1e-4, atol=0)


# --------------------------------------------------------------------------- references and properties

logit_lists = st.lists(st.tuples(st.floats(-20, 20), st.sampled_from([0.0, 1.0])), min_size=1, max_size=10)


@given(logit_lists, st.sampled_from([None, 0.25, 0.9]), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]))
def test_sigmoid_focal_matches_reference(pairs, alpha, gamma):
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    want = torch.tensor([focal_reference(a, b, alpha, gamma) for a, b in pairs], dtype=torch.float64)
    got = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-15)
    assert (got >= 0).all()
    # the fused (reduced) path computes the same numbers
    fused = LF.sigmoid_focal_loss(x.requires_grad_(), y, alpha=alpha, gamma=gamma, reduction="sum")
    torch.testing.assert_close(fused, want.sum(), rtol=1e-9, atol=1e-15)


@given(logit_lists, st.floats(0.01, 4))
def test_gamma_zero_is_bce_and_focal_never_above_it(pairs, gamma):
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0, reduction="none"), bce)
    assert (LF.sigmoid_focal_loss(x, y, alpha=None, gamma=gamma, reduction="none") <= bce + 1e-15).all()


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 1.7])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_path_equals_autograd_path(alpha, gamma, weighted):
    x = (torch.randn(300, 7, dtype=torch.float64) * 4).requires_grad_()
    y = (torch.rand(300, 7) < 0.2).double()
    w = torch.rand(300, 7, dtype=torch.float64) if weighted else None
    fused = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, weight=w)  # reduced: fused Function
    (g_fused,) = torch.autograd.grad(fused, x)
    plain = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, weight=w, reduction="none").mean()
    (g_plain,) = torch.autograd.grad(plain, x)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(g_fused, g_plain, rtol=1e-10, atol=1e-15)
    with torch.no_grad():  # forward-only chunked path
        torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, weight=w), plain)


def test_fused_path_spans_several_chunks_and_float32():
    x = (torch.randn(1000, 300) * 3).requires_grad_()  # 300000 elements: three chunks
    y = (torch.rand(1000, 300) < 0.1).float()
    loss = LF.sigmoid_focal_loss(x, y, gamma=1.5)
    loss.backward()
    x64 = x.detach().double().requires_grad_()
    ref = LF.sigmoid_focal_loss(x64, y.double(), gamma=1.5, reduction="none").mean()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-12)


def test_second_backward_recomputes_gradient():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(5, 3) < 0.5).double()
    loss = LF.sigmoid_focal_loss(x, y)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss * 2, x)
    torch.testing.assert_close(g2, 2 * g1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_gradcheck_and_gradgradcheck(reduction, gamma):
    x = (torch.randn(4, 3, dtype=torch.float64) * 2).requires_grad_()
    y = (torch.rand(4, 3) < 0.5).double()
    w = torch.rand(4, 3, dtype=torch.float64)

    def f(v):
        return LF.sigmoid_focal_loss(v, y, gamma=gamma, weight=w, reduction=reduction)

    # nondet_tol: the first backward scales the forward's buffer, a repeated one recomputes (ulp apart)
    assert torch.autograd.gradcheck(f, (x,), nondet_tol=1e-12)
    assert torch.autograd.gradgradcheck(f, (x,), nondet_tol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.3, 2.0])
def test_extreme_logits_give_finite_values_gradients_and_second_derivatives(reduction, gamma):
    x = torch.tensor([100.0, -100.0, 100.0, -100.0, 0.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    loss = LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction=reduction)
    assert torch.isfinite(loss).all()
    (g,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    assert torch.isfinite(g).all()
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(gg).all()
    # confidently wrong elements keep a gradient of magnitude alpha_t (their p_t is ~0)
    assert g[2].item() == pytest.approx(0.75 * (1 if reduction != "mean" else 1 / 5), rel=1e-5)


def test_per_class_alpha_tensor():
    x, y = torch.randn(6, 3, dtype=torch.float64), (torch.rand(6, 3) < 0.5).double()
    alpha = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    got = LF.sigmoid_focal_loss(x, y, alpha=alpha, reduction="none")
    for c in range(3):
        col = LF.sigmoid_focal_loss(x[:, c], y[:, c], alpha=alpha[c].item(), reduction="none")
        torch.testing.assert_close(got[:, c], col)
    m = LN.SigmoidFocalLoss(alpha=alpha, reduction="none")
    assert torch.equal(m.state_dict()["alpha_per_class"], alpha)
    torch.testing.assert_close(m(x, y), got)


def test_matches_torchvision():
    ops = pytest.importorskip("torchvision.ops")
    x = (torch.randn(50, 6, dtype=torch.float64) * 3).requires_grad_()
    y = (torch.rand(50, 6) < 0.3).double()
    for reduction in REDUCTIONS:
        got = LF.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction=reduction)
        want = ops.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction=reduction)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(
            torch.autograd.grad(got.sum(), x)[0], torch.autograd.grad(want.sum(), x)[0]
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 1.5}, ValueError, r"sigmoid_focal_loss: alpha must be in \[0.0, 1.0\]; got 1.5"),
        ({"alpha": torch.ones(4)}, ValueError, r"alpha must be a float or a tensor of shape \(3,\)"),
        ({"alpha": torch.ones(3, dtype=torch.long)}, TypeError, "alpha must be a floating-point"),
        ({"gamma": -1.0}, ValueError, "gamma must be a finite number >= 0; got -1.0"),
        ({"target": torch.zeros(2, 4)}, ValueError, "expected target of the same shape as input"),
        ({"target": torch.zeros(2, 3, dtype=torch.long)}, TypeError, "target must be a floating-point"),
        ({"weight": torch.ones(4)}, ValueError, "weight must broadcast"),
        ({"reduction": "avg"}, ValueError, "reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
    ],
)
def test_sigmoid_focal_rejects_bad_input(kwargs, error, match):
    args = {"target": torch.zeros(2, 3)} | kwargs
    with pytest.raises(error, match=match):
        LF.sigmoid_focal_loss(torch.zeros(2, 3), args.pop("target"), **args)


def test_focal_modules_reject_bad_hyperparameters():
    with pytest.raises(ValueError, match="SigmoidFocalLoss: gamma must be a finite number >= 0"):
        LN.SigmoidFocalLoss(gamma=-2.0)
    with pytest.raises(ValueError, match=r"SoftmaxFocalLoss: alpha must be in \[0.0, 1.0\]"):
        LN.SoftmaxFocalLoss(alpha=2.0)
    with pytest.raises(TypeError, match="SigmoidFocalLoss: alpha must be a floating-point"):
        LN.SigmoidFocalLoss(alpha=torch.ones(2, dtype=torch.long))
    with pytest.raises(TypeError, match="SoftmaxFocalLoss: ignore_index must be an int; got float"):
        LN.SoftmaxFocalLoss(ignore_index=1.0)


# --------------------------------------------------------------------------- softmax focal


def softmax_focal_reference(row: list[float], t: int, alpha, gamma: float) -> float:
    z = max(row)
    s = sum(math.exp(v - z) for v in row)
    p_t = math.exp(row[t] - z) / s
    a = 1.0 if alpha is None else (alpha if isinstance(alpha, float) else alpha[t])
    return -a * (1.0 - p_t) ** gamma * (row[t] - z - math.log(s))


@given(
    st.integers(1, 6),
    st.integers(2, 5),
    st.sampled_from([0.0, 0.5, 2.0]),
    st.sampled_from([None, 0.3, "per-class"]),
)
def test_softmax_focal_matches_reference(n, c, gamma, alpha):
    gen = torch.Generator().manual_seed(n * 7 + c)
    x = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3
    t = torch.randint(0, c, (n,), generator=gen)
    a = torch.rand(c, generator=gen, dtype=torch.float64) if alpha == "per-class" else alpha
    got = LF.softmax_focal_loss(x, t, alpha=a, gamma=gamma, reduction="none")
    a_ref = a.tolist() if isinstance(a, torch.Tensor) else a
    want = [softmax_focal_reference(x[i].tolist(), int(t[i]), a_ref, gamma) for i in range(n)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-14)


def test_softmax_focal_gamma_zero_is_cross_entropy_and_ignore_index():
    x = torch.randn(6, 4, dtype=torch.float64)
    t = torch.tensor([0, 3, -100, 1, 2, -100])
    got = LF.softmax_focal_loss(x, t, gamma=0.0)
    torch.testing.assert_close(got, F.cross_entropy(x, t))
    none = LF.softmax_focal_loss(x, t, reduction="none")
    assert none[2].item() == 0.0 and none[5].item() == 0.0
    torch.testing.assert_close(LF.softmax_focal_loss(x, t), none.sum() / 4)  # divides by counted


def test_softmax_focal_all_ignored_and_extreme_logits():
    x = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 0.0]], requires_grad=True)
    loss = LF.softmax_focal_loss(x, torch.tensor([-100, -100]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(2, 3))
    x.grad = None
    t = torch.tensor([0, 0])  # confident right, confident wrong
    loss = LF.softmax_focal_loss(x, t, gamma=0.5, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(loss) and torch.isfinite(g).all() and torch.isfinite(gg).all()
    assert loss.item() == pytest.approx(200.0, rel=1e-5)  # the wrong one: -log p_t = 200, (1-p_t) = 1


def test_softmax_focal_gradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 2, -100, 1])
    w = torch.rand(4, dtype=torch.float64)

    def f(v):
        return LF.softmax_focal_loss(v, t, alpha=torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64), weight=w)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize(
    ("input", "target", "kwargs", "error", "match"),
    [
        (
            torch.zeros(2, 1),
            torch.zeros(2, dtype=torch.long),
            {},
            ValueError,
            r"softmax_focal_loss: expected input of shape \(N, C\) with C >= 2, got \(2, 1\)",
        ),
        (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long), {}, ValueError, "expected input of shape"),
        (
            torch.zeros(2, 3),
            torch.zeros(3, dtype=torch.long),
            {},
            ValueError,
            r"expected target of shape \(2,\), got \(3,\)",
        ),
        (torch.zeros(2, 3), torch.zeros(2), {}, TypeError, "target must be an integer tensor"),
        (
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            {},
            TypeError,
            "input must be a floating-point",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"ignore_index": 1.0},
            TypeError,
            "ignore_index must be an int; got float",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"alpha": torch.ones(2)},
            ValueError,
            r"alpha must be a float or a tensor of shape \(3,\)",
        ),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), {"gamma": -0.1}, ValueError, "gamma must be"),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"weight": torch.ones(3)},
            ValueError,
            "weight must broadcast",
        ),
    ],
)
def test_softmax_focal_rejects_bad_input(input, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        LF.softmax_focal_loss(input, target, **kwargs)


# --------------------------------------------------------------------------- compiled fused kernel


def test_compiled_kernel_matches_eager(monkeypatch):
    from losskit.functional import focal as FM

    monkeypatch.setattr(FM, "_COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(FM, "_compiled", {})
    x = (torch.randn(500, 80) * 4).requires_grad_()
    y = (torch.rand(500, 80) < 0.1).float()
    w = torch.rand(500, 80)
    for kwargs in ({}, {"alpha": None, "gamma": 0.5, "weight": w}):
        got = LF.sigmoid_focal_loss(x, y, **kwargs)
        (g_got,) = torch.autograd.grad(got, x)
        want = LF.sigmoid_focal_loss(x, y, reduction="none", **kwargs).mean()  # autograd path
        (g_want,) = torch.autograd.grad(want, x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-9)


def test_compiler_failure_falls_back_to_eager(monkeypatch):
    from losskit.functional import focal as FM

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(FM, "_COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(FM, "_compiled", {"sigmoid_focal": broken})
    x = torch.randn(20, 3, requires_grad=True)
    y = (torch.rand(20, 3) < 0.5).float()
    got = LF.sigmoid_focal_loss(x, y)
    got.backward()
    assert FM._compiled["sigmoid_focal"] is None  # remembered: no second attempt
    torch.testing.assert_close(got, LF.sigmoid_focal_loss(x.detach(), y, reduction="none").mean())
