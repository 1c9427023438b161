"""Classification losses with torch's names: binary cross-entropy on logits and (softmax) cross-entropy.

Each function has the signature of its namesake in ``torch.nn.functional`` (torch 2.13) and torch's
values and gradients: the definition of each is torch's own fused, differentiable op
(``F.binary_cross_entropy_with_logits``, ``F.cross_entropy``), with torch's divisors. losskit adds the
argument checks (shapes, dtypes, devices, class-index ranges), float32 computation for
float16/bfloat16 inputs and one deliberate difference: an empty batch, or a batch whose class-index
targets are all ``ignore_index``, reduces to ``0`` with a gradient instead of ``NaN``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss, reject_legacy_reduction
from ._validation import (
    check_class_indices,
    check_floating,
    check_integer,
    check_interval,
    check_same_device,
    check_same_shape,
    check_tensor,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy"]


def _bce(
    fn: str,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str,
    pos_weight: Tensor | None,
) -> Tensor:
    check_floating(fn, "input", input)
    check_floating(fn, "target", target)
    check_same_shape(fn, "input", input, "target", target)
    check_reduction(fn, reduction)
    check_weight(fn, weight, input.shape)
    if pos_weight is not None:
        check_floating(fn, "pos_weight", pos_weight)
        try:
            ok = torch.broadcast_shapes(tuple(pos_weight.shape), tuple(input.shape)) == tuple(input.shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"{fn}: pos_weight must broadcast to the input shape {tuple(input.shape)}; "
                f"got pos_weight of shape {tuple(pos_weight.shape)}"
            )
    check_same_device(
        fn, ("input", input), ("target", target), ("weight", weight), ("pos_weight", pos_weight)
    )
    out_dtype = output_dtype(input)
    ct = compute_dtype(input.dtype)
    with no_autocast(input.device):
        x, y = input.to(ct), target.to(ct)
        w = None if weight is None else weight.to(ct)
        pw = None if pos_weight is None else pos_weight.to(ct)
        if input.numel() > 0:
            # torch's kernel applies weight and reduction itself: one call, no extra pass.
            out = F.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, reduction=reduction)
        else:  # empty: 0 with a graph, where torch's 'mean' gives 0/0
            out = reduce_loss(
                F.binary_cross_entropy_with_logits(x, y, w, pos_weight=pw, reduction="none"), reduction
            )
    return out.to(out_dtype)


def _cross_entropy(
    fn: str,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    check_floating(fn, "input", input)
    check_tensor(fn, "target", target)
    check_reduction(fn, reduction)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{fn}: ignore_index must be an int; got {type(ignore_index).__name__}")
    eps = check_interval(fn, "label_smoothing", label_smoothing, 0.0, 1.0)
    if input.dim() == 0:
        raise ValueError(f"{fn}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got ()")
    num_classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    probabilities = target.is_floating_point()
    if probabilities:
        check_same_shape(fn, "input", input, "target", target)
        if ignore_index >= 0:  # torch's own condition: a negative ignore_index is accepted, unused
            raise ValueError(
                f"{fn}: ignore_index is not supported for probability (floating-point) targets, as in "
                f"torch; got ignore_index={ignore_index}"
            )
    else:
        check_integer(fn, "target", target)
        want = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
        if tuple(target.shape) != want:
            raise ValueError(
                f"{fn}: expected target of shape {want} (input's without the class dim), "
                f"got {tuple(target.shape)}"
            )
    if weight is not None:
        check_floating(fn, "weight", weight)
        if tuple(weight.shape) != (num_classes,):
            raise ValueError(
                f"{fn}: expected per-class weight of shape ({num_classes},), got {tuple(weight.shape)}"
            )
    check_same_device(fn, ("input", input), ("target", target), ("weight", weight))
    if not probabilities:
        # free on CPU, a device-side assertion elsewhere; every integer dtype, returned as int64
        target = check_class_indices(fn, "target", target, num_classes, ignore_index=ignore_index)
    out_dtype = output_dtype(input)
    ct = compute_dtype(input.dtype)
    with no_autocast(input.device):
        x = input.to(ct)
        w = None if weight is None else weight.to(ct)
        if probabilities:
            y = target.to(ct)
            if reduction == "mean" and x.numel() == 0:  # empty: 0 with a graph, not torch's 0/0
                out = F.cross_entropy(x, y, w, label_smoothing=eps, reduction="sum")
            else:
                out = F.cross_entropy(x, y, w, label_smoothing=eps, reduction=reduction)
        else:
            out = F.cross_entropy(
                x, target, w, ignore_index=ignore_index, label_smoothing=eps, reduction=reduction
            )
            if reduction == "mean":
                # torch's mean, divisor untouched (a zero or negative weight sum divides as in
                # torch); only where no target is counted (all ignored, or none at all) torch's
                # 0/0 becomes 0. The gradient through the unselected branch is exactly 0.
                counted = (target != ignore_index).any()
                out = torch.where(counted, out, 0.0)
    return out.to(out_dtype)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: None = None,
    reduce: None = None,
    reduction: Reduction = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    r"""Binary cross-entropy on logits (sigmoid and log loss in one stable step), as torch's.

    The loss of logistic regression and of every independent (multi-label) sigmoid classifier.

    .. math::
        \ell_i = -w_i \left[ c\, y_i \log \sigma(x_i) + (1 - y_i) \log (1 - \sigma(x_i)) \right]
               = w_i \left[ (1 - y_i)\, x_i + (1 + (c - 1) y_i)\, \mathrm{softplus}(-x_i) \right]

    where :math:`x` is ``input`` (logits), :math:`y` the ``target`` probability, :math:`c` the
    ``pos_weight`` and :math:`w` the ``weight``. The right-hand form is the log-sum-exp (softplus) form
    torch evaluates: it never takes the log of a rounded probability, so logits of any size give finite
    values and gradients.

    Args:
        input: logits, any shape ``(*)``.
        target: probabilities of the positive class (usually 0 or 1), same shape as ``input``.
        weight: optional per-element weights :math:`w`, broadcastable to ``(*)``. Default: ``None``.
        size_average: torch's deprecated argument; must be ``None``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements
            (with or without ``weight``, as torch). Default: ``'mean'``.
        pos_weight: optional weight :math:`c` of the positive term, broadcastable to ``(*)``; usually
            ``(C,)`` for ``C`` labels, e.g. ``num_negatives / num_positives``. Default: ``None`` (1).

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 for
        float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if shapes differ, ``weight`` or ``pos_weight`` does not broadcast, ``reduction``
            is unknown or the tensors are on different devices.
        TypeError: if ``input``, ``target``, ``weight`` or ``pos_weight`` is not floating point, or
            ``size_average`` or ``reduce`` is not ``None``.

    Note:
        Calls :func:`torch.nn.functional.binary_cross_entropy_with_logits`, so values and gradients are
        torch's. Differences: an empty batch gives ``0`` with a gradient for ``'mean'`` (torch gives
        ``NaN``); a non-None ``size_average``/``reduce`` raises; float16/bfloat16 are computed in
        float32.

    Example:
        >>> input = torch.tensor([2.0, -1.0, 0.0])
        >>> target = torch.tensor([1.0, 0.0, 1.0])
        >>> binary_cross_entropy_with_logits(input, target, reduction="none")
        tensor([0.1269, 0.3133, 0.6931])
        >>> binary_cross_entropy_with_logits(input, target, pos_weight=torch.tensor(2.0), reduction="sum")
        tensor(1.9534)

    References:
        Cox, "The Regression Analysis of Binary Sequences", JRSS B 20(2), 1958.
    """
    fn = "binary_cross_entropy_with_logits"
    reject_legacy_reduction(fn, size_average, reduce)
    return _bce(fn, input, target, weight, reduction, pos_weight)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: None = None,
    ignore_index: int = -100,
    reduce: None = None,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy of softmax probabilities against class indices or probabilities, as torch's.

    This is also the "softmax loss" of the face-recognition papers (NormFace, SphereFace, CosFace,
    ArcFace): a linear classifier, a softmax, then this loss. The margin losses in
    :mod:`losskit.functional.margin` are this function applied to modified logits.

    .. math::
        \ell_n = -\sum_{c=1}^{C} w_c\, q_{n,c} \log \frac{\exp x_{n,c}}{\sum_{k} \exp x_{n,k}},
        \qquad q_{n,c} = (1 - \varepsilon)\, y_{n,c} + \varepsilon / C

    where :math:`x` is ``input`` (logits), :math:`y_{n,c}` is one-hot of the target class (class-index
    target) or the given probability (probability target), :math:`w_c` the per-class ``weight`` and
    :math:`\varepsilon` the ``label_smoothing``.

    Args:
        input: logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d_1, ..., d_K)``.
        target: class indices (any integer dtype) of shape ``()``, ``(N,)`` or ``(N, d_1, ..., d_K)``
            with values in ``[0, C)`` or equal to ``ignore_index``; or class probabilities (floating
            tensor) of the same shape as ``input``.
        weight: per-CLASS weights :math:`w`, shape ``(C,)``. Unlike the other losskit losses, where
            ``weight`` is per element, this keeps torch's meaning because the function keeps torch's
            name. Default: ``None`` (all 1).
        size_average: torch's deprecated argument; must be ``None``.
        ignore_index: class-index targets equal to it contribute nothing and are not counted.
            Probability targets accept only a negative value (unused), as torch. Default: ``-100``.
        reduce: torch's deprecated argument; must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; for class-index targets ``'mean'`` divides by
            :math:`\sum_n w_{y_n}` over the non-ignored targets (their number without ``weight``), not
            clamped, exactly as torch (targets whose weights sum to 0 give ``NaN``/``inf`` as in
            torch); for probability targets by the number of samples ``N * d_1 * ... * d_K``.
            Default: ``'mean'``.
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``. Default: ``0.0`` (no smoothing; Szegedy et
            al. used 0.1).

    Returns:
        The target's shape (per sample) if ``reduction='none'``, otherwise a scalar; dtype of ``input``
        (float32 for float16/bfloat16 inside ``torch.autocast``).

    Raises:
        ValueError: if shapes disagree, ``weight`` is not ``(C,)``, ``label_smoothing`` is outside
            ``[0, 1]``, ``reduction`` is unknown, a class index lies outside ``[0, C)`` (and is not
            ``ignore_index``; on CPU, a device-side assertion elsewhere), probability targets come
            with ``ignore_index >= 0``, or the tensors are on different devices.
        TypeError: if ``input`` or ``weight`` is not floating point, ``target`` is neither integer nor
            floating, ``ignore_index`` is not an int, or ``size_average`` or ``reduce`` is not
            ``None``.

    Note:
        Calls :func:`torch.nn.functional.cross_entropy` and matches its values and gradients, with one
        deliberate difference: a batch whose targets are all ``ignore_index`` (or an empty batch) gives
        ``0`` with a zero gradient for ``'mean'``, where torch gives ``NaN`` (0/0). Also: every integer
        label dtype is accepted (torch: int64 only); float16/bfloat16 are computed in float32; a
        non-None ``size_average``/``reduce`` raises.

    Example:
        >>> input = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        >>> cross_entropy(input, torch.tensor([0, 2]), reduction="none")
        tensor([0.1698, 1.5514])
        >>> cross_entropy(input, torch.tensor([0, 2]), torch.tensor([1.0, 1.0, 3.0]))
        tensor(1.2060)
        >>> cross_entropy(input, torch.tensor([-100, -100]))
        tensor(0.)

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (label smoothing),
        CVPR 2016. https://arxiv.org/abs/1512.00567
    """
    fn = "cross_entropy"
    reject_legacy_reduction(fn, size_average, reduce)
    return _cross_entropy(fn, input, target, weight, ignore_index, reduction, label_smoothing)
