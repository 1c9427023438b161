"""Box utilities: format conversion, area, and the IoU family of overlap measures.

Boxes are ``(..., 4)`` in ``xyxy`` absolute coordinates unless a function says otherwise. This module
holds the one definition of the four overlap measures (IoU, GIoU, DIoU, CIoU), written once with plain
differentiable torch operations in :func:`overlap`; the evaluation functions here and the losses of
:mod:`losskit.functional.iou` (``loss = 1 - measure``) are all built on it.

The measures come in two forms:

* **pairwise**, with torchvision's names, signatures and values: ``box_iou(boxes1, boxes2)`` compares
  every box of ``boxes1`` ``(..., N, 4)`` with every box of ``boxes2`` ``(..., M, 4)`` and returns
  ``(..., N, M)``, as :func:`torchvision.ops.box_iou` does (leading dimensions broadcast);
* **aligned**, ``aligned_box_iou(boxes1, boxes2)``: ``boxes1[i]`` against ``boxes2[i]``, leading
  dimensions broadcast, with ``eps`` in every denominator as the losses have.

Conventions shared by every measure (and the losses):

* widths and heights are clamped at 0, so an inverted box (``x2 < x1``) has zero area where
  torchvision's arithmetic gives a negative area (and garbage or NaN overlaps); the enclosing box is
  taken over all corners, so it contains both boxes whatever their orientation. For valid boxes these
  are torchvision's formulas.
* 0/0 is 0: two zero-area boxes have IoU 0 (torchvision: NaN), an enclosing box of zero area adds no
  GIoU penalty, two equal points no DIoU penalty; the gradient there is 0 too. A NaN coordinate still
  gives NaN.
* integer boxes are accepted and give a floating result (as torchvision); float16 and bfloat16 are
  computed in float32. The result is float64 for float64 boxes and float32 otherwise (as torchvision:
  the default dtype for integer boxes), also inside ``torch.autocast``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ._validation import (
    check_choice,
    check_floating,
    check_last_dim,
    check_nonnegative,
    check_same_device,
    check_tensor,
    no_autocast,
)

__all__ = [
    "aligned_box_iou",
    "aligned_complete_box_iou",
    "aligned_distance_box_iou",
    "aligned_generalized_box_iou",
    "box_area",
    "box_convert",
    "box_iou",
    "complete_box_iou",
    "distance_box_iou",
    "generalized_box_iou",
    "validate_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
Measure = Literal["iou", "giou", "diou", "ciou"]
_FORMATS = ("xyxy", "xywh", "cxcywh")
_ROTATED = ("xywhr", "cxcywhr", "xyxyxyxy")
_FOUR_OVER_PI2 = 4.0 / math.pi**2


# --------------------------------------------------------------------------------------------------
# the definition: one formula per measure, plain differentiable torch ops
# --------------------------------------------------------------------------------------------------


def _ratio(num: Tensor, den: Tensor, eps: float) -> Tensor:
    """``num / (den + eps)`` for a denominator ``den >= 0``; with ``eps = 0``, 0/0 is 0 (gradient 0)."""
    if eps > 0:
        return num / (den + eps)
    zero = den == 0  # NaN compares unequal, so NaN still propagates
    return torch.where(zero, 0.0, num / torch.where(zero, 1.0, den))


def _relu(x: Tensor) -> Tensor:
    """``max(x, 0)`` whose gradient passes at ``x = 0`` (so a zero-width box can grow) in every torch
    version (``clamp_min``'s gradient at the boundary is 1 in torch 2.13 and 0 in 2.14); NaN stays NaN."""
    return torch.where(x < 0, 0.0, x)


def _aspect(w: Tensor, h: Tensor) -> Tensor:
    """``atan2(w, h)``: ``atan(w / h)``, pi/2 for a zero-height box, 0 (gradient 0) for a point box."""
    point = (w == 0) & (h == 0)
    return torch.where(point, 0.0, torch.atan2(w, torch.where(point, 1.0, h)))


def overlap(
    kind: Measure,
    boxes1: Tensor,
    boxes2: Tensor,
    *,
    eps: float,
    union_eps: float,
    gated: bool = False,
) -> Tensor:
    r"""The one definition of IoU, GIoU, DIoU and CIoU for aligned (broadcasting) ``xyxy`` boxes.

    .. math::
        \mathrm{IoU} = \frac{I}{U + \varepsilon_U}, \quad
        \mathrm{GIoU} = \mathrm{IoU} - \frac{|C| - U}{|C| + \varepsilon}, \quad
        \mathrm{DIoU} = \mathrm{IoU} - \frac{\rho^2}{c^2 + \varepsilon}, \quad
        \mathrm{CIoU} = \mathrm{DIoU} - \alpha v

    with :math:`I` and :math:`U` the intersection and union areas (sides clamped at 0), :math:`C` the
    box enclosing all corners, :math:`c` its diagonal, :math:`\rho` the distance between the centres,
    :math:`v = \frac{4}{\pi^2}(\operatorname{atan2}(w_2, h_2) - \operatorname{atan2}(w_1, h_1))^2` and
    :math:`\alpha = v / (1 - \mathrm{IoU} + v + \varepsilon)`, treated as a constant (no gradient).
    ``gated`` sets :math:`\alpha = 0` where IoU < 0.5. A zero denominator with zero ``eps`` gives 0.

    Private to losskit (no input checks): ``boxes1`` and ``boxes2`` are floating point, of one dtype.
    """
    # unit-stride coordinate planes rather than stride-4 views: under torch.compile the fused kernels
    # then vectorise, atan2 included (1M pairs on the CPU: GIoU 2x, CIoU 4x faster than from views),
    # and eagerly the elementwise operations that follow run on contiguous data
    x1, y1, x2, y2 = boxes1.movedim(-1, 0).contiguous().unbind(0)
    u1, v1, u2, v2 = boxes2.movedim(-1, 0).contiguous().unbind(0)
    w1, h1 = _relu(x2 - x1), _relu(y2 - y1)  # inverted boxes: zero area
    w2, h2 = _relu(u2 - u1), _relu(v2 - v1)
    iw = _relu(torch.minimum(x2, u2) - torch.maximum(x1, u1))
    ih = _relu(torch.minimum(y2, v2) - torch.maximum(y1, v1))
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter
    iou = _ratio(inter, union, union_eps)  # eps: two zero-area boxes have union 0
    if kind == "iou":
        return iou
    # the box enclosing all corners, so that it contains both boxes whatever their orientation
    cw = torch.maximum(torch.maximum(x1, x2), torch.maximum(u1, u2)) - torch.minimum(
        torch.minimum(x1, x2), torch.minimum(u1, u2)
    )
    ch = torch.maximum(torch.maximum(y1, y2), torch.maximum(v1, v2)) - torch.minimum(
        torch.minimum(y1, y2), torch.minimum(v1, v2)
    )
    if kind == "giou":
        area_c = cw * ch
        return iou - _ratio(area_c - union, area_c, eps)  # eps: the enclosing box of two points
    rho2 = 0.25 * (((x1 + x2) - (u1 + u2)) ** 2 + ((y1 + y2) - (v1 + v2)) ** 2)  # (2 x offset)^2 / 4
    diou = iou - _ratio(rho2, cw * cw + ch * ch, eps)  # eps: two equal points have diagonal 0
    if kind == "diou":
        return diou
    v = _FOUR_OVER_PI2 * (_aspect(w2, h2) - _aspect(w1, h1)) ** 2
    # alpha carries no gradient (the authors' code, torchvision); eps, and 0 for 0/0 (IoU 1, v 0)
    alpha = _ratio(v, 1 - iou + v, eps).detach()
    if gated:  # the journal version: no aspect term until the boxes overlap enough
        alpha = torch.where(iou >= 0.5, alpha, 0.0)
    return diou - alpha * v


# --------------------------------------------------------------------------------------------------
# argument handling shared by the public measures
# --------------------------------------------------------------------------------------------------


def _check_boxes(fn: str, name: str, boxes: object) -> Tensor:
    """Boxes may be floating point or integer (as torchvision); bool and complex are rejected."""
    check_tensor(fn, name, boxes)
    assert isinstance(boxes, Tensor)
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{fn}: {name} must be a floating-point or integer tensor; got dtype {boxes.dtype}")
    check_last_dim(fn, name, boxes, 4)
    return boxes


def _result_dtype(*boxes: Tensor) -> torch.dtype:
    """torchvision's result dtype: float64 stays, other floats give float32, integers the default."""
    out: torch.dtype | None = None
    for b in boxes:
        if b.dtype == torch.float64:
            d = torch.float64
        elif b.is_floating_point():
            d = torch.float32
        else:
            d = torch.get_default_dtype()
        out = d if out is None else torch.promote_types(out, d)
    assert out is not None
    return out


def _check_format(fn: str, name: str, fmt: object) -> None:
    if fmt in _ROTATED:
        raise ValueError(
            f"{fn}: {name} must be 'xyxy', 'xywh' or 'cxcywh'; got {fmt!r} "
            "(rotated boxes are not supported; torchvision.ops has them)"
        )
    check_choice(fn, name, fmt, _FORMATS)


def _pair(fn: str, boxes1: object, boxes2: object) -> tuple[Tensor, Tensor]:
    b1 = _check_boxes(fn, "boxes1", boxes1)
    b2 = _check_boxes(fn, "boxes2", boxes2)
    check_same_device(fn, ("boxes1", b1), ("boxes2", b2))
    return b1, b2


def _pairwise(
    fn: str, kind: Measure, boxes1: object, boxes2: object, eps: float, fmt: str = "xyxy"
) -> Tensor:
    b1, b2 = _pair(fn, boxes1, boxes2)
    if b1.dim() < 2:
        raise ValueError(f"{fn}: expected boxes1 of shape (..., N, 4), got {tuple(b1.shape)}")
    if b2.dim() < 2:
        raise ValueError(f"{fn}: expected boxes2 of shape (..., M, 4), got {tuple(b2.shape)}")
    try:
        torch.broadcast_shapes(b1.shape[:-2], b2.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{fn}: expected the leading dimensions of boxes1 {tuple(b1.shape)} and boxes2 "
            f"{tuple(b2.shape)} to broadcast"
        ) from None
    dtype = _result_dtype(b1, b2)
    with no_autocast(b1.device):
        b1, b2 = b1.to(dtype), b2.to(dtype)
        if fmt != "xyxy":
            b1, b2 = _to_xyxy(b1, fmt), _to_xyxy(b2, fmt)
        # (..., N, 1, 4) against (..., 1, M, 4): every pair, leading dimensions broadcast
        return overlap(kind, b1.unsqueeze(-2), b2.unsqueeze(-3), eps=eps, union_eps=0.0)


def _aligned(fn: str, kind: Measure, boxes1: object, boxes2: object, eps: object) -> Tensor:
    b1, b2 = _pair(fn, boxes1, boxes2)
    e = check_nonnegative(fn, "eps", eps)
    try:
        torch.broadcast_shapes(b1.shape[:-1], b2.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"{fn}: expected boxes2 broadcastable with boxes1 {tuple(b1.shape)}, got {tuple(b2.shape)}"
        ) from None
    dtype = _result_dtype(b1, b2)
    with no_autocast(b1.device):
        return overlap(kind, b1.to(dtype), b2.to(dtype), eps=e, union_eps=e)


# --------------------------------------------------------------------------------------------------
# conversion and area (torchvision's names and semantics)
# --------------------------------------------------------------------------------------------------


def _to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return torch.stack((a, b, a + c, b + d), dim=-1)
    return torch.stack((a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d), dim=-1)  # cxcywh


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``'xyxy'``, ``'xywh'`` and ``'cxcywh'``, as :func:`torchvision.ops.box_convert`.

    ``'xyxy'`` is ``(x1, y1, x2, y2)``, ``'xywh'`` is ``(x1, y1, width, height)`` and ``'cxcywh'`` is
    ``(centre x, centre y, width, height)``; all in the same absolute units.

    Args:
        boxes: shape ``(..., 4)``, floating point or integer.
        in_fmt: the layout of ``boxes``.
        out_fmt: the layout wanted.

    Returns:
        Shape ``(..., 4)``, a new tensor (also when the formats are equal). Its dtype is torchvision's:
        that of ``boxes``, except that integer boxes converted to or from ``'cxcywh'`` (halves of
        integers) give the default floating dtype.

    Raises:
        ValueError: if a format is unknown (torchvision's rotated formats included) or the last
            dimension is not 4.
        TypeError: if ``boxes`` is not a floating-point or integer tensor.

    Note:
        float16 and bfloat16 boxes are converted in float32 and rounded once, so a centre of two large
        coordinates does not overflow; torchvision computes in the boxes' dtype. Rotated formats
        (``'xywhr'``, ``'cxcywhr'``, ``'xyxyxyxy'``) are not supported.

    Example:
        >>> box_convert(torch.tensor([[1.0, 2.0, 4.0, 8.0]]), "xyxy", "cxcywh")
        tensor([[2.5000, 5.0000, 3.0000, 6.0000]])
    """
    fn = "box_convert"
    _check_format(fn, "in_fmt", in_fmt)
    _check_format(fn, "out_fmt", out_fmt)
    _check_boxes(fn, "boxes", boxes)
    if in_fmt == out_fmt:
        return boxes.clone()
    low = boxes.dtype in (torch.float16, torch.bfloat16)
    b = boxes.float() if low else boxes
    if in_fmt != "xyxy":
        b = _to_xyxy(b, in_fmt)
    if out_fmt != "xyxy":
        x1, y1, x2, y2 = b.unbind(-1)
        if out_fmt == "xywh":
            b = torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)
        else:  # cxcywh
            b = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)
    return b.to(boxes.dtype) if low else b


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of boxes, as :func:`torchvision.ops.box_area`: ``(x2 - x1) * (y2 - y1)`` for ``'xyxy'``.

    Args:
        boxes: shape ``(..., 4)``, floating point or integer.
        fmt: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'`` (the area is then ``width * height``).
            Default: ``'xyxy'``.

    Returns:
        Shape ``(...)``. As torchvision: float16 and bfloat16 give float32, 8- and 16-bit integers
        int32; float32, float64, int32 and int64 keep their dtype.

    Raises:
        ValueError: if ``fmt`` is unknown or the last dimension is not 4.
        TypeError: if ``boxes`` is not a floating-point or integer tensor.

    Note:
        The product is signed, as torchvision's: an inverted box (``x2 < x1``) has a negative area
        (a positive one if both sides are inverted). The overlap measures and losses clamp sides at 0
        instead; :func:`validate_boxes` finds inverted boxes.

    Example:
        >>> box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 0.0, 2.0]]))
        tensor([ 6., -1.])
    """
    fn = "box_area"
    _check_format(fn, "fmt", fmt)
    _check_boxes(fn, "boxes", boxes)
    if boxes.is_floating_point():
        b = boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()
    else:
        b = boxes if boxes.dtype in (torch.int32, torch.int64) else boxes.int()
    if fmt == "xyxy":
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return b[..., 2] * b[..., 3]


# --------------------------------------------------------------------------------------------------
# the pairwise measures: torchvision's names, signatures and values
# --------------------------------------------------------------------------------------------------

_TV_NOTE = """Note:
        Deliberate differences from torchvision, which otherwise gives the same values: 0/0 is 0
        (two zero-area boxes; torchvision: NaN); sides are clamped at 0 and the enclosing box spans
        all corners, so inverted boxes give defined values (torchvision: negative areas, garbage);
        float16/bfloat16 boxes are computed in float32 from the start (torchvision subtracts in the
        low precision first). See the module notes."""


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    r"""IoU (Jaccard index) of every pair of boxes, as :func:`torchvision.ops.box_iou`.

    .. math::
        \mathrm{IoU}_{ij} = \frac{|B^1_i \cap B^2_j|}{|B^1_i \cup B^2_j|}

    Args:
        boxes1: shape ``(..., N, 4)``, floating point or integer.
        boxes2: shape ``(..., M, 4)``; leading dimensions broadcast with ``boxes1``'s.
        fmt: the layout of both: ``'xyxy'``, ``'xywh'`` or ``'cxcywh'``. Default: ``'xyxy'``.

    Returns:
        Shape ``(..., N, M)``, in ``[0, 1]``; float64 for float64 boxes, else float32.

    Raises:
        ValueError: if a box tensor has fewer than 2 dimensions or a last dimension other than 4, the
            leading dimensions do not broadcast, or ``fmt`` is unknown (rotated formats included).
        TypeError: if a box tensor is not floating point or integer.

    {note}

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[1.0, 0.0, 3.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
        >>> box_iou(boxes1, boxes2)
        tensor([[0.3333, 1.0000]])

    References:
        Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.
    """
    fn = "box_iou"
    _check_format(fn, "fmt", fmt)
    return _pairwise(fn, "iou", boxes1, boxes2, 0.0, fmt)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    r"""Generalized IoU of every pair of boxes, as :func:`torchvision.ops.generalized_box_iou`.

    .. math::
        \mathrm{GIoU}_{ij} = \mathrm{IoU}_{ij} - \frac{|C_{ij}| - |B^1_i \cup B^2_j|}{|C_{ij}|}

    where :math:`C_{ij}` is the smallest box enclosing both boxes.

    Args:
        boxes1: ``xyxy`` boxes, shape ``(..., N, 4)``, floating point or integer.
        boxes2: ``xyxy`` boxes, shape ``(..., M, 4)``; leading dimensions broadcast with ``boxes1``'s.

    Returns:
        Shape ``(..., N, M)``, in ``(-1, 1]``; float64 for float64 boxes, else float32.

    Raises:
        ValueError: if a box tensor has fewer than 2 dimensions or a last dimension other than 4, or
            the leading dimensions do not broadcast.
        TypeError: if a box tensor is not floating point or integer.

    {note}

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[3.0, 0.0, 4.0, 2.0]])
        >>> generalized_box_iou(boxes1, boxes2)  # IoU 0, enclosing area 8, union 4
        tensor([[-0.5000]])

    References:
        Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss for Bounding Box
        Regression", CVPR 2019. https://arxiv.org/abs/1902.09630
    """
    return _pairwise("generalized_box_iou", "giou", boxes1, boxes2, 0.0)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    r"""Distance IoU of every pair of boxes, as :func:`torchvision.ops.distance_box_iou`.

    .. math::
        \mathrm{DIoU}_{ij} = \mathrm{IoU}_{ij} - \frac{\rho^2(b^1_i, b^2_j)}{c_{ij}^2 + \varepsilon}

    where :math:`\rho` is the distance between the box centres and :math:`c_{ij}` the diagonal of the
    smallest box enclosing both.

    Args:
        boxes1: ``xyxy`` boxes, shape ``(..., N, 4)``, floating point or integer.
        boxes2: ``xyxy`` boxes, shape ``(..., M, 4)``; leading dimensions broadcast with ``boxes1``'s.
        eps: added to the squared diagonal, ``>= 0``. Default: ``1e-7``.

    Returns:
        Shape ``(..., N, M)``, in ``(-1, 1]``; float64 for float64 boxes, else float32.

    Raises:
        ValueError: if a box tensor has fewer than 2 dimensions or a last dimension other than 4, the
            leading dimensions do not broadcast, or ``eps < 0``.
        TypeError: if a box tensor is not floating point or integer.

    {note}

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[1.0, 0.0, 3.0, 1.0]])
        >>> distance_box_iou(boxes1, boxes2)  # 1/3 - 1 / (3^2 + 1^2)
        tensor([[0.2333]])

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
        AAAI 2020. https://arxiv.org/abs/1911.08287
    """
    fn = "distance_box_iou"
    return _pairwise(fn, "diou", boxes1, boxes2, check_nonnegative(fn, "eps", eps))


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    r"""Complete IoU of every pair of boxes, as :func:`torchvision.ops.complete_box_iou`.

    .. math::
        \mathrm{CIoU}_{ij} = \mathrm{DIoU}_{ij} - \alpha v, \quad
        v = \frac{4}{\pi^2}\left(\arctan\frac{w^2_j}{h^2_j} - \arctan\frac{w^1_i}{h^1_i}\right)^2,
        \quad \alpha = \frac{v}{1 - \mathrm{IoU}_{ij} + v + \varepsilon}

    with :math:`w, h` the box sizes (:math:`\arctan(w/h)` is ``atan2(w, h)``, so a zero-height box
    has angle :math:`\pi/2`) and :math:`\alpha` carrying no gradient, as in torchvision.

    Args:
        boxes1: ``xyxy`` boxes, shape ``(..., N, 4)``, floating point or integer.
        boxes2: ``xyxy`` boxes, shape ``(..., M, 4)``; leading dimensions broadcast with ``boxes1``'s.
        eps: added to the squared diagonal and the denominator of :math:`\alpha`, ``>= 0``.
            Default: ``1e-7``.

    Returns:
        Shape ``(..., N, M)``, in ``(-2, 1]``; float64 for float64 boxes, else float32.

    Raises:
        ValueError: if a box tensor has fewer than 2 dimensions or a last dimension other than 4, the
            leading dimensions do not broadcast, or ``eps < 0``.
        TypeError: if a box tensor is not floating point or integer.

    {note}

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[0.0, 0.0, 1.0, 2.0]])
        >>> complete_box_iou(boxes1, boxes2)  # 1/3 - 0.5/8 - alpha v, v = 0.1678, alpha = 0.2011
        tensor([[0.2371]])

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
        AAAI 2020. https://arxiv.org/abs/1911.08287
    """
    fn = "complete_box_iou"
    return _pairwise(fn, "ciou", boxes1, boxes2, check_nonnegative(fn, "eps", eps))


for _f in (box_iou, generalized_box_iou, distance_box_iou, complete_box_iou):
    _f.__doc__ = (_f.__doc__ or "").replace("{note}", _TV_NOTE)
del _f


# --------------------------------------------------------------------------------------------------
# the aligned measures: boxes1[i] against boxes2[i]
# --------------------------------------------------------------------------------------------------

_ALIGNED_DOC = """{title} of aligned boxes: ``boxes1[i]`` against ``boxes2[i]``.

    The aligned form of :func:`{pairwise}`, with ``eps`` in every denominator as in
    :func:`losskit.functional.{loss}` (which is ``1 -`` this measure).

    .. math::
        {formula}

    {where}

    Args:
        boxes1: ``xyxy`` boxes, shape ``(..., 4)``, floating point or integer.
        boxes2: ``xyxy`` boxes, shape ``(..., 4)``; leading dimensions broadcast with ``boxes1``'s.
        eps: added to every denominator that can be 0, ``>= 0``. Default: ``1e-7``.

    Returns:
        Shape: the broadcast leading shape; in ``{range}``; float64 for float64 boxes, else float32.

    Raises:
        ValueError: if a last dimension is not 4, the leading shapes do not broadcast, or ``eps < 0``.
        TypeError: if a box tensor is not floating point or integer.

    Example:
        >>> boxes1 = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> boxes2 = torch.tensor([[1.0, 0.0, 3.0, 1.0]])
        >>> {name}(boxes1, boxes2)
        {value}

    References:
        {ref}
    """

_GIOU_REF = (
    'Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019. https://arxiv.org/abs/1902.09630'
)
_DIOU_REF = 'Zheng et al., "Distance-IoU Loss", AAAI 2020. https://arxiv.org/abs/1911.08287'


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("aligned_box_iou", "iou", boxes1, boxes2, eps)


def aligned_generalized_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("aligned_generalized_box_iou", "giou", boxes1, boxes2, eps)


def aligned_distance_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("aligned_distance_box_iou", "diou", boxes1, boxes2, eps)


def aligned_complete_box_iou(boxes1: Tensor, boxes2: Tensor, *, eps: float = 1e-7) -> Tensor:
    return _aligned("aligned_complete_box_iou", "ciou", boxes1, boxes2, eps)


# Boxes (0, 0, 2, 1) and (1, 0, 3, 1): IoU 1/3 (overlap 1, union 3); enclosing box 3 x 1 = union, so
# GIoU = IoU; centre offset 1, enclosing diagonal^2 = 10, so DIoU = 1/3 - 1/10; equal aspect ratios,
# so CIoU = DIoU.
_SPECS = {
    aligned_box_iou: (
        "IoU",
        "box_iou",
        "iou_loss",
        r"\mathrm{IoU} = \frac{|B_1 \cap B_2|}{|B_1 \cup B_2| + \varepsilon}",
        "",
        "[0, 1]",
        "tensor([0.3333])",
        'Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010.',
    ),
    aligned_generalized_box_iou: (
        "Generalized IoU",
        "generalized_box_iou",
        "generalized_box_iou_loss",
        r"\mathrm{GIoU} = \mathrm{IoU} - \frac{|C| - |B_1 \cup B_2|}{|C| + \varepsilon}",
        "where :math:`C` is the smallest box enclosing both boxes.",
        "(-1, 1]",
        "tensor([0.3333])",
        _GIOU_REF,
    ),
    aligned_distance_box_iou: (
        "Distance IoU",
        "distance_box_iou",
        "distance_box_iou_loss",
        r"\mathrm{DIoU} = \mathrm{IoU} - \frac{\rho^2(b_1, b_2)}{c^2 + \varepsilon}",
        "where :math:`\\rho` is the distance between the centres and :math:`c` the diagonal of the "
        "smallest enclosing box.",
        "(-1, 1]",
        "tensor([0.2333])",
        _DIOU_REF,
    ),
    aligned_complete_box_iou: (
        "Complete IoU",
        "complete_box_iou",
        "complete_box_iou_loss",
        r"\mathrm{CIoU} = \mathrm{DIoU} - \alpha v, \quad v = \frac{4}{\pi^2}\left("
        r"\operatorname{atan2}(w_2, h_2) - \operatorname{atan2}(w_1, h_1)\right)^2, \quad "
        r"\alpha = \frac{v}{1 - \mathrm{IoU} + v + \varepsilon}",
        "with :math:`w, h` the box sizes and :math:`\\alpha` carrying no gradient.",
        "(-2, 1]",
        "tensor([0.2333])",
        _DIOU_REF,
    ),
}
for _fn, (_title, _pw, _loss, _formula, _where, _range, _value, _ref) in _SPECS.items():
    _fn.__doc__ = _ALIGNED_DOC.format(
        title=_title,
        pairwise=_pw,
        loss=_loss,
        formula=_formula,
        where=_where,
        range=_range,
        name=_fn.__name__,
        value=_value,
        ref=_ref,
    )
del _fn, _title, _pw, _loss, _formula, _where, _range, _value, _ref


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
