"""Modules for the metric-learning losses; the maths lives in :mod:`losskit.functional.metric`.

Each Module calls the family's one definition with its own name, so every error names the Module.
"""

from __future__ import annotations

from typing import Literal, cast, overload

import torch
from torch import Tensor, nn

from ..functional import metric as M
from ..functional._reduction import Reduction, check_reduction, reject_legacy_reduction
from ..functional._validation import (
    check_interval,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

__all__ = [
    "BatchContrastiveLoss",
    "CenterLoss",
    "ContrastiveLoss",
    "FaceNetTripletLoss",
    "TripletLoss",
    "TripletMarginLoss",
]


class CenterLoss(nn.Module):
    """Module form of :func:`losskit.functional.center_loss`, owning the class centres.

    With ``learnable=False`` (the paper) the centres are a buffer that :meth:`forward` moves in training
    mode by :func:`losskit.functional.update_centers`, after computing the loss with the old centres and
    independently of the optimiser; in eval mode they do not move. With ``learnable=True`` they are a
    Parameter that the optimiser trains through the loss's gradient instead.

    Args:
        num_classes: ``C``, ``>= 1``.
        embedding_dim: ``D``, ``>= 1``.
        alpha: centre learning rate of the update rule, in ``[0, 1]``. Default: ``0.5``.
        learnable: centres as a Parameter instead of a buffer. Default: ``False``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input`` ``(N, D)``, ``target`` ``(N,)`` integer; output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        centers: ``(C, D)``, initialised to zero (the update rule moves each centre to its class mean
            within a few steps); a buffer, or a Parameter with ``learnable=True``. In the ``state_dict``.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        alpha: float = 0.5,
        learnable: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_positive_int(name, "num_classes", num_classes)
        check_positive_int(name, "embedding_dim", embedding_dim)
        self.alpha = check_interval(name, "alpha", alpha, 0.0, 1.0)
        check_reduction(name, reduction)
        self.learnable = bool(learnable)
        self.reduction = reduction
        centers = torch.zeros(num_classes, embedding_dim)
        if self.learnable:
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        d = self.centers.shape[1]
        if isinstance(input, Tensor) and (input.dim() != 2 or input.shape[1] != d):
            raise ValueError(
                f"{name}: expected input of shape (N, embedding_dim={d}), got {tuple(input.shape)}"
            )
        loss = M._center_loss(name, input, target, self.centers, weight, self.reduction)
        if self.training and not self.learnable:
            M._update_centers(name, self.centers, input, target, self.alpha)
        return loss

    def extra_repr(self) -> str:
        c, d = self.centers.shape
        return f"{c}, {d}, alpha={self.alpha}, learnable={self.learnable}, reduction={self.reduction!r}"


class ContrastiveLoss(nn.Module):
    """Module form of :func:`losskit.functional.contrastive_loss`.

    Args:
        margin: distance beyond which different-identity pairs cost nothing, ``>= 0``. Default: ``1.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``x1``, ``x2`` ``(N, D)``, ``same`` ``(N,)`` bool; output ``(N,)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, margin: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.margin = check_nonnegative(type(self).__name__, "margin", margin)
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, x1: Tensor, x2: Tensor, same: Tensor, weight: Tensor | None = None) -> Tensor:
        return M._contrastive(type(self).__name__, x1, x2, same, self.margin, weight, self.reduction)


class BatchContrastiveLoss(nn.Module):
    """Module form of :func:`losskit.functional.batch_contrastive_loss`.

    Args:
        margin: distance beyond which different-identity pairs cost nothing, ``>= 0``. Default: ``1.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``embeddings`` ``(B, D)``, ``labels`` ``(B,)`` integer; output ``(B,)`` for ``'none'``, else a
        scalar. The optional candidate set is passed to :meth:`forward` as in the function.
    """

    def __init__(self, *, margin: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.margin = check_nonnegative(type(self).__name__, "margin", margin)
        check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        *,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
        anchor_offset: int | None = 0,
    ) -> Tensor:
        return M._batch_contrastive(
            type(self).__name__,
            embeddings,
            labels,
            self.margin,
            ref_embeddings,
            ref_labels,
            anchor_offset,
            weight,
            self.reduction,
        )


class TripletMarginLoss(nn.Module):
    """Module form of :func:`losskit.functional.triplet_margin_loss`: torch's ``TripletMarginLoss``.

    The constructor has torch's signature and defaults; ``size_average``/``reduce`` (deprecated in
    torch) must be ``None``.

    Args:
        margin: ``> 0``. Default: ``1.0``.
        p: the norm degree of the pairwise distance. Default: ``2.0``.
        eps: added to each difference. Default: ``1e-6``.
        swap: the distance swap of Balntas et al. Default: ``False``.
        size_average: must be ``None`` (use ``reduction``).
        reduce: must be ``None`` (use ``reduction``).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``anchor``, ``positive``, ``negative`` ``(N, D)`` or ``(D,)``; output ``(N,)`` for ``'none'``,
        else a scalar.
    """

    def __init__(
        self,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        size_average=None,
        reduce=None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        reject_legacy_reduction(name, size_average, reduce)
        self.margin = check_positive(name, "margin", margin)
        self.p = check_interval(name, "p", p)
        self.eps = check_interval(name, "eps", eps)
        if not isinstance(swap, bool):
            raise TypeError(f"{name}: swap must be a bool; got {type(swap).__name__}")
        check_reduction(name, reduction)
        self.swap, self.reduction = swap, reduction

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return M._triplet_margin(
            type(self).__name__,
            anchor,
            positive,
            negative,
            self.margin,
            self.p,
            self.eps,
            self.swap,
            cast(Reduction, self.reduction),
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, p={self.p}, eps={self.eps}, swap={self.swap}, "
            f"reduction={self.reduction!r}"
        )


class FaceNetTripletLoss(nn.Module):
    """Module form of :func:`losskit.functional.facenet_triplet_loss` (squared distances, margin 0.2).

    Args:
        margin: ``>= 0``, in squared-distance units. Default: ``0.2`` (FaceNet).
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``anchor``, ``positive``, ``negative`` ``(N, D)``; optional ``weight`` broadcastable to ``(N,)``;
        output ``(N,)`` for ``'none'``, else a scalar.
    """

    def __init__(self, *, margin: float = 0.2, reduction: Reduction = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        self.margin = check_nonnegative(name, "margin", margin)
        check_reduction(name, reduction)
        self.reduction = reduction

    def forward(
        self, anchor: Tensor, positive: Tensor, negative: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        return M._facenet_triplet(
            type(self).__name__, anchor, positive, negative, self.margin, weight, self.reduction
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


class TripletLoss(nn.Module):
    """Module form of :func:`losskit.functional.batch_triplet_loss` (triplet loss with online mining).

    Holds no state: statistics are returned by :meth:`forward` when asked for (``return_stats=True``),
    never cached on the Module.

    Args:
        margin: ``>= 0``, in the units of ``distance``; unused with ``soft_margin``. Default: ``0.2``.
        mining: ``'batch_hard'`` | ``'semi_hard'`` | ``'batch_all'``. Default: ``'batch_hard'``.
        distance: ``'euclidean'`` | ``'squared_euclidean'``. Default: ``'euclidean'``.
        soft_margin: ``log(1 + exp(z))`` instead of the hinge (not with ``'batch_all'``). Default: ``False``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``embeddings`` ``(B, D)``, ``labels`` ``(B,)`` integer; output ``(B,)`` for ``'none'``, else a
        scalar; with ``return_stats=True`` the pair ``(loss, TripletStats)``. The optional candidate set
        is passed to :meth:`forward` as in the function.
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        mining: M.Mining = "batch_hard",
        distance: M.Distance = "euclidean",
        soft_margin: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.margin = M.check_triplet_hyperparameters(name, margin, mining, distance, soft_margin, False)
        check_reduction(name, reduction)
        self.mining, self.distance = mining, distance
        self.soft_margin, self.reduction = soft_margin, reduction

    @overload
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        *,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
        anchor_offset: int | None = 0,
        return_stats: Literal[False] = False,
    ) -> Tensor: ...

    @overload
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        *,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
        anchor_offset: int | None = 0,
        return_stats: Literal[True],
    ) -> tuple[Tensor, M.TripletStats]: ...

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        weight: Tensor | None = None,
        *,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
        anchor_offset: int | None = 0,
        return_stats: bool = False,
    ) -> Tensor | tuple[Tensor, M.TripletStats]:
        return M._batch_triplet(
            type(self).__name__,
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            distance=self.distance,
            soft_margin=self.soft_margin,
            ref_embeddings=ref_embeddings,
            ref_labels=ref_labels,
            anchor_offset=anchor_offset,
            return_stats=return_stats,
            weight=weight,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, mining={self.mining!r}, distance={self.distance!r}, "
            f"soft_margin={self.soft_margin}, reduction={self.reduction!r}"
        )
