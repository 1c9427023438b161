"""GHM-C and GHM-R: the authors' semantics as a reference loop, properties, state, fused path."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN


def ghm_reference(
    losses, grads, bins, valid=None, acc=None, momentum=0.0, normalization="nonempty", tot=None
):
    """The authors' loop in plain Python: bin g by edges i/bins (g = 1 in the last bin), weight
    tot / (count * n) per non-empty bin, return sum(weight * loss) / tot and the updated acc."""
    n_el = len(losses)
    valid = valid or [True] * n_el
    tot = max(sum(valid), 1.0) if tot is None else max(tot, 1.0)
    acc = list(acc) if acc is not None else [0.0] * bins
    weights, nonempty = [0.0] * n_el, 0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins + (1e-6 if i == bins - 1 else 0.0)
        members = [k for k in range(n_el) if valid[k] and lo <= grads[k] < hi]
        if members:
            nonempty += 1
            if momentum > 0:
                acc[i] = momentum * acc[i] + (1 - momentum) * len(members)
                density = acc[i]
            else:
                density = len(members)
            for k in members:
                weights[k] = tot / density
    n = nonempty if normalization == "nonempty" else bins
    if n > 0:
        weights = [w / n for w in weights]
    return sum(w * l for w, l in zip(weights, losses)) / tot, acc, weights


def _bce_and_g(x, y):
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none").flatten().tolist()
    g = (torch.sigmoid(x) - y).abs().flatten().tolist()
    return loss, g


@given(st.integers(1, 40), st.integers(1, 12), st.sampled_from(["nonempty", "all"]), st.booleans())
def test_ghmc_matches_authors_loop(n, bins, normalization, masked):
    gen = torch.Generator().manual_seed(n * 13 + bins)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 3
    y = (torch.rand(n, 3, generator=gen) < 0.3).double()
    lw = (torch.rand(n, 3, generator=gen) < 0.7).double() if masked else None
    loss, g = _bce_and_g(x, y)
    valid = None if lw is None else [bool(v) for v in lw.flatten().tolist()]
    want, _, weights = ghm_reference(loss, g, bins, valid=valid, normalization=normalization)
    kw = {"bins": bins, "label_weight": lw, "normalization": normalization}
    torch.testing.assert_close(LF.ghmc_loss(x, y, **kw), torch.tensor(want, dtype=torch.float64))
    none = LF.ghmc_loss(x, y, reduction="none", **kw).flatten()
    torch.testing.assert_close(none, torch.tensor(weights, dtype=torch.float64) * torch.tensor(loss))
    # fused path (reduced, input needs a gradient) gives the same value
    fused = LF.ghmc_loss(x.clone().requires_grad_(), y, **kw)
    torch.testing.assert_close(fused, torch.tensor(want, dtype=torch.float64))


@given(st.lists(st.tuples(st.floats(-15, 15), st.floats(0, 1)), min_size=1, max_size=20))
def test_one_bin_no_momentum_is_mean_bce(pairs):
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    got = LF.ghmc_loss(x, y, bins=1)
    want = F.binary_cross_entropy_with_logits(x, y)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def test_ghmc_golden_values():
    # g = |sigmoid(x) - y| = 0.018, 0.018, 0.5, 0.018 -> bins (2): counts [3, 1], n = 2, tot = 4;
    # weights 4 / (3 * 2) = 2/3 and 4 / (1 * 2) = 2; BCE(4, 1) = log(1 + e^-4) = 0.018150, BCE(0, 1) = ln 2.
    x = torch.tensor([[4.0, -4.0], [0.0, -4.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    b = math.log1p(math.exp(-4))
    want = torch.tensor([[2 / 3 * b, 2 / 3 * b], [2 * math.log(2), 2 / 3 * b]], dtype=torch.float64)
    torch.testing.assert_close(LF.ghmc_loss(x, y, bins=2, reduction="none"), want)
    torch.testing.assert_close(LF.ghmc_loss(x, y, bins=2), want.sum() / 4)
    # 'all' normalises by bins = 4 instead of the 2 non-empty bins
    torch.testing.assert_close(LF.ghmc_loss(x, y, bins=4, normalization="all", reduction="none"), want / 2)


def test_g_equal_one_goes_to_last_bin():
    x = torch.tensor([-200.0, 200.0, 0.0], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    stats = LF.ghmc_statistics(x, y, bins=4)
    assert stats.gradient_norm[:2].tolist() == [1.0, 1.0]
    assert stats.counts.tolist() == [0.0, 0.0, 1.0, 2.0]
    torch.testing.assert_close(stats.edges, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))


def test_momentum_updates_running_counts_like_the_authors():
    gen = torch.Generator().manual_seed(3)
    running = torch.zeros(5, dtype=torch.float64)
    acc = [0.0] * 5
    for _ in range(3):
        x = torch.randn(30, generator=gen, dtype=torch.float64) * 3
        y = (torch.rand(30, generator=gen) < 0.3).double()
        loss, g = _bce_and_g(x, y)
        want, acc, _ = ghm_reference(loss, g, 5, acc=acc, momentum=0.75)
        stats = LF.ghmc_statistics(x, y, bins=5, momentum=0.75, running_counts=running)
        before = running.clone()
        got = LF.ghmc_loss(x.requires_grad_(), y, bins=5, momentum=0.75, running_counts=running)
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
        torch.testing.assert_close(running, torch.tensor(acc, dtype=torch.float64))
        torch.testing.assert_close(stats.density, running)  # statistics predicted it ...
        assert not torch.equal(before, running) or stats.counts.sum() == 0  # ... without writing it


def test_weights_carry_no_gradient_and_fused_equals_plain():
    x = (torch.randn(400, 5, dtype=torch.float64) * 3).requires_grad_()
    y = (torch.rand(400, 5) < 0.2).double()
    lw = (torch.rand(400, 5) < 0.9).double()
    w = torch.rand(400, 5, dtype=torch.float64)
    fused = LF.ghmc_loss(x, y, bins=7, label_weight=lw, weight=w)
    (g_fused,) = torch.autograd.grad(fused, x)
    stats = LF.ghmc_statistics(x, y, bins=7, label_weight=lw)
    idx = (stats.gradient_norm * 7).floor().clamp(max=6).long()
    beta = torch.where(lw > 0, stats.bin_weights[idx], 0.0)
    tot = (lw > 0).sum()
    # closed form with beta constant: beta * w * (sigmoid(x) - y) / tot
    torch.testing.assert_close(g_fused, beta * w * (torch.sigmoid(x) - y) / tot)
    plain = LF.ghmc_loss(x, y, bins=7, label_weight=lw, weight=w, reduction="none").sum() / tot
    (g_plain,) = torch.autograd.grad(plain, x)
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(g_fused, g_plain)


def test_ghmc_fused_float32_several_chunks():
    x = (torch.randn(2000, 80) * 3).requires_grad_()  # 160000 elements: two chunks
    y = (torch.rand(2000, 80) < 0.05).float()
    loss = LF.ghmc_loss(x, y, bins=10)
    loss.backward()
    x64 = x.detach().double().requires_grad_()
    ref = LF.ghmc_loss(x64, y.double(), bins=10, reduction="none").sum() / x.numel()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_ghm_gradcheck(reduction):
    x = (torch.randn(5, 3, dtype=torch.float64) * 2).requires_grad_()
    y = (torch.rand(5, 3) < 0.4).double()
    f = lambda v: LF.ghmc_loss(v, y, bins=5, reduction=reduction)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,), nondet_tol=1e-12)
    assert torch.autograd.gradgradcheck(f, (x,), nondet_tol=1e-12)
    t = torch.randn(5, 3, dtype=torch.float64)
    fr = lambda v: LF.ghmr_loss(v, t, bins=5, reduction=reduction)  # noqa: E731
    assert torch.autograd.gradcheck(fr, (x,))
    assert torch.autograd.gradgradcheck(fr, (x,))


@given(st.integers(1, 30), st.integers(1, 8), st.floats(0.005, 1.0), st.booleans())
def test_ghmr_matches_authors_loop(n, bins, mu, masked):
    gen = torch.Generator().manual_seed(n * 5 + bins)
    x = torch.randn(n, 4, generator=gen, dtype=torch.float64) * 0.3
    t = torch.randn(n, 4, generator=gen, dtype=torch.float64) * 0.3
    lw = (torch.rand(n, 4, generator=gen) < 0.7).double() if masked else None
    d = (x - t).flatten().tolist()
    loss = [math.sqrt(v * v + mu * mu) - mu for v in d]  # ASL1
    g = [abs(v) / math.sqrt(v * v + mu * mu) for v in d]
    valid = None if lw is None else [bool(v) for v in lw.flatten().tolist()]
    tot = None if lw is None else float(lw.sum())  # the authors' GHM-R divides by sum(label_weight)
    want, _, _ = ghm_reference(loss, g, bins, valid=valid, tot=tot)
    got = LF.ghmr_loss(x, t, mu=mu, bins=bins, label_weight=lw)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert (LF.ghmr_loss(x, t, mu=mu, bins=bins, label_weight=lw, reduction="none") >= 0).all()


def test_ghmr_golden_and_statistics():
    # d = (0, 1): ASL1 = (0, sqrt(1 + 0.02^2) - 0.02 = 0.980200); g = (0, 0.9998) in bins 0 and 1 of 2:
    # one element each, weights 2 / (1 * 2) = 1.
    out = LF.ghmr_loss(torch.tensor([0.0, 1.0]), torch.zeros(2), bins=2, reduction="none")
    torch.testing.assert_close(out, torch.tensor([0.0, math.sqrt(1.0004) - 0.02]))
    stats = LF.ghmr_statistics(torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3), bins=2)
    assert stats.counts.tolist() == [1.0, 2.0]
    torch.testing.assert_close(stats.bin_weights, torch.tensor([1.5, 0.75]))


def test_modules_update_state_only_in_training():
    m = LN.GHMCLoss(bins=6, momentum=0.5)
    x, y = torch.randn(20, 3) * 3, (torch.rand(20, 3) < 0.3).float()
    m.eval()
    torch.testing.assert_close(m(x, y), LF.ghmc_loss(x, y, bins=6))
    assert torch.equal(m.running_counts, torch.zeros(6))
    m.train()
    running = torch.zeros(6)
    want = LF.ghmc_loss(x, y, bins=6, momentum=0.5, running_counts=running)
    torch.testing.assert_close(m(x, y), want)
    torch.testing.assert_close(m.running_counts, running)
    assert m.running_counts.sum() > 0
    r = LN.GHMRLoss(mu=0.1, bins=4, momentum=0.5)
    r(torch.randn(10, 4), torch.randn(10, 4))
    assert r.running_counts.sum() > 0 and set(r.state_dict()) == {"running_counts"}


BAD_GHM_ARGS = [
    ({"bins": 2.0}, TypeError, "ghmc_loss: bins must be an int; got float"),
    ({"bins": 0}, ValueError, "ghmc_loss: bins must be >= 1; got 0"),
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0.0, 1.0\); got 1.0"),
    ({"momentum": 0.5}, ValueError, "running_counts must be given when momentum > 0; got None"),
    (
        {"running_counts": torch.zeros(3)},
        ValueError,
        r"expected running_counts of shape \(10,\), got \(3,\)",
    ),
    (
        {"running_counts": torch.zeros(10, dtype=torch.long)},
        TypeError,
        "running_counts must be a floating",
    ),
    ({"normalization": "bins"}, ValueError, "normalization must be 'nonempty' or 'all'; got 'bins'"),
    ({"label_weight": torch.ones(2, 3, dtype=torch.long)}, TypeError, "label_weight must be a floating"),
    ({"label_weight": torch.ones(3)}, ValueError, "expected label_weight of the same shape as input"),
    ({"weight": torch.ones(4)}, ValueError, "weight must broadcast"),
    ({"target": torch.zeros(3)}, ValueError, "expected target of the same shape as input"),
    ({"reduction": "avg"}, ValueError, "reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
]

BAD_CASES = [
    pytest.param(fn, *args, id=f"{fn}-{i}")
    for fn in ["ghmc_loss", "ghmr_loss", "ghmc_statistics", "ghmr_statistics"]
    for i, args in enumerate(BAD_GHM_ARGS)
    if not (fn.endswith("statistics") and set(args[0]) & {"weight", "reduction"})  # they take neither
]


@pytest.mark.parametrize(("fn", "kwargs", "error", "match"), BAD_CASES)
def test_ghm_rejects_bad_input(fn, kwargs, error, match):
    args = {"target": torch.zeros(2, 3)} | kwargs
    with pytest.raises(error, match=match.replace("ghmc_loss", fn)):
        getattr(LF, fn)(torch.zeros(2, 3), args.pop("target"), **args)


def test_ghmr_rejects_nonpositive_mu():
    with pytest.raises(ValueError, match=r"ghmr_loss: mu must be a finite number > 0; got 0.0"):
        LF.ghmr_loss(torch.zeros(2), torch.zeros(2), mu=0.0)
    with pytest.raises(ValueError, match="GHMRLoss: mu must be a finite number > 0"):
        LN.GHMRLoss(mu=-1.0)
    with pytest.raises(ValueError, match="GHMCLoss: normalization must be"):
        LN.GHMCLoss(normalization="x")


def test_compiled_passes_match_eager(monkeypatch):
    from losskit.functional import ghm as GM

    monkeypatch.setattr(GM, "_COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(GM, "_compiled", {})
    x = (torch.randn(500, 80) * 3).requires_grad_()
    y = (torch.rand(500, 80) < 0.05).float()
    lw = (torch.rand(500, 80) < 0.9).float()
    w = torch.rand(500, 80)
    running_a, running_b = torch.zeros(10), torch.zeros(10)
    got = LF.ghmc_loss(x, y, label_weight=lw, weight=w, momentum=0.5, running_counts=running_a)
    (g_got,) = torch.autograd.grad(got, x)
    tot = (lw > 0).sum()
    want = (
        LF.ghmc_loss(
            x, y, label_weight=lw, weight=w, momentum=0.5, running_counts=running_b, reduction="none"
        ).sum()
        / tot
    )
    (g_want,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(running_a, running_b)


def test_ghm_compiler_failure_falls_back_to_eager(monkeypatch):
    from losskit.functional import ghm as GM

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(GM, "_COMPILE_MIN_NUMEL", 0)
    monkeypatch.setattr(GM, "_compiled", {"ghmc_pass1": broken, "ghmc_pass2": broken})
    x = torch.randn(20, 3, requires_grad=True)
    y = (torch.rand(20, 3) < 0.5).float()
    got = LF.ghmc_loss(x, y)
    assert GM._compiled == {"ghmc_pass1": None, "ghmc_pass2": None}
    torch.testing.assert_close(got, LF.ghmc_loss(x.detach(), y, reduction="none").mean())
