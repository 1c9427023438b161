"""Modules for the regression losses; the maths lives in :mod:`losskit.functional.regression`.

Each constructor has the signature of its namesake in ``torch.nn`` (torch 2.13); ``forward(input,
target)`` as in torch, plus an optional per-element ``weight`` where the function takes one.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import regression as R
from ..functional._reduction import Reduction, check_reduction, reject_legacy_reduction
from ..functional._validation import check_nonnegative, check_positive

__all__ = ["HuberLoss", "L1Loss", "MSELoss", "SmoothL1Loss"]


class L1Loss(nn.Module):
    """Module form of :func:`losskit.functional.l1_loss`.

    Args:
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``, optional ``weight`` broadcastable to ``(*)``; output ``(*)``
        for ``'none'``, else a scalar.
    """

    def __init__(self, size_average: None = None, reduce: None = None, reduction: Reduction = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R._l1_loss(type(self).__name__, input, target, self.reduction, weight)


class MSELoss(nn.Module):
    """Module form of :func:`losskit.functional.mse_loss`.

    Args:
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``, optional ``weight`` broadcastable to ``(*)``; output ``(*)``
        for ``'none'``, else a scalar.
    """

    def __init__(self, size_average: None = None, reduce: None = None, reduction: Reduction = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R._mse_loss(type(self).__name__, input, target, self.reduction, weight)


class SmoothL1Loss(nn.Module):
    """Module form of :func:`losskit.functional.smooth_l1_loss`.

    Args:
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.
        beta: switch point between the quadratic and linear parts, ``>= 0``. Default: ``1.0``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.
    """

    def __init__(
        self,
        size_average: None = None,
        reduce: None = None,
        reduction: Reduction = "mean",
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        check_reduction(name, reduction)
        self.reduction = reduction
        self.beta = check_nonnegative(name, "beta", beta)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return R._smooth_l1_loss(type(self).__name__, input, target, self.reduction, self.beta)


class HuberLoss(nn.Module):
    """Module form of :func:`losskit.functional.huber_loss`.

    Args:
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.
        delta: switch point and slope of the linear part, ``> 0``. Default: ``1.0``.

    Shape:
        ``input`` and ``target`` ``(*)``, optional ``weight`` broadcastable to ``(*)``; output ``(*)``
        for ``'none'``, else a scalar.
    """

    def __init__(self, reduction: Reduction = "mean", delta: float = 1.0) -> None:
        super().__init__()
        name = type(self).__name__
        check_reduction(name, reduction)
        self.reduction = reduction
        self.delta = check_positive(name, "delta", delta)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return R._huber_loss(type(self).__name__, input, target, self.reduction, self.delta, weight)
