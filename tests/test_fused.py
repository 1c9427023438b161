"""Fused margin softmax and the streaming engine under it: equal to the definition (the unfused path),
gradients, bounded memory, Partial-FC, torch.func, Modules, labels and errors."""

from __future__ import annotations

import functools
import io
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import losskit.functional as LF
import losskit.nn as LN
from losskit._kernels import streaming
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


def _fused_and_grads(name, phi, x, w, y, v, chunk, keep=streaming.KEEP_BUDGET):
    loss = LF.margin_softmax_loss(
        x, w, y, target_logit=phi, scale=_scale(name, x), chunk_size=chunk, keep_budget=keep, reduction="none"
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
def test_fused_equals_unfused_float64(name, phi, ref, keep):
    x, w, y = _data(12, 20, 6)
    v = torch.rand(12, dtype=D64) + 0.5  # a non-uniform upstream gradient
    want = _unfused_and_grads(name, ref, x, w, y, v)
    for chunk in (1, 3, 7, 20, 64):  # 7 does not divide C = 20; 20 and 64 are one chunk
        got = _fused_and_grads(name, phi, x, w, y, v, chunk, keep)
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


# ---------------------------------------------------------------------------------------------------------
# the streaming engine itself (every option, against a float64 reference written out naively)
# ---------------------------------------------------------------------------------------------------------


def _naive_stats(x, w, t, s, b, normalize, cap, exclude, with_sum):
    """(lse, target value, logit sum) of the engine, with the full (N, C) logits."""
    u = F.normalize(w, dim=1) if normalize else w
    v = x @ u.T + (0.0 if b is None else b)  # (N, C)
    a = v * (1.0 if s is None else s[:, None])
    z = a if cap is None else cap * torch.tanh(a / cap)
    c = w.shape[0]
    inside = (t >= 0) & (t < c)
    onehot = F.one_hot(t.clamp(0, c - 1), c).bool() & inside[:, None]
    lse = torch.logsumexp(z.masked_fill(onehot, -math.inf) if exclude else z, dim=1)
    value = torch.where(inside, v.gather(1, t.clamp(0, c - 1)[:, None])[:, 0], 0.0)
    total = (z.masked_fill(onehot, 0.0) if exclude else z).sum(dim=1) if with_sum else torch.zeros_like(lse)
    return lse, value, total


ENGINE_OPTIONS = list(
    itertools.product([True, False], [None, 3.0], [True, False], [True, False], [True, False], [True, False])
)


@pytest.mark.parametrize(
    ("normalize", "cap", "exclude", "with_sum", "use_scale", "use_bias"),
    ENGINE_OPTIONS,
    ids=[
        "-".join(n for n, on in zip(("norm", "cap", "excl", "sum", "scale", "bias"), o) if on) or "plain"
        for o in ENGINE_OPTIONS
    ],
)
def test_engine_every_option_equals_the_full_logits(normalize, cap, exclude, with_sum, use_scale, use_bias):
    # the options the margin losses use (normalised centres, per-row scale, target excluded) and those a
    # language-model head needs (raw class vectors, bias, soft-cap, logit sums for label smoothing);
    # rows 2 and 3 have their target in no class here (another rank's class, an ignored row)
    g = torch.Generator().manual_seed(0)
    n, c, d = 7, 11, 5
    x = torch.randn(n, d, generator=g, dtype=D64, requires_grad=True)
    w = torch.randn(c, d, generator=g, dtype=D64, requires_grad=True)
    s = (torch.rand(n, generator=g, dtype=D64) * 3 + 0.5).requires_grad_(True) if use_scale else None
    b = torch.randn(c, generator=g, dtype=D64, requires_grad=True) if use_bias else None
    t = torch.randint(0, c, (n,), generator=g)
    t[2], t[3] = -5, c + 1
    coef = [torch.randn(n, generator=g, dtype=D64) for _ in range(3)]
    leaves = [v for v in (x, w, s, b) if v is not None]
    want = _naive_stats(x, w, t, s, b, normalize, cap, exclude, with_sum)
    (gw,) = [torch.autograd.grad(sum((o * k).sum() for o, k in zip(want[: 2 + with_sum], coef)), leaves)]
    for chunk, keep in itertools.product((1, 4, 11, 20), (0, 1 << 30)):
        got = streaming.softmax_stats(
            x, w, t, scale=s, bias=b, normalize=normalize, softcap=cap, exclude_target=exclude,
            with_sum=with_sum, chunk_size=chunk, keep_budget=keep,
        )  # fmt: skip
        assert got[2].requires_grad == with_sum
        gg = torch.autograd.grad(sum((o * k).sum() for o, k in zip(got[: 2 + with_sum], coef)), leaves)
        for a, r in zip((*got, *gg), (*want, *gw)):
            torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12, msg=f"chunk {chunk}, keep {keep}")


class _Products(TorchDispatchMode):
    """Counts the matrix products (``mm`` / ``addmm``, any overload) run under it."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.products = {torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in self.products:
            self.count += 1
        return func(*args, **(kwargs or {}))


# (rows, dim) -> chunk -> leading blocks of 23 classes whose logits fit the (23, dim) gradient buffer,
# worked by hand: every block when rows <= dim; else the blocks ending by 23 * dim / rows classes
# (9 rows, dim 4: 10.2 classes -> ten blocks of 1, two of 5, none of 23)
_STORED_BY_HAND = {(4, 6): {1: 23, 5: 5, 23: 1}, (6, 6): {1: 23, 5: 5, 23: 1}, (9, 4): {1: 10, 5: 2, 23: 0}}


@pytest.mark.parametrize(("n", "d"), list(_STORED_BY_HAND), ids=["rows<dim", "rows=dim", "rows>dim"])
@pytest.mark.parametrize("chunk", [1, 5, 23])
@pytest.mark.parametrize("kept", ["none", "one-block", "all"])
@pytest.mark.parametrize("margin_like", [True, False], ids=["margin-options", "lm-options"])
def test_engine_logits_in_the_gradient_buffer(n, d, chunk, kept, margin_like):
    # forward writes the first blocks' logits into the buffer that becomes the class-vector gradient
    # and keep_budget more into their own tensors; backward recomputes only the rest: one product per
    # block in forward and two in backward, plus one per recomputed block. keep_budget=0 keeps nothing.
    c = 23
    g = torch.Generator().manual_seed(n * 100 + chunk)
    x = torch.randn(n, d, generator=g, dtype=D64, requires_grad=True)
    w = torch.randn(c, d, generator=g, dtype=D64, requires_grad=True)
    t = torch.randint(0, c, (n,), generator=g)
    if margin_like:  # normalised centres, a per-row scale, the target excluded
        s, b = torch.rand(n, generator=g, dtype=D64) * 3 + 1, None
        opts = {"normalize": True, "exclude_target": True}
        want = _naive_stats(x, w, t, s, None, True, None, True, False)
    else:  # an LM head: raw class vectors, a bias, a soft-cap, logit sums
        s, b, opts = None, torch.randn(c, generator=g, dtype=D64), {"softcap": 3.0, "with_sum": True}
        want = _naive_stats(x, w, t, None, b, False, 3.0, False, True)
    blocks = -(-c // chunk)
    budget = {"none": 0, "one-block": n * chunk * 8, "all": 1 << 30}[kept]
    coef = [torch.randn(n, generator=g, dtype=D64) for _ in range(3)]
    want_grads = torch.autograd.grad(sum((o * k).sum() for o, k in zip(want, coef)), (x, w))
    with _Products() as products:
        got = streaming.softmax_stats(x, w, t, scale=s, bias=b, chunk_size=chunk, keep_budget=budget, **opts)
        total = sum((o * k).sum() for o, k in zip(got, coef) if o.requires_grad)
        grads = torch.autograd.grad(total, (x, w), retain_graph=True)
    stored = 0 if kept == "none" else _STORED_BY_HAND[(n, d)][chunk]
    separately = {"none": 0, "one-block": 1, "all": blocks}[kept]
    recomputed = blocks - min(blocks, stored + separately)
    assert products.count == 3 * blocks + recomputed
    for a, r in zip((*got, *grads), (*want, *want_grads)):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
    # a second backward through the same graph: the buffer went out as the first gradient, so the
    # blocks it held are recomputed, and the gradients are the same
    again = torch.autograd.grad(total, (x, w))
    for a, r in zip(again, want_grads):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


@given(rows=st.integers(1, 40), dim=st.integers(1, 40), classes=st.integers(0, 60), chunk=st.integers(1, 70))
def test_property_stored_logits_are_read_before_the_gradient_overwrites_them(rows, dim, classes, chunk):
    # the layout of _stored_blocks / _stored_view: every stored block lies inside the (C, D) buffer, no
    # two overlap, and backward's write of block i's gradient (classes [a, b) -> flat [a D, b D)) hits
    # no stored block after i; one block more would not fit
    stored = streaming._stored_blocks(rows, dim, classes, chunk)
    size = classes * dim
    store = torch.zeros(size, dtype=torch.int64)
    spans = []
    for i, a in enumerate(range(0, classes, chunk)):
        b = min(a + chunk, classes)
        if i >= stored:
            break
        view = streaming._stored_view(store.view(max(classes, 1), dim) if size else store, a, b, rows, dim)
        assert view.shape == (rows, b - a) and view.data_ptr() >= store.data_ptr()
        start = (view.data_ptr() - store.data_ptr()) // store.element_size()
        spans.append((start, start + rows * (b - a), a, b))
        assert start + rows * (b - a) <= size
    for i, (_, s1, a, b) in enumerate(spans):
        for t0, t1, _, _ in spans[i + 1 :]:
            assert s1 <= t0  # disjoint, in order
            assert b * dim <= t0 or t1 <= a * dim  # block i's gradient write misses every later block
    blocks = -(-classes // chunk)
    if stored < blocks:  # the first block left out really does not fit
        a = stored * chunk
        b = min(a + chunk, classes)
        assert a * max(rows, dim) + rows * (b - a) > size


def test_engine_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(5, 3, generator=gen, dtype=D64), dim=1).requires_grad_(True)
    w = torch.randn(6, 3, generator=gen, dtype=D64).requires_grad_(True)
    s = (torch.rand(5, generator=gen, dtype=D64) * 3 + 1).requires_grad_(True)
    b = torch.randn(6, generator=gen, dtype=D64).requires_grad_(True)
    t = torch.tensor([0, 5, 2, 2, 3])
    for keep, cap, exclude in itertools.product((0, 1 << 20), (None, 2.0), (True, False)):

        def fn(x, w, s, b, keep=keep, cap=cap, exclude=exclude):
            lse, value, total = streaming.softmax_stats(
                x, w, t, scale=s, bias=b, normalize=True, softcap=cap, exclude_target=exclude,
                with_sum=True, chunk_size=4, keep_budget=keep,
            )  # fmt: skip
            return lse, value, total

        assert torch.autograd.gradcheck(fn, (x, w, s, b))


def test_engine_rows_without_an_included_class():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=D64, requires_grad=True)
    w = torch.tensor([[1.0, 0.0]], dtype=D64, requires_grad=True)
    t = torch.tensor([0, 3])  # row 0's only class is its target; row 1's target is elsewhere
    lse, value, _ = streaming.softmax_stats(x, w, t, normalize=True, exclude_target=True, chunk_size=1)
    assert lse[0] == -math.inf and lse[1] == 0.0  # row 1: cos = 0, one term exp(0)
    assert value[0] == 1.0 and value[1] == 0.0
    gx, gw = torch.autograd.grad(torch.where(torch.isfinite(lse), lse, 0.0).sum() + value.sum(), (x, w))
    assert torch.isfinite(gx).all() and torch.isfinite(gw).all()


def test_engine_low_precision_class_vectors_accumulate_in_the_rows_dtype():
    # bfloat16 master weights against float32 rows: the blocks are cast to float32, the gradient of the
    # class vectors comes back in bfloat16
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 8, generator=gen, requires_grad=True)
    w = torch.randn(50, 8, generator=gen).bfloat16().requires_grad_(True)
    t = torch.randint(0, 50, (6,), generator=gen)
    lse, value, _ = streaming.softmax_stats(x, w, t, chunk_size=7)
    (lse - value).sum().backward()
    assert lse.dtype == torch.float32 and w.grad.dtype == torch.bfloat16
    want = F.cross_entropy(x.detach().double() @ w.detach().double().T, t, reduction="sum")
    torch.testing.assert_close((lse - value).sum().double(), want, rtol=1e-6, atol=1e-5)


def test_engine_auto_chunk_size_follows_the_budget():
    assert streaming.auto_chunk_size(512, 512, 100_000, torch.float32) == 2048  # 4 MiB / (512 * 4 bytes)
    assert streaming.auto_chunk_size(8, 4, 10, torch.float32) == 10  # never more than C
    assert streaming.auto_chunk_size(10**9, 4, 10, torch.float64) == 1  # never less than 1
    # a small batch with a wide embedding: the (chunk, D) block of centres bounds the chunk
    assert streaming.auto_chunk_size(4, 4096, 10**6, torch.float32) == 256


def test_single_class_gives_zero_loss_with_finite_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(1, 4, requires_grad=True)
    loss = LF.margin_softmax_loss(x, w, torch.zeros(3, dtype=torch.long), target_logit=lambda c: c, scale=8.0)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


@pytest.mark.parametrize(("name", "phi", "ref"), MARGINS, ids=[m[0] for m in MARGINS])
@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["recompute", "keep"])
def test_cos_plus_minus_one_and_logits_past_100(name, phi, ref, keep):
    # rows whose target centre is the embedding itself (cos = 1) or its negation (cos = -1), others
    # exactly parallel to a non-target centre; scale 150 puts logits at +-150: finite everywhere, and the
    # same loss and gradients as the unfused path
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
        keep_budget=keep,
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
    # fullgraph: no graph break, no host sync. Under torch.compile the definition runs (plain ops);
    # aot_eager traces forward and backward without inductor's C++ build, which takes ~30 s here.
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
def test_no_n_by_c_tensor_is_made(keep):
    # N * C = 64 * 1000 = 64000; the centres and their gradient are C * D = 8000; a chunk N * 100 = 6400.
    x = torch.randn(64, 8, requires_grad=True)
    w = torch.randn(1000, 8, requires_grad=True)
    y = torch.randint(0, 1000, (64,))
    with _LargestTensor() as probe:
        loss = LF.margin_softmax_loss(
            x, w, y, target_logit=lambda c: c - 0.35, scale=30.0, chunk_size=100, keep_budget=keep
        )
        loss.backward()
    assert probe.largest <= 8000, probe.largest
    # the unfused path does make one, so the probe can see it
    with _LargestTensor() as probe:
        LF.cosface_loss(F.normalize(x) @ F.normalize(w).T, y, scale=30.0).backward()
    assert probe.largest >= 64000


def test_default_chunk_size_equals_unfused():
    x, w, y = _data(6, 30, 4)
    got = LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c, scale=8.0)  # chunk_size=None
    want = LF.normface_loss(F.normalize(x) @ F.normalize(w).T, y, scale=8.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_knobs_are_arguments_not_module_globals():
    # the keep budget and the chunk size are arguments (of the function and of every margin Module);
    # nothing module-wide to set
    assert not any(hasattr(fused, name) for name in ("KEEP_BUDGET_BYTES", "CHUNK_BUDGET_BYTES"))
    x, w, y = _data(9, 25, 4)
    phi = functools.partial(LF.arcface_target_logit, margin=0.5)
    runs = []
    for keep in (0, 9 * 4 * 8, 1 << 30):  # recompute every chunk, keep one, keep all
        xi, wi = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
        loss = LF.margin_softmax_loss(xi, wi, y, target_logit=phi, scale=16.0, chunk_size=4, keep_budget=keep)
        runs.append((loss, *torch.autograd.grad(loss, (xi, wi))))
    for other in runs[1:]:
        for a, b in zip(other, runs[0]):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    m = LN.ArcFaceLoss(4, 25, chunk_size=4, keep_budget=0)
    assert (m.chunk_size, m.keep_budget) == (4, 0)
    assert LN.CosFaceLoss(4, 25).keep_budget == streaming.KEEP_BUDGET == 48 * 2**20


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


# ---------------------------------------------------------------------------------------------------------
# the definition (torch.func, torch.compile) and the engine (eager): one loss
# ---------------------------------------------------------------------------------------------------------


def _ran_engine(loss):
    """Whether the streaming engine's Function is in ``loss``'s autograd graph."""
    seen, todo = set(), [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "SoftmaxStats" in type(node).__name__:
            return True
        todo.extend(n for n, _ in node.next_functions)
    return False


def test_the_dispatch_rule_engine_in_eager_definition_under_transforms(monkeypatch):
    x, w, y = _data(5, 7, 3)
    phi = functools.partial(LF.arcface_target_logit, margin=0.5)

    def f(x):
        return LF.margin_softmax_loss(x, w.detach(), y, target_logit=phi, scale=16.0, chunk_size=2)

    assert _ran_engine(f(x))

    def refuse(*args, **kwargs):
        raise AssertionError("the streaming engine ran")

    monkeypatch.setattr(streaming, "softmax_stats", refuse)
    with pytest.raises(AssertionError, match="the streaming engine ran"):
        f(x)
    xd = x.detach()
    torch.func.grad(f)(xd)  # the definition: no engine
    torch.func.jacrev(f)(xd)
    torch.func.vmap(f)(torch.stack([xd, -xd]))
    torch.compile(f, fullgraph=True, backend="eager")(x.detach())
    torch._dynamo.reset()


def _hard_case():
    # targets at cos = +1 and -1 exactly, a non-target at cos = +1, logits of +-150 at scale 150
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=gen, dtype=D64)
    w = torch.randn(4, 5, generator=gen, dtype=D64)
    w[0], w[1], w[3] = x[0] * 2.0, -x[1], x[2] * 0.5
    return x, w, torch.tensor([0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize(("name", "phi", "ref"), MARGINS, ids=[m[0] for m in MARGINS])
@pytest.mark.parametrize("keep", [0, 1 << 30], ids=["recompute", "keep"])
def test_engine_equals_the_definition_at_the_hard_cases(name, phi, ref, keep):
    x, w, y = _hard_case()

    def loss(x, w):
        s = x.norm(dim=1) if name == "sphereface" else 150.0
        return LF.margin_softmax_loss(
            x, w, y, target_logit=phi, scale=s, chunk_size=3, keep_budget=keep, reduction="sum"
        )

    # torch.func.grad runs the definition (plain ops); autograd in eager runs the streaming engine
    (def_gx, def_gw), def_loss = torch.func.grad_and_value(loss, argnums=(0, 1))(x, w)
    xe, we = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    eng_loss = loss(xe, we)
    eng_gx, eng_gw = torch.autograd.grad(eng_loss, (xe, we))
    assert _ran_engine(eng_loss)
    for a, b in ((eng_loss, def_loss), (eng_gx, def_gx), (eng_gw, def_gw)):
        assert torch.isfinite(a).all()
        # 1e-6: at cos = +-1 an angular margin's slope in cos is at its steepest, and it amplifies the ulp
        # by which the two paths' cosines differ there (measured: 3e-8 relative)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_torch_func_transforms_of_the_fused_loss():
    # grad, vmap and jacrev run the definition: they compose and equal autograd of the engine and loops
    x, w, y = _data(5, 7, 3)
    phi = functools.partial(LF.arcface_target_logit, margin=0.5)

    def f(x, w, y):
        return LF.margin_softmax_loss(x, w, y, target_logit=phi, scale=16.0, chunk_size=2, reduction="none")

    rows = f(x, w, y)
    want = torch.stack([torch.autograd.grad(r, x, retain_graph=True)[0] for r in rows])
    torch.testing.assert_close(torch.func.jacrev(f)(x.detach(), w.detach(), y), want)
    batch = torch.stack([x.detach(), -x.detach()])
    got = torch.func.vmap(lambda xb: f(xb, w.detach(), y).sum())(batch)
    torch.testing.assert_close(got, torch.stack([f(xb, w, y).sum() for xb in batch]).detach())


def test_process_group_under_torch_func_is_a_clear_error():
    x, w, y = _data(3, 4, 2)

    def f(x):
        return LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c, scale=8.0, process_group=object())

    with pytest.raises(
        ValueError, match=r"margin_softmax_loss: process_group is not supported under torch.func"
    ):
        torch.func.grad(f)(x.detach())


# ---------------------------------------------------------------------------------------------------------
# labels and the target-logit contract (issue 10)
# ---------------------------------------------------------------------------------------------------------

MODULES = [
    (LN.ArcFaceLoss, {}),
    (LN.CosFaceLoss, {}),
    (LN.AMSoftmaxLoss, {}),
    (LN.CombinedMarginLoss, {"m2": 0.3}),
    (LN.SphereFaceLoss, {}),
    (LN.NormFaceLoss, {"scale": 10.0}),
]
MODULE_IDS = [cls.__name__ for cls, _ in MODULES]


@pytest.mark.parametrize("bad", [-1, 6], ids=["minus_one", "C"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16])
def test_labels_out_of_range_are_rejected_by_the_fused_loss(bad, dtype):
    # a label of -1 used to wrap around to class C-1 (which also stayed in the denominator): a plausible
    # finite loss; every path (the engine, the definition under torch.func) now raises
    x, w = torch.randn(4, 3), torch.randn(6, 3)
    y = torch.tensor([0, bad, 2, 5], dtype=dtype)
    kw = {"target_logit": lambda c: c - 0.35, "scale": 30.0}
    with pytest.raises(
        ValueError, match=rf"margin_softmax_loss: target must hold class indices in \[0, 6\); .*{bad}"
    ):
        LF.margin_softmax_loss(x, w, y, **kw)
    with pytest.raises(ValueError, match=r"margin_softmax_loss: target must hold class indices in \[0, 6\)"):
        torch.func.grad(lambda x_: LF.margin_softmax_loss(x_, w, y, **kw))(x)


@pytest.mark.parametrize(("cls", "kw"), MODULES, ids=MODULE_IDS)
def test_labels_out_of_range_are_rejected_by_every_margin_module(cls, kw):
    module = cls(3, 6, **kw)
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: target must hold class indices in \[0, 6\)"):
            module(torch.randn(4, 3), torch.tensor([0, bad, 2, 5]))


@pytest.mark.parametrize(
    ("phi", "got"),
    [
        (lambda c: c[:, None], r"\(4, 1\)"),
        (lambda c: c.sum(), r"\(\)"),
        (lambda c: torch.cat([c, c[:1]]), r"\(5,\)"),
    ],
    ids=["n_by_1", "scalar", "n_plus_1"],
)
def test_target_logit_output_shape_is_checked(phi, got):
    # (N, 1) used to broadcast against (N,) into an (N, N) loss (a plausible mean), a scalar to give
    # every row the same target logit; both paths now name target_logit and the shape it returned
    x, w, y = torch.randn(4, 3), torch.randn(6, 3), torch.tensor([0, 1, 2, 5])
    match = (
        rf"margin_softmax_loss: target_logit must return one target logit per row, shape \(4,\) .*got {got}"
    )
    with pytest.raises(ValueError, match=match):
        LF.margin_softmax_loss(x, w, y, target_logit=phi, scale=8.0)
    with pytest.raises(ValueError, match=match):
        torch.func.grad(lambda x_: LF.margin_softmax_loss(x_, w, y, target_logit=phi, scale=8.0))(x)
    with pytest.raises(
        TypeError, match=r"margin_softmax_loss: target_logit must return a floating-point tensor"
    ):
        LF.margin_softmax_loss(x, w, y, target_logit=lambda c: 0.5, scale=8.0)


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
    # computed in float32 and returned in float32 inside autocast, as torch's losses
    assert h.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert m.centers.dtype == torch.float32 and m.centers.grad.dtype == torch.float32
    ref = LF.cosface_loss(F.normalize(h.detach().float()) @ F.normalize(m.centers.detach()).T, y, scale=64.0)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    assert m(h.detach(), y).dtype == torch.bfloat16  # outside autocast: the input's dtype


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
        ({"keep_budget": -1}, ValueError, r"margin_softmax_loss: keep_budget must be >= 0 \(bytes\); got -1"),
        (
            {"keep_budget": 1.5},
            TypeError,
            r"margin_softmax_loss: keep_budget must be an int \(bytes\); got float",
        ),
        (
            {"num_classes": 4},
            ValueError,
            r"margin_softmax_loss: expected centers of shape \(4, D\) \(num_classes=4\)",
        ),
        ({"target": torch.tensor([0, 1, 5])}, ValueError, r"target must hold class indices in \[0, 5\)"),
        (
            {"target": _Y.to("meta")},
            ValueError,
            r"margin_softmax_loss: expected target on the device of input",
        ),
        (
            {"centers": _W.to("meta")},
            ValueError,
            r"margin_softmax_loss: expected centers on the device of input",
        ),
        (
            {"scale": torch.ones(3, device="meta")},
            ValueError,
            r"expected scale on the device of input \(cpu\)",
        ),
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
        (lambda: LN.ArcFaceLoss(4, 5, keep_budget=-1), ValueError, r"ArcFaceLoss: keep_budget must be >= 0"),
        (
            lambda: LN.CombinedMarginLoss(4, 5, m1=0.9, fallback="linear"),
            ValueError,
            r"CombinedMarginLoss: fallback='linear' is ArcFace's and needs m1=1",
        ),
        (
            lambda: LN.CombinedMarginLoss(4, 5, gradient="st"),
            ValueError,
            r"CombinedMarginLoss: gradient must be 'exact' or",
        ),
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


@pytest.mark.parametrize(("cls", "kw"), MODULES, ids=MODULE_IDS)
def test_module_input_of_the_wrong_width_names_the_module_and_embedding_dim(cls, kw):
    # (N, D + 1) used to end in "margin_softmax_loss: expected centers of shape (C, 5), got (5, 4)"
    module = cls(4, 5, **kw)
    match = (
        rf"{cls.__name__}: expected input of shape \(N, 4\) \(its last dimension must be embedding_dim=4\), "
        r"got \(3, 5\)"
    )
    with pytest.raises(ValueError, match=match):
        module(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=match):
        module.logits(torch.randn(3, 5))


@pytest.mark.parametrize(("cls", "kw"), MODULES, ids=MODULE_IDS)
def test_module_errors_name_the_module(cls, kw):
    module = cls(4, 5, **kw)
    x = torch.randn(3, 4)
    with pytest.raises(
        ValueError,
        match=rf"{cls.__name__}: expected target on the device of input \(cpu\), got target on meta",
    ):
        module(x, torch.tensor([0, 1, 2], device="meta"))
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected target of shape \(3,\), got \(2,\)"):
        module(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=rf"{cls.__name__}: weight must broadcast"):
        module(x, torch.tensor([0, 1, 2]), torch.ones(2))


def test_sphereface_counter_does_not_move_when_the_call_raises():
    m = LN.SphereFaceLoss(4, 6)
    with pytest.raises(ValueError, match="SphereFaceLoss: target must hold class indices"):
        m(torch.randn(3, 4), torch.tensor([0, 9, 1]))
    assert int(m.iteration) == 0
    m(torch.randn(3, 4), torch.tensor([0, 5, 1]))
    assert int(m.iteration) == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"m1": 1.0, "m2": 0.5, "gradient": "straight_through"},
        {"m1": 1.0, "m2": 0.5, "fallback": "linear"},
        {"m1": 1.0, "m2": 0.3, "m3": 0.1, "fallback": "easy"},
        {"m1": 0.9, "m2": 0.4, "m3": 0.15},
    ],
)
def test_combined_margin_module_passes_fallback_and_gradient(kw):
    torch.manual_seed(0)
    m = LN.CombinedMarginLoss(4, 6, scale=16.0, chunk_size=4, **kw).double()
    x = torch.randn(8, 4, dtype=D64, requires_grad=True)
    y = torch.randint(0, 6, (8,))
    with torch.no_grad():  # some targets past pi - m2, where the fallbacks differ
        m.centers[y[:3]] = -x[:3].detach()
    got = m(x, y)
    (gx,) = torch.autograd.grad(got, x)
    x2 = x.detach().clone().requires_grad_(True)
    want = LF.combined_margin_loss(F.normalize(x2) @ F.normalize(m.centers.detach()).T, y, scale=16.0, **kw)
    (wx,) = torch.autograd.grad(want, x2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gx, wx)
