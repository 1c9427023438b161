"""linear_cross_entropy / LinearCrossEntropyLoss: the language-model head's loss on the streaming engine.

References are written from the definitions: ``F.linear`` then ``F.cross_entropy`` (torch's class
weights, ignore_index, label smoothing and divisors), PaLM's z-loss ``z_loss * lse^2`` per counted
token (its mean over the counted tokens) and Gemma 2's soft-cap ``c * tanh(logits / c)`` before the
softmax, all in float64. Every path is checked against them: the engine with gradients computed in
forward (``'mean'``/``'sum'`` with the head in the compute dtype), the engine with recomputed blocks
(``'none'``, or a head in another dtype), and the definition (what ``torch.func`` and
``torch.compile`` see).
"""

from __future__ import annotations

import inspect
import itertools
import math

import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import losskit.functional as LF
import losskit.nn as LN
from conftest import DEVICES
from losskit._kernels import streaming

D64 = torch.float64
FN = "linear_cross_entropy"


def reference(x, w, t, *, b=None, cw=None, reduction="mean", ignore=-100, eps=0.0, zl=0.0, cap=None):
    """The loss written from its definition, with torch's cross-entropy for the cross-entropy part."""
    x2, t2 = x.reshape(-1, x.shape[-1]), t.reshape(-1)
    v = F.linear(x2, w, b)
    z = v if cap is None else cap * torch.tanh(v / cap)
    ce = F.cross_entropy(z, t2, cw, ignore_index=ignore, reduction=reduction, label_smoothing=eps)
    counted = t2 != ignore
    if reduction == "mean" and not counted.any():
        ce = ce.nan_to_num(0.0)  # losskit: 0 where nothing is counted (torch: 0/0)
    if zl:
        zz = torch.where(counted, zl * torch.logsumexp(z, dim=1) ** 2, 0.0)
        if reduction == "none":
            ce = ce + zz
        elif reduction == "sum":
            ce = ce + zz.sum()
        else:
            ce = ce + zz.sum() / counted.sum().clamp_min(1)
    return ce.reshape(t.shape) if reduction == "none" else ce


def _data(n=9, d=5, v=13, seed=0, ignore=-100, dtype=D64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D64).to(dtype).requires_grad_(True)
    w = (torch.randn(v, d, generator=g, dtype=D64) * 0.7).to(dtype).requires_grad_(True)
    b = torch.randn(v, generator=g, dtype=D64).to(dtype).requires_grad_(True)
    cw = (torch.rand(v, generator=g, dtype=D64) + 0.5).to(dtype)
    t = torch.randint(0, v, (n,), generator=g)
    t[1::3] = ignore
    return x, w, b, cw, t


def _grads(out, leaves, seed=1):
    """Gradients of a random weighted sum of ``out`` (a scalar: of ``out`` itself)."""
    g = torch.Generator().manual_seed(seed)
    coef = (
        torch.randn(out.shape, generator=g, dtype=out.dtype) if out.dim() else torch.ones((), dtype=out.dtype)
    )
    return torch.autograd.grad((out * coef).sum(), leaves)


OPTIONS = list(
    itertools.product(
        ["mean", "sum", "none"], [False, True], [False, True], [0.0, 0.1], [0.0, 0.01], [None, 3.0]
    )
)


def _option_id(o):
    r, bias, cw, eps, zl, cap = o
    on = [n for n, flag in (("bias", bias), ("cw", cw), ("smooth", eps), ("z", zl), ("cap", cap)) if flag]
    return "-".join([r, *on])


@pytest.mark.parametrize(
    ("reduction", "bias", "weighted", "eps", "zl", "cap"), OPTIONS, ids=map(_option_id, OPTIONS)
)
@pytest.mark.parametrize("path", ["engine", "engine-other-dtype", "definition"])
def test_every_option_equals_the_float64_reference(path, reduction, bias, weighted, eps, zl, cap):
    # ignore_index 4 is a valid class id: its tokens are ignored, as torch does
    x, w, b, cw, t = _data(ignore=4)
    kw = {
        "linear_bias": b if bias else None,
        "weight": cw if weighted else None,
        "reduction": reduction,
        "ignore_index": 4,
        "label_smoothing": eps,
        "z_loss": zl,
        "softcap": cap,
        "chunk_size": 4,
    }
    leaves = [x, w] + ([b] if bias else [])
    want = reference(
        x, w, t, b=kw["linear_bias"], cw=kw["weight"], reduction=reduction, ignore=4, eps=eps, zl=zl, cap=cap
    )
    want_grads = _grads(want, leaves)
    if path == "definition":  # torch.func sees the definition
        got, vjp = torch.func.vjp(
            lambda *p: LF.linear_cross_entropy(
                p[0], p[1], t, **{**kw, "linear_bias": p[2] if bias else None}
            ),
            *leaves,
        )
        g = torch.Generator().manual_seed(1)
        coef = torch.randn(got.shape, generator=g, dtype=D64) if got.dim() else torch.ones((), dtype=D64)
        got_grads = vjp(coef)
        tol = {"rtol": 1e-10, "atol": 1e-12}
    elif path == "engine":
        got = LF.linear_cross_entropy(x, w, t, **kw)
        got_grads = _grads(got, leaves)
        tol = {"rtol": 1e-10, "atol": 1e-12}
    else:
        # the head in float32 (master weights in another dtype): the blocks are cast and recomputed
        w32 = w.detach().float().requires_grad_(True)
        b32 = b.detach().float().requires_grad_(True)
        leaves32 = [x, w32] + ([b32] if bias else [])
        got = LF.linear_cross_entropy(x, w32, t, **{**kw, "linear_bias": b32 if bias else None})
        got_grads = _grads(got, leaves32)
        assert got.dtype == D64 and got_grads[1].dtype == torch.float32
        tol = {"rtol": 1e-6, "atol": 1e-7}  # the head's gradient is rounded to float32
    torch.testing.assert_close(got, want, **tol)
    for a, e in zip(got_grads, want_grads):
        torch.testing.assert_close(a, e.to(a.dtype), **tol)


def test_golden_case_by_hand():
    # x = (1, 0), W = [[1, 0], [0, 1], [0, 0]]: logits (1, 0, 0), target 0
    x = torch.tensor([[1.0, 0.0]], dtype=D64)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=D64)
    t = torch.tensor([0])
    lse = math.log(math.e + 2)  # 1.5514
    assert LF.linear_cross_entropy(x, w, t).item() == pytest.approx(lse - 1.0, rel=1e-12)
    # label smoothing 0.3: lse - 0.7 * z_0 - 0.3 / 3 * (1 + 0 + 0)
    got = LF.linear_cross_entropy(x, w, t, label_smoothing=0.3).item()
    assert got == pytest.approx(lse - 0.7 - 0.1, rel=1e-12)
    # z-loss 0.1 adds 0.1 * lse^2
    got = LF.linear_cross_entropy(x, w, t, z_loss=0.1).item()
    assert got == pytest.approx(lse - 1.0 + 0.1 * lse**2, rel=1e-12)
    # soft-cap 0.5: logits (0.5 tanh 2, 0, 0)
    z0 = 0.5 * math.tanh(2.0)
    got = LF.linear_cross_entropy(x, w, t, softcap=0.5).item()
    assert got == pytest.approx(math.log(math.exp(z0) + 2) - z0, rel=1e-12)
    # class weights (2, 1, 1): the mean divides by the target's weight, so one token gives lse - 1
    got = LF.linear_cross_entropy(x, w, t, weight=torch.tensor([2.0, 1.0, 1.0], dtype=D64)).item()
    assert got == pytest.approx(lse - 1.0, rel=1e-12)
    # the gradient w.r.t. the logits is softmax - onehot: dL/dx = sum_j (p_j - y_j) W_j
    xg = x.clone().requires_grad_(True)
    LF.linear_cross_entropy(xg, w, t).backward()
    p = [math.e / (math.e + 2), 1 / (math.e + 2), 1 / (math.e + 2)]
    torch.testing.assert_close(xg.grad, torch.tensor([[p[0] - 1, p[1]]], dtype=D64))


def test_return_z_loss_is_the_z_part_and_detached():
    x, w, _, _, t = _data()
    for reduction in ("mean", "sum", "none"):
        loss, z = LF.linear_cross_entropy(x, w, t, z_loss=0.01, reduction=reduction, return_z_loss=True)
        plain = LF.linear_cross_entropy(x, w, t, reduction=reduction)
        torch.testing.assert_close(loss - plain, z)
        assert not z.requires_grad and z.shape == loss.shape
    loss, z = LF.linear_cross_entropy(x, w, t, return_z_loss=True)
    assert z.item() == 0.0


# --------------------------------------------------------------------------------------------------
# torch's F.linear_cross_entropy (torch 2.13) at the extras' defaults
# --------------------------------------------------------------------------------------------------

needs_torch_lce = pytest.mark.skipif(
    not hasattr(F, "linear_cross_entropy"), reason="torch has no F.linear_cross_entropy (before 2.13)"
)


@needs_torch_lce
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 12),
    d=st.integers(1, 6),
    v=st.integers(1, 20),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    weighted=st.booleans(),
    bias=st.booleans(),
    eps=st.sampled_from([0.0, 0.0, 0.2]),
    ignored=st.floats(0.0, 0.7),
    chunked=st.sampled_from([None, 1, 4]),
    seed=st.integers(0, 2**16),
)
def test_equals_torch_linear_cross_entropy(n, d, v, reduction, weighted, bias, eps, ignored, chunked, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D64, requires_grad=True)
    w = torch.randn(v, d, generator=g, dtype=D64, requires_grad=True)
    b = torch.randn(v, generator=g, dtype=D64, requires_grad=True) if bias else None
    cw = torch.rand(v, generator=g, dtype=D64) + 0.5 if weighted else None
    t = torch.randint(0, v, (n,), generator=g)
    t[torch.rand(n, generator=g) < ignored] = -100
    # torch's chunked path (options) where it applies, its reference path otherwise
    options = None if chunked is None or eps > 0 else tnn.LinearCrossEntropyOptions(batch_chunk_size=chunked)
    want = F.linear_cross_entropy(
        x, w, t, linear_bias=b, weight=cw, reduction=reduction, label_smoothing=eps, options=options
    )
    got = LF.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction, label_smoothing=eps)
    if reduction == "mean" and not (t != -100).any():
        assert got.item() == 0.0  # the one intended difference: torch gives 0/0
        return
    leaves = [x, w] + ([b] if bias else [])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for a, e in zip(_grads(got, leaves), _grads(want, leaves)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def test_signature_shares_torch_leading_parameters():
    ours = list(inspect.signature(LF.linear_cross_entropy).parameters.values())
    if hasattr(F, "linear_cross_entropy"):
        theirs = [
            p for p in inspect.signature(F.linear_cross_entropy).parameters.values() if p.name != "options"
        ]
    else:
        theirs = ours[: len(ours) - 5]
    assert [(p.name, p.kind) for p in ours[: len(theirs)]] == [(p.name, p.kind) for p in theirs]
    defaults = {p.name: p.default for p in ours}
    for p in theirs:
        if p.name != "ignore_index":  # torch's None means -100: both are accepted here
            assert defaults[p.name] == p.default, p.name
    assert [p.name for p in ours[len(theirs) :]] == [
        "z_loss", "softcap", "chunk_size", "process_group", "return_z_loss"
    ]  # fmt: skip


def test_ignore_index_none_is_torchs_minus_100():
    x, w, _, _, t = _data()
    torch.testing.assert_close(
        LF.linear_cross_entropy(x, w, t, ignore_index=None),
        LF.linear_cross_entropy(x, w, t, ignore_index=-100),
    )


# --------------------------------------------------------------------------------------------------
# shapes, chunking, empty and all-ignored batches
# --------------------------------------------------------------------------------------------------


def test_sequence_and_unbatched_inputs():
    x, w, _, _, t = _data(n=12)
    xs, ts = x.detach().reshape(3, 4, -1).requires_grad_(True), t.reshape(3, 4)
    got = LF.linear_cross_entropy(xs, w, ts, reduction="none", label_smoothing=0.1)
    assert got.shape == (3, 4)
    torch.testing.assert_close(got, reference(xs, w, ts, reduction="none", eps=0.1))
    torch.testing.assert_close(LF.linear_cross_entropy(xs, w, ts, z_loss=0.1), reference(xs, w, ts, zl=0.1))
    one = LF.linear_cross_entropy(x[0], w, t[0], reduction="none")
    assert one.shape == ()
    torch.testing.assert_close(one, F.cross_entropy(x[0] @ w.T, t[0], reduction="none"))


@settings(max_examples=30, deadline=None)
@given(
    chunk=st.integers(1, 15),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    cap=st.sampled_from([None, 2.0]),
    seed=st.integers(0, 1000),
)
def test_chunk_size_does_not_change_the_result(chunk, reduction, cap, seed):
    x, w, b, cw, t = _data(seed=seed)
    kw = {
        "linear_bias": b,
        "weight": cw,
        "reduction": reduction,
        "label_smoothing": 0.1,
        "z_loss": 0.01,
        "softcap": cap,
    }
    whole = LF.linear_cross_entropy(x, w, t, chunk_size=100, **kw)
    got = LF.linear_cross_entropy(x, w, t, chunk_size=chunk, **kw)
    torch.testing.assert_close(got, whole, rtol=1e-12, atol=1e-13)
    for a, e in zip(_grads(got, [x, w, b]), _grads(whole, [x, w, b])):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("where", ["engine", "definition"])
def test_all_ignored_batch_gives_zero_with_a_gradient(reduction, where):
    x, w, b, cw, t = _data()
    t = torch.full_like(t, -100)
    kw = {
        "linear_bias": b,
        "weight": cw,
        "reduction": reduction,
        "label_smoothing": 0.1,
        "z_loss": 0.01,
        "softcap": 3.0,
    }
    if where == "definition":
        grads = torch.func.grad(lambda x, w: LF.linear_cross_entropy(x, w, t, **kw).sum(), argnums=(0, 1))(
            x, w
        )
        loss = LF.linear_cross_entropy(x, w, t, **kw)
    else:
        loss, z = LF.linear_cross_entropy(x, w, t, **kw, return_z_loss=True)
        assert loss.requires_grad and torch.all(z == 0)
        grads = torch.autograd.grad(loss.sum(), (x, w))
    assert torch.all(loss == 0)
    for g in grads:
        assert torch.equal(g, torch.zeros_like(g))


def test_empty_batch_and_sequence():
    _, w, _, _, _ = _data()
    for shape in [(0, 5), (2, 0, 5)]:
        e = torch.zeros(shape, dtype=D64, requires_grad=True)
        for reduction in ("mean", "sum"):
            loss = LF.linear_cross_entropy(
                e, w, torch.zeros(shape[:-1], dtype=torch.long), reduction=reduction
            )
            assert loss.item() == 0.0 and loss.requires_grad
            loss.backward()
        assert (
            LF.linear_cross_entropy(e, w, torch.zeros(shape[:-1], dtype=torch.long), reduction="none").shape
            == shape[:-1]
        )


def test_large_logits_are_finite_and_exact():
    # logits of +-1e4: no overflow in the streamed log-sum-exp, and the loss is exact (0 or the gap)
    x = torch.tensor([[100.0], [-100.0]], dtype=D64, requires_grad=True)
    w = torch.tensor([[100.0], [-100.0], [0.0]], dtype=D64, requires_grad=True)
    t = torch.tensor([0, 2])
    got = LF.linear_cross_entropy(x, w, t, reduction="none", chunk_size=1)
    torch.testing.assert_close(got, reference(x, w, t, reduction="none"))
    torch.testing.assert_close(got[1], torch.tensor(1e4, dtype=D64))
    gx, gw = torch.autograd.grad(got.sum(), (x, w))
    rx, rw = torch.autograd.grad(reference(x, w, t, reduction="none").sum(), (x, w))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


def test_nan_in_input_gives_nan_out():
    x, w, _, _, t = _data()
    t[0] = 2
    x = x.detach().clone()
    x[0, 0] = float("nan")
    for reduction in ("mean", "sum"):
        assert torch.isnan(LF.linear_cross_entropy(x, w, t, reduction=reduction))
    assert torch.isnan(LF.linear_cross_entropy(x, w, t, reduction="none")[0])


# --------------------------------------------------------------------------------------------------
# the engine's schedules directly: row chunks (gradients in forward) and recomputed blocks
# --------------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    budget_rows=st.integers(1, 10),
    chunk=st.integers(1, 14),
    cap=st.sampled_from([None, 2.5]),
    seed=st.integers(0, 999),
)
def test_row_chunks_of_the_forward_gradients_equal_the_definition(budget_rows, chunk, cap, seed):
    # the head's gradient accumulated over 1..9 row chunks
    x, w, b, cw, t = _data(seed=seed)
    pos = torch.where(t != -100, t, -1)
    counted = (t != -100).to(D64)
    w_t = cw[t.clamp_min(0)]

    def row_loss(lse, v_t, s, r):
        z_t = v_t if cap is None else cap * torch.tanh(v_t / cap)
        ce = 0.9 * w_t[r] * (lse - z_t) + 0.1 / 13 * (cw.sum() * lse - s)
        return counted[r] * (ce + 0.01 * lse**2)

    total, lse = streaming.softmax_loss(
        x, w, pos, row_loss, bias=b, softcap=cap, with_sum=True, sum_weight=cw, chunk_size=chunk,
        budget=budget_rows * 13 * 8,
    )  # fmt: skip
    want = reference(x, w, t, b=b, cw=cw, reduction="sum", eps=0.1, zl=0.01, cap=cap)
    torch.testing.assert_close(total, want)
    for a, e in zip(torch.autograd.grad(total, (x, w, b)), torch.autograd.grad(want, (x, w, b))):
        torch.testing.assert_close(a, e)
    z = F.linear(x, w, b)
    z = z if cap is None else cap * torch.tanh(z / cap)
    torch.testing.assert_close(lse, torch.logsumexp(z, dim=1).detach())


def test_recomputed_blocks_with_class_weighted_logit_sums():
    x, w, b, cw, t = _data()
    pos = torch.where(t != -100, t, -1)
    for keep in (0, 10**9):  # every block recomputed in backward, or every block kept
        lse, _, s = streaming.softmax_stats(
            x, w, pos, bias=b, softcap=2.0, with_sum=True, sum_weight=cw, chunk_size=3, keep_budget=keep
        )
        z = 2.0 * torch.tanh(F.linear(x, w, b) / 2.0)
        want = (torch.logsumexp(z, dim=1), z @ cw)
        torch.testing.assert_close(lse, want[0])
        torch.testing.assert_close(s, want[1])
        coef = torch.randn(2, x.shape[0], dtype=D64)
        got = torch.autograd.grad((coef[0] * lse + coef[1] * s).sum(), (x, w, b))
        ref = torch.autograd.grad((coef[0] * want[0] + coef[1] * want[1]).sum(), (x, w, b))
        for a, e in zip(got, ref):
            torch.testing.assert_close(a, e)


def test_second_backward_through_one_call_recomputes():
    x, w, b, _, t = _data()
    loss = LF.linear_cross_entropy(x, w, t, linear_bias=b, z_loss=0.01)
    first = torch.autograd.grad(loss, (x, w, b), retain_graph=True)
    second = torch.autograd.grad(3.0 * loss, (x, w, b))
    for a, e in zip(first, second):
        torch.testing.assert_close(3.0 * a, e)


class _LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, tuple | list) else (out,):
            if isinstance(o, torch.Tensor):
                self.largest = max(self.largest, o.numel())
        return out


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_never_makes_a_tensor_of_the_logits_size(reduction):
    # meta tensors: shapes only. 8192 tokens x 65536 classes: the logits would be 2 GiB in float32
    n, d, v = 8192, 64, 65536
    x = torch.empty(n, d, device="meta", requires_grad=True)
    w = torch.empty(v, d, device="meta", requires_grad=True)
    t = torch.zeros(n, dtype=torch.long, device="meta")
    mode = _LargestTensor()
    with mode:
        loss = LF.linear_cross_entropy(x, w, t, reduction=reduction, label_smoothing=0.1, z_loss=1e-4)
        loss.sum().backward()
    assert mode.largest <= max(v * d, streaming.KEEP_BUDGET // 4), mode.largest  # the head's gradient
    assert mode.largest < n * v // 8


# --------------------------------------------------------------------------------------------------
# gradcheck, second derivatives, torch.func
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck(reduction):
    x, w, b, cw, t = _data(n=6, d=3, v=7)

    def f(x, w, b):
        return LF.linear_cross_entropy(
            x, w, t, linear_bias=b, weight=cw, reduction=reduction, label_smoothing=0.1, z_loss=0.05,
            softcap=2.0, chunk_size=3,
        )  # fmt: skip

    assert torch.autograd.gradcheck(f, (x, w, b))


def test_second_derivatives_of_the_definition():
    x, w, _, cw, t = _data(n=5, d=3, v=6)
    kw = {"weight": cw, "label_smoothing": 0.1, "z_loss": 0.05, "softcap": 2.0}
    got = torch.func.hessian(lambda x: LF.linear_cross_entropy(x, w, t, **kw))(x.detach())
    want = torch.func.hessian(lambda x: reference(x, w, t, cw=cw, eps=0.1, zl=0.05, cap=2.0))(x.detach())
    torch.testing.assert_close(got, want)
    # in eager autograd the engines' backwards are not differentiable: a clear error, not a wrong value
    xb, wb, _, cwb, tb = _data(n=3 * streaming.PRECOMPUTE_ROWS // 2 + 6, d=3, v=6)  # row-chunk engine
    kwb = dict(kw, weight=cwb)
    with pytest.raises(RuntimeError, match=r"no second derivatives.*torch\.func"):
        torch.autograd.grad(LF.linear_cross_entropy(xb, wb, tb, **kwb), xb, create_graph=True)
    loss = LF.linear_cross_entropy(x, w, t, reduction="none", **kw)  # the recomputing engine
    (gx,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gx.sum().backward()


@pytest.mark.parametrize(
    "n, engine", [(9, "softmax_stats"), (3 * streaming.PRECOMPUTE_ROWS // 2 + 6, "softmax_loss")]
)
@pytest.mark.parametrize("scale, cap", [(1.0, 3.0), (40.0, None)])  # logits to about +-150, uncapped
def test_engine_choice_by_rows_per_chunk(monkeypatch, n, engine, scale, cap):
    # 'mean' on one process: row chunks with gradients in forward when a chunk holds at least
    # PRECOMPUTE_ROWS counted tokens, else one recomputing pass over all rows; both are the definition.
    calls = []
    for name in ("softmax_loss", "softmax_stats"):
        real = getattr(streaming, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(streaming, name, spy)
    x, w, b, cw, t = _data(n=n, d=4, v=11)
    x = (x.detach() * scale).requires_grad_(True)
    kw = {"linear_bias": b, "weight": cw, "label_smoothing": 0.1, "z_loss": 0.01, "softcap": cap}
    got = LF.linear_cross_entropy(x, w, t, **kw)
    assert calls == [engine]
    want = reference(x, w, t, b=b, cw=cw, eps=0.1, zl=0.01, cap=cap)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(_grads(got, [x, w, b]), _grads(want, [x, w, b]))


@given(
    rows=st.integers(0, 5000),
    classes=st.integers(1, 300_000),
    budget=st.sampled_from([1, 1000, 2**20, streaming.ROW_BUDGET]),
)
def test_row_chunks_are_balanced_and_within_the_budget(rows, classes, budget):
    k = streaming.row_chunk(rows, classes, torch.float32, budget)
    line = 4 * classes
    cap = streaming.row_budget(rows, classes, torch.float32, budget)
    assert cap <= budget and 1 <= k
    most = max(1, cap // line)
    assert k <= most  # a chunk fits the budget (one row at least)
    chunks = -(-max(rows, 1) // k)
    assert chunks == -(-max(rows, 1) // most)  # no more chunks than the budget needs
    assert rows == 0 or chunks * k - rows < chunks  # balanced: the last chunk is short by < chunks rows


def test_vmap_over_hidden_states_equals_a_loop():
    x, w, b, _, t = _data()
    xs = torch.randn(3, *x.shape, dtype=D64)
    got = torch.func.vmap(
        lambda x: LF.linear_cross_entropy(x, w, t, linear_bias=b, z_loss=0.01, softcap=3.0)
    )(xs)
    want = torch.stack(
        [LF.linear_cross_entropy(xi, w, t, linear_bias=b, z_loss=0.01, softcap=3.0) for xi in xs]
    )
    torch.testing.assert_close(got, want)


def test_compile_fullgraph_every_option():
    torch._dynamo.reset()
    x, w, b, cw, t = _data(dtype=torch.float32)
    kw = {"linear_bias": b, "weight": cw, "label_smoothing": 0.1, "z_loss": 0.01, "softcap": 3.0}
    compiled = torch.compile(lambda x, w: LF.linear_cross_entropy(x, w, t, **kw), fullgraph=True)
    got = compiled(x, w)
    want = LF.linear_cross_entropy(x, w, t, **kw)
    torch.testing.assert_close(got, want)
    for a, e in zip(torch.autograd.grad(got, (x, w)), torch.autograd.grad(want, (x, w))):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# low precision: Cut Cross-Entropy's criterion, errors against float64 no worse than eager
# --------------------------------------------------------------------------------------------------


def _rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("targets", ["uniform", "frequent"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_errors_no_worse_than_eager(dtype, targets, device):
    g = torch.Generator().manual_seed(0)
    n, d, v = 256, 64, 4000
    x64 = torch.randn(n, d, generator=g, dtype=D64)
    w64 = torch.randn(v, d, generator=g, dtype=D64) * 0.3
    t = torch.randint(0, v, (n,), generator=g)
    if targets == "frequent":  # three tokens in four are one class (a frequent word): its gradient row
        t[: 3 * n // 4] = 7  # sums many target terms, which must not be accumulated in low precision
        x64 = x64 * 0.1 + 1.0
    t[::5] = -100
    xq, wq, t = x64.to(dtype).to(device), w64.to(dtype).to(device), t.to(device)
    x_ref, w_ref = xq.double().cpu().requires_grad_(True), wq.double().cpu().requires_grad_(True)
    ref = F.cross_entropy(x_ref @ w_ref.T, t.cpu())  # the same (rounded) inputs, in float64
    rx, rw = torch.autograd.grad(ref, (x_ref, w_ref))
    errors = {}
    for name in ("eager", "losskit"):
        xi, wi = xq.clone().requires_grad_(True), wq.clone().requires_grad_(True)
        loss = F.cross_entropy(xi @ wi.T, t) if name == "eager" else LF.linear_cross_entropy(xi, wi, t)
        gx, gw = torch.autograd.grad(loss, (xi, wi))
        assert loss.dtype == gx.dtype == gw.dtype == dtype
        loss, gx, gw = loss.cpu(), gx.cpu(), gw.cpu()
        errors[name] = (
            abs(loss.double().item() - ref.item()) / ref.item(),
            _rel(gx, rx),
            _rel(gw, rw),
            _rel(gw[7], rw[7]),
        )
    for ours, theirs in zip(errors["losskit"], errors["eager"]):
        assert ours <= theirs, errors
    # the head's gradient is accumulated in float32 over all tokens and rounded once: its error is the
    # rounding of the result, at most half an ulp (eps / 2 relative) per element
    assert errors["losskit"][2] < torch.finfo(dtype).eps, errors


def test_float32_master_head_with_low_precision_hidden_states():
    # autocast-style training: bfloat16 activations, float32 head; computed in float32
    x, w, _, _, t = _data(dtype=torch.float32)
    xb = x.detach().bfloat16().requires_grad_(True)
    got = LF.linear_cross_entropy(xb, w, t, z_loss=0.01)
    assert got.dtype == torch.bfloat16
    want = reference(xb.detach().double(), w.detach().double(), t, zl=0.01)
    torch.testing.assert_close(got.double(), want, rtol=1e-2, atol=1e-2)
    got.backward()
    assert xb.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LF.linear_cross_entropy(xb, w, t)
    assert out.dtype == torch.float32


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------

_x, _w, _b, _cw, _t = _data()


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"input": _x[:, :3]}, ValueError, r"expected input of shape \(\.\.\., 5\)"),
        ({"linear_weight": _w[None]}, ValueError, r"expected linear_weight of shape \(V, D\).*K-dimensional"),
        ({"linear_weight": _w[:0]}, ValueError, r"at least one class"),
        ({"target": _t[:4]}, ValueError, r"expected target of shape \(9,\)"),
        ({"target": torch.rand(9, 13)}, TypeError, r"probability targets are not supported"),
        ({"target": _t.bool()}, TypeError, r"target must be an integer tensor"),
        ({"input": _x.long()}, TypeError, r"input must be a floating-point tensor"),
        ({"target": torch.full((9,), 13)}, ValueError, r"class indices in \[0, 13\) or -100; got 9 outside"),
        ({"linear_bias": _b[:4]}, ValueError, r"expected linear_bias of shape \(V,\) = \(13,\)"),
        ({"weight": _cw[:4]}, ValueError, r"expected per-class weight of shape \(13,\)"),
        ({"weight": torch.ones(13, dtype=torch.long)}, TypeError, r"weight must be a floating-point"),
        ({"reduction": "avg"}, ValueError, r"reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
        ({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0.0, 1.0\]"),
        ({"z_loss": -1.0}, ValueError, r"z_loss must be a finite number >= 0"),
        ({"softcap": 0.0}, ValueError, r"softcap must be a finite number > 0"),
        ({"chunk_size": 0}, ValueError, r"chunk_size must be >= 1"),
        ({"ignore_index": 1.5}, TypeError, r"ignore_index must be an int or None"),
        ({"return_z_loss": 1}, TypeError, r"return_z_loss must be a bool"),
        ({"linear_weight": _w.detach().to("meta")}, ValueError, r"linear_weight on meta"),
    ],
)
def test_errors_name_the_function_and_argument(kwargs, err, match):
    args = {"input": _x, "linear_weight": _w, "target": _t, **kwargs}
    with pytest.raises(err, match=f"^{FN}: .*" + match):
        LF.linear_cross_entropy(**args)


def test_process_group_under_torch_func_is_a_clear_error():
    with pytest.raises(ValueError, match=r"process_group is not supported under torch\.func"):
        torch.func.grad(lambda x: LF.linear_cross_entropy(x, _w, _t, process_group=object()))(_x.detach())


# --------------------------------------------------------------------------------------------------
# the Module: torch's constructor arguments and state
# --------------------------------------------------------------------------------------------------


def test_module_owns_the_head_and_equals_the_function():
    torch.manual_seed(0)
    m = LN.LinearCrossEntropyLoss(
        5, 13, bias=True, weight=_cw, label_smoothing=0.1, z_loss=0.01, softcap=3.0, dtype=D64
    )
    assert m.linear.weight.shape == (13, 5) and m.linear.bias.shape == (13,) and m.class_offset == 0
    got, z = m(_x, _t, return_z_loss=True)
    want = LF.linear_cross_entropy(
        _x, m.linear.weight, _t, linear_bias=m.linear.bias, weight=_cw, label_smoothing=0.1, z_loss=0.01,
        softcap=3.0, return_z_loss=True,
    )  # fmt: skip
    torch.testing.assert_close(got, want[0])
    torch.testing.assert_close(z, want[1])
    got.backward()
    assert m.linear.weight.grad is not None and m.linear.bias.grad is not None


@pytest.mark.skipif(not hasattr(tnn, "LinearCrossEntropyLoss"), reason="torch has no LinearCrossEntropyLoss")
def test_module_loads_torchs_state_and_matches_its_loss():
    torch.manual_seed(0)
    theirs = tnn.LinearCrossEntropyLoss(5, 13, bias=True, weight=_cw.float(), label_smoothing=0.1)
    ours = LN.LinearCrossEntropyLoss(5, 13, bias=True, weight=_cw.float(), label_smoothing=0.1)
    assert set(ours.state_dict()) == set(theirs.state_dict()) == {"weight", "linear.weight", "linear.bias"}
    ours.load_state_dict(theirs.state_dict())
    x = _x.detach().float()
    torch.testing.assert_close(ours(x, _t), theirs(x, _t))
    shared = [p for p in inspect.signature(tnn.LinearCrossEntropyLoss.__init__).parameters.values()]
    mine = inspect.signature(LN.LinearCrossEntropyLoss.__init__).parameters
    for p in shared:
        if p.name in ("out_features", "options"):  # K-dimensional heads and torch's chunking options
            continue
        assert p.name in mine and mine[p.name].kind == p.kind, p.name
        if p.name != "ignore_index":
            assert mine[p.name].default == p.default, p.name


def test_module_initialises_as_nn_linear():
    torch.manual_seed(7)
    ours = LN.LinearCrossEntropyLoss(5, 13, bias=True)
    torch.manual_seed(7)
    lin = tnn.Linear(5, 13, bias=True)
    torch.testing.assert_close(ours.linear.weight, lin.weight)
    torch.testing.assert_close(ours.linear.bias, lin.bias)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"in_features": 0}, ValueError, r"in_features must be >= 1"),
        ({"weight": torch.ones(4)}, ValueError, r"expected per-class weight of shape \(13,\)"),
        ({"reduction": "avg"}, ValueError, r"reduction must be"),
        ({"label_smoothing": -0.1}, ValueError, r"label_smoothing must be in"),
        ({"softcap": -1.0}, ValueError, r"softcap must be"),
        ({"z_loss": float("inf")}, ValueError, r"z_loss must be a finite number"),
    ],
)
def test_module_errors_name_the_module(kwargs, err, match):
    args = {"in_features": 5, "num_classes": 13, **kwargs}
    with pytest.raises(err, match="^LinearCrossEntropyLoss: " + match):
        LN.LinearCrossEntropyLoss(**args)


def test_module_forward_errors_name_the_module():
    m = LN.LinearCrossEntropyLoss(5, 13)
    with pytest.raises(ValueError, match=r"^LinearCrossEntropyLoss: expected input of shape \(\.\.\., 5\)"):
        m(torch.randn(3, 4), torch.zeros(3, dtype=torch.long))
