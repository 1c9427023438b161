r"""The sigmoid focal loss's one fast path: loss and closed-form gradient in one chunked pass (private).

:func:`losskit.functional.sigmoid_focal_loss` is the definition (torchvision's formula, soft targets
included). Autograd of that composition keeps about ten ``(*)``-sized temporaries alive between forward
and backward. The kernel here walks the flattened input in chunks that stay in the CPU caches, computes
each chunk's loss and writes ``d loss / d input`` straight into one gradient buffer that the backward
scales in place: one ``(*)`` buffer, no second pass over the input. The chunks' workspace is the
unwritten part of that same buffer (and a 256 KiB spare for the last few), so forward + backward
allocate the gradient and nothing else of note: half of what torch's BCE with logits holds.

Per chunk, with :math:`p = \sigma(x)`, :math:`q = \sigma(-x)` (both to a few ulps, from one
``log_sigmoid`` evaluation and its buffer :math:`e^{-|x|}`), :math:`u = 1 - p_t = (1 - y) p + y q`
(a convex combination, no cancellation) and torch's own BCE-with-logits formula
:math:`(1 - y) x - \log\sigma(x)`:

.. math::
    \ell = \alpha_t u^\gamma\, \mathrm{CE}, \qquad
    \frac{\partial \ell}{\partial x} = \alpha_t u^{\gamma - 1}
    \left[\gamma (1 - 2y)\, p q\, \mathrm{CE} + u (p - y)\right],

exact for any target in ``[0, 1]`` (:math:`du/dx = (1 - 2y) p q`, :math:`d\mathrm{CE}/dx = p - y`,
computed as :math:`u - 2 y q`). For ``0 < gamma < 1`` the bracket is divided by ``u`` instead
(:math:`u^{\gamma - 1}` is infinite where ``u`` underflows to 0; the quotient is clamped there, where
the whole term vanishes). Chunk partial sums are accumulated in float64.

The backward is deterministic and reentrant: the first plain backward scales the forward's buffer in
place; a second one (``retain_graph=True``) recomputes the buffer with the same operations, bit for
bit, and scales that; with ``create_graph=True`` it differentiates the definition (double backward).
Chosen on the CPU only (the device ``benchmarks/bench_focal.py`` measured it on), for float32/float64
compute dtypes, a reduced loss, a float (or no) ``alpha`` and no gradient wanted for ``target`` or
``weight``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import eager_autograd

__all__ = ["eligible", "sigmoid_focal"]

# Elements per chunk: the chunk's five float32 buffers (5 MiB) stay in L3. 2^15..2^21 were measured
# at 100000 x 80 (two threads, interleaved with torch BCE in one process): with OpenMP's default wait
# policy 2^18 was fastest (1.09x BCE; 2^19 1.11x, 2^17 1.14x), with passive waiters 2^19 by 5%;
# smaller chunks pay for more parallel regions (a few microseconds each, tens with passive waiters),
# 2^20 and up fall out of cache.
CHUNK = 1 << 18
# The smallest chunk the shrinking tail of a gradient pass takes (its spare workspace: 4 x 64 KiB).
TAIL = 1 << 14
_DTYPES = (torch.float32, torch.float64)
_aten = torch.ops.aten

Definition = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def eligible(input: Tensor, target: Tensor, weight: Tensor | None, alpha: object, reduction: str) -> bool:
    """Whether :func:`sigmoid_focal` may replace the definition for this call.

    The shared rule (:func:`losskit._kernels.eager_autograd`) plus: ``'mean'`` or ``'sum'``, a
    non-empty CPU float32/float64 ``input`` (half inputs arrive here already in float32), ``alpha`` a
    float or ``None`` (a per-class tensor takes the definition), and no gradient for ``target`` or
    ``weight``.
    """
    return (
        reduction != "none"
        and input.device.type == "cpu"
        and input.dtype in _DTYPES
        and target.dtype == input.dtype
        and input.numel() > 0
        and not isinstance(alpha, Tensor)
        and not target.requires_grad
        and (weight is None or not weight.requires_grad)
        and eager_autograd(input, target, weight)
    )


def _chunk(
    x: Tensor,
    y: Tensor,
    wt: Tensor | None,
    out: Tensor | None,
    ws: list[Tensor],
    alpha: tuple[float, float] | None,
    gamma: float,
    scale: float,
) -> Tensor:
    """Scaled loss sum of one flat chunk; writes ``scale * d loss / d x`` into ``out`` when given.

    ``ws`` holds five buffers of the chunk's length (``ws[1]`` may be ``out`` itself: it is written
    last, when nothing else in it is needed); ``alpha`` is ``(scale * (1 - a), scale * (2a - 1))``
    (so that ``scale * alpha_t = c0 + c1 y``), or ``None``.
    """
    m = x.numel()
    one = x.new_ones(()).expand(m)
    nce, q = ws[0], ws[1]  # nce holds log sigmoid(x) first, then -CE
    _aten.log_sigmoid_forward.output(x, output=nce, buffer=q)  # log sigmoid(x), e^-|x|
    p = torch.neg(x, out=ws[2])
    _aten.log_sigmoid_backward.grad_input(one, p, q, grad_input=p)  # sigmoid(x), from e^-|x|
    _aten.log_sigmoid_backward.grad_input(one, x, q, grad_input=q)  # sigmoid(-x), from e^-|x|
    u = torch.sub(one, y, out=ws[3])
    # -CE = log sigmoid(x) - (1 - y) x: torch's BCE-with-logits operations, negated (exactly)
    nce.addcmul_(u, x, value=-1.0)
    torch.lerp(p, q, y, out=u)  # 1 - p_t = (1 - y) p + y q; lerp picks the stable side
    du: Tensor | None = None
    if gamma != 0:
        du = torch.addcmul(p, y, p, value=-2.0, out=ws[4]).mul_(q)  # du/dx = (1 - 2y) p q
    v = torch.addcmul(u, y, q, value=-2.0, out=p)  # p - y = u - 2 y q (exact for 0/1 targets)
    # live: nce, u, du, v; q's buffer (ws[1]) is free from here on
    mod: Tensor | None = None  # the factor of alpha_t in both the loss and the gradient
    if du is None:
        br = v
    elif gamma >= 1:
        # u^(gamma - 1) [gamma du CE + u (p - y)]; the power is finite for gamma >= 1
        br = v.mul_(u).addcmul_(du, nce, value=-gamma)
        if gamma == 2:
            mod = u
        elif gamma != 1:
            mod = torch.pow(u, gamma - 1.0, out=ws[1])
    else:
        # u^gamma [gamma (du / u) CE + (p - y)]: u^(gamma - 1) would be inf where u underflows
        # to 0; there du is 0 too and the clamp keeps the quotient 0 instead of 0/0.
        du.div_(torch.clamp_min(u, torch.finfo(u.dtype).tiny, out=ws[1]))
        br = v.addcmul_(du, nce, value=-gamma)
        mod = torch.pow(u, gamma, out=ws[1])
    # coef = scale * alpha_t * mod * weight, with scale * alpha_t = c0 + c1 y; du's buffer is free
    cb = ws[4]
    coef: Tensor | None = None
    if alpha is not None and mod is not None:
        coef = torch.mul(mod, alpha[0], out=cb).addcmul_(y, mod, value=alpha[1])
    elif alpha is not None:
        coef = torch.mul(y, alpha[1], out=cb).add_(alpha[0])
    elif mod is not None:
        coef = torch.mul(mod, scale, out=cb)
    if wt is not None:
        coef = torch.mul(wt, scale, out=cb) if coef is None else coef.mul_(wt)
    if out is not None:
        torch.mul(br, scale if coef is None else coef, out=out)
    if gamma >= 1:  # the loss is coef * u * CE; the gradient's factor lacks one u
        coef = torch.mul(u, scale, out=cb) if coef is None else coef.mul_(u)
    # nce holds -CE; a product and torch's cascade sum (BLAS dot accumulates 100x worse in float32)
    return -(coef.mul_(nce).sum() if coef is not None else torch.sum(nce) * scale)


def _pass(
    x: Tensor, y: Tensor, wt: Tensor | None, alpha: float | None, gamma: float, scale: float, grad: bool
) -> tuple[Tensor, Tensor | None]:
    """The chunked pass over contiguous ``x``, ``y`` (and ``wt``, of their shape): (scaled loss sum,
    scaled gradient buffer or ``None``).

    With ``grad``, the gradient buffer is the only ``(*)``-sized allocation: each chunk's output slice
    doubles as its ``q`` buffer and its four other buffers are the unwritten part of the gradient
    buffer just after it. Near the end, where less than four chunks of the buffer are left unwritten,
    chunks shrink (a fifth of what is left each) down to ``TAIL``, and the last few use one small
    spare workspace.
    """
    n = x.numel()
    xf, yf = x.view(-1), y.view(-1)
    wf = None if wt is None else wt.view(-1)
    a = None if alpha is None else (scale * (1.0 - alpha), scale * (2.0 * alpha - 1.0))
    # float64 partial sums: the chunk sums are float32 cascade/dot sums, their total must not lose more
    total = x.new_zeros((), dtype=torch.float64)

    def chunk(i: int, j: int, out: Tensor | None, ws: list[Tensor]) -> None:
        nonlocal total
        total += _chunk(xf[i:j], yf[i:j], None if wf is None else wf[i:j], out, ws, a, gamma, scale)

    if not grad:
        k = min(CHUNK, n)
        spare = list(x.new_empty((5, k)).unbind(0))
        for i in range(0, n, k):
            j = min(i + k, n)
            chunk(i, j, None, spare if j - i == k else [b[: j - i] for b in spare])
        return total.to(x.dtype), None
    buf = torch.empty_like(xf)
    tail: list[Tensor] | None = None
    i = 0
    while i < n:
        c = min(CHUNK, (n - i) // 5)  # the chunk and four buffers' worth of unwritten gradient
        if c >= TAIL:
            j = i + c
            w = list(buf[j : j + 4 * c].view(4, c).unbind(0))
        else:
            j = min(i + TAIL, n)
            if tail is None:
                tail = list(x.new_empty((4, min(TAIL, n))).unbind(0))
            w = [b[: j - i] for b in tail]
        out = buf[i:j]
        chunk(i, j, out, [w[0], out, w[1], w[2], w[3]])
        i = j
    return total.to(x.dtype), buf.view_as(x)


class _SigmoidFocal(torch.autograd.Function):
    """Forward: (scaled loss sum, gradient buffer); backward scales the buffer (see the module doc)."""

    @staticmethod
    def forward(
        x: Tensor,
        y: Tensor,
        wt: Tensor | None,
        alpha: float | None,
        gamma: float,
        scale: float,
        definition: Definition,
    ) -> tuple[Tensor, Tensor | None]:
        total, buf = _pass(x, y, wt, alpha, gamma, scale, grad=True)
        return total, buf

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, y, wt, alpha, gamma, scale, definition = inputs
        ctx.save_for_backward(x, y, wt)
        ctx.alpha, ctx.gamma, ctx.scale, ctx.definition = alpha, gamma, scale, definition
        ctx.buf = output[1]  # not saved for backward: it is scaled in place by the first backward
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no (*)-sized zeros for the unused outputs' gradients

    @staticmethod
    def backward(ctx, grad: Tensor, _unused: Tensor | None):
        x, y, wt = ctx.saved_tensors
        if grad is None:  # the loss was not used
            return None, None, None, None, None, None, None
        if torch.is_grad_enabled():  # create_graph=True: the definition's gradient, differentiable
            with torch.enable_grad():
                loss = ctx.definition(x, y, wt) * ctx.scale
                (g,) = torch.autograd.grad(loss, x, grad, create_graph=True)
            return g, None, None, None, None, None, None
        buf, ctx.buf = ctx.buf, None
        if buf is None:  # a second backward: the same operations give the same buffer, bit for bit
            _, buf = _pass(x, y, wt, ctx.alpha, ctx.gamma, ctx.scale, grad=True)
        return buf.mul_(grad), None, None, None, None, None, None


def sigmoid_focal(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    alpha: float | None,
    gamma: float,
    reduction: str,
    definition: Definition,
) -> Tensor:
    """The reduced sigmoid focal loss of ``input`` (float32/float64, CPU); see :func:`eligible`.

    ``definition(x, y, weight)`` is the definition's weighted loss sum, differentiated for double
    backward. ``weight`` is expanded to ``input``'s shape here.
    """
    x, y = input.contiguous(), target.contiguous()
    wt = None if weight is None else weight.to(x.dtype).expand(x.shape).contiguous()
    scale = 1.0 / x.numel() if reduction == "mean" else 1.0
    if torch.is_grad_enabled() and x.requires_grad:
        total, _ = _SigmoidFocal.apply(x, y, wt, alpha, gamma, scale, definition)
        return total
    total, _ = _pass(x.detach(), y, wt, alpha, gamma, scale, grad=False)
    return total
