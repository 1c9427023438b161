"""Classification losses: binary cross-entropy on logits and (softmax) cross-entropy.

Both call torch's own fused kernels, so they run at torch's speed and match its values and gradients;
losskit adds the argument checks, float32 computation for float16/bfloat16 inputs and an empty or
all-ignored batch that reduces to ``0`` (with a gradient) instead of ``NaN``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_floating,
    check_integer,
    check_interval,
    check_same_shape,
    check_tensor,
    compute_dtype,
)

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy"]


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Binary cross-entropy on logits (sigmoid followed by log loss, in one stable step).

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
        weight: optional per-element weights, broadcastable to ``(*)``.
        pos_weight: optional weight :math:`c` of the positive term, broadcastable to ``(*)``; usually
            ``(C,)`` for ``C`` labels, e.g. ``num_negatives / num_positives``. Default: ``None`` (1).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of elements.

    Returns:
        Shape ``(*)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if shapes differ, ``weight`` or ``pos_weight`` does not broadcast, or ``reduction``
            is unknown.
        TypeError: if ``input``, ``target``, ``weight`` or ``pos_weight`` is not floating point.

    Note:
        Calls :func:`torch.nn.functional.binary_cross_entropy_with_logits`, so values and gradients are
        torch's. An empty batch gives ``0`` for ``'mean'`` (torch gives ``NaN``).

    Example:
        >>> input = torch.tensor([2.0, -1.0, 0.0])
        >>> target = torch.tensor([1.0, 0.0, 1.0])
        >>> binary_cross_entropy_with_logits(input, target, reduction="none")
        tensor([0.1269, 0.3133, 0.6931])

    References:
        Cox, "The Regression Analysis of Binary Sequences", JRSS B 20(2), 1958.
    """
    fn = "binary_cross_entropy_with_logits"
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
    dtype = input.dtype
    ct = compute_dtype(dtype)
    x, y = input.to(ct), target.to(ct)
    pw = None if pos_weight is None else pos_weight.to(ct)
    w = None if weight is None else weight.to(ct)
    if input.numel() > 0:
        # torch's kernel applies weight and reduction itself: one call, no extra pass.
        out = F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=reduction)
    else:
        out = reduce_loss(
            F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none"), reduction
        )
    return out.to(dtype)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy between softmax probabilities and class indices or class probabilities.

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
        target: class indices (integer tensor) of shape ``()``, ``(N,)`` or ``(N, d_1, ..., d_K)`` with
            values in ``[0, C)`` or equal to ``ignore_index``; or class probabilities (floating
            tensor) of the same shape as ``input``.
        weight: per-CLASS weights :math:`w`, shape ``(C,)``. Unlike the other losskit losses, where
            ``weight`` is per element, this keeps torch's meaning because the function keeps torch's
            name. Default: ``None`` (all 1).
        ignore_index: class-index targets equal to it contribute nothing and are not counted. Default:
            ``-100`` (torch's).
        label_smoothing: :math:`\varepsilon` in ``[0, 1]``. Default: ``0.0`` (no smoothing; Szegedy et
            al. used 0.1).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; for class-index targets ``'mean'`` divides by
            the sum of :math:`w_{y_n}` over the non-ignored targets (their number without ``weight``),
            for probability targets by the number of samples ``N * d_1 * ... * d_K``, as torch does.

    Returns:
        The target's shape (per sample) if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: if shapes disagree, ``weight`` is not ``(C,)``, ``label_smoothing`` is outside
            ``[0, 1]`` or ``reduction`` is unknown.
        TypeError: if ``input`` or ``weight`` is not floating point, ``target`` is neither integer nor
            floating, or ``ignore_index`` is not an int.

    Note:
        Calls :func:`torch.nn.functional.cross_entropy` and matches its values and gradients, with one
        deliberate difference: a batch whose targets are all ``ignore_index`` (or an empty batch) gives
        ``0`` with a zero gradient for ``'mean'``, where torch gives ``NaN`` (0/0).

    Example:
        >>> input = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        >>> cross_entropy(input, torch.tensor([0, 2]), reduction="none")
        tensor([0.1698, 1.5514])
        >>> cross_entropy(input, torch.tensor([-100, -100]))
        tensor(0.)

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (label smoothing),
        CVPR 2016. https://arxiv.org/abs/1512.00567
    """
    fn = "cross_entropy"
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
    dtype = input.dtype
    ct = compute_dtype(dtype)
    x = input.to(ct)
    w = None if weight is None else weight.to(ct)
    if probabilities:
        y = target.to(ct)
        total = F.cross_entropy(
            x, y, weight=w, label_smoothing=eps, reduction="none" if reduction == "none" else "sum"
        )
        if reduction == "mean":
            # torch divides by the number of samples; max(.., 1) keeps an empty batch at 0.
            total = total / max(x.numel() // max(num_classes, 1), 1)
        return total.to(dtype)
    t = target.long()
    if reduction == "none":
        return F.cross_entropy(
            x, t, weight=w, ignore_index=ignore_index, label_smoothing=eps, reduction="none"
        ).to(dtype)
    total = F.cross_entropy(x, t, weight=w, ignore_index=ignore_index, label_smoothing=eps, reduction="sum")
    if reduction == "sum":
        return total.to(dtype)
    counted = t != ignore_index
    if w is None:
        divisor = counted.sum()
    else:
        # ignored targets may lie outside [0, C): gather at class 0 and mask them out.
        divisor = (w.gather(0, t.masked_fill(~counted, 0).reshape(-1)) * counted.reshape(-1)).sum()
    # an all-ignored batch has sum 0 and divisor 0: reduce_loss's clamp returns 0, not 0/0.
    return reduce_loss(total.reshape(1), "mean", divisor=divisor).to(dtype)
