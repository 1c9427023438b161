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
