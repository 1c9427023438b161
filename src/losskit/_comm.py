"""Private collectives shared by every cross-rank path of losskit (no public names here).

Used by the vocabulary- and class-parallel softmax of :mod:`losskit._kernels` and by the cross-rank
losses of :mod:`losskit.distributed`. Everything works on any backend that has ``all_gather``,
``all_reduce`` and a tensor reduce-scatter on the tensors' device (gloo on CPU, NCCL on CUDA); every new
tensor is created on the input's device.

How gradients are scaled: a gather's backward SUMS every rank's partial gradient and hands each rank the
slice of its own rows (a reduce-scatter); a replicated sum (:class:`ReplicatedSum`) is the identity in
backward, because every rank back-propagates the same replicated value. Together they make each rank's
gradients equal the single-process gradients of the loss on the concatenated batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

# torch 2.13 renamed the tensor collectives (the old names warn); both exist from torch 2.4 on.
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


def world(group: Any) -> tuple[int, int]:
    """(rank, world_size) in ``group``; a single process when ``group`` is None."""
    if group is None:
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _padded(local: Tensor, rows: int) -> Tensor:
    if local.shape[0] == rows:
        return local.contiguous()
    out = local.new_zeros((rows, *local.shape[1:]))
    out[: local.shape[0]] = local
    return out


def all_gather_rows(local: Tensor, sizes: list[int], group: Any) -> Tensor:
    """Concatenate every rank's rows (``sizes[r]`` of them) in rank order; no gradient.

    Pads every rank's block to the largest batch and gathers into one buffer
    (``all_gather_single``), so uneven batches cost one collective.
    """
    if len(sizes) == 1:
        return local
    nmax = max(sizes)
    if nmax == 0:
        return local.new_zeros((0, *local.shape[1:]))
    out = local.new_empty((len(sizes) * nmax, *local.shape[1:]))
    _all_gather_single(out, _padded(local, nmax), group=group)
    if all(n == nmax for n in sizes):
        return out
    return torch.cat([out[r * nmax : r * nmax + n] for r, n in enumerate(sizes)])


def reduce_scatter_rows(full: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
    """Sum ``full`` (every rank's rows, in rank order) over ranks and return this rank's rows.

    One tensor reduce-scatter on a buffer padded to the largest batch (list ``reduce_scatter`` is not
    in gloo before 2025).
    """
    if len(sizes) == 1:
        return full
    nmax = max(sizes)
    if nmax == 0:
        return full.new_zeros((0, *full.shape[1:]))
    if all(n == nmax for n in sizes):
        buf = full.contiguous()
    else:
        buf = full.new_zeros((len(sizes) * nmax, *full.shape[1:]))
        start = 0
        for r, n in enumerate(sizes):
            buf[r * nmax : r * nmax + n] = full[start : start + n]
            start += n
    out = full.new_empty((nmax, *full.shape[1:]))
    _reduce_scatter_single(out, buf, group=group)
    return out[: sizes[rank]]


class GatherRows(torch.autograd.Function):
    """All-gather rows; backward sums every rank's partial gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, local: Tensor, sizes: list[int], rank: int, group: Any) -> Tensor:
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return all_gather_rows(local, sizes, group)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return reduce_scatter_rows(grad.contiguous(), ctx.sizes, ctx.rank, ctx.group), None, None, None


class ReplicatedSum(torch.autograd.Function):
    """Sum a per-rank partial over ranks into a value held by every rank; identity in backward.

    Every rank back-propagates the same replicated value, so the gradient of the total with respect to
    this rank's partial is the incoming gradient itself. (``torch.distributed.nn.all_reduce``
    all-reduces the gradient, i.e. multiplies it by the world size in this situation.)
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


def all_reduce(t: Tensor, op: Any, group: Any) -> Tensor:
    """In-place all-reduce of ``t`` (no gradient); a no-op without a group."""
    if group is not None:
        dist.all_reduce(t, op=op, group=group)
    return t


def summary_device(*tensors: object) -> torch.device:
    """The device of the first tensor among ``tensors`` (where a summary row is made), else CPU."""
    for t in tensors:
        if isinstance(t, Tensor):
            return t.device
    return torch.device("cpu")


def exchange_summary(
    fn: str, local_error: Exception | None, fields: list[Tensor | int], device: torch.device, group: Any
) -> list[list[int]]:
    """All-gather one int64 row per rank, ``[error flag, *fields]``; raise on every rank on any error.

    The one host synchronisation of a cross-rank call: every argument that changes a collective's
    shape or count must be among ``fields``, so that all ranks decide from the same numbers and a
    mismatch raises the same error everywhere instead of leaving some ranks in a collective.
    """
    row = torch.stack(
        [torch.as_tensor(int(local_error is not None), dtype=torch.int64, device=device)]
        + [torch.as_tensor(f, dtype=torch.int64, device=device).reshape(()) for f in fields]
    )
    rows = all_gather_rows(row[None], [1] * dist.get_world_size(group), group).tolist()
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


def raise_all(fn: str, message: str) -> None:
    """Raise the ``ValueError`` that every rank raises together, once all agree something differs."""
    raise ValueError(f"{fn}: {message}")


def require_same(fn: str, rows: list[list[int]], column: int, what: str) -> None:
    """Raise on every rank unless column ``column`` of the exchanged summary is equal on all ranks."""
    values = [r[column] for r in rows]
    if len(set(values)) != 1:
        raise_all(fn, f"expected the same {what} on every rank, got {values} by rank")


def class_block(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s classes: block ``rank`` of ``torch.tensor_split(arange(C), W)``
    (the first ``C % W`` ranks hold one class more)."""
    q, rem = divmod(num_classes, world_size)
    start = rank * q + min(rank, rem)
    return start, start + q + (rank < rem)


def gather_sizes(tensor: Tensor, group: Any) -> tuple[list[int], int]:
    """Every rank's ``tensor.shape[0]`` (one host sync) and this rank's index."""
    rank, size = world(group)
    n = torch.tensor([[tensor.shape[0]]], dtype=torch.int64, device=tensor.device)
    return all_gather_rows(n, [1] * size, group)[:, 0].tolist(), rank


def ring_shift(t: Tensor, group: Any) -> Tensor:
    """Send ``t`` to the next rank of ``group`` and return the previous rank's tensor (same shape).

    Rank ``r`` sends to ``(r + 1) % W`` and receives from ``(r - 1) % W`` (point-to-point, so on gloo
    and NCCL alike); after ``k`` shifts rank ``r`` holds what rank ``(r - k) % W`` started with. Every
    rank must call it with a tensor of the same shape; a no-op without a group or with one rank.
    """
    rank, size = world(group)
    if size == 1:
        return t
    right = dist.get_global_rank(group, (rank + 1) % size)
    left = dist.get_global_rank(group, (rank - 1) % size)
    out = torch.empty_like(t)
    send = dist.isend(t.contiguous(), dst=right, group=group)
    recv = dist.irecv(out, src=left, group=group)
    send.wait()
    recv.wait()
    return out
