"""Modules for the classification losses; the maths lives in :mod:`losskit.functional.classification`."""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import classification as C
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_floating, check_interval

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss"]


class BCEWithLogitsLoss(nn.Module):
    """Module form of :func:`losskit.functional.binary_cross_entropy_with_logits`.

    Args:
        pos_weight: optional weight of the positive term, broadcastable to the input (usually ``(C,)``).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.

    Attributes:
        pos_weight: buffer holding ``pos_weight`` (``None`` if not given).
    """

    def __init__(self, *, pos_weight: Tensor | None = None, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(type(self).__name__, reduction)
        if pos_weight is not None:
            check_floating(type(self).__name__, "pos_weight", pos_weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return C.binary_cross_entropy_with_logits(
            input, target, weight=weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`losskit.functional.cross_entropy` (the "softmax loss").

    Args:
        weight: optional per-class weights ``(C,)`` (torch's meaning), kept as a buffer.
        ignore_index: target value that is ignored. Default: ``-100``.
        label_smoothing: in ``[0, 1]``. Default: ``0.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, C)`` or ``(N, C, d1, ...)``; ``target`` ``(N,)``/``(N, d1, ...)`` class indices or
        probabilities of ``input``'s shape; output per sample for ``'none'``, else a scalar.

    Attributes:
        weight: buffer ``(C,)`` or ``None``.
    """

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_reduction(name, reduction)
        if weight is not None:
            check_floating(name, "weight", weight)
        self.label_smoothing = check_interval(name, "label_smoothing", label_smoothing, 0.0, 1.0)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"{name}: ignore_index must be an int; got {type(ignore_index).__name__}")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return C.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
        )
