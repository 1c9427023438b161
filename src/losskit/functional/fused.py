r"""Fused margin softmax: the loss of embeddings against class centres, streamed over class chunks.

The margin losses of :mod:`losskit.functional.margin` take cosine logits ``(N, C)``. With hundreds of
thousands of classes those logits, their softmax and their gradient dominate memory (batch 512 x 1M
classes in float32 is 2 GB per copy). :func:`margin_softmax_loss` computes the same loss and the same
gradients from the embeddings ``(N, D)`` and the class centres ``(C, D)`` without ever holding an
``(N, C)`` tensor: a custom autograd Function streams over blocks of classes with an online
log-sum-exp in forward, and recomputes each block's probabilities in backward.

The per-block pieces :func:`_chunk_stats` and :func:`_chunk_backward` are also the engine of
:func:`losskit.distributed.class_parallel_margin_loss`, where each rank streams over its own block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_positive_int,
    compute_dtype,
)

__all__ = ["margin_softmax_loss"]

TargetLogit = Callable[[Tensor], Tensor]

# chunk_size=None: classes per chunk such that one (N, chunk) block of logits, and one (chunk, D) block
# of centres, takes at most this many bytes. Measured on a 2-core CPU at N = D = 512: 2048 classes
# per chunk run each chunk's matrix products at full BLAS speed while the blocks stay in cache.
CHUNK_BUDGET_BYTES = 4 * 2**20

# Forward keeps the logits of as many leading chunks as fit in this many bytes, so that backward
# recomputes only the others (each recomputed chunk costs one more matrix product). Measured at batch
# 512, embedding 512, 100,000 classes on a 2-core CPU (fp32, relative to the three bare matrix
# products): 32 MiB -> about 1.38x, 48-64 MiB -> 1.3x, 128 MiB -> 1.2x, all of them (195 MiB) -> 1.12x.
# 48 MiB keeps the peak workspace under 10% of the unfused path's (63 of 783 MiB measured). Raise it
# (``losskit.functional.fused.KEEP_BUDGET_BYTES = ...``) to trade memory for time.
KEEP_BUDGET_BYTES = 48 * 2**20

# F.normalize's default: norms are clamped to at least this before dividing.
_EPS = 1e-12


def _auto_chunk_size(rows: int, dim: int, num_classes: int, dtype: torch.dtype) -> int:
    """Classes per chunk so that ``(rows, chunk)`` and ``(chunk, dim)`` blocks fit ``CHUNK_BUDGET_BYTES``."""
    itemsize = torch.finfo(dtype).bits // 8
    per_class = max(rows, dim, 1) * itemsize
    return max(1, min(max(num_classes, 1), CHUNK_BUDGET_BYTES // per_class))


def _keep_chunks(rows: int, chunk: int, dtype: torch.dtype) -> int:
    """How many leading ``(rows, chunk)`` blocks of logits fit in ``KEEP_BUDGET_BYTES``."""
    itemsize = torch.finfo(dtype).bits // 8
    return KEEP_BUDGET_BYTES // max(rows * chunk * itemsize, 1)


def _mask_targets(z: Tensor, t: Tensor, start: int, value: float) -> None:
    """Set ``z[i, t[i] - start] = value`` in place where the target falls in this block of columns."""
    k = z.shape[1]
    idx = t - start
    inside = (idx >= 0) & (idx < k)
    idx = idx.clamp(0, k - 1)[:, None]  # rows whose target is elsewhere rewrite one entry unchanged
    z.scatter_(1, idx, torch.where(inside[:, None], value, z.gather(1, idx)))


def _unit_block(
    w: Tensor, start: int, stop: int, inv_norm: Tensor | None, buf: Tensor | None, dtype: torch.dtype
) -> Tensor:
    """Rows ``start:stop`` of ``w`` in ``dtype``, times their inverse norms (into ``buf``) if given."""
    if inv_norm is None:
        return w[start:stop].to(dtype)
    assert buf is not None
    return torch.mul(w[start:stop], inv_norm[start:stop, None], out=_block(buf, stop - start, w.shape[1]))


def _block(buf: Tensor, rows: int, cols: int) -> Tensor:
    """A ``(rows, cols)`` view of the front of a flat workspace (reused chunk after chunk: a fresh
    multi-megabyte allocation per chunk costs page faults that take longer than the element-wise work)."""
    return buf[: rows * cols].view(rows, cols)


def _exp_floor(dtype: torch.dtype) -> float:
    """Just above log(smallest normal): exp() of anything lower is clamped here (see _stats_loop)."""
    return math.log(torch.finfo(dtype).tiny) + 1.0


def _stats_loop(
    x: Tensor,
    w: Tensor,
    t: Tensor,
    s: Tensor,
    chunk: int,
    inv_norm: Tensor | None,
    kept: list[Tensor] | None = None,
    keep: int = 0,
) -> tuple[Tensor, Tensor]:
    """Online (max, sum of exp) over the non-target logits; the first ``keep`` blocks go to ``kept``."""
    n, d = x.shape
    dt = x.dtype
    floor = _exp_floor(dt)
    row_max = x.new_full((n,), -math.inf)
    row_sum = x.new_zeros(n)
    xs = x * s[:, None]  # (N, D): scaling the rows once scales every logit of the row
    k = min(chunk, w.shape[0])
    wbuf = None if inv_norm is None else x.new_empty(k * d)
    zbuf = x.new_empty(n * k)  # (N, chunk) workspace
    for a in range(0, w.shape[0], chunk):
        b = min(a + chunk, w.shape[0])
        wc = _unit_block(w, a, b, inv_norm, wbuf, dt)
        save = kept is not None and len(kept) < keep
        z = torch.mm(xs, wc.T, out=x.new_empty(n, b - a) if save else _block(zbuf, n, b - a))  # logits
        _mask_targets(z, t, a, -math.inf)
        new_max = torch.maximum(row_max, z.amax(dim=1))
        seen = new_max > -math.inf  # False: only the row's target seen so far, nothing to add
        shift = torch.where(seen, new_max, 0.0)[:, None]
        if save:
            assert kept is not None
            kept.append(z)  # masked logits, saved so that backward need not recompute this block
            e = torch.sub(z, shift, out=_block(zbuf, n, b - a))
        else:
            e = z.sub_(shift)
        # exp() of arguments below the floor would give denormals, which take a slow path in the CPU's
        # exp (10x); each clamped term adds < 1e-37 to a sum that is >= 1 (the max term), invisible
        block = e.clamp_min_(floor).exp_().sum(dim=1)
        row_sum = row_sum * torch.exp(row_max - shift[:, 0]) + torch.where(seen, block, 0.0)
        row_max = new_max
    return row_max, row_sum


def _backward_loop(
    x: Tensor,
    w: Tensor,
    t: Tensor,
    s: Tensor,
    lse: Tensor,
    g: Tensor,
    chunk: int,
    inv_norm: Tensor | None,
    g_cos: Tensor | None,
    need_w: bool,
    kept: tuple[Tensor, ...] = (),
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Gradients of ``sum_i g_i lse_i (+ g_cos_i cos_it)`` w.r.t. ``x``, ``w`` (raw if ``inv_norm``), ``s``.

    With ``inv_norm`` (1 / the clamped centre norms; 0 marks a clamped one), ``w`` holds raw centres,
    the target-cosine term ``g_cos`` is included and the centre gradient is taken through the
    normalisation, block by block.
    """
    n, d = x.shape
    dt = x.dtype
    floor = _exp_floor(dt)
    xs = x * s[:, None]  # (N, D)
    gxs = xs * g[:, None]  # (N, D): d(g_i lse_i)/d w_j = p_ij g_i s_i x_i
    neg_lse = -torch.where(torch.isfinite(lse), lse, 0.0)[:, None]  # rows without classes: all p = 0
    acc = torch.zeros_like(x)  # (N, D): sum_j p_ij w_j
    gw = torch.empty_like(w) if need_w else None  # (C, D) in the centres' own dtype
    gc = None if g_cos is None else g_cos[:, None] * x  # (N, D) target-cosine term for the centres
    k = min(chunk, w.shape[0])
    wbuf = None if inv_norm is None else x.new_empty(k * d)
    pbuf = x.new_empty(n * k)
    direct = gw is not None and gw.dtype == dt  # write each block's gradient straight into gw
    gbuf = None if direct or not need_w else x.new_empty(k * d)
    for i, a in enumerate(range(0, w.shape[0], chunk)):
        b = min(a + chunk, w.shape[0])
        wc = _unit_block(w, a, b, inv_norm, wbuf, dt)
        p = _block(pbuf, n, b - a)
        if i < len(kept):
            torch.add(kept[i], neg_lse, out=p)  # logit - lse, from the logits saved in forward
        else:
            torch.addmm(neg_lse, xs, wc.T, out=p)  # logit - lse, recomputed
        # the block's non-target softmax probabilities, used by both products below; clamping
        # avoids exp's slow denormal path (probabilities < 1e-37 of a row summing to 1)
        p.clamp_min_(floor).exp_()
        _mask_targets(p, t, a, 0.0)
        acc.addmm_(p, wc)
        if gw is None:
            continue
        gwc = torch.mm(p.T, gxs, out=gw[a:b] if direct else _block(gbuf, b - a, d))  # (k, D)
        if inv_norm is not None:
            # through w / max(|w|, eps): (g - w_hat (w_hat . g)) / |w|; no projection where clamped
            radial = torch.linalg.vecdot(wc, gwc)[:, None]  # (k, 1) row-wise dots (6x faster than bmm)
            gwc.addcmul_(wc, radial * (inv_norm[a:b, None] < 1 / _EPS), value=-1.0).mul_(inv_norm[a:b, None])
        if not direct:
            gw[a:b] = gwc
    if gw is not None and gc is not None and inv_norm is not None and t.numel() > 0:
        # the target-cosine term, once for all rows (the projection below is linear, so adding it
        # after the blocks equals adding it inside them): d cos_it / d w_t through the normalisation
        w_t = w[t].to(dt) * inv_norm[t, None]  # (N, D) unit target centres
        radial_t = (w_t * gc).sum(dim=1, keepdim=True) * (inv_norm[t, None] < 1 / _EPS)
        gw.index_add_(0, t, ((gc - w_t * radial_t) * inv_norm[t, None]).to(gw.dtype))
    gx = acc * (g * s)[:, None]
    gs = g * (x * acc).sum(dim=1)  # sum_j p_ij cos_ij = x_i . sum_j p_ij w_j
    return gx, gw, gs


def _chunk_stats(x_hat: Tensor, w_hat: Tensor, target_local: Tensor, scale: Tensor, chunk_size: int):
    """Row max and row sum of ``exp(logit - max)`` over the non-target classes of a block of centres.

    The logits are ``scale[i] * (x_hat[i] . w_hat[j])``. Streams over ``chunk_size`` classes at a time;
    no ``(N, C)`` tensor is made. No autograd (wrap it in a Function).

    Args:
        x_hat: unit embeddings, shape ``(N, D)``.
        w_hat: unit centres of this block, shape ``(B, D)``, same dtype.
        target_local: the target's position in the block, shape ``(N,)`` int64 (global target minus
            the block's first class id); anything outside ``[0, B)`` means the target is elsewhere.
        scale: per-row scales, shape ``(N,)``.
        chunk_size: classes per chunk, ``>= 1``.

    Returns:
        ``(row_max, row_sumexp)``, each ``(N,)``, such that the log-sum-exp of the row's non-target
        logits is ``row_max + log(row_sumexp)``; a row with no non-target class in the block gets
        ``-inf`` and ``0``.
    """
    with torch.no_grad():
        return _stats_loop(x_hat, w_hat, target_local, scale, chunk_size, None)


def _chunk_backward(
    x_hat: Tensor,
    w_hat: Tensor,
    target_local: Tensor,
    scale: Tensor,
    lse: Tensor,
    grad_lse: Tensor,
    chunk_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``sum_i grad_lse[i] * lse[i]`` w.r.t. ``x_hat``, ``w_hat`` and ``scale``.

    ``lse`` is the (global) log-sum-exp of each row's non-target logits; each block's probabilities
    ``exp(scale * cos - lse)`` are recomputed chunk by chunk and used for both matrix products. Rows
    whose ``lse`` is ``-inf`` (no non-target class anywhere) get zero gradient. Arguments as in
    :func:`_chunk_stats`.

    Returns:
        ``(grad_x_hat (N, D), grad_w_hat (B, D), grad_scale (N,))``; ``grad_w_hat`` is zero in the rows
        of target classes only through the non-target terms (the target cosine is not included).
    """
    with torch.no_grad():
        gx, gw, gs = _backward_loop(
            x_hat, w_hat, target_local, scale, lse, grad_lse, chunk_size, None, None, True
        )
    assert gw is not None
    return gx, gw, gs


class _FusedMarginSoftmax(torch.autograd.Function):
    """``(lse_nt, cos_t)``: log-sum-exp of each row's non-target logits, and its target cosine.

    Inputs: unit embeddings ``x`` (N, D) in the compute dtype, RAW centres ``w`` (C, D) in their own
    dtype (normalised block by block, so no normalised copy of the centres is ever made), targets
    ``t`` (N,), per-row scales ``s`` (N,). Backward returns the gradient w.r.t. the raw centres,
    written block by block into the one ``(C, D)`` buffer autograd hands to ``w.grad``.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, t: Tensor, s: Tensor, chunk: int, keep: int):
        dt = x.dtype
        # (C,) 1 / max(|w|, eps) as F.normalize clamps (multiplying by it is much faster than dividing)
        inv_norm = torch.linalg.vector_norm(w, dim=1, dtype=dt).clamp_min_(_EPS).reciprocal_()
        kept: list[Tensor] = []
        row_max, row_sum = _stats_loop(x, w, t, s, chunk, inv_norm, kept, keep)
        lse = row_max + torch.log(row_sum)  # -inf where a row has no non-target class
        w_t = w[t].to(dt) * inv_norm[t, None]  # (N, D) unit target centres
        cos_t = (x * w_t).sum(dim=1)
        ctx.save_for_backward(x, w, t, s, lse, inv_norm, *kept)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(t)
        return lse, cos_t

    @staticmethod
    @once_differentiable  # the chunk loop writes into workspaces: no double backward
    def backward(ctx: Any, g_lse: Tensor, g_cos: Tensor):
        x, w, t, s, lse, inv_norm, *kept = ctx.saved_tensors
        need_w = ctx.needs_input_grad[1]
        gx, gw, gs = _backward_loop(x, w, t, s, lse, g_lse, ctx.chunk, inv_norm, g_cos, need_w, tuple(kept))
        gx = gx + g_cos[:, None] * (w[t].to(x.dtype) * inv_norm[t, None])
        return gx, gw, None, gs, None, None


def _partial_fc_keep(target: Tensor, num_classes: int, sample_rate: float, generator) -> Tensor:
    """Sorted class ids kept by Partial-FC: every positive class plus random negatives.

    ``max(int(sample_rate * C), number of positive classes)`` centres in all, as An et al.'s released
    code does. Reads the number of positive classes on the host (one device sync).
    """
    score = torch.rand(num_classes, generator=generator, device=target.device)
    score[target] = 2.0  # positives sort first
    num_pos = int((score > 1.0).sum())
    keep = max(int(sample_rate * num_classes), num_pos)
    return torch.topk(score, keep, sorted=False).indices.sort().values


def margin_softmax_loss(
    input: Tensor,
    centers: Tensor,
    target: Tensor,
    *,
    target_logit: TargetLogit,
    scale: float | Tensor,
    chunk_size: int | None = None,
    process_group: Any = None,
    sample_rate: float = 1.0,
    generator: torch.Generator | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Margin softmax on embeddings and class centres, streamed over class chunks (fused).

    The loss of ArcFace, CosFace/AM-Softmax, combined margins, SphereFace and NormFace/COCO computed
    without the ``(N, C)`` cosine logits: equal (to rounding) to normalising both, forming
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
        centers: class centres, shape ``(C, D)``, any floating dtype (kept as is: master weights stay
            in their own dtype). Normalised here, block by block.
        target: class ids, shape ``(N,)``, integer, in ``[0, C)`` (not checked: that would sync).
        target_logit: the margin function :math:`\phi` mapping target cosines ``(N,)`` to unscaled
            target logits, element-wise: ``functools.partial(arcface_target_logit, margin=0.5,
            fallback="linear", gradient="exact")``, ``cosface_target_logit``,
            ``combined_margin_target_logit``, ``sphereface_target_logit`` or the identity (NormFace).
        scale: :math:`s`: a float ``> 0`` (64 for ArcFace/CosFace, 30 for AM-Softmax), a 0-dim tensor,
            or per-row scales ``(N,)``; tensors receive a gradient (SphereFace keeps the feature norms
            ``input.norm(dim=1)``).
        chunk_size: classes per chunk. Default ``None``: chosen so that an ``(N, chunk)`` block of
            logits and a ``(chunk, D)`` block of centres take at most ``CHUNK_BUDGET_BYTES`` (4 MiB),
            i.e. 2048 classes at ``N = D = 512`` in float32.
        process_group: ``None`` for one process; a ``torch.distributed`` group shards the classes over
            its ranks (``centers`` then holds this rank's block and ``target`` global ids) and the call
            is :func:`losskit.distributed.class_parallel_margin_loss` with the same arguments.
        sample_rate: Partial-FC (An et al. 2021): keep every positive class of the batch plus random
            negatives up to ``int(sample_rate * C)`` centres, and compute the softmax over those only
            (the other centres get zero gradient). In ``(0, 1]``. Default: ``1.0`` (all classes).
        generator: random generator for Partial-FC sampling. Default: the global one.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if shapes do not match, ``scale``, ``chunk_size`` or ``sample_rate`` is out of
            range, or ``reduction`` is unknown.
        TypeError: if ``input``/``centers`` are not floating, ``target`` is not integer, or
            ``target_logit`` is not callable.

    Note:
        Memory beyond the inputs and their gradients is O(N * chunk + chunk * D + N * D + C) plus at
        most ``KEEP_BUDGET_BYTES`` (48 MiB) of saved logits: the centres are normalised block by
        block inside the Function (no normalised copy of the ``(C, D)`` centres) and their gradient
        is written block by block into the buffer that becomes ``centers.grad``. Forward saves the
        logits of the first chunks that fit that budget; backward recomputes the others (one more
        matrix product each) and uses each block's probabilities for both gradient products. The
        loss is ``log(1 + exp(lse_nt - s * phi))`` from the log-sum-exp of the non-target logits,
        as accurate as cross-entropy on the full logits or more. exp() arguments are clamped just
        above log(smallest normal) (terms below 1e-37 of a row sum that is at least 1; this avoids
        the slow denormal path of CPU exp). float16/bfloat16 are computed in float32, autocast is
        disabled inside. Partial-FC costs one device sync (the number of positive classes) and draws
        from ``generator``. Labels are not range-checked.

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
    fn = "margin_softmax_loss"
    if process_group is not None:
        from ..distributed import class_parallel_margin_loss  # lazy: torch.distributed is optional

        return class_parallel_margin_loss(
            input,
            centers,
            target,
            target_logit=target_logit,
            scale=scale,
            process_group=process_group,
            chunk_size=chunk_size,
            sample_rate=sample_rate,
            generator=generator,
            weight=weight,
            reduction=reduction,
        )
    check_reduction(fn, reduction)
    check_floating(fn, "input", input)
    check_floating(fn, "centers", centers)
    check_integer(fn, "target", target)
    check_ndim(fn, "input", input, 2, "(N, D)")
    check_ndim(fn, "centers", centers, 2, "(C, D)")
    n, d = input.shape
    if tuple(target.shape) != (n,):
        raise ValueError(f"{fn}: expected target of shape ({n},), got {tuple(target.shape)}")
    if centers.shape[1] != d:
        raise ValueError(f"{fn}: expected centers of shape (C, {d}), got {tuple(centers.shape)}")
    if not callable(target_logit):
        raise TypeError(f"{fn}: target_logit must be callable; got {type(target_logit).__name__}")
    if isinstance(scale, Tensor):
        check_floating(fn, "scale", scale)
        if scale.shape not in ((), (n,)):
            raise ValueError(f"{fn}: expected scale of shape () or ({n},), got {tuple(scale.shape)}")
    else:
        check_interval(fn, "scale", scale, 0.0, math.inf, low_open=True, high_open=True)
    if chunk_size is not None:
        check_positive_int(fn, "chunk_size", chunk_size)
    check_interval(fn, "sample_rate", sample_rate, 0.0, 1.0, low_open=True)
    check_weight(fn, weight, (n,))

    ct = compute_dtype(torch.promote_types(input.dtype, centers.dtype))
    with torch.autocast(device_type=input.device.type, enabled=False):
        x = F.normalize(input.to(ct), dim=1)  # (N, D)
        s = scale.to(ct).expand(n) if isinstance(scale, Tensor) else x.new_full((n,), float(scale))  # (N,)
        w, t = centers, target.long()
        if sample_rate < 1.0 and centers.shape[0] > 0:
            keep = _partial_fc_keep(t, centers.shape[0], sample_rate, generator)
            t = torch.searchsorted(keep, t)  # every target is kept: its position among the kept
            w = centers[keep]  # (C_kept, D)
        chunk = chunk_size if chunk_size is not None else _auto_chunk_size(n, d, w.shape[0], ct)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or s.requires_grad)
        keep = _keep_chunks(n, chunk, ct) if needs_grad else 0
        lse_nt, cos_t = _FusedMarginSoftmax.apply(x, w, t, s, chunk, keep)
        logit_t = s * target_logit(cos_t)  # (N,)
        # -log softmax of the target entry = log(1 + exp(lse_nt - logit_t)); logaddexp is exact for
        # a small loss, where lse_all - logit_t would cancel
        loss = torch.logaddexp(torch.zeros_like(logit_t), lse_nt - logit_t)
    return reduce_loss(loss, reduction, weight).to(input.dtype)
