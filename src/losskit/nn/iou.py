"""Modules for the box-regression losses; the maths lives in :mod:`losskit.functional.iou`."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ..functional import iou as B
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_choice, check_nonnegative, check_positive

__all__ = ["CompleteBoxIoULoss", "DistanceBoxIoULoss", "GeneralizedBoxIoULoss", "IoULoss"]


class IoULoss(nn.Module):
    """Module form of :func:`losskit.functional.iou_loss`.

    Args:
        mode: ``'linear'`` (``1 - IoU``) or ``'log'`` (``-ln IoU``). Default: ``'linear'``.
        eps: added to the union, ``>= 0`` (``> 0`` for ``'log'``). Default: ``1e-7``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(..., 4)`` xyxy boxes; output ``(...)`` for ``'none'``, else a scalar.
    """

    def __init__(
        self, *, mode: Literal["linear", "log"] = "linear", eps: float = 1e-7, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_choice(name, "mode", mode, ("linear", "log"))
        check = check_positive if mode == "log" else check_nonnegative  # -ln IoU is floored at eps
        self.mode, self.eps = mode, check(name, "eps", eps)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return B.iou_loss(
            input, target, mode=self.mode, eps=self.eps, weight=weight, reduction=self.reduction
        )


class _PlainBoxLoss(nn.Module):
    _function = staticmethod(B.generalized_box_iou_loss)

    def __init__(self, *, eps: float = 1e-7, reduction: Reduction = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        self.eps = check_nonnegative(name, "eps", eps)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return self._function(input, target, eps=self.eps, weight=weight, reduction=self.reduction)


class GeneralizedBoxIoULoss(_PlainBoxLoss):
    """Module form of :func:`losskit.functional.generalized_box_iou_loss`.

    Args:
        eps: added to the union and the enclosing area, ``>= 0``. Default: ``1e-7``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(..., 4)`` xyxy boxes; output ``(...)`` for ``'none'``, else a scalar.
    """

    _function = staticmethod(B.generalized_box_iou_loss)


class DistanceBoxIoULoss(_PlainBoxLoss):
    """Module form of :func:`losskit.functional.distance_box_iou_loss`.

    Args:
        eps: added to the union and the squared diagonal, ``>= 0``. Default: ``1e-7``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(..., 4)`` xyxy boxes; output ``(...)`` for ``'none'``, else a scalar.
    """

    _function = staticmethod(B.distance_box_iou_loss)


class CompleteBoxIoULoss(nn.Module):
    """Module form of :func:`losskit.functional.complete_box_iou_loss`.

    Args:
        gated: zero the aspect term where IoU < 0.5 (journal version). Default: ``False`` (AAAI 2020).
        eps: added to the union, the squared diagonal and the denominator of alpha, ``>= 0``.
            Default: ``1e-7``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(..., 4)`` xyxy boxes; output ``(...)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, gated: bool = False, eps: float = 1e-7, reduction: Reduction = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(gated, bool):
            raise TypeError(f"{name}: gated must be a bool; got {type(gated).__name__}")
        self.gated, self.eps = gated, check_nonnegative(name, "eps", eps)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return B.complete_box_iou_loss(
            input, target, gated=self.gated, eps=self.eps, weight=weight, reduction=self.reduction
        )
