"""Box utilities and the IoU-family losses: golden values, references, properties, gradients, robustness,
torchvision's names and cases, and the kernel (fast path) against the definition at the hard cases."""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit.functional as LF
import losskit.nn as LN
from cases_boxes import random_boxes
from losskit._kernels import boxes as kernel
from losskit.functional.iou import box_loss_definition

# ----------------------------------------------------------------------------------------------------
# Independent float64 references, written from the papers' definitions with plain `math` on tuples
# (valid boxes: x1 < x2, y1 < y2).


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
PAIRWISE = {
    "iou": LF.box_iou,
    "giou": LF.generalized_box_iou,
    "diou": LF.distance_box_iou,
    "ciou": LF.complete_box_iou,
}
ALIGNED = {
    "iou": LF.aligned_box_iou,
    "giou": LF.aligned_generalized_box_iou,
    "diou": LF.aligned_distance_box_iou,
    "ciou": LF.aligned_complete_box_iou,
}
KIND = {"iou": "linear", "giou": "giou", "diou": "diou", "ciou": "ciou"}  # the kernel's names


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
    v = 4 / math.pi**2 * (torch.atan((u2 - u1) / (v2 - v1)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
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
        "iou_log": lambda: LF.iou_loss(p, t, mode="log", eps=1e-300),
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
    want = t64((-1 / 36, 5 / 36, -1 / 6, -5 / 36))
    for eps in (0.0, 1e-300):  # the definition (eps = 0) and the kernel (eps > 0)
        p = t64((0.0, 0.0, 2.0, 1.0)).requires_grad_(True)
        LF.iou_loss(p, t64((1.0, -0.5, 3.0, 2.0)), eps=eps, reduction="sum").backward()
        torch.testing.assert_close(p.grad, want, rtol=1e-12, atol=1e-15)


def test_golden_gradients_at_identical_boxes_are_zero():
    # At identical boxes every min/max is a tie, shared equally (autograd's rule): the IoU and the
    # penalties are at their optimum and the gradient is exactly 0 on the kernel and the definition.
    p = t64((0.0, 0.0, 4.0, 2.0), (1.0, 1.0, 3.0, 4.0))
    for kind, fn in LOSSES.items():
        for eps in (0.0, 1e-7):
            x = p.clone().requires_grad_(True)
            loss = fn(x, p, eps=eps, reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
            assert loss.item() == pytest.approx(0.0, abs=1e-6), kind
            torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-6, rtol=0, msg=kind)


# ----------------------------------------------------------------------------------------------------
# torchvision's names: pairwise measures with torchvision's signatures, cases and values.
# The cases below are torchvision's own (test/test_ops.py: TestBoxIou, TestGeneralizedBoxIou,
# TestDistanceBoxIoU, TestCompleteBoxIou, TestBoxArea, TestBoxConvert), expected values included.

INT_BOXES = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300], [0, 0, 25, 25]]
INT_BOXES2 = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]
FLOAT_BOXES = [
    [285.3538, 185.5758, 1193.5110, 851.4551],
    [285.1472, 188.7374, 1192.4984, 851.0669],
    [279.2440, 197.9812, 1189.4746, 849.2019],
]
FLOAT_EXPECTED = [[1.0, 0.9933, 0.9673], [0.9933, 1.0, 0.9737], [0.9673, 0.9737, 1.0]]
_DIOU_INT = [
    [1.0, 0.1875, -0.4444],
    [0.1875, 1.0, -0.5625],
    [-0.4444, -0.5625, 1.0],
    [-0.0781, 0.1875, -0.6267],
]
INT_EXPECTED = {
    "iou": [[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0625, 0.25, 0.0]],
    "giou": [[1.0, 0.25, -0.7778], [0.25, 1.0, -0.8611], [-0.7778, -0.8611, 1.0], [0.0625, 0.25, -0.8819]],
    "diou": _DIOU_INT,
    "ciou": _DIOU_INT,
}


@pytest.mark.parametrize("kind", list(PAIRWISE))
@pytest.mark.parametrize("dtype", [torch.int16, torch.int32, torch.int64])
def test_torchvision_cases_integer_boxes(kind, dtype):
    out = PAIRWISE[kind](torch.tensor(INT_BOXES, dtype=dtype), torch.tensor(INT_BOXES2, dtype=dtype))
    assert out.shape == (4, 3) and out.dtype == torch.float32  # pairwise, a float result
    torch.testing.assert_close(out, torch.tensor(INT_EXPECTED[kind]), rtol=0.0, atol=1e-4)


def _rounded_reference(kind, dtype):
    """The measure in float64 of the boxes as ``dtype`` holds them (what computing in float32 gives)."""
    boxes = torch.tensor(FLOAT_BOXES, dtype=dtype).double().tolist()
    return torch.tensor([[REFS[kind](a, b) for b in boxes] for a in boxes], dtype=torch.float64)


@pytest.mark.parametrize("kind", list(PAIRWISE))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torchvision_cases_float_boxes_every_dtype(kind, dtype):
    # torchvision's expected values, at its tolerances (float16: 0.002; float32/64: 1e-3); bfloat16 holds
    # the coordinates to about 4, so its tolerance is wider. The old aligned functions gave NaN (float16)
    # and 1.0 (bfloat16) here. Computed in float32, the values are those of the rounded coordinates to
    # float32 rounding, and exactly 1 for a box against itself.
    boxes = torch.tensor(FLOAT_BOXES, dtype=dtype)
    out = PAIRWISE[kind](boxes, boxes)
    assert out.shape == (3, 3)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    atol = {torch.float16: 0.002, torch.bfloat16: 0.02}.get(dtype, 1e-3)
    torch.testing.assert_close(
        out.double(), torch.tensor(FLOAT_EXPECTED, dtype=torch.float64), rtol=0, atol=atol
    )
    torch.testing.assert_close(out.double(), _rounded_reference(kind, dtype), rtol=0, atol=2e-6)
    assert torch.equal(out.diagonal(), torch.ones(3, dtype=out.dtype))


@pytest.mark.parametrize("kind", list(PAIRWISE))
def test_pairwise_is_every_pair_also_when_n_equals_m(kind):
    # The trap the names set: with N == M, an aligned function returns the diagonal (N,) silently.
    a = random_boxes(5, torch.float64, torch.Generator().manual_seed(1))
    b = random_boxes(5, torch.float64, torch.Generator().manual_seed(2))
    full = PAIRWISE[kind](a, b, **({"eps": 0.0} if kind in ("diou", "ciou") else {}))
    assert full.shape == (5, 5)
    for i in range(5):
        for j in range(5):
            assert full[i, j].item() == pytest.approx(
                REFS[kind](a[i].tolist(), b[j].tolist()), rel=1e-9, abs=1e-9
            )
    torch.testing.assert_close(full.diagonal(), ALIGNED[kind](a, b, eps=0.0))


@pytest.mark.parametrize("kind", list(PAIRWISE))
def test_pairwise_batched_leading_dimensions_broadcast(kind):
    gen = torch.Generator().manual_seed(3)
    a = random_boxes(6, torch.float64, gen).reshape(2, 3, 4)
    b = random_boxes(10, torch.float64, gen).reshape(2, 5, 4)
    out = PAIRWISE[kind](a, b)
    assert out.shape == (2, 3, 5)
    for k in range(2):
        torch.testing.assert_close(out[k], PAIRWISE[kind](a[k], b[k]))
    # (N, 4) against (B, M, 4): boxes1 broadcasts over the batch, as in torchvision
    torch.testing.assert_close(
        PAIRWISE[kind](a[0], b), torch.stack([PAIRWISE[kind](a[0], b[k]) for k in range(2)])
    )


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_iou_fmt(fmt):
    a = random_boxes(4, torch.float64, torch.Generator().manual_seed(4))
    b = random_boxes(3, torch.float64, torch.Generator().manual_seed(5))
    got = LF.box_iou(LF.box_convert(a, "xyxy", fmt), LF.box_convert(b, "xyxy", fmt), fmt=fmt)
    torch.testing.assert_close(got, LF.box_iou(a, b))


def test_pairwise_deliberate_differences_from_torchvision():
    # two zero-area boxes: 0/0 is 0 (torchvision: NaN); the same point against itself included
    point, line = t64((1.0, 1.0, 1.0, 1.0)), t64((0.0, 2.0, 3.0, 2.0))
    for kind, fn in PAIRWISE.items():
        out = fn(torch.cat([point, line]), torch.cat([point, line]))
        assert torch.isfinite(out).all(), kind
        assert out[0, 0].item() == 0.0 and out[1, 1].item() == 0.0  # no area, no overlap
    # an inverted box has zero area at its corners: IoU 0, and GIoU/DIoU from its enclosing box
    inverted, box = t64((2.0, 0.0, 0.0, 2.0)), t64((0.0, 0.0, 2.0, 2.0))
    assert LF.box_iou(inverted, box).item() == 0.0  # torchvision: NaN (area -4 + 4 - 0 = 0)
    assert LF.generalized_box_iou(inverted, box).item() == pytest.approx(0.0 - (4.0 - 4.0) / 4.0)
    # NaN in, NaN out
    nan = t64((0.0, math.nan, 1.0, 1.0))
    for fn in PAIRWISE.values():
        assert torch.isnan(fn(nan, box)).all()


def test_pairwise_signatures_are_torchvision_s():
    want = {
        "box_iou": "(boxes1, boxes2, fmt='xyxy')",
        "generalized_box_iou": "(boxes1, boxes2)",
        "distance_box_iou": "(boxes1, boxes2, eps=1e-07)",
        "complete_box_iou": "(boxes1, boxes2, eps=1e-07)",
        "box_area": "(boxes, fmt='xyxy')",
        "box_convert": "(boxes, in_fmt, out_fmt)",
    }

    def plain(fn):
        sig = inspect.signature(fn)
        params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
        return str(sig.replace(parameters=params, return_annotation=sig.empty))

    for name, text in want.items():
        assert plain(getattr(LF, name)) == text, name


def test_pairwise_signatures_equal_torchvision_s_installed():
    ops = pytest.importorskip("torchvision.ops")

    def plain(fn):
        sig = inspect.signature(fn)
        params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
        return sig.replace(parameters=params, return_annotation=sig.empty)

    for name in (
        "box_iou",
        "generalized_box_iou",
        "distance_box_iou",
        "complete_box_iou",
        "box_area",
        "box_convert",
    ):
        assert plain(getattr(LF, name)) == plain(getattr(ops, name)), name


@pytest.mark.parametrize("kind", list(PAIRWISE))
def test_pairwise_parity_with_torchvision(kind):
    ops = pytest.importorskip("torchvision.ops")
    peer = getattr(ops, PAIRWISE[kind].__name__)
    gen = torch.Generator().manual_seed(6)
    a, b = random_boxes(7, torch.float32, gen), random_boxes(9, torch.float32, gen)
    torch.testing.assert_close(PAIRWISE[kind](a, b), peer(a, b), rtol=1e-6, atol=1e-6)
    ints1, ints2 = torch.tensor(INT_BOXES), torch.tensor(INT_BOXES2)
    torch.testing.assert_close(PAIRWISE[kind](ints1, ints2), peer(ints1, ints2), rtol=1e-6, atol=1e-6)
    # float16: no worse than torchvision against the float64 value of the rounded coordinates
    half = torch.tensor(FLOAT_BOXES, dtype=torch.float16)
    ref = _rounded_reference(kind, torch.float16)
    ours = (PAIRWISE[kind](half, half).double() - ref).abs().max()
    theirs = (peer(half, half).double() - ref).abs().max()
    assert ours <= theirs
    # the deliberate difference: torchvision gives NaN for two zero-area boxes
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert torch.isnan(peer(point, point)).all() and PAIRWISE[kind](point, point).item() == 0.0


def test_aligned_measures_are_one_minus_the_losses_and_the_pairwise_diagonal():
    gen = torch.Generator().manual_seed(7)
    p, t = random_boxes(6, torch.float64, gen), random_boxes(6, torch.float64, gen)
    for kind in LOSSES:
        for eps in (0.0, 1e-3):
            torch.testing.assert_close(
                1 - ALIGNED[kind](p, t, eps=eps), LOSSES[kind](p, t, eps=eps, reduction="none")
            )
    for kind in ("iou", "giou"):  # torchvision's IoU and GIoU have no eps: the aligned ones with eps = 0
        torch.testing.assert_close(PAIRWISE[kind](p, t).diagonal(), ALIGNED[kind](p, t, eps=0.0))
    for kind in ("diou", "ciou"):  # eps in the diagonal (and alpha), not in the union
        want = ALIGNED[kind](p, t, eps=0.0)
        torch.testing.assert_close(PAIRWISE[kind](p, t, eps=0.0).diagonal(), want)


def test_aligned_measures_broadcast_are_differentiable_and_accept_integers():
    a = random_boxes(6, torch.float64, torch.Generator().manual_seed(3)).reshape(2, 3, 4).requires_grad_(True)
    b = random_boxes(3, torch.float64, torch.Generator().manual_seed(4))
    for fn in ALIGNED.values():
        out = fn(a, b)  # (2, 3, 4) with (3, 4) broadcasts to (2, 3)
        assert out.shape == (2, 3)
        (g,) = torch.autograd.grad(out.sum(), a)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        ints = torch.tensor(INT_BOXES[:3]), torch.tensor(INT_BOXES2)
        out = fn(*ints)
        assert out.dtype == torch.float32  # integer boxes, a float result
        torch.testing.assert_close(out, fn(*(b.double() for b in ints)).float())


# ----------------------------------------------------------------------------------------------------
# box_area and box_convert: torchvision's semantics


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_box_area_integer_boxes(dtype):
    out = LF.box_area(torch.tensor([[0, 0, 100, 100], [0, 0, 0, 0]], dtype=dtype))
    assert out.tolist() == [10000, 0]
    assert out.dtype == (torch.int64 if dtype == torch.int64 else torch.int32)  # torchvision's upcast


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_area_float_boxes(dtype):
    out = LF.box_area(torch.tensor(FLOAT_BOXES, dtype=dtype))
    want = torch.tensor([604723.0806, 600965.4666, 592761.0085], dtype=dtype)
    torch.testing.assert_close(out, want, rtol=0.0, atol=1e-4)


def test_box_area_float16_in_float32():
    boxes = torch.tensor(
        [[2.825, 1.8625, 3.90, 4.85], [2.825, 4.875, 19.20, 5.10], [2.925, 1.80, 8.90, 4.90]],
        dtype=torch.float16,
    )
    out = LF.box_area(boxes)
    assert out.dtype == torch.float32  # torchvision's _upcast
    torch.testing.assert_close(out, torch.tensor([3.2170, 3.7108, 18.5071]), rtol=0.0, atol=0.01)


def test_box_area_is_signed_and_takes_a_format():
    boxes = t64((0.0, 0.0, 2.0, 3.0), (1.0, 1.0, 0.0, 2.0), (3.0, 3.0, 1.0, 1.0))
    assert LF.box_area(boxes).tolist() == [6.0, -1.0, 4.0]  # torchvision's product, inverted boxes too
    assert LF.box_area(t64((5.0, 5.0, 2.0, 3.0)), fmt="xywh").tolist() == [6.0]
    assert LF.box_area(t64((5.0, 5.0, 2.0, 3.0)), fmt="cxcywh").tolist() == [6.0]


_CONVERT_XYXY = [[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 30, 35], [23, 35, 93, 95]]
_CONVERT_XYWH = [[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 20, 20], [23, 35, 70, 60]]
_CONVERT_CXCYWH = [[50, 50, 100, 100], [0, 0, 0, 0], [20, 25, 20, 20], [58, 65, 70, 60]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_box_convert_torchvision_cases(dtype):
    tables = {"xyxy": _CONVERT_XYXY, "xywh": _CONVERT_XYWH, "cxcywh": _CONVERT_CXCYWH}
    for a, rows_a in tables.items():
        for b, rows_b in tables.items():
            got = LF.box_convert(torch.tensor(rows_a, dtype=dtype), a, b)
            torch.testing.assert_close(got, torch.tensor(rows_b, dtype=got.dtype), msg=f"{a} -> {b}")
            # torchvision's dtypes: integer boxes stay integer unless a centre is halved
            halves = dtype == torch.int64 and "cxcywh" in (a, b) and a != b
            assert got.dtype == (torch.float32 if halves else dtype), (a, b)


def test_box_convert_same_format_is_a_copy_and_round_trips():
    boxes = random_boxes(16, torch.float64, torch.Generator().manual_seed(1)).reshape(2, 8, 4)
    same = LF.box_convert(boxes, "xyxy", "xyxy")
    assert same is not boxes and torch.equal(same, boxes)
    for a in ("xyxy", "xywh", "cxcywh"):
        for b in ("xyxy", "xywh", "cxcywh"):
            torch.testing.assert_close(LF.box_convert(LF.box_convert(boxes, a, b), b, a), boxes)


def test_box_convert_float16_computes_in_float32():
    # 40000 + 40000 overflows float16 (max 65504); the centre 40000 does not
    boxes = torch.tensor([[40000.0, 0.0, 40000.0, 2.0]], dtype=torch.float16)
    out = LF.box_convert(boxes, "xyxy", "cxcywh")
    assert out.dtype == torch.float16 and out.tolist() == [[40000.0, 1.0, 0.0, 2.0]]


# ----------------------------------------------------------------------------------------------------
# Reference comparison and properties (hypothesis).

coord = st.floats(-50, 50, allow_nan=False)
size = st.floats(0.1, 40, allow_nan=False)
box = st.tuples(coord, coord, size, size).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=60, deadline=None)
@given(a=box, b=box, shift=st.tuples(st.floats(-100, 100), st.floats(-100, 100)), k=st.floats(0.1, 10))
def test_losses_match_references_and_invariances(a, b, shift, k):
    ta, tb = t64(a), t64(b)
    s = t64((shift[0], shift[1], shift[0], shift[1]))
    values = {}
    for kind, fn in LOSSES.items():
        loss = fn(ta, tb, eps=0.0, reduction="none")
        values[kind] = loss.item()
        assert values[kind] == pytest.approx(1 - REFS[kind](a, b), rel=1e-9, abs=1e-9)
        torch.testing.assert_close(loss, 1 - ALIGNED[kind](ta, tb, eps=0.0))  # the loss is 1 - the measure
        for other in (fn(tb, ta, eps=0.0, reduction="none"), fn(ta + s, tb + s, eps=0.0, reduction="none")):
            torch.testing.assert_close(other, loss, rtol=1e-6, atol=1e-6)  # symmetric, translation-invariant
        torch.testing.assert_close(fn(ta * k, tb * k, eps=0.0, reduction="none"), loss, rtol=1e-9, atol=1e-9)
        assert fn(ta, ta, eps=0.0).item() == pytest.approx(0.0, abs=1e-12)  # 0 for identical boxes
        # the kernel (eps > 0, a gradient to compute) against the reference too
        x = ta.clone().requires_grad_(True)
        assert fn(x, tb, eps=1e-300).item() == pytest.approx(values[kind], rel=1e-9, abs=1e-9)
    assert 0 <= values["iou"] <= 1
    assert 0 <= values["giou"] < 2 and 0 <= values["diou"] < 2
    assert values["ciou"] >= values["diou"] - 1e-12
    assert values["giou"] >= values["iou"] - 1e-12 and values["diou"] >= values["iou"] - 1e-12


# ----------------------------------------------------------------------------------------------------
# Gradients: against autograd of the naive composition, gradcheck, gradgradcheck.


def _generic_pairs(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return random_boxes(n, torch.float64, gen), random_boxes(n, torch.float64, gen)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("eps", [0.0, 1e-300], ids=["definition", "kernel"])
def test_gradient_matches_naive_autograd(kind, eps):
    p, t = _generic_pairs()
    w = torch.rand(12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    p1, p2 = p.clone().requires_grad_(True), p.clone().requires_grad_(True)
    got = LOSSES[kind](p1, t, eps=eps, weight=w, reduction="sum")
    want = (naive_loss(kind, p2, t) * w).sum()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, p1), torch.autograd.grad(want, p2))
    # a target that requires grad takes the definition: both gradients
    p3, t3 = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
    p4, t4 = p.clone().requires_grad_(True), t.clone().requires_grad_(True)
    got = LOSSES[kind](p3, t3, eps=eps, weight=w, reduction="sum")
    want = (naive_loss(kind, p4, t4) * w).sum()
    torch.testing.assert_close(torch.autograd.grad(got, (p3, t3)), torch.autograd.grad(want, (p4, t4)))


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
@pytest.mark.parametrize("target_grad", [False, True], ids=["kernel", "definition"])
def test_gradcheck_and_gradgradcheck(call, target_grad):
    # CIoU's alpha is detached, so its gradient is not the derivative of its value, except where
    # alpha v has no gradient anyway: gated off (IoU < 0.5 here) or equal aspect ratios (v = 0, last
    # case). The general CIoU gradient is checked against autograd of the naive formula above.
    # Generic overlapping and disjoint pairs, far from ties between corners (kinks). With a target
    # that needs no gradient the first derivative is the kernel's and the second the definition's.
    p = t64(*_GC_P).requires_grad_(True)
    t = t64((1.05, -0.4, 3.1, 2.2), (0.3, 0.1, 1.7, 1.3), (0.5, 0.25, 2.0, 2.5)).requires_grad_(target_grad)
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
        lambda x: LF.complete_box_iou_loss(x, t, gated=gated, eps=1e-300, reduction="sum"),
        lambda x: _naive_gated(x, t, gated),
    ):
        x = p.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), x)  # Hessian-vector product
        grads.append((g.detach(), hv))
    torch.testing.assert_close(grads[0], grads[2])
    torch.testing.assert_close(grads[1], grads[2])


def _naive_gated(x, t, gated):
    loss = naive_loss("ciou", x, t)
    if not gated:
        return loss.sum()
    iou = LF.aligned_box_iou(x, t, eps=0.0).detach()
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
# Robustness: degenerate and inverted boxes, eps = 0, low precision, autocast.

TARGET = (1.0, 1.0, 3.0, 2.0)
DEGENERATE = {
    "zero_width": (4.0, 0.0, 4.0, 3.0),
    "zero_area_point": (5.0, 5.0, 5.0, 5.0),
    "point_inside": (2.0, 1.5, 2.0, 1.5),
    "inverted_x": (6.0, 0.0, 4.5, 1.0),
    "inverted_both": (7.0, 4.0, 5.0, 3.0),
    "line_inside": (1.5, 1.5, 2.5, 1.5),
}
# identical zero-area pairs: a point, a vertical line, a horizontal line
IDENTICAL_DEGENERATE = ((2.0, 2.0, 2.0, 2.0), (1.0, 0.0, 1.0, 4.0), (0.0, 3.0, 5.0, 3.0))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("eps", [0.0, 1e-7])
def test_degenerate_boxes_give_finite_losses_and_gradients(kind, dtype, eps):
    p = torch.tensor(list(DEGENERATE.values()), dtype=dtype, requires_grad=True)
    t = torch.tensor([TARGET] * len(DEGENERATE), dtype=dtype)
    loss = LOSSES[kind](p, t, eps=eps, reduction="none")
    assert loss.dtype == dtype and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()
    # identical degenerate boxes: IoU 0 (no area), loss 1, and a finite gradient. Two overlapping lines
    # have union eps and a gradient of order 1/eps that grows them (beyond float16's range)
    d = torch.tensor(IDENTICAL_DEGENERATE, dtype=dtype, requires_grad=True)
    out = LOSSES[kind](d, d.detach(), eps=eps, reduction="none")
    out.sum().backward()
    torch.testing.assert_close(out.float(), torch.ones(3))
    finite = torch.isfinite(d.grad)
    if dtype == torch.float16 and eps > 0:
        assert finite[0].all()  # the point: gradient 0; the lines overflow float16 as any cast would
    else:
        assert finite.all()


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_eps_zero_is_defined_for_identical_point_boxes(kind):
    # eps = 0 was NaN (value and gradient) for two identical point boxes: 0/0 is now 0 (IoU 0, no
    # penalty), the loss 1 and the gradient 0.
    pts = t64((2.0, 2.0, 2.0, 2.0), (-1.0, 3.0, -1.0, 3.0)).requires_grad_(True)
    loss = LOSSES[kind](pts, pts.detach(), eps=0.0, reduction="none")
    assert loss.tolist() == [1.0, 1.0]
    (g,) = torch.autograd.grad(loss.sum(), pts)
    assert torch.equal(g, torch.zeros_like(g))


def test_log_iou_loss_needs_positive_eps():
    with pytest.raises(ValueError, match=r"iou_loss: eps must be a finite number > 0; got 0.0"):
        LF.iou_loss(_B, _B, mode="log", eps=0.0)
    with pytest.raises(ValueError, match=r"IoULoss: eps must be a finite number > 0; got 0"):
        LN.IoULoss(mode="log", eps=0)


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
    for eps in (0.0, 1e-7):
        p.grad = None
        loss = LF.complete_box_iou_loss(p, t, eps=eps)
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
# The kernel (the fast path) against the definition and float64 at the hard cases.


def _hard_pairs(dtype=torch.float64):
    """Random pairs, then the hard cases: degenerate, inverted, point boxes against a target; identical
    boxes, identical degenerate boxes, shared edges (ties in every min and max), disjoint boxes."""
    p, t = _generic_pairs(23, seed=7)
    hard_p = [*DEGENERATE.values(), *IDENTICAL_DEGENERATE, _P, _T, (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 2.0, 1.0)]
    hard_t = [TARGET] * len(DEGENERATE) + [
        *IDENTICAL_DEGENERATE,
        _P,
        _T,
        (0.0, 0.0, 1.0, 2.0),
        (2.0, 1.0, 3.0, 3.0),
    ]
    p = torch.cat([p, t64(*hard_p), t64(*hard_t)])  # ... and each hard target as a prediction
    t = torch.cat([t, t64(*hard_t), t64(*hard_p)])
    return p.to(dtype), t.to(dtype)


KERNEL_KINDS = [
    ("linear", False),
    ("log", False),
    ("giou", False),
    ("diou", False),
    ("ciou", False),
    ("ciou", True),
]


def _kernel(kind, p, t, eps, gated, chunk):
    x = p.clone().requires_grad_(True)
    loss = kernel.box_loss(kind, x, t, eps, gated, box_loss_definition, chunk=chunk)
    (g,) = torch.autograd.grad(loss, x, torch.linspace(0.5, 1.5, len(p), dtype=p.dtype))
    return loss.detach(), g


def _definition(kind, p, t, eps, gated):
    x = p.clone().requires_grad_(True)
    loss = box_loss_definition(kind, x, t, eps, gated)
    (g,) = torch.autograd.grad(loss, x, torch.linspace(0.5, 1.5, len(p), dtype=p.dtype))
    return loss.detach(), g


@pytest.mark.parametrize(("kind", "gated"), KERNEL_KINDS)
@pytest.mark.parametrize("chunk", [7, 16, 1 << 15])  # ragged chunks, exact chunks, one chunk
def test_kernel_equals_the_definition_at_the_hard_cases(kind, gated, chunk):
    p, t = _hard_pairs()
    for eps in (1e-7, 1e-300):
        loss, g = _kernel(kind, p, t, eps, gated, chunk)
        want_loss, want_g = _definition(kind, p, t, eps, gated)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()
        torch.testing.assert_close(loss, want_loss, rtol=1e-13, atol=1e-15)  # the definition's operations
        torch.testing.assert_close(g, want_g, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("kind", "gated"), KERNEL_KINDS)
def test_kernel_is_no_less_accurate_than_the_definition_in_float32(kind, gated):
    # against float64, at the hard cases and on float16-rounded boxes (what float16 callers hand in)
    p, t = _hard_pairs()
    half_p, half_t = _generic_pairs(40, seed=8)
    p = torch.cat([p, (half_p * 37).half().double()]).float().double()  # float32-exact inputs
    t = torch.cat([t, (half_t * 37).half().double()]).float().double()
    ref_loss, ref_g = _definition(kind, p, t, 1e-7, gated)
    k_loss, k_g = _kernel(kind, p.float(), t.float(), 1e-7, gated, 16)
    d_loss, d_g = _definition(kind, p.float(), t.float(), 1e-7, gated)
    scale = ref_g.abs().clamp_min(1.0)  # relative where large, absolute where small
    for got, base, ref in ((k_loss, d_loss, ref_loss), (k_g / scale, d_g / scale, ref_g / scale)):
        err_k = (got.double() - ref).abs().max().item()
        err_d = (base.double() - ref).abs().max().item()
        assert err_k <= 2 * err_d + 4 * torch.finfo(torch.float32).eps, (err_k, err_d)


@pytest.mark.parametrize("kind", ["linear", "giou", "diou", "ciou"])
def test_kernel_propagates_nan_to_its_own_row_only(kind):
    p, t = _generic_pairs(10)
    p[3, 1] = math.nan
    loss, g = _kernel(kind, p, t, 1e-7, False, 4)
    assert torch.isnan(loss[3]) and torch.isfinite(loss[torch.arange(10) != 3]).all()
    assert torch.isnan(g[3]).any() and torch.isfinite(g[torch.arange(10) != 3]).all()


def test_kernel_dispatch_rule():
    p, t = _generic_pairs(4)
    x = p.clone().requires_grad_(True)
    assert kernel.eligible(x, t, None, 1e-7)
    assert not kernel.eligible(x, t, None, 0.0)  # eps = 0: the definition gives 0/0 its meaning
    assert not kernel.eligible(p, t, None, 1e-7)  # nothing to differentiate
    assert not kernel.eligible(x, t.clone().requires_grad_(True), None, 1e-7)
    assert not kernel.eligible(x.half(), t.half(), None, 1e-7)  # the losses hand in float32
    assert not kernel.eligible(x.to("meta"), t.to("meta"), None, 1e-7)  # measured on the CPU only
    with torch.no_grad():
        assert not kernel.eligible(x, t, None, 1e-7)
    seen = []
    torch.func.grad(lambda y: seen.append(kernel.eligible(y, t, None, 1e-7)) or y.sum())(p)
    assert seen == [False]
    # the losses take it: the kernel's node is in the graph of an eager call
    loss = LF.generalized_box_iou_loss(x, t)
    names, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions if n is not None)
    assert "_BoxLossBackward" in names


def test_kernel_backward_twice_with_retain_graph():
    p, t = _generic_pairs(9)
    x = p.clone().requires_grad_(True)
    loss = LF.complete_box_iou_loss(x, t, reduction="sum")
    loss.backward(retain_graph=True)
    once = x.grad.clone()
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * once)


def test_nothing_compiles_behind_the_user_s_back(monkeypatch):
    calls = []

    def no_compile(*args, **kwargs):
        calls.append(args)
        raise AssertionError("torch.compile called inside losskit")

    monkeypatch.setattr(torch, "compile", no_compile)
    gen = torch.Generator().manual_seed(0)
    p, t = random_boxes(1 << 17 | 3, torch.float32, gen), random_boxes(1 << 17 | 3, torch.float32, gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in LOSSES.values():
            x = p.clone().requires_grad_(True)
            fn(x, t).backward()
            assert torch.isfinite(x.grad).all()
    assert calls == []


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
    with pytest.raises(
        ValueError, match=rf"{name}: expected target on the device of input \(cpu\), got target on meta"
    ):
        fn(_B, _B.to("meta"))
    with pytest.raises(TypeError, match=r"positional"):
        fn(_B, _B, "sum")  # torchvision's losses take reduction third; here it is keyword-only


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
    with pytest.raises(
        ValueError, match=r"box_convert: in_fmt .* got 'xywhr' \(rotated boxes are not supported"
    ):
        LF.box_convert(torch.zeros(3, 5), "xywhr", "xyxy")
    with pytest.raises(
        TypeError,
        match=r"box_convert: boxes must be a floating-point or integer tensor; got dtype torch.bool",
    ):
        LF.box_convert(_B.bool(), "xyxy", "xywh")
    with pytest.raises(ValueError, match=r"box_convert: expected boxes of shape \(\.\.\., 4\), got \(3, 2\)"):
        LF.box_convert(torch.zeros(3, 2), "xyxy", "xywh")
    with pytest.raises(TypeError, match=r"box_area: boxes must be a floating-point or integer tensor"):
        LF.box_area(_B.bool())
    with pytest.raises(ValueError, match=r"box_area: expected boxes of shape \(\.\.\., 4\), got \(4, 3\)"):
        LF.box_area(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"box_area: fmt must be 'xyxy', 'xywh' or 'cxcywh'; got 'yxyx'"):
        LF.box_area(_B, fmt="yxyx")
    with pytest.raises(ValueError, match=r"box_iou: fmt .* got 'cxcywhr' \(rotated boxes are not supported"):
        LF.box_iou(_B, _B, fmt="cxcywhr")
    for fn in (*PAIRWISE.values(), *ALIGNED.values()):
        name = fn.__name__
        with pytest.raises(TypeError, match=rf"{name}: boxes1 must be a floating-point or integer tensor"):
            fn(_B.bool(), _B)
        with pytest.raises(TypeError, match=rf"{name}: boxes2 must be a Tensor; got list"):
            fn(_B, [[0.0, 0.0, 1.0, 1.0]])
        with pytest.raises(
            ValueError, match=rf"{name}: expected boxes1 of shape \(\.\.\., 4\), got \(3, 3\)"
        ):
            fn(torch.zeros(3, 3), _B)
        with pytest.raises(
            ValueError, match=rf"{name}: expected boxes2 of shape \(\.\.\., 4\), got \(3, 3\)"
        ):
            fn(_B, torch.zeros(3, 3))
        with pytest.raises(
            ValueError, match=rf"{name}: expected boxes2 on the device of boxes1 \(cpu\), got boxes2 on meta"
        ):
            fn(_B, _B.to("meta"))
    for fn in (LF.distance_box_iou, LF.complete_box_iou):
        with pytest.raises(ValueError, match=rf"{fn.__name__}: eps must be a finite number >= 0; got -0.5"):
            fn(_B, _B, eps=-0.5)
    for fn in PAIRWISE.values():
        with pytest.raises(
            ValueError, match=rf"{fn.__name__}: expected boxes1 of shape \(\.\.\., N, 4\), got \(4,\)"
        ):
            fn(torch.zeros(4), _B)
        with pytest.raises(
            ValueError, match=rf"{fn.__name__}: expected the leading dimensions of boxes1 \(2, 3, 4\)"
        ):
            fn(torch.zeros(2, 3, 4), torch.zeros(3, 1, 4))
    for fn in ALIGNED.values():
        with pytest.raises(ValueError, match=rf"{fn.__name__}: eps must be a finite number >= 0; got -0.5"):
            fn(_B, _B, eps=-0.5)
        with pytest.raises(ValueError, match=rf"{fn.__name__}: expected boxes2 broadcastable with boxes1"):
            fn(_B, torch.zeros(2, 4))


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
# Parity of the losses with torchvision's (installed only in the peers' environment).


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou"])
def test_loss_parity_with_torchvision(kind):
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
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(ours, p1)[0], torch.autograd.grad(theirs, p2)[0])
    # the default reductions differ: 'mean' here, 'none' there
    torch.testing.assert_close(LOSSES[kind](p, t), peer(p, t).mean())
    # intended deviation: finite gradients for a zero-height box, where torchvision's CIoU gives NaN
    z1, z2 = t64((0.0, 1.0, 2.0, 1.0)).requires_grad_(True), t64((0.0, 1.0, 2.0, 1.0)).requires_grad_(True)
    LOSSES[kind](z1, t[:1]).backward()
    peer(z2, t[:1]).sum().backward()
    assert torch.isfinite(z1.grad).all()
    if kind == "ciou":
        assert not torch.isfinite(z2.grad).all()
