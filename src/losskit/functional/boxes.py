"""Box utilities: format conversion, area, and the IoU family of overlap measures for evaluation.

Boxes are ``(..., 4)`` in ``xyxy`` absolute coordinates unless a function says otherwise. The overlap
measures come in two forms: *aligned* (``box_iou(boxes1, boxes2)`` compares ``boxes1[i]`` with
``boxes2[i]``; leading dimensions broadcast) and *pairwise* (``pairwise_box_iou`` compares every box of
an ``(N, 4)`` set with every box of an ``(M, 4)`` set, giving ``(N, M)``).

They use the same conventions as the losses in :mod:`losskit.functional.iou` (``loss = 1 - measure``):
widths and heights are clamped at 0, the enclosing box is taken over all corners, and every division
has ``eps`` in its denominator, so degenerate and inverted boxes give finite values. They are written
with plain differentiable operations.

Note:
    torchvision's ``box_iou`` is the *pairwise* form; here the plain names are aligned, as the losses
    are, and the pairwise forms carry a ``pairwise_`` prefix.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ._validation import check_choice, check_floating, check_last_dim, check_ndim, check_nonnegative

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "distance_box_iou",
    "generalized_box_iou",
    "pairwise_box_iou",
    "pairwise_complete_box_iou",
    "pairwise_distance_box_iou",
    "pairwise_generalized_box_iou",
    "validate_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes: Tensor, in_fmt: BoxFormat, out_fmt: BoxFormat) -> Tensor:
    """Convert boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``.

    ``'xyxy'`` is ``(x1, y1, x2, y2)``, ``'xywh'`` is ``(x1, y1, width, height)`` and ``'cxcywh'`` is
    ``(centre x, centre y, width, height)``; all in the same absolute units.

    Args:
        boxes: shape ``(..., 4)``, floating point.
        in_fmt: the layout of ``boxes``.
        out_fmt: the layout wanted.

    Returns:
        Shape ``(..., 4)``, dtype of ``boxes`` (a new tensor, also when the formats are equal).

    Raises:
        ValueError: if a format is unknown or the last dimension is not 4.
        TypeError: if ``boxes`` is not floating point.

    Example:
        >>> box_convert(torch.tensor([[1.0, 2.0, 4.0, 8.0]]), "xyxy", "cxcywh")
        tensor([[2.5000, 5.0000, 3.0000, 6.0000]])
    """
    fn = "box_convert"
    check_choice(fn, "in_fmt", in_fmt, _FORMATS)
    check_choice(fn, "out_fmt", out_fmt, _FORMATS)
    check_floating(fn, "boxes", boxes)
    check_last_dim(fn, "boxes", boxes, 4)
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    # now xyxy
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = 0.5 * (a + c), 0.5 * (b + d), c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``xyxy`` boxes, with widths and heights clamped at 0.

    Args:
        boxes: shape ``(..., 4)``.

    Returns:
        Shape ``(...)``, dtype of ``boxes``.

    Raises:
        ValueError: if the last dimension is not 4.
        TypeError: if ``boxes`` is not floating point.

    Note:
        An inverted box (``x2 < x1``) has area 0, where torchvision's ``box_area`` returns a negative
        number (or a positive one when both sides are inverted).

    Example:
        >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 0.0, 2.0]]))
        tensor([6., 0.])
    """
    fn = "box_area"
    check_floating(fn, "boxes", boxes)
    check_last_dim(fn, "boxes", boxes, 4)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0)


def _check_pair(fn: str, boxes1: Tensor, boxes2: Tensor, eps: float, aligned: bool = True) -> float:
    check_floating(fn, "boxes1", boxes1)
    check_floating(fn, "boxes2", boxes2)
    check_last_dim(fn, "boxes1", boxes1, 4)
    check_last_dim(fn, "boxes2", boxes2, 4)
    if not aligned:
        return check_nonnegative(fn, "eps", eps)
    try:
        torch.broadcast_shapes(boxes1.shape[:-1], boxes2.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{fn}: expected boxes2 broadcastable with boxes1 {tuple(boxes1.shape)}, "
            f"got {tuple(boxes2.shape)}"
        ) from None
    return check_nonnegative(fn, "eps", eps)


def _measures(boxes1: Tensor, boxes2: Tensor, eps: float, kind: str) -> Tensor:
    """IoU (``kind='iou'``), GIoU, DIoU or CIoU of aligned boxes, broadcasting leading dimensions."""
    x1, y1, x2, y2 = boxes1.unbind(-1)
    u1, v1, u2, v2 = boxes2.unbind(-1)
    w1, h1 = (x2 - x1).clamp_min(0), (y2 - y1).clamp_min(0)
    w2, h2 = (u2 - u1).clamp_min(0), (v2 - v1).clamp_min(0)
    iw = (torch.minimum(x2, u2) - torch.maximum(x1, u1)).clamp_min(0)
    ih = (torch.minimum(y2, v2) - torch.maximum(y1, v1)).clamp_min(0)
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter
    iou = inter / (union + eps)  # eps: two zero-area boxes have union 0
    if kind == "iou":
        return iou
    # enclosing box over all corners, so that it contains both boxes whatever their orientation
    cw = torch.maximum(torch.maximum(x1, x2), torch.maximum(u1, u2)) - torch.minimum(
        torch.minimum(x1, x2), torch.minimum(u1, u2)
    )
    ch = torch.maximum(torch.maximum(y1, y2), torch.maximum(v1, v2)) - torch.minimum(
        torch.minimum(y1, y2), torch.minimum(v1, v2)
    )
    if kind == "giou":
        area_c = cw * ch
        return iou - (area_c - union) / (area_c + eps)  # eps: enclosing box of two points
    rho2 = 0.25 * ((x1 + x2 - u1 - u2) ** 2 + (y1 + y2 - v1 - v2) ** 2)
    diou = iou - rho2 / (cw**2 + ch**2 + eps)  # eps: two equal points have diagonal 0
    if kind == "diou":
        return diou
    # eps: aspect ratio of a zero-height box
    v = (4 / math.pi**2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    denom = 1 - iou + v + eps  # eps, and 0 rather than 0/0 for identical boxes
    alpha = v / torch.where(denom > 0, denom, 1.0)
    return diou - alpha * v


def _aligned(fn: str, kind: str, boxes1: Tensor, boxes2: Tensor, eps: float) -> Tensor:
    eps = _check_pair(fn, boxes1, boxes2, eps)
    return _measures(boxes1, boxes2, eps, kind)


def _pairwise(fn: str, kind: str, boxes1: Tensor, boxes2: Tensor, eps: float) -> Tensor:
    eps = _check_pair(fn, boxes1, boxes2, eps, aligned=False)
    check_ndim(fn, "boxes1", boxes1, 2, "(N, 4)")
    check_ndim(fn, "boxes2", boxes2, 2, "(M, 4)")
    return _measures(boxes1[:, None, :], boxes2[None, :, :], eps, kind)


_ALIGNED_DOC = """{title} of aligned boxes: ``boxes1[i]`` against ``boxes2[i]``.

    .. math::
        {formula}

    {where}

    Args:
        boxes1: ``xyxy`` boxes, shape ``(..., 4)``.
        boxes2: ``xyxy`` boxes, shape ``(..., 4)``; leading dimensions broadcast with ``boxes1``'s.
        eps: added to every denominator that can be 0, ``>= 0``. Default: ``1e-7``.

    Returns:
        Shape: the broadcast leading shape; in ``{range}``.

    Raises:
        ValueError: if a last dimension is not 4, the leading shapes do not broadcast, or ``eps < 0``.
        TypeError: if a box tensor is not floating point.

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[1.0, 0.0, 3.0, 1.0]])
        >>> {name}(boxes1, boxes2)
        {value}

    References:
        {ref}
    """

_PAIRWISE_DOC = """{title} of every pair: ``boxes1[i]`` against ``boxes2[j]``.

    The pairwise form of :func:`{aligned}`; see it for the formula.

    Args:
        boxes1: ``xyxy`` boxes, shape ``(N, 4)``.
        boxes2: ``xyxy`` boxes, shape ``(M, 4)``.
        eps: added to every denominator that can be 0, ``>= 0``. Default: ``1e-7``.

    Returns:
        Shape ``(N, M)``; entry ``[i, j]`` equals ``{aligned}(boxes1[i], boxes2[j])``.

    Raises:
        ValueError: if a box tensor is not 2-D with 4 columns, or ``eps < 0``.
        TypeError: if a box tensor is not floating point.

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[1.0, 0.0, 3.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
        >>> {name}(boxes1, boxes2)
        {value}
    """

_GIOU_REF = (
    'Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019. https://arxiv.org/abs/1902.09630'
)
_DIOU_REF = 'Zheng et al., "Distance-IoU Loss", AAAI 2020. https://arxiv.org/abs/1911.08287'


def box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("box_iou", "iou", boxes1, boxes2, eps)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("generalized_box_iou", "giou", boxes1, boxes2, eps)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("distance_box_iou", "diou", boxes1, boxes2, eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("complete_box_iou", "ciou", boxes1, boxes2, eps)


def pairwise_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _pairwise("pairwise_box_iou", "iou", boxes1, boxes2, eps)


def pairwise_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _pairwise("pairwise_generalized_box_iou", "giou", boxes1, boxes2, eps)


def pairwise_distance_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _pairwise("pairwise_distance_box_iou", "diou", boxes1, boxes2, eps)


def pairwise_complete_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _pairwise("pairwise_complete_box_iou", "ciou", boxes1, boxes2, eps)


# IoU 1/3 (overlap 1, union 3); enclosing box 3 x 1 = union, so GIoU = IoU;
# centre offset 1, enclosing diagonal^2 = 10, so DIoU = 1/3 - 1/10; equal aspect ratios, so CIoU = DIoU.
_SPECS = {
    "iou": (
        "IoU",
        r"\mathrm{IoU} = \frac{|B_1 \cap B_2|}{|B_1 \cup B_2| + \varepsilon}",
        "",
        "[0, 1]",
        "tensor([0.3333])",
        'Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.',
    ),
    "giou": (
        "Generalized IoU",
        r"\mathrm{GIoU} = \mathrm{IoU} - \frac{|C| - |B_1 \cup B_2|}{|C| + \varepsilon}",
        "where :math:`C` is the smallest box enclosing both boxes.",
        "(-1, 1]",
        "tensor([0.3333])",
        _GIOU_REF,
    ),
    "diou": (
        "Distance IoU",
        r"\mathrm{DIoU} = \mathrm{IoU} - \frac{\rho^2(b_1, b_2)}{c^2 + \varepsilon}",
        "where :math:`\\rho` is the distance between the centres and :math:`c` the diagonal of the "
        "smallest enclosing box.",
        "(-1, 1]",
        "tensor([0.2333])",
        _DIOU_REF,
    ),
    "ciou": (
        "Complete IoU",
        r"\mathrm{CIoU} = \mathrm{DIoU} - \alpha v, \quad v = \frac{4}{\pi^2}\left(\arctan"
        r"\frac{w_2}{h_2 + \varepsilon} - \arctan\frac{w_1}{h_1 + \varepsilon}\right)^2, \quad "
        r"\alpha = \frac{v}{1 - \mathrm{IoU} + v + \varepsilon}",
        "with :math:`w, h` the box sizes (the aspect term of the CIoU loss, see "
        ":func:`losskit.functional.complete_box_iou_loss`).",
        "(-2, 1]",
        "tensor([0.2333])",
        _DIOU_REF,
    ),
}
_PAIR_VALUES = {
    "iou": "tensor([[0.3333, 1.0000]])",
    "giou": "tensor([[0.3333, 1.0000]])",
    "diou": "tensor([[0.2333, 1.0000]])",
    "ciou": "tensor([[0.2333, 1.0000]])",
}
for _kind, _fns in {
    "iou": (box_iou, pairwise_box_iou),
    "giou": (generalized_box_iou, pairwise_generalized_box_iou),
    "diou": (distance_box_iou, pairwise_distance_box_iou),
    "ciou": (complete_box_iou, pairwise_complete_box_iou),
}.items():
    _title, _formula, _where, _range, _value, _ref = _SPECS[_kind]
    _fns[0].__doc__ = _ALIGNED_DOC.format(
        title=_title,
        formula=_formula,
        where=_where,
        range=_range,
        name=_fns[0].__name__,
        value=_value,
        ref=_ref,
    )
    _fns[1].__doc__ = _PAIRWISE_DOC.format(
        title=_title, aligned=_fns[0].__name__, name=_fns[1].__name__, value=_PAIR_VALUES[_kind]
    )
del _kind, _fns, _title, _formula, _where, _range, _value, _ref


def validate_boxes(boxes: Tensor, name: str = "boxes") -> None:
    """Raise ``ValueError`` if any box is non-finite or inverted (``x2 < x1`` or ``y2 < y1``).

    Opt-in: it reads the values back to the host (a device synchronisation), so the losses never call
    it. Use it on targets while debugging a data pipeline; zero-area boxes are valid.

    Args:
        boxes: ``xyxy`` boxes, shape ``(..., 4)``.
        name: what to call the tensor in the message. Default: ``'boxes'``.

    Raises:
        ValueError: naming how many boxes are invalid and showing the first one with its index.
        TypeError: if ``boxes`` is not floating point.

    Example:
        >>> validate_boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0]]))  # passes silently
        >>> bad = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 1.0, 1.0]])
        >>> validate_boxes(bad, "target")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: validate_boxes: target must hold ... at index (1,): [2.0, 0.0, 1.0, 1.0] (x2 < x1)
    """
    fn = "validate_boxes"
    check_floating(fn, name, boxes)
    check_last_dim(fn, name, boxes, 4)
    x1, y1, x2, y2 = boxes.unbind(-1)
    finite = torch.isfinite(boxes).all(-1)
    bad = ~finite | (x2 < x1) | (y2 < y1)
    count = int(bad.sum())
    if count == 0:
        return
    index = tuple(int(i) for i in bad.nonzero()[0])
    box = boxes[index].tolist()
    if not bool(finite[index]):
        why = "not finite"
    elif box[2] < box[0]:
        why = "x2 < x1"
    else:
        why = "y2 < y1"
    raise ValueError(
        f"{fn}: {name} must hold finite xyxy boxes with x1 <= x2 and y1 <= y2; got {count} invalid "
        f"box(es), the first at index {index}: {box} ({why})"
    )
