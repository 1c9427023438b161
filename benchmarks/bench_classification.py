"""Binary cross-entropy with logits and cross-entropy, forward + backward: losskit against torch's own
kernels (losskit calls them, so the ratio measures only its wrapper: checks and the divisor).

Sizes from the foundation issue: 8M elements for BCE, logits 4096 x 32000 for cross-entropy. ``quick``
uses 1M elements and 512 x 8000. Target: within 1.05x of torch's time. The class-weighted row covers
the mean's extra step (the all-ignored check: one ``any`` over the targets and a ``where``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_classification
    from .common import Bench


def _bce_setup(n: int):
    def setup() -> dict:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, generator=gen) * 3
        y = (torch.rand(n, generator=gen) < 0.3).float()
        return {"input": x.requires_grad_(True), "target": y}

    return setup


def _ce_setup(n: int, c: int, weighted: bool = False):
    def setup() -> dict:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, c, generator=gen)
        t = torch.randint(0, c, (n,), generator=gen)
        t[::7] = -100  # some ignored targets
        out = {"input": x.requires_grad_(True), "target": t}
        if weighted:
            out["weight"] = torch.rand(c, generator=gen) + 0.5
        return out

    return setup


def benchmarks(quick: bool) -> list[Bench]:
    n = 1_000_000 if quick else 8_000_000
    rows, cols = (512, 8000) if quick else (4096, 32000)
    return [
        Bench(
            name="binary_cross_entropy_with_logits",
            family="classification",
            size=f"{n}",
            setup=_bce_setup(n),
            candidates={
                "losskit": lambda d: LF.binary_cross_entropy_with_logits(d["input"], d["target"]),
                "torch": lambda d: F.binary_cross_entropy_with_logits(d["input"], d["target"]),
            },
            baseline="torch",
            bytes_moved=4 * n * 3,  # forward reads x, y; backward writes the gradient
        ),
        Bench(
            name="cross_entropy",
            family="classification",
            size=f"{rows} x {cols}",
            setup=_ce_setup(rows, cols),
            candidates={
                "losskit": lambda d: LF.cross_entropy(d["input"], d["target"], label_smoothing=0.1),
                "torch": lambda d: F.cross_entropy(d["input"], d["target"], label_smoothing=0.1),
            },
            baseline="torch",
            bytes_moved=4 * rows * cols * 2,  # read the logits, write their gradient
        ),
        Bench(
            name="cross_entropy weighted",
            family="classification",
            size=f"{rows} x {cols}",
            setup=_ce_setup(rows, cols, weighted=True),
            candidates={
                "losskit": lambda d: LF.cross_entropy(
                    d["input"], d["target"], d["weight"], label_smoothing=0.1
                ),
                "torch": lambda d: F.cross_entropy(d["input"], d["target"], d["weight"], label_smoothing=0.1),
            },
            baseline="torch",
            bytes_moved=4 * rows * cols * 2,
            notes="per-class weight, every 7th target ignored, label_smoothing=0.1",
        ),
    ]
