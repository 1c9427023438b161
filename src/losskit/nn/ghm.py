"""Modules for the GHM losses; the maths lives in :mod:`losskit.functional.ghm`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..functional import ghm as G
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_choice, check_interval, check_positive, check_positive_int

__all__ = ["GHMCLoss", "GHMRLoss"]


class _GHMBase(nn.Module):
    def __init__(self, bins: int, momentum: float, normalization: str, reduction: Reduction) -> None:
        super().__init__()
        name = type(self).__name__
        self.bins = check_positive_int(name, "bins", bins)
        self.momentum = check_interval(name, "momentum", momentum, 0.0, 1.0, high_open=True)
        check_choice(name, "normalization", normalization, ("nonempty", "all"))
        check_reduction(name, reduction)
        self.normalization, self.reduction = normalization, reduction
        self.register_buffer("running_counts", torch.zeros(bins))

    def _state(self) -> dict:
        # training: moving-average counts, updated in place; eval: the batch's own histogram, no update.
        if self.training:
            return {"momentum": self.momentum, "running_counts": self.running_counts}
        return {"momentum": 0.0, "running_counts": None}


class GHMCLoss(_GHMBase):
    """Module form of :func:`losskit.functional.ghmc_loss`.

    In training mode the moving-average counts live in the buffer ``running_counts`` and are updated in
    place (under ``no_grad``) on every call; in eval mode the weights come from the batch alone and the
    buffer is left untouched.

    Args:
        bins: number of bins ``>= 1``. Default: ``10``.
        momentum: in ``[0, 1)``. Default: ``0.0``.
        normalization: ``'nonempty'`` or ``'all'``. Default: ``'nonempty'``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input``, ``target`` and ``label_weight`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.

    Attributes:
        running_counts: buffer ``(bins,)``, the moving-average bin counts (starts at 0).
    """

    def __init__(
        self,
        *,
        bins: int = 10,
        momentum: float = 0.0,
        normalization: G.Normalization = "nonempty",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(bins, momentum, normalization, reduction)

    def forward(
        self, input: Tensor, target: Tensor, label_weight: Tensor | None = None, weight: Tensor | None = None
    ) -> Tensor:
        return G.ghmc_loss(
            input,
            target,
            bins=self.bins,
            label_weight=label_weight,
            normalization=self.normalization,
            weight=weight,
            reduction=self.reduction,
            **self._state(),
        )


class GHMRLoss(_GHMBase):
    """Module form of :func:`losskit.functional.ghmr_loss`; state handled as in :class:`GHMCLoss`.

    Args:
        mu: ASL1 smoothness ``> 0``. Default: ``0.02``.
        bins: number of bins ``>= 1``. Default: ``10``.
        momentum: in ``[0, 1)``. Default: ``0.0``.
        normalization: ``'nonempty'`` or ``'all'``. Default: ``'nonempty'``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``input``, ``target`` and ``label_weight`` ``(*)``; output ``(*)`` for ``'none'``, else a scalar.

    Attributes:
        running_counts: buffer ``(bins,)``, the moving-average bin counts (starts at 0).
    """

    def __init__(
        self,
        *,
        mu: float = 0.02,
        bins: int = 10,
        momentum: float = 0.0,
        normalization: G.Normalization = "nonempty",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(bins, momentum, normalization, reduction)
        self.mu = check_positive(type(self).__name__, "mu", mu)

    def forward(
        self, input: Tensor, target: Tensor, label_weight: Tensor | None = None, weight: Tensor | None = None
    ) -> Tensor:
        return G.ghmr_loss(
            input,
            target,
            mu=self.mu,
            bins=self.bins,
            label_weight=label_weight,
            normalization=self.normalization,
            weight=weight,
            reduction=self.reduction,
            **self._state(),
        )
