"""Binary cross-entropy with logits and cross-entropy: torch parity, hand-worked values, edge cases."""

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


def _grad(loss, x):
    (g,) = torch.autograd.grad(loss.sum() if loss.dim() else loss, x)
    return g


# --------------------------------------------------------------------------- BCE with logits


def test_bce_golden_values():
    # x=2, y=1: log(1 + e^-2) = 0.126928; x=-1, y=0: log(1 + e^-1) = 0.313262; x=0: log 2 = 0.693147.
    # pos_weight=3 triples the positive terms; weight=0.5 halves the second.
    x = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    out = LF.binary_cross_entropy_with_logits(
        x,
        y,
        weight=torch.tensor([1.0, 0.5, 1.0], dtype=torch.float64),
        pos_weight=torch.tensor(3.0, dtype=torch.float64),
        reduction="none",
    )
    want = [3 * math.log1p(math.exp(-2)), 0.5 * math.log1p(math.exp(-1)), 3 * math.log(2)]
    torch.testing.assert_close(out, torch.tensor(want, dtype=torch.float64))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch_values_and_gradients(reduction):
    x = (torch.randn(6, 4, dtype=torch.float64) * 3).requires_grad_()
    y = torch.rand(6, 4, dtype=torch.float64)
    w, pw = torch.rand(6, 1, dtype=torch.float64), torch.rand(4, dtype=torch.float64) * 3
    got = LF.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)
    want = F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(_grad(got, x), _grad(want, x), rtol=0, atol=0)


@given(st.lists(st.tuples(st.floats(-30, 30), st.floats(0, 1)), min_size=1, max_size=8))
def test_bce_matches_naive_formula(pairs):
    x = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    y = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    got = LF.binary_cross_entropy_with_logits(x, y, reduction="none")
    # the definition: -[y log sigma(x) + (1 - y) log(1 - sigma(x))], in plain math
    ref = [
        -(b * math.log(1 / (1 + math.exp(-a))) + (1 - b) * math.log(1 / (1 + math.exp(a)))) for a, b in pairs
    ]
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)
    assert (got >= 0).all()


def test_bce_stable_for_huge_logits():
    x = torch.tensor([100.0, -100.0, 100.0, -100.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = LF.binary_cross_entropy_with_logits(x, y, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 0.0, 100.0, 100.0]))
    loss.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 1.0, -1.0]))


def test_bce_module_keeps_pos_weight_buffer():
    m = LN.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 1.0]))
    assert "pos_weight" in m.state_dict()
    x, y = torch.randn(3, 2), torch.ones(3, 2)
    torch.testing.assert_close(m(x, y), F.binary_cross_entropy_with_logits(x, y, pos_weight=m.pos_weight))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input": torch.ones(2, dtype=torch.long)},
            TypeError,
            "binary_cross_entropy_with_logits: input must be",
        ),
        ({"target": torch.ones(2, dtype=torch.long)}, TypeError, "target must be a floating-point"),
        (
            {"target": torch.ones(3)},
            ValueError,
            r"expected target of the same shape as input \(2,\), got \(3,\)",
        ),
        ({"pos_weight": torch.ones(3)}, ValueError, r"pos_weight must broadcast to the input shape \(2,\)"),
        ({"pos_weight": torch.ones(2, dtype=torch.long)}, TypeError, "pos_weight must be a floating-point"),
        ({"weight": torch.ones(3)}, ValueError, "weight must broadcast to the unreduced loss"),
        ({"reduction": "avg"}, ValueError, "reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
    ],
)
def test_bce_rejects_bad_input(kwargs, error, match):
    args = {"input": torch.zeros(2), "target": torch.zeros(2)} | kwargs
    with pytest.raises(error, match=match):
        LF.binary_cross_entropy_with_logits(args.pop("input"), args.pop("target"), **args)


def test_bce_module_rejects_integer_pos_weight():
    with pytest.raises(TypeError, match="BCEWithLogitsLoss: pos_weight must be a floating-point"):
        LN.BCEWithLogitsLoss(pos_weight=torch.ones(2, dtype=torch.long))


# --------------------------------------------------------------------------- cross-entropy


def test_cross_entropy_golden_value():
    # logits (2, 0, -1), class 0: -log(e^2 / (e^2 + 1 + e^-1)) = log(1 + e^-2 + e^-3) = 0.169846
    out = LF.cross_entropy(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]), reduction="none")
    torch.testing.assert_close(out, torch.tensor([math.log(1 + math.exp(-2) + math.exp(-3))]))


CE_SETTINGS = [
    {},
    {"weight": torch.tensor([0.2, 1.0, 3.0, 0.5, 1.5], dtype=torch.float64)},
    {"ignore_index": 2},
    {"label_smoothing": 0.2},
    {
        "weight": torch.tensor([0.2, 1.0, 3.0, 0.5, 1.5], dtype=torch.float64),
        "ignore_index": 1,
        "label_smoothing": 0.1,
    },
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kwargs", CE_SETTINGS, ids=["plain", "weight", "ignore", "smooth", "all"])
def test_cross_entropy_matches_torch_class_indices(kwargs, reduction):
    x = (torch.randn(7, 5, 3, dtype=torch.float64) * 2).requires_grad_()  # (N, C, d1)
    t = torch.randint(0, 5, (7, 3))
    got = LF.cross_entropy(x, t, reduction=reduction, **kwargs)
    want = F.cross_entropy(x, t, reduction=reduction, **kwargs)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(_grad(got, x), _grad(want, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_matches_torch_probability_targets(reduction, smoothing):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    p = torch.softmax(torch.randn(6, 4, dtype=torch.float64), 1)
    w = torch.rand(4, dtype=torch.float64)
    got = LF.cross_entropy(x, p, weight=w, label_smoothing=smoothing, reduction=reduction)
    want = F.cross_entropy(x, p, weight=w, label_smoothing=smoothing, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(_grad(got, x), _grad(want, x), rtol=1e-12, atol=1e-14)


def test_cross_entropy_unbatched_input():
    x, t = torch.randn(4), torch.tensor(2)
    torch.testing.assert_close(LF.cross_entropy(x, t), F.cross_entropy(x, t))


@pytest.mark.parametrize("weight", [None, torch.tensor([1.0, 2.0, 3.0])])
def test_cross_entropy_all_ignored_gives_zero_with_gradient(weight):
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.full((4,), -100)
    assert torch.isnan(F.cross_entropy(x, t, weight=weight))  # torch's 0/0, the documented difference
    loss = LF.cross_entropy(x, t, weight=weight, label_smoothing=0.1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(4, 3))


@given(st.integers(1, 6), st.integers(2, 5), st.floats(0, 1))
def test_cross_entropy_matches_naive_softmax_loss(n, c, eps):
    gen = torch.Generator().manual_seed(n * 10 + c)
    x = torch.randn(n, c, generator=gen, dtype=torch.float64)
    t = torch.randint(0, c, (n,), generator=gen)
    got = LF.cross_entropy(x, t, label_smoothing=eps, reduction="none")
    ref = []
    for i in range(n):  # softmax, then -sum_c q_c log p_c with q = (1 - eps) onehot + eps / C
        z = sum(math.exp(v) for v in x[i].tolist())
        logp = [v - math.log(z) for v in x[i].tolist()]
        ref.append(-sum(((1 - eps) * (k == t[i].item()) + eps / c) * logp[k] for k in range(c)))
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_cross_entropy_gradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 2, -100, 1])
    assert torch.autograd.gradcheck(lambda v: LF.cross_entropy(v, t, label_smoothing=0.1), (x,))
    assert torch.autograd.gradgradcheck(lambda v: LF.cross_entropy(v, t, label_smoothing=0.1), (x,))


def test_cross_entropy_module_keeps_class_weight_buffer():
    w = torch.tensor([1.0, 2.0, 0.5])
    m = LN.CrossEntropyLoss(weight=w, ignore_index=0)
    assert torch.equal(m.state_dict()["weight"], w)
    x, t = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 2])
    torch.testing.assert_close(m(x, t), F.cross_entropy(x, t, weight=w, ignore_index=0))


@pytest.mark.parametrize(
    ("input", "target", "kwargs", "error", "match"),
    [
        (torch.zeros(()), torch.tensor(0), {}, ValueError, r"cross_entropy: expected input of shape \(C,\)"),
        (
            torch.zeros(2, 3),
            torch.zeros(3, dtype=torch.long),
            {},
            ValueError,
            r"expected target of shape \(2,\) \(input's without the class dim\), got \(3,\)",
        ),
        (torch.zeros(2, 3), torch.zeros(2, 4), {}, ValueError, "expected target of the same shape as input"),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.bool),
            {},
            TypeError,
            "target must be an integer tensor",
        ),
        (
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, dtype=torch.long),
            {},
            TypeError,
            "input must be a floating-point",
        ),
        (torch.zeros(2, 3), [0, 1], {}, TypeError, "target must be a Tensor; got list"),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"weight": torch.ones(4)},
            ValueError,
            r"expected per-class weight of shape \(3,\), got \(4,\)",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"weight": torch.ones(3, dtype=torch.long)},
            TypeError,
            "weight must be a floating-point",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"label_smoothing": 1.5},
            ValueError,
            r"label_smoothing must be in \[0.0, 1.0\]; got 1.5",
        ),
        (
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long),
            {"ignore_index": 1.0},
            TypeError,
            "ignore_index must be an int; got float",
        ),
    ],
)
def test_cross_entropy_rejects_bad_input(input, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        LF.cross_entropy(input, target, **kwargs)


def test_cross_entropy_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="CrossEntropyLoss: label_smoothing must be in"):
        LN.CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(TypeError, match="CrossEntropyLoss: ignore_index must be an int; got str"):
        LN.CrossEntropyLoss(ignore_index="x")
    with pytest.raises(TypeError, match="CrossEntropyLoss: weight must be a floating-point"):
        LN.CrossEntropyLoss(weight=torch.ones(3, dtype=torch.long))


# --------------------------------------------------------------------------- cross-entropy: divisors


def test_cross_entropy_zero_weight_class_divides_as_torch():
    # every target in a class of weight 0: torch's divisor is 0 and its mean NaN (0/0 for the NLL
    # part); with label_smoothing=0.1 the clamped divisor of old gave 2.46e37 instead
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(4, dtype=torch.long)
    w = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    for eps in (0.0, 0.1):
        got = LF.cross_entropy(x, t, w, label_smoothing=eps)
        want = F.cross_entropy(x, t, w, label_smoothing=eps)
        assert torch.isnan(want)
        torch.testing.assert_close(got, want, equal_nan=True)


@pytest.mark.parametrize(
    ("weight", "target"),
    [
        ([-1.0, -2.0, 0.5], [0, 1, 1, 2]),  # the targets' weight sum: -1 - 2 - 2 + 0.5 = -4.5
        ([1.0, -1.0, 0.25], [0, 1, 0, 1]),  # 1 - 1 + 1 - 1 = 0: torch's inf or NaN, unclamped
        ([2.0, -3.0, 0.0], [0, 1, 1, 2]),  # 2 - 3 - 3 + 0 = -4
    ],
    ids=["negative_sum", "zero_sum", "negative_with_zero_class"],
)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_weights_summing_to_zero_or_less_match_torch(weight, target, eps):
    x = torch.tensor([[2.0, 0.0, -1.0], [0.5, -0.5, 1.5], [1.0, 1.0, 0.0], [0.0, 3.0, -2.0]])
    x = x.double().requires_grad_()
    t, w = torch.tensor(target), torch.tensor(weight, dtype=torch.float64)
    got = LF.cross_entropy(x, t, w, label_smoothing=eps)
    want = F.cross_entropy(x, t, w, label_smoothing=eps)
    torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-12, atol=0)
    if torch.isfinite(want):
        torch.testing.assert_close(_grad(got, x), _grad(want, x), rtol=1e-12, atol=1e-14)


def test_cross_entropy_negative_divisor_golden():
    # logits (0, 0): log-softmax -log 2 in both classes; weights (-1, 3), targets (0, 0, 1):
    # sum = -w_y log p = (-1 - 1 + 3) log 2 = log 2; divisor -1 - 1 + 3 = 1  -> log 2
    x = torch.zeros(3, 2, dtype=torch.float64)
    got = LF.cross_entropy(x, torch.tensor([0, 0, 1]), torch.tensor([-1.0, 3.0], dtype=torch.float64))
    assert got.item() == pytest.approx(math.log(2), rel=1e-15)
    # targets (0, 0): sum = -2 log 2 over divisor -2 -> log 2, positive (old: clamped, -inf)
    got = LF.cross_entropy(x[:2], torch.tensor([0, 0]), torch.tensor([-1.0, 3.0], dtype=torch.float64))
    assert got.item() == pytest.approx(math.log(2), rel=1e-15)


def test_cross_entropy_empty_and_all_ignored_k_dim_give_zero_with_gradient():
    for x, t in [
        (torch.randn(0, 4, 3, requires_grad=True), torch.zeros(0, 3, dtype=torch.long)),
        (torch.randn(2, 4, 3, requires_grad=True), torch.full((2, 3), 7)),
    ]:
        loss = LF.cross_entropy(x, t, torch.rand(4), ignore_index=7, label_smoothing=0.2)
        assert loss.item() == 0.0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, x)
        assert torch.equal(g, torch.zeros_like(x))


# --------------------------------------------------------------------------- cross-entropy: targets


@pytest.mark.parametrize("ignore_index", [0, 3])
def test_cross_entropy_probability_targets_with_ignore_index_raise_as_torch(ignore_index):
    x, p = torch.randn(3, 4), torch.softmax(torch.randn(3, 4), 1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(x, p, ignore_index=ignore_index)
    with pytest.raises(
        ValueError,
        match=rf"cross_entropy: ignore_index is not supported for probability .* ignore_index={ignore_index}",
    ):
        LF.cross_entropy(x, p, ignore_index=ignore_index)
    with pytest.raises(ValueError, match="CrossEntropyLoss: ignore_index is not supported"):
        LN.CrossEntropyLoss(ignore_index=ignore_index)(x, p)


def test_cross_entropy_probability_targets_with_negative_ignore_index_as_torch():
    # torch accepts a negative ignore_index with probability targets and ignores it
    x, p = torch.randn(3, 4, dtype=torch.float64), torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    torch.testing.assert_close(
        LF.cross_entropy(x, p, ignore_index=-1), F.cross_entropy(x, p, ignore_index=-1)
    )


@pytest.mark.parametrize("bad", [-1, 5, 1000])
def test_cross_entropy_labels_out_of_range_are_a_clear_error(bad):
    x = torch.randn(3, 5)
    t = torch.tensor([0, bad, 2])
    with pytest.raises(
        ValueError, match=rf"cross_entropy: target must hold class indices in \[0, 5\) or -100; .*{bad}"
    ):
        LF.cross_entropy(x, t)
    with pytest.raises(
        ValueError, match=r"CrossEntropyLoss: target must hold class indices in \[0, 5\) or 1"
    ):
        LN.CrossEntropyLoss(ignore_index=1)(x, t)


def test_cross_entropy_ignore_index_inside_the_class_range_is_ignored():
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 3, 3, 4])
    for r in REDUCTIONS:
        torch.testing.assert_close(
            LF.cross_entropy(x, t, ignore_index=3, reduction=r),
            F.cross_entropy(x, t, ignore_index=3, reduction=r),
        )


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_cross_entropy_accepts_every_integer_label_dtype(dtype):
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 3, 1, 0])
    w = torch.rand(4, dtype=torch.float64)
    got = LF.cross_entropy(x, t.to(dtype), w, label_smoothing=0.1)
    want = F.cross_entropy(x, t, w, label_smoothing=0.1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(_grad(got, x), _grad(want, x), rtol=1e-12, atol=1e-15)


def test_cross_entropy_vmap_over_class_indices():
    # the contract's vmap row differentiates every input, the integer target included; here the labels
    # are batched by vmap and only the logits differentiated, against a loop of autograd calls
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    ts = torch.randint(0, 4, (3, 5), generator=gen)
    ts[1, 2] = -100
    w = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    for kwargs in ({}, {"weight": w}, {"label_smoothing": 0.1}):

        def f(x, t, kw=kwargs):
            return LF.cross_entropy(x, t, **kw)

        got = torch.func.vmap(f)(xs, ts)
        grads = torch.func.vmap(torch.func.grad(f))(xs, ts)
        for i in range(3):
            x = xs[i].clone().requires_grad_()
            want = F.cross_entropy(x, ts[i], **kwargs)
            torch.testing.assert_close(got[i], want)
            torch.testing.assert_close(grads[i], torch.autograd.grad(want, x)[0])


def test_cross_entropy_all_ignored_under_vmap_and_compile():
    xs = torch.randn(2, 3, 4)
    ts = torch.tensor([[-100, -100, -100], [0, 1, -100]])
    got = torch.func.vmap(LF.cross_entropy)(xs, ts)
    assert got[0].item() == 0.0
    torch.testing.assert_close(got[1], F.cross_entropy(xs[1], ts[1]))
    torch._dynamo.reset()
    compiled = torch.compile(LF.cross_entropy, fullgraph=True)
    assert compiled(xs[0], ts[0]).item() == 0.0
    torch.testing.assert_close(compiled(xs[1], ts[1]), F.cross_entropy(xs[1], ts[1]))


def test_classification_modules_name_themselves_in_errors():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected target of shape \(2,\)"):
        LN.CrossEntropyLoss()(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected per-class weight of shape \(3,\)"):
        LN.CrossEntropyLoss(torch.ones(4))(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss: expected target of the same shape"):
        LN.BCEWithLogitsLoss()(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss: weight must broadcast"):
        LN.BCEWithLogitsLoss(torch.ones(3))(torch.zeros(2), torch.zeros(2))
    with pytest.raises(TypeError, match="BCEWithLogitsLoss: weight must be a floating-point"):
        LN.BCEWithLogitsLoss(torch.ones(2, dtype=torch.long))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: LF.cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long, device="meta")),
            r"cross_entropy: expected target on the device of input \(cpu\), got target on meta",
        ),
        (
            lambda: LF.cross_entropy(
                torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(3, device="meta")
            ),
            r"cross_entropy: expected weight on the device of input \(cpu\), got weight on meta",
        ),
        (
            lambda: LF.binary_cross_entropy_with_logits(
                torch.zeros(2), torch.zeros(2), pos_weight=torch.ones(2, device="meta")
            ),
            r"binary_cross_entropy_with_logits: expected pos_weight on the device of input \(cpu\)",
        ),
        (
            lambda: LN.BCEWithLogitsLoss(torch.ones(2, device="meta"))(torch.zeros(2), torch.zeros(2)),
            r"BCEWithLogitsLoss: expected weight on the device of input \(cpu\), got weight on meta",
        ),
    ],
)
def test_classification_device_mismatch_is_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
