r"""Margin-softmax Modules that own the class centres: ArcFace, CosFace, AM-Softmax, combined margins,
SphereFace and NormFace/COCO.

Each Module holds the Parameter ``centers`` of shape ``(local_num_classes, embedding_dim)``, takes
embeddings ``(N, D)`` and global class ids ``(N,)``, and computes its loss with the fused, chunked
:func:`losskit.functional.margin_softmax_loss`: the ``(N, C)`` logits are never held, whatever the
number of classes. The margin maths is the target-logit function of :mod:`losskit.functional.margin`,
so the loss equals (to rounding) normalising embeddings and centres, forming the cosine logits and
calling the matching cosine-logit function (``arcface_loss``, ``cosface_loss``, ...).

With ``process_group`` set, the classes are sharded over the group's ranks: rank ``r`` holds the
classes ``torch.tensor_split(torch.arange(num_classes), world_size)[r]`` (a contiguous block, see
:func:`losskit.distributed.class_shard`) and the same function runs class-parallel on them. Labels
are always global class ids.

Mixed precision: the centres stay in their own dtype (float32 master weights under autocast);
cosines and the loss are computed in float32 when either side is float16/bfloat16.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _comm
from .._kernels.streaming import KEEP_BUDGET
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
)
from ..functional.fused import TargetLogit, _check_budget, _margin_softmax

__all__ = [
    "AMSoftmaxLoss",
    "ArcFaceLoss",
    "CombinedMarginLoss",
    "CosFaceLoss",
    "NormFaceLoss",
    "SphereFaceLoss",
]


def _setup(
    module: nn.Module,
    embedding_dim: int,
    num_classes: int,
    chunk_size: int | None,
    keep_budget: int,
    process_group: Any,
    sample_rate: float,
    reduction: Reduction,
) -> None:
    """Check and store the arguments every Module here shares; create the centres."""
    name = type(module).__name__
    check_positive_int(name, "embedding_dim", embedding_dim)
    check_positive_int(name, "num_classes", num_classes)
    if chunk_size is not None:
        check_positive_int(name, "chunk_size", chunk_size)
    _check_budget(name, keep_budget)
    check_interval(name, "sample_rate", sample_rate, 0.0, 1.0, low_open=True)
    check_reduction(name, reduction)
    module.embedding_dim, module.num_classes = embedding_dim, num_classes
    module.chunk_size, module.keep_budget = chunk_size, keep_budget
    module.process_group, module.sample_rate, module.reduction = process_group, sample_rate, reduction
    rank, world_size = _comm.world(process_group)
    start, stop = _comm.class_block(num_classes, world_size, rank)
    module.class_offset, local = start, stop - start
    # Xavier-uniform bound of the full (C, D) matrix, drawn for this rank's block only
    bound = math.sqrt(6.0 / (num_classes + embedding_dim))
    module.centers = nn.Parameter(torch.empty(local, embedding_dim).uniform_(-bound, bound))


def _check_embeddings(name: str, input: object, embedding_dim: int) -> None:
    """Raise unless ``input`` is ``(N, embedding_dim)``: the Module's message, not the function's."""
    if isinstance(input, Tensor) and (input.dim() != 2 or input.shape[1] != embedding_dim):
        raise ValueError(
            f"{name}: expected input of shape (N, {embedding_dim}) (its last dimension must be "
            f"embedding_dim={embedding_dim}), got {tuple(input.shape)}"
        )


def _loss(
    module: nn.Module,
    input: Tensor,
    target: Tensor,
    target_logit: TargetLogit,
    scale: float | Tensor,
    weight: Tensor | None,
) -> Tensor:
    """The Module's loss: :func:`losskit.functional.margin_softmax_loss` on its centres (sharded over
    its process group if it has one), with errors naming the Module."""
    name = type(module).__name__
    _check_embeddings(name, input, module.embedding_dim)
    return _margin_softmax(
        name, input, module.centers, target, target_logit=target_logit, scale=scale,
        chunk_size=module.chunk_size, keep_budget=module.keep_budget, process_group=module.process_group,
        num_classes=module.num_classes, sample_rate=module.sample_rate, weight=weight,
        reduction=module.reduction,
    )  # fmt: skip


def _cosine(module: nn.Module, input: Tensor) -> Tensor:
    """Cosines between the embeddings and this process's centres, ``(N, C_local)``, in float32 or wider."""
    _check_embeddings(type(module).__name__, input, module.embedding_dim)
    ct = compute_dtype(torch.promote_types(input.dtype, module.centers.dtype))
    with no_autocast(input.device):
        return F.normalize(input.to(ct), dim=1) @ F.normalize(module.centers.to(ct), dim=1).T


_COMMON_ARGS = """
        chunk_size: classes per chunk of the fused loss; ``None`` picks it from a memory budget (see
            :func:`losskit.functional.margin_softmax_loss`). Default: ``None``.
        keep_budget: bytes of logit chunks kept from forward for backward beyond those written into
            the centres' gradient buffer (``0``: keep none, recompute all; see
            :func:`losskit.functional.margin_softmax_loss`). Default: ``48 * 2**20``.
        process_group: ``None`` (one process) or a ``torch.distributed`` group to shard the classes
            over (rank ``r`` holds block ``r`` of ``torch.tensor_split(arange(C), world_size)``).
            Default: ``None``.
        sample_rate: Partial-FC share of centres kept per step (positives always), in ``(0, 1]``.
            Default: ``1.0``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the (global) batch size.
            Default: ``'mean'``."""

_COMMON_SHAPE = """
    Shape:
        ``input`` ``(N, D)``; ``target`` ``(N,)`` integer global class ids; optional ``weight``
        (per-sample) broadcastable to ``(N,)``; output ``(N,)`` for ``'none'``, else a scalar, dtype of
        ``input``. :meth:`logits` returns ``(N, C_local)``.

    Attributes:
        centers: Parameter ``(C_local, D)``: this process's class centres (all ``C`` without a process
            group), Xavier-uniform initialised for the full ``(C, D)`` matrix, in their own dtype.
        class_offset: the global id of ``centers[0]`` (an int; 0 without a process group)."""


class ArcFaceLoss(nn.Module):
    __doc__ = f"""ArcFace on embeddings with its own class centres; the maths is in
    :func:`losskit.functional.arcface_loss`, computed by :func:`losskit.functional.margin_softmax_loss`.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        scale: :math:`s > 0`. Default: ``64.0`` (Deng et al.).
        margin: angular margin in radians, ``[0, pi]``. Default: ``0.5`` (Deng et al.).
        fallback: ``'linear'`` | ``'easy'`` | ``'none'``. Default: ``'linear'`` (the authors' code).
        gradient: ``'exact'`` | ``'straight_through'``. Default: ``'exact'``.{_COMMON_ARGS}
{_COMMON_SHAPE}

    Example:
        >>> loss_fn = ArcFaceLoss(8, 10)
        >>> loss = loss_fn(torch.randn(4, 8), torch.tensor([0, 3, 9, 3]))
        >>> loss.backward(); loss_fn.centers.grad.shape
        torch.Size([10, 8])
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        scale: float = 64.0,
        margin: float = 0.5,
        fallback: M.Fallback = "linear",
        gradient: M.Gradient = "exact",
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.scale = check_positive(name, "scale", scale)
        self.margin = check_interval(name, "margin", margin, 0.0, math.pi)
        check_choice(name, "fallback", fallback, ("linear", "easy", "none"))
        check_choice(name, "gradient", gradient, ("exact", "straight_through"))
        self.fallback, self.gradient = fallback, gradient
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine logits ``scale * cos`` (no margin), ``(N, C_local)``, for accuracy metrics."""
        return self.scale * _cosine(self, input)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        phi = functools.partial(
            M.arcface_target_logit, margin=self.margin, fallback=self.fallback, gradient=self.gradient
        )
        return _loss(self, input, target, phi, self.scale, weight)


class CosFaceLoss(nn.Module):
    __doc__ = f"""CosFace (large margin cosine loss) on embeddings with its own class centres; the maths is
    in :func:`losskit.functional.cosface_loss`. :class:`AMSoftmaxLoss` is the same loss with AM-Softmax's
    defaults.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        scale: :math:`s > 0`. Default: ``64.0`` (Wang et al., CosFace).
        margin: cosine margin :math:`m \\ge 0`. Default: ``0.35``.{_COMMON_ARGS}
{_COMMON_SHAPE}

    Example:
        >>> loss = CosFaceLoss(8, 10)(torch.randn(4, 8), torch.tensor([0, 3, 9, 3]))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        scale: float = 64.0,
        margin: float = 0.35,
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.scale = check_positive(name, "scale", scale)
        self.margin = check_nonnegative(name, "margin", margin)
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine logits ``scale * cos`` (no margin), ``(N, C_local)``, for accuracy metrics."""
        return self.scale * _cosine(self, input)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        phi = functools.partial(M.cosface_target_logit, margin=self.margin)
        return _loss(self, input, target, phi, self.scale, weight)


class AMSoftmaxLoss(nn.Module):
    __doc__ = f"""AM-Softmax on embeddings with its own class centres; the maths is in
    :func:`losskit.functional.am_softmax_loss` (the formula of CosFace, with AM-Softmax's ``s = 30``).

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        scale: :math:`s > 0`. Default: ``30.0`` (Wang et al., AM-Softmax).
        margin: cosine margin :math:`m \\ge 0`. Default: ``0.35``.{_COMMON_ARGS}
{_COMMON_SHAPE}

    Example:
        >>> loss = AMSoftmaxLoss(8, 10)(torch.randn(4, 8), torch.tensor([0, 3, 9, 3]))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        scale: float = 30.0,
        margin: float = 0.35,
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.scale = check_positive(name, "scale", scale)
        self.margin = check_nonnegative(name, "margin", margin)
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine logits ``scale * cos`` (no margin), ``(N, C_local)``, for accuracy metrics."""
        return self.scale * _cosine(self, input)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        phi = functools.partial(M.cosface_target_logit, margin=self.margin)
        return _loss(self, input, target, phi, self.scale, weight)


class CombinedMarginLoss(nn.Module):
    __doc__ = f"""The combined margin ``s (cos(m1 theta + m2) - m3)`` on embeddings with its own class
    centres; the maths is in :func:`losskit.functional.combined_margin_loss`.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        scale: :math:`s > 0`. Default: ``64.0`` (Deng et al.).
        m1: multiplicative angular margin, ``> 0``. Default: ``1.0``.
        m2: additive angular margin in radians, ``>= 0``. Default: ``0.0``.
        m3: additive cosine margin, ``>= 0``. Default: ``0.0``.
        fallback: ``'none'`` | ``'linear'`` | ``'easy'`` (ArcFace's, ``m1 = 1`` only). Default: ``'none'``.
        gradient: ``'exact'`` | ``'straight_through'`` (insightface's current ``CombinedMarginLoss``).
            Default: ``'exact'``.{_COMMON_ARGS}
{_COMMON_SHAPE}

    Example:
        >>> loss_fn = CombinedMarginLoss(8, 10, m1=0.9, m2=0.4, m3=0.15)
        >>> loss_fn(torch.randn(4, 8), torch.tensor([0, 3, 9, 3])).shape
        torch.Size([])
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        scale: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.0,
        m3: float = 0.0,
        fallback: M.Fallback = "none",
        gradient: M.Gradient = "exact",
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.scale = check_positive(name, "scale", scale)
        self.m1, self.m2, self.m3 = M._check_combined(name, m1, m2, m3, fallback, gradient)
        self.fallback, self.gradient = fallback, gradient
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine logits ``scale * cos`` (no margin), ``(N, C_local)``, for accuracy metrics."""
        return self.scale * _cosine(self, input)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        phi = functools.partial(
            M.combined_margin_target_logit,
            m1=self.m1,
            m2=self.m2,
            m3=self.m3,
            fallback=self.fallback,
            gradient=self.gradient,
        )
        return _loss(self, input, target, phi, self.scale, weight)


class SphereFaceLoss(nn.Module):
    __doc__ = f"""SphereFace (A-Softmax) on embeddings with its own class centres, with the authors'
    annealing of ``lambda``; the maths is in :func:`losskit.functional.sphereface_loss`.

    The feature norms ``|x_i|`` are the per-row scale (A-Softmax normalises only the class weights).
    ``lambda = sphereface_lambda(iteration, base, gamma, power, lambda_min)``; in training mode each
    forward uses ``iteration + 1`` and advances ``iteration`` by one once its loss is computed (so the
    first step uses ``iteration = 1``, ``lambda = 892.857`` with the defaults, as the authors' layer
    does, and a call that raises leaves the counter alone); in eval mode ``iteration`` is left as is.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        margin: integer angular margin :math:`m \\ge 1`. Default: ``4`` (Liu et al.).
        base, gamma, power, lambda_min: the annealing schedule of
            :func:`losskit.functional.sphereface_lambda`. Defaults: ``1000, 0.12, 1, 5`` (the authors'
            released training).{_COMMON_ARGS}
{_COMMON_SHAPE}
        iteration: persistent buffer, int64 scalar: training forwards so far (saved in ``state_dict``).

    Example:
        >>> loss_fn = SphereFaceLoss(8, 10)
        >>> loss = loss_fn(torch.randn(4, 8), torch.tensor([0, 3, 9, 3]))
        >>> int(loss_fn.iteration), round(float(loss_fn.current_lambda()), 3)
        (1, 892.857)
    """

    iteration: Tensor

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        margin: int = 4,
        base: float = 1000.0,
        gamma: float = 0.12,
        power: float = 1.0,
        lambda_min: float = 5.0,
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.margin = check_positive_int(name, "margin", margin)
        self.base = check_nonnegative(name, "base", base)
        self.gamma = check_nonnegative(name, "gamma", gamma)
        self.power = check_nonnegative(name, "power", power)
        self.lambda_min = check_nonnegative(name, "lambda_min", lambda_min)
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    def current_lambda(self) -> Tensor:
        """``lambda`` at the current ``iteration`` (a 0-dim tensor; no host sync)."""
        lam = M.sphereface_lambda(
            self.iteration, base=self.base, gamma=self.gamma, power=self.power, lambda_min=self.lambda_min
        )
        assert isinstance(lam, Tensor)
        return lam

    def logits(self, input: Tensor) -> Tensor:
        """Non-target logits ``|x| cos`` (no margin), ``(N, C_local)``, for accuracy metrics."""
        cos = _cosine(self, input)
        return torch.linalg.vector_norm(input, dim=1, dtype=cos.dtype)[:, None] * cos

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        check_floating(name, "input", input)
        _check_embeddings(name, input, self.embedding_dim)
        # training: this step uses the next iteration's lambda; the counter moves once the loss is made
        step = self.iteration + 1 if self.training else self.iteration
        lam = M.sphereface_lambda(
            step, base=self.base, gamma=self.gamma, power=self.power, lambda_min=self.lambda_min
        )
        phi = functools.partial(M.sphereface_target_logit, margin=self.margin, lambda_=lam)
        ct = compute_dtype(torch.promote_types(input.dtype, self.centers.dtype))
        norms = torch.linalg.vector_norm(input, dim=1, dtype=ct)  # (N,) the kept feature norms
        loss = _loss(self, input, target, phi, norms, weight)
        if self.training:
            with torch.no_grad():
                self.iteration.add_(1)
        return loss


class NormFaceLoss(nn.Module):
    __doc__ = f"""NormFace / COCO (scaled cosine softmax, no margin) on embeddings with its own class
    centres; the maths is in :func:`losskit.functional.normface_loss`.

    Args:
        embedding_dim: embedding size :math:`D`.
        num_classes: total number of classes :math:`C` (all ranks together).
        scale: :math:`s > 0`. No default: the papers tune it.{_COMMON_ARGS}
{_COMMON_SHAPE}

    Example:
        >>> loss = NormFaceLoss(8, 10, scale=16.0)(torch.randn(4, 8), torch.tensor([0, 3, 9, 3]))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        *,
        scale: float,
        chunk_size: int | None = None,
        keep_budget: int = KEEP_BUDGET,
        process_group: Any = None,
        sample_rate: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.scale = check_positive(type(self).__name__, "scale", scale)
        _setup(
            self, embedding_dim, num_classes, chunk_size, keep_budget, process_group, sample_rate, reduction
        )

    def logits(self, input: Tensor) -> Tensor:
        """Scaled cosine logits ``scale * cos``, ``(N, C_local)``, for accuracy metrics."""
        return self.scale * _cosine(self, input)

    def forward(self, input: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return _loss(self, input, target, _identity, self.scale, weight)


def _identity(cosine: Tensor) -> Tensor:
    return cosine
