"""The class layout of the class-parallel margin softmax (the loss itself is
:func:`losskit.functional.margin_softmax_loss` with ``process_group=``)."""

from __future__ import annotations

from .. import _comm
from ..functional._validation import check_positive_int

__all__ = ["class_shard"]


def class_shard(num_classes: int, world_size: int, rank: int) -> range:
    """The global class ids rank ``rank`` holds: its block of ``torch.tensor_split(arange(C), W)``.

    This is the layout :func:`losskit.functional.margin_softmax_loss` expects of ``centers`` with a
    process group (and the one the margin Modules create).

    Example:
        >>> [losskit.distributed.class_shard(10, 3, r) for r in range(3)]
        [range(0, 4), range(4, 7), range(7, 10)]
    """
    fn = "class_shard"
    check_positive_int(fn, "world_size", world_size)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"{fn}: num_classes must be an int >= 0; got {num_classes!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"{fn}: rank must be an int in [0, {world_size}); got {rank!r}")
    return range(*_comm.class_block(num_classes, world_size, rank))
