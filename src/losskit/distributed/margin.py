"""Class-parallel margin softmax: the class centres sharded by class over the ranks of a group."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .. import _comm
from ..functional import fused as _fused
from ..functional._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ..functional._validation import (
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_positive_int,
    compute_dtype,
)
from ..functional.fused import TargetLogit

__all__ = ["class_parallel_margin_loss", "class_shard"]


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
        gmax = _comm.all_reduce(row_max.clone(), dist.ReduceOp.MAX, group)
        shift = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))  # no class at all: -inf
        packed = torch.stack([row_sum * torch.exp(row_max - shift), cos_t])  # (2, M)
        packed = _comm.all_reduce(packed, dist.ReduceOp.SUM, group)
        lse = torch.log(packed[0]) + shift  # -inf where a row has no non-target class
        ctx.save_for_backward(x, s, w, t, lse, inv_norm, *kept)
        ctx.sizes, ctx.rank, ctx.group, ctx.chunk = sizes, rank, group, chunk
        start = sum(sizes[:rank])
        stop = start + sizes[rank]
        return lse[start:stop].clone(), packed[1, start:stop].clone()

    @staticmethod
    def backward(ctx, g_lse, g_cos):
        x, s, w, t, lse, inv_norm, *kept = ctx.saved_tensors
        g = _comm.all_gather_rows(torch.stack([g_lse, g_cos], dim=1), ctx.sizes, ctx.group)  # (M, 2)
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
    device = _comm.summary_device(input, centers, target)
    local_error: Exception | None = None
    fields: list[Tensor | int] = [0] * 7
    try:
        rank, world = _comm.world(group)
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
            _comm.DTYPE_CODES.get(ct, 9),
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
    rows = _comm.exchange_summary(fn, local_error, fields, device, group)
    sizes = [r[0] for r in rows]
    dims = [r[1] for r in rows]
    blocks = [r[2] for r in rows]
    if len(set(dims)) != 1:
        _comm.raise_all(fn, f"expected the same embedding dim D on every rank, got D={dims} by rank")
    if len({r[6] for r in rows}) != 1:
        _comm.raise_all(fn, "expected input and centers of the same floating dtype on every rank")
    if len({r[5] for r in rows}) != 1:
        _comm.raise_all(
            fn, f"expected scale to be a float on every rank or a tensor on every rank, got {rows}"
        )
    total = sum(blocks)
    if num_classes is not None:
        want = [len(class_shard(num_classes, world, r)) for r in range(world)]
        if blocks != want:
            _comm.raise_all(
                fn,
                f"expected centers with {want} classes by rank (num_classes={num_classes} split as "
                f"torch.tensor_split), got {blocks}",
            )
    if validate:
        for r, row in enumerate(rows):
            if row[0] > 0 and (row[3] < 0 or row[4] >= total):
                _comm.raise_all(
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
            gathered = _comm.GatherRows.apply(torch.cat([x, scale_local[:, None]], dim=1), sizes, rank, group)
            x_all, s_all = gathered[:, :-1], gathered[:, -1]
        else:
            x_all = _comm.GatherRows.apply(x, sizes, rank, group)
            s_all = x_all.new_full((m_total,), float(scale))
        t_block = _comm.all_gather_rows(target.to(torch.int64), sizes, group) - offset  # (M,)
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
        out = _comm.ReplicatedSum.apply(partial, group)
        if reduction == "mean":
            out = out / max(m_total, 1)
    return out.to(dtype)


# --------------------------------------------------------------------------------------------------
# cross-rank metric learning
# --------------------------------------------------------------------------------------------------
