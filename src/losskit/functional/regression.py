"""Regression losses with torch's names: L1 (MAE), MSE, Smooth L1 and Huber.

Each function has the signature of its namesake in ``torch.nn.functional`` (torch 2.13: the same
parameters in the same order with the same defaults) and torch's values and gradients. The
definition of each is torch's own differentiable op (``F.l1_loss``, ``F.mse_loss``,
``F.smooth_l1_loss``, ``F.huber_loss``), applied to ``input`` and ``target`` of the same shape ``(*)``;
it is what runs under ``torch.compile``, ``torch.func``, forward AD and double backward. Reduced,
unweighted L1 with a gradient to compute has one fast path on the CPU (``losskit._kernels.regression``,
the same value with a closed-form backward that keeps no temporary).

Deliberate differences from torch, the same for all four:

- an empty batch reduces to ``0`` with a gradient (torch's ``'mean'`` gives ``NaN``);
- ``input`` and ``target`` must have the same shape (torch warns, then broadcasts);
- a non-None ``size_average``/``reduce`` (deprecated in torch) raises ``TypeError``;
- float16/bfloat16 are computed in float32 and returned in the input's dtype (float32 inside
  ``torch.autocast``, as torch); a per-element ``weight`` may broadcast to ``input``'s shape (torch
  requires that shape; where it is given, the values are torch's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .._kernels import regression as _fast
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss, reject_legacy_reduction
from ._validation import (
    check_floating,
    check_nonnegative,
    check_positive,
    check_same_device,
    check_same_shape,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = ["huber_loss", "l1_loss", "mse_loss", "smooth_l1_loss"]

# torch's op for one loss: (input, target, reduction) -> loss, in the compute dtype
Op = Callable[[Tensor, Tensor, str], Tensor]


def _check(fn: str, input: Tensor, target: Tensor, reduction: str, weight: Tensor | None) -> None:
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_same_shape(fn, "input", input, "target", target)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    check_same_device(fn, ("input", input), ("target", target), ("weight", weight))


def _elementwise(
    op: Op,
    input: Tensor,
    target: Tensor,
    reduction: str,
    weight: Tensor | None = None,
    *,
    weighted_mean_by_weights: bool = False,
) -> Tensor:
    """The definition: torch's ``op`` with torch's reduction (and torch's weighted divisor).

    Arguments already checked by :func:`_check`.
    """
    out_dtype = output_dtype(input)
    ct = compute_dtype(input.dtype)
    with no_autocast(input.device):
        x, y = input.to(ct), target.to(ct)
        if weight is None:
            if input.numel() > 0:
                out = op(x, y, reduction)  # torch's op reduces itself: one pass, no temporary
            else:
                out = reduce_loss(op(x, y, "none"), reduction)  # empty: 0 with a graph, not 0/0
        else:
            w = weight.to(ct)
            loss = op(x, y, "none") * w
            if reduction == "none":
                out = loss
            elif reduction == "sum" or loss.numel() == 0:
                out = loss.sum()  # the empty batch again: 0 with a graph
            elif weighted_mean_by_weights:
                # torch 2.13's weighted l1/mse: the weighted sum over the sum of the weights, unclamped
                out = loss.sum() / torch.broadcast_to(w, loss.shape).sum()
            else:
                out = loss.mean()
    return out.to(out_dtype)


def _l1(x: Tensor, y: Tensor, reduction: str) -> Tensor:
    return F.l1_loss(x, y, reduction=reduction)


def _mse(x: Tensor, y: Tensor, reduction: str) -> Tensor:
    return F.mse_loss(x, y, reduction=reduction)


def _l1_loss(fn: str, input: Tensor, target: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    _check(fn, input, target, reduction, weight)
    if _fast.eligible(input, target, weight, reduction):  # the one place the fast path is chosen
        return _fast.reduced_l1(input, target, reduction)
    return _elementwise(_l1, input, target, reduction, weight, weighted_mean_by_weights=True)


def _mse_loss(fn: str, input: Tensor, target: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    _check(fn, input, target, reduction, weight)
    return _elementwise(_mse, input, target, reduction, weight, weighted_mean_by_weights=True)


def _smooth_l1_loss(fn: str, input: Tensor, target: Tensor, reduction: str, beta: float) -> Tensor:
    beta = check_nonnegative(fn, "beta", beta)
    _check(fn, input, target, reduction, None)

    def op(x: Tensor, y: Tensor, red: str) -> Tensor:
        return F.smooth_l1_loss(x, y, reduction=red, beta=beta)

    return _elementwise(op, input, target, reduction)


def _huber_loss(
    fn: str, input: Tensor, target: Tensor, reduction: str, delta: float, weight: Tensor | None
) -> Tensor:
    delta = check_positive(fn, "delta", delta)
    _check(fn, input, target, reduction, weight)

    def op(x: Tensor, y: Tensor, red: str) -> Tensor:
        return F.huber_loss(x, y, reduction=red, delta=delta)

    return _elementwise(op, input, target, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: None = None,
    reduce: None = None,
    reduction: Reduction = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    r"""Mean absolute error (L1 loss), with :func:`torch.nn.functional.l1_loss`'s signature and values.

    Robust to outliers in the sense that its gradient has constant magnitude: a far-off target pulls no
    harder than a near one. It estimates the conditional median.

    .. math::
        \ell_i = w_i \, |x_i - y_i|

    where :math:`x` is ``input``, :math:`y` is ``target`` and :math:`w` the optional ``weight`` (1
    without it).

    Args:
        input: predictions, any shape ``(*)``.
        target: targets, same shape as ``input``.
        size_average: torch's deprecated argument, kept so positional calls bind as in torch; must be
            ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements,
            or with ``weight`` by the sum of the weights (:math:`\sum_i w_i`, not clamped: weights
            summing to 0 give ``inf``/``NaN``), as torch 2.13 does. Default: ``'mean'``.
        weight: optional per-element weights, broadcastable to ``(*)`` (torch requires ``(*)``; a
            broadcast weight counts in the divisor as its broadcast). Default: ``None``.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 for
        float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if shapes differ, ``weight`` does not broadcast, ``reduction`` is unknown or the
            tensors are on different devices.
        TypeError: if ``input``, ``target`` or ``weight`` is not floating point, or ``size_average``
            or ``reduce`` is not ``None``.

    Note:
        The gradient at zero error is 0 (torch's ``sign(0)``), so it is finite everywhere. Differences
        from torch (see the module): an empty batch gives ``0`` with a gradient (torch: ``NaN``);
        shapes must match; ``size_average``/``reduce`` raise.

    Example:
        >>> l1_loss(torch.tensor([0.0, 2.0, -1.0]), torch.tensor([0.5, 0.0, -1.0]), reduction="none")
        tensor([0.5000, 2.0000, 0.0000])
        >>> l1_loss(torch.tensor([0.0, 2.0]), torch.zeros(2), weight=torch.tensor([1.0, 3.0]))
        tensor(1.5000)

    References:
        Laplace's least absolute deviations; see e.g. Huber, "Robust Estimation of a Location
        Parameter", Ann. Math. Statist. 1964.
    """
    reject_legacy_reduction("l1_loss", size_average, reduce)
    return _l1_loss("l1_loss", input, target, reduction, weight)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: None = None,
    reduce: None = None,
    reduction: Reduction = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    r"""Mean squared error, with :func:`torch.nn.functional.mse_loss`'s signature and values.

    The maximum-likelihood loss under Gaussian noise; it estimates the conditional mean, converges fast
    near the optimum (its gradient shrinks with the error) and is pulled hard by outliers.

    .. math::
        \ell_i = w_i \, (x_i - y_i)^2

    where :math:`x` is ``input``, :math:`y` is ``target`` and :math:`w` the optional ``weight``.

    Args:
        input: predictions, any shape ``(*)``.
        target: targets, same shape as ``input``.
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements,
            or with ``weight`` by the sum of the weights (not clamped), as torch 2.13 does.
            Default: ``'mean'``.
        weight: optional per-element weights, broadcastable to ``(*)``. Default: ``None``.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 for
        float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if shapes differ, ``weight`` does not broadcast, ``reduction`` is unknown or the
            tensors are on different devices.
        TypeError: if ``input``, ``target`` or ``weight`` is not floating point, or ``size_average``
            or ``reduce`` is not ``None``.

    Note:
        Differences from torch (see the module): an empty batch gives ``0`` with a gradient (torch:
        ``NaN``); shapes must match; ``size_average``/``reduce`` raise.

    Example:
        >>> mse_loss(torch.tensor([0.0, 2.0]), torch.tensor([0.5, 0.0]))
        tensor(2.1250)
        >>> mse_loss(torch.tensor([1.0, 2.0]), torch.zeros(2), weight=torch.tensor([1.0, 3.0]))
        tensor(3.2500)

    References:
        Gauss, "Theoria motus corporum coelestium", 1809 (least squares).
    """
    reject_legacy_reduction("mse_loss", size_average, reduce)
    return _mse_loss("mse_loss", input, target, reduction, weight)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: None = None,
    reduce: None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
) -> Tensor:
    r"""Smooth L1 loss (Fast R-CNN): quadratic below ``beta``, linear above; torch's signature and values.

    .. math::
        \ell_i = \begin{cases} 0.5\, d_i^2 / \beta & |d_i| < \beta \\
                               |d_i| - 0.5\, \beta & \text{otherwise} \end{cases},
        \qquad d_i = x_i - y_i

    It is Huber divided by its threshold: :math:`\mathrm{SmoothL1}_\beta(d) = \mathrm{Huber}_\beta(d) /
    \beta`, so its linear part always has slope 1 while Huber's has slope :math:`\delta`. Like torch's,
    it takes no ``weight``: weight the ``reduction='none'`` result.

    Args:
        input: predictions, any shape ``(*)``.
        target: targets, same shape as ``input``.
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements.
            Default: ``'mean'``.
        beta: the switch point, ``>= 0``. ``beta=0`` is exactly L1. Default: ``1.0`` (Fast R-CNN).

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 for
        float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if ``beta < 0``, shapes differ, ``reduction`` is unknown or the tensors are on
            different devices.
        TypeError: if ``input`` or ``target`` is not floating point, ``beta`` is not a number, or
            ``size_average`` or ``reduce`` is not ``None``.

    Note:
        With ``beta=0`` the gradient at zero error is 0 (finite), not the ``0/0`` of the formula.
        Differences from torch (see the module): an empty batch gives ``0`` with a gradient (torch:
        ``NaN``); shapes must match; ``size_average``/``reduce`` raise.

    Example:
        >>> smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
        tensor([0.1250, 2.5000])
        >>> smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="sum", beta=0.5)
        tensor(3.)

    References:
        Girshick, "Fast R-CNN", ICCV 2015. https://arxiv.org/abs/1504.08083
    """
    reject_legacy_reduction("smooth_l1_loss", size_average, reduce)
    return _smooth_l1_loss("smooth_l1_loss", input, target, reduction, beta)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    r"""Huber loss: quadratic below ``delta``, linear with slope ``delta`` above, as torch's.

    .. math::
        \ell_i = w_i \begin{cases} 0.5\, d_i^2 & |d_i| \le \delta \\
                                   \delta\,(|d_i| - 0.5\,\delta) & \text{otherwise} \end{cases},
        \qquad d_i = x_i - y_i

    :math:`\mathrm{Huber}_\delta(d) = \delta \cdot \mathrm{SmoothL1}_\delta(d)`: the same shape as
    Smooth L1 with the same threshold, scaled by :math:`\delta`.

    Args:
        input: predictions, any shape ``(*)``.
        target: targets, same shape as ``input``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements,
            with or without ``weight`` (torch 2.13's rule for Huber, unlike its weighted L1 and MSE).
            Default: ``'mean'``.
        delta: the switch point, ``> 0``. Default: ``1.0``.
        weight: optional per-element weights, broadcastable to ``(*)``. Default: ``None``.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 for
        float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if ``delta <= 0``, shapes differ, ``weight`` does not broadcast, ``reduction`` is
            unknown or the tensors are on different devices.
        TypeError: if ``input``, ``target`` or ``weight`` is not floating point or ``delta`` is not a
            number.

    Note:
        Differences from torch (see the module): an empty batch gives ``0`` with a gradient (torch:
        ``NaN``); shapes must match.

    Example:
        >>> huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), delta=2.0, reduction="none")
        tensor([0.1250, 4.0000])
        >>> huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), weight=torch.tensor([2.0, 0.0]))
        tensor(0.1250)

    References:
        Huber, "Robust Estimation of a Location Parameter", Ann. Math. Statist. 35(1), 1964.
    """
    return _huber_loss("huber_loss", input, target, reduction, delta, weight)
