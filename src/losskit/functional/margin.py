r"""Margin softmax on cosine logits (NormFace/COCO, CosFace/AM-Softmax, ArcFace, combined margins,
SphereFace, sub-center ArcFace) and on features with class weights (L2-softmax, L-Softmax).

Every loss here is one composition of two public pieces:

1. a *target-logit* function that maps the cosine :math:`\cos\theta_y` between an embedding and its own
   class centre (any shape) to the unscaled target logit :math:`\phi(\theta_y)`
   (:func:`arcface_target_logit`, :func:`cosface_target_logit`, :func:`combined_margin_target_logit`,
   :func:`sphereface_target_logit`), and
2. :func:`margin_cross_entropy`, which puts :math:`\phi` in the target column of the cosine logits, scales
   every logit by :math:`s` and takes the cross-entropy in log space.

The fused, chunked path over embeddings and class centres reuses the same target-logit functions, so the
margin maths is written once. Angles and margins are in radians throughout (PyTorch Metric Learning
takes ArcFace's margin in degrees; convert with ``math.radians``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_choice,
    check_class_indices,
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_same_device,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = [
    "am_softmax_loss",
    "arcface_loss",
    "arcface_target_logit",
    "combined_margin_loss",
    "combined_margin_target_logit",
    "cosface_loss",
    "cosface_target_logit",
    "l2_softmax_alpha_lower_bound",
    "l2_softmax_loss",
    "large_margin_softmax_loss",
    "margin_cross_entropy",
    "normface_loss",
    "sphereface_lambda",
    "sphereface_loss",
    "sphereface_target_logit",
    "subcenter_arcface_loss",
]

Fallback = Literal["linear", "easy", "none"]
Gradient = Literal["exact", "straight_through"]
_FALLBACKS = ("linear", "easy", "none")
_GRADIENTS = ("exact", "straight_through")


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _sine(cos: Tensor) -> Tensor:
    r"""``sqrt(max(1 - cos^2, 0))`` with a finite gradient everywhere, ``cos = ±1`` included.

    The true derivative of :math:`\sin\theta` in :math:`\cos\theta` is :math:`-\cot\theta`, unbounded at
    0 and pi. Below ``eps`` (the dtype's machine epsilon, i.e. only where ``|cos|`` is within an ulp or two
    of 1) the square root is replaced by the chord ``x / sqrt(eps)``: same value at 0 and ``eps``, a
    finite slope, and a value error below ``sqrt(eps) / 4``.
    """
    x = (1 - cos * cos).clamp_min(0)
    eps = torch.finfo(cos.dtype).eps
    big = x > eps
    # double where: the untaken sqrt branch never sees 0, so its gradient is never inf * 0 = NaN.
    return torch.where(big, torch.sqrt(torch.where(big, x, 1.0)), x * (1 / math.sqrt(eps)))


def _angle(cos: Tensor) -> Tensor:
    """``acos(cos)`` in ``[0, pi]`` via atan2, with a finite gradient at ``cos = ±1`` (see ``_sine``)."""
    return torch.atan2(_sine(cos), cos)


def _chebyshev(cos: Tensor, m: int) -> Tensor:
    """``cos(m * theta)`` as the Chebyshev polynomial ``T_m(cos theta)`` (smooth, no acos)."""
    prev, cur = torch.ones_like(cos), cos
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, cur = cur, 2 * cos * cur - prev
    return cur


def _check_cosine_target(fn: str, cosine: object, target: object) -> None:
    check_floating(fn, "cosine", cosine)
    check_integer(fn, "target", target)
    assert isinstance(cosine, Tensor) and isinstance(target, Tensor)
    check_ndim(fn, "cosine", cosine, 2, "(N, C)")
    if target.shape != cosine.shape[:1]:
        raise ValueError(
            f"{fn}: expected target of shape ({cosine.shape[0]},) to match cosine {tuple(cosine.shape)}, "
            f"got {tuple(target.shape)}"
        )


def _check_scale(fn: str, scale: object, n: int) -> None:
    if isinstance(scale, Tensor):
        if not scale.is_floating_point():
            raise TypeError(f"{fn}: scale must be a floating-point tensor; got dtype {scale.dtype}")
        if scale.shape not in ((), (n,)):
            raise ValueError(f"{fn}: expected scale of shape () or ({n},), got {tuple(scale.shape)}")
    else:
        check_positive(fn, "scale", scale)


def _check_margin_int(fn: str, margin: object) -> int:
    return check_positive_int(fn, "margin", margin)


def _check_lambda(fn: str, lambda_: object) -> None:
    if isinstance(lambda_, Tensor):
        if not lambda_.is_floating_point() or lambda_.dim() != 0:
            raise TypeError(
                f"{fn}: lambda_ must be a number or a 0-dim floating-point tensor; "
                f"got a {lambda_.dtype} tensor of shape {tuple(lambda_.shape)}"
            )
    else:
        check_nonnegative(fn, "lambda_", lambda_)


def _arcface_phi(cos: Tensor, margin: float, fallback: str, gradient: str) -> Tensor:
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    phi = cos * cos_m - _sine(cos) * sin_m  # cos(theta + m), no acos
    if fallback == "linear":
        # theta + m > pi  <=>  cos < cos(pi - m): the released code's linear fallback keeps phi decreasing.
        phi = torch.where(cos > -cos_m, phi, cos - margin * sin_m)
    elif fallback == "easy":
        phi = torch.where(cos > 0, phi, cos)
    if gradient == "straight_through":
        phi = cos + (phi - cos).detach()
    return phi


def _sphereface_phi(cos: Tensor, margin: int, lambda_: float | Tensor) -> Tensor:
    # k = floor(m theta / pi) clipped to [0, m-1]: theta >= j pi / m  <=>  cos <= cos(j pi / m).
    k = torch.zeros_like(cos)
    for j in range(1, margin):
        k = k + (cos <= math.cos(j * math.pi / margin)).to(cos.dtype)
    sign = 1 - 2 * torch.remainder(k, 2)  # (-1)^k
    psi = sign * _chebyshev(cos, margin) - 2 * k
    return (lambda_ * cos + psi) / (1 + lambda_)


def _check_combined(fn: str, m1: object, m2: object, m3: object, fallback: object, gradient: object):
    a = check_positive(fn, "m1", m1)
    b = check_nonnegative(fn, "m2", m2)
    c = check_nonnegative(fn, "m3", m3)
    check_choice(fn, "fallback", fallback, _FALLBACKS)
    check_choice(fn, "gradient", gradient, _GRADIENTS)
    if a != 1.0 and fallback != "none":
        raise ValueError(
            f"{fn}: fallback={fallback!r} is ArcFace's and needs m1=1 (the papers define none for "
            f"m1 != 1); got m1={m1}: use fallback='none'"
        )
    return a, b, c


def _combined_phi(cos: Tensor, m1: float, m2: float, m3: float, fallback: str, gradient: str) -> Tensor:
    if m1 == 1.0:
        # cos(theta + m2) - m3 in closed form, as ArcFace's (no angle): for m2 = 0 it is cos - m3
        # exactly, value and gradient, at cos = +-1 too (the atan2 angle's slope is 0 there)
        return _arcface_phi(cos, m2, fallback, gradient) - m3
    phi = torch.cos(m1 * _angle(cos) + m2) - m3
    if gradient == "straight_through":
        phi = cos + (phi - cos).detach()
    return phi


def _as_compute(cosine: Tensor) -> Tensor:
    return cosine.to(compute_dtype(cosine.dtype))


# --------------------------------------------------------------------------------------------------
# target-logit functions
# --------------------------------------------------------------------------------------------------


def arcface_target_logit(
    cosine: Tensor,
    *,
    margin: float = 0.5,
    fallback: Fallback = "linear",
    gradient: Gradient = "exact",
) -> Tensor:
    r"""ArcFace's additive angular margin on the target cosine, before scaling.

    .. math::
        \phi(\theta) = \begin{cases}
            \cos(\theta + m) & \theta + m \le \pi \text{ (or always, fallback ``'none'``)} \\
            \cos\theta - m \sin m & \theta + m > \pi \text{ (fallback ``'linear'``)}
        \end{cases}

    with ``fallback='easy'`` applying :math:`\cos(\theta+m)` only where :math:`\cos\theta > 0` and
    :math:`\cos\theta` elsewhere. :math:`\theta = \arccos(\text{cosine})`.

    Args:
        cosine: target-class cosines :math:`\cos\theta` in ``[-1, 1]``, any shape ``(*)``.
        margin: additive angular margin :math:`m` in radians, ``[0, pi]``. Default: ``0.5`` (Deng et al.).
        fallback: ``'linear'`` (the authors' released code), ``'easy'`` or ``'none'``. Default: ``'linear'``.
        gradient: ``'exact'``, or ``'straight_through'`` where the margin shifts the value but the gradient
            is that of :math:`\cos\theta`. Default: ``'exact'``.

    Returns:
        :math:`\phi`, shape ``(*)``, dtype of ``cosine``.

    Raises:
        ValueError: if ``margin`` is outside ``[0, pi]`` or an option is unknown.
        TypeError: if ``cosine`` is not floating point.

    Note:
        :math:`\cos(\theta+m)` is computed as :math:`\cos\theta\cos m - \sin\theta\sin m` with
        :math:`\sin\theta = \sqrt{1-\cos^2\theta}`, so there is no ``acos`` and no NaN for ``cos = ±1``; the
        derivative there is unbounded in exact arithmetic and is kept finite (a chord replaces the square
        root within machine epsilon of 0). Values of ``cosine`` slightly outside ``[-1, 1]`` are treated
        as ``sin = 0``.

    Example:
        >>> arcface_target_logit(torch.tensor([1.0, 0.0, -1.0]), margin=0.5)
        tensor([ 0.8776, -0.4794, -1.2397])

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019.
        https://arxiv.org/abs/1801.07698
    """
    fn = "arcface_target_logit"
    check_floating(fn, "cosine", cosine)
    m = check_interval(fn, "margin", margin, 0.0, math.pi)
    check_choice(fn, "fallback", fallback, _FALLBACKS)
    check_choice(fn, "gradient", gradient, _GRADIENTS)
    return _arcface_phi(_as_compute(cosine), m, fallback, gradient).to(cosine.dtype)


def cosface_target_logit(cosine: Tensor, *, margin: float = 0.35) -> Tensor:
    r"""CosFace / AM-Softmax's additive cosine margin, before scaling: :math:`\phi = \cos\theta - m`.

    Args:
        cosine: target-class cosines, any shape ``(*)``.
        margin: cosine margin :math:`m \ge 0`. Default: ``0.35`` (Wang et al.).

    Returns:
        :math:`\phi`, shape ``(*)``, dtype of ``cosine``.

    Raises:
        ValueError: if ``margin`` is negative or not finite.
        TypeError: if ``cosine`` is not floating point.

    Example:
        >>> cosface_target_logit(torch.tensor([1.0, 0.5]), margin=0.35)
        tensor([0.6500, 0.1500])

    References:
        Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018.
        https://arxiv.org/abs/1801.09414
    """
    fn = "cosface_target_logit"
    check_floating(fn, "cosine", cosine)
    m = check_nonnegative(fn, "margin", margin)
    return cosine - m


def combined_margin_target_logit(
    cosine: Tensor,
    *,
    m1: float = 1.0,
    m2: float = 0.0,
    m3: float = 0.0,
    fallback: Fallback = "none",
    gradient: Gradient = "exact",
) -> Tensor:
    r"""The combined (SphereFace, ArcFace, CosFace) margin, before scaling.

    .. math::
        \phi(\theta) = \cos(m_1 \theta + m_2) - m_3

    ``(m1, m2, m3) = (1, m, 0)`` is ArcFace (:func:`arcface_target_logit` with the same ``fallback``
    and ``gradient``), ``(1, 0, m)`` is CosFace and ``(1, 0, 0)`` is the plain cosine (value and
    gradient, ``cos = ±1`` included).

    Args:
        cosine: target-class cosines, any shape ``(*)``.
        m1: multiplicative angular margin, ``> 0``. Default: ``1.0``.
        m2: additive angular margin in radians, ``>= 0``. Default: ``0.0``.
        m3: additive cosine margin, ``>= 0``. Default: ``0.0``.
        fallback: ``'none'`` (the paper's combined margin: past :math:`\theta + m_2 > \pi` the curve
            rises again), or ArcFace's ``'linear'`` / ``'easy'`` applied to :math:`\cos(\theta + m_2)`
            (``m1 = 1`` only; ``m3`` is subtracted after). Default: ``'none'``.
        gradient: ``'exact'``, or ``'straight_through'``: the margin shifts the value but the gradient is
            that of :math:`\cos\theta` (insightface's current ``CombinedMarginLoss``, which applies the
            margin under ``no_grad``). Default: ``'exact'``.

    Returns:
        :math:`\phi`, shape ``(*)``, dtype of ``cosine``.

    Raises:
        ValueError: if a margin is out of range, an option is unknown, or ``fallback`` is not
            ``'none'`` with ``m1 != 1``.
        TypeError: if ``cosine`` is not floating point.

    Note:
        With ``m1 = 1`` the angle is never formed: :math:`\cos(\theta + m_2) = \cos\theta\cos m_2 -
        \sin\theta\sin m_2` as in :func:`arcface_target_logit`, so ``m2 = 0`` is exactly
        :math:`\cos\theta - m_3` with gradient 1. Otherwise :math:`\theta` is computed with ``atan2``
        from :math:`(\sqrt{1-\cos^2}, \cos)`: ``cos = ±1`` is exact and its gradient finite, but at
        exactly ``cos = ±1`` the gradient of :math:`\cos(m_1\theta)` is 0 where the true limit is
        :math:`m_1^2` (``cos = 1``).

    Example:
        >>> combined_margin_target_logit(torch.tensor([1.0, 0.0]), m1=1.0, m2=0.3, m3=0.2)
        tensor([ 0.7553, -0.4955])

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019, Sec. 3.3.
        https://arxiv.org/abs/1801.07698
    """
    fn = "combined_margin_target_logit"
    check_floating(fn, "cosine", cosine)
    a, b, c = _check_combined(fn, m1, m2, m3, fallback, gradient)
    return _combined_phi(_as_compute(cosine), a, b, c, fallback, gradient).to(cosine.dtype)


def sphereface_target_logit(cosine: Tensor, *, margin: int = 4, lambda_: float | Tensor = 0.0) -> Tensor:
    r"""SphereFace's (A-Softmax) multiplicative angular margin with its annealing, before the norm.

    .. math::
        \phi(\theta) = \frac{\lambda \cos\theta + \psi(\theta)}{1 + \lambda}, \qquad
        \psi(\theta) = (-1)^k \cos(m\theta) - 2k, \quad
        \theta \in \left[\tfrac{k\pi}{m}, \tfrac{(k+1)\pi}{m}\right]

    :math:`\psi` is the monotone extension of :math:`\cos(m\theta)` to ``[0, pi]``; :math:`\lambda`
    (annealed by :func:`sphereface_lambda`) blends back the plain cosine early in training.

    Args:
        cosine: target-class cosines, any shape ``(*)``.
        margin: integer angular margin :math:`m \ge 1`. Default: ``4`` (Liu et al. 2017).
        lambda_: annealing weight :math:`\lambda \ge 0`, a number or a 0-dim tensor. Default: ``0.0``.

    Returns:
        :math:`\phi`, shape ``(*)``, dtype of ``cosine``.

    Raises:
        ValueError: if ``margin < 1`` or ``lambda_ < 0``.
        TypeError: if ``cosine`` is not floating point, ``margin`` is not an int or ``lambda_`` a bad tensor.

    Note:
        :math:`\cos(m\theta)` is the Chebyshev polynomial :math:`T_m(\cos\theta)` and :math:`k` comes from
        comparing :math:`\cos\theta` with :math:`\cos(j\pi/m)`, as in the authors' code: no ``acos``.

    Example:
        >>> sphereface_target_logit(torch.tensor([1.0, 0.0, -1.0]), margin=4)
        tensor([ 1., -3., -7.])

    References:
        Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017.
        https://arxiv.org/abs/1704.08063
    """
    fn = "sphereface_target_logit"
    check_floating(fn, "cosine", cosine)
    m = _check_margin_int(fn, margin)
    _check_lambda(fn, lambda_)
    return _sphereface_phi(_as_compute(cosine), m, lambda_).to(cosine.dtype)


def sphereface_lambda(
    iteration: int | Tensor,
    *,
    base: float = 1000.0,
    gamma: float = 0.12,
    power: float = 1.0,
    lambda_min: float = 5.0,
) -> float | Tensor:
    r"""SphereFace's annealing schedule for ``lambda_``.

    .. math::
        \lambda = \max\left(\lambda_{\min},\ \text{base}\,(1 + \gamma\, t)^{-\text{power}}\right)

    The defaults are the authors' released training settings: :math:`\lambda = 892.857` at iteration 1,
    reaching 5 at iteration 1659.

    Args:
        iteration: training iteration :math:`t \ge 0`, an int or a 0-dim tensor (e.g. a Module buffer;
            no host sync then).
        base: initial value. Default: ``1000.0``.
        gamma: decay rate, ``>= 0``. Default: ``0.12``.
        power: decay exponent, ``>= 0``. Default: ``1.0``.
        lambda_min: floor, ``>= 0``. Default: ``5.0``.

    Returns:
        A float for an int ``iteration``; a 0-dim floating-point tensor for a tensor one.

    Raises:
        ValueError: if an int ``iteration`` is negative or a hyperparameter is out of range.
        TypeError: if ``iteration`` is neither an int nor a 0-dim tensor.

    Example:
        >>> round(sphereface_lambda(1), 3), sphereface_lambda(1659)
        (892.857, 5.0)

    References:
        Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017.
        https://arxiv.org/abs/1704.08063
    """
    fn = "sphereface_lambda"
    b = check_nonnegative(fn, "base", base)
    g = check_nonnegative(fn, "gamma", gamma)
    p = check_nonnegative(fn, "power", power)
    lo = check_nonnegative(fn, "lambda_min", lambda_min)
    if isinstance(iteration, Tensor):
        if iteration.dim() != 0 or iteration.is_complex() or iteration.dtype == torch.bool:
            raise TypeError(
                f"{fn}: iteration must be an int or a 0-dim real tensor; got a {iteration.dtype} tensor "
                f"of shape {tuple(iteration.shape)}"
            )
        t = iteration.to(torch.float64 if iteration.dtype == torch.float64 else torch.float32)
        return (b * (1 + g * t) ** (-p)).clamp_min(lo)
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        raise TypeError(
            f"{fn}: iteration must be an int or a 0-dim real tensor; got {type(iteration).__name__}"
        )
    if iteration < 0:
        raise ValueError(f"{fn}: iteration must be >= 0; got {iteration}")
    return max(lo, b * (1 + g * iteration) ** (-p))


# --------------------------------------------------------------------------------------------------
# the shared core
# --------------------------------------------------------------------------------------------------


def _margin_ce(cosine: Tensor, target: Tensor, target_logit: Tensor, scale: float | Tensor) -> Tensor:
    """Unreduced margin cross-entropy in ``cosine``'s (compute) dtype; arguments already checked."""
    index = target.unsqueeze(1)  # (N, 1)
    phi = target_logit.to(cosine.dtype).unsqueeze(1)  # (N, 1)
    if isinstance(scale, Tensor):
        s = scale.to(cosine.dtype)
        s = s.unsqueeze(1) if s.dim() == 1 else s
    else:
        s = scale
    # scale first, then overwrite the target column in place: one (N, C) temporary instead of two
    # (the product's backward needs its inputs, never its output, so the in-place write is safe).
    logits = (cosine * s).scatter_(1, index, phi * s)  # (N, C)
    return F.cross_entropy(logits, target, reduction="none")  # logsumexp inside: stable for s = 64


def margin_cross_entropy(
    cosine: Tensor,
    target: Tensor,
    target_logit: Tensor,
    *,
    scale: float | Tensor = 1.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Cross-entropy on scaled cosine logits with the target column replaced: the core of every margin loss.

    .. math::
        \ell_i = -\log \frac{e^{s_i \phi_i}}{e^{s_i \phi_i} + \sum_{j \ne y_i} e^{s_i \cos\theta_{ij}}}

    where :math:`\phi_i` is ``target_logit`` (from a target-logit function applied to
    :math:`\cos\theta_{i y_i}`), :math:`s_i` the ``scale`` and :math:`y_i` the ``target``.

    Args:
        cosine: cosine logits :math:`\cos\theta_{ij}`, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        target_logit: the unscaled target logits :math:`\phi_i`, shape ``(N,)``; gradients flow through it.
        scale: :math:`s > 0`, a number, a 0-dim tensor (e.g. a learnt scale) or the ``(N,)`` feature norms.
            Default: ``1.0``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a non-positive float ``scale`` or an unknown ``reduction``.
        TypeError: on a non-float ``cosine``/``target_logit``/``scale`` tensor or a non-integer ``target``.

    Note:
        The target column is overwritten in a scaled copy of ``cosine``, so the gradient of the target
        entry reaches ``target_logit`` and not ``cosine``. The log-sum-exp is torch's, stable at ``s = 64``.

    Example:
        >>> cosine = torch.tensor([[0.8, 0.1], [0.2, 0.3]])
        >>> target = torch.tensor([0, 1])
        >>> margin_cross_entropy(cosine, target, torch.tensor([0.8, 0.3]), scale=2.0)
        tensor(0.4093)

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019, Eq. 3-4.
        https://arxiv.org/abs/1801.07698
    """
    fn = "margin_cross_entropy"
    _check_cosine_target(fn, cosine, target)
    check_floating(fn, "target_logit", target_logit)
    if target_logit.shape != target.shape:
        raise ValueError(
            f"{fn}: expected target_logit of shape {tuple(target.shape)}, got {tuple(target_logit.shape)}"
        )
    _check_scale(fn, scale, cosine.shape[0])
    check_reduction(fn, reduction)
    check_weight(fn, weight, target.shape)
    check_same_device(
        fn, ("cosine", cosine), ("target", target), ("target_logit", target_logit), ("scale", scale),
        ("weight", weight),
    )  # fmt: skip
    t = check_class_indices(fn, "target", target, cosine.shape[1])
    out_dtype = output_dtype(cosine)  # read before autocast is switched off
    with no_autocast(cosine.device):
        x = _as_compute(cosine)
        loss = _margin_ce(x, t, target_logit.to(x.dtype), scale)
        return reduce_loss(loss, reduction, weight).to(out_dtype)


def _cosine_loss(
    fn: str,
    cosine: Tensor,
    target: Tensor,
    scale: float | Tensor,
    weight: Tensor | None,
    reduction: Reduction,
    phi,
) -> Tensor:
    """Shared body of the cosine-logit losses once their own hyperparameters are checked.

    Devices are checked once, the labels range-checked (no host sync on an accelerator), the loss
    computed in float32 or wider with autocast off, and returned in ``output_dtype(cosine)``.
    """
    _check_scale(fn, scale, cosine.shape[0])
    check_reduction(fn, reduction)
    check_weight(fn, weight, target.shape)
    check_same_device(fn, ("cosine", cosine), ("target", target), ("scale", scale), ("weight", weight))
    t = check_class_indices(fn, "target", target, cosine.shape[1])
    out_dtype = output_dtype(cosine)  # read before autocast is switched off
    with no_autocast(cosine.device):
        x = _as_compute(cosine)
        cos_t = x.gather(1, t.unsqueeze(1)).squeeze(1)  # (N,)
        loss = _margin_ce(x, t, phi(cos_t), scale)
        return reduce_loss(loss, reduction, weight).to(out_dtype)


# --------------------------------------------------------------------------------------------------
# losses on cosine logits
# --------------------------------------------------------------------------------------------------


def normface_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""NormFace / COCO loss: softmax cross-entropy on scaled cosine logits, no margin.

    NormFace (Wang et al. 2017) and the congenerous cosine (COCO) loss (Liu et al. 2017) are the same
    loss: features and class weights (COCO: class centroids) L2-normalised and the cosines scaled by
    :math:`s` (COCO's :math:`\alpha`) before the softmax. One implementation serves both.

    .. math::
        \ell_i = -\log \frac{e^{s \cos\theta_{i y_i}}}{\sum_j e^{s \cos\theta_{ij}}}

    Args:
        cosine: cosine logits, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: :math:`s > 0`, a number, a 0-dim tensor (NormFace may learn it) or ``(N,)``. No default: the
            papers tune it (NormFace learns it, COCO derives it from the number of classes).
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a non-positive ``scale`` or an unknown ``reduction``.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> normface_loss(cosine, torch.tensor([0, 2]), scale=10.0, reduction="none")
        tensor([3.5208e-04, 1.3182e+00])

    References:
        Wang et al., "NormFace: L2 Hypersphere Embedding for Face Verification", ACM MM 2017.
        https://arxiv.org/abs/1704.06369;
        Liu et al., "Rethinking Feature Discrimination and Polymerization for Large-scale Recognition"
        (COCO), NeurIPS 2017 workshop. https://arxiv.org/abs/1710.00870
    """
    fn = "normface_loss"
    _check_cosine_target(fn, cosine, target)
    return _cosine_loss(fn, cosine, target, scale, weight, reduction, lambda c: c)


def _additive_cosine(
    fn: str,
    cosine: Tensor,
    target: Tensor,
    scale: float | Tensor,
    margin: float,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    _check_cosine_target(fn, cosine, target)
    m = check_nonnegative(fn, "margin", margin)
    return _cosine_loss(fn, cosine, target, scale, weight, reduction, lambda c: c - m)


def cosface_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = 64.0,
    margin: float = 0.35,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""CosFace (large margin cosine loss): an additive margin on the target cosine.

    Same formula as :func:`am_softmax_loss` (AM-Softmax, published at the same time); only the paper's
    default scale differs (64 here, 30 there). ``margin=0`` is :func:`normface_loss`.

    .. math::
        \ell_i = -\log \frac{e^{s(\cos\theta_{i y_i} - m)}}
                             {e^{s(\cos\theta_{i y_i} - m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Args:
        cosine: cosine logits, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: :math:`s > 0`, a number, a 0-dim tensor or ``(N,)``. Default: ``64.0`` (Wang et al. 2018).
        margin: cosine margin :math:`m \ge 0`. Default: ``0.35`` (Wang et al. 2018).
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a bad ``scale``/``margin`` or an unknown ``reduction``.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> cosface_loss(cosine, torch.tensor([0, 2]), scale=10.0, reduction="none")
        tensor([0.0116, 4.5177])

    References:
        Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018.
        https://arxiv.org/abs/1801.09414
    """
    return _additive_cosine("cosface_loss", cosine, target, scale, margin, weight, reduction)


def am_softmax_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = 30.0,
    margin: float = 0.35,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""AM-Softmax (additive margin softmax): the formula of :func:`cosface_loss` with the paper's ``s = 30``.

    .. math::
        \ell_i = -\log \frac{e^{s(\cos\theta_{i y_i} - m)}}
                             {e^{s(\cos\theta_{i y_i} - m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Args:
        cosine: cosine logits, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: :math:`s > 0`, a number, a 0-dim tensor or ``(N,)``. Default: ``30.0`` (Wang et al. 2018).
        margin: cosine margin :math:`m \ge 0`. Default: ``0.35`` (Wang et al. 2018).
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a bad ``scale``/``margin`` or an unknown ``reduction``.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> am_softmax_loss(cosine, torch.tensor([0, 2]), reduction="none")
        tensor([1.4305e-06, 1.3500e+01])

    References:
        Wang, Cheng, Liu, Liu, "Additive Margin Softmax for Face Verification", IEEE SPL 2018.
        https://arxiv.org/abs/1801.05599
    """
    return _additive_cosine("am_softmax_loss", cosine, target, scale, margin, weight, reduction)


def arcface_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = 64.0,
    margin: float = 0.5,
    fallback: Fallback = "linear",
    gradient: Gradient = "exact",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""ArcFace (additive angular margin loss).

    ``margin=0`` is :func:`normface_loss`. See :func:`arcface_target_logit` for :math:`\phi`, its
    fallback past :math:`\theta + m > \pi` and the straight-through gradient option.

    .. math::
        \ell_i = -\log \frac{e^{s \phi(\theta_{i y_i})}}
                             {e^{s \phi(\theta_{i y_i})} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}

    Args:
        cosine: cosine logits, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: :math:`s > 0`, a number, a 0-dim tensor or ``(N,)``. Default: ``64.0`` (Deng et al.).
        margin: angular margin :math:`m` in radians, ``[0, pi]``. Default: ``0.5`` (Deng et al.).
        fallback: ``'linear'`` | ``'easy'`` | ``'none'``. Default: ``'linear'`` (the authors' code).
        gradient: ``'exact'`` | ``'straight_through'``. Default: ``'exact'``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a bad hyperparameter or an unknown option or ``reduction``.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Note:
        The paper writes only :math:`\cos(\theta + m)` (``fallback='none'``); its released code uses the
        linear fallback, which keeps the target logit decreasing in :math:`\theta`, so that is the default.
        PyTorch Metric Learning's ``ArcFaceLoss`` takes the margin in degrees (its default 28.6 is
        0.4992 rad; 0.5 rad is 28.648 degrees), applies the same linear fallback (``fallback='linear'``:
        its loss on embeddings past :math:`\pi - m` equals this one) and stores class weights as
        ``(D, C)``. insightface's ``ArcFace`` head is ``fallback='linear'``; its current
        ``CombinedMarginLoss`` is :func:`combined_margin_loss` with ``gradient='straight_through'``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> arcface_loss(cosine, torch.tensor([0, 2]), scale=10.0, reduction="none")
        tensor([0.0085, 5.8932])

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019.
        https://arxiv.org/abs/1801.07698
    """
    return _arcface("arcface_loss", cosine, target, scale, margin, fallback, gradient, weight, reduction)


def _arcface(
    fn: str,
    cosine: Tensor,
    target: Tensor,
    scale: float | Tensor,
    margin: float,
    fallback: str,
    gradient: str,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """ArcFace's body; errors name ``fn`` (``arcface_loss`` or ``subcenter_arcface_loss``)."""
    _check_cosine_target(fn, cosine, target)
    m = check_interval(fn, "margin", margin, 0.0, math.pi)
    check_choice(fn, "fallback", fallback, _FALLBACKS)
    check_choice(fn, "gradient", gradient, _GRADIENTS)
    return _cosine_loss(
        fn, cosine, target, scale, weight, reduction, lambda c: _arcface_phi(c, m, fallback, gradient)
    )


def combined_margin_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = 64.0,
    m1: float = 1.0,
    m2: float = 0.0,
    m3: float = 0.0,
    fallback: Fallback = "none",
    gradient: Gradient = "exact",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Combined margin loss: target logit :math:`s(\cos(m_1\theta + m_2) - m_3)`.

    The ArcFace paper's unification of SphereFace (:math:`m_1`), ArcFace (:math:`m_2`) and CosFace
    (:math:`m_3`); see :func:`combined_margin_target_logit`. The defaults give :func:`normface_loss`
    (value and gradient, at ``cos = ±1`` too); ``(1, m, 0)`` gives :func:`arcface_loss` with the same
    ``fallback`` and ``gradient``, ``(1, 0, m)`` :func:`cosface_loss`.

    .. math::
        \ell_i = -\log \frac{e^{s \phi_i}}{e^{s \phi_i} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}, \qquad
        \phi_i = \cos(m_1\theta_{i y_i} + m_2) - m_3

    Args:
        cosine: cosine logits, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: :math:`s > 0`, a number, a 0-dim tensor or ``(N,)``. Default: ``64.0`` (Deng et al.).
        m1: multiplicative angular margin, ``> 0``. Default: ``1.0``.
        m2: additive angular margin in radians, ``>= 0``. Default: ``0.0``.
        m3: additive cosine margin, ``>= 0``. Default: ``0.0``.
        fallback: ``'none'`` (the paper) | ``'linear'`` | ``'easy'`` (ArcFace's, ``m1 = 1`` only); see
            :func:`combined_margin_target_logit`. Default: ``'none'``.
        gradient: ``'exact'`` | ``'straight_through'``. Default: ``'exact'``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a bad hyperparameter, an unknown option or ``reduction``.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Note:
        insightface's current ``CombinedMarginLoss`` (arcface_torch) computes the ArcFace margin under
        ``no_grad`` and applies no fallback: ``combined_margin_loss(..., m1=1.0, m2=0.5,
        gradient='straight_through')``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> combined_margin_loss(cosine, torch.tensor([0, 2]), scale=10.0, m1=0.9, m2=0.4, m3=0.15,
        ...                      reduction="none")
        tensor([0.0125, 5.2410])

    References:
        Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019, Sec. 3.3.
        https://arxiv.org/abs/1801.07698
    """
    fn = "combined_margin_loss"
    _check_cosine_target(fn, cosine, target)
    a, b, c = _check_combined(fn, m1, m2, m3, fallback, gradient)
    return _cosine_loss(
        fn, cosine, target, scale, weight, reduction, lambda x: _combined_phi(x, a, b, c, fallback, gradient)
    )


def sphereface_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    scale: float | Tensor = 1.0,
    margin: int = 4,
    lambda_: float | Tensor = 0.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""SphereFace (A-Softmax): multiplicative angular margin with the feature norm kept.

    .. math::
        \ell_i = -\log \frac{e^{s_i \phi(\theta_{i y_i})}}
                             {e^{s_i \phi(\theta_{i y_i})} + \sum_{j \ne y_i} e^{s_i \cos\theta_{ij}}},
        \qquad \phi = \frac{\lambda\cos\theta + \psi(\theta)}{1 + \lambda}

    where :math:`s_i = \|x_i\|` is the feature norm (A-Softmax normalises only the class weights), and
    :math:`\psi` is given in :func:`sphereface_target_logit`. Anneal ``lambda_`` with
    :func:`sphereface_lambda`.

    Args:
        cosine: cosine logits between features and normalised class weights, shape ``(N, C)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        scale: the ``(N,)`` feature norms :math:`\|x_i\|` (the paper), or a number / 0-dim tensor for a
            normalised-feature variant. Default: ``1.0``.
        margin: integer angular margin :math:`m \ge 1`. Default: ``4`` (Liu et al. 2017).
        lambda_: annealing weight :math:`\lambda \ge 0`, a number or a 0-dim tensor. Default: ``0.0``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, a bad hyperparameter or an unknown ``reduction``.
        TypeError: on a non-float ``cosine``, a non-integer ``target`` or ``margin``.

    Example:
        >>> cosine = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.5, 0.4]])
        >>> norms = torch.tensor([5.0, 8.0])
        >>> sphereface_loss(cosine, torch.tensor([0, 2]), scale=norms, lambda_=5.0, reduction="none")
        tensor([0.0559, 3.9376])

    References:
        Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017.
        https://arxiv.org/abs/1704.08063
    """
    fn = "sphereface_loss"
    _check_cosine_target(fn, cosine, target)
    m = _check_margin_int(fn, margin)
    _check_lambda(fn, lambda_)
    check_same_device(fn, ("cosine", cosine), ("lambda_", lambda_))
    return _cosine_loss(
        fn, cosine, target, scale, weight, reduction, lambda c: _sphereface_phi(c, m, lambda_)
    )


def subcenter_arcface_loss(
    cosine: Tensor,
    target: Tensor,
    *,
    subcenters: int | None = None,
    scale: float | Tensor = 64.0,
    margin: float = 0.5,
    fallback: Fallback = "linear",
    gradient: Gradient = "exact",
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Sub-center ArcFace: ArcFace on the closest of :math:`K` sub-centres per class.

    .. math::
        \cos\theta_{ij} = \max_{k} \cos\theta_{ijk}, \qquad
        \ell_i = \text{arcface}(\cos\theta_{i\cdot}, y_i)

    With :math:`K = 1` it is :func:`arcface_loss`.

    Args:
        cosine: cosines to every sub-centre, shape ``(N, C, K)``, or ``(N, C * K)`` class-major (column
            ``c * K + k``) together with ``subcenters=K``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        subcenters: :math:`K`; required for ``(N, C * K)`` input, checked against a 3-d one.
            Default: ``None``. The paper uses ``K = 3``.
        scale: :math:`s > 0`. Default: ``64.0`` (Deng et al. 2020).
        margin: angular margin in radians, ``[0, pi]``. Default: ``0.5``.
        fallback: as in :func:`arcface_loss`. Default: ``'linear'``.
        gradient: as in :func:`arcface_loss`. Default: ``'exact'``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``cosine``.

    Raises:
        ValueError: on a shape mismatch, ``C * K`` not divisible by ``subcenters``, or a bad hyperparameter.
        TypeError: on a non-float ``cosine`` or a non-integer ``target``.

    Note:
        The gradient of the max goes to the dominant sub-centre only, as in the paper. Dropping
        non-dominant sub-centres after training is left to the caller.

    Example:
        >>> cosine = torch.tensor([[[0.9, 0.2], [0.1, 0.3]], [[0.0, -0.1], [0.5, 0.6]]])  # (N=2, C=2, K=2)
        >>> subcenter_arcface_loss(cosine, torch.tensor([0, 1]), scale=10.0, reduction="none")
        tensor([0.0585, 0.2145])

    References:
        Deng et al., "Sub-center ArcFace: Boosting Face Recognition by Large-scale Noisy Web Faces",
        ECCV 2020. https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf
    """
    return _subcenter_arcface(
        "subcenter_arcface_loss", cosine, target, subcenters, scale, margin, fallback, gradient, weight,
        reduction,
    )  # fmt: skip


def _subcenter_arcface(
    fn: str,
    cosine: Tensor,
    target: Tensor,
    subcenters: int | None,
    scale: float | Tensor,
    margin: float,
    fallback: str,
    gradient: str,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """Sub-center ArcFace's body; errors name ``fn`` (the function or ``SubCenterArcFaceLoss``)."""
    check_floating(fn, "cosine", cosine)
    check_ndim(fn, "cosine", cosine, (2, 3), "(N, C, K) or (N, C * K)")
    if subcenters is not None:
        check_positive_int(fn, "subcenters", subcenters)
    if cosine.dim() == 2:
        if subcenters is None:
            raise ValueError(f"{fn}: expected subcenters=K with cosine of shape (N, C * K), got None")
        if cosine.shape[1] % subcenters != 0:
            raise ValueError(
                f"{fn}: expected cosine of shape (N, C * {subcenters}), got {tuple(cosine.shape)}"
            )
        cosine = cosine.unflatten(1, (cosine.shape[1] // subcenters, subcenters))
    elif subcenters is not None and cosine.shape[2] != subcenters:
        raise ValueError(f"{fn}: expected cosine of shape (N, C, {subcenters}), got {tuple(cosine.shape)}")
    # amax: the gradient goes to the dominant sub-centre (split evenly only on exact ties).
    return _arcface(fn, cosine.amax(dim=2), target, scale, margin, fallback, gradient, weight, reduction)


# --------------------------------------------------------------------------------------------------
# losses on features and class weights
# --------------------------------------------------------------------------------------------------


def _check_features(fn: str, input: object, weight: object, target: object) -> None:
    check_floating(fn, "input", input)
    check_floating(fn, "weight", weight)
    check_integer(fn, "target", target)
    assert isinstance(input, Tensor) and isinstance(weight, Tensor) and isinstance(target, Tensor)
    check_ndim(fn, "input", input, 2, "(N, D)")
    check_ndim(fn, "weight", weight, 2, "(C, D)")
    if weight.shape[1] != input.shape[1]:
        raise ValueError(
            f"{fn}: expected weight of shape (C, {input.shape[1]}) to match input {tuple(input.shape)}, "
            f"got {tuple(weight.shape)}"
        )
    if target.shape != input.shape[:1]:
        raise ValueError(
            f"{fn}: expected target of shape ({input.shape[0]},) to match input {tuple(input.shape)}, "
            f"got {tuple(target.shape)}"
        )


def _check_sample_weight(fn: str, name: str, sample_weight: Tensor | None, shape: torch.Size) -> None:
    """``check_weight`` whose message names the per-sample weights ``name`` (``weight`` is the class
    matrix of the functions here; their Modules take the per-sample weights as ``weight``)."""
    try:
        check_weight(fn, sample_weight, shape)
    except (TypeError, ValueError) as err:
        message = str(err).replace(f"{fn}: weight", f"{fn}: {name}").replace("got weight", f"got {name}")
        raise type(err)(message) from None


def _feature_dtypes(input: Tensor, weight: Tensor) -> torch.dtype:
    """Compute in float32 or wider, whatever the two dtypes (float32 master weights, half input, ...)."""
    return compute_dtype(torch.promote_types(input.dtype, weight.dtype))


def l2_softmax_alpha_lower_bound(num_classes: int, p: float) -> float:
    r"""Ranjan et al.'s lower bound on the L2-softmax feature norm :math:`\alpha`.

    .. math::
        \alpha_{\text{low}} = \log \frac{p\,(C - 2)}{1 - p}

    the smallest :math:`\alpha` for which a feature at its class centre can reach softmax probability
    :math:`p` among :math:`C` classes (the worst case: the other class weights spread on the sphere).

    Args:
        num_classes: :math:`C \ge 3`.
        p: target probability in ``(0, 1)``; the paper uses ``0.9``.

    Returns:
        :math:`\alpha_{\text{low}}` as a float.

    Raises:
        ValueError: if ``num_classes < 3`` or ``p`` is outside ``(0, 1)``.
        TypeError: if ``num_classes`` is not an int.

    Example:
        >>> round(l2_softmax_alpha_lower_bound(10_000, 0.9), 4)
        11.4074

    References:
        Ranjan, Castillo, Chellappa, "L2-constrained Softmax Loss for Discriminative Face
        Verification", 2017, Eq. 5. https://arxiv.org/abs/1703.09507
    """
    fn = "l2_softmax_alpha_lower_bound"
    c = check_positive_int(fn, "num_classes", num_classes)
    if c < 3:
        raise ValueError(f"{fn}: num_classes must be >= 3; got {num_classes}")
    q = check_interval(fn, "p", p, 0.0, 1.0, low_open=True, high_open=True)
    return math.log(q * (c - 2) / (1 - q))


def l2_softmax_loss(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    alpha: float | Tensor,
    bias: Tensor | None = None,
    sample_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""L2-constrained softmax: softmax cross-entropy on features rescaled to norm :math:`\alpha`.

    .. math::
        \ell_i = -\log \frac{e^{z_{i y_i}}}{\sum_j e^{z_{ij}}}, \qquad
        z_{ij} = W_j^\top \frac{\alpha\, x_i}{\|x_i\|} + b_j

    The class weights stay unnormalised (normalising them too gives :func:`normface_loss` with
    ``scale=alpha``).

    Args:
        input: features :math:`x`, shape ``(N, D)``.
        weight: class weights :math:`W` (the classifier's ``nn.Linear`` weight), shape ``(C, D)``.
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        alpha: feature norm :math:`\alpha > 0`, a number or a 0-dim tensor (the paper also learns it);
            see :func:`l2_softmax_alpha_lower_bound`. The paper reports 16 on 13k classes.
        bias: optional class biases :math:`b`, shape ``(C,)``. Default: ``None``.
        sample_weight: optional per-sample loss weights, broadcastable to ``(N,)`` (``weight`` is
            taken by the class weights, as the API pins).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: on mismatched shapes, a non-positive ``alpha`` or an unknown ``reduction``.
        TypeError: on non-float ``input``/``weight`` or a non-integer ``target``.

    Note:
        :math:`\|x_i\|` is clamped below at ``1e-12`` (as ``F.normalize``), so a zero feature gives finite
        logits :math:`b` and a zero gradient instead of NaN.

    Example:
        >>> input = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
        >>> weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> l2_softmax_loss(input, weight, torch.tensor([1, 0]), alpha=5.0, reduction="none")
        tensor([0.3133, 0.0067])

    References:
        Ranjan, Castillo, Chellappa, "L2-constrained Softmax Loss for Discriminative Face
        Verification", 2017. https://arxiv.org/abs/1703.09507
    """
    return _l2_softmax(
        "l2_softmax_loss", "sample_weight", input, weight, target, alpha, bias, sample_weight, reduction
    )


def _l2_softmax(
    fn: str,
    sw_name: str,
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    alpha: float | Tensor,
    bias: Tensor | None,
    sample_weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """L2-softmax's body; errors name ``fn`` and the per-sample weights ``sw_name``."""
    _check_features(fn, input, weight, target)
    if isinstance(alpha, Tensor):
        if not alpha.is_floating_point() or alpha.dim() != 0:
            raise TypeError(
                f"{fn}: alpha must be a number or a 0-dim floating-point tensor; "
                f"got a {alpha.dtype} tensor of shape {tuple(alpha.shape)}"
            )
    else:
        check_positive(fn, "alpha", alpha)
    if bias is not None:
        check_floating(fn, "bias", bias)
        if bias.shape != weight.shape[:1]:
            raise ValueError(f"{fn}: expected bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    check_reduction(fn, reduction)
    _check_sample_weight(fn, sw_name, sample_weight, target.shape)
    check_same_device(
        fn, ("input", input), ("weight", weight), ("target", target), ("alpha", alpha), ("bias", bias),
        (sw_name, sample_weight),
    )  # fmt: skip
    t = check_class_indices(fn, "target", target, weight.shape[0])
    ct, out_dtype = _feature_dtypes(input, weight), output_dtype(input)
    with no_autocast(input.device):
        a = alpha.to(ct) if isinstance(alpha, Tensor) else alpha
        x = F.normalize(input.to(ct), dim=1) * a  # (N, D)
        logits = F.linear(x, weight.to(ct), None if bias is None else bias.to(ct))  # (N, C)
        loss = F.cross_entropy(logits, t, reduction="none")
        return reduce_loss(loss, reduction, sample_weight).to(out_dtype)


def large_margin_softmax_loss(
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    margin: int = 4,
    lambda_: float | Tensor = 0.0,
    sample_weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""L-Softmax (large-margin softmax): a multiplicative angular margin on unnormalised weights.

    .. math::
        \ell_i = -\log \frac{e^{f_{y_i}}}{e^{f_{y_i}} + \sum_{j \ne y_i} e^{\|W_j\|\|x_i\| \cos\theta_j}},
        \qquad f_{y_i} = \|W_{y_i}\|\|x_i\|
        \,\frac{\lambda \cos\theta_{y_i} + \psi(\theta_{y_i})}{1 + \lambda}

    with :math:`\psi` as in :func:`sphereface_target_logit` (L-Softmax's :math:`D(\theta)` is the same
    monotone extension of :math:`\cos(m\theta)`); :math:`\lambda` is the paper's annealing weight
    (:func:`sphereface_lambda` gives a schedule). SphereFace is L-Softmax with normalised weights.

    Args:
        input: features :math:`x`, shape ``(N, D)``.
        weight: class weights :math:`W`, shape ``(C, D)``, no bias (the paper drops it).
        target: class indices, shape ``(N,)``, ``int64`` in ``[0, C)``.
        margin: integer margin :math:`m \ge 1`. Default: ``4`` (the paper uses 2, 3 and 4).
        lambda_: annealing weight :math:`\lambda \ge 0`, a number or a 0-dim tensor. Default: ``0.0``.
        sample_weight: optional per-sample loss weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input``.

    Raises:
        ValueError: on mismatched shapes, a bad hyperparameter or an unknown ``reduction``.
        TypeError: on non-float ``input``/``weight`` or a non-integer ``target`` or ``margin``.

    Note:
        The target cosine divides by :math:`\max(\|W_{y_i}\|\|x_i\|, 10^{-12})`, so a zero feature or
        weight row gives a zero logit rather than NaN.

    Example:
        >>> input = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
        >>> weight = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> large_margin_softmax_loss(input, weight, torch.tensor([1, 0]), margin=2, reduction="none")
        tensor([1.7839, 0.6931])

    References:
        Liu, Wen, Yu, Yang, "Large-Margin Softmax Loss for Convolutional Neural Networks", ICML 2016.
        https://arxiv.org/abs/1612.02295
    """
    return _large_margin_softmax(
        "large_margin_softmax_loss", "sample_weight", input, weight, target, margin, lambda_, sample_weight,
        reduction,
    )  # fmt: skip


def _large_margin_softmax(
    fn: str,
    sw_name: str,
    input: Tensor,
    weight: Tensor,
    target: Tensor,
    margin: int,
    lambda_: float | Tensor,
    sample_weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """L-Softmax's body; errors name ``fn`` and the per-sample weights ``sw_name``."""
    _check_features(fn, input, weight, target)
    m = _check_margin_int(fn, margin)
    _check_lambda(fn, lambda_)
    check_reduction(fn, reduction)
    _check_sample_weight(fn, sw_name, sample_weight, target.shape)
    check_same_device(
        fn, ("input", input), ("weight", weight), ("target", target), ("lambda_", lambda_),
        (sw_name, sample_weight),
    )  # fmt: skip
    t = check_class_indices(fn, "target", target, weight.shape[0])
    ct, out_dtype = _feature_dtypes(input, weight), output_dtype(input)
    with no_autocast(input.device):
        x, w = input.to(ct), weight.to(ct)
        logits = F.linear(x, w)  # (N, C) = |W_j||x| cos(theta_j)
        w_t = w.index_select(0, t)  # (N, D)
        norm = x.norm(dim=1) * w_t.norm(dim=1)  # (N,)
        dot = logits.gather(1, t.unsqueeze(1)).squeeze(1)  # (N,)
        # clamp: a zero feature or weight row would give 0/0.
        cos_t = (dot / norm.clamp_min(1e-12)).clamp(-1.0, 1.0)
        loss = _margin_ce(logits, t, norm * _sphereface_phi(cos_t, m, lambda_), 1.0)
        return reduce_loss(loss, reduction, sample_weight).to(out_dtype)
