r"""GHM-C's one fast path: the histogram, the loss and its closed-form gradient in two chunked passes
(private).

:func:`losskit.functional.ghmc_loss` is the definition: binary cross-entropy with logits weighted by
:math:`\beta_{b(g)}`, the harmonizing weight of the bin of the gradient norm
:math:`g = |\sigma(x) - y|`, the weights carrying no gradient. Its autograd composition makes about
ten ``(*)``-sized temporaries. Here:

1. pass 1, per chunk: :math:`\sigma(x)` into the gradient buffer, the bin index of :math:`g`
   (``floor(g * bins)`` clamped to the last bin; ``bins`` for elements not counted; ``bins + 1``,
   whose weight is ``NaN``, where ``input`` or ``target`` is not finite) into a one-byte index buffer
   (four bytes beyond 254 bins) and the histogram (``bincount``);
2. the bin weights from the histogram, by the definition's own function, which also updates
   ``running_counts``: once per call, never in backward;
3. pass 2, per chunk: torch's BCE-with-logits formula ``(1 - y) x - log sigmoid(x)`` times the
   element's weight, summed in float64, and the gradient :math:`\beta (\sigma(x) - y)` written over
   :math:`\sigma(x)`.

The bin index is computed with the definition's operations (same ``sigmoid``, same products), so the
two agree bin for bin. The backward scales the buffer in place; a second backward recomputes it with
the same operations (bit for bit); with ``create_graph=True`` it differentiates the definition's
weighted BCE with the same weights. Chosen on the CPU only (where ``benchmarks/bench_focal.py``
measured it), for float32/float64, a reduced loss and no gradient wanted for ``target`` or
``weight``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import eager_autograd

__all__ = ["eligible", "ghmc"]

# Elements per chunk (see losskit._kernels.focal.CHUNK; measured the same way).
CHUNK = 1 << 17
_DTYPES = (torch.float32, torch.float64)
_aten = torch.ops.aten

BinWeights = Callable[[Tensor], Tensor]  # counts (bins + 2,) int64 -> weights (bins + 2,)
Definition = Callable[[Tensor, Tensor, Tensor], Tensor]  # (x, y, element weights) -> weighted BCE sum


def eligible(
    input: Tensor,
    target: Tensor,
    label_weight: Tensor | None,
    weight: Tensor | None,
    reduction: str,
) -> bool:
    """Whether :func:`ghmc` may replace the definition of ``ghmc_loss`` for this call.

    The shared rule (:func:`losskit._kernels.eager_autograd`) plus: ``'mean'`` or ``'sum'``, a
    non-empty CPU float32/float64 ``input`` with a ``target`` of its dtype, and no gradient for
    ``target`` or ``weight``.
    """
    return (
        reduction != "none"
        and input.device.type == "cpu"
        and input.dtype in _DTYPES
        and target.dtype == input.dtype
        and input.numel() > 0
        and not target.requires_grad
        and (weight is None or not weight.requires_grad)
        and eager_autograd(input, target, label_weight, weight)
    )


def _histogram(x: Tensor, y: Tensor, valid: Tensor | None, bins: int, p: Tensor, idx: Tensor) -> Tensor:
    """Pass 1: ``sigmoid(x)`` into ``p``, bin indices into ``idx``; returns the counts ``(bins + 2,)``."""
    n = x.numel()
    k = min(CHUNK, n)
    ws = list(x.new_empty((2, k)).unbind(0))
    zero = x.new_zeros(())
    last = x.new_full((), float(bins))
    counts = torch.zeros(bins + 2, dtype=torch.int64, device=x.device)
    for i in range(0, n, CHUNK):
        j = min(i + CHUNK, n)
        w0, w1 = (b[: j - i] for b in ws)
        xc, yc = x[i:j], y[i:j]
        pc = torch.sigmoid(xc, out=p[i:j])
        gb = torch.sub(pc, yc, out=w0).abs_()  # g = |sigmoid(x) - y|, as the definition
        # (x + y) * 0 is NaN exactly where x or y is not finite: those elements go to bin bins + 1
        gb.addcmul_(torch.add(xc, yc, out=w1), zero.expand(j - i))
        gb.mul_(bins).clamp_max_(bins - 1)  # g >= 0: truncation is floor; NaN stays NaN
        if valid is not None:  # elements not counted: bin `bins` (lerp with a 0/1 weight selects)
            gb = torch.lerp(last.expand(j - i), gb, valid[i:j].to(x.dtype), out=w1)
        gb.nan_to_num_(nan=float(bins + 1))
        counts += torch.bincount(idx[i:j].copy_(gb), minlength=bins + 2)
    return counts


def _gradient(
    x: Tensor,
    y: Tensor,
    idx: Tensor,
    beta: Tensor,
    wt: Tensor | None,
    out: Tensor,
    p: Tensor | None = None,
) -> Tensor:
    """Pass 2 of the backward alone: ``beta[idx] * wt * (sigmoid(x) - y)`` into ``out`` (``p`` is
    ``sigmoid(x)`` when it is already there, as ``out`` itself after pass 1)."""
    n = x.numel()
    k = min(CHUNK, n)
    ws = list(x.new_empty((2, k)).unbind(0))
    ii = torch.empty(k, dtype=torch.int32, device=x.device)
    for i in range(0, n, CHUNK):
        j = min(i + CHUNK, n)
        w0, w1 = (b[: j - i] for b in ws)
        pc = torch.sigmoid(x[i:j], out=w0) if p is None else p[i:j]
        d = torch.sub(pc, y[i:j], out=w0)
        w_el = torch.index_select(beta, 0, ii[: j - i].copy_(idx[i:j]), out=w1)
        if wt is not None:
            w_el.mul_(wt[i:j])
        torch.mul(d, w_el, out=out[i:j])
    return out


def _loss_and_gradient(
    x: Tensor, y: Tensor, idx: Tensor, beta: Tensor, wt: Tensor | None, buf: Tensor | None
) -> Tensor:
    """Pass 2: the weighted BCE sum (float64 accumulation); the gradient over ``buf`` (holding
    ``sigmoid(x)``) when given."""
    n = x.numel()
    k = min(CHUNK, n)
    ws = list(x.new_empty((4, k)).unbind(0))
    ii = torch.empty(k, dtype=torch.int32, device=x.device)
    one = x.new_ones(())
    total = x.new_zeros((), dtype=torch.float64)
    for i in range(0, n, CHUNK):
        j = min(i + CHUNK, n)
        ce, e, ym, w_el = (b[: j - i] for b in ws)
        xc, yc = x[i:j], y[i:j]
        _aten.log_sigmoid_forward.output(xc, output=ce, buffer=e)
        # -BCE = log sigmoid(x) - (1 - y) x: torch's BCE-with-logits operations, negated (exactly)
        ce.addcmul_(torch.sub(one.expand(j - i), yc, out=ym), xc, value=-1.0)
        torch.index_select(beta, 0, ii[: j - i].copy_(idx[i:j]), out=w_el)
        if wt is not None:
            w_el.mul_(wt[i:j])
        # a product and torch's cascade sum (BLAS dot accumulates 100x worse in float32)
        total -= ce.mul_(w_el).sum()
        if buf is not None:
            bc = buf[i:j]
            bc.sub_(yc).mul_(w_el)  # (sigmoid(x) - y) * weight, over sigmoid(x)
    return total


class _GHMC(torch.autograd.Function):
    """Forward: (loss, gradient buffer); backward scales the buffer (see the module docstring)."""

    @staticmethod
    def forward(
        x: Tensor,
        y: Tensor,
        valid: Tensor | None,
        wt: Tensor | None,
        bins: int,
        bin_weights: BinWeights,
        scale: Tensor | None,
        definition: Definition,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        idx, beta, total, buf = _run(x, y, valid, wt, bins, bin_weights, scale, grad=True)
        return total, buf, idx, beta

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y, _valid, wt, _bins, _weights, _scale, definition = inputs
        _, buf, idx, beta = output
        ctx.save_for_backward(x, y, wt)
        ctx.buf, ctx.idx, ctx.beta, ctx.definition = buf, idx, beta, definition
        ctx.mark_non_differentiable(buf, idx, beta)
        ctx.set_materialize_grads(False)  # no (*)-sized zeros for the unused outputs' gradients

    @staticmethod
    def backward(ctx, grad: Tensor, *_unused: Tensor | None):
        x, y, wt = ctx.saved_tensors
        none = (None,) * 7
        if grad is None:  # the loss was not used
            return (None, *none)
        if torch.is_grad_enabled():  # create_graph=True: the definition's gradient, differentiable
            w_el = ctx.beta.index_select(0, ctx.idx.reshape(-1).long()).view_as(x)
            if wt is not None:
                w_el = w_el * wt
            with torch.enable_grad():
                (g,) = torch.autograd.grad(ctx.definition(x, y, w_el), x, grad, create_graph=True)
            return (g, *none)
        buf, ctx.buf = ctx.buf, None
        if buf is None:  # a second backward: the same operations give the same buffer, bit for bit
            buf = _gradient(
                x.view(-1),
                y.view(-1),
                ctx.idx.reshape(-1),
                ctx.beta,
                None if wt is None else wt.view(-1),
                torch.empty(x.numel(), dtype=x.dtype, device=x.device),
            ).view_as(x)
        return (buf.mul_(grad), *none)


def _run(
    x: Tensor,
    y: Tensor,
    valid: Tensor | None,
    wt: Tensor | None,
    bins: int,
    bin_weights: BinWeights,
    scale: Tensor | None,
    grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Both passes over contiguous tensors: (bin indices, scaled bin weights, loss, gradient buffer)."""
    xf, yf = x.reshape(-1), y.reshape(-1)
    vf = None if valid is None else valid.reshape(-1)
    wf = None if wt is None else wt.reshape(-1)
    buf = torch.empty_like(xf)  # sigmoid(x) after pass 1, the gradient after pass 2
    idx = torch.empty(xf.shape, dtype=torch.uint8 if bins <= 253 else torch.int32, device=x.device)
    with torch.no_grad():
        counts = _histogram(xf, yf, vf, bins, buf, idx)
        beta = bin_weights(counts)  # the one state update
        if scale is not None:
            beta = beta * scale
        total = _loss_and_gradient(xf, yf, idx, beta, wf, buf if grad else None)
    return idx.view_as(x), beta, total.to(x.dtype), buf.view_as(x)


def ghmc(
    input: Tensor,
    target: Tensor,
    valid: Tensor | None,
    weight: Tensor | None,
    bins: int,
    bin_weights: BinWeights,
    scale: Tensor | None,
    definition: Definition,
) -> Tensor:
    """The reduced GHM-C loss of ``input`` (float32/float64, CPU); see :func:`eligible`.

    ``bin_weights(counts)`` is the definition's weights from the histogram (updating the state);
    ``scale`` multiplies them (``1 / tot`` for the mean, ``None`` for the sum); ``definition(x, y, w)``
    is the weighted BCE sum, differentiated for double backward.
    """
    x, y = input.contiguous(), target.contiguous()
    v = None if valid is None else valid.contiguous()
    wt = None if weight is None else weight.to(x.dtype).expand(x.shape).contiguous()
    if torch.is_grad_enabled() and x.requires_grad:
        return _GHMC.apply(x, y, v, wt, bins, bin_weights, scale, definition)[0]
    return _run(x.detach(), y, v, wt, bins, bin_weights, scale, grad=False)[2]
