"""Cross-rank metric learning: each rank's anchors against the candidates of every rank."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any, Literal, overload

import torch
import torch.distributed as dist
from torch import Tensor

from .. import _comm
from ..functional import metric as _metric
from ..functional._reduction import Reduction, check_reduction, check_weight
from ..functional._validation import (
    check_floating,
    check_integer,
    check_ndim,
    check_nonnegative,
    check_same_device,
    compute_dtype,
    output_dtype,
)
from ..functional.metric import TripletStats

__all__ = ["cross_rank_batch_contrastive_loss", "cross_rank_batch_triplet_loss"]

_REDUCTIONS = ("none", "mean", "sum")
_DTYPES = {code: dtype for dtype, code in _comm.DTYPE_CODES.items()}

# An argument every rank must pass alike: (what the message calls it, its int64 code, code -> shown)
Agreement = tuple[str, int, Callable[[int], object]]


def _choice(name: str, value: object, choices: tuple[str, ...]) -> Agreement:
    return name, choices.index(str(value)), lambda code: choices[code]


def _flag(name: str, value: object) -> Agreement:
    return name, int(bool(value)), lambda code: bool(code)


def _real(name: str, value: float) -> Agreement:
    # the float's bits as an int64, so that the summary row stays one int64 tensor
    bits = struct.unpack("<q", struct.pack("<d", float(value)))[0]
    return name, bits, lambda code: struct.unpack("<d", struct.pack("<q", code))[0]


def _cross_rank_setup(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    group: Any,
    weight: Tensor | None,
    reduction: object,
    names: tuple[str, ...],
    check: Callable[[], list[Agreement]],
) -> tuple[Tensor, Tensor, int, list[int]]:
    """Check on every rank at once, then gather candidates; returns (ref, ref_labels, offset, sizes).

    The summary every rank exchanges holds everything that changes a collective's shape or count, or
    what the collectives compute: the batch size (which may differ), ``D``, the dtype, whether the
    backward pass (a collective) will run, ``reduction`` (``'none'`` skips the sum's all-reduce) and
    every hyperparameter of the loss (``check``'s agreements, named by ``names``). A mismatch raises the same
    ``ValueError`` on every rank instead of leaving some ranks in a collective.
    """
    local_error: Exception | None = None
    agreements: list[Agreement] = []
    try:
        check_floating(fn, "embeddings", embeddings)
        check_ndim(fn, "embeddings", embeddings, 2, "(B, D)")
        check_integer(fn, "labels", labels)
        if tuple(labels.shape) != (embeddings.shape[0],):
            raise ValueError(
                f"{fn}: expected labels of shape ({embeddings.shape[0]},), got {tuple(labels.shape)}"
            )
        check_same_device(fn, ("embeddings", embeddings), ("labels", labels), ("weight", weight))
        check_reduction(fn, reduction)
        check_weight(fn, weight, (embeddings.shape[0],))
        agreements = [_choice("reduction", reduction, _REDUCTIONS), *check()]
        assert [name for name, _, _ in agreements] == ["reduction", *names]  # one row layout
    except (TypeError, ValueError) as err:
        if group is None:
            raise
        local_error = err
    if group is None:
        return embeddings, labels, 0, [embeddings.shape[0]]
    grad = torch.is_grad_enabled() and embeddings.requires_grad
    if local_error is None:
        fields = [embeddings.shape[0], embeddings.shape[1], _comm.DTYPE_CODES.get(embeddings.dtype, 9)]
        fields += [int(grad)] + [code for _, code, _ in agreements]
    else:  # the same row length on every rank; the error flag makes every rank raise
        fields = [0] * (5 + len(names))
    rows = _comm.exchange_summary(fn, local_error, fields, _comm.summary_device(embeddings, labels), group)
    if len({r[1] for r in rows}) != 1:
        _comm.raise_all(
            fn, f"expected the same embedding dim D on every rank, got D={[r[1] for r in rows]} by rank"
        )
    if len({r[2] for r in rows}) != 1:
        shown = [str(_DTYPES.get(r[2], "other")).removeprefix("torch.") for r in rows]
        _comm.raise_all(fn, f"expected embeddings of the same dtype on every rank, got {shown} by rank")
    if len({r[3] for r in rows}) != 1:
        _comm.raise_all(
            fn,
            "expected embeddings that require grad on every rank or on none (the backward pass is a "
            f"collective), got {[bool(r[3]) for r in rows]} by rank",
        )
    for column, (name, _, show) in enumerate(agreements, start=4):
        if len({r[column] for r in rows}) != 1:
            _comm.raise_all(
                fn, f"expected the same {name} on every rank, got {[show(r[column]) for r in rows]} by rank"
            )
    sizes = [r[0] for r in rows]
    rank = dist.get_rank(group)
    ref = _comm.GatherRows.apply(embeddings, sizes, rank, group)
    ref_labels = _comm.all_gather_rows(labels.to(torch.int64), sizes, group)
    return ref, ref_labels, sum(sizes[:rank]), sizes


@overload
def cross_rank_batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    margin: float = 0.2,
    mining: str = "batch_hard",
    distance: str = "euclidean",
    soft_margin: bool = False,
    return_stats: Literal[False] = False,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor: ...


@overload
def cross_rank_batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    margin: float = 0.2,
    mining: str = "batch_hard",
    distance: str = "euclidean",
    soft_margin: bool = False,
    return_stats: Literal[True],
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> tuple[Tensor, TripletStats]: ...


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
        ValueError: on every rank, if any rank has a bad shape or device, a bad hyperparameter or an
            unknown ``reduction``, or if the ranks differ in ``D``, the embeddings' dtype, whether the
            embeddings require grad, ``reduction``, ``mining``, ``distance``, ``soft_margin``,
            ``return_stats`` or ``margin`` (one summary row per rank is exchanged first, so no rank is
            left waiting in a collective).
        TypeError: on every rank, if any rank passes non-floating embeddings, non-integer labels or a
            non-bool flag.

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

    def check() -> list[Agreement]:
        m = _metric.check_triplet_hyperparameters(fn, margin, mining, distance, soft_margin, return_stats)
        return [
            _choice("mining", mining, _metric.MININGS),
            _choice("distance", distance, _metric.DISTANCES),
            _flag("soft_margin", soft_margin),
            _flag("return_stats", return_stats),
            _real("margin", m),
        ]

    names = ("mining", "distance", "soft_margin", "return_stats", "margin")
    ref, ref_labels, offset, _ = _cross_rank_setup(
        fn, embeddings, labels, process_group, weight, reduction, names, check
    )
    local = functools.partial(
        _metric._batch_triplet, fn, embeddings, labels, **hyper, weight=weight, return_stats=True
    )
    if process_group is None:
        return _metric._batch_triplet(
            fn,
            embeddings,
            labels,
            **hyper,
            ref_embeddings=None,
            ref_labels=None,
            anchor_offset=0,
            weight=weight,
            return_stats=return_stats,
            reduction=reduction,
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
    counts = _comm.all_reduce(
        torch.stack([stats.num_valid, stats.num_active]), dist.ReduceOp.SUM, process_group
    )
    if reduction == "none":
        out = loss + keep.to(loss.dtype)
    else:
        ct = compute_dtype(embeddings.dtype)
        out = _comm.ReplicatedSum.apply(loss.to(ct) + keep.to(ct), process_group)
        if reduction == "mean":
            # as reduce_loss: a batch without a valid triplet gives 0, not 0/0
            out = out / counts[0].to(ct).clamp_min(torch.finfo(ct).tiny)
        out = out.to(output_dtype(embeddings))
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
        ValueError: on every rank, if any rank has a bad shape or device, ``margin < 0`` or an unknown
            ``reduction``, or if the ranks differ in ``D``, dtype, whether the embeddings require grad,
            ``reduction`` or ``margin``.
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

    def check() -> list[Agreement]:
        return [_real("margin", check_nonnegative(fn, "margin", margin))]

    ref, ref_labels, offset, sizes = _cross_rank_setup(
        fn, embeddings, labels, process_group, weight, reduction, ("margin",), check
    )
    if process_group is None:
        return _metric._batch_contrastive(fn, embeddings, labels, margin, None, None, 0, weight, reduction)
    keep = ref[:0].sum()  # keeps the gather's collective backward in every rank's graph
    loss = _metric._batch_contrastive(
        fn, embeddings, labels, margin, ref, ref_labels, offset, weight,
        "none" if reduction == "none" else "sum",
    )  # fmt: skip
    if reduction == "none":
        return loss + keep.to(loss.dtype)
    ct = compute_dtype(embeddings.dtype)
    out = _comm.ReplicatedSum.apply(loss.to(ct) + keep.to(ct), process_group)
    if reduction == "mean":
        n = sum(sizes)
        pairs = n * (n - 1) / 2
        out = out / pairs if pairs else out  # as reduce_loss: one row has no pair, its sum is 0
    return out.to(output_dtype(embeddings))
