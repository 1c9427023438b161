r"""Margin softmax on embeddings and class centres, without the ``(N, C)`` logits (one process or sharded).

The margin losses of :mod:`losskit.functional.margin` take cosine logits ``(N, C)``. With hundreds of
thousands of classes those logits, their softmax and their gradient dominate memory (batch 512 x 1M
classes in float32 is 2 GB per copy). :func:`margin_softmax_loss` is the same loss on the embeddings
``(N, D)`` and the class centres ``(C, D)``. Its definition (what ``torch.compile`` and ``torch.func``
see) is the plain composition: normalise, form the cosines, apply the margin cross-entropy of
:mod:`losskit.functional.margin`. In eager autograd the streaming softmax engine of
:mod:`losskit._kernels.streaming` computes the same values and gradients without ever holding an
``(N, C)`` tensor; with ``process_group`` the classes are sharded over ranks on that same engine.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _comm
from .._kernels import streaming
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_class_indices,
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_positive_int,
    check_same_device,
    compute_dtype,
    no_autocast,
    output_dtype,
)
from .margin import _margin_ce

__all__ = ["margin_softmax_loss"]

TargetLogit = Callable[[Tensor], Tensor]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


def _check_budget(fn: str, keep_budget: object) -> int:
    if isinstance(keep_budget, bool) or not isinstance(keep_budget, int):
        raise TypeError(f"{fn}: keep_budget must be an int (bytes); got {type(keep_budget).__name__}")
    if keep_budget < 0:
        raise ValueError(f"{fn}: keep_budget must be >= 0 (bytes); got {keep_budget}")
    return keep_budget


def _check_args(
    fn: str,
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    target_logit: object,
    scale: float | Tensor,
    chunk_size: int | None,
    keep_budget: int,
    num_classes: int | None,
    sample_rate: float,
    weight: Tensor | None,
    reduction: Reduction,
    sharded: bool,
) -> torch.dtype:
    """Every static check (shapes, dtypes, devices, hyperparameters); returns the compute dtype."""
    check_reduction(fn, reduction)
    check_floating(fn, "input", input)
    check_floating(fn, "centers", centers)
    check_integer(fn, "target", target)
    check_ndim(fn, "input", input, 2, "(N, D)")
    check_ndim(fn, "centers", centers, 2, "(C_local, D)" if sharded else "(C, D)")
    n, d = input.shape
    if tuple(target.shape) != (n,):
        raise ValueError(f"{fn}: expected target of shape ({n},), got {tuple(target.shape)}")
    if centers.shape[1] != d:
        c = "C_local" if sharded else "C"
        raise ValueError(f"{fn}: expected centers of shape ({c}, {d}), got {tuple(centers.shape)}")
    if not callable(target_logit):
        raise TypeError(f"{fn}: target_logit must be callable; got {type(target_logit).__name__}")
    if isinstance(scale, Tensor):
        check_floating(fn, "scale", scale)
        shapes = ((n,),) if sharded else ((), (n,))
        if tuple(scale.shape) not in shapes:
            want = f"({n},)" if sharded else f"() or ({n},)"
            raise ValueError(f"{fn}: expected scale of shape {want}, got {tuple(scale.shape)}")
    else:
        check_interval(fn, "scale", scale, 0.0, math.inf, low_open=True, high_open=True)
    if chunk_size is not None:
        check_positive_int(fn, "chunk_size", chunk_size)
    _check_budget(fn, keep_budget)
    if num_classes is not None:
        check_positive_int(fn, "num_classes", num_classes)
    check_interval(fn, "sample_rate", sample_rate, 0.0, 1.0, low_open=True)
    check_weight(fn, weight, (n,))
    check_same_device(
        fn, ("input", input), ("centers", centers), ("target", target), ("scale", scale), ("weight", weight)
    )
    return compute_dtype(torch.promote_types(input.dtype, centers.dtype))


def _target_logits(fn: str, target_logit: TargetLogit, cos_t: Tensor) -> Tensor:
    """``target_logit(cos_t)``, checked to be an element-wise result of the same shape ``(N,)``."""
    phi = target_logit(cos_t)
    if not isinstance(phi, Tensor) or not phi.is_floating_point():
        got = type(phi).__name__ if not isinstance(phi, Tensor) else f"a {phi.dtype} tensor"
        raise TypeError(f"{fn}: target_logit must return a floating-point tensor; got {got}")
    if phi.shape != cos_t.shape:
        raise ValueError(
            f"{fn}: target_logit must return one target logit per row, shape {tuple(cos_t.shape)} "
            f"(element-wise on the target cosines), got {tuple(phi.shape)}"
        )
    return phi.to(cos_t.dtype)


def _partial_fc_keep(target: Tensor, num_classes: int, sample_rate: float, generator) -> Tensor:
    """Sorted class positions kept by Partial-FC: every positive class plus random negatives.

    ``target`` holds positions in ``[0, num_classes)`` or outside it (another rank's class).
    ``max(int(sample_rate * C), number of positive classes)`` centres in all, as An et al.'s released
    code does. Reads the number of positive classes on the host (one device sync).
    """
    positives = target[(target >= 0) & (target < num_classes)]
    score = torch.rand(num_classes, generator=generator, device=target.device)
    score[positives] = 2.0  # positives sort first
    num_pos = int((score > 1.0).sum())
    keep = max(int(sample_rate * num_classes), num_pos)
    return torch.topk(score, keep, sorted=False).indices.sort().values


def _sampled(centers: Tensor, t: Tensor, sample_rate: float, generator) -> tuple[Tensor, Tensor]:
    """Partial-FC: the kept centres and each target's position among them (-1: not kept here)."""
    if sample_rate >= 1.0 or centers.shape[0] == 0:
        return centers, t
    c = centers.shape[0]
    keep = _partial_fc_keep(t, c, sample_rate, generator)
    inside = (t >= 0) & (t < c)
    pos = torch.searchsorted(keep, t.clamp(0, c - 1))  # every positive is kept: its position
    return centers[keep], torch.where(inside, pos, -1)


def _definition(
    fn: str,
    input: Tensor,
    centers: Tensor,
    t: Tensor,
    target_logit: TargetLogit,
    scale: float | Tensor,
    sample_rate: float,
    generator,
    weight: Tensor | None,
    reduction: Reduction,
    ct: torch.dtype,
) -> Tensor:
    """The loss as plain differentiable ops: normalise, the ``(N, C)`` cosines, margin cross-entropy."""
    w, t = _sampled(centers, t, sample_rate, generator)
    x = F.normalize(input.to(ct), dim=1)  # (N, D)
    cos = x @ F.normalize(w.to(ct), dim=1).T  # (N, C)
    cos_t = cos.gather(1, t.unsqueeze(1)).squeeze(1)  # (N,)
    loss = _margin_ce(cos, t, _target_logits(fn, target_logit, cos_t), scale)
    return reduce_loss(loss, reduction, weight)


def _float_bits(value: float) -> int:
    """A float as the int64 of its bits (exchanged summaries are int64 rows)."""
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _exchange(
    fn: str,
    error: Exception | None,
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    scale: float | Tensor,
    num_classes: int | None,
    sample_rate: float,
    reduction: Reduction,
    ct: torch.dtype | None,
    group: Any,
) -> tuple[list[int], int, int]:
    """The one argument exchange of a class-parallel call: every argument that changes a collective's
    shape or count (or the loss all ranks compute together) is compared on every rank, so a mismatch
    raises the same error everywhere instead of leaving ranks in a collective. Returns every rank's
    batch size, this rank's first class id and the total number of classes."""
    rank, world = _comm.world(group)
    fields: list[Tensor | int] = [0] * 11
    if error is None:
        has_rows = target.numel() > 0
        grad = torch.is_grad_enabled() and any(
            isinstance(v, Tensor) and v.requires_grad for v in (input, centers, scale)
        )
        fields = [
            input.shape[0],
            input.shape[1],
            centers.shape[0],
            target.min() if has_rows else 0,  # the label range rides on the exchange: no extra sync
            target.max() if has_rows else -1,
            int(isinstance(scale, Tensor)),
            _comm.DTYPE_CODES.get(ct, 9),
            _REDUCTION_CODES[reduction],
            _float_bits(sample_rate),
            -1 if num_classes is None else num_classes,
            int(grad),
        ]
    rows = _comm.exchange_summary(fn, error, fields, _comm.summary_device(input, centers, target), group)
    sizes, dims, blocks = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    if len(set(dims)) != 1:
        _comm.raise_all(fn, f"expected the same embedding dim D on every rank, got D={dims} by rank")
    if len({r[6] for r in rows}) != 1:
        _comm.raise_all(fn, "expected input and centers of the same floating dtype on every rank")
    if len({r[5] for r in rows}) != 1:
        _comm.raise_all(fn, "expected scale to be a float on every rank or a tensor on every rank")
    checks = [
        (7, "reduction", lambda v: next(k for k, c in _REDUCTION_CODES.items() if c == v)),
        (8, "sample_rate", lambda v: struct.unpack("<d", struct.pack("<q", v))[0]),
        (9, "num_classes", lambda v: None if v < 0 else v),
    ]
    for col, name, decode in checks:
        values = [decode(r[col]) for r in rows]
        if len(set(values)) != 1:
            _comm.raise_all(fn, f"expected the same {name} on every rank, got {values} by rank")
    if len({r[10] for r in rows}) != 1:
        needs = [bool(r[10]) for r in rows]
        _comm.raise_all(
            fn,
            f"expected gradients needed on every rank or on none (backward runs collectives), got {needs} "
            "by rank",
        )
    total = sum(blocks)
    if num_classes is not None:
        want = [
            stop - start for start, stop in (_comm.class_block(num_classes, world, r) for r in range(world))
        ]
        if blocks != want:
            _comm.raise_all(
                fn,
                f"expected centers with {want} classes by rank (num_classes={num_classes} split as "
                f"torch.tensor_split), got {blocks}",
            )
    for r, row in enumerate(rows):
        if row[0] > 0 and (row[3] < 0 or row[4] >= total):
            _comm.raise_all(
                fn,
                f"target must hold class indices in [0, {total}); got ids in [{row[3]}, {row[4]}] "
                f"on rank {r}",
            )
    return sizes, sum(blocks[:rank]), total


def _margin_softmax(
    fn: str,
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    *,
    target_logit: TargetLogit,
    scale: float | Tensor,
    chunk_size: int | None = None,
    keep_budget: int = streaming.KEEP_BUDGET,
    process_group: Any = None,
    num_classes: int | None = None,
    sample_rate: float = 1.0,
    generator: torch.Generator | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """:func:`margin_softmax_loss`, with errors naming ``fn`` (the function or Module the user called)."""
    group = process_group
    if group is None:
        ct = _check_args(
            fn, input, centers, target, target_logit, scale, chunk_size, keep_budget, num_classes,
            sample_rate, weight, reduction, sharded=False,
        )  # fmt: skip
        if num_classes is not None and num_classes != centers.shape[0]:
            raise ValueError(
                f"{fn}: expected centers of shape ({num_classes}, D) (num_classes={num_classes}), "
                f"got {tuple(centers.shape)}"
            )
        t = check_class_indices(fn, "target", target, centers.shape[0])
        sizes, offset = None, 0
    else:
        if not torch.compiler.is_compiling() and not streaming.eligible(
            input, centers, target, scale, weight
        ):
            raise ValueError(
                f"{fn}: process_group is not supported under torch.func transforms or forward-mode AD "
                "(the class-parallel path runs collectives with a closed-form backward)"
            )
        error: Exception | None = None
        ct = None
        try:
            ct = _check_args(
                fn, input, centers, target, target_logit, scale, chunk_size, keep_budget, num_classes,
                sample_rate, weight, reduction, sharded=True,
            )  # fmt: skip
            with torch.no_grad():  # the margin's shape contract, checked before any collective
                _target_logits(fn, target_logit, input.new_zeros(input.shape[0], dtype=ct))
        except (TypeError, ValueError) as err:
            error = err
        sizes, offset, _ = _exchange(
            fn, error, input, centers, target, scale, num_classes, sample_rate, reduction, ct, group
        )
        assert ct is not None
        t = _comm.all_gather_rows(target.long(), sizes, group) - offset  # (M,) positions in this block

    n, out_dtype = input.shape[0], output_dtype(input)  # the output dtype is read before autocast is off
    with no_autocast(input.device):
        if group is None and not streaming.eligible(input, centers, target, scale, weight):
            # torch.compile, torch.func and forward-mode AD see the definition
            return _definition(
                fn, input, centers, t, target_logit, scale, sample_rate, generator, weight, reduction, ct
            ).to(out_dtype)
        x = F.normalize(input.to(ct), dim=1)  # (N, D)
        s = scale.to(ct).expand(n) if isinstance(scale, Tensor) else x.new_full((n,), float(scale))  # (N,)
        w, t = _sampled(centers, t, sample_rate, generator)
        lse_nt, cos_t, _ = streaming.softmax_stats(
            x, w, t, scale=s, normalize=True, exclude_target=True, chunk_size=chunk_size,
            keep_budget=keep_budget, group=group, row_sizes=sizes,
        )  # fmt: skip
        logit_t = (scale.to(ct) if isinstance(scale, Tensor) else float(scale)) * _target_logits(
            fn, target_logit, cos_t
        )  # (N,)
        # -log softmax of the target entry = log(1 + exp(lse_nt - logit_t)); logaddexp is exact for
        # a small loss, where lse_all - logit_t would cancel
        loss = torch.logaddexp(torch.zeros_like(logit_t), lse_nt - logit_t)
        if group is None or reduction == "none":
            out = reduce_loss(loss, reduction, weight)
        else:
            # the loss of the global batch, the same value on every rank (identity in backward)
            out = _comm.ReplicatedSum.apply(reduce_loss(loss, "sum", weight), group)
            if reduction == "mean":
                out = out / max(sum(sizes), 1)
    return out.to(out_dtype)


def margin_softmax_loss(
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    *,
    target_logit: TargetLogit,
    scale: float | Tensor,
    chunk_size: int | None = None,
    keep_budget: int = streaming.KEEP_BUDGET,
    process_group: Any = None,
    num_classes: int | None = None,
    sample_rate: float = 1.0,
    generator: torch.Generator | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Margin softmax on embeddings and class centres, streamed over class chunks, optionally sharded.

    The loss of ArcFace, CosFace/AM-Softmax, combined margins, SphereFace and NormFace/COCO computed
    from the embeddings and the class centres: equal (to rounding) to normalising both, forming
    ``cosine = x_hat @ w_hat.T`` and calling the matching loss of :mod:`losskit.functional.margin`,
    with a fraction of its memory. ``target_logit=lambda c: c`` gives NormFace/COCO.

    .. math::
        \ell_i = -\log \frac{e^{s_i\,\phi(\cos\theta_{i,y_i})}}
        {e^{s_i\,\phi(\cos\theta_{i,y_i})} + \sum_{c \ne y_i} e^{s_i \cos\theta_{i,c}}},
        \qquad \cos\theta_{i,c} = \frac{x_i \cdot w_c}{\max(\lVert x_i\rVert, \epsilon)\,
        \max(\lVert w_c\rVert, \epsilon)}

    where :math:`\phi` is ``target_logit``, :math:`s_i` the ``scale``, :math:`x_i` the embeddings,
    :math:`w_c` the centres and :math:`\epsilon = 10^{-12}` (as ``F.normalize``).

    Args:
        input: embeddings, shape ``(N, D)``. Normalised here.
        centers: class centres, shape ``(C, D)`` (with ``process_group``: this rank's block
            ``(C_local, D)``), any floating dtype (kept as is: master weights stay in their own dtype).
            Normalised here, block by block.
        target: class ids, shape ``(N,)``, any integer dtype, in ``[0, C)`` (global ids with
            ``process_group``). Checked: ``ValueError`` on CPU, a device-side assertion on an
            accelerator (no host sync), part of the exchanged summary with ``process_group``.
        target_logit: the margin function :math:`\phi` mapping the target cosines ``(N,)`` to unscaled
            target logits ``(N,)``, element-wise: ``functools.partial(arcface_target_logit, margin=0.5)``,
            ``cosface_target_logit``, ``combined_margin_target_logit``, ``sphereface_target_logit`` or
            the identity (NormFace). Its output shape is checked.
        scale: :math:`s`: a float ``> 0`` (64 for ArcFace/CosFace, 30 for AM-Softmax), a 0-dim tensor,
            or per-row scales ``(N,)`` (with ``process_group`` a float or ``(N,)``); tensors receive a
            gradient (SphereFace keeps the feature norms ``input.norm(dim=1)``).
        chunk_size: classes per chunk of the streamed logits. Default ``None``: chosen so that an
            ``(N, chunk)`` block of logits and a ``(chunk, D)`` block of centres take at most 4 MiB,
            i.e. 2048 classes at ``N = D = 512`` in float32.
        keep_budget: bytes of logit chunks forward keeps for backward in tensors of their own (which
            recomputes the others, one more matrix product each). When ``centers`` needs a gradient,
            forward first writes chunks into the buffer that becomes ``centers.grad`` (every chunk
            when ``N <= D``, else the first ``C * D / N`` classes' chunks): those cost no memory beyond
            the gradient, which then exists from forward on. ``0`` keeps nothing and recomputes every
            chunk. Default: ``48 * 2**20`` (48 MiB).
        process_group: ``None`` for one process; a ``torch.distributed`` group shards the classes over
            its ranks: rank ``r`` holds the ``r``-th contiguous block of centres (as
            ``torch.tensor_split(arange(C), world_size)`` lays them out, see
            :func:`losskit.distributed.class_shard`), its own rows of the global batch and their
            global class ids. Every rank must call with the same options and call ``backward()``.
        num_classes: the total number of classes ``C``. With ``process_group`` each rank's block must
            then follow the ``tensor_split`` layout; without one ``centers`` must have ``C`` rows.
            Default: ``None`` (not checked; the sum of the ranks' blocks).
        sample_rate: Partial-FC (An et al. 2021): keep every positive class of the batch plus random
            negatives up to ``int(sample_rate * C)`` centres (per rank: of its block), and compute the
            softmax over those only (the other centres get zero gradient). In ``(0, 1]``. Default:
            ``1.0`` (all classes).
        generator: random generator for Partial-FC sampling. Default: the global one.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N`` (with
            ``process_group``: by the global number of rows; ``'sum'``/``'mean'`` are then the global
            batch's loss, the same on every rank, ``'none'`` this rank's rows).

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if shapes do not match, a label is out of range, ``scale``, ``chunk_size``,
            ``keep_budget`` or ``sample_rate`` is out of range, ``target_logit`` returns another shape,
            an argument is on another device, or ``reduction`` is unknown; with ``process_group`` on
            every rank when any rank's arguments fail or differ from the others' where they must agree
            (batch layout, ``D``, dtypes, scale kind, ``reduction``, ``sample_rate``, ``num_classes``,
            whether gradients are needed), instead of blocking in a collective.
        TypeError: if ``input``/``centers`` are not floating, ``target`` is not integer, or
            ``target_logit`` is not callable or returns a non-floating result.

    Note:
        In eager autograd the streaming engine runs: memory beyond the inputs and their gradients is
        O(N * chunk + chunk * D + N * D + C) plus at most ``keep_budget`` bytes of saved logits (with
        ``N <= D`` every chunk's logits wait in the centres' gradient buffer instead: the step costs
        the three matrix products and no chunk is recomputed); the
        centres are normalised block by block (no normalised copy of the ``(C, D)`` centres) and
        their gradient is written block by block into the buffer that becomes ``centers.grad``; the
        loss is ``log(1 + exp(lse_nt - s * phi))`` from the log-sum-exp of the non-target logits, as
        accurate as cross-entropy on the full logits or more. Under ``torch.compile``, ``torch.func``
        transforms and forward-mode AD the definition runs instead (the ``(N, C)`` cosines and the
        margin cross-entropy: composable, and it holds the full logits); with ``process_group`` the
        engine always runs (collectives; no ``torch.func``). Double backward: definition only.
        float16/bfloat16 are computed in float32, autocast is disabled inside. Partial-FC costs one
        device sync (the number of positive classes) and draws from ``generator``. With
        ``process_group`` each call makes one host sync (the argument summary), and ``'mean'`` and
        ``'sum'`` are the global loss: see :mod:`losskit.distributed` for how the gradients are
        scaled and the DDP hook that makes the backbone's gradient the single-process one.

    Example:
        >>> x, w = torch.randn(4, 8), torch.randn(10, 8)
        >>> y = torch.tensor([0, 3, 9, 3])
        >>> loss = margin_softmax_loss(x, w, y, target_logit=lambda c: c - 0.35, scale=30.0, chunk_size=3)
        >>> cosine = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(w).T
        >>> logits = 30.0 * (cosine - 0.35 * torch.nn.functional.one_hot(y, 10))
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, y))
        True

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019.
        https://arxiv.org/abs/1801.07698
        An et al., "Partial FC: Training 10 Million Identities on a Single Machine", ICCV Workshops
        2021. https://arxiv.org/abs/2010.05222
        Milakov and Gimelshein, "Online normalizer calculation for softmax", 2018.
        https://arxiv.org/abs/1805.02867
    """
    return _margin_softmax(
        "margin_softmax_loss", input, centers, target, target_logit=target_logit, scale=scale,
        chunk_size=chunk_size, keep_budget=keep_budget, process_group=process_group,
        num_classes=num_classes, sample_rate=sample_rate, generator=generator, weight=weight,
        reduction=reduction,
    )  # fmt: skip
