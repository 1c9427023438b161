"""Box utilities and the IoU-family losses: golden values, references, properties, gradients, robustness."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN
from cases_boxes import random_boxes
from losskit.functional import iou as iou_module

# ----------------------------------------------------------------------------------------------------
# Independent float64 references, written from the papers' definitions with plain `math` on tuples.


def _iou_parts(a, b):
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter, union


def iou_ref(a, b):
    inter, union = _iou_parts(a, b)
    return inter / union


def giou_ref(a, b):  # Rezatofighi et al. 2019, Algorithm 1
    inter, union = _iou_parts(a, b)
    area_c = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (area_c - union) / area_c


def diou_ref(a, b):  # Zheng et al. 2020, eq. (6)
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    return iou_ref(a, b) - rho2 / c2


def ciou_ref(a, b):  # Zheng et al. 2020, eqs. (8)-(11); a is the prediction, b the target
    iou = iou_ref(a, b)
    v = (
        4
        / math.pi**2
        * (math.atan((b[2] - b[0]) / (b[3] - b[1])) - math.atan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
    )
    alpha = v / ((1 - iou) + v) if v > 0 else 0.0
    return diou_ref(a, b) - alpha * v


REFS = {"iou": iou_ref, "giou": giou_ref, "diou": diou_ref, "ciou": ciou_ref}
LOSSES = {
    "iou": LF.iou_loss,
    "giou": LF.generalized_box_iou_loss,
    "diou": LF.distance_box_iou_loss,
    "ciou": LF.complete_box_iou_loss,
}
MEASURES = {
    "iou": (LF.box_iou, LF.pairwise_box_iou),
    "giou": (LF.generalized_box_iou, LF.pairwise_generalized_box_iou),
    "diou": (LF.distance_box_iou, LF.pairwise_distance_box_iou),
    "ciou": (LF.complete_box_iou, LF.pairwise_complete_box_iou),
}


def naive_loss(kind, p, t, eps=0.0):
    """Naive autograd composition of the paper's formulas (alpha detached), for gradient comparisons."""
    x1, y1, x2, y2 = p.unbind(-1)
    u1, v1, u2, v2 = t.unbind(-1)
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0) * (
        torch.min(y2, v2) - torch.max(y1, v1)
    ).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    iou = inter / (union + eps)
    cw = torch.max(x2, u2) - torch.min(x1, u1)
    ch = torch.max(y2, v2) - torch.min(y1, v1)
    if kind == "iou":
        return 1 - iou
    if kind == "giou":
        return 1 - iou + (cw * ch - union) / (cw * ch + eps)
    rho2 = ((x1 + x2 - u1 - u2) ** 2 + (y1 + y2 - v1 - v2) ** 2) / 4
    diou = 1 - iou + rho2 / (cw**2 + ch**2 + eps)
    if kind == "diou":
        return diou
    v = (
        4
        / math.pi**2
        * (torch.atan((u2 - u1) / (v2 - v1 + eps)) - torch.atan((x2 - x1) / (y2 - y1 + eps))) ** 2
    )
    alpha = (v / (1 - iou + v + eps)).detach()
    return diou + alpha * v


def t64(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------
# Golden values, derived by hand with non-square boxes so that every term is non-zero.
#
# pred  P = (0, 0, 4, 2): w 4, h 2, area 8, centre (2, 1)
# target T = (1, 1, 3, 4): w 2, h 3, area 6, centre (2, 2.5)
# overlap: x in [1, 3] -> 2, y in [1, 2] -> 1, I = 2; union U = 8 + 6 - 2 = 12; IoU = 1/6
# enclosing box: x in [0, 4], y in [0, 4]: area C = 16, squared diagonal c^2 = 16 + 16 = 32
# GIoU loss = 1 - 1/6 + (16 - 12)/16 = 13/12
# DIoU loss = 1 - 1/6 + rho^2 / c^2 with rho^2 = 0^2 + 1.5^2 = 2.25 -> 5/6 + 2.25/32
# CIoU: v = 4/pi^2 (atan(2/3) - atan(4/2))^2, alpha = v / (1 - 1/6 + v); loss = DIoU + alpha v
# IoU log loss = -ln(1/6) = ln 6
_P, _T = (0.0, 0.0, 4.0, 2.0), (1.0, 1.0, 3.0, 4.0)
_V = 4 / math.pi**2 * (math.atan(2 / 3) - math.atan(2.0)) ** 2
_DIOU = 5 / 6 + 2.25 / 32
GOLDEN = {
    "iou": 5 / 6,
    "iou_log": math.log(6.0),
    "giou": 13 / 12,
    "diou": _DIOU,
    "ciou": _DIOU + _V / (5 / 6 + _V) * _V,
    "ciou_gated": _DIOU,  # IoU = 1/6 < 0.5: the journal version drops the aspect term
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_values(name):
    p, t = t64(_P), t64(_T)
    fn = {
        "iou": lambda: LF.iou_loss(p, t, eps=0.0),
        "iou_log": lambda: LF.iou_loss(p, t, mode="log", eps=0.0),
        "giou": lambda: LF.generalized_box_iou_loss(p, t, eps=0.0),
        "diou": lambda: LF.distance_box_iou_loss(p, t, eps=0.0),
        "ciou": lambda: LF.complete_box_iou_loss(p, t, eps=0.0),
        "ciou_gated": lambda: LF.complete_box_iou_loss(p, t, gated=True, eps=0.0),
    }[name]
    assert fn().item() == pytest.approx(GOLDEN[name], rel=1e-12)


def test_golden_ciou_gated_keeps_aspect_term_above_half_iou():
    # P = (0, 0, 2, 1) (w 2, h 1), T = (0, 0, 2, 1.5) (w 2, h 1.5): I = 2, U = 3, IoU = 2/3 >= 0.5.
    # centres (1, 0.5) and (1, 0.75): rho^2 = 1/16; enclosing box 2 x 1.5: c^2 = 4 + 2.25 = 6.25.
    # v = 4/pi^2 (atan(4/3) - atan(2))^2, alpha = v / (1/3 + v).
    v = 4 / math.pi**2 * (math.atan(4 / 3) - math.atan(2.0)) ** 2
    want = 1 / 3 + (1 / 16) / 6.25 + v / (1 / 3 + v) * v
    p, t = t64((0.0, 0.0, 2.0, 1.0)), t64((0.0, 0.0, 2.0, 1.5))
    for gated in (False, True):
        got = LF.complete_box_iou_loss(p, t, gated=gated, eps=0.0).item()
        assert got == pytest.approx(want, rel=1e-12)


def test_golden_gradient_of_iou_loss():
    # P = (0, 0, 2, 1), T = (1, -0.5, 3, 2): iw = x2 - max(x1, 1) = 1, ih = min(y2, 2) - max(y1, -0.5) = 1;
    # I = 1, area_P = 2, area_T = 5, U = 6. dL/dq = -(dI/dq U - I dU/dq) / U^2 with dU = dA_P - dI:
    # x1: dI = 0, dA_P = -h = -1          -> dL = -(0 + 1) / 36      = -1/36
    # x2: dI = ih = 1, dA_P = h = 1       -> dL = -(6 - 0) / 36      = -1/6
    # y1: dI = -iw = -1, dA_P = -w = -2   -> dL = -(-6 - (-1)) / 36  = 5/36
    # y2: dI = 1, dA_P = 2                -> dL = -(6 - 1) / 36      = -5/36
    p = t64((0.0, 0.0, 2.0, 1.0)).requires_grad_(True)
    LF.iou_loss(p, t64((1.0, -0.5, 3.0, 2.0)), eps=0.0, reduction="sum").backward()
    torch.testing.assert_close(p.grad, t64((-1 / 36, 5 / 36, -1 / 6, -5 / 36)), rtol=1e-12, atol=1e-15)


def test_golden_measures_and_box_utilities():
    p, t = t64(_P), t64(_T)
    assert LF.box_iou(p, t, eps=0.0).item() == pytest.approx(1 / 6)
    assert LF.generalized_box_iou(p, t, eps=0.0).item() == pytest.approx(-1 / 12)
    assert LF.box_area(t64(_P, _T)).tolist() == [8.0, 6.0]
    # (0, 0, 4, 2): xywh (0, 0, 4, 2), cxcywh (2, 1, 4, 2)
    assert LF.box_convert(p, "xyxy", "cxcywh").tolist() == [[2.0, 1.0, 4.0, 2.0]]
    assert LF.box_convert(p, "xyxy", "xywh").tolist() == [[0.0, 0.0, 4.0, 2.0]]
    assert LF.box_convert(t64((2.0, 1.0, 4.0, 2.0)), "cxcywh", "xyxy").tolist() == [list(_P)]
    assert LF.box_convert(t64((1.0, 1.0, 2.0, 3.0)), "xywh", "xyxy").tolist() == [list(_T)]


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_round_trip(in_fmt, out_fmt):
    boxes = random_boxes(16, torch.float64, torch.Generator().manual_seed(1)).reshape(2, 8, 4)
    back = LF.box_convert(LF.box_convert(boxes, in_fmt, out_fmt), out_fmt, in_fmt)
    torch.testing.assert_close(back, boxes)


# ----------------------------------------------------------------------------------------------------
# Reference comparison and properties (hypothesis).

coord = st.floats(-50, 50, allow_nan=False)
size = st.floats(0.1, 40, allow_nan=False)
box = st.tuples(coord, coord, size, size).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=60)
@given(a=box, b=box, shift=st.tuples(st.floats(-100, 100), st.floats(-100, 100)), k=st.floats(0.1, 10))
def test_losses_match_references_and_invariances(a, b, shift, k):
    ta, tb = t64(a), t64(b)
    s = t64((shift[0], shift[1], shift[0], shift[1]))
    values = {}
    for kind, fn in LOSSES.items():
        loss = fn(ta, tb, eps=0.0, reduction="none")
        values[kind] = loss.item()
        assert values[kind] == pytest.approx(1 - REFS[kind](a, b), rel=1e-9, abs=1e-9)
        # 1 - measure: the loss and the evaluation function agree
        torch.testing.assert_close(loss, 1 - MEASURES[kind][0](ta, tb, eps=0.0))
        for other in (fn(tb, ta, eps=0.0, reduction="none"), fn(ta + s, tb + s, eps=0.0, reduction="none")):
            torch.testing.assert_close(other, loss, rtol=1e-6, atol=1e-6)  # symmetric, translation-invariant
        torch.testing.assert_close(fn(ta * k, tb * k, eps=0.0, reduction="none"), loss, rtol=1e-9, atol=1e-9)
        assert fn(ta, ta, eps=0.0).item() == pytest.approx(0.0, abs=1e-12)  # 0 for identical boxes
    assert 0 <= values["iou"] <= 1
    assert 0 <= values["giou"] < 2 and 0 <= values["diou"] < 2
    assert values["ciou"] >= values["diou"] - 1e-12
    assert values["giou"] >= values["iou"] - 1e-12 and values["diou"] >= values["iou"] - 1e-12


@settings(max_examples=25)
@given(a=st.lists(box, min_size=1, max_size=4), b=st.lists(box, min_size=1, max_size=5))
def test_aligned_and_pairwise_agree(a, b):
    ta, tb = t64(*a), t64(*b)
    for kind, (aligned, pairwise) in MEASURES.items():
        full = pairwise(ta, tb, eps=0.0)
        assert full.shape == (len(a), len(b))
        torch.testing.assert_close(full, aligned(ta[:, None], tb[None, :], eps=0.0))
        for i in range(len(a)):
            torch.testing.assert_close(full[i], aligned(ta[i].expand(len(b), 4), tb, eps=0.0))
            for j in range(len(b)):
                assert full[i, j].item() == pytest.approx(REFS[kind](a[i], b[j]), rel=1e-6, abs=1e-6)


def test_measures_are_differentiable_and_broadcast():
    a = random_boxes(6, torch.float64, torch.Generator().manual_seed(3)).reshape(2, 3, 4).requires_grad_(True)
    b = random_boxes(3, torch.float64, torch.Generator().manual_seed(4))
    for aligned, _ in MEASURES.values():
        out = aligned(a, b)  # (2, 3, 4) with (3, 4) broadcasts to (2, 3)
        assert out.shape == (2, 3)
        (g,) = torch.autograd.grad(out.sum(), a)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


# ----------------------------------------------------------------------------------------------------
# Gradients: the fused kernel against autograd of the naive composition, gradcheck, gradgradcheck.


def _generic_pairs(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return random_boxes(n, torch.float64, gen), random_boxes(n, torch.float64, gen)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_fused_gradient_matches_naive_autograd(kind):
    p, t = _generic_pairs()
    w = torch.rand(12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    p1, t1 = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
    p2, t2 = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
    got = LOSSES[kind](p1, t1, eps=0.0, weight=w, reduction="sum")
    want = (naive_loss(kind, p2, t2) * w).sum()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, (p1, t1)), torch.autograd.grad(want, (p2, t2)))


_GC_P = ((0.1, 0.2, 2.3, 1.1), (5.0, 5.0, 6.5, 8.0), (0.0, 0.0, 3.0, 1.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda p, t: LF.iou_loss(p, t, reduction="none"),
        lambda p, t: LF.iou_loss(p, t, mode="log", reduction="none"),
        lambda p, t: LF.generalized_box_iou_loss(p, t, reduction="none"),
        lambda p, t: LF.distance_box_iou_loss(p, t, reduction="none"),
        lambda p, t: LF.complete_box_iou_loss(p, t, gated=True, reduction="none"),
        lambda p, t: LF.complete_box_iou_loss(p, t64(*_GC_P) * 1.5 + 0.3, reduction="none"),
    ],
    ids=["iou", "iou_log", "giou", "diou", "ciou_gated_below_half", "ciou_equal_ratios"],
)
def test_gradcheck_and_gradgradcheck(call):
    # CIoU's alpha is detached, so its gradient is not the derivative of its value, except where
    # alpha v has no gradient anyway: gated off (IoU < 0.5 here) or equal aspect ratios (v = 0, last
    # case). The general CIoU gradient is checked against autograd of the naive formula below.
    # generic overlapping and disjoint pairs, far from ties between corners (kinks)
    p = t64(*_GC_P)
    t = t64((1.05, -0.4, 3.1, 2.2), (0.3, 0.1, 1.7, 1.3), (0.5, 0.25, 2.0, 2.5))
    p.requires_grad_(True)
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(call, (p, t))
    assert torch.autograd.gradgradcheck(call, (p, t))


@pytest.mark.parametrize("gated", [False, True])
def test_ciou_second_derivatives_match_naive_autograd(gated):
    p, t = _generic_pairs(8, seed=2)
    t = t * 0.5 + p * 0.5  # overlapping pairs, so that gating leaves some alpha on
    v = torch.rand(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    grads = []
    for fn in (
        lambda x: LF.complete_box_iou_loss(x, t, gated=gated, eps=0.0, reduction="sum"),
        lambda x: _naive_gated(x, t, gated),
    ):
        x = p.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), x)  # Hessian-vector product
        grads.append((g.detach(), hv))
    torch.testing.assert_close(grads[0], grads[1])


def _naive_gated(x, t, gated):
    loss = naive_loss("ciou", x, t)
    if not gated:
        return loss.sum()
    iou = LF.box_iou(x, t, eps=0.0).detach()
    diou = naive_loss("diou", x, t)
    return torch.where(iou >= 0.5, loss, diou).sum()


def test_weight_and_reductions():
    p, t = _generic_pairs(6)
    w = t64(1.0, 0.0, 2.0, 0.5, 1.0, 3.0)
    none = LF.distance_box_iou_loss(p, t, reduction="none")
    torch.testing.assert_close(LF.distance_box_iou_loss(p, t, weight=w), (none * w).mean())
    torch.testing.assert_close(LF.distance_box_iou_loss(p, t, weight=w, reduction="sum"), (none * w).sum())
    nested = LF.generalized_box_iou_loss(p.reshape(2, 3, 4), t.reshape(2, 3, 4), reduction="none")
    assert nested.shape == (2, 3)
    torch.testing.assert_close(nested.reshape(-1), LF.generalized_box_iou_loss(p, t, reduction="none"))


# ----------------------------------------------------------------------------------------------------
# Robustness: degenerate and inverted boxes, low precision, autocast.

TARGET = (1.0, 1.0, 3.0, 2.0)
DEGENERATE = {
    "zero_width": (4.0, 0.0, 4.0, 3.0),
    "zero_area_point": (5.0, 5.0, 5.0, 5.0),
    "point_inside": (2.0, 1.5, 2.0, 1.5),
    "inverted_x": (6.0, 0.0, 4.5, 1.0),
    "inverted_both": (7.0, 4.0, 5.0, 3.0),
    "line_inside": (1.5, 1.5, 2.5, 1.5),
}


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_degenerate_boxes_give_finite_losses_and_gradients(kind, dtype):
    p = torch.tensor(list(DEGENERATE.values()), dtype=dtype, requires_grad=True)
    t = torch.tensor([TARGET] * len(DEGENERATE), dtype=dtype)
    loss = LOSSES[kind](p, t, reduction="none")
    assert loss.dtype == dtype and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()
    # identical degenerate boxes: finite too
    d = torch.tensor([(2.0, 2.0, 2.0, 2.0), (1.0, 0.0, 1.0, 4.0)], dtype=dtype, requires_grad=True)
    out = LOSSES[kind](d, d.detach(), reduction="none")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(d.grad).all()


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou"])
@pytest.mark.parametrize("name", ["zero_width", "zero_area_point", "inverted_x", "inverted_both"])
def test_degenerate_boxes_are_pulled_toward_the_target(kind, name):
    p = t64(DEGENERATE[name]).requires_grad_(True)
    t = t64(TARGET)
    loss = LOSSES[kind](p, t)
    (g,) = torch.autograd.grad(loss, p)
    step = p.detach() - 0.05 * g / g.norm()
    assert LOSSES[kind](step, t) < loss  # descent lowers the loss
    centre = lambda b: torch.stack((b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]), -1) / 2  # noqa: E731
    # ... and the step moves the box's centre toward the target's
    assert (centre(step) - centre(t)).norm() < (centre(p.detach()) - centre(t)).norm()


def test_ciou_is_finite_for_zero_height_where_the_naive_formula_is_not():
    p = t64((0.0, 1.0, 2.0, 1.0)).requires_grad_(True)  # height 0
    t = t64((0.0, 0.0, 2.0, 2.0))
    (naive_grad,) = torch.autograd.grad(naive_loss("ciou", p, t).sum(), p)
    assert not torch.isfinite(naive_grad).all()  # atan(w / h) with w / h = 2 / 0
    loss = LF.complete_box_iou_loss(p, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()


def test_autocast_and_low_precision_compute_in_float32():
    p, t = _generic_pairs(8)
    want = LF.complete_box_iou_loss(p.float(), t.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = LF.complete_box_iou_loss(p.float(), t.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
    half = LF.complete_box_iou_loss(p.half(), t.half())
    assert half.dtype == torch.float16
    ref = LF.complete_box_iou_loss(p.half().double(), t.half().double())
    torch.testing.assert_close(half.double(), ref, rtol=2e-3, atol=1e-3)


# ----------------------------------------------------------------------------------------------------
# The compiled kernel (large batches) and its fallback.


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_compiled_chunked_path_matches_eager_kernel(kind, monkeypatch):
    pytest.importorskip("torch._inductor")
    p, t = _generic_pairs(40, seed=7)
    # the hard cases too: degenerate and inverted predictions, identical degenerate pairs
    hard = torch.tensor([*DEGENERATE.values(), (2.0, 2.0, 2.0, 2.0), (1.0, 0.0, 1.0, 4.0)], dtype=p.dtype)
    hard_t = torch.tensor([TARGET] * len(DEGENERATE) + [(2.0, 2.0, 2.0, 2.0), (1.0, 0.0, 1.0, 4.0)])
    p, t = torch.cat([p, hard]).float(), torch.cat([t, hard_t.to(p.dtype)]).float()
    w = torch.rand(len(p), generator=torch.Generator().manual_seed(8))
    name = {"iou": "linear"}.get(kind, kind)

    def run(dtype=torch.float32):
        x, y = p.to(dtype).requires_grad_(True), t.to(dtype).requires_grad_(True)
        loss = LOSSES[kind](x, y, reduction="none")
        return (loss, *torch.autograd.grad((loss * w.to(dtype)).sum(), (x, y)))

    eager, eager_half = run(), run(torch.float16)
    # the large-batch path, on a small batch: compiled kernel, chunks of 16 pairs (16 + 16 + 16 + 0-8)
    monkeypatch.setattr(iou_module, "_COMPILE_MIN_PAIRS", 1)
    monkeypatch.setattr(iou_module, "_CHUNK", 16)
    got, got_half = run(), run(torch.float16)
    if "cpu" in iou_module._compile_failed:
        pytest.skip("torch.compile is unavailable here; the eager fallback is tested separately")
    assert {("loss", name, False, "cpu"), ("grad", name, False, "cpu")} <= set(iou_module._compiled)
    for a, b in zip(got, eager):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(got_half, eager_half):  # float16: computed in float32, returned (and clamped) in float16
        assert a.dtype == torch.float16 and torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_compile_failure_falls_back_to_the_eager_kernel(monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no compiler")

    p, t = _generic_pairs(8)
    want = LF.generalized_box_iou_loss(p, t, reduction="none")
    monkeypatch.setattr(iou_module, "_COMPILE_MIN_PAIRS", 1)
    monkeypatch.setattr(iou_module, "_compiled", {})
    monkeypatch.setattr(iou_module, "_compile_failed", set())
    monkeypatch.setattr(torch, "compile", broken_compile)
    x = p.clone().requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        got = LF.generalized_box_iou_loss(x, t, reduction="none")
    torch.testing.assert_close(got, want)
    # backward on that path falls back too, to the same gradient
    x_eager = p.clone().requires_grad_(True)
    with monkeypatch.context() as m:
        m.setattr(iou_module, "_COMPILE_MIN_PAIRS", 1 << 40)
        want_loss = LF.generalized_box_iou_loss(x_eager, t, reduction="none")
        want_grad = torch.autograd.grad(want_loss.sum(), x_eager)[0]
    got.sum().backward()
    torch.testing.assert_close(x.grad, want_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once failed, it stays on the eager kernel silently
        torch.testing.assert_close(LF.generalized_box_iou_loss(p, t, reduction="none"), want)


def test_planes_transpose_is_exact_also_under_autocast():
    boxes = torch.randn(5000, 4) * 1e3
    torch.testing.assert_close(iou_module._planes(boxes), boxes.t().contiguous(), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        planes = iou_module._planes(boxes)
    assert planes.dtype == torch.float32
    torch.testing.assert_close(planes, boxes.t().contiguous(), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------
# Modules


def test_modules_equal_functions_with_options():
    p, t = _generic_pairs(5)
    torch.testing.assert_close(
        LN.IoULoss(mode="log", eps=1e-6)(p, t), LF.iou_loss(p, t, mode="log", eps=1e-6)
    )
    torch.testing.assert_close(
        LN.CompleteBoxIoULoss(gated=True, reduction="sum")(p, t),
        LF.complete_box_iou_loss(p, t, gated=True, reduction="sum"),
    )
    torch.testing.assert_close(LN.DistanceBoxIoULoss(eps=0.0)(p, t), LF.distance_box_iou_loss(p, t, eps=0.0))
    assert LN.GeneralizedBoxIoULoss().state_dict() == {}


# ----------------------------------------------------------------------------------------------------
# Errors: every path, with its message.

_B = torch.zeros(3, 4)


@pytest.mark.parametrize("fn", list(LOSSES.values()), ids=list(LOSSES))
def test_loss_argument_errors(fn):
    name = fn.__name__
    with pytest.raises(
        TypeError, match=rf"{name}: input must be a floating-point tensor; got dtype torch.int64"
    ):
        fn(_B.long(), _B)
    with pytest.raises(TypeError, match=rf"{name}: target must be a floating-point tensor"):
        fn(_B, _B.long())
    with pytest.raises(TypeError, match=rf"{name}: input must be a Tensor; got list"):
        fn([0.0, 0.0, 1.0, 1.0], _B)
    with pytest.raises(ValueError, match=rf"{name}: expected input of shape \(\.\.\., 4\), got \(3, 5\)"):
        fn(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(
        ValueError, match=rf"{name}: expected target of the same shape as input \(3, 4\), got \(2, 4\)"
    ):
        fn(_B, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=rf"{name}: eps must be a finite number >= 0; got -1"):
        fn(_B, _B, eps=-1)
    with pytest.raises(TypeError, match=rf"{name}: eps must be a number; got str"):
        fn(_B, _B, eps="small")
    with pytest.raises(
        ValueError, match=rf"{name}: weight must broadcast to the unreduced loss of shape \(3,\)"
    ):
        fn(_B, _B, weight=torch.ones(4))


def test_option_errors():
    with pytest.raises(ValueError, match=r"iou_loss: mode must be 'linear' or 'log'; got 'sqrt'"):
        LF.iou_loss(_B, _B, mode="sqrt")
    with pytest.raises(TypeError, match=r"complete_box_iou_loss: gated must be a bool; got int"):
        LF.complete_box_iou_loss(_B, _B, gated=1)
    with pytest.raises(ValueError, match=r"IoULoss: mode must be 'linear' or 'log'; got 'sqrt'"):
        LN.IoULoss(mode="sqrt")
    with pytest.raises(ValueError, match=r"IoULoss: eps must be a finite number >= 0; got -1"):
        LN.IoULoss(eps=-1)
    with pytest.raises(ValueError, match=r"GeneralizedBoxIoULoss: eps must be a finite number >= 0"):
        LN.GeneralizedBoxIoULoss(eps=-1)
    with pytest.raises(ValueError, match=r"DistanceBoxIoULoss: reduction must be 'none', 'mean' or 'sum'"):
        LN.DistanceBoxIoULoss(reduction="avg")
    with pytest.raises(TypeError, match=r"CompleteBoxIoULoss: gated must be a bool; got str"):
        LN.CompleteBoxIoULoss(gated="yes")
    with pytest.raises(ValueError, match=r"CompleteBoxIoULoss: eps must be a finite number >= 0"):
        LN.CompleteBoxIoULoss(eps=-1.0)


def test_box_utility_errors():
    with pytest.raises(
        ValueError, match=r"box_convert: in_fmt must be 'xyxy', 'xywh' or 'cxcywh'; got 'yxyx'"
    ):
        LF.box_convert(_B, "yxyx", "xyxy")
    with pytest.raises(
        ValueError, match=r"box_convert: out_fmt must be 'xyxy', 'xywh' or 'cxcywh'; got 'xy'"
    ):
        LF.box_convert(_B, "xyxy", "xy")
    with pytest.raises(TypeError, match=r"box_convert: boxes must be a floating-point tensor"):
        LF.box_convert(_B.long(), "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"box_convert: expected boxes of shape \(\.\.\., 4\), got \(3, 2\)"):
        LF.box_convert(torch.zeros(3, 2), "xyxy", "xywh")
    with pytest.raises(TypeError, match=r"box_area: boxes must be a floating-point tensor"):
        LF.box_area(_B.int())
    with pytest.raises(ValueError, match=r"box_area: expected boxes of shape \(\.\.\., 4\), got \(4, 3\)"):
        LF.box_area(torch.zeros(4, 3))
    for aligned, pairwise in MEASURES.values():
        for fn in (aligned, pairwise):
            name = fn.__name__
            with pytest.raises(TypeError, match=rf"{name}: boxes1 must be a floating-point tensor"):
                fn(_B.long(), _B)
            with pytest.raises(TypeError, match=rf"{name}: boxes2 must be a floating-point tensor"):
                fn(_B, _B.long())
            with pytest.raises(
                ValueError, match=rf"{name}: expected boxes1 of shape \(\.\.\., 4\), got \(3, 3\)"
            ):
                fn(torch.zeros(3, 3), _B)
            with pytest.raises(
                ValueError, match=rf"{name}: expected boxes2 of shape \(\.\.\., 4\), got \(3, 3\)"
            ):
                fn(_B, torch.zeros(3, 3))
            with pytest.raises(ValueError, match=rf"{name}: eps must be a finite number >= 0; got -0.5"):
                fn(_B, _B, eps=-0.5)
        with pytest.raises(
            ValueError, match=rf"{aligned.__name__}: expected boxes2 broadcastable with boxes1"
        ):
            aligned(_B, torch.zeros(2, 4))
        with pytest.raises(
            ValueError, match=rf"{pairwise.__name__}: expected boxes1 of shape \(N, 4\), got \(4,\)"
        ):
            pairwise(torch.zeros(4), _B)
        with pytest.raises(
            ValueError, match=rf"{pairwise.__name__}: expected boxes2 of shape \(M, 4\), got \(1, 3, 4\)"
        ):
            pairwise(_B, torch.zeros(1, 3, 4))


def test_validate_boxes():
    LF.validate_boxes(t64((0.0, 0.0, 1.0, 2.0), (3.0, 3.0, 3.0, 3.0)))  # zero area is valid
    with pytest.raises(
        ValueError,
        match=r"validate_boxes: target must hold finite xyxy boxes .* got 1 invalid box\(es\), "
        r"the first at index \(1,\): \[2\.0, 0\.0, 1\.0, 1\.0\] \(x2 < x1\)",
    ):
        LF.validate_boxes(t64((0.0, 0.0, 1.0, 1.0), (2.0, 0.0, 1.0, 1.0)), "target")
    with pytest.raises(
        ValueError, match=r"got 2 invalid box\(es\), the first at index \(0, 1\): .* \(y2 < y1\)"
    ):
        LF.validate_boxes(
            t64((0.0, 0.0, 1.0, 1.0), (0.0, 2.0, 1.0, 1.0), (0.0, 2.0, 1.0, 1.0)).reshape(1, 3, 4)
        )
    with pytest.raises(ValueError, match=r"index \(0,\): \[0\.0, nan, 1\.0, 1\.0\] \(not finite\)"):
        LF.validate_boxes(t64((0.0, math.nan, 1.0, 1.0)))
    with pytest.raises(TypeError, match=r"validate_boxes: boxes must be a floating-point tensor"):
        LF.validate_boxes(_B.long())
    with pytest.raises(
        ValueError, match=r"validate_boxes: expected boxes of shape \(\.\.\., 4\), got \(2,\)"
    ):
        LF.validate_boxes(torch.zeros(2))


# ----------------------------------------------------------------------------------------------------
# Optional parity with torchvision (installed only in the peers' environment).


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou"])
def test_parity_with_torchvision(kind):
    ops = pytest.importorskip("torchvision.ops")
    peer = {
        "giou": ops.generalized_box_iou_loss,
        "diou": ops.distance_box_iou_loss,
        "ciou": ops.complete_box_iou_loss,
    }[kind]
    p, t = _generic_pairs(32, seed=11)
    p1, p2 = p.clone().requires_grad_(True), p.clone().requires_grad_(True)
    ours = LOSSES[kind](p1, t, reduction="sum")
    theirs = peer(p2, t, reduction="sum")
    # torchvision adds eps to the heights only inside CIoU's alpha, not in w/h: tiny differences
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(
        torch.autograd.grad(ours, p1)[0], torch.autograd.grad(theirs, p2)[0], rtol=1e-5, atol=1e-6
    )
    # intended deviation: finite gradients for a zero-height box, where torchvision's CIoU gives NaN
    z1, z2 = t64((0.0, 1.0, 2.0, 1.0)).requires_grad_(True), t64((0.0, 1.0, 2.0, 1.0)).requires_grad_(True)
    LOSSES[kind](z1, t[:1]).backward()
    peer(z2, t[:1]).sum().backward()
    assert torch.isfinite(z1.grad).all()
    if kind == "ciou":
        assert not torch.isfinite(z2.grad).all()
