"""The language-model head's loss as a Module that owns the projection; the maths lives in
:mod:`losskit.functional.linear_cross_entropy`.

:class:`LinearCrossEntropyLoss` has torch 2.13's constructor arguments (``in_features``,
``num_classes``, ``bias``, ``device``, ``dtype``, ``reduction``, ``weight``, ``ignore_index``,
``label_smoothing``) and its state: a ``linear`` submodule (``linear.weight``, ``linear.bias``) and the
``weight`` buffer, so torch's checkpoints load. It adds z-loss, soft-capping, the vocabulary chunk and a
process group for a vocabulary-parallel head.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .. import _comm
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import (
    check_floating,
    check_interval,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from ..functional.linear_cross_entropy import _linear_cross_entropy

__all__ = ["LinearCrossEntropyLoss"]


class LinearCrossEntropyLoss(nn.Module):
    """Module form of :func:`losskit.functional.linear_cross_entropy`: a linear head and its cross-entropy.

    Args:
        in_features: ``D``, the size of each input row (hidden size).
        num_classes: ``V``, the number of classes (vocabulary size), over all ranks with
            ``process_group``.
        bias: whether the head has a learnable bias. Default: ``False``.
        device: device of the head's parameters. Default: ``None`` (torch's default).
        dtype: dtype of the head's parameters. Default: ``None`` (torch's default).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.
        weight: optional per-class weights ``(V,)``, kept as a buffer. Default: ``None``.
        ignore_index: ignored target value (``None``: -100). Default: ``-100``.
        label_smoothing: in ``[0, 1]``. Default: ``0.0``.
        z_loss: weight of PaLM's z-loss, ``>= 0``. Default: ``0.0``.
        softcap: Gemma 2's logit soft-cap ``c > 0``, or ``None``. Default: ``None``.
        chunk_size: vocabulary rows per streamed block, or ``None`` (from a 4 MiB budget).
        process_group: ``None``, or a ``torch.distributed`` group over which the vocabulary is sharded:
            rank ``r`` holds rows ``torch.tensor_split(torch.arange(num_classes), world_size)[r]`` of
            the head (``class_offset`` is the first), and every rank must see the same tokens.

    Shape:
        ``input`` ``(D,)``, ``(N, D)`` or ``(N, *, D)``; ``target`` ``input.shape[:-1]`` (class indices);
        output ``target.shape`` for ``'none'``, else a scalar.

    Attributes:
        linear: the head, an ``nn.Linear(in_features, V_local)`` (``V_local = num_classes`` without
            ``process_group``), initialised as ``nn.Linear`` is; ``linear.weight`` is ``(V_local, D)``.
        weight: buffer ``(V,)`` or ``None``.
        class_offset: the global id of ``linear.weight[0]`` (an int; 0 without a process group).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        bias: bool = False,
        device=None,
        dtype=None,
        reduction: Reduction = "mean",
        weight: Tensor | None = None,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        process_group: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(name, "in_features", in_features)
        check_positive_int(name, "num_classes", num_classes)
        check_reduction(name, reduction)
        if weight is not None:
            check_floating(name, "weight", weight)
            if tuple(weight.shape) != (num_classes,):
                raise ValueError(
                    f"{name}: expected per-class weight of shape ({num_classes},), got {tuple(weight.shape)}"
                )
        if isinstance(ignore_index, bool) or not (ignore_index is None or isinstance(ignore_index, int)):
            raise TypeError(f"{name}: ignore_index must be an int or None; got {type(ignore_index).__name__}")
        check_interval(name, "label_smoothing", label_smoothing, 0.0, 1.0)
        check_nonnegative(name, "z_loss", z_loss)
        if softcap is not None:
            check_positive(name, "softcap", softcap)
        if chunk_size is not None:
            check_positive_int(name, "chunk_size", chunk_size)
        rank, world_size = _comm.world(process_group)
        start, stop = _comm.class_block(num_classes, world_size, rank)
        self.num_classes, self.class_offset = num_classes, start
        self.linear = nn.Linear(in_features, stop - start, bias=bias, device=device, dtype=dtype)
        self.register_buffer("weight", weight)
        self.reduction, self.ignore_index, self.label_smoothing = reduction, ignore_index, label_smoothing
        self.z_loss, self.softcap, self.chunk_size = z_loss, softcap, chunk_size
        self.process_group = process_group

    def forward(
        self, input: Tensor, target: Tensor, return_z_loss: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """The loss of ``input`` (hidden states) against ``target``; with ``return_z_loss=True`` the pair
        ``(loss, z_loss_part)`` (see :func:`losskit.functional.linear_cross_entropy`)."""
        return _linear_cross_entropy(
            type(self).__name__, input, self.linear.weight, target, linear_bias=self.linear.bias,
            weight=self.weight, reduction=self.reduction, ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing, z_loss=self.z_loss, softcap=self.softcap,
            chunk_size=self.chunk_size, process_group=self.process_group, return_z_loss=return_z_loss,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
            f"bias={self.linear.bias is not None}, reduction={self.reduction}, "
            f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
            f"z_loss={self.z_loss}, softcap={self.softcap}"
        )
