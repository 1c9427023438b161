"""The box family's one fast path: IoU, GIoU, DIoU and CIoU losses with their closed-form gradient.

The definition (:func:`losskit.functional.iou.box_loss_definition`, built on the one measure
definition :func:`losskit.functional.boxes.overlap`) composes some forty elementwise operations over
the whole batch, and autograd keeps a dozen of their results for a backward pass of as many again.
The kernel here computes the same loss with the same floating-point operations in the same order, and
its gradient in closed form, in one pass over chunks of pairs: each chunk of ``(c, 4)`` predicted and
target boxes is copied into coordinate planes ``(corner, box, axis, c)``, so that every operation
runs on unit-stride rows (x and y together, predicted and target box together where the formula
treats them alike) that stay in cache. Only the loss and the gradient ``(M, 4)`` are allocated at the
batch's size; the backward pass scales that gradient in place by the upstream gradient and hands it
over, so nothing else of the batch's size is kept.

Kinks follow the definition's rules: a clamp at 0 passes the gradient at 0, a min or max of two equal
values shares it equally. ``benchmarks/bench_boxes.py`` measures it at 1M pairs on the CPU,
the only device it is chosen on (the one it was measured on); float32 and float64 only (the losses
compute float16/bfloat16 in float32 before they get here). Tested against the definition and
float64 at the hard cases (identical, degenerate, inverted and point boxes, float16 inputs, NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from . import eager_autograd

__all__ = ["box_loss", "eligible"]

_DTYPES = (torch.float32, torch.float64)
# (kind, input, target, eps, gated) -> unreduced loss: the definition the kernel computes
Definition = Callable[[str, Tensor, Tensor, float, bool], Tensor]
_FOUR_OVER_PI2 = 4.0 / math.pi**2
# Pairs per chunk (the default of box_loss's chunk=). A chunk's workspace is about 155 bytes per pair in
# float32 (10 MiB at 64K pairs): it stays in the last-level cache, and it adds to the peak memory, which
# at 1M pairs is 28.8 MiB with the loss and the (M, 4) gradient (torchvision: 67.8 MiB; 128K-pair chunks:
# 38.6 MiB). 64K also lets each per-pair operation split over two threads (torch's grain is 32768).
_CHUNK = 1 << 16


def eligible(input: Tensor, target: Tensor, weight: Tensor | None, eps: float) -> bool:
    """Whether :func:`box_loss` may replace the definition of a box loss for this call.

    The shared rule (:func:`losskit._kernels.eager_autograd`: no compile, no ``torch.func``, no forward
    AD) plus: a CPU float32/float64 ``input`` with a ``target`` of the same dtype, ``eps > 0`` (the
    definition gives 0/0 its meaning), a gradient to compute for ``input`` and none for ``target``
    (the kernel wins by computing the gradient with the loss).
    """
    return (
        input.device.type == "cpu"
        and input.dtype in _DTYPES
        and target.dtype == input.dtype
        and eps > 0
        and torch.is_grad_enabled()
        and input.requires_grad
        and not target.requires_grad
        and input.numel() > 0
        and eager_autograd(input, target, weight)
    )


def _chunk(kind: str, z: Tensor, eps: float, gated: bool, loss: Tensor, grad: Tensor) -> None:
    """Loss and gradient of one chunk of ``c`` pairs.

    ``z`` holds the chunk's coordinates as planes ``(corner, box, axis, c)``: corner 0 is ``(x1, y1)``
    and 1 is ``(x2, y2)``, box 0 the prediction and 1 the target. Writes the loss ``(c,)`` into
    ``loss`` and d loss / d prediction into ``grad`` ``(c, 4)``. Temporaries are dropped as soon as they
    are used up, so that a chunk's workspace stays small (it adds to the peak memory).
    """
    lo, hi = z[0], z[1]  # (box, axis, c)
    lo_p, lo_t = lo.unbind(0)  # (axis, c)
    hi_p, hi_t = hi.unbind(0)
    # the forward pass: the definition's operations, in its order
    d = hi - lo  # raw sides (w, h) of both boxes
    s = d.clamp_min(0)  # inverted boxes: zero area
    s_p = s[0]
    area = s[:, 0] * s[:, 1]  # (box, c)
    i_raw = torch.minimum(hi_p, hi_t).sub_(torch.maximum(lo_p, lo_t))  # (axis, c)
    iwh = i_raw.clamp_min(0)
    iw, ih = iwh.unbind(0)
    inter = iw * ih
    union0 = (area[0] + area[1]).sub_(inter)
    del area
    union = union0 + eps
    iou = inter / union
    del inter
    if kind in ("giou", "diou", "ciou"):
        e = torch.empty_like(z)  # (corner, box, axis, c): each box's corners in order
        torch.minimum(lo, hi, out=e[0])
        torch.maximum(lo, hi, out=e[1])
        cwh = torch.maximum(e[1, 0], e[1, 1]).sub_(torch.minimum(e[0, 0], e[0, 1]))  # enclosing box
        # for the gradient, the signs of the ties of the enclosing box's min and max, (corner, axis, c):
        # sign(min_p - min_t) = -L and sign(max_p - max_t) = K
        ties = torch.sub(e[:, 0], e[:, 1], out=e[:, 0]).sign_()
        if kind == "giou":
            area_c = cwh[0] * cwh[1]
            c_eps = area_c + eps
            pen = area_c.sub_(union0).div_(c_eps)
        else:
            cw2 = cwh * cwh
            d_eps = cw2[0] + cw2[1]
            d_eps.add_(eps)
            del cw2
            off = (lo_p + hi_p).sub_(lo_t + hi_t)  # twice the centre offset, (axis, c)
            off2 = off * off
            pen = (off2[0] + off2[1]).mul_(0.25).div_(d_eps)
            del off2
        m = torch.sub(iou, pen, out=loss)
        if kind == "ciou":
            ang = torch.atan2(s[:, 0], s[:, 1])  # (box, c); atan2(0, 0) = 0 as the definition's
            dang = ang[1] - ang[0]
            del ang
            v = (dang * dang).mul_(_FOUR_OVER_PI2)
            alpha = (1 - iou).add_(v).add_(eps)
            torch.div(v, alpha, out=alpha)
            if gated:
                alpha.mul_(torch.ge(iou, 0.5).to(alpha.dtype))
            m.sub_(alpha * v)
            del v
        m.neg_().add_(1)  # 1 - m: the loss
    elif kind == "log":
        iou_c = iou.clamp_min(eps)
        torch.log(iou_c, out=loss).neg_()
    else:
        torch.neg(iou, out=loss).add_(1)  # 1 - iou

    # adjoints of the loss with respect to the intersection, the predicted area and the penalty's terms
    r_u = torch.reciprocal(union)
    if kind == "log":
        # d(-ln max(iou, eps)) / d iou = -1 / iou where iou >= eps, 0 below
        r_u.mul_(torch.ge(iou, eps).to(iou.dtype).div_(iou_c))
    g_a = iou.mul_(r_u)  # d loss / d area = iou / union (iou is used up)
    # half of d loss / d inter = -(1 + iou) / union: a tie in the intersection's min or max shares it
    g_i = torch.add(r_u, g_a, out=r_u).mul_(-0.5)
    g_c = None  # adjoint of the enclosing box's sides (cw, ch), times 1/4 (see below)
    if kind == "giou":
        r_c = torch.reciprocal(c_eps)
        del c_eps
        g_i.add_(r_c, alpha=0.5)
        g_a.sub_(r_c)
        g_ac = union.mul_(r_c).mul_(r_c).mul_(0.25)  # d pen / d area_c = union / (area_c + eps)^2
        del r_c
        g_c = torch.empty_like(cwh)
        torch.mul(g_ac, cwh[1], out=g_c[0])
        torch.mul(g_ac, cwh[0], out=g_c[1])
        del g_ac
    elif kind in ("diou", "ciou"):
        r_d = torch.reciprocal(d_eps)
        del d_eps
        g_c = cwh.mul_(pen.mul_(r_d).mul_(-0.5))  # d pen / d (cw, ch) = -2 pen (cw, ch) / diag
        g_off = off.mul_(r_d.mul_(0.5))  # d pen / d off = off / (2 diag), the same for both corners
        del r_d
    del union, union0
    mask = torch.empty_like(iwh)
    # the predicted box's sides (w, h): area, and CIoU's angle atan2(w, h)
    w, h = s_p.unbind(0)
    g_s = torch.empty_like(iwh)
    torch.mul(g_a, h, out=g_s[0])
    torch.mul(g_a, w, out=g_s[1])
    del g_a
    if kind == "ciou":
        r2 = (w * w).addcmul_(h, h).clamp_min_(torch.finfo(w.dtype).tiny)  # point box: gradient 0
        t = alpha.mul_(dang).mul_(-2 * _FOUR_OVER_PI2).div_(r2)  # d(alpha v)/d ang / (w^2 + h^2)
        del r2, dang
        g_s[0].addcmul_(t, h)  # d atan2(w, h) / dw = h / (w^2 + h^2)
        g_s[1].addcmul_(t, w, value=-1.0)  # d atan2(w, h) / dh = -w / (w^2 + h^2)
        del t
    del s, s_p, w, h
    g_s.mul_(torch.ge(d[0], 0, out=mask))  # the clamp passes the gradient at 0
    # the intersection's sides: iw = min(x2, u2) - max(x1, u1), ties shared equally (1/2 each)
    g_w = torch.empty_like(iwh)
    torch.mul(g_i, ih, out=g_w[0])
    torch.mul(g_i, iw, out=g_w[1])
    del g_i, iwh, iw, ih
    g_w.mul_(torch.ge(i_raw, 0, out=mask))
    del i_raw
    # (corner, axis, c): d loss / d (x1, y1) and d loss / d (x2, y2). The ties of the intersection:
    # x2 as min(x2, u2) has the share (1 + sign(u2 - x2)) / 2, x1 as max(x1, u1) (1 - sign(u1 - x1)) / 2
    g = torch.sub(z[:, 1], z[:, 0], out=torch.empty_like(z[:, 0])).sign_()
    g.mul_(g_w)  # (g_w sign(u1 - x1), g_w sign(u2 - x2)), g_w already halved
    g_s.add_(g_w)
    g[1].add_(g_s)  # d / d x2 = g_w (1 + sign(u2 - x2)) + d / dw
    g[0].sub_(g_s)  # d / d x1 = -g_w (1 - sign(u1 - x1)) - d / dw
    del g_w, g_s
    if g_c is not None:
        # cw = max(box corners) - min(box corners): the prediction's largest corner takes the max's
        # share K' = (1 + K) / 2, its smallest the min's L' = (1 + L) / 2 (K, L the signs of the ties),
        # and x2 is the largest corner with share (1 + sign(w)) / 2, x1 with the rest:
        # d cw / d x2 = (K - L + sign(w) (2 + K + L)) / 4, d cw / d x1 = (K - L - sign(w) (2 + K + L)) / 4
        a = ties[1] + ties[0]  # K - L
        b = torch.sub(ties[1], ties[0], out=ties[1]).add_(2).mul_(d[0].sign_())  # (K + L + 2) sign(w)
        g[1].addcmul_(g_c, torch.add(a, b, out=ties[0]))
        g[0].addcmul_(g_c, a.sub_(b))
        del a, b, ties, e, g_c
        if kind != "giou":
            g.add_(g_off)  # both corners
    grad.view(-1, 2, 2).permute(1, 2, 0).copy_(g)  # into the (c, 4) rows


class _BoxLoss(torch.autograd.Function):
    """Unreduced box loss of ``(M, 4)`` boxes; the gradient is computed in the forward pass."""

    @staticmethod
    def forward(p: Tensor, t: Tensor, kind: str, eps: float, gated: bool, chunk: int, definition: Definition):  # type: ignore[override]
        m = p.shape[0]
        loss = p.new_empty(m)
        grad = p.new_empty(m, 4)
        z = p.new_empty(2, 2, 2, min(chunk, m))
        for s in range(0, m, chunk):
            e = min(s + chunk, m)
            zc = z[..., : e - s] if e - s < z.shape[-1] else z
            zc[:, 0].copy_(p[s:e].view(-1, 2, 2).permute(1, 2, 0))
            zc[:, 1].copy_(t[s:e].view(-1, 2, 2).permute(1, 2, 0))
            _chunk(kind, zc, eps, gated, loss[s:e], grad[s:e])
        return loss, grad

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        p, t, kind, eps, gated, chunk, definition = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no (M, 4) zeros for the gradient output's missing gradient
        ctx.save_for_backward(p, t)
        ctx.args = (kind, eps, gated, chunk, definition)
        ctx.grad = output[1]  # not an input or a differentiable output: held by ctx, released below

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_grad: Tensor | None):  # type: ignore[override]
        kind, eps, gated, chunk, definition = ctx.args
        p, t = ctx.saved_tensors
        grad, ctx.grad = ctx.grad, None
        if grad_loss is None:  # grads are not materialised: nothing flows back into the loss
            return None, None, None, None, None, None, None
        if torch.is_grad_enabled():
            # create_graph=True: the gradient of the definition, differentiable in its turn
            with torch.enable_grad():
                loss = definition(kind, p, t, eps, gated)
                (g,) = torch.autograd.grad(loss, p, grad_loss, create_graph=True)
            return g, None, None, None, None, None, None
        if grad is None:  # a second backward pass (retain_graph=True): compute it again
            grad = _BoxLoss.forward(p.detach(), t, kind, eps, gated, chunk, definition)[1]
        return grad.mul_(grad_loss.unsqueeze(-1)), None, None, None, None, None, None


def box_loss(
    kind: str,
    input: Tensor,
    target: Tensor,
    eps: float,
    gated: bool,
    definition: Definition,
    chunk: int = _CHUNK,
) -> Tensor:
    """The unreduced loss ``(M,)`` of ``(M, 4)`` boxes, as ``definition``; see :func:`eligible`.

    ``kind`` is ``'linear'`` or ``'log'`` (the IoU loss), ``'giou'``, ``'diou'`` or ``'ciou'``;
    ``definition(kind, input, target, eps, gated)`` is the loss's definition, whose gradient a double
    backward pass differentiates; ``chunk`` is the number of pairs per chunk.
    """
    return _BoxLoss.apply(input.contiguous(), target.contiguous(), kind, eps, gated, chunk, definition)[0]
