r"""Linear cross-entropy: the loss of a language-model head without its ``(tokens, vocabulary)`` logits.

A language model ends in ``cross_entropy(hidden @ W.T + b, target)`` over a vocabulary of 32k-256k
tokens, and those logits and their gradient are the largest tensors of the whole training step.
:func:`linear_cross_entropy` takes the hidden states and the head's weight instead. Its definition (what
``torch.compile`` and ``torch.func`` see) is the plain composition, ``F.linear`` then the cross-entropy
terms written out; in eager autograd the streaming softmax engine of :mod:`losskit._kernels.streaming`
computes the same values and gradients over blocks of the vocabulary without ever holding an
``(N, V)`` tensor; with ``process_group`` the vocabulary is sharded over ranks on that same engine.
"""

from __future__ import annotations

import struct
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _comm
from .._kernels import streaming
from ._reduction import Reduction, check_reduction
from ._validation import (
    check_class_indices,
    check_floating,
    check_integer,
    check_interval,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_same_device,
    check_tensor,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = ["linear_cross_entropy"]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


def _float_bits(value: float | None) -> int:
    """A float as the int64 of its bits (exchanged summaries are int64 rows); None as -1 (no float has
    those bits: it is a NaN payload that ``float()`` never produces here)."""
    if value is None:
        return -1
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _check_args(
    fn: str,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    weight: Tensor | None,
    reduction: Reduction,
    ignore_index: int | None,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    chunk_size: int | None,
    return_z_loss: bool,
    sharded: bool,
) -> tuple[torch.dtype, int]:
    """Every static check (shapes, dtypes, devices, hyperparameters); returns the compute dtype and
    ``ignore_index`` (``None`` is torch's -100)."""
    check_reduction(fn, reduction)
    check_floating(fn, "input", input)
    check_floating(fn, "linear_weight", linear_weight)
    check_tensor(fn, "target", target)
    if target.is_floating_point():
        raise TypeError(
            f"{fn}: target must be an integer tensor of class indices (probability targets are not "
            f"supported: they are as large as the logits); got dtype {target.dtype}"
        )
    check_integer(fn, "target", target)
    if isinstance(ignore_index, bool) or not (ignore_index is None or isinstance(ignore_index, int)):
        raise TypeError(f"{fn}: ignore_index must be an int or None; got {type(ignore_index).__name__}")
    check_interval(fn, "label_smoothing", label_smoothing, 0.0, 1.0)
    check_nonnegative(fn, "z_loss", z_loss)
    if softcap is not None:
        check_positive(fn, "softcap", softcap)
    if chunk_size is not None:
        check_positive_int(fn, "chunk_size", chunk_size)
    if not isinstance(return_z_loss, bool):
        raise TypeError(f"{fn}: return_z_loss must be a bool; got {type(return_z_loss).__name__}")
    vocab = "(V_local, D)" if sharded else "(V, D)"
    if linear_weight.dim() != 2:
        raise ValueError(
            f"{fn}: expected linear_weight of shape {vocab} (torch's K-dimensional (C, d1, ..., D) form "
            f"is not supported), got {tuple(linear_weight.shape)}"
        )
    v, d = linear_weight.shape
    if v == 0 and not sharded:
        raise ValueError(f"{fn}: expected linear_weight with at least one class (row), got {(v, d)}")
    if input.dim() == 0 or input.shape[-1] != d:
        raise ValueError(
            f"{fn}: expected input of shape (..., {d}) (linear_weight is {(v, d)}), got {tuple(input.shape)}"
        )
    if tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(
            f"{fn}: expected target of shape {tuple(input.shape[:-1])} (input's without its last "
            f"dimension), got {tuple(target.shape)}"
        )
    if linear_bias is not None:
        check_floating(fn, "linear_bias", linear_bias)
        if tuple(linear_bias.shape) != (v,):
            name = "V_local" if sharded else "V"
            raise ValueError(
                f"{fn}: expected linear_bias of shape ({name},) = ({v},), got {tuple(linear_bias.shape)}"
            )
    if weight is not None:
        check_floating(fn, "weight", weight)
        if weight.dim() != 1 or (not sharded and weight.shape[0] != v):
            want = "(V,) for the whole vocabulary" if sharded else f"({v},)"
            raise ValueError(f"{fn}: expected per-class weight of shape {want}, got {tuple(weight.shape)}")
    check_same_device(
        fn,
        ("input", input),
        ("linear_weight", linear_weight),
        ("target", target),
        ("linear_bias", linear_bias),
        ("weight", weight),
    )
    ct = compute_dtype(torch.promote_types(input.dtype, linear_weight.dtype))
    return ct, -100 if ignore_index is None else ignore_index


def _exchange(
    fn: str,
    error: Exception | None,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    linear_bias: Tensor | None,
    weight: Tensor | None,
    reduction: Reduction,
    ignore_index: int,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
    ct: torch.dtype | None,
    group: Any,
) -> tuple[int, int]:
    """The one argument exchange of a vocabulary-parallel call (one host sync): every argument that
    changes a collective's shape or count, or the loss all ranks compute together, is compared across
    ranks, so that a mismatch raises the same error on every rank instead of leaving ranks blocked in a
    collective. Returns this rank's first class id and the vocabulary size."""
    rank, _ = _comm.world(group)
    fields: list[Tensor | int] = [0] * 17
    if error is None:
        t = target.reshape(-1)
        counted = t != ignore_index
        grad = torch.is_grad_enabled() and any(
            v is not None and v.requires_grad for v in (input, linear_weight, linear_bias)
        )
        big = torch.iinfo(torch.int64).max
        fields = [
            t.numel(),
            linear_weight.shape[1],
            linear_weight.shape[0],
            _comm.DTYPE_CODES.get(ct, 9),  # type: ignore[arg-type]
            _REDUCTION_CODES[reduction],
            ignore_index,
            _float_bits(label_smoothing),
            _float_bits(z_loss),
            _float_bits(softcap),
            int(linear_bias is not None),
            -1 if weight is None else weight.shape[0],
            int(grad),
            # the label range and a checksum of the targets ride on the exchange: no extra sync
            torch.where(counted, t, big).min() if t.numel() else big,
            torch.where(counted, t, -1).max() if t.numel() else -1,
            counted.sum(),
            t.sum(),
            (t * torch.arange(1, t.numel() + 1, device=t.device)).sum(),
        ]
    rows = _comm.exchange_summary(
        fn, error, fields, _comm.summary_device(input, linear_weight, target), group
    )
    names = {
        0: "number of tokens",
        1: "hidden size D",
        3: "compute dtype (of input and linear_weight)",
        4: "reduction",
        5: "ignore_index",
        6: "label_smoothing",
        7: "z_loss",
        8: "softcap",
        9: "use of linear_bias (a bias on every rank or on none)",
        10: "weight shape",
    }
    for col, what in names.items():
        values = [r[col] for r in rows]
        if len(set(values)) != 1:
            if col in (6, 7, 8):
                values = [None if b == -1 else struct.unpack("<d", struct.pack("<q", b))[0] for b in values]
            elif col == 4:
                values = [next(k for k, c in _REDUCTION_CODES.items() if c == b) for b in values]
            _comm.raise_all(fn, f"expected the same {what} on every rank, got {values} by rank")
    if len({r[11] for r in rows}) != 1:
        needs = [bool(r[11]) for r in rows]
        _comm.raise_all(
            fn,
            "expected gradients needed on every rank or on none (backward runs collectives), got "
            f"{needs} by rank",
        )
    if len({tuple(r[12:17]) for r in rows}) != 1:
        _comm.raise_all(fn, "expected the same target on every rank (every rank holds the same tokens)")
    blocks = [r[2] for r in rows]
    vocab = sum(blocks)
    if vocab == 0:
        _comm.raise_all(
            fn, f"expected at least one class over all ranks, got linear_weight rows {blocks} by rank"
        )
    if rows[0][10] not in (-1, vocab):
        _comm.raise_all(
            fn, f"expected per-class weight of shape ({vocab},) (the whole vocabulary), got ({rows[0][10]},)"
        )
    lo, hi = rows[0][12], rows[0][13]
    if rows[0][14] > 0 and (lo < 0 or hi >= vocab):
        _comm.raise_all(
            fn,
            f"target must hold class indices in [0, {vocab}) or {ignore_index}; got ids in [{lo}, {hi}]",
        )
    return sum(blocks[:rank]), vocab


def _definition_stats(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    pos: Tensor,
    sum_weight: Tensor | None,
    softcap: float | None,
    with_sum: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(lse, v_t, logit_sum)`` per row from the full ``(M, V)`` logits, in plain differentiable ops."""
    v = F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype))  # (M, V) raw logits
    z = v if softcap is None else softcap * torch.tanh(v / softcap)  # (M, V) soft-capped
    lse = torch.logsumexp(z, dim=1)
    v_t = v.gather(1, pos.clamp(0, v.shape[1] - 1)[:, None]).squeeze(1)
    v_t = torch.where(pos >= 0, v_t, 0.0)  # an ignored row has no target
    s = None
    if with_sum:
        s = z.sum(dim=1) if sum_weight is None else z @ sum_weight
    return lse, v_t, s


def _token_losses(
    lse: Tensor,
    v_t: Tensor,
    logit_sum: Tensor | None,
    w_t: Tensor | None,
    weight_total: Tensor | float,
    vocab: int,
    label_smoothing: float,
    z_loss: float,
    softcap: float | None,
) -> tuple[Tensor, Tensor | None]:
    """Per token: the cross-entropy term and the z-loss term (None without z-loss), written once.

    ``lse`` is the log-sum-exp of the (soft-capped) logits, ``v_t`` the raw target logit, ``logit_sum``
    the (class-weighted) sum of the soft-capped logits (label smoothing only), ``w_t`` the target's
    class weight. Ignored tokens are masked by the caller.
    """
    z_t = v_t if softcap is None else softcap * torch.tanh(v_t / softcap)
    ce = lse - z_t
    if w_t is not None:
        ce = w_t * ce
    if label_smoothing > 0:
        assert logit_sum is not None
        # sum_j w_j (lse - z_j): the cross-entropy against the uniform distribution, class-weighted
        ce = (1 - label_smoothing) * ce + (label_smoothing / vocab) * (weight_total * lse - logit_sum)
    return ce, _z_term(lse, z_loss)


def _z_term(lse: Tensor, z_loss: float) -> Tensor | None:
    """PaLM's z-loss of each token, ``z_loss * log(Z)^2``; None without z-loss."""
    return z_loss * lse.square() if z_loss > 0 else None


def _reduction_scales(
    counted: Tensor, w_t: Tensor | None, reduction: Reduction, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Per-token factors ``(a, b)`` of the cross-entropy and z-loss terms: the reduced loss is
    ``sum_i (a_i ce_i + b_i zl_i)`` (``'none'``: the terms themselves), 0 on ignored tokens.

    ``'mean'``: torch's divisor for the cross-entropy, the counted targets' weight sum (their number
    without weights), not clamped; the number of counted tokens for the z-loss. Where nothing is
    counted every factor is 0 (a loss of 0 with a zero gradient, where torch gives 0/0).
    """
    ones = counted.to(dtype)
    if reduction != "mean":
        return ones, ones
    n = ones.sum()
    div = n if w_t is None else torch.where(counted, w_t, 0.0).sum()
    div = torch.where(counted.any(), div, torch.ones_like(div))
    return ones / div, ones / n.clamp_min(1)


def _reduce(
    ce: Tensor, zl: Tensor | None, counted: Tensor, a: Tensor, b: Tensor, reduction: Reduction
) -> tuple[Tensor, Tensor]:
    """The loss and its z-loss part, from the per-token terms and factors."""
    part = torch.where(counted, ce * a, 0.0)  # where, not a product: an ignored token's value is unread
    zpart = torch.zeros_like(part) if zl is None else torch.where(counted, zl * b, 0.0)
    if zl is not None:
        part = part + zpart
    if reduction == "none":
        return part, zpart
    return part.sum(), zpart.sum()


def _linear_cross_entropy(
    fn: str,
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    process_group: Any = None,
    return_z_loss: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """:func:`linear_cross_entropy`, with errors naming ``fn`` (the function or Module the user called)."""
    group = process_group
    args = (input, linear_weight, target, linear_bias, weight, reduction, ignore_index, label_smoothing)
    extra = (z_loss, softcap, chunk_size, return_z_loss)
    if group is None:
        ct, ignore = _check_args(fn, *args, *extra, sharded=False)
        offset, vocab = 0, linear_weight.shape[0]
        t = check_class_indices(fn, "target", target.reshape(-1), vocab, ignore_index=ignore)
    else:
        if not torch.compiler.is_compiling() and not streaming.eligible(
            input, linear_weight, linear_bias, weight
        ):
            raise ValueError(
                f"{fn}: process_group is not supported under torch.func transforms or forward-mode AD "
                "(the vocabulary-parallel path runs collectives with a closed-form backward)"
            )
        error: Exception | None = None
        ct, ignore = None, -100
        try:
            ct, ignore = _check_args(fn, *args, *extra, sharded=True)
        except (TypeError, ValueError) as err:
            error = err
        offset, vocab = _exchange(
            fn, error, input, linear_weight, target, linear_bias, weight, reduction, ignore, label_smoothing,
            z_loss, softcap, ct, group,
        )  # fmt: skip
        assert ct is not None
        t = target.reshape(-1).long()
    out_dtype = output_dtype(input)  # read before autocast is switched off
    eps = float(label_smoothing)
    with no_autocast(input.device):
        x = input.reshape(-1, input.shape[-1]).to(ct)  # (M, D)
        counted = t != ignore  # (M,)
        cw = None if weight is None else weight.detach().to(ct)  # (V,) class weights: no gradient
        w_t = None if cw is None else cw[torch.where(counted, t, 0)]  # (M,) each target's weight
        total_w = vocab if cw is None else cw.sum()
        local_cw = None  # this rank's class weights, for the weighted logit sum of label smoothing
        if cw is not None and eps > 0:
            local_cw = cw[offset : offset + linear_weight.shape[0]]
        pos = torch.where(counted, t - offset, -1)  # (M,) target position in this block; -1: none here
        a, b = _reduction_scales(counted, w_t, reduction, ct)
        terms = (total_w, vocab, eps, z_loss, softcap)

        if group is None and not streaming.eligible(input, linear_weight, linear_bias, weight):
            # torch.compile, torch.func and forward-mode AD see the definition (it holds the logits)
            lse, v_t, s = _definition_stats(x, linear_weight, linear_bias, pos, local_cw, softcap, eps > 0)
            loss, z_part = _reduce(*_token_losses(lse, v_t, s, w_t, *terms), counted, a, b, reduction)
        else:
            loss, z_part = _streamed(
                x, linear_weight, linear_bias, pos, counted, w_t, a, b, local_cw, terms, ct, reduction,
                chunk_size, group,
            )  # fmt: skip
        if reduction == "none":
            loss, z_part = loss.reshape(target.shape), z_part.reshape(target.shape)
    if return_z_loss:
        return loss.to(out_dtype), z_part.detach().to(out_dtype)
    return loss.to(out_dtype)


def _streamed(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None,
    pos: Tensor,
    counted: Tensor,
    w_t: Tensor | None,
    a: Tensor,
    b: Tensor,
    local_cw: Tensor | None,
    terms: tuple,
    ct: torch.dtype,
    reduction: Reduction,
    chunk_size: int | None,
    group: Any,
) -> tuple[Tensor, Tensor]:
    """The loss on the streaming engine (never an ``(M, V)`` tensor): the loss and its z-loss part."""
    m = x.shape[0]
    softcap, with_sum = terms[4], terms[2] > 0
    rows = None
    if group is None and x.device.type == "cpu":
        # only the counted tokens go through the head: on the CPU their positions cost no device sync
        rows = counted.nonzero().squeeze(1)
        x, pos, counted, a, b = (v.index_select(0, rows) for v in (x, pos, counted, a, b))
        w_t = None if w_t is None else w_t.index_select(0, rows)
    n_rows, n_cls = x.shape[0], w.shape[0]
    precompute = (
        reduction != "none"
        and group is None
        and w.dtype == ct
        and (bias is None or bias.dtype == ct)
        and streaming.row_chunk(n_rows, n_cls, ct) >= streaming.PRECOMPUTE_ROWS
    )
    if precompute:
        # a scalar loss with the head's gradient accumulated over token chunks in its own dtype: the
        # gradients are formed in forward from each chunk's logits (three matrix products in all)

        def row_loss(lse: Tensor, v_t: Tensor, s: Tensor, r: slice) -> Tensor:
            wt = None if w_t is None else w_t[r]
            token = _token_losses(lse, v_t, s if with_sum else None, wt, *terms)
            return _reduce(*token, counted[r], a[r], b[r], "none")[0]

        loss, lse = streaming.softmax_loss(
            x, w, pos, row_loss, bias=bias, softcap=softcap, with_sum=with_sum, sum_weight=local_cw,
            chunk_size=chunk_size,
        )  # fmt: skip
        zl = _z_term(lse, terms[3])
        z_part = loss.new_zeros(()) if zl is None else torch.where(counted, zl * b, 0.0).sum()
        return loss, z_part
    # one pass over all rows, recomputing in backward the blocks it cannot keep: those that fit the
    # head's gradient buffer (all of them with n_rows <= D) wait there, and one process keeps at most a
    # sixth of the logits beyond them (the workspace bound of the row chunks above)
    keep = streaming.KEEP_BUDGET
    if group is None:
        keep = min(keep, streaming.row_budget(n_rows, n_cls, ct))
    lse, v_t, s = streaming.softmax_stats(
        x, w, pos, bias=bias, softcap=softcap, with_sum=with_sum, sum_weight=local_cw,
        chunk_size=chunk_size, keep_budget=keep, group=group,
    )  # fmt: skip
    loss, z_part = _reduce(*_token_losses(lse, v_t, s, w_t, *terms), counted, a, b, reduction)
    if rows is not None and reduction == "none":  # back to every token (ignored ones: 0)
        loss = loss.new_zeros(m).index_copy(0, rows, loss)
        z_part = z_part.new_zeros(m).index_copy(0, rows, z_part)
    return loss, z_part


def linear_cross_entropy(
    input: Tensor,
    linear_weight: Tensor,
    target: Tensor,
    *,
    linear_bias: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    chunk_size: int | None = None,
    process_group: Any = None,
    return_z_loss: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Cross-entropy of a linear layer's logits, ``cross_entropy(linear(input, W, b), target)``, streamed.

    The loss of a language-model head (or any classifier over a large vocabulary) without the
    ``(N, V)`` logits: equal to ``F.linear`` followed by ``F.cross_entropy`` (values and gradients,
    class weights, ``ignore_index`` and label smoothing included; torch 2.13's
    ``F.linear_cross_entropy`` at the extra arguments' defaults), plus PaLM's z-loss and Gemma 2's
    logit soft-capping inside the same streamed computation.

    .. math::
        z_{ij} = \operatorname{cap}(x_i \cdot W_j + b_j), \qquad
        \mathrm{lse}_i = \log \sum_{j=1}^{V} e^{z_{ij}}, \qquad
        \operatorname{cap}(a) = c \tanh(a / c)

    .. math::
        \ell_i = (1 - \varepsilon)\, w_{t_i} (\mathrm{lse}_i - z_{i t_i})
            + \frac{\varepsilon}{V} \sum_{j=1}^{V} w_j (\mathrm{lse}_i - z_{ij})
            + \lambda\, \mathrm{lse}_i^2

    for every counted token (:math:`t_i \ne` ``ignore_index``; an ignored token's loss is 0), where
    :math:`x_i` are the rows of ``input``, :math:`W_j, b_j` the rows of ``linear_weight`` and
    ``linear_bias``, :math:`w_j` the class ``weight`` (1 without), :math:`\varepsilon` the
    ``label_smoothing``, :math:`\lambda` the ``z_loss`` and :math:`c` the ``softcap`` (no cap without).
    :math:`\mathrm{lse}_i = \log Z_i` is the log of the softmax normaliser, so the last term is PaLM's
    auxiliary z-loss :math:`\lambda \log^2 Z`.

    Args:
        input: hidden states, shape ``(D,)``, ``(N, D)`` or ``(N, *, D)`` (e.g. ``(batch, sequence, D)``),
            any floating dtype.
        linear_weight: the head's weight ``W``, shape ``(V, D)`` (with ``process_group``: this rank's
            block of rows ``(V_local, D)``), any floating dtype (kept as is: master weights stay in their
            own dtype and are cast block by block).
        target: class indices, shape ``input.shape[:-1]``, any integer dtype, in ``[0, V)`` or equal to
            ``ignore_index``. Checked: ``ValueError`` on CPU, a device-side assertion on an accelerator
            (no host sync), part of the exchanged summary with ``process_group``.
        linear_bias: optional bias ``b``, shape ``(V,)`` (``(V_local,)`` with ``process_group``).
            Default: ``None``.
        weight: optional per-CLASS weights :math:`w`, shape ``(V,)`` (the whole vocabulary, also with
            ``process_group``), torch's meaning as in ``cross_entropy``; no gradient. Default: ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'mean'`` divides the cross-entropy part by
            :math:`\sum w_{t_i}` over the counted tokens (their number without ``weight``), exactly as
            torch, and the z-loss part by the number of counted tokens; a batch with no counted token
            gives 0 with a gradient (torch: NaN). Default: ``'mean'``.
        ignore_index: target value that contributes nothing and is not counted; ``None`` means -100, as
            in torch's ``F.linear_cross_entropy``. Default: ``-100``.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``. Default: ``0.0``.
        z_loss: :math:`\lambda \ge 0`, the weight of the z-loss (PaLM used ``1e-4``). Default: ``0.0``.
        softcap: :math:`c > 0`: logits become ``c * tanh(logits / c)`` before the softmax (Gemma 2 used
            30 for its final logits), or ``None`` (no cap). Default: ``None``.
        chunk_size: vocabulary rows per block of the streamed computation. Default ``None``: chosen so
            that an ``(N, chunk)`` block of logits and a ``(chunk, D)`` block of the weight take at most
            4 MiB each.
        process_group: ``None`` for one process; a ``torch.distributed`` group shards the vocabulary
            over its ranks (Megatron's vocabulary-parallel cross-entropy): rank ``r`` holds the ``r``-th
            contiguous block of rows of ``W`` (and of ``b``), in rank order (uneven blocks allowed, e.g.
            ``torch.tensor_split(W, world_size)[r]``), and every rank passes the same ``input`` and
            ``target``. Every rank then returns the same loss, ``input``'s gradient is the whole
            gradient on every rank and ``W``'s (``b``'s) gradient is this rank's block of the
            single-process one. Every rank must call with the same options and call ``backward()``.
        return_z_loss: also return the z-loss part of the loss (detached, reduced as the loss), for
            logging; it is already included in the loss. Default: ``False``.

    Returns:
        The loss: shape ``target.shape`` for ``'none'``, a scalar otherwise; dtype of ``input`` (float32
        for float16/bfloat16 inside ``torch.autocast``). With ``return_z_loss=True`` the pair
        ``(loss, z_loss_part)``.

    Raises:
        ValueError: if shapes disagree (``linear_weight`` not 2-D, ``input``'s last dimension not ``D``,
            ``target`` not ``input.shape[:-1]``, ``linear_bias`` or ``weight`` not ``(V,)``), a class
            index is out of range, a hyperparameter is out of range, ``reduction`` is unknown or the
            tensors are on different devices; with ``process_group`` on every rank when any rank's
            arguments fail or differ from the others' where they must agree (number of tokens, ``D``,
            dtypes, options, targets, whether gradients are needed), instead of blocking in a collective.
        TypeError: if ``input``, ``linear_weight``, ``linear_bias`` or ``weight`` is not floating,
            ``target`` is not an integer tensor, or an option has the wrong type.

    Note:
        In eager autograd the streaming engine runs: memory beyond the inputs and their gradients is
        ``O(N * chunk + N * D)`` plus the logits kept for backward (one token chunk's, or the first
        vocabulary blocks'): at most the larger of 16 MiB and a sixth of all the logits, and at most
        96 MiB; the weight's
        gradient is written block by block into the buffer that becomes ``linear_weight.grad``, in
        ``linear_weight``'s dtype, each block accumulated over all tokens in float32 (or float64).
        The log-sum-exp is accumulated online in float32 for float16/bfloat16 inputs. Under
        ``torch.compile``, ``torch.func`` transforms and forward-mode AD the definition runs instead
        (``F.linear`` and the terms above: composable, and it holds the ``(N, V)`` logits); with
        ``process_group`` the engine always runs (collectives; no ``torch.func``). Double backward:
        definition only. With ``process_group`` each call makes one host sync (the argument summary).
        Unlike torch's function: no probability targets and no K-dimensional ``linear_weight``
        (both raise), every integer label dtype accepted, inputs ``(N, *, D)`` accepted, and
        ``input`` and ``linear_weight`` may have different floating dtypes.

    Example:
        >>> x, w = torch.randn(6, 8), torch.randn(50, 8)
        >>> y = torch.tensor([0, 3, 49, -100, 7, 7])
        >>> loss = linear_cross_entropy(x, w, y, chunk_size=16)
        >>> torch.allclose(loss, torch.nn.functional.cross_entropy(x @ w.T, y))
        True
        >>> loss, z = linear_cross_entropy(x, w, y, z_loss=1e-4, softcap=30.0, return_z_loss=True)
        >>> bool(z > 0)
        True

    References:
        Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways" (z-loss), JMLR 2023.
        https://arxiv.org/abs/2204.02311
        Gemma Team, "Gemma 2: Improving Open Language Models at a Practical Size" (logit soft-capping),
        2024. https://arxiv.org/abs/2408.00118
        Shoeybi et al., "Megatron-LM" (vocabulary-parallel cross-entropy), 2019.
        https://arxiv.org/abs/1909.08053
        Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models" (Cut Cross-Entropy), ICLR
        2025. https://arxiv.org/abs/2411.09009
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (label smoothing),
        CVPR 2016. https://arxiv.org/abs/1512.00567
    """
    return _linear_cross_entropy(
        "linear_cross_entropy", input, linear_weight, target, linear_bias=linear_bias, weight=weight,
        reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing, z_loss=z_loss,
        softcap=softcap, chunk_size=chunk_size, process_group=process_group, return_z_loss=return_z_loss,
    )  # fmt: skip
