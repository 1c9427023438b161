"""Modules for the regression losses; the maths lives in :mod:`losskit.functional.regression`."""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import regression as R
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_nonnegative, check_positive

__all__ = ["HuberLoss", "L1Loss", "MSELoss", "SmoothL1Loss"]


class L1Loss(nn.Module):
    """Module form of :func:`losskit.functional.l1_loss`.

    Args:
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R.l1_loss(input, target, weight=weight, reduction=self.reduction)


class MSELoss(nn.Module):
    """Module form of :func:`losskit.functional.mse_loss`.

    Args:
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R.mse_loss(input, target, weight=weight, reduction=self.reduction)


class SmoothL1Loss(nn.Module):
    """Module form of :func:`losskit.functional.smooth_l1_loss`.

    Args:
        beta: switch point between the quadratic and linear parts, ``>= 0``. Default: ``1.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, beta: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.beta = check_nonnegative(type(self).__name__, "beta", beta)
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R.smooth_l1_loss(input, target, beta=self.beta, weight=weight, reduction=self.reduction)


class HuberLoss(nn.Module):
    """Module form of :func:`losskit.functional.huber_loss`.

    Args:
        delta: switch point and slope of the linear part, ``> 0``. Default: ``1.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, delta: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.delta = check_positive(type(self).__name__, "delta", delta)
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R.huber_loss(input, target, delta=self.delta, weight=weight, reduction=self.reduction)
