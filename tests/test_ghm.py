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
from losskit._kernels import ghm as KG


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
    assert torch.autograd.gradcheck(f, (x,))  # deterministic backward: no nondet_tol
    assert torch.autograd.gradgradcheck(f, (x,))
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


def _reference_counts(batches, bins, momentum):
    """The authors' acc_sum after each batch, from the reference loop."""
    acc, out = [0.0] * bins, []
    for x, y in batches:
        loss, g = _bce_and_g(x, y)
        _, acc, _ = ghm_reference(loss, g, bins, acc=acc, momentum=momentum)
        out.append(list(acc))
    return out


@pytest.mark.parametrize("path", ["kernel", "definition", "no_grad", "double_backward", "two_backwards"])
def test_running_counts_updated_exactly_once_on_every_path(path):
    # Issue 10 item 9: the compiled path's fallback updated the state twice ([6, 24, 46.5, ...]).
    gen = torch.Generator().manual_seed(5)
    batches = [
        (
            torch.randn(40, 3, generator=gen, dtype=torch.float64) * 3,
            (torch.rand(40, 3, generator=gen) < 0.3).double(),
        )
        for _ in range(3)
    ]
    want = _reference_counts(batches, 6, 0.75)
    running = torch.zeros(6, dtype=torch.float64)
    for (x, y), acc in zip(batches, want):
        xg = x.clone().requires_grad_(path != "no_grad")
        kw = {"bins": 6, "momentum": 0.75, "running_counts": running}
        if path == "definition":
            loss = LF.ghmc_loss(xg, y, reduction="none", **kw).sum()
        elif path == "no_grad":
            with torch.no_grad():
                loss = LF.ghmc_loss(xg, y, **kw)
        else:
            loss = LF.ghmc_loss(xg, y, **kw)
            assert type(loss.grad_fn).__name__ == "_GHMCBackward"
        if path == "double_backward":
            (g,) = torch.autograd.grad(loss, xg, create_graph=True)
            torch.autograd.grad(g.sum(), xg)
        elif path == "two_backwards":
            (g1,) = torch.autograd.grad(loss, xg, retain_graph=True)
            (g2,) = torch.autograd.grad(loss, xg)
            assert torch.equal(g1, g2)  # recomputed bit for bit
        elif path != "no_grad":
            loss.backward()
        torch.testing.assert_close(running, torch.tensor(acc, dtype=torch.float64))
    r = torch.zeros(6, dtype=torch.float64)  # GHM-R: once per call too
    d = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    LF.ghmr_loss(
        d, torch.zeros(30, 4, dtype=torch.float64), bins=6, momentum=0.75, running_counts=r
    ).backward()
    stats = LF.ghmr_statistics(d.detach(), torch.zeros(30, 4, dtype=torch.float64), bins=6)
    torch.testing.assert_close(r, 0.25 * stats.counts)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["input", "target"])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_non_finite_in_gives_nan_out(value, where, grad, masked):
    # Issue 10 item 9: NaN ended in "bincount only supports 1-d non-negative integral inputs".
    x = torch.randn(20, 3, dtype=torch.float64) * 2
    y = (torch.rand(20, 3) < 0.3).double()
    (x if where == "input" else y)[4, 1] = value
    lw = torch.ones(20, 3, dtype=torch.float64) if masked else None
    if masked:
        lw[4, 1] = 0.0  # not counted, and still NaN out
    xi = x.clone().requires_grad_(grad)
    for fn in (LF.ghmc_loss, LF.ghmr_loss):
        for reduction in ("mean", "sum"):
            assert torch.isnan(fn(xi, y, bins=5, label_weight=lw, reduction=reduction))
        none = fn(xi, y, bins=5, label_weight=lw, reduction="none")
        assert torch.isnan(none[4, 1]) and torch.isfinite(none[torch.arange(20) != 4]).all()
    running = torch.zeros(5, dtype=torch.float64)
    LF.ghmc_loss(xi, y, bins=5, momentum=0.5, running_counts=running)
    assert torch.isfinite(running).all() and running.sum() == 0.5 * (60 - 1)  # it is in no bin
    stats = LF.ghmc_statistics(x, y, bins=5)
    assert stats.counts.sum() == 59


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ghmr_tiny_mu_on_zero_residuals(dtype):
    # Issue 10 item 9: mu = 1e-30 squared underflows in float32; 0 / 0 ended in bincount's error.
    x = torch.tensor([0.0, 0.0, 1e-31, 0.5, -2.0], dtype=dtype, requires_grad=True)
    t = torch.zeros(5, dtype=dtype)
    none = LF.ghmr_loss(x, t, mu=1e-30, bins=4, reduction="none")
    assert torch.isfinite(none).all() and none[0] == 0 and none[1] == 0
    stats = LF.ghmr_statistics(x, t, mu=1e-30, bins=4)
    # g = |d| / hypot(d, mu): 0, 0, 1e-31 / 1.005e-30 = 0.0995 (bin 0), ~1, ~1 (last bin)
    assert stats.counts.tolist() == [3.0, 0.0, 0.0, 2.0]
    loss = LF.ghmr_loss(x, t, mu=1e-30, bins=4)
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g).all() and g[0] == 0
    # ASL1 for |d| >> mu is |d| - mu: 0.5 and 2.0 with weights tot / (count * n) = 5 / (2 * 2)
    torch.testing.assert_close(none[3:].detach(), torch.tensor([0.5, 2.0], dtype=dtype) * 1.25)


def test_ghmr_asl1_accurate_far_below_mu():
    # sqrt(d^2 + mu^2) - mu cancels for |d| << mu; d^2 / (hypot(d, mu) + mu) does not
    d = torch.tensor([1e-6, 3e-5], dtype=torch.float32)
    got = LF.ghmr_loss(d, torch.zeros(2), mu=0.02, bins=1, reduction="none")
    want = [v * v / (math.sqrt(v * v + 0.02**2) + 0.02) for v in d.double().tolist()]
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64), rtol=1e-6, atol=0)


def test_running_counts_inside_torch_func_is_a_clear_error():
    # torch.func forbids mutating a captured tensor (and vmap would need one update per batched
    # call): the state is rejected there with a clear message; without state vmap equals a loop.
    x = torch.randn(10, 3, dtype=torch.float64) * 2
    y = (torch.rand(10, 3) < 0.3).double()
    running = torch.zeros(4, dtype=torch.float64)
    for transform in (torch.func.grad, torch.func.vmap, torch.func.jacrev):
        for fn in (LF.ghmc_loss, LF.ghmr_loss):
            match = f"{fn.__name__}: running_counts cannot be updated inside a torch.func transform"
            with pytest.raises(ValueError, match=match):
                arg = x.unsqueeze(0) if transform is torch.func.vmap else x
                transform(lambda v, fn=fn: fn(v, y, bins=4, momentum=0.5, running_counts=running))(arg)
    assert running.sum() == 0
    xs = torch.randn(3, 10, 3, dtype=torch.float64)
    vm = torch.func.vmap(lambda v: LF.ghmc_loss(v, y, bins=4))(xs)
    torch.testing.assert_close(vm, torch.stack([LF.ghmc_loss(v, y, bins=4) for v in xs]))
    gr = torch.func.vmap(torch.func.grad(lambda v: LF.ghmr_loss(v, y, bins=4)))(xs)
    for i in range(3):
        xi = xs[i].clone().requires_grad_()
        torch.testing.assert_close(gr[i], torch.autograd.grad(LF.ghmr_loss(xi, y, bins=4), xi)[0])


@pytest.mark.parametrize("bins", [1, 7, 253, 254, 300])
@pytest.mark.parametrize("masked", [False, True])
def test_kernel_equals_definition(bins, masked):
    # bins > 253 store the bin index in int32 instead of one byte
    gen = torch.Generator().manual_seed(bins)
    x = (torch.randn(300, 9, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    y = torch.rand(300, 9, generator=gen, dtype=torch.float64)
    lw = (torch.rand(300, 9, generator=gen) < 0.8).double() if masked else None
    w = torch.rand(9, generator=gen, dtype=torch.float64)  # broadcast weight
    kw = {"bins": bins, "label_weight": lw, "weight": w}
    fused = LF.ghmc_loss(x, y, **kw)
    assert type(fused.grad_fn).__name__ == "_GHMCBackward"
    (gf,) = torch.autograd.grad(fused, x)
    tot = (lw > 0).sum() if masked else x.numel()
    plain = LF.ghmc_loss(x, y, reduction="none", **kw).sum() / tot
    (gp,) = torch.autograd.grad(plain, x)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gf, gp, rtol=1e-12, atol=1e-18)
    with torch.no_grad():
        torch.testing.assert_close(LF.ghmc_loss(x, y, **kw), plain)


def test_kernel_no_less_accurate_than_definition():
    gen = torch.Generator().manual_seed(0)
    n = (1 << 20) + 3
    x = torch.randn(n, generator=gen) * 6
    y = (torch.rand(n, generator=gen) < 0.05).float()
    assert n > 4 * KG.CHUNK

    def errors(fn):
        x64 = x.double().requires_grad_()
        ref = LF.ghmc_loss(x64, y.double(), reduction="none").sum() / n
        (g64,) = torch.autograd.grad(ref, x64)
        x32 = x.clone().requires_grad_()
        got = fn(x32)
        (g32,) = torch.autograd.grad(got, x32)
        return abs(got.double().item() - ref.item()) / ref.item(), (
            (g32.double() - g64).abs().max() / g64.abs().max()
        ).item()

    kernel = errors(lambda v: LF.ghmc_loss(v, y))
    definition = errors(lambda v: LF.ghmc_loss(v, y, reduction="none").sum() / n)
    eps = torch.finfo(torch.float32).eps
    assert kernel[0] <= definition[0] + eps and kernel[1] <= definition[1] + eps, (kernel, definition)


def test_no_compilation_inside_the_library(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile called inside losskit")

    monkeypatch.setattr(torch, "compile", refuse)
    x = (torch.randn(1 << 20) * 3).requires_grad_()
    LF.ghmc_loss(x, (torch.rand(1 << 20) < 0.05).float()).backward()
    assert torch.isfinite(x.grad).all()


def test_ghm_device_mismatch_is_a_clear_error():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"ghmc_loss: expected running_counts on the device of input"):
        LF.ghmc_loss(x, x, running_counts=torch.zeros(10, device="meta"))
    with pytest.raises(ValueError, match=r"ghmr_loss: expected label_weight on the device of input"):
        LF.ghmr_loss(x, x, label_weight=torch.ones(2, 3, device="meta"))
