"""A torch name is a promise: every torch-named loss and Module against torch itself (the peer).

Signatures (``inspect.signature`` equal up to annotations), the call forms torch code uses
(positional weights, ``L1Loss(None, None, "sum")``, keyword reductions), values and gradients over
reductions and options, the deprecated ``size_average``/``reduce`` (a clear ``TypeError``), the
autocast dtype rule, and the one deliberate difference: an empty batch gives 0 with a gradient where
torch gives NaN.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN

FUNCTIONS = [
    "l1_loss",
    "mse_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
]
MODULES = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "BCEWithLogitsLoss", "CrossEntropyLoss"]
# the Modules whose function takes a per-element weight: forward(input, target, weight=None)
FORWARD_WEIGHT = {"L1Loss", "MSELoss", "HuberLoss"}
REDUCTIONS = ["none", "mean", "sum"]

# torch 2.13 gave l1_loss, mse_loss and huber_loss (and so L1Loss, MSELoss, HuberLoss.forward's
# function) a per-element ``weight``; losskit has 2.13's signatures and weighted divisors on every
# torch, but on an older torch there is no weighted peer to compare with (hand-derived weighted
# values are in tests/test_regression.py and run everywhere)
TORCH_2_13 = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 13)
needs_2_13 = pytest.mark.skipif(not TORCH_2_13, reason="torch < 2.13 has no weighted l1/mse/huber_loss")
WEIGHTED_IN_2_13 = {"l1_loss", "mse_loss", "huber_loss"}


def _bare(sig: inspect.Signature, drop_self: bool = False) -> list[tuple]:
    params = list(sig.parameters.values())[1 if drop_self else 0 :]
    return [(p.name, p.kind, p.default) for p in params]


# --------------------------------------------------------------------------------------------------
# signatures
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=needs_2_13) if n in WEIGHTED_IN_2_13 else n for n in FUNCTIONS]
)
def test_function_signature_equals_torch(name):
    ours = _bare(inspect.signature(getattr(LF, name)))
    theirs = _bare(inspect.signature(getattr(F, name)))
    assert ours == theirs


@pytest.mark.parametrize("name", MODULES)
def test_module_constructor_signature_equals_torch(name):
    ours = _bare(inspect.signature(getattr(LN, name).__init__), drop_self=True)
    theirs = _bare(inspect.signature(getattr(tnn, name).__init__), drop_self=True)
    assert ours == theirs


@pytest.mark.parametrize("name", MODULES)
def test_module_forward_takes_input_target_then_optional_weight(name):
    params = _bare(inspect.signature(getattr(LN, name).forward), drop_self=True)
    assert params[:2] == _bare(inspect.signature(getattr(tnn, name).forward), drop_self=True)
    extra = params[2:]
    assert extra == (
        [("weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, None)] if name in FORWARD_WEIGHT else []
    )


@pytest.mark.parametrize("name", MODULES)
def test_module_attributes_and_buffers_match_torch(name):
    w = torch.tensor([0.5, 2.0, 1.0])
    kwargs = {"weight": w} if name in ("BCEWithLogitsLoss", "CrossEntropyLoss") else {}
    if name == "BCEWithLogitsLoss":
        kwargs["pos_weight"] = torch.tensor([3.0, 1.0, 1.0])
    ours, theirs = getattr(LN, name)(**kwargs), getattr(tnn, name)(**kwargs)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)
    for attr in ("reduction", "beta", "delta", "ignore_index", "label_smoothing"):
        assert getattr(ours, attr, None) == getattr(theirs, attr, None), attr


# --------------------------------------------------------------------------------------------------
# the call forms of torch code
# --------------------------------------------------------------------------------------------------


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(6, 4, generator=g, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randn(6, 4, generator=g, dtype=torch.float64)
    w = torch.rand(6, 4, generator=g, dtype=torch.float64) + 0.2
    p = torch.rand(6, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (6,), generator=g)
    cw = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    return x, y, w, p, t, cw


def _same(a: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    (ga,) = torch.autograd.grad(a.sum(), x)
    (gb,) = torch.autograd.grad(b.sum(), x)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)


@needs_2_13
def test_torch_call_forms_work_as_in_torch():
    x, y, w, p, t, cw = _data()
    _same(LN.CrossEntropyLoss(cw)(x, t), tnn.CrossEntropyLoss(cw)(x, t), x)
    _same(LF.cross_entropy(x, t, cw), F.cross_entropy(x, t, cw), x)
    _same(LF.cross_entropy(x, t, cw, None, 2), F.cross_entropy(x, t, cw, None, 2), x)
    _same(
        LN.BCEWithLogitsLoss(weight=w, pos_weight=cw)(x, p),
        tnn.BCEWithLogitsLoss(weight=w, pos_weight=cw)(x, p),
        x,
    )
    _same(LF.binary_cross_entropy_with_logits(x, p, w), F.binary_cross_entropy_with_logits(x, p, w), x)
    _same(
        LF.smooth_l1_loss(x, y, reduction="sum", beta=0.5),
        F.smooth_l1_loss(x, y, reduction="sum", beta=0.5),
        x,
    )
    _same(LN.L1Loss(None, None, "sum")(x, y), tnn.L1Loss(None, None, "sum")(x, y), x)
    _same(LN.MSELoss(None, None, "none")(x, y), tnn.MSELoss(None, None, "none")(x, y), x)
    _same(LN.SmoothL1Loss(None, None, "sum", 0.3)(x, y), tnn.SmoothL1Loss(None, None, "sum", 0.3)(x, y), x)
    _same(LN.HuberLoss("sum", 0.7)(x, y), tnn.HuberLoss("sum", 0.7)(x, y), x)
    _same(LF.huber_loss(x, y, "none", 0.7, w), F.huber_loss(x, y, "none", 0.7, w), x)
    _same(LF.l1_loss(x, y, None, None, "mean", w), F.l1_loss(x, y, None, None, "mean", w), x)
    _same(LF.mse_loss(x, y, None, None, "mean", w), F.mse_loss(x, y, None, None, "mean", w), x)
    _same(
        LN.CrossEntropyLoss(cw, None, 1, None, "sum", 0.2)(x, t),
        tnn.CrossEntropyLoss(cw, None, 1, None, "sum", 0.2)(x, t),
        x,
    )


def _legacy_calls():
    x, y, _, p, t, _ = _data()
    return {
        "l1_loss": lambda **k: LF.l1_loss(x, y, **k),
        "mse_loss": lambda **k: LF.mse_loss(x, y, **k),
        "smooth_l1_loss": lambda **k: LF.smooth_l1_loss(x, y, **k),
        "binary_cross_entropy_with_logits": lambda **k: LF.binary_cross_entropy_with_logits(x, p, **k),
        "cross_entropy": lambda **k: LF.cross_entropy(x, t, **k),
        "L1Loss": lambda **k: LN.L1Loss(**k),
        "MSELoss": lambda **k: LN.MSELoss(**k),
        "SmoothL1Loss": lambda **k: LN.SmoothL1Loss(**k),
        "BCEWithLogitsLoss": lambda **k: LN.BCEWithLogitsLoss(**k),
        "CrossEntropyLoss": lambda **k: LN.CrossEntropyLoss(**k),
    }


@pytest.mark.parametrize("name", sorted(_legacy_calls()))
@pytest.mark.parametrize(
    ("legacy", "wanted"),
    [
        ({"size_average": False}, "sum"),
        ({"reduce": False}, "none"),
        ({"size_average": True, "reduce": True}, "mean"),
    ],
)
def test_size_average_and_reduce_raise_a_type_error_pointing_at_reduction(name, legacy, wanted):
    call = _legacy_calls()[name]
    with pytest.raises(
        TypeError, match=rf"^{name}: size_average and reduce are deprecated .* reduction='{wanted}'"
    ):
        call(**legacy)


# --------------------------------------------------------------------------------------------------
# values and gradients against torch
# --------------------------------------------------------------------------------------------------


def _elementwise_settings():
    x, y, w, _, _, _ = _data(1)
    # (our function, torch's, extra positional/keyword arguments)
    return (
        [
            ("l1", LF.l1_loss, F.l1_loss, {}),
            ("l1_weighted", LF.l1_loss, F.l1_loss, {"weight": w}),
            ("mse", LF.mse_loss, F.mse_loss, {}),
            ("mse_weighted", LF.mse_loss, F.mse_loss, {"weight": w}),
            ("smooth_l1", LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5}),
            ("smooth_l1_beta0", LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}),
            ("huber", LF.huber_loss, F.huber_loss, {"delta": 0.7}),
            ("huber_weighted", LF.huber_loss, F.huber_loss, {"delta": 0.7, "weight": w}),
        ],
        x,
        y,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_regression_values_and_gradients_equal_torch(reduction, dtype):
    settings_, x, y = _elementwise_settings()
    for label, ours, theirs, kwargs in settings_:
        if "weight" in kwargs and not TORCH_2_13:
            continue
        xd = x.detach().to(dtype).requires_grad_()
        yd = y.to(dtype).requires_grad_()
        kw = {k: v.to(dtype) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        a, b = ours(xd, yd, reduction=reduction, **kw), theirs(xd, yd, reduction=reduction, **kw)
        # bit for bit where we call the same op in the same dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=label)
        for ga, gb in zip(torch.autograd.grad(a.sum(), (xd, yd)), torch.autograd.grad(b.sum(), (xd, yd))):
            torch.testing.assert_close(ga, gb, rtol=0, atol=0, msg=label)


@needs_2_13
def test_weighted_l1_and_mse_divide_by_the_weight_sum_huber_by_the_count():
    x, y, w, _, _, _ = _data(2)
    for ours, theirs in ((LF.l1_loss, F.l1_loss), (LF.mse_loss, F.mse_loss)):
        got = ours(x, y, weight=w)
        torch.testing.assert_close(got, theirs(x, y, weight=w), rtol=1e-14, atol=0)
        torch.testing.assert_close(got, ours(x, y, weight=w, reduction="sum") / w.sum(), rtol=1e-14, atol=0)
    got = LF.huber_loss(x, y, weight=w)
    torch.testing.assert_close(got, F.huber_loss(x, y, weight=w), rtol=1e-14, atol=0)
    torch.testing.assert_close(
        got, LF.huber_loss(x, y, weight=w, reduction="sum") / x.numel(), rtol=1e-14, atol=0
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_values_and_gradients_equal_torch(reduction):
    x, _, w, p, _, cw = _data(3)
    for kwargs in ({}, {"weight": w}, {"pos_weight": cw}, {"weight": w[:1], "pos_weight": cw}):
        _same(
            LF.binary_cross_entropy_with_logits(x, p, reduction=reduction, **kwargs),
            F.binary_cross_entropy_with_logits(x, p, reduction=reduction, **kwargs),
            x,
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ignore_index": 1},
        {"label_smoothing": 0.25},
        {"weight": True},
        {"weight": True, "ignore_index": 0, "label_smoothing": 0.1},
    ],
    ids=["plain", "ignore", "smooth", "weight", "all"],
)
def test_cross_entropy_values_and_gradients_equal_torch(reduction, kwargs):
    x, _, _, p, t, cw = _data(4)
    kw = {**kwargs, **({"weight": cw} if kwargs.get("weight") else {})}
    _same(
        LF.cross_entropy(x, t, reduction=reduction, **kw), F.cross_entropy(x, t, reduction=reduction, **kw), x
    )
    if "ignore_index" not in kw:
        q = torch.softmax(p, 1)
        _same(
            LF.cross_entropy(x, q, reduction=reduction, **kw),
            F.cross_entropy(x, q, reduction=reduction, **kw),
            x,
        )
    # (N, C, d1, d2) and unbatched (C,)
    x4 = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    t4 = torch.randint(0, 4, (2, 3, 2))
    _same(
        LF.cross_entropy(x4, t4, reduction=reduction, **kw),
        F.cross_entropy(x4, t4, reduction=reduction, **kw),
        x4,
    )
    x1 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    _same(
        LF.cross_entropy(x1, torch.tensor(2), reduction=reduction, **kw),
        F.cross_entropy(x1, torch.tensor(2), reduction=reduction, **kw),
        x1,
    )


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_modules_equal_torch_modules(name, reduction):
    x, y, w, p, t, cw = _data(5)
    kwargs = {
        "L1Loss": {},
        "MSELoss": {},
        "SmoothL1Loss": {"beta": 0.4},
        "HuberLoss": {"delta": 1.3},
        "BCEWithLogitsLoss": {"weight": w, "pos_weight": cw},
        "CrossEntropyLoss": {"weight": cw, "ignore_index": 2, "label_smoothing": 0.15},
    }[name]
    target = {"BCEWithLogitsLoss": p, "CrossEntropyLoss": t}.get(name, y)
    ours = getattr(LN, name)(reduction=reduction, **kwargs)
    theirs = getattr(tnn, name)(reduction=reduction, **kwargs)
    _same(ours(x, target), theirs(x, target), x)
    if name in FORWARD_WEIGHT and TORCH_2_13:  # the extra forward weight equals torch's functional weight
        fn = {"L1Loss": F.l1_loss, "MSELoss": F.mse_loss, "HuberLoss": F.huber_loss}[name]
        extra = {"delta": 1.3} if name == "HuberLoss" else {}
        _same(ours(x, y, w), fn(x, y, reduction=reduction, weight=w, **extra), x)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 7),
    c=st.integers(1, 5),
    reduction=st.sampled_from(REDUCTIONS),
    eps=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    weighted=st.booleans(),
    ignore=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_property_equals_torch(n, c, reduction, eps, weighted, ignore, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, generator=g, dtype=torch.float64) * 5).requires_grad_()
    t = torch.randint(0, c, (n,), generator=g)
    if ignore:
        t[0] = -100
    w = torch.rand(c, generator=g, dtype=torch.float64) + 0.05 if weighted else None
    got = LF.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps)
    want = F.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps)
    if reduction == "mean" and not (t != -100).any():
        assert got.item() == 0.0 and torch.isnan(want)  # the deliberate difference
        return
    _same(got, want, x)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    reduction=st.sampled_from(REDUCTIONS),
    name=st.sampled_from(
        ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy_with_logits"]
    ),
    seed=st.integers(0, 2**16),
)
def test_elementwise_property_equals_torch(shape, reduction, name, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 4).requires_grad_()
    y = torch.rand(shape, generator=g, dtype=torch.float64)
    _same(getattr(LF, name)(x, y, reduction=reduction), getattr(F, name)(x, y, reduction=reduction), x)


# --------------------------------------------------------------------------------------------------
# the deliberate difference: an empty batch
# --------------------------------------------------------------------------------------------------


def _empty_calls():
    x = torch.zeros(0, 4, requires_grad=True)
    y, w = torch.zeros(0, 4), torch.zeros(0, 4)
    t, cw = torch.zeros(0, dtype=torch.long), torch.ones(4)
    return x, [
        ("l1_loss", lambda m, r: m.l1_loss(x, y, reduction=r)),
        ("l1_loss_weighted", lambda m, r: m.l1_loss(x, y, reduction=r, weight=w)),
        ("mse_loss", lambda m, r: m.mse_loss(x, y, reduction=r)),
        ("mse_loss_weighted", lambda m, r: m.mse_loss(x, y, reduction=r, weight=w)),
        ("smooth_l1_loss", lambda m, r: m.smooth_l1_loss(x, y, reduction=r)),
        ("huber_loss", lambda m, r: m.huber_loss(x, y, reduction=r, weight=w)),
        ("bce", lambda m, r: m.binary_cross_entropy_with_logits(x, y, reduction=r)),
        ("cross_entropy", lambda m, r: m.cross_entropy(x, t, cw, reduction=r, label_smoothing=0.1)),
        ("cross_entropy_probabilities", lambda m, r: m.cross_entropy(x, y, reduction=r)),
    ]


@needs_2_13
def test_empty_batch_gives_zero_with_gradient_where_torch_gives_nan():
    x, calls = _empty_calls()
    for label, call in calls:
        assert torch.isnan(call(F, "mean")), label  # torch's 0/0
        for reduction in ("mean", "sum"):
            got = call(LF, reduction)
            assert got.item() == 0.0 and got.requires_grad, label
            (g,) = torch.autograd.grad(got, x)
            assert g.shape == x.shape
        assert call(LF, "none").numel() == 0


# --------------------------------------------------------------------------------------------------
# autocast: float32 inside, as torch; the input's dtype outside
# --------------------------------------------------------------------------------------------------


def _autocast_calls(x, y, t):
    return {
        "l1_loss": lambda m: m.l1_loss(x, y, reduction="sum"),
        "mse_loss": lambda m: m.mse_loss(x, y, reduction="sum"),
        "smooth_l1_loss": lambda m: m.smooth_l1_loss(x, y, reduction="sum"),
        "huber_loss": lambda m: m.huber_loss(x, y, reduction="sum"),
        "binary_cross_entropy_with_logits": lambda m: m.binary_cross_entropy_with_logits(
            x, y.sigmoid(), reduction="sum"
        ),
        "cross_entropy": lambda m: m.cross_entropy(x, t, reduction="sum"),
    }


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_autocast_sum_of_20000_low_precision_rows_is_float32_and_finite(name, low):
    # 20,000 rows of errors around 3: sums far beyond float16's 65504
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(20_000, 4, generator=g) + 3.0).to(low)
    y = torch.zeros(20_000, 4).to(low)
    t = torch.randint(0, 4, (20_000,), generator=g)
    with torch.autocast("cpu", dtype=low):
        got = _autocast_calls(x, y, t)[name](LF)
        want = _autocast_calls(x, y, t)[name](F)
    assert got.dtype == torch.float32 == want.dtype
    assert torch.isfinite(got)
    torch.testing.assert_close(got, want, rtol=2e-5, atol=0)
    outside = _autocast_calls(x, y, t)[name](LF)
    assert outside.dtype == low  # outside autocast: the input's dtype
    # computed in float32 and rounded once: the float64 answer to the dtype's rounding
    exact = _autocast_calls(x.double(), y.double(), t)[name](F)
    if low == torch.float16:
        assert torch.isinf(outside) == (exact > torch.finfo(torch.float16).max)
    else:
        torch.testing.assert_close(outside.double(), exact, rtol=2**-8, atol=0)


# --------------------------------------------------------------------------------------------------
# forward-mode AD (the definition runs there; the fast path is reverse mode only)
# --------------------------------------------------------------------------------------------------


def test_forward_ad_equals_reverse_mode_directional_derivative():
    g = torch.Generator().manual_seed(6)
    x, y, v = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    w, cw = (
        torch.rand(5, 4, generator=g, dtype=torch.float64),
        torch.rand(4, generator=g, dtype=torch.float64),
    )
    t = torch.tensor([0, -100, 3, 1, 2])
    losses = {
        "l1_loss": lambda a: LF.l1_loss(a, y),
        "l1_loss_weighted": lambda a: LF.l1_loss(a, y, weight=w),
        "mse_loss_weighted": lambda a: LF.mse_loss(a, y, weight=w),
        "smooth_l1_loss": lambda a: LF.smooth_l1_loss(a, y, beta=0.5),
        "huber_loss_weighted": lambda a: LF.huber_loss(a, y, delta=0.5, weight=w),
        "bce": lambda a: LF.binary_cross_entropy_with_logits(a, y.sigmoid(), w, pos_weight=cw),
        "cross_entropy": lambda a: LF.cross_entropy(a, t, cw, label_smoothing=0.1),
        "cross_entropy_probabilities": lambda a: LF.cross_entropy(a, y.softmax(1), cw, label_smoothing=0.1),
    }
    for label, f in losses.items():
        _, forward = torch.func.jvp(f, (x,), (v,))
        reverse = (torch.func.grad(f)(x) * v).sum()
        torch.testing.assert_close(forward, reverse, rtol=1e-12, atol=1e-14, msg=label)
