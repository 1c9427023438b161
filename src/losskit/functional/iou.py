"""Box-regression losses on aligned pairs of ``xyxy`` boxes: IoU (UnitBox), GIoU, DIoU and CIoU.

Every loss here takes ``input`` (predicted boxes) and ``target`` of the same shape ``(..., 4)`` in
``xyxy`` absolute coordinates (convert other layouts with :func:`losskit.functional.box_convert`) and
returns one value per box pair, shape ``(...)``; ``'mean'`` divides by the number of box pairs.

How they are computed. The four losses share one elementwise kernel that evaluates the loss and its
closed-form gradient with respect to the predicted box over the four coordinate planes, inside a custom
:class:`torch.autograd.Function`. On small batches one forward pass computes both and the backward pass
is one multiply. On large batches (at least ``2**17`` pairs, on CPU or CUDA) the kernel is compiled once
per loss with :func:`torch.compile` and run in chunks of ``2**17`` pairs: each chunk is transposed into
unit-stride coordinate planes (one compiled copy, so that the kernel's loads vectorise), then one fused
loop computes the loss (forward) or the gradient times ``grad_output``, written straight back in the
boxes' ``(M, 4)`` layout (backward, which recomputes rather than stores). Nothing of the batch's size is
allocated besides the loss and the gradient. Where compilation is unavailable the kernel runs eagerly,
with the same results. Double backward recomputes the gradient with differentiable operations, so
higher-order gradients are exact too. A ``target`` that requires grad gets its gradient from the same
kernel with the roles swapped (every loss here is symmetric in its two boxes).

Robustness, for every loss: widths and heights are clamped at 0, so an inverted box (``x2 < x1``) has
zero area rather than a negative one; the enclosing box is taken over all eight corners, so it contains
both boxes whatever their orientation and GIoU/DIoU stay in ``[0, 2)``; every division has ``eps`` in
its denominator. Zero-area, identical degenerate and inverted boxes therefore give finite losses and
finite gradients; the enclosing-box (GIoU) and centre-distance (DIoU, CIoU) terms pull such boxes
toward their target. At kinks (touching edges, zero widths) the gradient is the one-sided derivative
that grows the overlap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_choice,
    check_floating,
    check_last_dim,
    check_nonnegative,
    check_same_shape,
    compute_dtype,
)

__all__ = ["complete_box_iou_loss", "distance_box_iou_loss", "generalized_box_iou_loss", "iou_loss"]

_Kind = Literal["linear", "log", "giou", "diou", "ciou"]
_FOUR_OVER_PI2 = 4.0 / math.pi**2
# pairs from which the kernel is compiled with torch.compile (below it the eager kernel is as fast).
_COMPILE_MIN_PAIRS = 1 << 17
# pairs per chunk on that path (measured on a 2-core CPU, 1M GIoU pairs forward + backward: 64K
# 13.4 ms, 128K 11.4 ms, 256K 11.7 ms); the workspace is about 16 floats per pair of the chunk (8 MiB).
_CHUNK = 1 << 17


def _box_loss_kernel(
    kind: str,
    eps: float,
    gated: bool,
    need_grad: bool,
    x1: Tensor,
    y1: Tensor,
    x2: Tensor,
    y2: Tensor,
    tx1: Tensor,
    ty1: Tensor,
    tx2: Tensor,
    ty2: Tensor,
) -> tuple[Tensor, Tensor | None]:
    """Loss per pair and, if ``need_grad``, d loss / d (x1, y1, x2, y2) as ``(4, M)`` planes.

    The loss is a function of a few intermediate quantities (overlap widths ``iw, ih``, box sizes
    ``w, h``, enclosing-box sizes ``cw, ch``, centre sums ``sx, sy``); their adjoints are computed in
    closed form, then chained to the corners through the masks of the clamps, mins and maxes.
    """
    zero = x1.new_zeros(())
    dxp, dyp = x2 - x1, y2 - y1
    w, h = dxp.clamp_min(0.0), dyp.clamp_min(0.0)  # inverted boxes: zero area, not negative area
    tw, th = (tx2 - tx1).clamp_min(0.0), (ty2 - ty1).clamp_min(0.0)
    iw_raw = torch.minimum(x2, tx2) - torch.maximum(x1, tx1)
    ih_raw = torch.minimum(y2, ty2) - torch.maximum(y1, ty1)
    iw, ih = iw_raw.clamp_min(0.0), ih_raw.clamp_min(0.0)
    inter = iw * ih
    union = w * h + tw * th - inter + eps  # eps: two zero-area boxes have union 0
    iou = inter / union
    if kind == "linear":
        loss = 1.0 - iou
        g_iou = -1.0
    elif kind == "log":
        # clamp rather than add eps: no overlap means no gradient, as in the linear form.
        iou_c = iou.clamp_min(eps)
        loss = -torch.log(iou_c)
        g_iou = torch.where(iou >= eps, -1.0 / iou_c, zero)
    else:
        loss = 1.0 - iou
        g_iou = -1.0
        # enclosing box over all eight corners: it contains both boxes even if one is inverted.
        pxl, pxh = torch.minimum(x1, x2), torch.maximum(x1, x2)
        pyl, pyh = torch.minimum(y1, y2), torch.maximum(y1, y2)
        cxl, cxh = torch.minimum(pxl, torch.minimum(tx1, tx2)), torch.maximum(pxh, torch.maximum(tx1, tx2))
        cyl, cyh = torch.minimum(pyl, torch.minimum(ty1, ty2)), torch.maximum(pyh, torch.maximum(ty1, ty2))
        cw, ch = cxh - cxl, cyh - cyl
        if kind == "giou":
            area_c = cw * ch + eps  # eps: the enclosing box of two points has area 0
            penalty = (area_c - union) / area_c  # = (C - U0) / (C + eps) with U0 = union - eps
            loss = loss + penalty
        else:
            sx = x1 + x2 - tx1 - tx2  # twice the centre offset
            sy = y1 + y2 - ty1 - ty2
            diag2 = cw * cw + ch * ch + eps  # eps: the enclosing box of two equal points has diagonal 0
            rho2 = 0.25 * (sx * sx + sy * sy)
            loss = loss + rho2 / diag2
            if kind == "ciou":
                # eps: atan(w / h) of a zero-height box
                dang = torch.atan(tw / (th + eps)) - torch.atan(w / (h + eps))
                v = _FOUR_OVER_PI2 * dang * dang
                # alpha carries no gradient (the authors' code); eps, and 0 for 0/0 (IoU = 1, v = 0)
                denom = 1.0 - iou + v + eps
                alpha = (v / torch.where(denom > 0.0, denom, 1.0)).detach()
                if gated:  # journal version: no aspect term until the boxes overlap enough
                    alpha = torch.where(iou >= 0.5, alpha, zero)
                loss = loss + alpha * v
    if not need_grad:
        return loss, None

    # adjoints of the loss with respect to inter, the predicted area and (GIoU) the enclosing area
    g_inter = g_iou * (1.0 + iou) / union
    g_area = -g_iou * iou / union
    g_cw = g_ch = g_sx = g_sy = None
    if kind == "giou":
        inv_c = 1.0 / area_c
        g_inter = g_inter + inv_c
        g_area = g_area - inv_c
        g_c = union * inv_c * inv_c
        g_cw, g_ch = g_c * ch, g_c * cw
    g_w, g_h = g_area * h, g_area * w
    if kind in ("diou", "ciou"):
        inv_d = 1.0 / diag2
        g_sx, g_sy = 0.5 * sx * inv_d, 0.5 * sy * inv_d
        g_diag = -rho2 * inv_d * inv_d * 2.0
        g_cw, g_ch = g_diag * cw, g_diag * ch
        if kind == "ciou":
            he = h + eps
            k = alpha * (2.0 * _FOUR_OVER_PI2) * dang / (he * he + w * w)
            g_w = g_w - k * he  # d atan(w / he) / dw = he / (he^2 + w^2)
            g_h = g_h + k * w
    g_iw = torch.where(iw_raw >= 0.0, g_inter * ih, zero)
    g_ih = torch.where(ih_raw >= 0.0, g_inter * iw, zero)
    g_w = torch.where(dxp >= 0.0, g_w, zero)
    g_h = torch.where(dyp >= 0.0, g_h, zero)
    # iw = min(x2, tx2) - max(x1, tx1): x2 counts where it is the min, x1 where it is the max
    gx1 = -torch.where(x1 >= tx1, g_iw, zero) - g_w
    gx2 = torch.where(x2 <= tx2, g_iw, zero) + g_w
    gy1 = -torch.where(y1 >= ty1, g_ih, zero) - g_h
    gy2 = torch.where(y2 <= ty2, g_ih, zero) + g_h
    if g_cw is not None:
        # cw = max(corners) - min(corners): the prediction's side counts where it is the extreme; its
        # share s goes to x2 as the max (x1 as the min), split evenly for a zero-width box, so that a
        # point box moves as a whole instead of turning inverted.
        hi_x = torch.where(pxh >= cxh, g_cw, zero)
        lo_x = torch.where(pxl <= cxl, g_cw, zero)
        hi_y = torch.where(pyh >= cyh, g_ch, zero)
        lo_y = torch.where(pyl <= cyl, g_ch, zero)
        sx2 = 0.5 + 0.5 * torch.sign(dxp)
        sy2 = 0.5 + 0.5 * torch.sign(dyp)
        gx1 = gx1 + (hi_x - sx2 * (hi_x + lo_x))  # (1 - s) hi - s lo
        gx2 = gx2 + (sx2 * (hi_x + lo_x) - lo_x)  # s hi - (1 - s) lo
        gy1 = gy1 + (hi_y - sy2 * (hi_y + lo_y))
        gy2 = gy2 + (sy2 * (hi_y + lo_y) - lo_y)
    if g_sx is not None:
        gx1, gx2, gy1, gy2 = gx1 + g_sx, gx2 + g_sx, gy1 + g_sy, gy2 + g_sy
    return loss, torch.stack((gx1, gy1, gx2, gy2))


_compiled: dict[tuple, Callable] = {}
_compile_failed: set[str] = set()


def _compilable(device: torch.device) -> bool:
    if device.type not in ("cpu", "cuda") or device.type in _compile_failed:
        return False
    compiler = getattr(torch, "compiler", None)
    return not (compiler is not None and compiler.is_compiling())


def _planes(boxes: Tensor) -> Tensor:
    """``(M, 4)`` boxes as contiguous ``(4, M)`` coordinate planes."""
    if boxes.device.type == "cpu" and boxes.dtype in (torch.float32, torch.float64) and boxes.shape[0] > 4096:
        # A 4x4 identity product is an exact transpose (x * 1 + 0 * y ... = x) that BLAS does in one
        # blocked pass, 2-3x faster than the strided copy of .t().contiguous() on CPU.
        # autocast off: under CPU autocast mm would run in bfloat16 and round the coordinates.
        with torch.autocast("cpu", enabled=False):
            return torch.mm(torch.eye(4, dtype=boxes.dtype), boxes.t())
    return boxes.t().contiguous()


def _run_kernel(kind: str, eps: float, gated: bool, need_grad: bool, p: Tensor, t: Tensor):
    """Run the eager kernel on ``(M, 4)`` boxes in the compute dtype.

    The boxes are first copied into contiguous ``(4, M)`` coordinate planes: one cheap pass that lets
    every later elementwise step run on unit-stride, vectorised data.
    """
    return _box_loss_kernel(kind, eps, gated, need_grad, *_planes(p).unbind(0), *_planes(t).unbind(0))


def _planes_pair(p: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    return torch.stack(p.unbind(-1)), torch.stack(t.unbind(-1))


def _loss_program(kind: str, gated: bool) -> Callable:
    def loss_of_planes(p: Tensor, t: Tensor, _eps: float) -> Tensor:
        return _box_loss_kernel(kind, _eps, gated, False, *p.unbind(0), *t.unbind(0))[0]

    return loss_of_planes


def _grad_program(kind: str, gated: bool) -> Callable:
    def grad_rows_of_planes(p: Tensor, t: Tensor, g: Tensor, _eps: float) -> Tensor:
        planes = _box_loss_kernel(kind, _eps, gated, True, *p.unbind(0), *t.unbind(0))[1]
        assert planes is not None
        return torch.stack((planes * g).unbind(0), dim=-1)  # (M, 4), grad_out applied

    return grad_rows_of_planes


def _compiled_call(key: tuple, make: Callable[[], Callable], *args, **kwargs):
    fn = _compiled.get(key)
    if fn is None:
        fn = _compiled[key] = torch.compile(make(), dynamic=True)
    return fn(*args, **kwargs)


def _compile_failed_warning(device: torch.device, err: Exception) -> None:
    _compile_failed.add(device.type)
    warnings.warn(
        f"losskit box losses: torch.compile failed ({type(err).__name__}); using the eager kernel",
        RuntimeWarning,
        stacklevel=4,
    )


def _chunk(kind: str, eps: float, gated: bool, p: Tensor, t: Tensor, g: Tensor | None = None) -> Tensor:
    """One chunk of ``(M, 4)`` boxes on the large-batch path: the loss ``(M,)`` if ``g`` is ``None``,
    else ``g[:, None] * d loss / d p`` ``(M, 4)``. Two compiled programs (rows to coordinate planes, then
    the fused kernel on unit-stride planes); the eager kernel where compilation is unavailable."""
    dev = p.device.type
    if _compilable(p.device):
        try:
            pp, tp = _compiled_call(("planes", dev), lambda: _planes_pair, p, t)
            if g is None:
                make = lambda: _loss_program(kind, gated)  # noqa: E731
                return _compiled_call(("loss", kind, gated, dev), make, pp, tp, _eps=eps)
            make = lambda: _grad_program(kind, gated)  # noqa: E731
            return _compiled_call(("grad", kind, gated, dev), make, pp, tp, g, _eps=eps)
        except Exception as err:  # no C++ compiler, no triton, ...: the eager kernel gives the same values
            _compile_failed_warning(p.device, err)
    loss, planes = _run_kernel(kind, eps, gated, g is not None, p, t)
    return loss if g is None else planes.t() * g[:, None]


def _scale(grad_out: Tensor, planes: Tensor, out: Tensor) -> None:
    """``out = grad_out[:, None] * planes.T``: the ``(4, M)`` planes written into an ``(M, 4)`` gradient."""
    torch.mul(planes.t(), grad_out.unsqueeze(-1), out=out)


class _BoxLoss(torch.autograd.Function):
    """Unreduced box loss of ``(M, 4)`` boxes in the compute dtype, with a closed-form backward.

    Small batches compute the loss and the gradient in the same forward pass and keep the gradient for
    the backward pass. Large ones (``compiled``) work in chunks of ``_CHUNK`` pairs, whose planes stay in
    cache: the forward pass computes only the loss, and the backward pass recomputes loss and gradient
    chunk by chunk, writing ``grad_out * gradient`` straight into the result. Nothing of size ``M``
    but the loss and the result is ever allocated, which halves the peak memory.
    """

    @staticmethod
    def forward(ctx, p: Tensor, t: Tensor, kind: str, eps: float, gated: bool, limit: float):  # type: ignore[override]
        need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        m = p.shape[0]
        compiled = m >= _COMPILE_MIN_PAIRS and _compilable(p.device)
        ctx.kind, ctx.eps, ctx.gated, ctx.limit, ctx.compiled = kind, eps, gated, limit, compiled
        if compiled:
            loss = p.new_empty(m)
            for s in range(0, m, _CHUNK):
                e = min(s + _CHUNK, m)
                loss[s:e] = _chunk(kind, eps, gated, p[s:e], t[s:e])
            ctx.save_for_backward(p, t, None, None)
            return loss
        loss, gp = _run_kernel(kind, eps, gated, need_p, p, t)
        gt = _run_kernel(kind, eps, gated, True, t, p)[1] if need_t else None
        ctx.save_for_backward(p, t, gp, gt)
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        p, t, gp, gt = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        args = (ctx.kind, ctx.eps, ctx.gated, True)
        if torch.is_grad_enabled():
            # create_graph=True: recompute the gradient with differentiable ops for double backward.
            gp = _box_loss_kernel(*args, *p.unbind(-1), *t.unbind(-1))[1] if need_p else None
            gt = _box_loss_kernel(*args, *t.unbind(-1), *p.unbind(-1))[1] if need_t else None
            return (
                (grad_out * gp).t() if gp is not None else None,
                (grad_out * gt).t() if gt is not None else None,
                None,
                None,
                None,
                None,
            )
        m = p.shape[0]
        out_p = p.new_empty(m, 4) if need_p else None
        out_t = t.new_empty(m, 4) if need_t else None
        if ctx.compiled:
            for s in range(0, m, _CHUNK):
                e = min(s + _CHUNK, m)
                if out_p is not None:
                    out_p[s:e] = _chunk(ctx.kind, ctx.eps, ctx.gated, p[s:e], t[s:e], grad_out[s:e])
                if out_t is not None:
                    out_t[s:e] = _chunk(ctx.kind, ctx.eps, ctx.gated, t[s:e], p[s:e], grad_out[s:e])
        else:
            if out_p is not None:
                _scale(grad_out, gp, out_p)
            if out_t is not None:
                _scale(grad_out, gt, out_t)
        if ctx.limit < math.inf:
            # float16/bfloat16 callers: gradients of near-degenerate boxes (of order 1/eps) saturate at
            # the dtype's largest value instead of overflowing to inf.
            for out in (out_p, out_t):
                if out is not None:
                    out.clamp_(-ctx.limit, ctx.limit)
        return out_p, out_t, None, None, None, None


def _box_loss(
    fn: str,
    kind: str,
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
    eps = check_nonnegative(fn, "eps", eps)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape[:-1])
    dtype = input.dtype
    ct = compute_dtype(dtype)
    p = input.reshape(-1, 4).to(ct)
    t = target.reshape(-1, 4).to(ct)
    limit = torch.finfo(dtype).max if ct != dtype else math.inf
    loss = _BoxLoss.apply(p, t, kind, eps, gated, limit).reshape(input.shape[:-1])
    return reduce_loss(loss, reduction, weight).to(dtype)


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
        eps: added to the union (and the floor of IoU in ``'log'`` mode), ``>= 0``. Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if the shapes differ or do not end in 4, ``mode``, ``eps``, ``weight`` or
            ``reduction`` is invalid.
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

    where :math:`C` is the smallest box enclosing both :math:`B` and :math:`B^{gt}`. The loss is in
    ``[0, 2)``.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        eps: added to the union and to the enclosing area, ``>= 0``. Default: ``1e-7`` (torchvision's).
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if the shapes differ or do not end in 4, ``eps``, ``weight`` or ``reduction`` is
            invalid.
        TypeError: if ``input`` or ``target`` is not floating point.

    Note:
        The enclosing box is taken over all corners, so for an inverted box it differs from
        torchvision's ``min(x1, x1') .. max(x2, x2')``; for valid boxes the two agree.

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

    where :math:`\rho` is the distance between the box centres and :math:`c` the diagonal of the
    smallest enclosing box. The loss is in ``[0, 2)``.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        eps: added to the union and to the squared diagonal, ``>= 0``. Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if the shapes differ or do not end in 4, ``eps``, ``weight`` or ``reduction`` is
            invalid.
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
        v = \frac{4}{\pi^2}\left(\arctan\frac{w^{gt}}{h^{gt} + \varepsilon}
                                - \arctan\frac{w}{h + \varepsilon}\right)^2, \quad
        \alpha = \frac{v}{(1 - \mathrm{IoU}) + v + \varepsilon}

    with :math:`\rho, c` as in :func:`distance_box_iou_loss` and :math:`w, h` the box sizes. The
    trade-off :math:`\alpha` is treated as a constant (no gradient flows through it), as in the
    authors' code and torchvision. The loss is in ``[0, 3)`` and never below DIoU.

    Args:
        input: predicted boxes ``(x1, y1, x2, y2)``, shape ``(..., 4)``.
        target: target boxes, same shape as ``input``.
        gated: if ``True``, :math:`\alpha = 0` where IoU < 0.5 (the journal version, Zheng et al.,
            IEEE TCYB 2021, as used by mmdetection). Default: ``False``, the AAAI 2020 loss (as the
            authors' released code and torchvision).
        eps: added to the union, the squared diagonal, the heights in the ratios and the denominator of
            :math:`\alpha`, ``>= 0``. Default: ``1e-7``.
        weight: optional per-pair weights, broadcastable to ``(...)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of box pairs.

    Returns:
        Shape ``(...)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if the shapes differ or do not end in 4, ``eps``, ``weight`` or ``reduction`` is
            invalid.
        TypeError: if ``input`` or ``target`` is not floating point.

    Note:
        The gradient is the exact gradient of this formula (with :math:`\alpha` constant). The paper also
        describes dropping the factor :math:`1/(w^2 + h^2)` from :math:`\partial v/\partial w` in its
        own implementation; losskit does not. ``eps`` in the heights keeps zero-height boxes finite,
        where torchvision's gradient is NaN (and its loss too, for a point box).

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
