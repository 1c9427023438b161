"""Focal losses (Lin et al., ICCV 2017): sigmoid (per class, as in RetinaNet) and softmax (per sample).

Both are computed in log space, so ``gamma < 1`` and logits of +-100 give finite values, gradients and
second derivatives. :func:`sigmoid_focal_loss` has a fused path: when ``input`` needs a gradient and
the loss is reduced, one chunked pass computes the loss and writes the closed-form gradient into a
single buffer that ``backward`` scales in place; the plain autograd form (used under
``torch.compile``, for ``'none'``, for per-class ``alpha`` and for gradients of other arguments or of
higher order) computes the same function.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_floating,
    check_integer,
    check_interval,
    check_nonnegative,
    check_same_shape,
    compute_dtype,
)

__all__ = ["sigmoid_focal_loss", "softmax_focal_loss"]

# Elements per chunk of the fused path: its float32 temporaries stay in the L2/L3 caches.
_CHUNK = 1 << 17
# From this many elements the fused path runs one torch.compile'd kernel (a single loop for loss and
# gradient) when a compiler works; below it, or when compiling fails, the eager chunked kernel runs.
_COMPILE_MIN_NUMEL = 1 << 20
_compiled: dict[str, Any] = {}


def _compiled_kernel(name: str, fn: Any) -> Any:
    """``torch.compile(fn)``, made once per process; ``None`` when disabled (``LOSSKIT_COMPILE=0``)."""
    if name not in _compiled:
        _compiled[name] = (
            None if os.environ.get("LOSSKIT_COMPILE", "1") == "0" else torch.compile(fn, dynamic=True)
        )
    return _compiled[name]


def _focal_kernel(
    x: Tensor, y: Tensor, wt: Tensor | None, alpha: Tensor | None, gamma: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Whole-tensor form of :func:`_sigmoid_focal_chunk` for the compiler: (scaled loss sum, gradient)."""
    w = x - 2.0 * x * y
    q = torch.sigmoid(w)
    p_t = 1.0 - q
    ce = torch.relu(w) - torch.log(torch.maximum(q, p_t))
    m = torch.exp(gamma * (w - ce))
    c = 1.0 - 2.0 * y
    lm = m * ce
    if alpha is not None:
        a_t = alpha * y + (1.0 - alpha) * (1.0 - y)
        lm = a_t * lm
        c = c * a_t
    grad = m * (gamma * p_t * ce + q) * c * scale
    if wt is not None:
        lm = lm * wt
        grad = grad * wt
    return lm.sum() * scale, grad


def _check_alpha(fn: str, alpha: object, num_classes: int | None) -> None:
    if alpha is None:
        return
    if isinstance(alpha, Tensor):
        check_floating(fn, "alpha", alpha)
        if num_classes is None or tuple(alpha.shape) != (num_classes,):
            want = "a float" if num_classes is None else f"a float or a tensor of shape ({num_classes},)"
            raise ValueError(f"{fn}: alpha must be {want}; got a tensor of shape {tuple(alpha.shape)}")
        return
    check_interval(fn, "alpha", alpha, 0.0, 1.0)


def _sigmoid_focal_terms(x: Tensor, y: Tensor, alpha: Any, gamma: float) -> tuple[Tensor, Tensor]:
    """Differentiable log-space pieces: the unweighted loss and ``w = (1 - 2y) x``."""
    w = x - 2.0 * x * y  # logit of the wrong answer; p_t = sigmoid(-w), 1 - p_t = sigmoid(w)
    ce = -F.logsigmoid(-w)  # -log p_t, never log of a rounded probability
    loss = ce if gamma == 0 else torch.exp(gamma * F.logsigmoid(w)) * ce  # (1 - p_t)^gamma in log space
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return loss, w


def _sigmoid_focal_grad(x: Tensor, y: Tensor, alpha: float | None, gamma: float) -> Tensor:
    """Closed-form d loss / d x with differentiable ops (double backward and recomputation)."""
    w = x - 2.0 * x * y
    q = torch.sigmoid(w)
    ce = -F.logsigmoid(-w)
    inner = q if gamma == 0 else torch.exp(gamma * F.logsigmoid(w)) * (gamma * (1.0 - q) * ce + q)
    c = 1.0 - 2.0 * y
    if alpha is not None:
        c = c * (alpha * y + (1.0 - alpha) * (1.0 - y))
    return c * inner


def _sigmoid_focal_chunk(
    x: Tensor,
    y: Tensor,
    wt: Tensor | None,
    grad: Tensor | None,
    alpha: float | None,
    gamma: float,
    scale: float,
) -> Tensor:
    """Loss sum of one flat chunk; writes ``scale * d loss / d x`` into ``grad`` when given."""
    w = torch.addcmul(x, x, y, value=-2.0)  # (1 - 2y) x
    q = torch.sigmoid(w)  # 1 - p_t
    p_t = torch.rsub(q, 1.0)
    # -log p_t = softplus(w) = relu(w) - log(sigmoid(|w|)); sigmoid(|w|) = max(q, p_t) >= 1/2 is exact
    # to rounding, so no log of a rounded small probability (and cheaper than softplus's exp + log1p).
    ce = torch.relu(w).sub_(torch.maximum(q, p_t).log_())
    if gamma == 0:
        m = None
    elif gamma == 1:
        m = q
    elif gamma == 2:
        m = q.square()
    else:
        m = (w - ce).mul_(gamma).exp_()  # log q = w - softplus(w): q^gamma without pow's log
    lm = ce if m is None else m * ce
    if wt is not None:
        lm = lm * wt
    if alpha is None:
        part = lm.sum()
    else:
        part = (1.0 - alpha) * lm.sum() + (2.0 * alpha - 1.0) * torch.dot(y, lm)
    if grad is not None:
        # c = scale * alpha_t * (1 - 2y), a polynomial in y, exact for any target value.
        if alpha is None:
            c = torch.mul(y, -2.0 * scale).add_(scale)
        else:
            a1, a2 = 2.0 * alpha - 1.0, 1.0 - alpha
            c = torch.mul(y, -2.0 * a1 * scale).add_((a1 - 2.0 * a2) * scale).mul_(y).add_(a2 * scale)
        if m is None:
            t = q
        else:
            t = p_t.mul_(ce)
            if gamma != 1:
                t.mul_(gamma)
            t.add_(q).mul_(m)
        if wt is not None:
            t = t * wt
        torch.mul(t, c, out=grad)
    return part


class _SigmoidFocalFused(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, x: Tensor, y: Tensor, wt: Tensor | None, alpha: float | None, gamma: float, reduction: str
    ) -> Tensor:
        n = x.numel()
        scale = 1.0 / max(n, 1) if reduction == "mean" else 1.0
        ctx.save_for_backward(x, y, wt)
        ctx.alpha, ctx.gamma, ctx.scale = alpha, gamma, scale
        kernel = _compiled_kernel("sigmoid_focal", _focal_kernel) if n >= _COMPILE_MIN_NUMEL else None
        if kernel is not None:
            try:
                as_t = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
                total, ctx.grad = kernel(
                    x, y, wt, None if alpha is None else as_t(alpha), as_t(gamma), as_t(scale)
                )
                return total
            except Exception:  # no working compiler here: remember it and stay eager
                _compiled["sigmoid_focal"] = None
        xf, yf = x.reshape(-1), y.reshape(-1)
        wf = None if wt is None else wt.reshape(-1)
        grad = torch.empty_like(xf)
        parts = [
            _sigmoid_focal_chunk(
                xf[i : i + _CHUNK],
                yf[i : i + _CHUNK],
                None if wf is None else wf[i : i + _CHUNK],
                grad[i : i + _CHUNK],
                alpha,
                gamma,
                scale,
            )
            for i in range(0, n, _CHUNK)
        ]
        ctx.grad = grad.view_as(x)
        total = torch.stack(parts).sum() if parts else x.new_zeros(())
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        x, y, wt = ctx.saved_tensors
        buf, ctx.grad = ctx.grad, None
        if buf is not None and not torch.is_grad_enabled():
            # first plain backward: scale the buffer of the forward pass in place, no new memory.
            return buf.mul_(grad_output), None, None, None, None, None
        # create_graph=True or a second backward: recompute with differentiable ops.
        g = _sigmoid_focal_grad(x, y, ctx.alpha, ctx.gamma)
        if wt is not None:
            g = g * wt
        return g * (grad_output * ctx.scale), None, None, None, None, None


def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor | None = 0.25,
    gamma: float = 2.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Sigmoid focal loss: binary cross-entropy down-weighted on well-classified examples.

    For dense detectors (RetinaNet), where easy negatives vastly outnumber everything else.
    ``gamma=0, alpha=None`` gives binary cross-entropy with logits.

    .. math::
        \ell_i = w_i\, \alpha_t\, (1 - p_t)^\gamma\, (-\log p_t), \qquad
        p_t = \sigma\big((2 y_i - 1)\, x_i\big), \qquad \alpha_t = \alpha\, y_i + (1 - \alpha)(1 - y_i)

    where :math:`x` is ``input`` (logits), :math:`y` the binary ``target``, :math:`\sigma` the
    logistic function and :math:`w` the optional ``weight``. For :math:`y \in \{0, 1\}`,
    :math:`p_t` is the model's probability of the true label, as in the paper and torchvision.

    Args:
        input: logits, any shape ``(*)``; usually ``(N, C)`` anchors by classes.
        target: binary labels (``0.`` or ``1.``), floating, same shape as ``input``.
        alpha: weight of the positive class in ``[0, 1]`` (negatives get ``1 - alpha``), a per-class
            tensor of shape ``(C,)`` broadcast along the last dim, or ``None`` for no weighting.
            Default: ``0.25`` (the paper's choice with ``gamma=2``).
        gamma: focusing parameter ``>= 0``. Default: ``2.0`` (the paper's).
        weight: optional per-element weights, broadcastable to ``(*)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements
            (as torchvision; RetinaNet divides the sum by the number of positive anchors: use
            ``'sum'`` and divide).

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if shapes differ, ``alpha`` is outside ``[0, 1]`` or a tensor not of shape
            ``(C,)``, ``gamma < 0``, ``weight`` does not broadcast, or ``reduction`` is unknown.
        TypeError: if ``input``, ``target``, ``weight`` or a tensor ``alpha`` is not floating point.

    Note:
        Evaluated in log space: :math:`-\log p_t = \mathrm{softplus}(w)` and
        :math:`(1 - p_t)^\gamma = \exp(\gamma \log\sigma(w))` with :math:`w = (1 - 2y)x`, so
        ``gamma < 1`` and logits of +-100 give finite values, gradients and second derivatives
        (torchvision's ``(1 - p_t) ** gamma`` gives ``NaN`` gradients there). Targets are binary
        labels, as in the paper and torchvision; a value between 0 and 1 acts as the signed label
        :math:`2y - 1` scaling the logit, which is NOT a soft-label focal loss (torchvision instead
        plugs it into :math:`p_t`), so the two differ for such targets. Fused path: see the module
        docstring; it uses the closed-form gradient
        :math:`\partial\ell/\partial x = \alpha_t (1 - 2y)(1 - p_t)^\gamma
        [\gamma\, p_t (-\log p_t) + 1 - p_t]`.

    Example:
        >>> input = torch.tensor([3.0, -1.0, 0.0])
        >>> target = torch.tensor([1.0, 0.0, 1.0])
        >>> sigmoid_focal_loss(input, target, reduction="none")
        tensor([2.7321e-05, 1.6994e-02, 4.3322e-02])

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. https://arxiv.org/abs/1708.02002
    """
    fn = "sigmoid_focal_loss"
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_same_shape(fn, "input", input, "target", target)
    _check_alpha(fn, alpha, input.shape[-1] if input.dim() > 0 else None)
    gamma = check_nonnegative(fn, "gamma", gamma)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = input.dtype
    ct = compute_dtype(dtype)
    x, y = input.to(ct), target.to(ct)
    wt = None if weight is None else weight.to(ct)
    fused = (
        reduction != "none"
        and not isinstance(alpha, Tensor)
        and not torch.compiler.is_compiling()
        and not target.requires_grad
        and (wt is None or (not wt.requires_grad and wt.shape == x.shape))
    )
    if fused:
        a = None if alpha is None else float(alpha)
        if torch.is_grad_enabled() and x.requires_grad:
            x = x.contiguous()
            out = _SigmoidFocalFused.apply(
                x, y.contiguous(), None if wt is None else wt.contiguous(), a, gamma, reduction
            )
        else:
            with torch.no_grad():  # forward only: chunks, no gradient buffer
                xf, yf = x.reshape(-1), y.reshape(-1)
                wf = None if wt is None else wt.reshape(-1)
                n = x.numel()
                parts = [
                    _sigmoid_focal_chunk(
                        xf[i : i + _CHUNK],
                        yf[i : i + _CHUNK],
                        None if wf is None else wf[i : i + _CHUNK],
                        None,
                        a,
                        gamma,
                        1.0,
                    )
                    for i in range(0, n, _CHUNK)
                ]
                out = torch.stack(parts).sum() if parts else x.new_zeros(())
                if reduction == "mean":
                    out = out / max(n, 1)
        return out.to(dtype)
    a = alpha.to(ct) if isinstance(alpha, Tensor) else alpha
    loss, _ = _sigmoid_focal_terms(x, y, a, gamma)
    return reduce_loss(loss, reduction, wt).to(dtype)


def softmax_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor | None = None,
    gamma: float = 2.0,
    ignore_index: int = -100,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Softmax focal loss: cross-entropy down-weighted on well-classified samples, class-index targets.

    The multi-class form of the focal loss (one softmax over ``C`` classes per sample), for
    classifiers with class imbalance. ``gamma=0, alpha=None`` gives :func:`cross_entropy`.

    .. math::
        \ell_n = -w_n\, \alpha_{y_n} (1 - p_{n,y_n})^\gamma \log p_{n,y_n}, \qquad
        p_{n,c} = \frac{\exp x_{n,c}}{\sum_k \exp x_{n,k}}

    where :math:`x` is ``input`` (logits), :math:`y_n` the target class, :math:`\alpha_{y_n}` the
    class weight (one number for every class if ``alpha`` is a float, 1 if ``None``) and :math:`w`
    the optional per-sample ``weight``.

    Args:
        input: logits, shape ``(N, C)`` with ``C >= 2``.
        target: class indices, shape ``(N,)``, integer, in ``[0, C)`` or equal to ``ignore_index``.
        alpha: ``None``, a float scaling every sample, or a per-class tensor of shape ``(C,)``.
            Default: ``None``.
        gamma: focusing parameter ``>= 0``. Default: ``2.0`` (the paper's).
        ignore_index: targets equal to it give loss 0 and are not counted. Default: ``-100``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of
            non-ignored samples (not by the sum of ``alpha``, unlike class-weighted cross-entropy).

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if ``input`` is not ``(N, C)`` with ``C >= 2``, ``target`` is not ``(N,)``,
            ``alpha`` is a tensor not of shape ``(C,)`` or a float outside ``[0, 1]``, ``gamma < 0``,
            ``weight`` does not broadcast, or ``reduction`` is unknown.
        TypeError: if ``input`` is not floating point, ``target`` is not an integer tensor, or
            ``ignore_index`` is not an int.

    Note:
        :math:`\log(1 - p_{n,y_n})` is computed as the log-sum-exp over the other classes minus the
        log-sum-exp over all, so it stays finite and smooth for confident predictions.
        torchvision has no softmax focal loss (requested there since 2021).

    Example:
        >>> input = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        >>> softmax_focal_loss(input, torch.tensor([0, 2]), reduction="none")
        tensor([0.0041, 0.9635])

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. https://arxiv.org/abs/1708.02002
    """
    fn = "softmax_focal_loss"
    check_floating(fn, "input", input)
    check_integer(fn, "target", target)
    if input.dim() != 2 or input.shape[1] < 2:
        raise ValueError(f"{fn}: expected input of shape (N, C) with C >= 2, got {tuple(input.shape)}")
    if tuple(target.shape) != (input.shape[0],):
        raise ValueError(f"{fn}: expected target of shape ({input.shape[0]},), got {tuple(target.shape)}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{fn}: ignore_index must be an int; got {type(ignore_index).__name__}")
    _check_alpha(fn, alpha, input.shape[1])
    gamma = check_nonnegative(fn, "gamma", gamma)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (input.shape[0],))
    dtype = input.dtype
    ct = compute_dtype(dtype)
    x = input.to(ct)
    t = target.long()
    counted = t != ignore_index  # (N,)
    safe = t.masked_fill(~counted, 0).unsqueeze(1)  # (N, 1); ignored rows read class 0, then masked
    lse = torch.logsumexp(x, dim=1)  # (N,)
    log_pt = x.gather(1, safe).squeeze(1) - lse
    loss = -log_pt
    if gamma != 0:
        onehot = torch.zeros_like(x, dtype=torch.bool).scatter_(1, safe, True)  # (N, C)
        log_1m_pt = torch.logsumexp(x.masked_fill(onehot, float("-inf")), dim=1) - lse
        loss = torch.exp(gamma * log_1m_pt) * loss
    if isinstance(alpha, Tensor):
        loss = alpha.to(ct).gather(0, safe.squeeze(1)) * loss
    elif alpha is not None:
        loss = float(alpha) * loss
    loss = torch.where(counted, loss, torch.zeros_like(loss))
    if reduction == "mean":
        return (
            reduce_loss(loss, "sum", None if weight is None else weight.to(ct))
            .div(counted.sum().clamp_min(1))
            .to(dtype)
        )
    return reduce_loss(loss, reduction, None if weight is None else weight.to(ct)).to(dtype)
