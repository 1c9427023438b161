r"""Class-parallel margin softmax and cross-rank metric learning over ``torch.distributed``.

The class-parallel margin softmax is :func:`losskit.functional.margin_softmax_loss` (and every margin
Module) with ``process_group=``; this package holds its class layout (:func:`class_shard`), the
cross-rank metric losses and the DDP helpers.

Face recognition trains against up to millions of identities. Here the class centres are sharded by class
over the ranks of a process group: rank ``r`` holds the ``r``-th contiguous block of classes, as
``torch.tensor_split(torch.arange(num_classes), world_size)[r]`` lays them out, and labels are always
global class ids. Embeddings (and labels, and per-row scales) are all-gathered; each rank streams over
its own block of centres in chunks, and the softmax normaliser is combined across ranks with an
all-reduce of the row maximum and of the rescaled sum of exponentials. No rank ever holds the full
``(N, C)`` logits, nor the full centre matrix.

How gradients are scaled (read this once)
-----------------------------------------
``reduction='mean'`` and ``'sum'`` return the loss of the *global* batch (all ranks' rows together), the
same value on every rank, and every rank must call ``backward()`` on it, as with DDP. The collectives
are written so that the gradients each rank receives for its own tensors (its embeddings, its centres,
its per-row scales) EQUAL the single-process gradients of the same loss on the concatenated batch with
the full centre matrix:

* an all-gather's backward sums the partial gradients of all ranks and hands each rank its own slice
  (a reduce-scatter); every use of gathered rows is sharded (each rank contributes its own classes or
  its own anchors), so the sum counts every term exactly once;
* the final all-reduce of the loss is the identity in backward. ``torch.distributed.nn.all_reduce``
  sums the incoming gradients instead, which multiplies every gradient by the world size when, as here,
  the same loss is back-propagated on every rank.

DDP: the backbone producing the embeddings is replicated, and rank ``r``'s backbone gradient is the
exact gradient through rank ``r``'s rows only. The true gradient is their SUM over ranks, but DDP
AVERAGES, so under plain DDP the backbone receives ``1 / world_size`` of the single-process gradient
(the class centres, which DDP does not manage, are exact). Register :func:`sum_gradients_hook`
(``ddp_model.register_comm_hook(group, sum_gradients_hook)``) to make DDP sum, and training matches a
single process on the concatenated batch step for step. pytorch-metric-learning's
``DistributedLossWrapper`` returns ``loss * world_size`` for the same reason (its gathered copies of
other ranks' rows carry no gradient, so each rank's gradient reaches only its own rows, and DDP then
averages): the reported loss is ``world_size`` times the true one, any parameter DDP does not average
gets ``world_size`` times its gradient, and in its ``efficient`` mode the gradient that another rank's
anchors send to this rank's rows (as positives or negatives) is lost altogether. losskit keeps the
value true, routes every term's gradient to the row's owner, and fixes the average instead.

Cost and synchronisation
------------------------
Batch sizes may differ between ranks, so each call first all-gathers a small integer summary per rank
(batch size, dims, class counts, label range, error flag) and reads it on the host: one device sync per
call. Every argument check is decided from that summary on all ranks at once, so a bad label or a shape
mismatch on one rank raises the same clear error on every rank instead of leaving the others hanging in
a collective (the label-range check rides on the summary: two reductions over the labels, no extra
sync). Partial-FC sampling adds one more sync (the number of
positive classes). These functions do not compile into a single graph with ``torch.compile``.

Works with any backend that has ``all_gather``, ``all_reduce`` and ``reduce_scatter`` on the tensors'
device (gloo on CPU, NCCL on CUDA); new tensors are created on the input's device.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor

from .. import _comm
from .contrastive import (
    cross_rank_clip_loss,
    cross_rank_nt_xent_loss,
    cross_rank_siglip_loss,
    cross_rank_supcon_loss,
)
from .margin import class_shard
from .metric import cross_rank_batch_contrastive_loss, cross_rank_batch_triplet_loss

__all__ = [
    "class_shard",
    "cross_rank_batch_contrastive_loss",
    "cross_rank_batch_triplet_loss",
    "cross_rank_clip_loss",
    "cross_rank_nt_xent_loss",
    "cross_rank_siglip_loss",
    "cross_rank_supcon_loss",
    "gather_with_grad",
    "sum_gradients_hook",
]


def gather_with_grad(tensor: Tensor, group: Any = None) -> Tensor:
    r"""All-gather ``tensor`` along dim 0 from every rank of ``group``, keeping the gradient.

    Batch sizes may differ between ranks (they are exchanged first: one host sync). In backward every
    rank's gradient with respect to the gathered tensor is summed over ranks and each rank receives the
    slice of its own rows, so if every rank computes a *different* term of a loss from the gathered
    rows (for example its own anchors against all candidates), each rank gets the exact gradient of
    the sum of the terms. Do not back-propagate a value that is already replicated on every rank through
    it (that would count it once per rank); use a replicated sum such as the reductions of the
    ``cross_rank_*`` losses instead.

    Args:
        tensor: this rank's rows, shape ``(N_local, *)``; the same ``*`` and dtype on every rank.
        group: the process group; ``None`` returns ``tensor`` unchanged (a single process).

    Returns:
        Shape ``(N, *)`` with ``N`` the sum of the ``N_local``, rows in rank order.

    Example:
        >>> x = torch.randn(3, 2, requires_grad=True)
        >>> losskit.distributed.gather_with_grad(x) is x
        True
    """
    if group is None:
        return tensor
    sizes, rank = _comm.gather_sizes(tensor, group)
    return _comm.GatherRows.apply(tensor, sizes, rank, group)


# ``bucket`` and the return value stay unannotated: DDP compares the annotation objects themselves
# (dist.GradBucket, Future[Tensor]), and this module's annotations are strings.
def sum_gradients_hook(process_group: Any, bucket):
    """A DDP communication hook that SUMS gradients over ranks instead of averaging them.

    Use it for the backbone of a model trained with a cross-rank loss of this module, whose value is the
    loss of the global batch: the sum over ranks is then the single-process gradient (see the module
    docstring). ``ddp_model.register_comm_hook(group, sum_gradients_hook)``; ``group`` may be None for
    the default group.
    """
    group = process_group if process_group is not None else dist.group.WORLD
    work = dist.all_reduce(bucket.buffer(), op=dist.ReduceOp.SUM, group=group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])
