"""Modules for the classification losses; the maths lives in :mod:`losskit.functional.classification`.

Each constructor has the signature of its namesake in ``torch.nn`` (torch 2.13), ``forward(input,
target)`` as in torch, and the same buffers (``weight``, ``pos_weight``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..functional import classification as C
from ..functional._reduction import Reduction, check_reduction, reject_legacy_reduction
from ..functional._validation import check_floating, check_interval

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss"]


class BCEWithLogitsLoss(nn.Module):
    """Module form of :func:`losskit.functional.binary_cross_entropy_with_logits`.

    Args:
        weight: optional per-element weights, broadcastable to the input (e.g. ``(C,)``), kept as a
            buffer. Default: ``None``.
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.
        pos_weight: optional weight of the positive term, broadcastable to the input (usually
            ``(C,)``), kept as a buffer. Default: ``None``.

    Shape:
        ``input`` and ``target`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.

    Attributes:
        weight: buffer holding ``weight`` (``None`` if not given).
        pos_weight: buffer holding ``pos_weight`` (``None`` if not given).
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: None = None,
        reduce: None = None,
        reduction: Reduction = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        check_reduction(name, reduction)
        if weight is not None:
            check_floating(name, "weight", weight)
        if pos_weight is not None:
            check_floating(name, "pos_weight", pos_weight)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return C._bce(type(self).__name__, input, target, self.weight, self.reduction, self.pos_weight)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`losskit.functional.cross_entropy` (the "softmax loss").

    Args:
        weight: optional per-class weights ``(C,)`` (torch's meaning), kept as a buffer.
        size_average: torch's deprecated argument; must be ``None``.
        ignore_index: class-index target value that is ignored. Default: ``-100``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.
        label_smoothing: in ``[0, 1]``. Default: ``0.0``.

    Shape:
        ``input`` ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``; ``target`` ``()``/``(N,)``/``(N, d1, ...)``
        class indices or probabilities of ``input``'s shape; output per sample for ``'none'``, else a
        scalar.

    Attributes:
        weight: buffer ``(C,)`` or ``None``.
    """

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: None = None,
        ignore_index: int = -100,
        reduce: None = None,
        reduction: Reduction = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        check_reduction(name, reduction)
        if weight is not None:
            check_floating(name, "weight", weight)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"{name}: ignore_index must be an int; got {type(ignore_index).__name__}")
        self.label_smoothing = check_interval(name, "label_smoothing", label_smoothing, 0.0, 1.0)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return C._cross_entropy(
            type(self).__name__,
            input,
            target,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
        )
