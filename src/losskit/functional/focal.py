"""Focal losses (Lin et al., ICCV 2017): sigmoid (per class, as in RetinaNet) and softmax (per sample).

Each loss is defined once, below, as differentiable torch ops: that definition runs under
``torch.compile``, ``torch.func`` and forward-mode AD, for double backward and wherever no fast path
applies. :func:`sigmoid_focal_loss` has one fast path, a fused chunked kernel for the reduced loss on
the CPU (``losskit._kernels.focal``), chosen in one place and tested against this definition and
against float64.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .._kernels import focal as _fast
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_class_indices,
    check_floating,
    check_interval,
    check_nonnegative,
    check_same_device,
    check_same_shape,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = ["sigmoid_focal_loss", "softmax_focal_loss"]


def _check_alpha(
    fn: str, alpha: object, num_classes: int | None, *, negative_is_none: bool = False
) -> float | Tensor | None:
    """``alpha`` as a float in ``[0, 1]``, a ``(C,)`` tensor or ``None``. With ``negative_is_none``
    a negative float means no weighting, as torchvision's and fvcore's ``alpha=-1``."""
    if alpha is None:
        return None
    if isinstance(alpha, Tensor):
        check_floating(fn, "alpha", alpha)
        if num_classes is None or tuple(alpha.shape) != (num_classes,):
            want = "a float" if num_classes is None else f"a float or a tensor of shape ({num_classes},)"
            raise ValueError(f"{fn}: alpha must be {want}; got a tensor of shape {tuple(alpha.shape)}")
        return alpha
    if negative_is_none:
        value = check_interval(fn, "alpha", alpha)  # a number, not NaN
        if value > 1:
            raise ValueError(f"{fn}: alpha must be in [0, 1], or negative for no weighting; got {alpha}")
        return None if value < 0 else value
    return check_interval(fn, "alpha", alpha, 0.0, 1.0)


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` where either may be ``-inf`` (not both): finite derivatives of every
    order there (``torch.logaddexp``'s second derivative is ``inf / inf`` when an argument is ``-inf``)."""
    return torch.maximum(a, b) + torch.log1p(torch.exp(-(a - b).abs()))


def _log_one_minus_pt(y: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """``log(1 - p_t) = log((1 - y) p + y q)`` from ``log p`` and ``log q = log(1 - p)``, never a log of
    a rounded probability. ``log y`` is ``-inf`` at ``y = 0`` (and ``log(1 - y)`` at 1); the inner
    ``where`` keeps the target's gradient finite there (no ``inf * 0``)."""
    pos, neg = y > 0, y < 1
    log_y = torch.where(pos, torch.log(torch.where(pos, y, 1.0)), float("-inf"))
    log_1my = torch.where(neg, torch.log1p(-torch.where(neg, y, 0.0)), float("-inf"))
    return _logaddexp(log_1my + log_p, log_y + log_q)


def _sigmoid_focal_terms(x: Tensor, y: Tensor, alpha: float | Tensor | None, gamma: float) -> Tensor:
    """THE definition of the sigmoid focal loss, unreduced and unweighted (torchvision's formula).

    Everything comes from one ``exp`` and one ``log1p`` of ``-|x|`` (what inductor fuses best: under
    the user's ``torch.compile`` this is as fast as torchvision's compiled composition). ``-|x|`` is
    taken by branch (``where(x >= 0, -x, x)``), so each branch's derivative holds at ``x = 0`` too.
    """
    pos = x >= 0
    t = torch.exp(torch.where(pos, -x, x))  # e^-|x|
    sp = torch.log1p(t)  # softplus(-|x|)
    log_p = torch.where(pos, 0.0, x) - sp  # log sigmoid(x)
    ce = (1.0 - y) * x - log_p  # torch's binary_cross_entropy_with_logits, elementwise
    if gamma == 0:
        loss = ce
    elif gamma == int(gamma):  # (not float.is_integer: torch.compile before 2.5 cannot trace it)
        # 1 - p_t = (1 - y) p + y q with p = sigmoid(x), q = 1 - p = sigmoid(-x), both from e^-|x|
        # (no cancellation); an integer power is a polynomial: finite derivatives of every order even
        # where u underflows to 0.
        r = 1.0 / (1.0 + t)  # sigmoid(|x|)
        s = t * r  # sigmoid(-|x|)
        u = (1.0 - y) * torch.where(pos, r, s) + y * torch.where(pos, s, r)
        loss = (u if gamma == 1 else u.pow(int(gamma))) * ce
    else:
        # u^gamma = exp(gamma log u) in log space: the power's derivative gamma u^(gamma - 1) is inf
        # where u underflows to 0 (confident logits, gamma < 1 or a second derivative, gamma < 2).
        log_q = torch.where(pos, -x, 0.0) - sp  # log sigmoid(-x)
        loss = torch.exp(gamma * _log_one_minus_pt(y, log_p, log_q)) * ce
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return loss


def _weighted_sum(
    x: Tensor, y: Tensor, weight: Tensor | None, *, alpha: float | None, gamma: float
) -> Tensor:
    """The definition's weighted loss sum (what the fast path differentiates for double backward)."""
    return reduce_loss(_sigmoid_focal_terms(x, y, alpha, gamma), "sum", weight)


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

    For dense detectors (RetinaNet), where easy negatives vastly outnumber everything else. Values
    are torchvision's ``sigmoid_focal_loss`` for every target in ``[0, 1]``, soft targets (label
    smoothing, IoU-aware quality targets) included; ``gamma=0, alpha=None`` gives binary
    cross-entropy with logits.

    .. math::
        \ell_i = w_i\, \alpha_t\, (1 - p_t)^\gamma\, \mathrm{CE}(x_i, y_i), \qquad
        p_t = p\, y_i + (1 - p)(1 - y_i), \qquad \alpha_t = \alpha\, y_i + (1 - \alpha)(1 - y_i)

    where :math:`x` is ``input`` (logits), :math:`y` the ``target``, :math:`p = \sigma(x_i)`,
    :math:`\mathrm{CE}(x, y) = -y \log p - (1 - y) \log(1 - p)` binary cross-entropy with logits and
    :math:`w` the optional ``weight``. For :math:`y \in \{0, 1\}`, :math:`p_t` is the model's
    probability of the true label, as in the paper.

    Args:
        input: logits, any shape ``(*)``; usually ``(N, C)`` anchors by classes.
        target: probabilities in ``[0, 1]`` (binary labels or soft targets), floating, same shape as
            ``input``. Values outside ``[0, 1]`` are not checked (that would need a device sync).
        alpha: weight of the positive class in ``[0, 1]`` (negatives get ``1 - alpha``), a per-class
            tensor of shape ``(C,)`` broadcast along the last dim, or ``None`` for no weighting; a
            negative float (torchvision's and fvcore's ``alpha=-1``) also means no weighting.
            Default: ``0.25`` (the paper's choice with ``gamma=2``).
        gamma: focusing parameter ``>= 0``. Default: ``2.0`` (the paper's).
        weight: optional per-element weights, broadcastable to ``(*)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides the sum by the number of
            elements of ``input`` (as torchvision's ``'mean'``; RetinaNet divides the sum by the number
            of positive anchors: use ``'sum'`` and divide). Default: ``'mean'``, where torchvision's
            default is ``'none'``.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if shapes differ, ``alpha`` is above 1 or a tensor not of shape ``(C,)``,
            ``gamma < 0``, ``weight`` does not broadcast, a tensor is on another device, or
            ``reduction`` is unknown.
        TypeError: if ``input``, ``target``, ``weight`` or a tensor ``alpha`` is not floating point.

    Note:
        Stable where torchvision's composition is not: :math:`1 - p_t = (1 - y)\,\sigma(x) +
        y\,\sigma(-x)`, so ``1 - p`` is never a cancellation; for a non-integer ``gamma`` the power is
        :math:`\exp(\gamma \log(1 - p_t))` with :math:`\log(1 - p_t)` a log-sum-exp of log-sigmoids.
        Logits of +-100 and ``gamma < 1`` therefore give finite values, gradients and second
        derivatives (torchvision's ``(1 - p_t) ** gamma`` gives ``NaN`` gradients there). A reduced
        loss on the CPU takes a fused kernel computing the same function with its closed-form
        gradient (``losskit._kernels.focal``); a per-class ``alpha`` and ``torch.compile`` /
        ``torch.func`` use this definition. Unlike torchvision, ``alpha`` above 1 is an error.

    Example:
        >>> input = torch.tensor([3.0, -1.0, 0.0])
        >>> target = torch.tensor([1.0, 0.0, 0.9])
        >>> sigmoid_focal_loss(input, target, reduction="none")
        tensor([2.7321e-05, 1.6994e-02, 5.1986e-02])

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. https://arxiv.org/abs/1708.02002
    """
    fn = "sigmoid_focal_loss"
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_same_shape(fn, "input", input, "target", target)
    check_same_device(fn, ("input", input), ("target", target), ("weight", weight), ("alpha", alpha))
    a = _check_alpha(fn, alpha, input.shape[-1] if input.dim() > 0 else None, negative_is_none=True)
    gamma = check_nonnegative(fn, "gamma", gamma)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = output_dtype(input)
    with no_autocast(input.device):
        ct = compute_dtype(input.dtype)
        x, y = input.to(ct), target.to(ct)
        wt = None if weight is None else weight.to(ct)
        if _fast.eligible(x, y, wt, a, reduction):  # the one place the fast path is chosen
            definition = functools.partial(_weighted_sum, alpha=a, gamma=gamma)
            out = _fast.sigmoid_focal(x, y, wt, a, gamma, reduction, definition)
        else:
            if isinstance(a, Tensor):
                a = a.to(ct)
            out = reduce_loss(_sigmoid_focal_terms(x, y, a, gamma), reduction, wt)
    return out.to(dtype)


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
        target: class indices, shape ``(N,)``, any integer dtype, in ``[0, C)`` or equal to
            ``ignore_index``.
        alpha: ``None``, a float in ``[0, 1]`` scaling every sample, or a per-class tensor of shape
            ``(C,)``. Default: ``None``.
        gamma: focusing parameter ``>= 0``. Default: ``2.0`` (the paper's).
        ignore_index: targets equal to it give loss 0 and are not counted. Default: ``-100``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of
            non-ignored samples (not by the sum of ``alpha``, unlike class-weighted cross-entropy);
            0 when every sample is ignored.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if ``input`` is not ``(N, C)`` with ``C >= 2``, ``target`` is not ``(N,)`` or (on
            the CPU) holds a class index outside ``[0, C)`` other than ``ignore_index``, ``alpha`` is a
            tensor not of shape ``(C,)`` or a float outside ``[0, 1]``, ``gamma < 0``, ``weight`` does
            not broadcast, a tensor is on another device, or ``reduction`` is unknown. On CUDA an
            out-of-range label fails a device-side assertion instead.
        TypeError: if ``input`` is not floating point, ``target`` is not an integer tensor, or
            ``ignore_index`` is not an int.

    Note:
        :math:`\log(1 - p_{n,y_n})` is computed as the log-sum-exp over the other classes minus the
        log-sum-exp over all, so it stays finite and smooth for confident predictions.
        torchvision has no softmax focal loss.

    Example:
        >>> input = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        >>> softmax_focal_loss(input, torch.tensor([0, 2]), reduction="none")
        tensor([0.0041, 0.9635])

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. https://arxiv.org/abs/1708.02002
    """
    fn = "softmax_focal_loss"
    check_floating(fn, "input", input)
    if input.dim() != 2 or input.shape[1] < 2:
        raise ValueError(f"{fn}: expected input of shape (N, C) with C >= 2, got {tuple(input.shape)}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{fn}: ignore_index must be an int; got {type(ignore_index).__name__}")
    check_same_device(fn, ("input", input), ("target", target), ("weight", weight), ("alpha", alpha))
    t = check_class_indices(fn, "target", target, input.shape[1], ignore_index=ignore_index)
    if tuple(t.shape) != (input.shape[0],):
        raise ValueError(f"{fn}: expected target of shape ({input.shape[0]},), got {tuple(t.shape)}")
    a = _check_alpha(fn, alpha, input.shape[1])
    gamma = check_nonnegative(fn, "gamma", gamma)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (input.shape[0],))
    dtype = output_dtype(input)
    with no_autocast(input.device):
        ct = compute_dtype(input.dtype)
        x = input.to(ct)
        counted = t != ignore_index  # (N,)
        safe = torch.where(counted, t, 0).unsqueeze(1)  # (N, 1); ignored rows read class 0, then masked
        lse = torch.logsumexp(x, dim=1)  # (N,)
        loss = lse - x.gather(1, safe).squeeze(1)  # -log p_t
        if gamma != 0:
            classes = torch.arange(x.shape[1], device=x.device)  # (C,)
            others = x.masked_fill(classes == safe, float("-inf"))  # (N, C), the target class removed
            log_1m_pt = torch.logsumexp(others, dim=1) - lse
            loss = torch.exp(gamma * log_1m_pt) * loss
        if isinstance(a, Tensor):
            loss = a.to(ct).gather(0, safe.squeeze(1)) * loss
        elif a is not None:
            loss = a * loss
        loss = torch.where(counted, loss, 0.0)
        wt = None if weight is None else weight.to(ct)
        if reduction == "mean":
            out = reduce_loss(loss, "sum", wt) / counted.sum().clamp_min(1)
        else:
            out = reduce_loss(loss, reduction, wt)
    return out.to(dtype)
