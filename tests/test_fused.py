"""Fused margin softmax: equal to the unfused path, gradients, bounded memory, Partial-FC, Modules, errors."""

from __future__ import annotations

import functools
import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import losskit.functional as LF
import losskit.nn as LN
from losskit.functional import fused

D64 = torch.float64

# (name, target-logit function, matching unfused cosine-logit loss, per-row norms as the scale?)
MARGINS = [
    (
        "arcface",
        functools.partial(LF.arcface_target_logit, margin=0.5),
        lambda c, y, s: LF.arcface_loss(c, y, scale=s, reduction="none"),
    ),
    (
        "arcface_easy_st",
        functools.partial(LF.arcface_target_logit, margin=0.5, fallback="easy", gradient="straight_through"),
        lambda c, y, s: LF.arcface_loss(
            c, y, scale=s, fallback="easy", gradient="straight_through", reduction="none"
        ),
    ),
    (
        "arcface_no_fallback",
        functools.partial(LF.arcface_target_logit, margin=0.5, fallback="none"),
        lambda c, y, s: LF.arcface_loss(c, y, scale=s, fallback="none", reduction="none"),
    ),
    (
        "cosface",
        functools.partial(LF.cosface_target_logit, margin=0.35),
        lambda c, y, s: LF.cosface_loss(c, y, scale=s, reduction="none"),
    ),
    (
        "combined",
        functools.partial(LF.combined_margin_target_logit, m1=0.9, m2=0.4, m3=0.15),
        lambda c, y, s: LF.combined_margin_loss(c, y, scale=s, m1=0.9, m2=0.4, m3=0.15, reduction="none"),
    ),
    (
        "sphereface",
        functools.partial(LF.sphereface_target_logit, margin=4, lambda_=5.0),
        lambda c, y, s: LF.sphereface_loss(c, y, scale=s, margin=4, lambda_=5.0, reduction="none"),
    ),
    ("normface", lambda c: c, lambda c, y, s: LF.normface_loss(c, y, scale=s, reduction="none")),
]


def _data(n, c, d, dtype=D64, seed=0, spread=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, d, generator=gen, dtype=D64) * 3).to(dtype).requires_grad_(True)
    # centres correlated with some rows, so that target cosines span [-1, 1] and the fallbacks trigger
    w = torch.randn(c, d, generator=gen, dtype=D64) * spread
    y = torch.randint(0, c, (n,), generator=gen)
    # some rows close to their centre, some near theta = pi (past pi - m: ArcFace's fallback); not AT
    # cos = +-1, where the margins' derivative in cos is unbounded and amplifies a 1-ulp difference
    near = x.detach().double() + torch.randn(n, d, generator=gen, dtype=D64) * 0.8
    w[y[: n // 2]] = near[: n // 2] * 0.5
    w[y[n // 2 : 3 * n // 4]] = -near[n // 2 : 3 * n // 4]
    return x, w.to(dtype).requires_grad_(True), y


def _scale(name, x, s=64.0):
    return x.norm(dim=1) if name == "sphereface" else s


def _fused_and_grads(name, phi, x, w, y, v, chunk):
    loss = LF.margin_softmax_loss(
        x, w, y, target_logit=phi, scale=_scale(name, x), chunk_size=chunk, reduction="none"
    )
    gx, gw = torch.autograd.grad((loss * v).sum(), (x, w))
    return loss, gx, gw


def _unfused_and_grads(name, ref, x, w, y, v):
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T  # (N, C): the unfused path
    loss = ref(cos, y, _scale(name, x))
    gx, gw = torch.autograd.grad((loss * v).sum(), (x, w))
    return loss, gx, gw


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize(("name", "phi", "ref"), MARGINS, ids=[m[0] for m in MARGINS])
@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["recompute", "keep"])
def test_fused_equals_unfused_float64(name, phi, ref, keep, monkeypatch):
    monkeypatch.setattr(fused, "KEEP_BUDGET_BYTES", keep)
    x, w, y = _data(12, 20, 6)
    v = torch.rand(12, dtype=D64) + 0.5  # a non-uniform upstream gradient
    want = _unfused_and_grads(name, ref, x, w, y, v)
    for chunk in (1, 3, 7, 20, 64):  # 7 does not divide C = 20; 20 and 64 are one chunk
        got = _fused_and_grads(name, phi, x, w, y, v, chunk)
        for g, r in zip(got, want):
            assert _rel(g, r) < 1e-10, (chunk, _rel(g, r))


@pytest.mark.parametrize(("name", "phi", "ref"), MARGINS, ids=[m[0] for m in MARGINS])
def test_float32_within_the_unfused_error_of_float64_truth(name, phi, ref):
    x64, w64, y = _data(32, 400, 24, spread=0.3)
    v = torch.ones(32, dtype=D64)
    truth = _unfused_and_grads(name, ref, x64, w64, y, v)
    x32 = x64.detach().float().requires_grad_(True)
    w32 = w64.detach().float().requires_grad_(True)
    unfused = _unfused_and_grads(name, ref, x32, w32, y, v.float())
    got = _fused_and_grads(name, phi, x32, w32, y, v.float(), 64)
    for g, u, t in zip(got, unfused, truth):
        err_fused = (g.double() - t).abs().max().item()
        err_unfused = (u.double() - t).abs().max().item()
        assert err_fused <= 2 * err_unfused + 1e-6 * t.abs().max().item(), (err_fused, err_unfused)


def _apply_fused(x, w, s, *, t, keep):
    return fused._FusedMarginSoftmax.apply(x, w, t, s, 4, keep)


def test_function_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(5, 3, generator=gen, dtype=D64), dim=1).requires_grad_(True)
    w = torch.randn(6, 3, generator=gen, dtype=D64).requires_grad_(True)
    s = (torch.rand(5, generator=gen, dtype=D64) * 3 + 1).requires_grad_(True)
    t = torch.tensor([0, 5, 2, 2, 3])
    for keep in (0, 2):
        fn = functools.partial(_apply_fused, t=t, keep=keep)
        assert torch.autograd.gradcheck(fn, (x, w, s))


def test_chunk_helpers_match_a_naive_block_computation():
    # the per-shard engine of class-parallel: targets outside the block mean "not here"
    gen = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(6, 4, generator=gen, dtype=D64), dim=1).requires_grad_(True)
    w = F.normalize(torch.randn(5, 4, generator=gen, dtype=D64), dim=1).requires_grad_(True)
    s = (torch.rand(6, generator=gen, dtype=D64) * 10 + 1).requires_grad_(True)
    t = torch.tensor([0, 4, -3, 7, 2, 5])  # rows 2, 3, 5: the target is in another block
    z = s[:, None] * (x @ w.T)
    keep = torch.ones(6, 5, dtype=torch.bool)
    for i, ti in enumerate(t.tolist()):
        if 0 <= ti < 5:
            keep[i, ti] = False
    lse = torch.logsumexp(z.masked_fill(~keep, float("-inf")), dim=1)
    g = torch.rand(6, generator=gen, dtype=D64)
    want = torch.autograd.grad((lse * g).sum(), (x, w, s))
    row_max, row_sum = fused._chunk_stats(x.detach(), w.detach(), t, s.detach(), 2)
    torch.testing.assert_close(row_max + row_sum.log(), lse.detach(), rtol=1e-12, atol=1e-12)
    got = fused._chunk_backward(x.detach(), w.detach(), t, s.detach(), lse.detach(), g, 2)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_chunk_helpers_rows_without_a_non_target_class():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D64)
    w = torch.tensor([[1.0, 0.0]], dtype=D64)
    t = torch.tensor([0, 3])  # row 0's only class is its target
    row_max, row_sum = fused._chunk_stats(x, w, t, torch.ones(2, dtype=D64), 1)
    assert row_max[0] == float("-inf") and row_sum[0] == 0
    assert row_max[1] == 0.0 and row_sum[1] == 1.0  # cos = 0: one term exp(0)
    lse = torch.tensor([float("-inf"), 0.0], dtype=D64)
    gx, gw, gs = fused._chunk_backward(x, w, t, torch.ones(2, dtype=D64), lse, torch.ones(2, dtype=D64), 1)
    assert torch.isfinite(gx).all() and torch.isfinite(gw).all() and torch.isfinite(gs).all()
    assert gx[0].abs().sum() == 0


def test_single_class_gives_zero_loss_with_finite_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(1, 4, requires_grad=True)
    loss = LF.margin_softmax_loss(x, w, torch.zeros(3, dtype=torch.long), target_logit=lambda c: c, scale=8.0)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize(("name", "phi", "ref"), MARGINS, ids=[m[0] for m in MARGINS])
@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["recompute", "keep"])
def test_cos_plus_minus_one_and_logits_past_100(name, phi, ref, keep, monkeypatch):
    # rows whose target centre is the embedding itself (cos = 1) or its negation (cos = -1), others
    # exactly parallel to a non-target centre; scale 150 puts logits at +-150: finite everywhere, and the
    # same loss and gradients as the unfused path
    monkeypatch.setattr(fused, "KEEP_BUDGET_BYTES", keep)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=gen, dtype=D64)
    w = torch.randn(4, 5, generator=gen, dtype=D64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    w[0], w[1], w[3] = x[0] * 2.0, -x[1], x[2] * 0.5  # cos = 1, cos = -1, a non-target at cos = 1
    x, w = x.requires_grad_(True), w.requires_grad_(True)
    v = torch.ones(6, dtype=D64)
    scale = 150.0 if name != "sphereface" else None
    got_loss = LF.margin_softmax_loss(
        x,
        w,
        y,
        target_logit=phi,
        scale=x.norm(dim=1) if scale is None else scale,
        chunk_size=3,
        reduction="none",
    )
    got = (got_loss, *torch.autograd.grad(got_loss.sum(), (x, w)))
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    want_loss = ref(cos, y, x.norm(dim=1) if scale is None else scale)
    want = (want_loss, *torch.autograd.grad((want_loss * v).sum(), (x, w)))
    for g, r in zip(got, want):
        assert torch.isfinite(g).all()
        # 1e-6, not 1e-10: at cos = +-1 an angular margin's slope in cos is at its steepest, and it
        # amplifies the ulp by which the two paths' cosines differ there (measured: 3e-8 relative)
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)


def test_weight_and_reductions_match_unfused():
    x, w, y = _data(10, 9, 5)
    wt = torch.rand(10, dtype=D64)
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    for reduction in ("none", "sum", "mean"):
        got = LF.margin_softmax_loss(
            x,
            w,
            y,
            target_logit=functools.partial(LF.cosface_target_logit, margin=0.35),
            scale=30.0,
            weight=wt,
            reduction=reduction,
            chunk_size=4,
        )
        want = LF.cosface_loss(cos, y, scale=30.0, weight=wt, reduction=reduction)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_learnable_0dim_scale_gets_the_unfused_gradient():
    x, w, y = _data(6, 5, 3)
    s = torch.tensor(12.0, dtype=D64, requires_grad=True)
    got = LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c, scale=s, chunk_size=2)
    (g,) = torch.autograd.grad(got, s)
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    want = LF.normface_loss(cos, y, scale=s)
    (h,) = torch.autograd.grad(want, s)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, h, rtol=1e-10, atol=0)


@given(chunk=st.integers(1, 40), seed=st.integers(0, 2**16), n=st.integers(0, 9))
def test_property_any_chunk_equals_unfused(chunk, seed, n):
    x, w, y = _data(n, 13, 4, seed=seed) if n else _data(4, 13, 4, seed=seed)
    x, y = (x, y) if n else (x[:0], y[:0])
    phi = functools.partial(LF.arcface_target_logit, margin=0.5)
    got = LF.margin_softmax_loss(x, w, y, target_logit=phi, scale=32.0, chunk_size=chunk, reduction="none")
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    want = LF.arcface_loss(cos, y, scale=32.0, reduction="none")
    assert (got >= 0).all()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_traces_into_one_graph_with_torch_compile():
    # fullgraph: no graph break, no host sync. aot_eager traces forward and backward (the custom Function
    # included) without inductor's C++ build, which takes ~30 s here; the contract's compile test uses it.
    torch._dynamo.reset()
    x, w, y = _data(8, 10, 4, dtype=torch.float32)
    phi = functools.partial(LF.arcface_target_logit, margin=0.5)

    def loss_fn(x, w):
        return LF.margin_softmax_loss(x, w, y, target_logit=phi, scale=16.0, chunk_size=3)

    eager = torch.autograd.grad(loss_fn(x, w), (x, w))
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")
    got = torch.autograd.grad(compiled(x, w), (x, w))
    for a, b in zip(got, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("keep", [0, 40_000], ids=["recompute", "keep-one-chunk"])
def test_no_n_by_c_tensor_is_made(keep, monkeypatch):
    # N * C = 64 * 1000 = 64000; the centres and their gradient are C * D = 8000; a chunk N * 100 = 6400.
    monkeypatch.setattr(fused, "KEEP_BUDGET_BYTES", keep)
    x = torch.randn(64, 8, requires_grad=True)
    w = torch.randn(1000, 8, requires_grad=True)
    y = torch.randint(0, 1000, (64,))
    with _LargestTensor() as probe:
        loss = LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c - 0.35, scale=30.0, chunk_size=100)
        loss.backward()
    assert probe.largest <= 8000, probe.largest
    # the unfused path does make one, so the probe can see it
    with _LargestTensor() as probe:
        LF.cosface_loss(F.normalize(x) @ F.normalize(w).T, y, scale=30.0).backward()
    assert probe.largest >= 64000


def test_auto_chunk_size_follows_the_budget():
    assert fused._auto_chunk_size(512, 512, 100_000, torch.float32) == fused.CHUNK_BUDGET_BYTES // (512 * 4)
    assert fused._auto_chunk_size(8, 4, 10, torch.float32) == 10  # never more than C
    assert fused._auto_chunk_size(10**9, 4, 10, torch.float64) == 1  # never less than 1
    # a small batch with a wide embedding: the (chunk, D) block of centres bounds the chunk
    assert fused._auto_chunk_size(4, 4096, 10**6, torch.float32) == fused.CHUNK_BUDGET_BYTES // (4096 * 4)
    x, w, y = _data(6, 30, 4)
    got = LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c, scale=8.0)  # chunk_size=None
    want = LF.normface_loss(F.normalize(x) @ F.normalize(w).T, y, scale=8.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_partial_fc_is_the_softmax_over_the_kept_classes():
    x, w, y = _data(8, 40, 5)
    phi = functools.partial(LF.cosface_target_logit, margin=0.35)
    got = LF.margin_softmax_loss(
        x,
        w,
        y,
        target_logit=phi,
        scale=30.0,
        sample_rate=0.25,
        chunk_size=3,
        generator=torch.Generator().manual_seed(5),
        reduction="none",
    )
    got.sum().backward()
    keep = fused._partial_fc_keep(y, 40, 0.25, torch.Generator().manual_seed(5))
    assert torch.isin(y, keep).all() and len(keep) == max(10, len(y.unique()))
    x2, w2 = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    cos = F.normalize(x2) @ F.normalize(w2[keep]).T
    want = LF.cosface_loss(cos, torch.searchsorted(keep, y), scale=30.0, reduction="none")
    want.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-10, atol=1e-12)
    dropped = torch.ones(40, dtype=torch.bool)
    dropped[keep] = False
    assert w.grad[dropped].abs().sum() == 0  # centres not sampled get no gradient


def test_process_group_delegates_to_class_parallel(monkeypatch):
    import losskit.distributed as dist_mod

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs, args=args)
        return torch.tensor(1.5)

    monkeypatch.setattr(dist_mod, "class_parallel_margin_loss", fake)
    x, w, y = torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 3])
    group = object()
    out = LF.margin_softmax_loss(
        x, w, y, target_logit=lambda c: c, scale=8.0, process_group=group, chunk_size=2
    )
    assert out.item() == 1.5 and seen["process_group"] is group and seen["chunk_size"] == 2
    assert seen["args"][0] is x and seen["args"][1] is w and seen["args"][2] is y


# ---------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------


def test_sphereface_iteration_advances_in_training_and_round_trips():
    m = LN.SphereFaceLoss(4, 6).double()
    x, y = torch.randn(5, 4, dtype=D64), torch.randint(0, 6, (5,))
    for _ in range(3):
        m(x, y).backward()
    assert int(m.iteration) == 3
    assert float(m.current_lambda()) == pytest.approx(1000 / (1 + 0.12 * 3), rel=1e-6)
    m.eval()
    m(x, y)
    assert int(m.iteration) == 3  # eval: lambda used, not advanced
    assert set(m.state_dict()) == {"centers", "iteration"}
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    clone = LN.SphereFaceLoss(4, 6).double()
    clone.load_state_dict(torch.load(buf))
    assert int(clone.iteration) == 3
    torch.testing.assert_close(clone.eval()(x, y), m(x, y))


def test_sphereface_first_training_step_uses_lambda_at_iteration_one():
    m = LN.SphereFaceLoss(4, 6).double()
    x, y = torch.randn(5, 4, dtype=D64), torch.randint(0, 6, (5,))
    got = m(x, y)
    cos = F.normalize(x) @ F.normalize(m.centers).T
    want = LF.sphereface_loss(cos, y, scale=x.norm(dim=1), lambda_=1000 / 1.12)  # 892.857 at iteration 1
    torch.testing.assert_close(got, want)


def test_module_logits_are_scaled_cosines():
    m = LN.ArcFaceLoss(4, 6, scale=10.0).double()
    x = torch.randn(3, 4, dtype=D64)
    torch.testing.assert_close(m.logits(x), 10.0 * F.normalize(x) @ F.normalize(m.centers).T)
    s = LN.SphereFaceLoss(4, 6).double()
    torch.testing.assert_close(
        s.logits(x), x.norm(dim=1, keepdim=True) * F.normalize(x) @ F.normalize(s.centers).T
    )


def test_module_under_autocast_keeps_float32_master_weights():
    m = LN.CosFaceLoss(8, 10, chunk_size=4)
    x = torch.randn(6, 8, requires_grad=True)
    y = torch.randint(0, 10, (6,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = x @ torch.eye(8)  # a bfloat16 activation, as a backbone would produce
        loss = m(h, y)
    assert h.dtype == torch.bfloat16 and loss.dtype == torch.bfloat16
    loss.float().backward()
    assert m.centers.dtype == torch.float32 and m.centers.grad.dtype == torch.float32
    ref = LF.cosface_loss(F.normalize(h.detach().float()) @ F.normalize(m.centers.detach()).T, y, scale=64.0)
    torch.testing.assert_close(loss.float(), ref.to(torch.bfloat16).float())


# ---------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------

_X, _W, _Y = torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1, 4])


def _call(**kw):
    args = {"input": _X, "centers": _W, "target": _Y, "target_logit": lambda c: c, "scale": 8.0}
    args.update(kw)
    return LF.margin_softmax_loss(args.pop("input"), args.pop("centers"), args.pop("target"), **args)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        ({"input": _X.long()}, TypeError, r"margin_softmax_loss: input must be a floating-point tensor; got"),
        ({"centers": _W.long()}, TypeError, r"margin_softmax_loss: centers must be a floating-point tensor"),
        ({"target": _Y.float()}, TypeError, r"margin_softmax_loss: target must be an integer tensor"),
        ({"input": _X[0]}, ValueError, r"margin_softmax_loss: expected input of shape \(N, D\), got \(4,\)"),
        (
            {"centers": _W[0]},
            ValueError,
            r"margin_softmax_loss: expected centers of shape \(C, D\), got \(4,\)",
        ),
        ({"target": _Y[:2]}, ValueError, r"margin_softmax_loss: expected target of shape \(3,\), got \(2,\)"),
        ({"centers": _W[:, :3]}, ValueError, r"expected centers of shape \(C, 4\), got \(5, 3\)"),
        ({"target_logit": 0.5}, TypeError, r"margin_softmax_loss: target_logit must be callable; got float"),
        ({"scale": torch.ones(2)}, ValueError, r"expected scale of shape \(\) or \(3,\), got \(2,\)"),
        ({"scale": torch.ones(3, dtype=torch.long)}, TypeError, r"scale must be a floating-point tensor"),
        ({"scale": 0.0}, ValueError, r"margin_softmax_loss: scale must be in \(0.0, inf\); got 0.0"),
        ({"chunk_size": 0}, ValueError, r"margin_softmax_loss: chunk_size must be >= 1; got 0"),
        ({"chunk_size": 2.0}, TypeError, r"margin_softmax_loss: chunk_size must be an int; got float"),
        (
            {"sample_rate": 0.0},
            ValueError,
            r"margin_softmax_loss: sample_rate must be in \(0.0, 1.0\]; got 0.0",
        ),
        ({"sample_rate": 1.5}, ValueError, r"sample_rate must be in \(0.0, 1.0\]; got 1.5"),
        (
            {"weight": torch.ones(2)},
            ValueError,
            r"margin_softmax_loss: weight must broadcast to the unreduced",
        ),
        ({"reduction": "avg"}, ValueError, r"reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
    ],
)
def test_function_errors(kw, err, match):
    with pytest.raises(err, match=match):
        _call(**kw)


@pytest.mark.parametrize(
    ("build", "err", "match"),
    [
        (lambda: LN.ArcFaceLoss(0, 5), ValueError, r"ArcFaceLoss: embedding_dim must be >= 1; got 0"),
        (lambda: LN.ArcFaceLoss(4, 0), ValueError, r"ArcFaceLoss: num_classes must be >= 1; got 0"),
        (lambda: LN.ArcFaceLoss(4, 5, chunk_size=0), ValueError, r"ArcFaceLoss: chunk_size must be >= 1"),
        (lambda: LN.ArcFaceLoss(4, 5, sample_rate=0.0), ValueError, r"ArcFaceLoss: sample_rate must be in"),
        (
            lambda: LN.ArcFaceLoss(4, 5, scale=-1.0),
            ValueError,
            r"ArcFaceLoss: scale must be a finite number > 0",
        ),
        (lambda: LN.ArcFaceLoss(4, 5, margin=4.0), ValueError, r"ArcFaceLoss: margin must be in \[0.0, 3.14"),
        (
            lambda: LN.ArcFaceLoss(4, 5, fallback="hard"),
            ValueError,
            r"ArcFaceLoss: fallback must be 'linear'",
        ),
        (
            lambda: LN.ArcFaceLoss(4, 5, gradient="st"),
            ValueError,
            r"ArcFaceLoss: gradient must be 'exact' or",
        ),
        (
            lambda: LN.CosFaceLoss(4, 5, margin=-0.1),
            ValueError,
            r"CosFaceLoss: margin must be a finite number >= 0",
        ),
        (
            lambda: LN.AMSoftmaxLoss(4, 5, scale=0.0),
            ValueError,
            r"AMSoftmaxLoss: scale must be a finite number > 0",
        ),
        (
            lambda: LN.CombinedMarginLoss(4, 5, m1=0.0),
            ValueError,
            r"CombinedMarginLoss: m1 must be a finite number > 0",
        ),
        (
            lambda: LN.CombinedMarginLoss(4, 5, m2=-1.0),
            ValueError,
            r"CombinedMarginLoss: m2 must be a finite",
        ),
        (
            lambda: LN.CombinedMarginLoss(4, 5, m3=-1.0),
            ValueError,
            r"CombinedMarginLoss: m3 must be a finite",
        ),
        (
            lambda: LN.SphereFaceLoss(4, 5, margin=2.5),
            TypeError,
            r"SphereFaceLoss: margin must be an int; got float",
        ),
        (
            lambda: LN.SphereFaceLoss(4, 5, base=-1.0),
            ValueError,
            r"SphereFaceLoss: base must be a finite number >= 0",
        ),
        (lambda: LN.SphereFaceLoss(4, 5, gamma=-1.0), ValueError, r"SphereFaceLoss: gamma must be a finite"),
        (lambda: LN.SphereFaceLoss(4, 5, power=-1.0), ValueError, r"SphereFaceLoss: power must be a finite"),
        (
            lambda: LN.SphereFaceLoss(4, 5, lambda_min=-1.0),
            ValueError,
            r"SphereFaceLoss: lambda_min must be a",
        ),
        (
            lambda: LN.NormFaceLoss(4, 5, scale=0.0),
            ValueError,
            r"NormFaceLoss: scale must be a finite number > 0",
        ),
        (
            lambda: LN.NormFaceLoss(4, 5, scale=1.0, reduction="avg"),
            ValueError,
            r"NormFaceLoss: reduction must be",
        ),
    ],
)
def test_module_construction_errors(build, err, match):
    with pytest.raises(err, match=match):
        build()
