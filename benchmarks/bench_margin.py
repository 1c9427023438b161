"""Margin softmax at face-recognition scale: fused (chunked) vs unfused vs the bare matrix products.

``benchmarks(quick)`` follows ``benchmarks/common.py``. Candidates, forward + backward:

* ``losskit``: :func:`losskit.functional.margin_softmax_loss` (fused: the ``(N, C)`` logits are never held);
* ``unfused``: normalise, ``cosine = x_hat @ w_hat.T``, then the cosine-logit loss (``arcface_loss``, ...);
* ``matmul3``: the three matrix products any exact method needs (logits, grad wrt embeddings, grad wrt
  centres), the floor the fused path is measured against;
* ``pml``: pytorch-metric-learning's ``ArcFaceLoss`` / ``CosFaceLoss`` when installed (margin in degrees,
  weights stored ``(D, C)``).

Peak memory: ``python benchmarks/bench_margin.py memory`` runs each candidate once in a fresh process and
reports the peak RSS above the inputs (``_harness.peak_rss_of_step``), and the same minus the gradients of the
inputs (which every method must allocate). ``python benchmarks/bench_margin.py million`` runs the fused
loss at batch 256, embedding 512 and 1,000,000 classes and reports its peak RSS.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import losskit.functional as LF

try:
    from . import _harness as H
    from .common import Bench
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness as H
    from common import Bench

try:
    from pytorch_metric_learning import losses as pml_losses
except ImportError:
    pml_losses = None

N, D = 512, 512

# name -> (target-logit function, scale (None: the feature norms), unfused loss on cosines, PML class)
KINDS = {
    "arcface": (
        functools.partial(LF.arcface_target_logit, margin=0.5),
        64.0,
        lambda cos, y, x: LF.arcface_loss(cos, y, scale=64.0, margin=0.5),
        "ArcFaceLoss",
    ),
    "cosface": (
        functools.partial(LF.cosface_target_logit, margin=0.35),
        64.0,
        lambda cos, y, x: LF.cosface_loss(cos, y, scale=64.0, margin=0.35),
        "CosFaceLoss",
    ),
    "sphereface": (
        functools.partial(LF.sphereface_target_logit, margin=4, lambda_=5.0),
        None,
        lambda cos, y, x: LF.sphereface_loss(cos, y, scale=x.norm(dim=1), margin=4, lambda_=5.0),
        None,
    ),
}


def _setup(n: int, d: int, c: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        "input": torch.randn(n, d, generator=gen).requires_grad_(True),
        "centers": torch.randn(c, d, generator=gen).mul_(0.05).requires_grad_(True),
        "target": torch.randint(0, c, (n,), generator=gen),
    }


def _fused(kind: str, inputs: dict):
    phi, scale, _, _ = KINDS[kind]
    x = inputs["input"]
    return LF.margin_softmax_loss(
        x,
        inputs["centers"],
        inputs["target"],
        target_logit=phi,
        scale=x.norm(dim=1) if scale is None else scale,
    )


def _unfused(kind: str, inputs: dict):
    x, w = inputs["input"], inputs["centers"]
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T  # (N, C)
    return KINDS[kind][2](cos, inputs["target"], x)


class _ThreeMatmuls(torch.autograd.Function):
    """Only the three products: logits = X W^T; backward: G W and G^T X (G = the logits, as a stand-in)."""

    @staticmethod
    def forward(ctx, x, w):
        z = x @ w.T
        ctx.save_for_backward(x, w)
        ctx.z = z
        return z.sum()  # scalar; the sum is one pass, negligible next to the products

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        z = ctx.z
        return z @ w, z.T @ x


def _matmul3(inputs: dict):
    return _ThreeMatmuls.apply(inputs["input"].detach().requires_grad_(True), inputs["centers"])


def _pml(kind: str, inputs: dict):
    cls_name = KINDS[kind][3]
    module = inputs.get("_pml")
    if module is None:
        c = inputs["centers"].shape[0]
        if cls_name == "ArcFaceLoss":
            module = pml_losses.ArcFaceLoss(c, D, margin=math.degrees(0.5), scale=64.0)
        else:
            module = pml_losses.CosFaceLoss(c, D, margin=0.35, scale=64.0)
        with torch.no_grad():
            module.W.copy_(inputs["centers"].T)
        inputs["_pml"] = module
    return module(inputs["input"], inputs["target"])


def _candidates(kind: str) -> dict:
    out = {
        "losskit": functools.partial(_fused, kind),
        "unfused": functools.partial(_unfused, kind),
        "matmul3": _matmul3,
    }
    if KINDS[kind][3] is not None:
        out["pml"] = functools.partial(_pml, kind) if pml_losses is not None else None
    return out


def benchmarks(quick: bool) -> list:
    sizes = [10_000] if quick else [10_000, 100_000]
    kinds = ["arcface"] if quick else list(KINDS)
    return [
        Bench(
            name=f"{kind}_margin_softmax",
            family="margin",
            size=f"{N} x {D} x {c}",
            setup=functools.partial(_setup, N, D, c),
            candidates=_candidates(kind),
            baseline="matmul3",
            flops=3 * 2.0 * N * D * c,
            notes="losskit = fused margin_softmax_loss; matmul3 = the three products alone",
        )
        for c in sizes
        for kind in kinds
    ]


# --------------------------------------------------------------------------------------------------
# peak memory and the million-class run (each measurement in a fresh process)
# --------------------------------------------------------------------------------------------------


def _child(kind: str, candidate: str, n: int, c: int, reps: int) -> None:
    torch.set_num_threads(int(torch.get_num_threads()))
    inputs = _setup(n, D, c)
    fn = _candidates(kind)[candidate]
    if candidate == "pml":  # build the peer's weights before the baseline, as its Module owns them
        _pml(kind, inputs)
    leaves = [inputs["input"], inputs["centers"]]
    times = []
    for _ in range(reps + 1):  # the first step is a warm-up
        for t in leaves:
            t.grad = None
        t0 = time.perf_counter()
        fn(inputs).backward()
        times.append(time.perf_counter() - t0)
    extra = H.peak_rss_of_step(lambda: fn(inputs), leaves)  # after timing: it changes malloc's policy
    grad_mib = sum(t.numel() for t in leaves) * 4 / 2**20
    print(
        json.dumps(
            {
                "kind": kind,
                "candidate": candidate,
                "N": n,
                "C": c,
                "peak_extra_mib": extra,
                "peak_extra_minus_grads_mib": extra - grad_mib,
                "seconds": min(times[1:]),
            }
        )
    )


def measure(kind: str, candidate: str, n: int = N, c: int = 100_000, reps: int = 1) -> dict:
    """Run one candidate in a fresh process; peak RSS above the inputs (MiB) and the best time (s)."""
    out = subprocess.run(
        [sys.executable, __file__, "child", kind, candidate, str(n), str(c), str(reps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "child":
        _child(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif argv and argv[0] == "million":
        print(json.dumps(measure("arcface", "losskit", n=256, c=1_000_000)))
    else:  # memory table
        classes = [int(a) for a in argv[1:]] or [10_000, 100_000]
        for c in classes:
            for kind in KINDS:
                for cand, fn in _candidates(kind).items():
                    if fn is not None:
                        print(json.dumps(measure(kind, cand, c=c)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
