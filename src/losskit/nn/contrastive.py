"""Modules for the contrastive losses; the maths lives in :mod:`losskit.functional.contrastive`.

With ``process_group`` set, each Module computes its cross-rank form from
:mod:`losskit.distributed` (each rank's rows against the global batch, exact gradients); ``None`` is
one process.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..functional import contrastive as C
from ..functional._reduction import Reduction, check_reduction
from ..functional._validation import check_choice, check_positive

__all__ = [
    "ClipLoss",
    "NTXentLoss",
    "SigLipLoss",
    "SupConLoss",
]


def _common(module: nn.Module, chunk_size: int | None, process_group: Any, reduction: str) -> None:
    name = type(module).__name__
    C.check_chunk_size(name, chunk_size)
    check_reduction(name, reduction)  # fail at construction, not at step 10 000
    module.chunk_size, module.process_group, module.reduction = chunk_size, process_group, reduction


class NTXentLoss(nn.Module):
    """Module form of :func:`losskit.functional.nt_xent_loss`; see it for the maths.

    Args:
        temperature: ``> 0``. Default: ``0.07``.
        chunk_size: candidate columns per block of the chunked kernel. Default: ``None`` (automatic).
        process_group: ``None`` (one process) or a ``torch.distributed`` group: then
            :func:`losskit.distributed.cross_rank_nt_xent_loss`. Default: ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``embeddings`` ``(B, D)``, ``labels`` ``(B,)`` integer identities, optional ``weight``
        broadcastable to ``(B,)``; output ``(B,)`` for ``'none'``, else a scalar.

    Attributes:
        None: the Module holds no tensors.
    """

    def __init__(
        self,
        *,
        temperature: float = 0.07,
        chunk_size: int | None = None,
        process_group: Any = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.temperature = check_positive(type(self).__name__, "temperature", temperature)
        _common(self, chunk_size, process_group, reduction)

    def forward(self, embeddings: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        if self.process_group is None:
            return C.nt_xent(
                name, embeddings, labels, self.temperature, self.chunk_size, weight, self.reduction
            )
        from ..distributed import contrastive as D  # lazy: torch.distributed only when used

        return D.nt_xent(
            name, embeddings, labels, self.process_group, self.temperature, self.chunk_size, weight,
            self.reduction,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


class SupConLoss(nn.Module):
    """Module form of :func:`losskit.functional.supcon_loss`; see it for the maths.

    Args:
        temperature: ``> 0``. Default: ``0.07`` (SupContrast's).
        base_temperature: ``> 0``. Default: ``0.07`` (SupContrast's).
        chunk_size: candidate columns per block of the chunked kernel. Default: ``None`` (automatic).
        process_group: ``None`` (one process) or a ``torch.distributed`` group: then
            :func:`losskit.distributed.cross_rank_supcon_loss`. Default: ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``embeddings`` ``(B, D)``, ``labels`` ``(B,)`` integer identities, optional ``weight``
        broadcastable to ``(B,)``; output ``(B,)`` for ``'none'``, else a scalar.

    Attributes:
        None: the Module holds no tensors.
    """

    def __init__(
        self,
        *,
        temperature: float = 0.07,
        base_temperature: float = 0.07,
        chunk_size: int | None = None,
        process_group: Any = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.temperature = check_positive(name, "temperature", temperature)
        self.base_temperature = check_positive(name, "base_temperature", base_temperature)
        _common(self, chunk_size, process_group, reduction)

    def forward(self, embeddings: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        hyper = (self.temperature, self.base_temperature, self.chunk_size, weight, self.reduction)
        if self.process_group is None:
            return C.supcon(name, embeddings, labels, *hyper)
        from ..distributed import contrastive as D  # lazy: torch.distributed only when used

        return D.supcon(name, embeddings, labels, self.process_group, *hyper)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, base_temperature={self.base_temperature}, "
            f"reduction={self.reduction!r}"
        )


class ClipLoss(nn.Module):
    """Module form of :func:`losskit.functional.clip_loss`; see it for the maths.

    Called as open_clip's ``ClipLoss``: ``loss(image_features, text_features, logit_scale)``, the
    logit scale (already exponentiated) owned by the model. The distributed options of open_clip
    (``local_loss``, ``gather_with_grad``, ``rank``, ``world_size``) are replaced by
    ``process_group``, with exact gradients for uneven per-rank batches.

    Args:
        chunk_size: text columns per block of the chunked kernel. Default: ``None`` (automatic).
        process_group: ``None`` (one process) or a ``torch.distributed`` group: then
            :func:`losskit.distributed.cross_rank_clip_loss`. Default: ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``image_features``, ``text_features`` ``(N, D)``, ``logit_scale`` a number or 0-dim tensor,
        optional ``weight`` broadcastable to ``(N,)``; output ``(N,)`` for ``'none'``, else a scalar.

    Attributes:
        None: the Module holds no tensors.
    """

    def __init__(
        self, *, chunk_size: int | None = None, process_group: Any = None, reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        _common(self, chunk_size, process_group, reduction)

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: float | Tensor,
        weight: Tensor | None = None,
    ) -> Tensor:
        name = type(self).__name__
        if self.process_group is None:
            return C.clip(
                name, image_features, text_features, logit_scale, self.chunk_size, weight, self.reduction
            )
        from ..distributed import contrastive as D  # lazy: torch.distributed only when used

        return D.clip(
            name, image_features, text_features, logit_scale, self.process_group, self.chunk_size, weight,
            self.reduction,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class SigLipLoss(nn.Module):
    """Module form of :func:`losskit.functional.siglip_loss`; see it for the maths.

    Called as open_clip's ``SigLipLoss``: ``loss(image_features, text_features, logit_scale,
    logit_bias)``, both owned by the model. open_clip's ``rank``/``world_size``/``dist_impl`` are
    replaced by ``process_group`` and ``exchange``.

    Args:
        chunk_size: text columns per block of the chunked kernel. Default: ``None`` (automatic).
        process_group: ``None`` (one process) or a ``torch.distributed`` group: then
            :func:`losskit.distributed.cross_rank_siglip_loss`. Default: ``None``.
        exchange: with a group, ``'gather'`` (every rank gathers all texts) or ``'ring'`` (the paper's:
            text blocks travel around the ranks). Default: ``'gather'``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. Default: ``'mean'``.

    Shape:
        ``image_features``, ``text_features`` ``(N, D)``, ``logit_scale``/``logit_bias`` numbers or
        0-dim tensors, optional ``weight`` broadcastable to ``(N,)``; output ``(N,)`` for ``'none'``,
        else a scalar.

    Attributes:
        None: the Module holds no tensors.
    """

    def __init__(
        self,
        *,
        chunk_size: int | None = None,
        process_group: Any = None,
        exchange: str = "gather",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_choice(type(self).__name__, "exchange", exchange, ("gather", "ring"))
        self.exchange = exchange
        _common(self, chunk_size, process_group, reduction)

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: float | Tensor,
        logit_bias: float | Tensor,
        weight: Tensor | None = None,
    ) -> Tensor:
        name = type(self).__name__
        if self.process_group is None:
            return C.siglip(
                name, image_features, text_features, logit_scale, logit_bias, self.chunk_size, weight,
                self.reduction,
            )  # fmt: skip
        from ..distributed import contrastive as D  # lazy: torch.distributed only when used

        return D.siglip(
            name, image_features, text_features, logit_scale, logit_bias, self.process_group,
            self.exchange, self.chunk_size, weight, self.reduction,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"exchange={self.exchange!r}, reduction={self.reduction!r}"
