"""The contrastive family: NT-Xent, SupCon, CLIP, SigLIP.

Golden cases derived by hand, float64 references written from the papers (``references_contrastive``),
Hypothesis properties, gradcheck/gradgradcheck, the chunked kernel against the definition at the hard
cases, its bounded workspace, and every error message. The contract table covers dtypes, devices,
``meta``, ``torch.func``, ``torch.compile``, autocast, NaN and the empty batch; the peers' parity is
in ``test_parity_contrastive.py``; the cross-rank forms in ``test_distributed_contrastive.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import losskit.functional as LF
import losskit.nn as LN
import references_contrastive as R

E = math.e
F64 = torch.float64


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _batch(n: int, d: int, labels: int, seed: int, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64).to(dtype)
    y = torch.randint(0, labels, (n,), generator=g)
    return x, y


def _pairs(n: int, d: int, seed: int, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g, dtype=F64), dim=1)
    y = F.normalize(x + 0.7 * torch.randn(n, d, generator=g, dtype=F64), dim=1)
    return x.to(dtype), y.to(dtype)


# the four losses behind one calling convention: (inputs, reduction, **options) -> loss
def nt_xent(d, r="mean", **kw):
    return LF.nt_xent_loss(d["x"], d["labels"], temperature=d.get("t", 0.5), reduction=r, **kw)


def supcon(d, r="mean", **kw):
    t = d.get("t", 0.5)
    return LF.supcon_loss(
        d["x"], d["labels"], temperature=t, base_temperature=d.get("tb", t), reduction=r, **kw
    )


def clip(d, r="mean", **kw):
    return LF.clip_loss(d["x"], d["y"], logit_scale=d["s"], reduction=r, **kw)


def siglip(d, r="mean", **kw):
    return LF.siglip_loss(d["x"], d["y"], logit_scale=d["s"], logit_bias=d["b"], reduction=r, **kw)


LOSSES = {"nt_xent": nt_xent, "supcon": supcon, "clip": clip, "siglip": siglip}
GRAD_KEYS = {"nt_xent": ("x",), "supcon": ("x",), "clip": ("x", "y", "s"), "siglip": ("x", "y", "s", "b")}


def _inputs(kind: str, n: int, seed: int, dtype=F64, d: int = 5) -> dict:
    if kind in ("nt_xent", "supcon"):
        x, labels = _batch(n, d, max(1, n // 3), seed, dtype)
        return {"x": x, "labels": labels}
    x, y = _pairs(n, d, seed, dtype)
    g = torch.Generator().manual_seed(seed + 1)
    s = (2.0 + 10 * torch.rand((), generator=g, dtype=F64)).to(dtype)
    b = (-3.0 * torch.rand((), generator=g, dtype=F64)).to(dtype)
    return {"x": x, "y": y, "s": s, "b": b}


def _with_grad(kind: str, d: dict) -> dict:
    return {k: _leaf(v) if k in GRAD_KEYS[kind] else v for k, v in d.items()}


def _value_and_grads(kind: str, d: dict, r: str = "mean", **kw):
    """Eager autograd (the kernel): the loss and the gradient of ``sum(loss * coef)`` per grad key."""
    leaves = _with_grad(kind, d)
    loss = LOSSES[kind](leaves, r, **kw)
    coef = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    keys = GRAD_KEYS[kind]
    grads = torch.autograd.grad((loss * coef).sum(), [leaves[k] for k in keys])
    return loss.detach(), dict(zip(keys, grads))


def _definition_value_and_grads(kind: str, d: dict, r: str = "mean", **kw):
    """The same through torch.func (the definition's path)."""
    keys = GRAD_KEYS[kind]

    def f(*values):
        loss = LOSSES[kind]({**d, **dict(zip(keys, values))}, r, **kw)
        coef = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
        return (loss * coef).sum(), loss

    grads, loss = torch.func.grad(f, argnums=tuple(range(len(keys))), has_aux=True)(*[d[k] for k in keys])
    return loss, dict(zip(keys, grads))


# --------------------------------------------------------------------------------------------------
# golden cases, derived by hand
# --------------------------------------------------------------------------------------------------


def test_nt_xent_golden_two_views():
    # unit rows e1, e1, e2, e2 (norms 1, 2, 1, 3): each anchor's positive has s = 1, its two negatives
    # s = 0; at t = 1 every pair costs -log(e / (e + 2)) = log(1 + 2/e)
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]], dtype=F64)
    labels = torch.tensor([0, 0, 1, 1])
    want = math.log(1 + 2 / E)
    rows = LF.nt_xent_loss(x, labels, temperature=1.0, reduction="none")
    torch.testing.assert_close(rows, torch.full((4,), want, dtype=F64), rtol=1e-12, atol=0)
    assert LF.nt_xent_loss(x, labels, temperature=1.0).item() == pytest.approx(want, rel=1e-12)
    assert LF.nt_xent_loss(x, labels, temperature=1.0, reduction="sum").item() == pytest.approx(4 * want)


def test_three_views_nt_xent_excludes_other_positives_supcon_includes_them():
    # e1 three times (label 0) and e2 once (label 1), t = 1.
    # NT-Xent: each of the 6 ordered positive pairs has s = 1 against one negative s = 0:
    #   -log(e / (e + 1)) = log(1 + 1/e); an anchor sums its two pairs; the lone row has none.
    # SupCon: anchor 0 normalises over {1, 2, 3} (s = 1, 1, 0): log(2e + 1) - 1 for each positive,
    #   averaged over its 2 positives; the lone row has no positive (0, not in the mean).
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=F64)
    labels = torch.tensor([0, 0, 0, 1])
    pair = math.log(1 + 1 / E)
    got = LF.nt_xent_loss(x, labels, temperature=1.0, reduction="none")
    torch.testing.assert_close(got, torch.tensor([2 * pair] * 3 + [0.0], dtype=F64), rtol=1e-12, atol=1e-15)
    assert LF.nt_xent_loss(x, labels, temperature=1.0).item() == pytest.approx(pair, rel=1e-12)
    anchor = math.log(2 * E + 1) - 1
    got = LF.supcon_loss(x, labels, temperature=1.0, base_temperature=1.0, reduction="none")
    torch.testing.assert_close(got, torch.tensor([anchor] * 3 + [0.0], dtype=F64), rtol=1e-12, atol=1e-15)
    mean = LF.supcon_loss(x, labels, temperature=1.0, base_temperature=1.0)
    assert mean.item() == pytest.approx(anchor, rel=1e-12)  # divided by 3 anchors, not 4
    # SupContrast's factor t / t_b scales the loss linearly
    scaled = LF.supcon_loss(x, labels, temperature=1.0, base_temperature=4.0)
    assert scaled.item() == pytest.approx(anchor / 4, rel=1e-12)


def test_clip_golden():
    # images e1, e2; texts e1, e1; t = 2: logits [[2, 2], [0, 0]].
    # image 0: -log(e^2 / 2e^2) = log 2; image 1: log 2 (row of zeros).
    # text 0 (column [2, 0], target 2): log(1 + e^-2); text 1 (column [2, 0], target 0): log(1 + e^2).
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64)
    want = [0.5 * (math.log(2) + math.log1p(E**-2)), 0.5 * (math.log(2) + math.log1p(E**2))]
    got = LF.clip_loss(x, y, logit_scale=2.0, reduction="none")
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-12, atol=0)
    got = LF.clip_loss(x, y, logit_scale=torch.tensor(2.0, dtype=F64))
    assert got.item() == pytest.approx(sum(want) / 2, rel=1e-12)


def test_siglip_golden():
    # x = y = I, t = 2, b = -1: diagonal logits 1 (z = +1), off-diagonal -1 (z = -1): every one of the
    # four terms is -log sigmoid(1) = log(1 + 1/e); each image sums two, the mean divides by N = 2.
    x = torch.eye(2, dtype=F64)
    term = math.log1p(1 / E)
    got = LF.siglip_loss(x, x, logit_scale=2.0, logit_bias=-1.0, reduction="none")
    torch.testing.assert_close(got, torch.full((2,), 2 * term, dtype=F64), rtol=1e-12, atol=0)
    assert LF.siglip_loss(x, x, logit_scale=2.0, logit_bias=-1.0).item() == pytest.approx(2 * term, rel=1e-12)


def test_single_pair_and_single_row():
    x = torch.tensor([[0.6, 0.8]], dtype=F64)
    y = torch.tensor([[0.8, 0.6]], dtype=F64)
    # one pair: CLIP's softmaxes have one entry each, loss 0; SigLIP: -log sigmoid(t x.y + b)
    assert LF.clip_loss(x, y, logit_scale=5.0).item() == 0.0
    want = -math.log(1 / (1 + math.exp(-(3.0 * 0.96 - 1.0))))
    assert LF.siglip_loss(x, y, logit_scale=3.0, logit_bias=-1.0).item() == pytest.approx(want, rel=1e-12)
    # one row has no positive: 0, and 'mean' divides by nothing
    for fn in (LF.nt_xent_loss, LF.supcon_loss):
        for r in ("mean", "sum", "none"):
            out = fn(_leaf(x), torch.tensor([3]), reduction=r)
            assert torch.equal(out, torch.zeros_like(out))


# --------------------------------------------------------------------------------------------------
# the float64 references, and the definition against the kernel
# --------------------------------------------------------------------------------------------------


def _reference_rows(kind: str, d: dict) -> tuple[list[float], float]:
    """(per-row reference, the divisor of 'mean')."""
    x = d["x"].tolist()
    if kind == "nt_xent":
        rows, pairs = R.nt_xent(x, d["labels"].tolist(), d.get("t", 0.5))
        return rows, pairs
    if kind == "supcon":
        t = d.get("t", 0.5)
        rows, anchors = R.supcon(x, d["labels"].tolist(), t, d.get("tb", t))
        return rows, anchors
    y, s = d["y"].tolist(), float(d["s"])
    if kind == "clip":
        return R.clip(x, y, s), len(x)
    return R.siglip(x, y, s, float(d["b"])), len(x)


@pytest.mark.parametrize("kind", LOSSES)
@settings(max_examples=25)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16), chunk=st.sampled_from([None, 1, 3]))
def test_matches_reference(kind, n, seed, chunk):
    d = _inputs(kind, n, seed)
    want, divisor = _reference_rows(kind, d)
    got = LOSSES[kind](d, "none", chunk_size=chunk)
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-10, atol=1e-12)
    total = math.fsum(want)
    mean = total / divisor if divisor else 0.0
    assert LOSSES[kind](d, "sum", chunk_size=chunk).item() == pytest.approx(total, rel=1e-10, abs=1e-12)
    assert LOSSES[kind](d, "mean", chunk_size=chunk).item() == pytest.approx(mean, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@settings(max_examples=15)
@given(n=st.integers(1, 10), seed=st.integers(0, 2**16), chunk=st.sampled_from([None, 1, 2, 4]))
def test_kernel_equals_definition_value_and_gradients(kind, reduction, n, seed, chunk):
    d = _inputs(kind, n, seed)
    got, got_grads = _value_and_grads(kind, d, reduction, chunk_size=chunk)
    want, want_grads = _definition_value_and_grads(kind, d, reduction)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for key in want_grads:
        torch.testing.assert_close(got_grads[key], want_grads[key], rtol=1e-10, atol=1e-12)


def _graph(loss: torch.Tensor) -> set[str]:
    names, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.add(type(node).__name__)
            stack.extend(n for n, _ in node.next_functions)
    return names


def test_eager_autograd_takes_the_kernel_and_torch_func_the_definition():
    d = _with_grad("clip", _inputs("clip", 6, 0))
    assert "_SummedBackward" in _graph(clip(d, "mean"))
    assert "_RowsBackward" in _graph(clip(d, "none"))
    assert "LogsumexpBackward0" not in _graph(clip(d, "mean"))
    with torch.no_grad():  # inference: the kernel without the gradient sweep
        assert clip(d, "mean").grad_fn is None
    plain = {k: v.detach() for k, v in d.items()}
    jac = torch.func.jacrev(lambda x: clip({**plain, "x": x}, "none"))(plain["x"])
    assert jac.shape == (6, 6, 5)


def _hard(kind: str, dtype=torch.float32) -> dict:
    """Logits of +-100 and cosines of exactly +-1: identical, opposite and orthogonal rows."""
    base = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    if kind in ("nt_xent", "supcon"):
        x = torch.cat([base, base, -base, 2 * base])  # cos = 1 with the positives, -1 and 0 otherwise
        labels = torch.tensor([0, 1, 2] * 4)
        return {"x": x.to(dtype), "labels": labels, "t": 0.01, "tb": 0.07}
    x = torch.cat([base, -base])
    y = torch.cat([base, base])  # text i of the second half is the opposite of its image
    s = torch.tensor(100.0, dtype=F64).to(dtype)
    return {"x": x.to(dtype), "y": y.to(dtype), "s": s, "b": torch.tensor(-10.0, dtype=F64).to(dtype)}


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("chunk", [None, 2])
def test_kernel_is_finite_and_no_less_accurate_than_the_definition_at_the_hard_cases(kind, reduction, chunk):
    d32 = _hard(kind)
    d64 = {
        k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in d32.items()
    }
    ref, ref_grads = _definition_value_and_grads(kind, d64, reduction)
    kernel, kernel_grads = _value_and_grads(kind, d32, reduction, chunk_size=chunk)
    definition, definition_grads = _definition_value_and_grads(kind, d32, reduction)
    assert torch.isfinite(kernel).all()
    eps = torch.finfo(torch.float32).eps

    def err(a, b):
        return (a.double() - b).abs().max().item()

    def allowed(a_def, ref_t):
        # never less accurate than the definition, up to a few float32 roundings of the reference
        return 2 * err(a_def, ref_t) + 8 * eps * max(1.0, ref_t.abs().max().item())

    assert err(kernel, ref) <= allowed(definition, ref)
    for key, g in kernel_grads.items():
        assert torch.isfinite(g).all(), key
        assert err(g, ref_grads[key]) <= allowed(definition_grads[key], ref_grads[key]), key


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(kind, dtype):
    d = _inputs(kind, 8, 3, dtype)
    got = LOSSES[kind](d, "none", chunk_size=3)
    assert got.dtype == dtype
    d32 = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in d.items()}
    want = LOSSES[kind](d32, "none").to(dtype)  # same inputs, float32 all through, rounded once
    torch.testing.assert_close(got, want, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOSSES)
@settings(max_examples=20)
@given(n=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_invariant_to_a_permutation_of_the_batch(kind, n, seed):
    d = _inputs(kind, n, seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    moved = {k: v[perm] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in d.items()}
    torch.testing.assert_close(
        LOSSES[kind](moved, "none"), LOSSES[kind](d, "none")[perm], rtol=1e-12, atol=1e-13
    )
    for r in ("mean", "sum"):
        torch.testing.assert_close(LOSSES[kind](moved, r), LOSSES[kind](d, r), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", LOSSES)
@settings(max_examples=15)
@given(n=st.integers(1, 16), seed=st.integers(0, 2**16), chunk=st.integers(1, 17))
def test_chunk_size_changes_nothing_beyond_rounding(kind, n, seed, chunk):
    d = _inputs(kind, n, seed, torch.float32)
    for r in ("none", "sum"):
        whole, whole_grads = _value_and_grads(kind, d, r)
        got, grads = _value_and_grads(kind, d, r, chunk_size=chunk)
        torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-6)
        for key in grads:
            torch.testing.assert_close(grads[key], whole_grads[key], rtol=1e-5, atol=1e-6)


@settings(max_examples=20)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**16), k=st.floats(0.1, 10.0))
def test_temperature_and_scale_properties(n, seed, k):
    # the logit scale multiplies the logits: scaling one side of the features by k is the same
    d = _inputs("clip", n, seed)
    torch.testing.assert_close(clip({**d, "x": d["x"] * k}, "none"), clip({**d, "s": d["s"] * k}, "none"))
    torch.testing.assert_close(siglip({**d, "x": d["x"] * k}, "none"), siglip({**d, "s": d["s"] * k}, "none"))
    # cosine similarities: the scale of a row does not matter
    d = _inputs("nt_xent", n, seed)
    scaled = {**d, "x": d["x"] * k}
    torch.testing.assert_close(nt_xent(scaled, "none"), nt_xent(d, "none"))
    torch.testing.assert_close(supcon(scaled, "none"), supcon(d, "none"))
    # SupCon's base temperature only rescales: L(t, t_b) t_b does not depend on t_b
    torch.testing.assert_close(supcon({**d, "tb": k}, "none") * k, supcon({**d, "tb": 1.0}, "none"))


@settings(max_examples=20)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**16), t=st.floats(0.05, 2.0))
def test_with_two_views_nt_xent_is_supcon(n, seed, t):
    # two rows per label: SupCon's one positive and its denominator (positive + negatives) are NT-Xent's
    x, _ = _batch(2 * n, 4, 1, seed)
    labels = torch.arange(2 * n) // 2
    torch.testing.assert_close(
        LF.nt_xent_loss(x, labels, temperature=t, reduction="none"),
        LF.supcon_loss(x, labels, temperature=t, base_temperature=t, reduction="none"),
    )


@pytest.mark.parametrize("kind", LOSSES)
@settings(max_examples=20)
@given(n=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_nonnegative_and_reductions_agree(kind, n, seed):
    d = _inputs(kind, n, seed)
    none = LOSSES[kind](d, "none")
    assert (none >= 0).all()
    torch.testing.assert_close(LOSSES[kind](d, "sum"), none.sum())
    divisor = _reference_rows(kind, d)[1]
    want = none.sum() / divisor if divisor else none.sum()
    torch.testing.assert_close(LOSSES[kind](d, "mean"), want)


@pytest.mark.parametrize("kind", LOSSES)
def test_weight_multiplies_each_row_and_mean_keeps_its_divisor(kind):
    d = _inputs(kind, 9, 5)
    w = torch.linspace(0.0, 2.0, 9, dtype=F64)
    none = LOSSES[kind](d, "none")
    torch.testing.assert_close(LOSSES[kind](d, "none", weight=w), none * w)
    torch.testing.assert_close(LOSSES[kind](d, "sum", weight=w), (none * w).sum())
    divisor = _reference_rows(kind, d)[1]
    torch.testing.assert_close(LOSSES[kind](d, "mean", weight=w), (none * w).sum() / divisor)
    # a weight that requires grad receives d loss / d w_i = L_i (summed mode, kernel and definition)
    wl = _leaf(w)
    (grad,) = torch.autograd.grad(LOSSES[kind](d, "sum", weight=wl), wl)
    torch.testing.assert_close(grad, none)


# --------------------------------------------------------------------------------------------------
# edge cases: no positives, no negatives, extreme logits, labels as identities
# --------------------------------------------------------------------------------------------------


def test_no_negative_anywhere():
    # every row the same label: NT-Xent's pairs cost 0 (nothing to contrast) with zero gradient, and
    # still count in the mean; SupCon's L_out stays defined (log |P| at equal similarities)
    x = _leaf(torch.randn(5, 3, dtype=F64))
    labels = torch.zeros(5, dtype=torch.long)
    for chunk in (None, 2):
        loss = LF.nt_xent_loss(x, labels, chunk_size=chunk)
        (grad,) = torch.autograd.grad(loss, x)
        assert loss.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))
    same = torch.ones(4, 3, dtype=F64)
    got = LF.supcon_loss(same, torch.zeros(4, dtype=torch.long), temperature=1.0, base_temperature=1.0)
    assert got.item() == pytest.approx(math.log(3), rel=1e-12)  # 3 positives of equal similarity


@pytest.mark.parametrize("chunk", [None, 1])
def test_no_positive_anywhere_gives_zero_with_a_gradient(chunk):
    x = _leaf(torch.randn(6, 3, dtype=F64))
    labels = torch.arange(6)
    for fn in (LF.nt_xent_loss, LF.supcon_loss):
        loss = fn(x, labels, chunk_size=chunk)
        assert loss.item() == 0.0 and loss.requires_grad
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.equal(grad, torch.zeros_like(grad))


def test_anchors_without_a_positive_are_excluded_from_supcon_mean():
    x, _ = _batch(7, 4, 1, 11)
    labels = torch.tensor([0, 0, 1, 1, 1, 7, 9])  # the last two have no positive
    rows = LF.supcon_loss(x, labels, reduction="none")
    assert rows[5].item() == 0.0 and rows[6].item() == 0.0 and (rows[:5] > 0).all()
    torch.testing.assert_close(LF.supcon_loss(x, labels), rows.sum() / 5)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int16])
def test_labels_are_identities_of_any_integer_dtype_and_value(dtype):
    x, _ = _batch(6, 4, 1, 2)
    labels = torch.tensor([0, 0, 5, 5, 3, 3])
    for fn in (LF.nt_xent_loss, LF.supcon_loss):
        want = fn(x, labels, reduction="none")
        torch.testing.assert_close(fn(x, labels.to(dtype), reduction="none"), want)
        huge = torch.tensor([-(2**40), -(2**40), 2**62, 2**62, -1, -1])  # not class indices: no range
        torch.testing.assert_close(fn(x, huge, reduction="none"), want)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("chunk", [None, 2])
def test_nan_in_gives_nan_out_on_every_path(kind, chunk):
    d = _inputs(kind, 6, 1)
    d["x"] = d["x"].clone()
    d["x"][0, 0] = float("nan")
    for r in ("none", "mean"):
        assert torch.isnan(LOSSES[kind](_with_grad(kind, d), r, chunk_size=chunk)).any()


# --------------------------------------------------------------------------------------------------
# gradients: gradcheck and gradgradcheck in float64 (kernel first order, definition second order)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("chunk", [None, 2])
def test_gradcheck_and_gradgradcheck(kind, reduction, chunk):
    d = _inputs(kind, 5, 7)
    keys = GRAD_KEYS[kind]

    def f(*values):
        return LOSSES[kind]({**d, **dict(zip(keys, values))}, reduction, chunk_size=chunk)

    leaves = tuple(_leaf(d[k]) for k in keys)
    assert torch.autograd.gradcheck(f, leaves)
    assert torch.autograd.gradgradcheck(f, leaves)


# --------------------------------------------------------------------------------------------------
# bounded workspace: the kernel never creates a tensor of B x R entries
# --------------------------------------------------------------------------------------------------


class _LargestTensor(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_workspace_is_bounded_by_the_chunk(kind, reduction):
    n, d, chunk = 64, 8, 4
    inputs = _with_grad(kind, _inputs(kind, n, 0, torch.float32, d=d))
    with _LargestTensor() as mode:
        loss = LOSSES[kind](inputs, reduction, chunk_size=chunk)
        loss.sum().backward()
    assert mode.largest <= max(n * chunk, n * d), mode.largest  # never (n, n) = 4096 entries
    with _LargestTensor() as mode:  # the definition (and the default chunk) hold the whole matrix
        LOSSES[kind](inputs, reduction).sum().backward()
    assert mode.largest >= n * n


# --------------------------------------------------------------------------------------------------
# errors name the function or Module the user called
# --------------------------------------------------------------------------------------------------


def test_labelled_batch_errors():
    x, labels = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    for name, fn in (("nt_xent_loss", LF.nt_xent_loss), ("supcon_loss", LF.supcon_loss)):
        with pytest.raises(ValueError, match=rf"{name}: expected embeddings of shape \(B, D\), got \(4,\)"):
            fn(x[:, 0], labels)
        with pytest.raises(ValueError, match=rf"{name}: expected labels of shape \(4,\), got \(3,\)"):
            fn(x, labels[:3])
        with pytest.raises(TypeError, match=rf"{name}: embeddings must be a floating-point tensor"):
            fn(x.long(), labels)
        with pytest.raises(TypeError, match=rf"{name}: labels must be an integer tensor"):
            fn(x, labels.float())
        with pytest.raises(ValueError, match=rf"{name}: temperature must be a finite number > 0; got 0"):
            fn(x, labels, temperature=0)
        with pytest.raises(ValueError, match=rf"{name}: chunk_size must be >= 1; got 0"):
            fn(x, labels, chunk_size=0)
        with pytest.raises(ValueError, match=rf"{name}: weight must broadcast to the unreduced loss"):
            fn(x, labels, weight=torch.ones(5))
        with pytest.raises(ValueError, match=rf"{name}: expected labels on the device of embeddings"):
            fn(x, labels.to("meta"))
    with pytest.raises(ValueError, match=r"supcon_loss: base_temperature must be a finite number > 0"):
        LF.supcon_loss(x, labels, base_temperature=-1.0)


def test_paired_feature_errors():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    for name, fn, extra in (
        ("clip_loss", LF.clip_loss, {}),
        ("siglip_loss", LF.siglip_loss, {"logit_bias": -1.0}),
    ):
        with pytest.raises(ValueError, match=rf"{name}: expected text_features of the same shape"):
            fn(x, y[:3], logit_scale=1.0, **extra)
        with pytest.raises(ValueError, match=rf"{name}: expected image_features of shape \(N, D\)"):
            fn(x[0], y[0], logit_scale=1.0, **extra)
        with pytest.raises(TypeError, match=rf"{name}: text_features must be a floating-point tensor"):
            fn(x, y.long(), logit_scale=1.0, **extra)
        with pytest.raises(
            ValueError, match=rf"{name}: expected logit_scale of shape \(\) or \(1,\), got \(4,\)"
        ):
            fn(x, y, logit_scale=torch.ones(4), **extra)
        with pytest.raises(TypeError, match=rf"{name}: logit_scale must be a number or a one-element tensor"):
            fn(x, y, logit_scale="10", **extra)
        with pytest.raises(TypeError, match=rf"{name}: logit_scale must be a floating-point tensor"):
            fn(x, y, logit_scale=torch.tensor(3), **extra)
        with pytest.raises(
            ValueError, match=rf"{name}: expected logit_scale on the device of image_features"
        ):
            fn(x, y, logit_scale=torch.tensor(1.0, device="meta"), **extra)
        with pytest.raises(
            ValueError, match=rf"{name}: reduction must be 'none', 'mean' or 'sum'; got 'avg'"
        ):
            fn(x, y, logit_scale=1.0, reduction="avg", **extra)
    with pytest.raises(ValueError, match=r"siglip_loss: expected logit_bias of shape"):
        LF.siglip_loss(x, y, logit_scale=1.0, logit_bias=torch.zeros(2))
    # a one-element (1,) tensor is accepted, as a 0-dim one
    torch.testing.assert_close(
        LF.clip_loss(x, y, logit_scale=torch.tensor([2.0])), LF.clip_loss(x, y, logit_scale=2.0)
    )


def test_modules_name_themselves_and_check_at_construction():
    with pytest.raises(ValueError, match=r"NTXentLoss: temperature must be a finite number > 0"):
        LN.NTXentLoss(temperature=-0.1)
    with pytest.raises(ValueError, match=r"SupConLoss: base_temperature must be"):
        LN.SupConLoss(base_temperature=0.0)
    with pytest.raises(ValueError, match=r"ClipLoss: chunk_size must be >= 1"):
        LN.ClipLoss(chunk_size=0)
    with pytest.raises(ValueError, match=r"SigLipLoss: exchange must be 'gather' or 'ring'; got 'bidir'"):
        LN.SigLipLoss(exchange="bidir")
    with pytest.raises(ValueError, match=r"SupConLoss: expected labels of shape \(4,\)"):
        LN.SupConLoss()(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"SigLipLoss: expected text_features of the same shape"):
        LN.SigLipLoss()(torch.randn(4, 3), torch.randn(4, 2), 1.0, 0.0)
    x = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    module = LN.NTXentLoss(temperature=0.3, chunk_size=2, reduction="sum")
    assert "temperature=0.3" in repr(module) and list(module.state_dict()) == []
    torch.testing.assert_close(
        module(x, labels), LF.nt_xent_loss(x, labels, temperature=0.3, reduction="sum")
    )


def test_supcontrast_layout_is_a_flattening_of_the_views():
    # SupContrast takes features (bsz, n_views, D) and labels (bsz,); it contrasts all views of all
    # samples, which is this loss on the views stacked view-major with the labels repeated.
    g = torch.Generator().manual_seed(4)
    features = F.normalize(torch.randn(5, 3, 4, generator=g, dtype=F64), dim=2)
    labels = torch.tensor([0, 1, 0, 2, 1])
    flat = torch.cat(features.unbind(1))
    got = LF.supcon_loss(flat, labels.repeat(3), reduction="none")
    rows, _ = R.supcon(flat.tolist(), labels.repeat(3).tolist(), 0.07, 0.07)
    torch.testing.assert_close(got, torch.tensor(rows, dtype=F64), rtol=1e-10, atol=1e-12)
