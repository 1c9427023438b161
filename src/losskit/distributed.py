r"""Class-parallel margin softmax and cross-rank metric learning over ``torch.distributed``.

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
a collective (``validate=True``, the default, adds the label-range check to the summary; it costs two
reductions over the labels and no extra sync). Partial-FC sampling adds one more sync (the number of
positive classes). These functions do not compile into a single graph with ``torch.compile``.

Works with any backend that has ``all_gather``, ``all_reduce`` and ``reduce_scatter`` on the tensors'
device (gloo on CPU, NCCL on CUDA); new tensors are created on the input's device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .functional import fused as _fused
from .functional import metric as _metric
from .functional._reduction import Reduction, check_reduction, check_weight, reduce_loss
from .functional._validation import (
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_positive_int,
    compute_dtype,
)
from .functional.metric import TripletStats

__all__ = [
    "class_parallel_margin_loss",
    "class_shard",
    "cross_rank_batch_contrastive_loss",
    "cross_rank_batch_triplet_loss",
    "gather_with_grad",
    "sum_gradients_hook",
]

TargetLogit = Callable[[Tensor], Tensor]

_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


# --------------------------------------------------------------------------------------------------
# process-group helpers
# --------------------------------------------------------------------------------------------------


def _world(group: Any) -> tuple[int, int]:
    """(rank, world_size) in ``group``; a single process when ``group`` is None."""
    if group is None:
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def class_shard(num_classes: int, world_size: int, rank: int) -> range:
    """The global class ids rank ``rank`` holds: its block of ``torch.tensor_split(arange(C), W)``.

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
    q, rem = divmod(num_classes, world_size)
    start = rank * q + min(rank, rem)
    return range(start, start + q + (rank < rem))


def _all_gather_rows(local: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
    """Concatenate every rank's rows (``sizes[r]`` of them) in rank order; pads to the largest batch."""
    if len(sizes) == 1:
        return local
    nmax = max(sizes)
    if nmax == 0:
        return local.new_zeros((0, *local.shape[1:]))
    padded = local
    if local.shape[0] != nmax:
        padded = local.new_zeros((nmax, *local.shape[1:]))
        padded[: local.shape[0]] = local
    bufs = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(bufs, padded.contiguous(), group=group)
    return torch.cat([b[:n] for b, n in zip(bufs, sizes)])


def _reduce_scatter_rows(full: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
    """Sum ``full`` (all ranks' rows) over ranks and return this rank's rows."""
    if len(sizes) == 1:
        return full
    nmax = max(sizes)
    if nmax == 0:
        return full.new_zeros((0, *full.shape[1:]))
    parts = []
    for part, n in zip(torch.split(full, sizes), sizes):
        if n != nmax:
            pad = full.new_zeros((nmax, *full.shape[1:]))
            pad[:n] = part
            part = pad
        parts.append(part.contiguous())
    out = full.new_empty((nmax, *full.shape[1:]))
    dist.reduce_scatter(out, parts, group=group)
    return out[: sizes[rank]]


class _GatherRows(torch.autograd.Function):
    """All-gather rows; backward sums every rank's partial gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, local: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return _all_gather_rows(local, sizes, rank, group)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _reduce_scatter_rows(grad.contiguous(), ctx.sizes, ctx.rank, ctx.group), None, None, None


class _ReplicatedSum(torch.autograd.Function):
    """Sum a per-rank partial over ranks into a value held by every rank; identity in backward.

    Every rank back-propagates the same replicated value, so the gradient of the total with respect to
    this rank's partial is the incoming gradient itself. (``torch.distributed.nn.all_reduce`` all-reduces
    the gradient, i.e. multiplies it by the world size in this situation.)
    """

    @staticmethod
    def forward(ctx, partial: Tensor, group: Any) -> Tensor:
        out = partial.clone()
        if group is not None:
            dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def _all_reduce(t: Tensor, op: Any, group: Any) -> Tensor:
    if group is not None:
        dist.all_reduce(t, op=op, group=group)
    return t


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


# --------------------------------------------------------------------------------------------------
# one-summary argument checks: every rank decides from the same numbers, so all raise together
# --------------------------------------------------------------------------------------------------


def _summary_device(*tensors: object) -> torch.device:
    for t in tensors:
        if isinstance(t, Tensor):
            return t.device
    return torch.device("cpu")


def _exchange_summary(
    fn: str, local_error: Exception | None, fields: list[Tensor | int], device: torch.device, group: Any
) -> list[list[int]]:
    """All-gather one int64 row per rank: ``[error flag, *fields]``; raise everywhere on any error."""
    row = torch.stack(
        [torch.as_tensor(int(local_error is not None), dtype=torch.int64, device=device)]
        + [torch.as_tensor(f, dtype=torch.int64, device=device).reshape(()) for f in fields]
    )
    bufs = [torch.empty_like(row) for _ in range(dist.get_world_size(group))]
    dist.all_gather(bufs, row, group=group)
    rows = torch.stack(bufs).tolist()  # the one host sync of a call: sizes must be known here
    if any(r[0] for r in rows):
        # only on the error path: every rank learns every failing rank's message
        mine = None if local_error is None else (type(local_error).__name__, str(local_error))
        msgs: list[Any] = [None] * len(rows)
        dist.all_gather_object(msgs, mine, group=group)
        failed = [(r, m) for r, m in enumerate(msgs) if m is not None]
        text = "; ".join(f"rank {r}: {m[1]}" for r, m in failed)
        cls = TypeError if failed[0][1][0] == "TypeError" else ValueError
        raise cls(f"{fn}: argument check failed on {len(failed)} of {len(rows)} ranks: {text}")
    return [r[1:] for r in rows]


def _raise_all(fn: str, message: str) -> None:
    raise ValueError(f"{fn}: {message}")


# --------------------------------------------------------------------------------------------------
# the chunk loop over one block of centres
# --------------------------------------------------------------------------------------------------


# The per-block engine is the fused single-process one (functional/fused.py): its chunk loops over RAW
# centres with their norms, so neither a normalised copy of the block nor its gradient is ever made
# (the normalised-centre entry points _chunk_stats/_chunk_backward would cost two (C_local, D) copies).


class _ShardedMarginStats(torch.autograd.Function):
    """Per row of the global batch: log-sum-exp of the non-target logits and the target cosine.

    Forward inputs are the gathered rows (identical on every rank) and this rank's block of centres;
    outputs are this rank's rows only. Backward gathers the output gradients of all ranks, so each rank
    can add the contribution of its own classes; gradients w.r.t. the gathered rows are partial (summed
    over ranks by the gather's backward), gradients w.r.t. the block are complete.
    """

    @staticmethod
    def forward(ctx, x, s, w, t, sizes, rank, group, chunk):
        # x (M, D) unit rows in the compute dtype, s (M,) scales, w (B, D) RAW centres in their own
        # dtype (normalised chunk by chunk: no normalised copy of the block), t (M,) target position
        # in the block (outside [0, B): another rank's class)
        # (B,) 1 / max(|w|, eps), as F.normalize clamps
        inv_norm = torch.linalg.vector_norm(w, dim=1, dtype=x.dtype).clamp_min(_fused._EPS).reciprocal()
        # as the fused engine: keep the first chunks' logits (KEEP_BUDGET_BYTES) so backward need not
        # recompute them
        keep = _fused._keep_chunks(x.shape[0], chunk, x.dtype) if any(ctx.needs_input_grad[:3]) else 0
        kept: list[Tensor] = []
        row_max, row_sum = _fused._stats_loop(x, w, t, s, chunk, inv_norm, kept, keep)
        in_block = (t >= 0) & (t < w.shape[0])
        if w.shape[0] > 0:
            idx = t.clamp(0, w.shape[0] - 1)
            cos_t = torch.where(in_block, (x * (w[idx].to(x.dtype) * inv_norm[idx, None])).sum(dim=1), 0.0)
        else:
            cos_t = torch.zeros_like(s)
        gmax = _all_reduce(row_max.clone(), dist.ReduceOp.MAX, group)
        shift = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))  # no class at all: -inf
        packed = torch.stack([row_sum * torch.exp(row_max - shift), cos_t])  # (2, M)
        packed = _all_reduce(packed, dist.ReduceOp.SUM, group)
        lse = torch.log(packed[0]) + shift  # -inf where a row has no non-target class
        ctx.save_for_backward(x, s, w, t, lse, inv_norm, *kept)
        ctx.sizes, ctx.rank, ctx.group, ctx.chunk = sizes, rank, group, chunk
        start = sum(sizes[:rank])
        stop = start + sizes[rank]
        return lse[start:stop].clone(), packed[1, start:stop].clone()

    @staticmethod
    def backward(ctx, g_lse, g_cos):
        x, s, w, t, lse, inv_norm, *kept = ctx.saved_tensors
        g = _all_gather_rows(torch.stack([g_lse, g_cos], dim=1), ctx.sizes, ctx.rank, ctx.group)  # (M, 2)
        g_lse, g_cos = g[:, 0].contiguous(), g[:, 1].contiguous()
        in_block = (t >= 0) & (t < w.shape[0])
        g_cos = torch.where(in_block, g_cos, 0.0)  # the target cosine of other ranks' classes is theirs
        # the block's non-target terms and its target cosines, the centre gradient taken through the
        # normalisation chunk by chunk, written into one buffer of the centres' dtype
        need_w = ctx.needs_input_grad[2]
        gx, gw, gs = _fused._backward_loop(
            x, w, t, s, lse, g_lse, ctx.chunk, inv_norm, None, need_w, tuple(kept)
        )
        if w.shape[0] > 0:
            # the target-cosine term, for the rows whose target is in this block (g_cos is 0 elsewhere)
            idx = t.clamp(0, w.shape[0] - 1)
            w_t = w[idx].to(x.dtype) * inv_norm[idx, None]  # (M, D) unit target centres
            gx = gx + g_cos[:, None] * w_t
            if gw is not None:
                gc = g_cos[:, None] * x  # (M, D)
                # through w / max(|w|, eps): (g - w_hat (w_hat . g)) / |w|; no projection where clamped
                radial = (w_t * gc).sum(dim=1, keepdim=True) * (inv_norm[idx, None] < 1 / _fused._EPS)
                gw.index_add_(0, idx, ((gc - w_t * radial) * inv_norm[idx, None]).to(gw.dtype))
        return gx, gs, gw, None, None, None, None, None


def _partial_fc_index(
    t_block: Tensor, block: int, sample_rate: float, generator: torch.Generator | None
) -> Tensor:
    """Sorted positions kept by Partial-FC in a block of ``block`` centres.

    The fused engine's rule applied to the block: the positive classes (targets of the global batch
    that fall in the block) plus random negatives up to ``int(sample_rate * block)`` centres in all.
    """
    positives = t_block[(t_block >= 0) & (t_block < block)]
    return _fused._partial_fc_keep(positives, block, sample_rate, generator)


def class_parallel_margin_loss(
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    *,
    target_logit: TargetLogit,
    scale: float | Tensor,
    process_group: Any,
    num_classes: int | None = None,
    chunk_size: int | None = None,
    sample_rate: float = 1.0,
    generator: torch.Generator | None = None,
    validate: bool = True,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Margin softmax with the class centres sharded over the ranks of a process group.

    The loss of ArcFace, CosFace/AM-Softmax, combined margins, SphereFace and NormFace/COCO: the
    cross-entropy of cosine logits whose target entry is replaced by a margin function. Each rank holds
    its own embeddings and its block of centres; the result and every gradient equal the single-process
    loss on the concatenated batch with the full centre matrix (see the module docstring for the
    scaling, and :func:`sum_gradients_hook` for DDP).

    .. math::
        \ell_i = -\log \frac{e^{s_i\,\phi(\cos\theta_{i,y_i})}}
        {e^{s_i\,\phi(\cos\theta_{i,y_i})} + \sum_{c \ne y_i} e^{s_i \cos\theta_{i,c}}},
        \qquad \cos\theta_{i,c} = \frac{x_i \cdot w_c}{\lVert x_i\rVert\,\lVert w_c\rVert}

    where :math:`\phi` is ``target_logit``, :math:`s_i` the ``scale``, :math:`x_i` the embeddings of all
    ranks and :math:`w_c` the centres of all ranks.

    Args:
        input: this rank's embeddings, shape ``(N_local, D)``; ``N_local`` may differ between ranks.
            Normalised here.
        centers: this rank's block of class centres, shape ``(C_local, D)``: global classes
            :func:`class_shard` ``(num_classes, world_size, rank)``. Normalised here.
        target: global class ids of this rank's rows, shape ``(N_local,)``, integer, in ``[0, C)``.
        target_logit: the margin function :math:`\phi`, mapping the target cosines ``(N,)`` to the
            target logits before scaling, e.g.
            ``functools.partial(LF.arcface_target_logit, margin=0.5, fallback="linear",
            gradient="exact")``; it must be element-wise.
        scale: :math:`s`: a float (64 for ArcFace), or this rank's per-row scales ``(N_local,)`` (the
            feature norms of SphereFace), which receive a gradient.
        process_group: the group the classes are sharded over; ``None`` runs in this process alone
            with ``centers`` holding every class.
        num_classes: total classes ``C``; if given, each rank's ``C_local`` must match the
            ``tensor_split`` layout. Default: the sum of the ranks' ``C_local`` (any contiguous blocks).
        chunk_size: classes per chunk of the streamed logits. Default: chosen from a memory budget as
            :func:`losskit.functional.margin_softmax_loss` does (a chunk of logits takes about 4 MiB;
            forward keeps the first 48 MiB of them, backward recomputes the rest).
        sample_rate: Partial-FC (An et al. 2021): each rank keeps the positive classes of the global
            batch plus random negatives up to ``int(sample_rate * C_local)`` centres; ``1.0`` keeps all.
            The loss is then the softmax over the kept classes and other centres get zero gradient.
            Default: ``1.0``.
        generator: random generator for Partial-FC sampling (on the centres' device). Default: the
            global one.
        validate: check that every label lies in ``[0, C)`` on every rank, and raise on all ranks if
            not. Default: ``True`` (nearly free: it rides on the size exchange every distributed call
            needs). Without a group no label check is made (it would cost a device sync).
        weight: optional per-row weights of this rank's rows, broadcastable to ``(N_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's rows;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank, and
            ``'mean'`` divides by the global number of rows.

    Returns:
        Shape ``(N_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: on every rank, if any rank has a wrong shape, mismatched embedding dims, a class
            layout that does not sum to ``num_classes``, a label out of range (``validate``), an
            unknown ``reduction`` or a bad hyperparameter.
        TypeError: on every rank, if any rank passes a non-floating ``input``/``centers`` or a
            non-integer ``target``.

    Note:
        Every rank must call this function and ``backward()`` the same number of times (the backward
        runs collectives too). float16/bfloat16 inputs are computed in float32 and autocast is
        disabled inside. ``'none'`` followed by ``.sum()`` on each rank gives this rank's share; the
        sum over ranks is ``reduction='sum'``. Partial-FC follows the authors' released code: the
        kept share is of all centres with positives always included.

    Example:
        >>> x, w = torch.randn(4, 8), torch.randn(10, 8)
        >>> y = torch.tensor([0, 3, 9, 3])
        >>> loss = losskit.distributed.class_parallel_margin_loss(
        ...     x, w, y, target_logit=lambda c: c - 0.35, scale=30.0, process_group=None)
        >>> cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(w).T
        >>> logits = 30.0 * (cos - 0.35 * torch.nn.functional.one_hot(y, 10))
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, y))
        True

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019
        (model-parallel classifier). https://arxiv.org/abs/1801.07698
        An et al., "Partial FC: Training 10 Million Identities on a Single Machine", ICCV Workshops
        2021. https://arxiv.org/abs/2010.05222
    """
    fn = "class_parallel_margin_loss"
    group = process_group
    device = _summary_device(input, centers, target)
    local_error: Exception | None = None
    fields: list[Tensor | int] = [0] * 7
    try:
        rank, world = _world(group)
        check_reduction(fn, reduction)
        check_floating(fn, "input", input)
        check_floating(fn, "centers", centers)
        check_integer(fn, "target", target)
        check_ndim(fn, "input", input, 2, "(N, D)")
        check_ndim(fn, "centers", centers, 2, "(C_local, D)")
        check_ndim(fn, "target", target, 1, "(N,)")
        if target.shape[0] != input.shape[0]:
            raise ValueError(f"{fn}: expected target of shape ({input.shape[0]},), got {tuple(target.shape)}")
        if centers.shape[1] != input.shape[1]:
            raise ValueError(
                f"{fn}: expected centers of shape (C_local, {input.shape[1]}), got {tuple(centers.shape)}"
            )
        if not callable(target_logit):
            raise TypeError(f"{fn}: target_logit must be callable; got {type(target_logit).__name__}")
        if isinstance(scale, Tensor):
            check_floating(fn, "scale", scale)
            if tuple(scale.shape) != (input.shape[0],):
                raise ValueError(
                    f"{fn}: expected scale of shape ({input.shape[0]},) or a float, got {tuple(scale.shape)}"
                )
        else:
            check_interval(fn, "scale", scale, 0.0, math.inf, low_open=True, high_open=True)
        check_interval(fn, "sample_rate", sample_rate, 0.0, 1.0, low_open=True)
        if chunk_size is not None:
            check_positive_int(fn, "chunk_size", chunk_size)
        if num_classes is not None:
            check_positive_int(fn, "num_classes", num_classes)
        check_weight(fn, weight, (input.shape[0],))
        ct = compute_dtype(torch.promote_types(input.dtype, centers.dtype))
        has_rows = validate and group is not None and target.numel() > 0
        fields = [
            input.shape[0],
            input.shape[1],
            centers.shape[0],
            target.min() if has_rows else 0,
            target.max() if has_rows else -1,
            int(isinstance(scale, Tensor)),
            _DTYPE_CODES.get(ct, 9),
        ]
    except (TypeError, ValueError) as err:
        if group is None:
            raise
        local_error = err
    if group is None:
        # a single process: the static checks above (no label-range sync), then the fused engine
        return _fused.margin_softmax_loss(
            input,
            centers,
            target,
            target_logit=target_logit,
            scale=scale,
            chunk_size=chunk_size,
            sample_rate=sample_rate,
            generator=generator,
            weight=weight,
            reduction=reduction,
        )
    rows = _exchange_summary(fn, local_error, fields, device, group)
    sizes = [r[0] for r in rows]
    dims = [r[1] for r in rows]
    blocks = [r[2] for r in rows]
    if len(set(dims)) != 1:
        _raise_all(fn, f"expected the same embedding dim D on every rank, got D={dims} by rank")
    if len({r[6] for r in rows}) != 1:
        _raise_all(fn, "expected input and centers of the same floating dtype on every rank")
    if len({r[5] for r in rows}) != 1:
        _raise_all(fn, f"expected scale to be a float on every rank or a tensor on every rank, got {rows}")
    total = sum(blocks)
    if num_classes is not None:
        want = [len(class_shard(num_classes, world, r)) for r in range(world)]
        if blocks != want:
            _raise_all(
                fn,
                f"expected centers with {want} classes by rank (num_classes={num_classes} split as "
                f"torch.tensor_split), got {blocks}",
            )
    if validate:
        for r, row in enumerate(rows):
            if row[0] > 0 and (row[3] < 0 or row[4] >= total):
                _raise_all(
                    fn,
                    f"target must hold class ids in [0, {total}); got ids in [{row[3]}, {row[4]}] "
                    f"on rank {r}",
                )

    dtype = input.dtype
    ct = compute_dtype(torch.promote_types(input.dtype, centers.dtype))
    offset = sum(blocks[:rank])
    m_total = sum(sizes)
    with torch.autocast(device_type=input.device.type, enabled=False):
        x = F.normalize(input.to(ct), dim=1)  # (N, D)
        w = centers  # (C_local, D), raw: normalised chunk by chunk inside
        scale_local = scale.to(ct) if isinstance(scale, Tensor) else None
        if scale_local is not None:
            gathered = _GatherRows.apply(torch.cat([x, scale_local[:, None]], dim=1), sizes, rank, group)
            x_all, s_all = gathered[:, :-1], gathered[:, -1]
        else:
            x_all = _GatherRows.apply(x, sizes, rank, group)
            s_all = x_all.new_full((m_total,), float(scale))
        t_block = _all_gather_rows(target.to(torch.int64), sizes, rank, group) - offset  # (M,)
        if sample_rate < 1.0 and w.shape[0] > 0:
            keep = _partial_fc_index(t_block, w.shape[0], sample_rate, generator)
            in_block = (t_block >= 0) & (t_block < w.shape[0])
            pos = torch.searchsorted(keep, t_block.clamp(0, w.shape[0] - 1))
            t_block = torch.where(in_block, pos, torch.full_like(t_block, -1))
            w = centers[keep]  # (C_kept, D)
        chunk = (
            chunk_size
            if chunk_size is not None
            else _fused._auto_chunk_size(m_total, x.shape[1], w.shape[0], ct)
        )
        lse_nt, cos_t = _ShardedMarginStats.apply(
            x_all, s_all, w, t_block.contiguous(), sizes, rank, group, chunk
        )
        s = scale_local if scale_local is not None else float(scale)
        logit_t = s * target_logit(cos_t)  # (N,)
        # -log softmax of the target entry = log(1 + exp(lse_nt - logit_t)); exact for a small loss,
        # where logaddexp(logit_t, lse_nt) - logit_t would cancel
        loss = torch.logaddexp(torch.zeros_like(logit_t), lse_nt - logit_t)
        if reduction == "none":
            return reduce_loss(loss, "none", weight).to(dtype)
        partial = reduce_loss(loss, "sum", weight)
        out = _ReplicatedSum.apply(partial, group)
        if reduction == "mean":
            out = out / max(m_total, 1)
    return out.to(dtype)


# --------------------------------------------------------------------------------------------------
# cross-rank metric learning
# --------------------------------------------------------------------------------------------------


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
    sizes, rank = _gather_sizes(tensor, group)
    return _GatherRows.apply(tensor, sizes, rank, group)


def _gather_sizes(tensor: Tensor, group: Any) -> tuple[list[int], int]:
    rank, world = _world(group)
    n = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    bufs = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(bufs, n, group=group)
    return torch.cat(bufs).tolist(), rank


def _cross_rank_setup(
    fn: str, embeddings: Tensor, labels: Tensor, group: Any, weight: Tensor | None, reduction: object, dry_run
) -> tuple[Tensor, Tensor, int, list[int]]:
    """Check on every rank at once, then gather candidates; returns (ref, ref_labels, offset, sizes)."""
    local_error: Exception | None = None
    fields: list[Tensor | int] = [0, 0, 0]
    try:
        check_floating(fn, "embeddings", embeddings)
        check_ndim(fn, "embeddings", embeddings, 2, "(B, D)")
        check_integer(fn, "labels", labels)
        if tuple(labels.shape) != (embeddings.shape[0],):
            raise ValueError(
                f"{fn}: expected labels of shape ({embeddings.shape[0]},), got {tuple(labels.shape)}"
            )
        check_reduction(fn, reduction)
        check_weight(fn, weight, (embeddings.shape[0],))
        dry_run()  # the hyperparameter checks of the local loss, on an empty batch
        fields = [embeddings.shape[0], embeddings.shape[1], _DTYPE_CODES.get(embeddings.dtype, 9)]
    except (TypeError, ValueError) as err:
        if group is None:
            raise
        local_error = err
    if group is None:
        return embeddings, labels, 0, [embeddings.shape[0]]
    rows = _exchange_summary(fn, local_error, fields, _summary_device(embeddings, labels), group)
    if len({r[1] for r in rows}) != 1:
        _raise_all(
            fn, f"expected the same embedding dim D on every rank, got D={[r[1] for r in rows]} by rank"
        )
    if len({r[2] for r in rows}) != 1:
        _raise_all(fn, "expected embeddings of the same dtype on every rank")
    sizes = [r[0] for r in rows]
    rank = dist.get_rank(group)
    ref = _GatherRows.apply(embeddings, sizes, rank, group)
    ref_labels = _all_gather_rows(labels.to(torch.int64), sizes, rank, group)
    return ref, ref_labels, sum(sizes[:rank]), sizes


def cross_rank_batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    margin: float = 0.2,
    mining: str = "batch_hard",
    distance: str = "euclidean",
    soft_margin: bool = False,
    return_stats: bool = False,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor | tuple[Tensor, TripletStats]:
    r"""Triplet loss with online mining, each rank's anchors against the candidates of every rank.

    :func:`~losskit.functional.batch_triplet_loss` on the global batch (all ranks' rows together), with
    the work split by anchor: rank ``r`` mines positives and negatives for its own rows among the rows
    gathered from every rank (:func:`gather_with_grad`), so a rank needs memory ``O(B_local N)``.

    Args:
        embeddings: this rank's rows ``(B_local, D)``; ``B_local`` may differ between ranks.
        labels: their identities ``(B_local,)``, integer.
        process_group: the group; ``None``: this process alone (plain ``batch_triplet_loss``).
        margin, mining, distance, soft_margin: as in :func:`~losskit.functional.batch_triplet_loss`
            (defaults ``0.2``, ``'batch_hard'``, ``'euclidean'``, ``False``).
        return_stats: also return the :class:`~losskit.functional.TripletStats` of the global batch.
        weight: optional per-anchor weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's anchors;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'``
            divides by the global number of valid triplets (see ``batch_triplet_loss``).

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``embeddings``; with
        ``return_stats=True`` the pair ``(loss, TripletStats)``.

    Raises:
        ValueError: on every rank, if any rank has a bad shape, a different ``D``, a bad hyperparameter or
            an unknown ``reduction``.
        TypeError: on every rank, if any rank passes non-floating embeddings or non-integer labels.

    Note:
        Loss scaling: the value is the loss of the global batch and the gradient each rank gets for its
        own embeddings is the single-process gradient of that loss (anchor terms locally, candidate
        terms summed over ranks by the gather's backward). pytorch-metric-learning's
        ``DistributedLossWrapper`` instead multiplies its loss by the world size to undo DDP's gradient
        averaging; here use :func:`sum_gradients_hook` with DDP (see the module docstring). Every rank
        must call this and ``backward()`` (ranks with no rows too).

    Example:
        >>> x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
        >>> got = losskit.distributed.cross_rank_batch_triplet_loss(x, y, process_group=None)
        >>> torch.equal(got, batch_triplet_loss(x, y))
        True

    References:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017.
        https://arxiv.org/abs/1703.07737
    """
    fn = "cross_rank_batch_triplet_loss"
    hyper = {"margin": margin, "mining": mining, "distance": distance, "soft_margin": soft_margin}

    def dry_run() -> None:
        _metric.batch_triplet_loss(embeddings[:0], labels[:0], **hyper)

    ref, ref_labels, offset, _ = _cross_rank_setup(
        fn, embeddings, labels, process_group, weight, reduction, dry_run
    )
    local = functools.partial(
        _metric.batch_triplet_loss, embeddings, labels, **hyper, weight=weight, return_stats=True
    )
    if process_group is None:
        return _metric.batch_triplet_loss(
            embeddings, labels, **hyper, weight=weight, return_stats=return_stats, reduction=reduction
        )
    # ``ref[:0].sum()`` keeps the gather in every rank's graph (its backward is a collective), even
    # where this rank's loss does not depend on the candidates (no rows here).
    keep = ref[:0].sum()
    loss, stats = local(
        ref_embeddings=ref,
        ref_labels=ref_labels,
        anchor_offset=offset,
        reduction=("none" if reduction == "none" else "sum"),
    )
    counts = _all_reduce(torch.stack([stats.num_valid, stats.num_active]), dist.ReduceOp.SUM, process_group)
    if reduction == "none":
        out = loss + keep.to(loss.dtype)
    else:
        ct = compute_dtype(embeddings.dtype)
        out = _ReplicatedSum.apply(loss.to(ct) + keep.to(ct), process_group)
        if reduction == "mean":
            # as reduce_loss: a batch without a valid triplet gives 0, not 0/0
            out = out / counts[0].to(ct).clamp_min(torch.finfo(ct).tiny)
        out = out.to(embeddings.dtype)
    if not return_stats:
        return out
    ct = compute_dtype(embeddings.dtype)
    fraction = counts[1].to(ct) / counts[0].to(ct).clamp_min(1.0)
    return out, TripletStats(counts[0], counts[1], fraction)


def cross_rank_batch_contrastive_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    margin: float = 1.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Contrastive loss (DeepID2) over all pairs of the global batch, split by anchor over ranks.

    :func:`~losskit.functional.batch_contrastive_loss` on the concatenated batch of every rank: rank
    ``r`` pairs its own rows with the rows gathered from every rank (:func:`gather_with_grad`); each
    pair's cost is split between its two rows, so the sum over ranks counts every pair once.

    Args:
        embeddings: this rank's rows ``(B_local, D)``; ``B_local`` may differ between ranks.
        labels: their identities ``(B_local,)``, integer.
        process_group: the group; ``None``: this process alone (plain ``batch_contrastive_loss``).
        margin: :math:`m`, ``>= 0``. Default: ``1.0`` (as ``batch_contrastive_loss``).
        weight: optional per-anchor weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's anchors;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'``
            divides by the global number of pairs ``N (N - 1) / 2``.

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``embeddings``.

    Raises:
        ValueError: on every rank, if any rank has a bad shape, a different ``D``, ``margin < 0`` or an
            unknown ``reduction``.
        TypeError: on every rank, if any rank passes non-floating embeddings or non-integer labels.

    Note:
        Loss scaling as in :func:`cross_rank_batch_triplet_loss`: the true global loss, and exact
        single-process gradients for each rank's rows; with DDP use :func:`sum_gradients_hook`.

    Example:
        >>> x, y = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2])
        >>> got = losskit.distributed.cross_rank_batch_contrastive_loss(x, y, process_group=None)
        >>> torch.equal(got, batch_contrastive_loss(x, y))
        True

    References:
        Sun et al., "Deep Learning Face Representation by Joint Identification-Verification",
        NeurIPS 2014. https://arxiv.org/abs/1406.4773
    """
    fn = "cross_rank_batch_contrastive_loss"

    def dry_run() -> None:
        _metric.batch_contrastive_loss(embeddings[:0], labels[:0], margin=margin)

    ref, ref_labels, offset, sizes = _cross_rank_setup(
        fn, embeddings, labels, process_group, weight, reduction, dry_run
    )
    if process_group is None:
        return _metric.batch_contrastive_loss(
            embeddings, labels, margin=margin, weight=weight, reduction=reduction
        )
    keep = ref[:0].sum()  # keeps the gather's collective backward in every rank's graph
    loss = _metric.batch_contrastive_loss(
        embeddings, labels, margin=margin, ref_embeddings=ref, ref_labels=ref_labels, anchor_offset=offset,
        weight=weight, reduction="none" if reduction == "none" else "sum",
    )  # fmt: skip
    if reduction == "none":
        return loss + keep.to(loss.dtype)
    ct = compute_dtype(embeddings.dtype)
    out = _ReplicatedSum.apply(loss.to(ct) + keep.to(ct), process_group)
    if reduction == "mean":
        n = sum(sizes)
        pairs = n * (n - 1) / 2
        out = out / pairs if pairs else out  # as reduce_loss: one row has no pair, its sum is 0
    return out.to(embeddings.dtype)
