"""Modules for the margin losses that own a classifier: L2-softmax, L-Softmax and sub-center ArcFace.

The maths lives in :mod:`losskit.functional.margin`; these Modules hold the class weights (and, for
L-Softmax's annealing, the iteration counter) and expose the plain logits for accuracy metrics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional import margin as M
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import (
    check_choice,
    check_floating,
    check_interval,
    check_nonnegative,
    check_positive,
    check_positive_int,
    compute_dtype,
    no_autocast,
    output_dtype,
)
from .margin import _check_embeddings

__all__ = ["L2SoftmaxLoss", "LargeMarginSoftmaxLoss", "SubCenterArcFaceLoss"]


def _check_sizes(name: str, embedding_dim: int, num_classes: int) -> None:
    check_positive_int(name, "embedding_dim", embedding_dim)
    check_positive_int(name, "num_classes", num_classes)


class L2SoftmaxLoss(nn.Module):
    """Module form of :func:`losskit.functional.l2_softmax_loss`, owning the linear classifier.

    Args:
        embedding_dim: feature size :math:`D`.
        num_classes: number of classes :math:`C`.
        alpha: feature norm :math:`\\alpha > 0` (see :func:`losskit.functional.l2_softmax_alpha_lower_bound`).
        bias: learn a class bias, as the paper's fully connected layer does. Default: ``False``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, D)``, ``target`` ``(N,)`` int64, optional ``weight`` (per-sample) ``(N,)``;
        output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        weight: class weights, Parameter ``(C, D)``, Xavier-uniform initialised.
        bias: class biases, Parameter ``(C,)`` (zeros), or ``None``.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        alpha: float,
        bias: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, embedding_dim, num_classes)
        self.alpha = check_positive(name, "alpha", alpha)
        check_reduction(name, reduction)
        self.reduction = reduction
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_classes, embedding_dim)))
        self.bias = nn.Parameter(torch.zeros(num_classes)) if bias else None

    def logits(self, input: Tensor) -> Tensor:
        """The classifier's logits on features rescaled to norm ``alpha``, shape ``(N, C)``."""
        _check_embeddings(type(self).__name__, input, self.weight.shape[1])
        return F.linear(F.normalize(input, dim=1) * self.alpha, self.weight, self.bias)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        _check_embeddings(name, input, self.weight.shape[1])
        return M._l2_softmax(
            name, "weight", input, self.weight, target, self.alpha, self.bias, weight, self.reduction
        )


class LargeMarginSoftmaxLoss(nn.Module):
    """Module form of :func:`losskit.functional.large_margin_softmax_loss`, owning the class weights.

    With ``anneal=True`` the blending weight follows :func:`losskit.functional.sphereface_lambda` over
    an ``iteration`` buffer that advances once per training-mode forward and survives ``state_dict``;
    otherwise ``lambda_`` is fixed.

    Args:
        embedding_dim: feature size :math:`D`.
        num_classes: number of classes :math:`C`.
        margin: integer margin :math:`m \\ge 1`. Default: ``4``.
        lambda_: fixed :math:`\\lambda \\ge 0` when ``anneal=False``. Default: ``0.0``.
        anneal: use the schedule below instead of ``lambda_``. Default: ``False``.
        base, gamma, power, lambda_min: the schedule, as in
            :func:`losskit.functional.sphereface_lambda`. Defaults: ``1000.0, 0.12, 1.0, 5.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, D)``, ``target`` ``(N,)`` int64, optional ``weight`` (per-sample) ``(N,)``;
        output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        weight: class weights, Parameter ``(C, D)``, Xavier-uniform initialised (no bias, as in the paper).
        iteration: buffer ``()`` int64, training-mode forwards seen so far.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        margin: int = 4,
        lambda_: float = 0.0,
        anneal: bool = False,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, embedding_dim, num_classes)
        self.margin = check_positive_int(name, "margin", margin)
        self.lambda_ = check_nonnegative(name, "lambda_", lambda_)
        if not isinstance(anneal, bool):
            raise TypeError(f"{name}: anneal must be a bool; got {type(anneal).__name__}")
        self.anneal = anneal
        self.schedule = {
            key: check_nonnegative(name, key, value)
            for key, value in (("base", base), ("gamma", gamma), ("power", power), ("lambda_min", lambda_min))
        }
        check_reduction(name, reduction)
        self.reduction = reduction
        self.weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_classes, embedding_dim)))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    def current_lambda(self) -> float | Tensor:
        """The :math:`\\lambda` the next forward uses (a 0-dim tensor when annealing: no host sync)."""
        if not self.anneal:
            return self.lambda_
        return M.sphereface_lambda(self.iteration, **self.schedule).to(self.weight.dtype)

    def logits(self, input: Tensor) -> Tensor:
        """The plain logits :math:`W x`, shape ``(N, C)``."""
        _check_embeddings(type(self).__name__, input, self.weight.shape[1])
        return F.linear(input, self.weight)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        _check_embeddings(name, input, self.weight.shape[1])
        loss = M._large_margin_softmax(
            name, "weight", input, self.weight, target, self.margin, self.current_lambda(), weight,
            self.reduction,
        )  # fmt: skip
        if self.training:
            with torch.no_grad():
                self.iteration.add_(1)
        return loss


class SubCenterArcFaceLoss(nn.Module):
    """Module form of :func:`losskit.functional.subcenter_arcface_loss`, owning ``K`` centres per class.

    Embeddings and centres are L2-normalised here; the cosines to all ``C * K`` sub-centres go to the
    function, which keeps the closest sub-centre of each class.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: number of classes :math:`C`.
        subcenters: sub-centres per class :math:`K`. Default: ``3`` (Deng et al. 2020).
        scale: :math:`s > 0`. Default: ``64.0``.
        margin: angular margin in radians. Default: ``0.5``.
        fallback: ``'linear'`` | ``'easy'`` | ``'none'``. Default: ``'linear'``.
        gradient: ``'exact'`` | ``'straight_through'``. Default: ``'exact'``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, D)``, ``target`` ``(N,)`` int64, optional ``weight`` (per-sample) ``(N,)``;
        output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        centers: sub-centres, Parameter ``(C, K, D)``, Xavier-uniform initialised over ``(C * K, D)``.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        subcenters: int = 3,
        scale: float = 64.0,
        margin: float = 0.5,
        fallback: M.Fallback = "linear",
        gradient: M.Gradient = "exact",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_sizes(name, embedding_dim, num_classes)
        self.subcenters = check_positive_int(name, "subcenters", subcenters)
        self.scale = check_positive(name, "scale", scale)
        self.margin = check_interval(name, "margin", margin, 0.0, math.pi)
        check_choice(name, "fallback", fallback, ("linear", "easy", "none"))
        check_choice(name, "gradient", gradient, ("exact", "straight_through"))
        self.fallback, self.gradient = fallback, gradient
        check_reduction(name, reduction)
        self.reduction = reduction
        centers = torch.empty(num_classes * subcenters, embedding_dim)
        nn.init.xavier_uniform_(centers)
        self.centers = nn.Parameter(centers.view(num_classes, subcenters, embedding_dim))

    def cosine(self, input: Tensor) -> Tensor:
        """Cosines to every sub-centre, shape ``(N, C * K)``, class-major, in float32 or wider.

        ArcFaceLoss's dtype rule: computed in the promoted dtype of ``input`` and the centres (float32
        for float16/bfloat16), autocast off, so float32 master weights serve any input dtype.
        """
        _check_embeddings(type(self).__name__, input, self.centers.shape[2])
        ct = compute_dtype(torch.promote_types(input.dtype, self.centers.dtype))
        with no_autocast(input.device):
            x = F.normalize(input.to(ct), dim=1)
            return F.linear(x, F.normalize(self.centers.flatten(0, 1).to(ct), dim=1))

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine to each class's closest sub-centre, without margin, shape ``(N, C)``."""
        return self.scale * self.cosine(input).unflatten(1, (-1, self.subcenters)).amax(dim=2)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        check_floating(name, "input", input)
        loss = M._subcenter_arcface(
            name, self.cosine(input), target, self.subcenters, self.scale, self.margin, self.fallback,
            self.gradient, weight, self.reduction,
        )  # fmt: skip
        return loss.to(output_dtype(input))
