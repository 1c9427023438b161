"""Regression losses (L1, MSE, Smooth L1, Huber) against torch's own kernels.

``benchmarks(quick)`` follows ``benchmarks/common.py``: 8M float32 elements (quick: 1M), ``input``
requires grad and ``target`` does not, ``reduction='mean'``. Target: within 1.05x of
``torch.nn.functional``'s time. Each loss's definition is torch's own op, so the ratio measures the
wrapper (argument checks, one device check), except for unweighted reduced L1, where the fast path of
``losskit._kernels.regression`` is chosen: it must beat torch (time and peak memory) to stay.

Bytes that must move: the forward reads ``input`` and ``target`` (2 x 4N bytes); the backward reads
them again and writes the gradient of ``input`` (3 x 4N), so 20N bytes in all. (A kernel that kept
the forward's per-element derivative would trade the backward's two reads for a write and a read, no
fewer bytes.)
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_regression
    from .common import Bench

ELEMENT_BYTES = 4  # float32


def _setup(n: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=g).requires_grad_()
    y = torch.randn(n, generator=g)
    return {"input": x, "target": y}


# name -> (losskit function, torch function, keyword arguments shared by both)
LOSSES = {
    "l1_loss": (LF.l1_loss, F.l1_loss, {}),
    "mse_loss": (LF.mse_loss, F.mse_loss, {}),
    "smooth_l1_loss": (LF.smooth_l1_loss, F.smooth_l1_loss, {"beta": 1.0}),
    "huber_loss": (LF.huber_loss, F.huber_loss, {"delta": 1.0}),
}


def _call(fn, kwargs: dict, inputs: dict) -> torch.Tensor:
    return fn(inputs["input"], inputs["target"], **kwargs)


def benchmarks(quick: bool) -> list[Bench]:
    n = 1 << 20 if quick else 1 << 23
    size = f"{n // (1 << 20)}M"
    return [
        Bench(
            name=name,
            family="regression",
            size=size,
            setup=functools.partial(_setup, n),
            candidates={
                "losskit": functools.partial(_call, ours, kwargs),
                "torch": functools.partial(_call, theirs, kwargs),
            },
            baseline="torch",
            bytes_moved=5 * n * ELEMENT_BYTES,
            notes="float32, reduction='mean'; target: within 1.05x of torch.nn.functional"
            + ("; losskit: the reduced-L1 fast path" if name == "l1_loss" else ""),
        )
        for name, (ours, theirs, kwargs) in LOSSES.items()
    ]
