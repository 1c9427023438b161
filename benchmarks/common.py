"""The benchmark contract shared by every ``benchmarks/bench_<family>.py``.

A family file defines ``benchmarks(quick: bool) -> list[Bench]``. ``benchmarks/run.py`` finds them,
times every candidate's forward+backward side by side in one process, measures peak memory, and
reports ratios against the ``baseline`` candidate and the fraction of the machine's floor reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

# A candidate takes the inputs made by ``setup`` and returns a scalar loss; the harness calls
# ``.backward()`` on it. ``None`` marks a peer that is not installed (reported as "n/a").
Candidate = Callable[[dict], Tensor] | None


@dataclass
class Bench:
    name: str  # e.g. "sigmoid_focal_loss"
    family: str  # e.g. "focal"
    size: str  # human-readable problem size, e.g. "100000 x 80"
    setup: Callable[[], dict]  # makes fresh inputs (leaf tensors with requires_grad where needed)
    candidates: dict[str, Candidate]  # "losskit" first, then baselines and peers
    baseline: str  # the key of the candidate every ratio is taken against
    bytes_moved: int | None = None  # minimal bytes read+written by forward+backward (bandwidth floor)
    flops: float | None = None  # minimal FLOPs of forward+backward (matmul-rate floor)
    notes: str = ""
    extra: dict = field(default_factory=dict)
