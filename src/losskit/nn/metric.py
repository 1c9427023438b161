"""Modules for the metric-learning losses; the maths lives in :mod:`losskit.functional.metric`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..functional import metric as M
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_choice, check_interval, check_nonnegative, check_positive_int

__all__ = [
    "BatchContrastiveLoss",
    "CenterLoss",
    "ContrastiveLoss",
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
        loss = M.center_loss(input, target, self.centers, weight=weight, reduction=self.reduction)
        if self.training and not self.learnable:
            M.update_centers(self.centers, input, target, alpha=self.alpha)
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
        return M.contrastive_loss(x1, x2, same, margin=self.margin, weight=weight, reduction=self.reduction)


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
        return M.batch_contrastive_loss(
            embeddings,
            labels,
            margin=self.margin,
            ref_embeddings=ref_embeddings,
            ref_labels=ref_labels,
            anchor_offset=anchor_offset,
            weight=weight,
            reduction=self.reduction,
        )


class TripletMarginLoss(nn.Module):
    """Module form of :func:`losskit.functional.triplet_margin_loss`.

    Args:
        margin: ``>= 0``, in the units of ``distance``. Default: ``0.2`` (FaceNet).
        distance: ``'squared_euclidean'`` | ``'euclidean'``. Default: ``'squared_euclidean'``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``anchor``, ``positive``, ``negative`` ``(N, D)``; output ``(N,)`` for ``'none'``, else a scalar.
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        distance: M.Distance = "squared_euclidean",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.margin = check_nonnegative(name, "margin", margin)
        check_choice(name, "distance", distance, M.DISTANCES)
        check_reduction(name, reduction)
        self.distance, self.reduction = distance, reduction

    def forward(
        self, anchor: Tensor, positive: Tensor, negative: Tensor, weight: Tensor | None = None
    ) -> Tensor:
        return M.triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            distance=self.distance,
            weight=weight,
            reduction=self.reduction,
        )


class TripletLoss(nn.Module):
    """Module form of :func:`losskit.functional.batch_triplet_loss` (triplet loss with online mining).

    Args:
        margin: ``>= 0``, in the units of ``distance``; unused with ``soft_margin``. Default: ``0.2``.
        mining: ``'batch_hard'`` | ``'semi_hard'`` | ``'batch_all'``. Default: ``'batch_hard'``.
        distance: ``'euclidean'`` | ``'squared_euclidean'``. Default: ``'euclidean'``.
        soft_margin: ``log(1 + exp(z))`` instead of the hinge (not with ``'batch_all'``). Default: ``False``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``embeddings`` ``(B, D)``, ``labels`` ``(B,)`` integer; output ``(B,)`` for ``'none'``, else a
        scalar. The optional candidate set is passed to :meth:`forward` as in the function.

    Attributes:
        active_fraction: 0-d tensor, the fraction of valid triplets with a non-zero loss in the last
            :meth:`forward` (detached, left on the device: reading it is the caller's sync). A
            non-persistent buffer: not in the ``state_dict``.
    """

    active_fraction: Tensor

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
        self.margin = check_nonnegative(name, "margin", margin)
        check_choice(name, "mining", mining, M.MININGS)
        check_choice(name, "distance", distance, M.DISTANCES)
        if not isinstance(soft_margin, bool):
            raise TypeError(f"{name}: soft_margin must be a bool; got {type(soft_margin).__name__}")
        if soft_margin and mining == "batch_all":
            raise ValueError(
                f"{name}: soft_margin must be False with mining='batch_all'; got soft_margin=True"
            )
        check_reduction(name, reduction)
        self.mining, self.distance = mining, distance
        self.soft_margin, self.reduction = soft_margin, reduction
        self.register_buffer("active_fraction", torch.zeros(()), persistent=False)

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
        loss, stats = M.batch_triplet_loss(
            embeddings,
            labels,
            margin=self.margin,
            mining=self.mining,
            distance=self.distance,
            soft_margin=self.soft_margin,
            ref_embeddings=ref_embeddings,
            ref_labels=ref_labels,
            anchor_offset=anchor_offset,
            return_stats=True,
            weight=weight,
            reduction=self.reduction,
        )
        self.active_fraction = stats.active_fraction.detach()
        return loss
