"""The one reduction helper every loss in losskit goes through.

``reduction='mean'`` divides by the number of elements of the unreduced loss unless a docstring says
otherwise (class-weighted cross-entropy divides by the sum of the weights of the counted targets, as
torch does). An empty batch reduces to ``0`` with a gradient attached, never ``NaN``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Reduction = Literal["none", "mean", "sum"]

_REDUCTIONS = ("none", "mean", "sum")


def check_reduction(fn: str, reduction: object) -> None:
    """Raise ``ValueError`` unless ``reduction`` is ``'none'``, ``'mean'`` or ``'sum'``."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be 'none', 'mean' or 'sum'; got {reduction!r}")


def reject_legacy_reduction(fn: str, size_average: object, reduce: object) -> None:
    """Raise ``TypeError`` for torch's deprecated ``size_average``/``reduce`` arguments (any non-None).

    Torch-named losses keep those two parameters in their signature, so positional calls written for
    torch bind the same way (``L1Loss(None, None, "sum")``), but losskit does not carry the legacy
    behaviour: the message names the ``reduction`` torch would have derived from them.
    """
    if size_average is None and reduce is None:
        return
    # torch's _Reduction.legacy_get_string: None counts as True for both
    keep = reduce is None or bool(reduce)
    average = size_average is None or bool(size_average)
    wanted = "none" if not keep else ("mean" if average else "sum")
    raise TypeError(
        f"{fn}: size_average and reduce are deprecated (in torch too) and not supported; use "
        f"reduction={wanted!r} instead; got size_average={size_average!r}, reduce={reduce!r}"
    )


def check_weight(fn: str, weight: Tensor | None, shape: torch.Size | tuple[int, ...]) -> None:
    """Check that a per-element ``weight`` broadcasts to the unreduced loss without changing its shape."""
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        raise TypeError(f"{fn}: weight must be a Tensor or None; got {type(weight).__name__}")
    if not (weight.is_floating_point() or weight.dtype == torch.bool):
        raise TypeError(f"{fn}: weight must be a floating-point tensor; got dtype {weight.dtype}")
    try:
        out = torch.broadcast_shapes(tuple(weight.shape), tuple(shape))
    except RuntimeError:
        out = None
    if out != tuple(shape):
        raise ValueError(
            f"{fn}: weight must broadcast to the unreduced loss of shape {tuple(shape)}; "
            f"got weight of shape {tuple(weight.shape)}"
        )


def reduce_loss(
    loss: Tensor,
    reduction: Reduction,
    weight: Tensor | None = None,
    *,
    divisor: Tensor | float | None = None,
) -> Tensor:
    """Weight and reduce an unreduced loss.

    Args:
        loss: the unreduced loss.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``.
        weight: optional per-element weights, already checked to broadcast to ``loss``.
        divisor: what ``'mean'`` divides the sum by. Default: ``loss.numel()`` (at least 1, so an
            empty batch gives 0). A tensor divisor is clamped away from 0 the same way.

    Returns:
        ``loss * weight`` for ``'none'``, else its sum or mean, a scalar of ``loss``'s dtype.
    """
    if weight is not None:
        loss = loss * weight.to(loss.dtype)
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if divisor is None:
        # numel is static shape information: no host sync, and an empty batch gives 0 with a graph.
        return total / max(loss.numel(), 1)
    if isinstance(divisor, Tensor):
        # all-ignored batches have divisor 0 and sum 0: return 0 rather than 0/0.
        return total / divisor.to(total.dtype).clamp_min(torch.finfo(total.dtype).tiny)
    # a float divisor of 0 only happens with nothing counted, where the sum is 0 too.
    return total / divisor if divisor else total
