"""Gradient Harmonizing Mechanism losses (Li, Liu, Wang, AAAI 2019): GHM-C and GHM-R.

Each element's loss is weighted by the inverse density of its gradient norm ``g``: elements whose
``g`` falls in a crowded bin (the many easy negatives, and also the outliers) count less. The
histogram is vectorised (bin index by ``floor(g * bins)``, counts by ``scatter_add``): no Python loop
over bins, no host synchronisation, and it batches under ``torch.func.vmap``. The weights carry no
gradient. The moving-average bin counts are explicit state, ``running_counts``, updated in place under
``no_grad`` as ``F.batch_norm`` does, exactly once per call on every path.

Semantics follow the authors' released code: bins of width ``1 / bins`` with ``g = 1`` in the last
bin, only elements with ``label_weight > 0`` counted, weights ``tot / (count * n)`` with ``tot`` the
number of counted elements and ``n`` the number of non-empty bins; ``normalization='all'`` uses the
paper's ``n = bins`` instead. With momentum ``m`` a non-empty bin's count becomes
``m * running + (1 - m) * count`` (running counts start at 0, as the authors' ``acc_sum``). An element
whose ``input`` or ``target`` is not finite (or whose ``g`` is NaN) is counted in no bin and gets a
``NaN`` weight: NaN or inf in gives NaN out.

Each loss is defined once, below; :func:`ghmc_loss` has one fast path, a two-pass chunked kernel for
the reduced loss on the CPU (``losskit._kernels.ghm``), chosen in one place.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .._kernels import ghm as _fast
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_choice,
    check_floating,
    check_interval,
    check_positive,
    check_positive_int,
    check_same_device,
    check_same_shape,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = ["GHMStatistics", "ghmc_loss", "ghmc_statistics", "ghmr_loss", "ghmr_statistics"]

Normalization = Literal["nonempty", "all"]


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
    weight: Tensor | None = None,
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
        if torch._C._are_functorch_transforms_active():
            # torch.func forbids mutating a captured tensor, and under vmap one buffer cannot take
            # one update per batched call: the state is updated outside the transform.
            raise ValueError(
                f"{fn}: running_counts cannot be updated inside a torch.func transform (grad, vmap, "
                "jacrev, ...); call with running_counts=None and momentum=0 there"
            )
    elif momentum > 0:
        raise ValueError(f"{fn}: running_counts must be given when momentum > 0; got None")
    if label_weight is not None:
        if not isinstance(label_weight, Tensor) or not (
            label_weight.is_floating_point() or label_weight.dtype == torch.bool
        ):
            raise TypeError(f"{fn}: label_weight must be a floating-point or bool tensor")
        check_same_shape(fn, "input", input, "label_weight", label_weight)
    check_same_device(
        fn,
        ("input", input),
        ("target", target),
        ("running_counts", running_counts),
        ("label_weight", label_weight),
        ("weight", weight),
    )
    return momentum


def _bin_index(g: Tensor, bins: int, valid: Tensor | None, finite: Tensor | None) -> Tensor:
    """Bin of each gradient norm ``g`` in ``[0, 1]``: ``floor(g * bins)``, ``g = 1`` in the last bin;
    ``bins`` for elements not counted (``valid`` False), ``bins + 1`` where ``g`` is NaN or ``finite``
    is False. int64; the kernel's pass 1 makes the same choices with the same float operations."""
    scaled = (g * bins).clamp(max=bins - 1)  # g >= 0, so truncation below is floor
    if valid is not None:
        scaled = torch.where(valid, scaled, bins)
    bad = torch.isnan(scaled) if finite is None else torch.isnan(scaled) | ~finite
    return torch.where(bad, bins + 1, scaled).long()


def _count(idx: Tensor, bins: int) -> Tensor:
    """Elements per bin ``(bins + 2,)`` (int64, exact at any size): ``scatter_add`` into a fixed-size
    output, no host sync (``bincount`` syncs on CUDA to find its length) and batchable by vmap."""
    flat = idx.reshape(-1)
    zeros = torch.zeros(bins + 2, dtype=torch.int64, device=idx.device)
    return zeros.scatter_add(0, flat, torch.ones_like(flat))


def _bin_weights(
    counts: Tensor,
    *,
    tot: Tensor,
    bins: int,
    momentum: float,
    running_counts: Tensor | None,
    normalization: str,
    update: bool,
) -> tuple[Tensor, Tensor]:
    """Harmonizing weight per bin ``(bins + 2,)``, 0 for elements not counted and NaN for non-finite
    ones, and the density ``(bins,)`` it used; writes ``running_counts`` when ``update``."""
    c = counts[:bins].to(tot.dtype)
    nonempty = c > 0
    density = c
    if running_counts is not None:
        run = running_counts.to(c.dtype)
        density = torch.where(nonempty, momentum * run + (1.0 - momentum) * c, run)
        if update:
            running_counts.copy_(density)
    n = nonempty.sum() if normalization == "nonempty" else bins
    # empty bins hold no element; the clamp only keeps their (discarded) quotient finite.
    beta = torch.where(nonempty, tot / (density.clamp_min(torch.finfo(c.dtype).tiny) * n), 0.0)
    # bin `bins` (not counted) weighs 0, bin `bins + 1` (not finite) NaN
    return torch.cat([beta, beta.new_zeros(1), beta.new_full((1,), float("nan"))]), density


def _tot(label_weight: Tensor | None, like: Tensor, use_sum: bool) -> Tensor:
    """What ``'mean'`` divides by (and the weights' numerator): counted elements, at least 1."""
    if label_weight is None:
        return like.new_full((), float(max(like.numel(), 1)))
    total = label_weight.to(like.dtype).sum() if use_sum else (label_weight > 0).sum().to(like.dtype)
    return total.clamp_min(1.0)  # the authors' max(tot, 1)


def _ghmc_weighted_sum(x: Tensor, y: Tensor, w_el: Tensor) -> Tensor:
    """THE definition of GHM-C's loss given its (constant) element weights, summed."""
    return (F.binary_cross_entropy_with_logits(x, y, reduction="none") * w_el).sum()


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
        running_counts: float tensor ``(bins,)`` of moving-average counts, updated in place once per
            call. Not accepted inside ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``):
            torch.func forbids mutating a captured tensor, and under ``vmap`` one buffer cannot take
            one update per batched call; use ``momentum=0`` without state there.
        label_weight: tensor of ``input``'s shape; only elements with ``label_weight > 0`` are
            counted and weighted (others get weight 0), as in the authors' code.
        normalization: ``'nonempty'`` (authors' code) or ``'all'`` (the paper's :math:`n` = bins).
            Default: ``'nonempty'``.
        weight: optional per-element weights, broadcastable to ``(*)``; they multiply the loss but do
            not enter the histogram.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``tot``, the number of
            counted elements (all elements without ``label_weight``), at least 1.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: if shapes differ, ``bins < 1``, ``momentum`` is outside ``[0, 1)``, ``momentum > 0``
            without ``running_counts``, ``running_counts`` is not ``(bins,)`` or is given inside a
            ``torch.func`` transform, ``normalization`` or ``reduction`` is unknown, ``weight`` does not
            broadcast, or a tensor is on another device.
        TypeError: if ``input``, ``target``, ``weight`` or ``running_counts`` is not floating point,
            ``label_weight`` is neither floating nor bool, or ``bins`` is not an int.

    Note:
        A reduced loss on the CPU takes a fused kernel (``losskit._kernels.ghm``): the histogram, the
        loss and the closed-form gradient :math:`w_i \beta_i (\sigma(x_i) - y_i)` in two chunked
        passes. ``'mean'`` equals the authors' ``sum(beta * bce) / tot``. Bin edges: an element with
        ``g`` exactly on an interior edge ``k/bins`` goes to bin ``floor(g * bins)``, which can differ
        from the authors' float comparisons by one bin at such measure-zero points. An element with a
        non-finite ``input`` or ``target`` has a NaN loss and is in no bin.

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
    momentum = _check_common(
        fn, input, target, bins, momentum, running_counts, label_weight, normalization, weight
    )
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = output_dtype(input)
    with no_autocast(input.device):
        ct = compute_dtype(input.dtype)
        x, y = input.to(ct), target.to(ct)
        wt = None if weight is None else weight.to(ct)
        valid = None if label_weight is None else label_weight > 0
        tot = _tot(label_weight, x, use_sum=False)
        weights = functools.partial(
            _bin_weights,
            tot=tot,
            bins=bins,
            momentum=momentum,
            running_counts=running_counts,
            normalization=normalization,
            update=True,
        )
        if _fast.eligible(x, y, label_weight, wt, reduction):  # the one place the fast path is chosen
            scale = 1.0 / tot if reduction == "mean" else None
            out = _fast.ghmc(x, y, valid, wt, bins, lambda c: weights(c)[0], scale, _ghmc_weighted_sum)
        else:
            with torch.no_grad():
                xd, yd = x.detach(), y.detach()
                finite = torch.isfinite(xd) & torch.isfinite(yd)
                idx = _bin_index((torch.sigmoid(xd) - yd).abs(), bins, valid, finite)
                w_el = weights(_count(idx, bins))[0][idx]
            bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
            out = reduce_loss(bce * w_el, reduction, wt, divisor=tot)
    return out.to(dtype)


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
        counts = _count(_bin_index(g, bins, valid, torch.isfinite(x) & torch.isfinite(y)), bins)
        tot = _tot(label_weight, x, use_sum=False)
        beta, density = _bin_weights(
            counts,
            tot=tot,
            bins=bins,
            momentum=momentum,
            running_counts=running_counts,
            normalization=normalization,
            update=False,
        )
        edges = torch.arange(bins + 1, dtype=ct, device=x.device) / bins
    return GHMStatistics(edges, counts[:bins].to(ct), density, beta[:bins], g)


def _gradient_norm_r(d: Tensor, mu: float) -> Tensor:
    """GHM-R's ``g = |d| / sqrt(d^2 + mu^2)``; ``hypot`` neither underflows (``mu = 1e-30``) nor
    overflows, so ``g`` is in ``[0, 1)`` for finite ``d`` and NaN for infinite ``d``."""
    return d.abs() / torch.hypot(d, d.new_full((), mu))


def _asl1(d: Tensor, mu: float) -> Tensor:
    """ASL1 ``sqrt(d^2 + mu^2) - mu``, written ``d * d / (sqrt(d^2 + mu^2) + mu)``: no cancellation
    for ``|d| << mu`` and no overflow of ``d^2``; smooth at 0 (second derivative ``1/mu``)."""
    return d * (d / (torch.hypot(d, d.new_full((), mu)) + mu))


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
        mu: ASL1 smoothness ``> 0`` (any positive float, ``1e-30`` included). Default: ``0.02`` (the
            paper's).
        bins: number of bins ``>= 1``. Default: ``10``.
        momentum: ``m`` in ``[0, 1)``; needs ``running_counts``. Default: ``0.0``.
        running_counts: float tensor ``(bins,)`` of moving-average counts, updated in place once per
            call (not inside ``torch.func`` transforms, as in :func:`ghmc_loss`).
        label_weight: tensor of ``input``'s shape; elements with ``label_weight > 0`` are counted.
        normalization: ``'nonempty'`` (authors' code) or ``'all'`` (the paper's). Default: ``'nonempty'``.
        weight: optional per-element weights, broadcastable to ``(*)``; not in the histogram.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``tot``: the sum of
            ``label_weight`` (as the authors' GHM-R), the number of elements without it; at least 1.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 inside
        ``torch.autocast``).

    Raises:
        ValueError: as :func:`ghmc_loss`, and if ``mu <= 0``.
        TypeError: as :func:`ghmc_loss`.

    Note:
        Computed as :math:`d^2 / (\sqrt{d^2 + \mu^2} + \mu)` with ``hypot``: exact to rounding for
        residuals far below ``mu`` and for ``mu`` far below the residuals. A residual that is not
        finite gives NaN.

    Example:
        >>> ghmr_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]), bins=2, reduction="none")
        tensor([0.0000, 0.9802])

    References:
        Li, Liu, Wang, "Gradient Harmonized Single-stage Detector", AAAI 2019.
        https://arxiv.org/abs/1811.05181
    """
    fn = "ghmr_loss"
    mu = check_positive(fn, "mu", mu)
    momentum = _check_common(
        fn, input, target, bins, momentum, running_counts, label_weight, normalization, weight
    )
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    dtype = output_dtype(input)
    with no_autocast(input.device):
        ct = compute_dtype(input.dtype)
        d = input.to(ct) - target.to(ct)
        valid = None if label_weight is None else label_weight > 0
        tot = _tot(label_weight, d, use_sum=True)
        with torch.no_grad():
            idx = _bin_index(_gradient_norm_r(d.detach(), mu), bins, valid, None)
            beta, _ = _bin_weights(
                _count(idx, bins),
                tot=tot,
                bins=bins,
                momentum=momentum,
                running_counts=running_counts,
                normalization=normalization,
                update=True,
            )
            w_el = beta[idx]
        wt = None if weight is None else weight.to(ct)
        out = reduce_loss(_asl1(d, mu) * w_el, reduction, wt, divisor=tot)
    return out.to(dtype)


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
        g = _gradient_norm_r(d, mu)
        counts = _count(_bin_index(g, bins, valid, None), bins)
        tot = _tot(label_weight, d, use_sum=True)
        beta, density = _bin_weights(
            counts,
            tot=tot,
            bins=bins,
            momentum=momentum,
            running_counts=running_counts,
            normalization=normalization,
            update=False,
        )
        edges = torch.arange(bins + 1, dtype=ct, device=d.device) / bins
    return GHMStatistics(edges, counts[:bins].to(ct), density, beta[:bins], g)
