"""Modules for the focal losses; the maths lives in :mod:`losskit.functional.focal`."""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import focal as FL
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_floating, check_interval, check_nonnegative

__all__ = ["SigmoidFocalLoss", "SoftmaxFocalLoss"]


def _alpha(
    name: str, alpha: float | Tensor | None, *, negative_is_none: bool = False
) -> tuple[float | None, Tensor | None]:
    if isinstance(alpha, Tensor):
        check_floating(name, "alpha", alpha)
        return None, alpha
    if alpha is None:
        return None, None
    if negative_is_none:  # torchvision's and fvcore's alpha=-1: no weighting
        value = check_interval(name, "alpha", alpha)  # a number, not NaN
        if value > 1:
            raise ValueError(f"{name}: alpha must be in [0, 1], or negative for no weighting; got {alpha}")
        return (None if value < 0 else value), None
    return check_interval(name, "alpha", alpha, 0.0, 1.0), None


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`losskit.functional.sigmoid_focal_loss`.

    Args:
        alpha: ``None``, a float in ``[0, 1]`` or a per-class tensor ``(C,)`` (kept as a buffer); a
            negative float (torchvision's ``alpha=-1``) means no weighting, as ``None``.
            Default: ``0.25``.
        gamma: focusing parameter ``>= 0``. Default: ``2.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.

    Attributes:
        alpha_per_class: buffer ``(C,)`` when ``alpha`` is a tensor, else ``None``.
    """

    def __init__(
        self, *, alpha: float | Tensor | None = 0.25, gamma: float = 2.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_reduction(name, reduction)
        self.alpha, per_class = _alpha(name, alpha, negative_is_none=True)
        self.register_buffer("alpha_per_class", per_class)
        self.gamma = check_nonnegative(name, "gamma", gamma)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        alpha = self.alpha_per_class if self.alpha_per_class is not None else self.alpha
        return FL.sigmoid_focal_loss(
            input, target, alpha=alpha, gamma=self.gamma, weight=weight, reduction=self.reduction
        )


class SoftmaxFocalLoss(nn.Module):
    """Module form of :func:`losskit.functional.softmax_focal_loss`.

    Args:
        alpha: ``None``, a float or a per-class tensor ``(C,)`` (kept as a buffer). Default: ``None``.
        gamma: focusing parameter ``>= 0``. Default: ``2.0``.
        ignore_index: target value that is ignored. Default: ``-100``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, C)``, ``target`` ``(N,)``; output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        alpha_per_class: buffer ``(C,)`` when ``alpha`` is a tensor, else ``None``.
    """

    def __init__(
        self,
        *,
        alpha: float | Tensor | None = None,
        gamma: float = 2.0,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_reduction(name, reduction)
        self.alpha, per_class = _alpha(name, alpha)
        self.register_buffer("alpha_per_class", per_class)
        self.gamma = check_nonnegative(name, "gamma", gamma)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"{name}: ignore_index must be an int; got {type(ignore_index).__name__}")
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        alpha = self.alpha_per_class if self.alpha_per_class is not None else self.alpha
        return FL.softmax_focal_loss(
            input,
            target,
            alpha=alpha,
            gamma=self.gamma,
            ignore_index=self.ignore_index,
            weight=weight,
            reduction=self.reduction,
        )
