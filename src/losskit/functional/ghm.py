"""Gradient Harmonizing Mechanism losses (Li, Liu, Wang, AAAI 2019): GHM-C and GHM-R.

Each element's loss is weighted by the inverse density of its gradient norm ``g``: elements whose
``g`` falls in a crowded bin (the many easy negatives, and also the outliers) count less. The
histogram is vectorised (bin index by ``floor(g * bins)``, counts by ``index_add_``): no Python loop
over bins and no host synchronisation. The weights carry no gradient. The moving-average bin counts
are explicit state, ``running_counts``, updated in place under ``no_grad`` as ``F.batch_norm`` does.

Semantics follow the authors' released code: bins of width ``1 / bins`` with ``g = 1`` in the last
bin, only elements with ``label_weight > 0`` counted, weights ``tot / (count * n)`` with ``tot`` the
number of counted elements and ``n`` the number of non-empty bins; ``normalization='all'`` uses the
paper's ``n = bins`` instead. With momentum ``m`` a non-empty bin's count becomes
``m * running + (1 - m) * count`` (running counts start at 0, as the authors' ``acc_sum``).
"""

from __future__ import annotations

import os
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_choice,
    check_floating,
    check_interval,
    check_positive,
    check_positive_int,
    check_same_shape,
    compute_dtype,
)

__all__ = ["GHMStatistics", "ghmc_loss", "ghmc_statistics", "ghmr_loss", "ghmr_statistics"]

Normalization = Literal["nonempty", "all"]

# Elements per chunk of the fused GHM-C path: its float32 temporaries stay in the L2/L3 caches.
_CHUNK = 1 << 17
# From this many elements the fused GHM-C runs two torch.compile'd passes when a compiler works.
_COMPILE_MIN_NUMEL = 1 << 20
_compiled: dict[str, Any] = {}


def _compiled_kernel(name: str, fn: Any) -> Any:
    """``torch.compile(fn)``, made once per process; ``None`` when disabled (``LOSSKIT_COMPILE=0``)."""
    if name not in _compiled:
        _compiled[name] = (
            None if os.environ.get("LOSSKIT_COMPILE", "1") == "0" else torch.compile(fn, dynamic=True)
        )
    return _compiled[name]


def _ghmc_pass1(x: Tensor, y: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    p = torch.sigmoid(x)
    idx = ((p - y).abs() * bins).clamp_max(bins - 1).to(torch.int32)
    return p, idx


def _ghmc_pass2(
    x: Tensor, y: Tensor, p: Tensor, idx: Tensor, beta: Tensor, wt: Tensor | None
) -> tuple[Tensor, Tensor]:
    w_el = beta[idx]
    if wt is not None:
        w_el = w_el * wt
    ce = torch.relu(x) - torch.log(torch.maximum(p, 1.0 - p)) - x * y
    return (ce * w_el).sum(), (p - y) * w_el


class GHMStatistics(NamedTuple):
    """Gradient-density statistics of one batch, for plotting.

    Attributes:
        edges: bin edges, shape ``(bins + 1,)`` (``0, 1/bins, ..., 1``).
        counts: counted elements per bin in this batch, shape ``(bins,)``.
        density: the counts the weights use (``running_counts`` after the momentum update, or
            ``counts`` without momentum), shape ``(bins,)``.
        bin_weights: the harmonizing weight of an element in each bin, shape ``(bins,)`` (0 for empty
            bins).
        gradient_norm: ``g`` of every element, the shape of ``input``.
    """

    edges: Tensor
    counts: Tensor
    density: Tensor
    bin_weights: Tensor
    gradient_norm: Tensor


def _check_common(
    fn: str,
    input: Tensor,
    target: Tensor,
    bins: int,
    momentum: float,
    running_counts: Tensor | None,
    label_weight: Tensor | None,
    normalization: str,
) -> float:
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_same_shape(fn, "input", input, "target", target)
    check_positive_int(fn, "bins", bins)
    momentum = check_interval(fn, "momentum", momentum, 0.0, 1.0, high_open=True)
    check_choice(fn, "normalization", normalization, ("nonempty", "all"))
    if running_counts is not None:
        check_floating(fn, "running_counts", running_counts)
        if tuple(running_counts.shape) != (bins,):
            raise ValueError(
                f"{fn}: expected running_counts of shape ({bins},), got {tuple(running_counts.shape)}"
            )
    elif momentum > 0:
        raise ValueError(f"{fn}: running_counts must be given when momentum > 0; got None")
    if label_weight is not None:
        if not isinstance(label_weight, Tensor) or not (
            label_weight.is_floating_point() or label_weight.dtype == torch.bool
        ):
            raise TypeError(f"{fn}: label_weight must be a floating-point or bool tensor")
        check_same_shape(fn, "input", input, "label_weight", label_weight)
    return momentum


def _bin_index(d: Tensor, bins: int, valid: Tensor | None) -> Tensor:
    """Bin of each gradient norm ``g = |d|`` in ``[0, 1]``: ``floor(g * bins)``, ``g = 1`` in the last
    bin, elements that are not counted in the overflow bin ``bins``. int32 (half the bytes of int64)."""
    # g >= 0, so truncation is floor; clamping the float first is the vectorised way.
    idx = d.abs().mul_(bins).clamp_max_(bins - 1).to(torch.int32)
    if valid is not None:
        idx.masked_fill_(~valid, bins)
    return idx


def _count(idx: Tensor, bins: int, dtype: torch.dtype) -> Tensor:
    flat = idx.reshape(-1)
    if flat.device.type == "cpu":
        return torch.bincount(flat, minlength=bins + 1).to(dtype)  # the fastest on CPU
    # index_add_ has a fixed-size output: unlike bincount on CUDA it never syncs to find the max.
    return torch.zeros(bins + 1, dtype=dtype, device=idx.device).index_add_(
        0, flat, torch.ones((), dtype=dtype, device=idx.device).expand(flat.shape[0])
    )


def _bin_weights(
    counts: Tensor,
    tot: Tensor,
    bins: int,
    momentum: float,
    running_counts: Tensor | None,
    normalization: str,
    update: bool,
) -> tuple[Tensor, Tensor]:
    """Harmonizing weight per bin (with 0 for the overflow bin) and the density it used."""
    counts = counts[:bins]
    nonempty = counts > 0
    density = counts
    if running_counts is not None:
        run = running_counts.to(counts.dtype)
        density = torch.where(nonempty, momentum * run + (1.0 - momentum) * counts, run)
        if update:
            running_counts.copy_(density)
    n = nonempty.sum() if normalization == "nonempty" else bins
    # empty bins hold no element; the clamp only keeps their (discarded) quotient finite.
    beta = torch.where(nonempty, tot / (density.clamp_min(torch.finfo(counts.dtype).tiny) * n), 0.0)
    return torch.cat([beta, beta.new_zeros(1)]), density


def _tot(label_weight: Tensor | None, numel: int, dtype: torch.dtype, device, use_sum: bool) -> Tensor:
    if label_weight is None:
        return torch.tensor(float(max(numel, 1)), dtype=dtype, device=device)
    total = label_weight.to(dtype).sum() if use_sum else (label_weight > 0).sum().to(dtype)
    return total.clamp_min(1.0)  # the authors' max(tot, 1)


def _bce(x: Tensor, y: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(x, y, reduction="none")


class _AttachGradient(torch.autograd.Function):
    """Returns a loss computed without autograd and gives ``input`` a gradient computed with it: the
    buffer (scaled in place on the first plain backward) or ``recompute(x)`` otherwise."""

    @staticmethod
    def forward(ctx, x: Tensor, value: Tensor, buffer: Tensor, recompute) -> Tensor:
        ctx.save_for_backward(x)
        ctx.buffer, ctx.recompute = buffer, recompute
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (x,) = ctx.saved_tensors
        buf, ctx.buffer = ctx.buffer, None
        if buf is not None and not torch.is_grad_enabled():
            return buf.mul_(grad_output), None, None, None
        return ctx.recompute(x) * grad_output, None, None, None


def _ghmc_fused(
    x: Tensor,
    y: Tensor,
    valid: Tensor | None,
    wt: Tensor | None,
    tot: Tensor,
    bins: int,
    momentum: float,
    running_counts: Tensor | None,
    normalization: str,
    reduction: str,
) -> Tensor:
    n = x.numel()
    xf, yf = x.detach().reshape(-1), y.reshape(-1)
    vf = None if valid is None else valid.reshape(-1)
    wf = None if wt is None else wt.reshape(-1)
    buf = value = None
    passes = (_compiled_kernel("ghmc_pass1", _ghmc_pass1), _compiled_kernel("ghmc_pass2", _ghmc_pass2))
    if n >= _COMPILE_MIN_NUMEL and None not in passes:
        try:
            with torch.no_grad():
                p, idx = passes[0](xf, yf, bins)
                if vf is not None:
                    idx.masked_fill_(~vf, bins)
                counts = _count(idx, bins, x.dtype)
                beta, _ = _bin_weights(
                    counts, tot, bins, momentum, running_counts, normalization, update=True
                )
                beta_scaled = beta / tot if reduction == "mean" else beta
                value, buf = passes[1](xf, yf, p, idx, beta_scaled, wf)
                del p, idx
        except Exception:  # no working compiler here: remember it and stay eager
            _compiled["ghmc_pass1"] = _compiled["ghmc_pass2"] = None
            buf = value = None
    if buf is None:
        buf, value, beta_scaled = _ghmc_eager(
            xf, yf, vf, wf, tot, bins, momentum, running_counts, normalization, reduction
        )
    ys, vs, ws = y.detach(), valid, None if wt is None else wt.detach()

    def recompute(xx: Tensor) -> Tensor:
        with torch.no_grad():
            idx = _bin_index(torch.sigmoid(xx.detach()) - ys, bins, vs)
            w_el = beta_scaled.index_select(0, idx.reshape(-1)).view_as(xx)
            if ws is not None:
                w_el = w_el * ws
        return (torch.sigmoid(xx) - ys) * w_el

    return _AttachGradient.apply(x, value, buf.view_as(x), recompute)


def _ghmc_eager(
    xf: Tensor,
    yf: Tensor,
    vf: Tensor | None,
    wf: Tensor | None,
    tot: Tensor,
    bins: int,
    momentum: float,
    running_counts: Tensor | None,
    normalization: str,
    reduction: str,
) -> tuple[Tensor, Tensor, Tensor]:
    n = xf.numel()
    buf = torch.empty_like(xf)  # sigmoid(x) after pass 1, the gradient after pass 2
    counts = xf.new_zeros(bins + 1)
    with torch.no_grad():
        for i in range(0, n, _CHUNK):  # pass 1: sigmoid and the histogram of g = |sigmoid(x) - y|
            s = slice(i, i + _CHUNK)
            p = torch.sigmoid(xf[s], out=buf[s])
            counts += _count(_bin_index(p - yf[s], bins, None if vf is None else vf[s]), bins, xf.dtype)
        beta, _ = _bin_weights(counts, tot, bins, momentum, running_counts, normalization, update=True)
        beta_scaled = beta / tot if reduction == "mean" else beta
        parts = []
        for i in range(0, n, _CHUNK):  # pass 2: BCE and its closed-form gradient, weighted by bin
            s = slice(i, i + _CHUNK)
            xc, yc, p = xf[s], yf[s], buf[s]
            d = p - yc  # d BCE / dx
            w_el = beta_scaled.index_select(0, _bin_index(d, bins, None if vf is None else vf[s]))
            if wf is not None:
                w_el = w_el * wf[s]
            # BCE = softplus(x) - x y, softplus(x) = relu(x) - log(max(p, 1 - p)): no log of a small
            # rounded probability, and cheaper than softplus's exp + log1p (p is already there).
            ce = torch.addcmul(
                torch.relu(xc).sub_(torch.maximum(p, torch.rsub(p, 1.0)).log_()), xc, yc, value=-1.0
            )
            parts.append(torch.dot(ce, w_el))
            torch.mul(d, w_el, out=buf[s])
        value = torch.stack(parts).sum() if parts else xf.new_zeros(())
    return buf, value, beta_scaled


def ghmc_loss(
    input: Tensor,
    target: Tensor,
    *,
    bins: int = 10,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
    label_weight: Tensor | None = None,
    normalization: Normalization = "nonempty",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""GHM-C: binary cross-entropy with logits weighted by the inverse density of the gradient norm.

    A drop-in for the focal loss of one-stage detectors that down-weights both the easy examples and
    the outliers. With ``bins=1`` and ``momentum=0`` it is the mean binary cross-entropy.

    .. math::
        \ell_i = w_i\, \beta_i\, \mathrm{BCE}(x_i, y_i), \qquad
        g_i = |\sigma(x_i) - y_i|, \qquad \beta_i = \frac{\mathrm{tot}}{R_{b(g_i)}\, n}

    where :math:`x` is ``input`` (logits), :math:`y` the ``target``, :math:`b(g)` the bin of
    :math:`g` among ``bins`` of width ``1/bins``, :math:`R_b` the number of counted elements in bin
    :math:`b` (or its moving average), :math:`n` the number of non-empty bins (``'nonempty'``) or
    ``bins`` (``'all'``), :math:`\mathrm{tot}` the number of counted elements and :math:`w` the
    ``weight``. :math:`\beta` carries no gradient.

    Args:
        input: logits, any shape ``(*)``; usually ``(N, C)``.
        target: binary labels (or probabilities), same shape as ``input``.
        bins: number of gradient-norm bins ``>= 1``. Default: ``10`` (the paper's 30 with momentum
            0.75 were its best; the authors' config ships 30 and 0.75, their default is 10 and 0).
        momentum: ``m`` in ``[0, 1)`` of the moving-average counts; needs ``running_counts``.
            Default: ``0.0``.
        running_counts: float tensor ``(bins,)`` of moving-average counts, updated in place.
        label_weight: tensor of ``input``'s shape; only elements with ``label_weight > 0`` are
            counted and weighted (others get weight 0), as in the authors' code.
        normalization: ``'nonempty'`` (authors' code) or ``'all'`` (the paper's :math:`n` = bins).
            Default: ``'nonempty'``.
        weight: optional per-element weights, broadcastable to ``(*)``; they multiply the loss but do
            not enter the histogram.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``tot``, the number of
            counted elements (all elements without ``label_weight``), at least 1.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if shapes differ, ``bins < 1``, ``momentum`` is outside ``[0, 1)``, ``momentum > 0``
            without ``running_counts``, ``running_counts`` is not ``(bins,)``, ``normalization`` or
            ``reduction`` is unknown, or ``weight`` does not broadcast.
        TypeError: if ``input``, ``target``, ``weight`` or ``running_counts`` is not floating point,
            ``label_weight`` is neither floating nor bool, or ``bins`` is not an int.

    Note:
        For a reduced loss with a gradient only for ``input``, a fused path computes the histogram,
        the loss and the closed-form gradient :math:`w_i \beta_i (\sigma(x_i) - y_i)` in two chunked
        passes; ``backward`` scales that buffer in place. ``'mean'`` equals the authors'
        ``sum(beta * bce) / tot``. Bin edges: an element with ``g`` exactly on an interior edge
        ``k/bins`` goes to bin ``floor(g * bins)``, which can differ from the authors' float
        comparisons by one bin at such measure-zero points.

    Example:
        >>> input = torch.tensor([[4.0, -4.0], [0.0, -4.0]])
        >>> target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> ghmc_loss(input, target, bins=2, reduction="none")
        tensor([[0.0121, 0.0121],
                [1.3863, 0.0121]])

    References:
        Li, Liu, Wang, "Gradient Harmonized Single-stage Detector", AAAI 2019.
        https://arxiv.org/abs/1811.05181
    """
    fn = "ghmc_loss"
    momentum = _check_common(fn, input, target, bins, momentum, running_counts, label_weight, normalization)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = input.dtype
    ct = compute_dtype(dtype)
    x, y = input.to(ct), target.to(ct)
    wt = None if weight is None else weight.to(ct)
    valid = None if label_weight is None else label_weight > 0
    tot = _tot(label_weight, x.numel(), ct, x.device, use_sum=False)
    fused = (
        reduction != "none"
        and not torch.compiler.is_compiling()
        and not target.requires_grad
        and (wt is None or (not wt.requires_grad and wt.shape == x.shape))
        and torch.is_grad_enabled()
        and x.requires_grad
    )
    if fused:
        out = _ghmc_fused(
            x.contiguous(),
            y.contiguous(),
            None if valid is None else valid.contiguous(),
            None if wt is None else wt.contiguous(),
            tot,
            bins,
            momentum,
            running_counts,
            normalization,
            reduction,
        )
        return out.to(dtype)
    with torch.no_grad():
        idx = _bin_index(torch.sigmoid(x) - y, bins, valid)
        beta, _ = _bin_weights(
            _count(idx, bins, ct), tot, bins, momentum, running_counts, normalization, True
        )
        w_el = beta.index_select(0, idx.reshape(-1)).view_as(x)
    loss = reduce_loss(_bce(x, y) * w_el, reduction, wt, divisor=tot)
    return loss.to(dtype)


def ghmc_statistics(
    input: Tensor,
    target: Tensor,
    *,
    bins: int = 10,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
    label_weight: Tensor | None = None,
    normalization: Normalization = "nonempty",
) -> GHMStatistics:
    """The gradient-density statistics :func:`ghmc_loss` would use, without updating any state.

    Arguments as in :func:`ghmc_loss`; ``running_counts`` is read, never written. For plotting the
    gradient-norm density and the harmonizing weights.

    Example:
        >>> stats = ghmc_statistics(torch.tensor([4.0, -4.0, 0.0]), torch.tensor([1.0, 0.0, 1.0]), bins=2)
        >>> stats.counts, stats.bin_weights
        (tensor([2., 1.]), tensor([0.7500, 1.5000]))
    """
    fn = "ghmc_statistics"
    momentum = _check_common(fn, input, target, bins, momentum, running_counts, label_weight, normalization)
    with torch.no_grad():
        ct = compute_dtype(input.dtype)
        x, y = input.detach().to(ct), target.detach().to(ct)
        valid = None if label_weight is None else label_weight > 0
        g = (torch.sigmoid(x) - y).abs()
        counts = _count(_bin_index(g, bins, valid), bins, ct)
        tot = _tot(label_weight, x.numel(), ct, x.device, use_sum=False)
        beta, density = _bin_weights(counts, tot, bins, momentum, running_counts, normalization, False)
        edges = torch.arange(bins + 1, dtype=ct, device=x.device) / bins
    return GHMStatistics(edges, counts[:bins], density, beta[:bins], g)


def _asl1(d: Tensor, mu: float) -> Tensor:
    return torch.sqrt(d * d + mu * mu) - mu


def ghmr_loss(
    input: Tensor,
    target: Tensor,
    *,
    mu: float = 0.02,
    bins: int = 10,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
    label_weight: Tensor | None = None,
    normalization: Normalization = "nonempty",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""GHM-R: the authenticated smooth L1 (ASL1) loss weighted by the inverse gradient density.

    For box regression in one-stage detectors, in place of Smooth L1.

    .. math::
        \ell_i = w_i\, \beta_i \left(\sqrt{d_i^2 + \mu^2} - \mu\right), \qquad
        g_i = \frac{|d_i|}{\sqrt{d_i^2 + \mu^2}}, \qquad \beta_i = \frac{\mathrm{tot}}{R_{b(g_i)}\, n}

    where :math:`d = x - y` is ``input - target``, :math:`\mu` the ASL1 smoothness and the rest as in
    :func:`ghmc_loss` (:math:`g \in [0, 1)`, so the last bin is ``[1 - 1/bins, 1)``).

    Args:
        input: predicted regression targets, any shape ``(*)``; usually ``(N, 4)``.
        target: regression targets, same shape as ``input``.
        mu: ASL1 smoothness ``> 0``. Default: ``0.02`` (the paper's).
        bins: number of bins ``>= 1``. Default: ``10``.
        momentum: ``m`` in ``[0, 1)``; needs ``running_counts``. Default: ``0.0``.
        running_counts: float tensor ``(bins,)`` of moving-average counts, updated in place.
        label_weight: tensor of ``input``'s shape; elements with ``label_weight > 0`` are counted.
        normalization: ``'nonempty'`` (authors' code) or ``'all'`` (the paper's). Default: ``'nonempty'``.
        weight: optional per-element weights, broadcastable to ``(*)``; not in the histogram.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``tot``: the sum of
            ``label_weight`` (as the authors' GHM-R), the number of elements without it; at least 1.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: as :func:`ghmc_loss`, and if ``mu <= 0``.
        TypeError: as :func:`ghmc_loss`.

    Example:
        >>> ghmr_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]), bins=2, reduction="none")
        tensor([0.0000, 0.9802])

    References:
        Li, Liu, Wang, "Gradient Harmonized Single-stage Detector", AAAI 2019.
        https://arxiv.org/abs/1811.05181
    """
    fn = "ghmr_loss"
    mu = check_positive(fn, "mu", mu)
    momentum = _check_common(fn, input, target, bins, momentum, running_counts, label_weight, normalization)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = input.dtype
    ct = compute_dtype(dtype)
    d = input.to(ct) - target.to(ct)
    valid = None if label_weight is None else label_weight > 0
    tot = _tot(label_weight, d.numel(), ct, d.device, use_sum=True)
    with torch.no_grad():
        g = d.abs() / torch.sqrt(d * d + mu * mu)
        idx = _bin_index(g, bins, valid)
        beta, _ = _bin_weights(
            _count(idx, bins, ct), tot, bins, momentum, running_counts, normalization, True
        )
        w_el = beta.index_select(0, idx.reshape(-1)).view_as(d)
    wt = None if weight is None else weight.to(ct)
    return reduce_loss(_asl1(d, mu) * w_el, reduction, wt, divisor=tot).to(dtype)


def ghmr_statistics(
    input: Tensor,
    target: Tensor,
    *,
    mu: float = 0.02,
    bins: int = 10,
    momentum: float = 0.0,
    running_counts: Tensor | None = None,
    label_weight: Tensor | None = None,
    normalization: Normalization = "nonempty",
) -> GHMStatistics:
    """The gradient-density statistics :func:`ghmr_loss` would use, without updating any state.

    Example:
        >>> ghmr_statistics(torch.tensor([0.0, 1.0, 2.0]), torch.zeros(3), bins=2).counts
        tensor([1., 2.])
    """
    fn = "ghmr_statistics"
    mu = check_positive(fn, "mu", mu)
    momentum = _check_common(fn, input, target, bins, momentum, running_counts, label_weight, normalization)
    with torch.no_grad():
        ct = compute_dtype(input.dtype)
        d = input.detach().to(ct) - target.detach().to(ct)
        valid = None if label_weight is None else label_weight > 0
        g = d.abs() / torch.sqrt(d * d + mu * mu)
        counts = _count(_bin_index(g, bins, valid), bins, ct)
        tot = _tot(label_weight, d.numel(), ct, d.device, use_sum=True)
        beta, density = _bin_weights(counts, tot, bins, momentum, running_counts, normalization, False)
        edges = torch.arange(bins + 1, dtype=ct, device=d.device) / bins
    return GHMStatistics(edges, counts[:bins], density, beta[:bins], g)
