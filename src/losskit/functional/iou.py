"""Box-regression losses on aligned pairs of ``xyxy`` boxes: IoU (UnitBox), GIoU, DIoU and CIoU.

Every loss here takes ``input`` (predicted boxes) and ``target`` of the same shape ``(..., 4)`` in
``xyxy`` absolute coordinates (convert other layouts with :func:`losskit.functional.box_convert`) and
returns one value per box pair, shape ``(...)``; ``'mean'`` divides by the number of box pairs. The
default reduction is ``'mean'``, as everywhere in losskit; torchvision's losses of the same names default
to ``'none'``, and take ``reduction`` positionally where here it is keyword-only.

The definition. Each loss is ``1 - measure`` (``-ln`` of the IoU for UnitBox's form), with the measure
written once in :func:`losskit.functional.boxes.overlap`, the same definition as the evaluation
functions ``aligned_box_iou`` & co. It is what runs under ``torch.compile`` (it compiles with
``fullgraph=True``), ``torch.func`` (``grad``, ``vmap``, ``jacrev``), forward-mode AD and double
backward, and for ``eps=0``.

The fast path. Plain eager calls on the CPU with ``eps > 0``, a gradient to compute for ``input`` and
none for ``target`` (``losskit._kernels.boxes``) take one kernel instead: it computes the loss (with the
definition's operations) and its closed-form gradient together, chunk by chunk of pairs transposed into
coordinate planes that stay in cache, keeps only the gradient for the backward pass, and is tested
against this definition and float64 at the hard cases. Nothing is compiled inside losskit.

Robustness, for every loss: widths and heights are clamped at 0, so an inverted box (``x2 < x1``) has
zero area rather than a negative one; the enclosing box is taken over all corners, so it contains both
boxes whatever their orientation and GIoU/DIoU stay in ``[0, 2)``; every division has ``eps`` in its
denominator (``eps=0`` is allowed and gives the papers' formulas exactly, with 0/0 taken as 0, except for
``iou_loss(mode='log')``, which needs ``eps > 0``). Zero-area, identical degenerate and inverted boxes
therefore give finite losses and gradients; the enclosing-box (GIoU) and centre-distance (DIoU, CIoU)
terms pull such boxes toward their target. At kinks the gradient is autograd's: a clamp at 0 passes the
gradient (so a zero-width box can grow), a tie between two coordinates in a min or max shares it
equally (so identical boxes have gradient 0). float16 and bfloat16 are computed in float32 and returned
in the input's dtype (float32 inside ``torch.autocast``); gradients of order ``1/eps`` at two overlapping
zero-area boxes exceed float16's range and overflow to ``inf`` there, as any float16 cast does. NaN in
gives NaN out.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .._kernels import boxes as _fast
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_choice,
    check_floating,
    check_last_dim,
    check_nonnegative,
    check_positive,
    check_same_device,
    check_same_shape,
    compute_dtype,
    no_autocast,
    output_dtype,
)
from .boxes import overlap

__all__ = ["complete_box_iou_loss", "distance_box_iou_loss", "generalized_box_iou_loss", "iou_loss"]

# the loss kinds: "linear" and "log" are the two forms of the IoU loss
Kind = Literal["linear", "log", "giou", "diou", "ciou"]
_MEASURE = {"linear": "iou", "log": "iou", "giou": "giou", "diou": "diou", "ciou": "ciou"}


def box_loss_definition(kind: Kind, input: Tensor, target: Tensor, eps: float, gated: bool = False) -> Tensor:
    """The unreduced loss of aligned boxes ``(..., 4)`` from the one measure definition, shape ``(...)``.

    Private to losskit (no input checks); the kernel of ``losskit._kernels.boxes`` is tested against it.
    """
    measure = overlap(_MEASURE[kind], input, target, eps=eps, union_eps=eps, gated=gated)  # type: ignore[arg-type]
    if kind == "log":
        # UnitBox's -ln IoU is infinite without overlap: floored at eps (zero gradient below it; the
        # gradient passes at eps itself, in every torch version); NaN stays NaN
        return -torch.log(torch.where(measure < eps, eps, measure))
    return 1 - measure


def _box_loss(
    fn: str,
    kind: Kind,
    input: Tensor,
    target: Tensor,
    eps: float,
    weight: Tensor | None,
    reduction: Reduction,
    gated: bool = False,
) -> Tensor:
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_last_dim(fn, "input", input, 4)
    check_same_shape(fn, "input", input, "target", target)
    check_same_device(fn, ("input", input), ("target", target), ("weight", weight))
    eps = check_positive(fn, "eps", eps) if kind == "log" else check_nonnegative(fn, "eps", eps)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape[:-1])
    out_dtype = output_dtype(input)
    ct = compute_dtype(input.dtype)
    with no_autocast(input.device):
        p, t = input.to(ct), target.to(ct)
        if _fast.eligible(p, t, weight, eps):  # the one place the fast path is chosen
            loss = _fast.box_loss(kind, p.reshape(-1, 4), t.reshape(-1, 4), eps, gated, box_loss_definition)
            loss = loss.reshape(input.shape[:-1])
        else:
            loss = box_loss_definition(kind, p, t, eps, gated)
        return reduce_loss(loss, reduction, weight).to(out_dtype)


def iou_loss(
    input: Tensor,
    target: Tensor,
    *,
    mode: Literal["linear", "log"] = "linear",
    eps: float = 1e-7,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""IoU loss on aligned pairs of boxes: ``1 - IoU`` (linear) or UnitBox's ``-ln IoU`` (log).

    The plain overlap loss: scale-invariant, but it is constant (and has zero gradient) for boxes that do
    not overlap, which is what GIoU, DIoU and CIoU fix.

    .. math::
        \mathrm{IoU} = \frac{|B \cap B^{gt}|}{|B \cup B^{gt}| + \varepsilon}, \qquad
        \ell_i = w_i \begin{cases} 1 - \mathrm{IoU} & \text{linear} \\
                                   -\ln \max(\mathrm{IoU}, \varepsilon) & \text{log} \end{cases}

    where :math:`B` is the predicted box, :math:`B^{gt}` the target and :math:`w` the optional weight.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        mode: ``'linear'`` (``1 - IoU``) or ``'log'`` (``-ln IoU``, UnitBox). Default: ``'linear'``.
        eps: added to the union, ``>= 0`` (``> 0`` for ``'log'``, where it is also the floor of the
            IoU). Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if the shapes differ or do not end in 4, the tensors are on different devices,
            ``mode``, ``eps``, ``weight`` or ``reduction`` is invalid.
        TypeError: if ``input`` or ``target`` is not floating point.

    Note:
        UnitBox's ``-ln IoU`` is infinite without overlap; it is clamped at ``-ln eps`` (about 16.1 for
        the default), with zero gradient there, as in mmdetection. Boxes are xyxy, not UnitBox's
        distances to the four sides (the IoU is the same).

    Example:
        >>> input = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
        >>> iou_loss(input, target, reduction="none")  # IoU 1/3 and 1
        tensor([0.6667, 0.0000])
        >>> iou_loss(input, target, mode="log", reduction="none")
        tensor([1.0986, 0.0000])

    References:
        Yu et al., "UnitBox: An Advanced Object Detection Network", ACM MM 2016.
        https://arxiv.org/abs/1608.01471
    """
    fn = "iou_loss"
    check_choice(fn, "mode", mode, ("linear", "log"))
    return _box_loss(fn, mode, input, target, eps, weight, reduction)


def generalized_box_iou_loss(
    input: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-7,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Generalized IoU loss: ``1 - IoU`` plus the share of the enclosing box covered by neither box.

    Unlike the IoU loss it still has a gradient for non-overlapping boxes (it shrinks the enclosing
    box), though it first grows the prediction to cover the target, which makes it slow.

    .. math::
        \ell_i = w_i \left(1 - \mathrm{IoU} + \frac{|C| - |B \cup B^{gt}|}{|C| + \varepsilon}\right)

    where :math:`C` is the smallest box enclosing both :math:`B` and :math:`B^{gt}` and IoU is
    :math:`|B \cap B^{gt}| / (|B \cup B^{gt}| + \varepsilon)`. The loss is in ``[0, 2)``.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        eps: added to the union and to the enclosing area, ``>= 0``. Default: ``1e-7`` (torchvision's).
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.
            Default ``'mean'`` (torchvision's ``generalized_box_iou_loss`` defaults to ``'none'``).

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if the shapes differ or do not end in 4, the tensors are on different devices,
            ``eps``, ``weight`` or ``reduction`` is invalid.
        TypeError: if ``input`` or ``target`` is not floating point.

    Note:
        torchvision's values for valid boxes. The enclosing box is taken over all corners, so for an
        inverted box it differs from torchvision's ``min(x1, x1') .. max(x2, x2')``.

    Example:
        >>> input = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> target = torch.tensor([[3.0, 0.0, 4.0, 2.0]])
        >>> generalized_box_iou_loss(input, target)  # IoU 0, enclosing 8, union 4
        tensor(1.5000)

    References:
        Rezatofighi et al., "Generalized Intersection over Union: A Metric and A Loss for Bounding Box
        Regression", CVPR 2019. https://arxiv.org/abs/1902.09630
    """
    return _box_loss("generalized_box_iou_loss", "giou", input, target, eps, weight, reduction)


def distance_box_iou_loss(
    input: Tensor,
    target: Tensor,
    *,
    eps: float = 1e-7,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Distance-IoU loss: ``1 - IoU`` plus the squared centre distance over the enclosing diagonal.

    It pulls the centres together directly, so it converges much faster than GIoU, also for boxes that
    do not overlap or that contain one another.

    .. math::
        \ell_i = w_i \left(1 - \mathrm{IoU} + \frac{\rho^2(b, b^{gt})}{c^2 + \varepsilon}\right)

    where :math:`\rho` is the distance between the box centres, :math:`c` the diagonal of the
    smallest enclosing box and IoU is :math:`|B \cap B^{gt}| / (|B \cup B^{gt}| + \varepsilon)`. The
    loss is in ``[0, 2)``.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        eps: added to the union and to the squared diagonal, ``>= 0``. Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.
            Default ``'mean'`` (torchvision's ``distance_box_iou_loss`` defaults to ``'none'``).

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if the shapes differ or do not end in 4, the tensors are on different devices,
            ``eps``, ``weight`` or ``reduction`` is invalid.
        TypeError: if ``input`` or ``target`` is not floating point.

    Example:
        >>> input = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> target = torch.tensor([[1.0, 0.0, 3.0, 1.0]])
        >>> distance_box_iou_loss(input, target)  # 1 - 1/3 + 1 / (3^2 + 1^2)
        tensor(0.7667)

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
        AAAI 2020. https://arxiv.org/abs/1911.08287
    """
    return _box_loss("distance_box_iou_loss", "diou", input, target, eps, weight, reduction)


def complete_box_iou_loss(
    input: Tensor,
    target: Tensor,
    *,
    gated: bool = False,
    eps: float = 1e-7,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Complete-IoU loss: DIoU plus a weighted penalty on the difference of aspect ratios.

    .. math::
        \ell_i = w_i \left(1 - \mathrm{IoU} + \frac{\rho^2}{c^2 + \varepsilon} + \alpha v\right), \quad
        v = \frac{4}{\pi^2}\left(\arctan\frac{w^{gt}}{h^{gt}} - \arctan\frac{w}{h}\right)^2, \quad
        \alpha = \frac{v}{(1 - \mathrm{IoU}) + v + \varepsilon}

    with :math:`\rho, c` and IoU as in :func:`distance_box_iou_loss` and :math:`w, h` the box sizes;
    :math:`\arctan(w/h)` is ``atan2(w, h)``, so a zero-height box has angle :math:`\pi/2` and a point
    box angle 0. The trade-off :math:`\alpha` is treated as a constant (no gradient flows through it), as
    in the authors' code and torchvision. The loss is in ``[0, 3)`` and never below DIoU.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        gated: if ``True``, :math:`\alpha = 0` where IoU < 0.5 (the journal version, Zheng et al.,
            IEEE TCYB 2021, as used by mmdetection). Default: ``False``, the AAAI 2020 loss (as the
            authors' released code and torchvision).
        eps: added to the union, the squared diagonal and the denominator of :math:`\alpha`, ``>= 0``.
            Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.
            Default ``'mean'`` (torchvision's ``complete_box_iou_loss`` defaults to ``'none'``).

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if the shapes differ or do not end in 4, the tensors are on different devices,
            ``eps``, ``weight`` or ``reduction`` is invalid.
        TypeError: if ``input`` or ``target`` is not floating point, or ``gated`` is not a bool.

    Note:
        The gradient is the exact gradient of this formula (with :math:`\alpha` constant). The paper also
        describes dropping the factor :math:`1/(w^2 + h^2)` from :math:`\partial v/\partial w` in its
        own implementation; losskit does not. ``atan2`` keeps zero-height boxes finite, where
        torchvision's ``atan(w / h)`` gives a NaN gradient (and a NaN loss for a point box).

    Example:
        >>> input = torch.tensor([[0.0, 0.0, 2.0, 1.0]])
        >>> target = torch.tensor([[0.0, 0.0, 1.0, 2.0]])
        >>> complete_box_iou_loss(input, target)  # 1 - 1/3 + 0.5/8 + alpha v, v = 0.1678, alpha = 0.2011
        tensor(0.7629)

    References:
        Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
        AAAI 2020. https://arxiv.org/abs/1911.08287 ; Zheng et al., "Enhancing Geometric Factors in
        Model Learning and Inference for Object Detection and Instance Segmentation", IEEE TCYB 2021.
        https://arxiv.org/abs/2005.03572
    """
    fn = "complete_box_iou_loss"
    if not isinstance(gated, bool):
        raise TypeError(f"{fn}: gated must be a bool; got {type(gated).__name__}")
    return _box_loss(fn, "ciou", input, target, eps, weight, reduction, gated=gated)
