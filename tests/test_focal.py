"""Sigmoid and softmax focal loss: the paper's numbers, references, properties, fused kernel, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

import losskit.functional as LF
import losskit.nn as LN
from losskit._kernels import focal as KF

REDUCTIONS = ["none", "mean", "sum"]


def focal_reference(x: float, y: float, alpha: float | None, gamma: float) -> float:
    """The paper's FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t for a binary label, in plain math."""
    p = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    p_t = p if y == 1 else 1.0 - p
    a_t = 1.0 if alpha is None else (alpha if y == 1 else 1.0 - alpha)
    log_pt = -math.log1p(math.exp(-x)) if y == 1 else -math.log1p(math.exp(x))  # stable log p_t
    return -a_t * (1.0 - p_t) ** gamma * log_pt


def soft_focal_reference(x: float, y: float, alpha: float | None, gamma: float) -> float:
    """torchvision's definition for a target y in [0, 1], in plain float64 math (log1p/exp, no torch):
    alpha_t (1 - p_t)^gamma CE, p_t = p y + (1 - p)(1 - y), CE = -y log p - (1 - y) log(1 - p)."""
    log_p = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))  # log sigmoid(x)
    log_q = log_p - x  # log(1 - p) = log sigmoid(-x)
    ce = -y * log_p - (1.0 - y) * log_q
    one_minus_pt = y * math.exp(log_q) + (1.0 - y) * math.exp(log_p)
    a_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    return a_t * one_minus_pt**gamma * ce


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
    # atol: CE is torch's BCE-with-logits, (1 - y) x - log sigmoid(x), whose subtraction for a
    # confident negative (x << 0, y = 0) is exact only to ulp(|x|) (3.6e-15 at |x| = 20)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=5e-15)
    assert (got >= 0).all()
    # the fused kernel (reduced, input needs a gradient) computes the same numbers
    fused = LF.sigmoid_focal_loss(x.requires_grad_(), y, alpha=alpha, gamma=gamma, reduction="sum")
    assert type(fused.grad_fn).__name__ == "_SigmoidFocalBackward"
    torch.testing.assert_close(fused, want.sum(), rtol=1e-9, atol=5e-14)


soft_lists = st.lists(st.tuples(st.floats(-30, 30), st.floats(0, 1)), min_size=1, max_size=10)


@given(soft_lists, st.sampled_from([None, 0.25, 0.9]), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]))
def test_soft_targets_match_torchvisions_definition(pairs, alpha, gamma):
    # Issue 10 item 1: the signed-label form (1 - 2y) x computed another function for 0 < y < 1.
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    want = torch.tensor([soft_focal_reference(a, b, alpha, gamma) for a, b in pairs], dtype=torch.float64)
    got = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-14)
    fused = LF.sigmoid_focal_loss(x.requires_grad_(), y, alpha=alpha, gamma=gamma, reduction="sum")
    torch.testing.assert_close(fused, want.sum(), rtol=1e-9, atol=1e-14)


def test_soft_target_golden_values():
    # x = 0, y = 0.9: p = 1/2, CE = ln 2 (for any y), 1 - p_t = 1/2, alpha_t = 0.25 * 0.9 + 0.75 * 0.1
    # = 0.3: 0.3 * 0.25 * ln 2 = 0.0519860. x = ln 3, y = 0.5: p = 3/4, CE = -0.5 ln(3/4) - 0.5 ln(1/4)
    # = 0.5 ln(16/3) = 0.836988, 1 - p_t = 0.5 * 1/4 + 0.5 * 3/4 = 1/2; alpha_t = 0.5:
    # 0.5 * 0.25 * 0.836988 = 0.104623.
    x = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.9, 0.5], dtype=torch.float64)
    want = torch.tensor([0.3 * 0.25 * math.log(2.0), 0.125 * 0.5 * math.log(16.0 / 3.0)], dtype=torch.float64)
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, reduction="none"), want)
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, reduction="sum"), want.sum())
    # d/dx at x = 0, y = 0.9: alpha_t [gamma u^(gamma-1) du/dx CE + u^gamma (p - y)] with u = 1/2,
    # du/dx = (1 - 2y) p (1 - p) = -0.2, p - y = -0.4: 0.3 [2 * 0.5 * -0.2 * ln 2 + 0.25 * -0.4]
    (g,) = torch.autograd.grad(LF.sigmoid_focal_loss(x, y, reduction="sum"), x)
    assert g[0].item() == pytest.approx(0.3 * (-0.2 * math.log(2.0) - 0.1), rel=1e-12)


@given(soft_lists, st.floats(0.01, 4))
def test_gamma_zero_is_bce_and_focal_never_above_it(pairs, gamma):
    # for any target in [0, 1], on both paths (unreduced: the definition; reduced: the kernel)
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0, reduction="none"), bce)
    xg = x.clone().requires_grad_()
    fused = LF.sigmoid_focal_loss(xg, y, alpha=None, gamma=0.0, reduction="sum")
    torch.testing.assert_close(fused, bce.sum())
    xb = x.clone().requires_grad_()
    (g_bce,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(xb, y, reduction="sum"), xb)
    torch.testing.assert_close(torch.autograd.grad(fused, xg)[0], g_bce)
    assert (LF.sigmoid_focal_loss(x, y, alpha=None, gamma=gamma, reduction="none") <= bce + 1e-15).all()


def test_negative_alpha_means_no_weighting_as_torchvision():
    # torchvision and fvcore: alpha < 0 (their default sentinel -1) switches alpha_t off.
    x = torch.randn(6, 3, dtype=torch.float64) * 3
    y = torch.rand(6, 3, dtype=torch.float64)
    for reduction in REDUCTIONS:
        want = LF.sigmoid_focal_loss(x, y, alpha=None, reduction=reduction)
        torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, alpha=-1, reduction=reduction), want)
        torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, alpha=-0.5, reduction=reduction), want)
        module = LN.SigmoidFocalLoss(alpha=-1, reduction=reduction)
        assert module.alpha is None
        torch.testing.assert_close(module(x, y), want)
    xg = x.clone().requires_grad_()
    torch.testing.assert_close(
        LF.sigmoid_focal_loss(xg, y, alpha=-1.0),
        LF.sigmoid_focal_loss(x, y, alpha=None, reduction="none").mean(),
    )


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 1.7, 2.0, 3.0])
@pytest.mark.parametrize("weighted", ["none", "full", "broadcast"])
@pytest.mark.parametrize("soft", [False, True])
def test_fused_kernel_equals_definition(alpha, gamma, weighted, soft):
    x = (torch.randn(300, 7, dtype=torch.float64) * 4).requires_grad_()
    y = torch.rand(300, 7, dtype=torch.float64) if soft else (torch.rand(300, 7) < 0.2).double()
    w = {
        "none": None,
        "full": torch.rand(300, 7, dtype=torch.float64),
        "broadcast": torch.rand(7, dtype=torch.float64),
    }[weighted]
    kw = {"alpha": alpha, "gamma": gamma, "weight": w}
    fused = LF.sigmoid_focal_loss(x, y, **kw)
    assert type(fused.grad_fn).__name__ == "_SigmoidFocalBackward"
    (g_fused,) = torch.autograd.grad(fused, x)
    plain = LF.sigmoid_focal_loss(x, y, reduction="none", **kw).mean()  # the definition
    (g_plain,) = torch.autograd.grad(plain, x)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(g_fused, g_plain, rtol=1e-10, atol=1e-15)
    with torch.no_grad():  # forward only: the kernel without its gradient buffer
        torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, **kw), plain)


def _errors(loss_fn, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(relative error of the loss sum, max gradient error / max gradient) of ``loss_fn`` in float32
    against the same function in float64."""
    x64 = x.double().requires_grad_()
    ref = loss_fn(x64, y.double())
    (g64,) = torch.autograd.grad(ref, x64)
    x32 = x.clone().requires_grad_()
    got = loss_fn(x32, y)
    (g32,) = torch.autograd.grad(got, x32)
    value = abs(got.double().item() - ref.item()) / abs(ref.item())
    grad = ((g32.double() - g64).abs().max() / g64.abs().max()).item()
    return value, grad


EPS32 = torch.finfo(torch.float32).eps


@pytest.mark.parametrize("scale", [3.0, 40.0])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 1.7])
def test_fused_kernel_no_less_accurate_than_definition(scale, soft, gamma):
    # Issue 10 item 8: a compiled large-tensor path summed 2^20 float32 values 100x less accurately
    # than eager. 2^20 + 5 elements (several chunks and a short last one), logits up to ~+-150,
    # binary and soft targets: the kernel's value and gradient against float64 are within the
    # definition's error plus one float32 epsilon (below that the two differ only by rounding order).
    gen = torch.Generator().manual_seed(int(scale) + int(10 * gamma) + soft)
    n = (1 << 20) + 5
    x = torch.randn(n, generator=gen) * scale
    y = torch.rand(n, generator=gen) if soft else (torch.rand(n, generator=gen) < 0.05).float()
    assert n > 4 * KF.CHUNK
    kernel = _errors(lambda a, b: LF.sigmoid_focal_loss(a, b, gamma=gamma, reduction="sum"), x, y)
    definition = _errors(lambda a, b: LF.sigmoid_focal_loss(a, b, gamma=gamma, reduction="none").sum(), x, y)
    assert kernel[0] <= definition[0] + EPS32, (kernel, definition)
    assert kernel[1] <= definition[1] + EPS32, (kernel, definition)


@pytest.mark.parametrize(
    "n",
    [
        5 * KF.TAIL - 1,  # spare workspace only
        5 * KF.TAIL + 3,  # one shrinking chunk in the gradient buffer, then the spare
        5 * KF.CHUNK + 7,  # full chunks, the shrinking tail and the spare
    ],
)
def test_fused_pass_at_every_phase_of_the_in_buffer_workspace(n):
    # The gradient buffer doubles as the chunks' workspace: a chunk that wrote into a later chunk's
    # output, or a tail step that skipped elements, shows up here against float64.
    gen = torch.Generator().manual_seed(n)
    x = (torch.randn(n, generator=gen) * 4).requires_grad_()
    y = torch.rand(n, generator=gen) * (torch.rand(n, generator=gen) < 0.3)
    loss = LF.sigmoid_focal_loss(x, y, gamma=1.7, reduction="sum")
    loss.backward()
    x64 = x.detach().double().requires_grad_()
    ref = LF.sigmoid_focal_loss(x64, y.double(), gamma=1.7, reduction="none").sum()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-9)
    # elementwise to float32 rounding of the gradient's terms (soft targets cancel near p = y)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-6 * float(x64.grad.abs().max()))


def test_fused_pass_holds_only_the_gradient_and_a_small_spare():
    # Issue 11's memory target (at most half of torch BCE's peak, which is two input-sized tensors):
    # forward + backward allocate the gradient and at most four TAIL-sized buffers, never a
    # chunk-sized workspace of its own.
    from losskit.atlas.experiments.lm_head import PeakBytes

    n = 5 * KF.CHUNK + 12345
    x = torch.randn(n).requires_grad_()
    y = (torch.rand(n) < 0.01).float()
    with PeakBytes(exclude=(x, y)) as mode:
        LF.sigmoid_focal_loss(x, y).backward()
    assert x.grad is not None
    assert 4 * n <= mode.peak <= 4 * n + 4 * 4 * KF.TAIL + 4096, mode.peak


def test_fused_path_spans_several_chunks_and_float32():
    x = (torch.randn(1000, 300) * 3).requires_grad_()  # 300000 elements: three chunks
    y = (torch.rand(1000, 300) < 0.1).float()
    loss = LF.sigmoid_focal_loss(x, y, gamma=1.5)
    loss.backward()
    x64 = x.detach().double().requires_grad_()
    ref = LF.sigmoid_focal_loss(x64, y.double(), gamma=1.5, reduction="none").mean()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-12)


def test_backward_is_deterministic_and_reentrant():
    # Issue 10 item 13: the second backward recomputed with other operations (1e-17 apart) and
    # gradcheck reported "Backward is not reentrant".
    x = (torch.randn(1000, 300, dtype=torch.float64) * 3).requires_grad_()
    y = torch.rand(1000, 300, dtype=torch.float64)
    loss = LF.sigmoid_focal_loss(x, y, gamma=0.7)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g3,) = torch.autograd.grad(loss * 3, x)
    assert torch.equal(g1, g2)
    torch.testing.assert_close(g3, 3 * g1, rtol=1e-15, atol=0)
    small = (torch.randn(4, 3, dtype=torch.float64) * 2).requires_grad_()
    soft = torch.rand(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: LF.sigmoid_focal_loss(v, soft), (small,))  # nondet_tol=0


def test_no_compilation_inside_the_library(monkeypatch):
    # Issue 11: the loss compiled a kernel behind the user's back from 2^20 elements (a 14 s first call).
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called inside losskit")

    monkeypatch.setattr(torch, "compile", refuse)
    x = (torch.randn(1 << 20) * 3).requires_grad_()
    y = (torch.rand(1 << 20) < 0.01).float()
    LF.sigmoid_focal_loss(x, y).backward()
    LF.softmax_focal_loss(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    assert torch.isfinite(x.grad).all()


def test_kernel_chosen_only_where_eligible():
    x = torch.randn(6, 4, requires_grad=True)
    y = torch.rand(6, 4)
    fused = "_SigmoidFocalBackward"
    assert type(LF.sigmoid_focal_loss(x, y).grad_fn).__name__ == fused
    assert type(LF.sigmoid_focal_loss(x, y, reduction="none").grad_fn).__name__ != fused
    alpha = torch.full((4,), 0.3)  # per-class alpha: the definition
    assert type(LF.sigmoid_focal_loss(x, y, alpha=alpha).grad_fn).__name__ != fused
    yg = y.clone().requires_grad_()  # a gradient for the target: the definition
    loss = LF.sigmoid_focal_loss(x, yg)
    assert type(loss.grad_fn).__name__ != fused
    assert torch.autograd.grad(loss, yg)[0].abs().sum() > 0
    # the definition under torch.func: the same gradient as the kernel
    (want,) = torch.autograd.grad(LF.sigmoid_focal_loss(x, y), x)
    got = torch.func.grad(lambda v: LF.sigmoid_focal_loss(v, y))(x.detach())
    torch.testing.assert_close(got, want)


def test_target_gradient_is_finite_at_zero_and_one():
    # the log-space power takes log y and log(1 - y): -inf at 0 and 1, never inf * 0 in the gradient
    x = torch.tensor([2.0, -3.0, 0.5, 100.0, -100.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 0.3, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    loss = LF.sigmoid_focal_loss(x, y, gamma=0.5, reduction="sum")
    gx, gy = torch.autograd.grad(loss, (x, y))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    assert torch.autograd.gradcheck(
        lambda a, b: LF.sigmoid_focal_loss(a, b, gamma=0.5, reduction="sum"),
        (
            x[:3].detach().requires_grad_(),
            torch.tensor([0.2, 0.7, 0.3], dtype=torch.float64, requires_grad=True),
        ),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_gradcheck_and_gradgradcheck(reduction, gamma, soft):
    x = (torch.randn(4, 3, dtype=torch.float64) * 2).requires_grad_()
    y = torch.rand(4, 3, dtype=torch.float64) if soft else (torch.rand(4, 3) < 0.5).double()
    w = torch.rand(4, 3, dtype=torch.float64)

    def f(v):
        return LF.sigmoid_focal_loss(v, y, gamma=gamma, weight=w, reduction=reduction)

    assert torch.autograd.gradcheck(f, (x,))  # deterministic: no nondet_tol
    assert torch.autograd.gradgradcheck(f, (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.3, 1.5, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("create_graph", [False, True])
def test_extreme_logits_give_finite_values_gradients_and_second_derivatives(
    reduction, gamma, dtype, create_graph
):
    # +-100 (and +-1000: float32 sigmoids underflow to exactly 0) with binary and soft targets
    x = torch.tensor([100.0, -100.0, 100.0, -100.0, 0.0, 1000.0, -1000.0, 100.0, -100.0], dtype=dtype)
    x.requires_grad_()
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.3, 0.9], dtype=dtype)
    loss = LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction=reduction)
    assert torch.isfinite(loss).all()
    (g,) = torch.autograd.grad(loss.sum(), x, create_graph=create_graph)
    assert torch.isfinite(g).all()
    if create_graph:
        (gg,) = torch.autograd.grad(g.sum(), x)
        assert torch.isfinite(gg).all()
    # confidently wrong elements keep a gradient of magnitude alpha_t (their p_t is ~0)
    assert g[2].item() == pytest.approx(0.75 * (1 if reduction != "mean" else 1 / 9), rel=1e-5)


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


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.5), (0.9, 3.0), (-1, 0.0)])
def test_matches_torchvision(soft, alpha, gamma):
    ops = pytest.importorskip("torchvision.ops")
    gen = torch.Generator().manual_seed(7)
    x = (torch.randn(50, 6, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    y = torch.rand(50, 6, generator=gen, dtype=torch.float64)
    y = y if soft else (y < 0.3).double()
    for reduction in REDUCTIONS:
        got = LF.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction=reduction)
        want = ops.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction=reduction)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(
            torch.autograd.grad(got.sum(), x)[0], torch.autograd.grad(want.sum(), x)[0]
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"alpha": 1.5},
            ValueError,
            r"sigmoid_focal_loss: alpha must be in \[0, 1\], or negative for no weighting; got 1.5",
        ),
        ({"alpha": float("nan")}, ValueError, "alpha must not be NaN"),
        ({"weight": torch.ones(2, 3, device="meta")}, ValueError, "expected weight on the device of input"),
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


def test_softmax_focal_vmap_over_class_indices():
    # the contract's vmap row takes torch.func.grad of every input, the integer target included,
    # which torch.func refuses: here the labels are batched and the gradient is for the logits only.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 4, (3, 5), generator=gen)
    t[1, 2] = -100
    f = lambda a, b: LF.softmax_focal_loss(a, b, gamma=1.5, alpha=0.3)  # noqa: E731
    got = torch.func.vmap(f)(x, t)
    torch.testing.assert_close(got, torch.stack([f(x[i], t[i]) for i in range(3)]))
    grads = torch.func.vmap(torch.func.grad(f))(x, t)
    for i in range(3):
        xi = x[i].clone().requires_grad_()
        torch.testing.assert_close(grads[i], torch.autograd.grad(f(xi, t[i]), xi)[0])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_softmax_focal_rejects_labels_out_of_range(dtype):
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"softmax_focal_loss: target must hold class indices in \[0, 4\)"):
        LF.softmax_focal_loss(x, torch.tensor([0, 4, 1], dtype=dtype))
    if dtype != torch.uint8:
        with pytest.raises(ValueError, match="the first -1"):
            LF.softmax_focal_loss(x, torch.tensor([0, -1, 1], dtype=dtype))
