"""The regression family's one fast path: reduced L1 with a closed-form backward (private).

torch's ``l1_loss`` is a composition (subtract, abs, mean) whose autograd graph keeps the
``(*)``-sized difference for the backward of ``abs``. The kernel here computes the same value with the
same float operations in the same order (subtract, abs in place, sum, divide by the element count), keeps
only the inputs that are alive anyway, and writes the gradient ``sign(x - y) * g / n`` in one temporary.
``benchmarks/bench_regression.py`` measures it at 8M float32 elements on the CPU (the only device it is
chosen on, because the only one it was measured on).

:func:`losskit.functional.l1_loss` is the definition; this computes exactly it (tested against the
definition and against float64 at the hard cases: zero errors, NaN, large magnitudes, cancellation).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import eager_autograd

__all__ = ["eligible", "reduced_l1"]

_DTYPES = (torch.float32, torch.float64)


def eligible(input: Tensor, target: Tensor, weight: Tensor | None, reduction: str) -> bool:
    """Whether :func:`reduced_l1` may replace the definition of ``l1_loss`` for this call.

    The shared rule (:func:`losskit._kernels.eager_autograd`: no compile, no ``torch.func``, no forward
    AD) plus: unweighted, ``'mean'`` or ``'sum'``, a non-empty CPU float32/float64 ``input`` with a
    ``target`` of the same dtype, and a gradient to compute (the kernel wins in the backward).
    """
    return (
        weight is None
        and reduction != "none"
        and input.device.type == "cpu"
        and input.dtype in _DTYPES
        and target.dtype == input.dtype
        and input.numel() > 0
        and torch.is_grad_enabled()
        and (input.requires_grad or target.requires_grad)
        and eager_autograd(input, target)
    )


class _ReducedL1(torch.autograd.Function):
    """``sum |x - y|`` (divided by the element count for the mean); backward ``sign(x - y) * g``."""

    @staticmethod
    def forward(input: Tensor, target: Tensor, mean: bool) -> Tensor:
        total = torch.sub(input, target).abs_().sum()  # one (*) temporary, freed on return
        return total / input.numel() if mean else total

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        input, target, mean = inputs
        ctx.save_for_backward(input, target)
        ctx.mean = mean

    @staticmethod
    def backward(ctx, grad: Tensor):
        input, target = ctx.saved_tensors
        # torch's order: the mean's 1/n first, then sign(d); sign(0) = 0 keeps zero errors finite.
        # Differentiable ops on the saved inputs, so double backward works (its value is 0).
        g = grad / input.numel() if ctx.mean else grad
        sign = torch.sub(input, target).sign_().mul_(g)
        return (
            sign if ctx.needs_input_grad[0] else None,
            sign.neg() if ctx.needs_input_grad[1] else None,
            None,
        )


def reduced_l1(input: Tensor, target: Tensor, reduction: str) -> Tensor:
    """``l1_loss(input, target, reduction=reduction)`` for ``'mean'`` or ``'sum'``; see :func:`eligible`."""
    return _ReducedL1.apply(input, target, reduction == "mean")
