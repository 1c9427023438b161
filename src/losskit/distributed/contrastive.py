r"""Cross-rank contrastive losses: each rank's rows against the global batch, exact gradients.

Every function here computes, on rank ``r``, the terms of rank ``r``'s own rows (anchors, images and
texts) against the rows of every rank, gathered with :class:`losskit._comm.GatherRows` (whose backward
sums every rank's partial gradient and hands each rank its own rows). Per-rank batches may differ and
a rank may have no rows. ``'sum'`` and ``'mean'`` return the loss of the global batch, the same value on
every rank (a replicated sum, the identity in backward); ``'none'`` returns this rank's rows.

Gradients, exactly (tested at world sizes 2 and 3 against one process on the concatenated batch):

* for each rank's own features: equal to the single-process gradient of the same rows;
* for a logit scale, bias or other tensor that every rank holds a copy of (a replicated parameter):
  each rank receives the gradient of its own rows' terms, and their SUM over ranks is the
  single-process gradient. That is the rule of the backbone too (see :mod:`losskit.distributed`):
  with DDP, register :func:`~losskit.distributed.sum_gradients_hook` and every parameter, the logit
  scale included, gets the single-process gradient; plain DDP averaging gives all of them
  ``1 / world_size`` of it alike.

Each call first exchanges one small integer summary per rank (batch size, dimensions, dtype, every
hyperparameter and option that changes a collective), one host synchronisation; any bad argument or
mismatch raises the same error on every rank instead of leaving some in a collective. Every rank must
call the function and ``backward()``. These functions run eagerly (collectives in backward); they do
not compile into one graph.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .. import _comm
from .._kernels import contrastive as _kc
from ..functional import contrastive as C
from ..functional._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ..functional._validation import (
    check_choice,
    check_positive,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = [
    "cross_rank_clip_loss",
    "cross_rank_nt_xent_loss",
    "cross_rank_siglip_loss",
    "cross_rank_supcon_loss",
]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}
_EXCHANGES = ("gather", "ring")


def _bits(value: float) -> int:
    """A float's exact bit pattern as an int64, so that ranks compare hyperparameters exactly."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _agree(
    fn: str,
    group: Any,
    check: Callable[[], list[int]],
    columns: list[str],
    device: torch.device,
    floats: tuple[str, ...] = (),
) -> tuple[list[int], int] | None:
    """Run the local ``check`` (returns ``[batch, *fields]``) on every rank, exchange the rows, and
    raise on every rank if any rank failed or any field named in ``columns`` differs (those named in
    ``floats`` hold :func:`_bits` and are shown as numbers).

    Returns ``(per-rank batch sizes, this rank)``, or None without a group (after raising locally).
    """
    local_error: Exception | None = None
    fields: list[int] = [0] * (1 + len(columns))
    try:
        fields = check()
    except (TypeError, ValueError) as err:
        if group is None:
            raise
        local_error = err
    if group is None:
        return None
    rows = _comm.exchange_summary(fn, local_error, list(fields), device, group)
    for column, what in enumerate(columns, start=1):
        values = [r[column] for r in rows]
        if len(set(values)) != 1:
            shown = [_float(v) for v in values] if what in floats else values
            _comm.raise_all(fn, f"expected the same {what} on every rank, got {shown} by rank")
    return [r[0] for r in rows], dist.get_rank(group)


def _replicated(value: Tensor, keep: Tensor, reduction: str, divisor: Tensor | float, group: Any) -> Tensor:
    """The global ``'sum'``/``'mean'`` from this rank's weighted sum; ``keep`` holds every gather's
    backward in this rank's graph (its collective runs on every rank even where no term uses it)."""
    total = _comm.ReplicatedSum.apply(value + keep.to(value.dtype), group)
    return reduce_loss(total, reduction, divisor=divisor)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# NT-Xent and SupCon: this rank's anchors against the normalised rows of every rank
# --------------------------------------------------------------------------------------------------


def _labelled_check(fn, embeddings, labels, weight, reduction, chunk_size, hyper: dict) -> Callable:
    def check() -> list[int]:
        C.check_labelled_batch(fn, embeddings, labels, weight)
        for name, value in hyper.items():
            check_positive(fn, name, value)
        C.check_chunk_size(fn, chunk_size)
        check_reduction(fn, reduction)
        check_weight(fn, weight, (embeddings.shape[0],))
        return [
            embeddings.shape[0],
            embeddings.shape[1],
            _comm.DTYPE_CODES.get(embeddings.dtype, 9),
            _REDUCTION_CODES[reduction],
            *(_bits(v) for v in hyper.values()),
        ]

    return check


def _labelled(
    fn: str, embeddings: Tensor, labels: Tensor, group: Any, weight: Tensor | None, reduction: str,
    chunk_size: int | None, hyper: dict, terms: Callable, local: Callable[[], Tensor],
) -> Tensor:  # fmt: skip
    columns = ["embedding dim D", "embedding dtype", "reduction", *hyper]
    check = _labelled_check(fn, embeddings, labels, weight, reduction, chunk_size, hyper)
    device = _comm.summary_device(embeddings, labels)
    agreed = _agree(fn, group, check, columns, device, floats=tuple(hyper))
    if agreed is None:
        return local()
    sizes, rank = agreed
    out = output_dtype(embeddings)
    with no_autocast(embeddings.device):
        a = F.normalize(embeddings.to(compute_dtype(embeddings.dtype)), dim=1)
        ids = labels.long()
        ref = _comm.GatherRows.apply(a, sizes, rank, group)
        ref_labels = _comm.all_gather_rows(ids, sizes, group)
        keep = ref[:0].sum()
        summed = reduction != "none"
        value, count = terms(a, ref, ids, ref_labels, sum(sizes[:rank]), chunk_size, weight, summed)
        if not summed:
            return (reduce_loss(value, "none", weight) + keep.to(value.dtype)).to(out)
        divisor = _comm.all_reduce(count.clone(), dist.ReduceOp.SUM, group)
        return _replicated(value, keep, reduction, divisor, group).to(out)


def nt_xent(
    fn: str, embeddings: Tensor, labels: Tensor, group: Any, temperature: float, chunk_size: int | None,
    weight: Tensor | None, reduction: str,
) -> Tensor:  # fmt: skip
    def terms(a, ref, ids, ref_ids, offset, chunk, w, summed):
        return C.nt_xent_terms(a, ref, ids, ref_ids, offset, temperature, chunk, w, summed)

    def local() -> Tensor:
        return C.nt_xent(fn, embeddings, labels, temperature, chunk_size, weight, reduction)

    hyper = {"temperature": temperature}
    return _labelled(fn, embeddings, labels, group, weight, reduction, chunk_size, hyper, terms, local)


def supcon(
    fn: str, embeddings: Tensor, labels: Tensor, group: Any, temperature: float, base_temperature: float,
    chunk_size: int | None, weight: Tensor | None, reduction: str,
) -> Tensor:  # fmt: skip
    def terms(a, ref, ids, ref_ids, offset, chunk, w, summed):
        return C.supcon_terms(a, ref, ids, ref_ids, offset, temperature, base_temperature, chunk, w, summed)

    def local() -> Tensor:
        return C.supcon(fn, embeddings, labels, temperature, base_temperature, chunk_size, weight, reduction)

    hyper = {"temperature": temperature, "base_temperature": base_temperature}
    return _labelled(fn, embeddings, labels, group, weight, reduction, chunk_size, hyper, terms, local)


def cross_rank_nt_xent_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    temperature: float = 0.07,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r""":func:`~losskit.functional.nt_xent_loss` on the global batch, split by anchor over ranks.

    Rank ``r`` normalises its rows, gathers every rank's (with their labels), and computes the terms of
    its own anchors against all of them: positives and negatives come from every rank, memory
    ``O(B_local x chunk)`` per rank besides the gathered ``(B, D)`` rows.

    Args:
        embeddings: this rank's rows ``(B_local, D)``; ``B_local`` may differ between ranks, 0 included.
        labels: their identities ``(B_local,)``, integer; equal labels on different ranks are positives.
        process_group: the group; ``None``: this process alone (plain ``nt_xent_loss``).
        temperature: as in ``nt_xent_loss`` (default ``0.07``); the same on every rank.
        chunk_size: candidate columns per block on this rank. Default: ``None`` (automatic).
        weight: optional per-anchor weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's anchors;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'``
            divides by the global number of positive pairs.

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``embeddings``.

    Raises:
        ValueError: on every rank, if any rank has a bad shape or hyperparameter, or the ranks differ
            in ``D``, dtype, ``temperature`` or ``reduction``.
        TypeError: on every rank, if any rank passes non-floating embeddings or non-integer labels.

    Note:
        The loss of the global batch and, for each rank's rows, its single-process gradient (see the
        module docstring for DDP). pytorch-metric-learning's ``DistributedLossWrapper`` instead
        reports ``world_size`` times the loss and drops the gradient that other ranks' anchors send to
        this rank's rows in its efficient mode.

    Example:
        >>> x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
        >>> got = losskit.distributed.cross_rank_nt_xent_loss(x, y, process_group=None)
        >>> torch.equal(got, nt_xent_loss(x, y))
        True

    References:
        Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
        https://arxiv.org/abs/2002.05709
    """
    return nt_xent(
        "cross_rank_nt_xent_loss", embeddings, labels, process_group, temperature, chunk_size, weight,
        reduction,
    )  # fmt: skip


def cross_rank_supcon_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    process_group: Any,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r""":func:`~losskit.functional.supcon_loss` on the global batch, split by anchor over ranks.

    As :func:`cross_rank_nt_xent_loss`: rank ``r``'s anchors against the normalised rows of every rank.

    Args:
        embeddings: this rank's rows ``(B_local, D)``; ``B_local`` may differ between ranks, 0 included.
        labels: their identities ``(B_local,)``, integer.
        process_group: the group; ``None``: this process alone (plain ``supcon_loss``).
        temperature, base_temperature: as in ``supcon_loss`` (defaults ``0.07``); the same on every rank.
        chunk_size: candidate columns per block on this rank. Default: ``None`` (automatic).
        weight: optional per-anchor weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's anchors;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'``
            divides by the global number of anchors that have a positive.

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``embeddings``.

    Raises:
        ValueError: on every rank, if any rank has a bad shape or hyperparameter, or the ranks differ
            in ``D``, dtype, a temperature or ``reduction``.
        TypeError: on every rank, if any rank passes non-floating embeddings or non-integer labels.

    Example:
        >>> x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
        >>> got = losskit.distributed.cross_rank_supcon_loss(x, y, process_group=None)
        >>> torch.equal(got, supcon_loss(x, y))
        True

    References:
        Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020. https://arxiv.org/abs/2004.11362
    """
    return supcon(
        "cross_rank_supcon_loss", embeddings, labels, process_group, temperature, base_temperature,
        chunk_size, weight, reduction,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# CLIP and SigLIP: this rank's images (and texts) against the texts (and images) of every rank
# --------------------------------------------------------------------------------------------------


def _paired_check(fn, x, y, scalars: dict, weight, reduction, chunk_size, extra: list[int]) -> Callable:
    def check() -> list[int]:
        C.check_paired_features(fn, x, y, scalars, weight)
        C.check_chunk_size(fn, chunk_size)
        check_reduction(fn, reduction)
        check_weight(fn, weight, (x.shape[0],))
        return [
            x.shape[0],
            x.shape[1],
            _comm.DTYPE_CODES.get(x.dtype, 9),
            _REDUCTION_CODES[reduction],
            *extra,
        ]

    return check


def clip(
    fn: str, image_features: Tensor, text_features: Tensor, logit_scale: float | Tensor, group: Any,
    chunk_size: int | None, weight: Tensor | None, reduction: str,
) -> Tensor:  # fmt: skip
    x, y = image_features, text_features
    scalars = {"logit_scale": logit_scale}
    check = _paired_check(fn, x, y, scalars, weight, reduction, chunk_size, [])
    columns = ["feature dim D", "feature dtype", "reduction"]
    agreed = _agree(fn, group, check, columns, _comm.summary_device(x, y))
    if agreed is None:
        return C.clip(fn, x, y, logit_scale, chunk_size, weight, reduction)
    sizes, rank = agreed
    out = output_dtype(x)
    with no_autocast(x.device):
        ct = compute_dtype(x.dtype)
        xc, yc = x.to(ct), y.to(ct)
        ref_x = _comm.GatherRows.apply(xc, sizes, rank, group)
        ref_y = _comm.GatherRows.apply(yc, sizes, rank, group)
        keep = ref_x[:0].sum() + ref_y[:0].sum()
        scale = C.as_scalar(logit_scale, xc)
        summed = reduction != "none"
        value = C.clip_terms(xc, yc, ref_x, ref_y, sum(sizes[:rank]), scale, chunk_size, weight, summed)
        if not summed:
            return (reduce_loss(value, "none", weight) + keep.to(value.dtype)).to(out)
        return _replicated(value, keep, reduction, float(sum(sizes)), group).to(out)


def cross_rank_clip_loss(
    image_features: Tensor,
    text_features: Tensor,
    *,
    logit_scale: float | Tensor,
    process_group: Any,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r""":func:`~losskit.functional.clip_loss` on the global batch, split by pair over ranks.

    Rank ``r`` gathers every rank's image and text features and computes, for its own pairs, the
    image-to-text cross-entropy over all texts and the text-to-image one over all images (open_clip's
    "local loss with gathered gradients", for any per-rank batch sizes): ``2 B_local B`` similarities
    per rank, streamed in blocks of ``chunk_size`` columns.

    Args:
        image_features: this rank's images ``(B_local, D)``; ``B_local`` may differ between ranks.
        text_features: their texts ``(B_local, D)``.
        logit_scale: as in ``clip_loss``, the same on every rank; a tensor gets this rank's share of the
            gradient (the sum over ranks is exact; see the module docstring).
        process_group: the group; ``None``: this process alone (plain ``clip_loss``).
        chunk_size: columns per block on this rank. Default: ``None`` (automatic).
        weight: optional per-pair weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's pairs; ``'sum'``
            and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'`` divides
            by the global batch size.

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``image_features``.

    Raises:
        ValueError: on every rank, if any rank has bad shapes, or the ranks differ in ``D``, dtype or
            ``reduction``.
        TypeError: on every rank, if any rank passes non-floating features or scale.

    Note:
        open_clip's distributed ``ClipLoss`` divides each rank's loss by its local batch and labels the
        targets ``arange(B_local) + B_local * rank``: with uneven batches the targets point at other
        pairs and the ranks' losses are weighted wrongly. Here the value is the global batch's loss
        and every gradient is the single-process one.

    Example:
        >>> x, y = torch.randn(4, 3), torch.randn(4, 3)
        >>> got = losskit.distributed.cross_rank_clip_loss(x, y, logit_scale=10.0, process_group=None)
        >>> torch.equal(got, clip_loss(x, y, logit_scale=10.0))
        True

    References:
        Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
        ICML 2021. https://arxiv.org/abs/2103.00020
    """
    return clip(
        "cross_rank_clip_loss", image_features, text_features, logit_scale, process_group, chunk_size,
        weight, reduction,
    )  # fmt: skip


class _SigLipRing(torch.autograd.Function):
    """SigLIP of this rank's images against text blocks passed around the ring (per-image rows).

    Forward: the local block (with its positive diagonal), then ``W - 1`` shifts, each bringing the
    text block of rank ``(r - k) % W`` (all negatives). Backward repeats the ring; each text block
    travels with its gradient accumulator, which every rank adds its images' share to, and a last
    shift returns the complete gradient to the block's owner. A rank holds at most two text blocks.
    """

    @staticmethod
    def forward(x, y, scale, bias, sizes: list[int], rank: int, group: Any, chunk: int):
        rows = _kc.sweep(x, y, _kc.SigLipSpec(0), scale, bias, chunk, None)[0]
        world, nmax = len(sizes), max(sizes)
        held = _padded(y, nmax)
        for k in range(1, world if nmax else 1):  # nothing travels when every rank is empty
            held = _comm.ring_shift(held, group)
            owner = (rank - k) % world
            block = held[: sizes[owner]]
            rows = rows + _kc.sweep(x, block, _kc.SigLipSpec(None), scale, bias, chunk, None)[0]
        return rows

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, y, scale, bias, sizes, rank, group, chunk = inputs
        ctx.sizes, ctx.rank, ctx.group, ctx.chunk = sizes, rank, group, chunk
        ctx.save_for_backward(x, y, scale, bias)

    @staticmethod
    def backward(ctx: Any, g: Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "cross_rank_siglip_loss(exchange='ring') has no double backward; use exchange='gather'"
            )
        x, y, scale, bias = ctx.saved_tensors
        sizes, rank, group, chunk = ctx.sizes, ctx.rank, ctx.group, ctx.chunk
        world, nmax = len(sizes), max(sizes)
        gx, gy, gs, gb = _kc.backward_sweep(x, y, _kc.SigLipSpec(0), scale, bias, chunk, g, None)
        if nmax == 0:
            return gx, gy, gs, gb, None, None, None, None
        # one buffer travels: rows [0, nmax) the text block, rows [nmax, 2 nmax) its gradient so far
        held = torch.cat([_padded(y, nmax), _padded(gy, nmax)])
        for k in range(1, world):
            held = _comm.ring_shift(held, group)
            owner = (rank - k) % world
            n = sizes[owner]
            spec = _kc.SigLipSpec(None)
            bx, by, bs, bb = _kc.backward_sweep(x, held[:n], spec, scale, bias, chunk, g, None)
            gx += bx
            held[nmax : nmax + n] += by
            gs, gb = gs + bs, gb + bb
        grad_y = _comm.ring_shift(held[nmax:].contiguous(), group)[: sizes[rank]]
        return gx, grad_y, gs, gb, None, None, None, None


def _padded(t: Tensor, rows: int) -> Tensor:
    out = t.new_zeros((rows, *t.shape[1:]))
    out[: t.shape[0]] = t
    return out


def siglip(
    fn: str, image_features: Tensor, text_features: Tensor, logit_scale: float | Tensor,
    logit_bias: float | Tensor, group: Any, exchange: str, chunk_size: int | None,
    weight: Tensor | None, reduction: str,
) -> Tensor:  # fmt: skip
    x, y = image_features, text_features
    scalars = {"logit_scale": logit_scale, "logit_bias": logit_bias}
    local_exchange = exchange if exchange in _EXCHANGES else "gather"

    def check() -> list[int]:
        check_choice(fn, "exchange", exchange, _EXCHANGES)
        fields = _paired_check(fn, x, y, scalars, weight, reduction, chunk_size, [])()
        return [*fields, _EXCHANGES.index(local_exchange)]

    columns = ["feature dim D", "feature dtype", "reduction", "exchange"]
    agreed = _agree(fn, group, check, columns, _comm.summary_device(x, y))
    if agreed is None:
        return C.siglip(fn, x, y, logit_scale, logit_bias, chunk_size, weight, reduction)
    sizes, rank = agreed
    out = output_dtype(x)
    with no_autocast(x.device):
        ct = compute_dtype(x.dtype)
        xc, yc = x.to(ct), y.to(ct)
        scale, bias = C.as_scalar(logit_scale, xc), C.as_scalar(logit_bias, xc)
        summed = reduction != "none"
        if exchange == "ring":
            chunk = _kc.block_columns(xc.shape[0], max(sizes), chunk_size)
            rows = _SigLipRing.apply(xc, yc, scale, bias, sizes, rank, group, chunk)
            value, keep = C.combine(rows, weight, summed), rows.new_zeros(())
        else:
            ref_y = _comm.GatherRows.apply(yc, sizes, rank, group)
            keep = ref_y[:0].sum()
            value = C.siglip_terms(xc, ref_y, sum(sizes[:rank]), scale, bias, chunk_size, weight, summed)
        if not summed:
            return (reduce_loss(value, "none", weight) + keep.to(value.dtype)).to(out)
        return _replicated(value, keep, reduction, float(sum(sizes)), group).to(out)


def cross_rank_siglip_loss(
    image_features: Tensor,
    text_features: Tensor,
    *,
    logit_scale: float | Tensor,
    logit_bias: float | Tensor,
    process_group: Any,
    exchange: str = "gather",
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r""":func:`~losskit.functional.siglip_loss` on the global batch, split by image over ranks.

    Rank ``r`` computes the sigmoid terms of its own images against every text of every rank, in one
    of two ways:

    * ``exchange='gather'``: all texts are gathered (``(B, D)`` on every rank);
    * ``exchange='ring'``: the paper's chunked form: text blocks travel around the ranks, ``W - 1``
      neighbour exchanges in forward and ``W`` in backward (each block with its gradient), so no
      rank ever holds more than two text blocks, never the global batch's features.

    Args:
        image_features: this rank's images ``(B_local, D)``; ``B_local`` may differ between ranks.
        text_features: their texts ``(B_local, D)``.
        logit_scale, logit_bias: as in ``siglip_loss``, the same on every rank; tensors get this rank's
            share of the gradient (the sum over ranks is exact; see the module docstring).
        process_group: the group; ``None``: this process alone (plain ``siglip_loss``).
        exchange: ``'gather'`` | ``'ring'``, the same on every rank. Default: ``'gather'``.
        chunk_size: text columns per block on this rank. Default: ``None`` (automatic).
        weight: optional per-image weights of this rank's rows, broadcastable to ``(B_local,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` returns this rank's images;
            ``'sum'`` and ``'mean'`` are over the global batch, the same value on every rank; ``'mean'``
            divides by the global batch size (the paper's normalisation).

    Returns:
        Shape ``(B_local,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``image_features``.

    Raises:
        ValueError: on every rank, if any rank has bad shapes or an unknown ``exchange``, or the ranks
            differ in ``D``, dtype, ``exchange`` or ``reduction``.
        TypeError: on every rank, if any rank passes non-floating features, scale or bias.

    Note:
        The ring form pads every text block to the largest per-rank batch, has no double backward, and
        like the gathered form needs every rank to call ``backward()``. open_clip's ``SigLipLoss``
        divides each rank's loss by its local batch (wrong weights for uneven batches); here the
        value is the global batch's loss.

    Example:
        >>> x, y = torch.randn(4, 3), torch.randn(4, 3)
        >>> got = losskit.distributed.cross_rank_siglip_loss(
        ...     x, y, logit_scale=10.0, logit_bias=-10.0, process_group=None
        ... )
        >>> torch.equal(got, siglip_loss(x, y, logit_scale=10.0, logit_bias=-10.0))
        True

    References:
        Zhai, Mustafa, Kolesnikov, Beyer, "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.
        https://arxiv.org/abs/2303.15343
    """
    return siglip(
        "cross_rank_siglip_loss", image_features, text_features, logit_scale, logit_bias, process_group,
        exchange, chunk_size, weight, reduction,
    )  # fmt: skip
