"""Class-parallel margin softmax: the cost of the distributed path, and per-rank memory at scale.

``benchmarks(quick)`` times ArcFace forward+backward at batch 512, embedding 512 on a one-rank gloo
group (the collectives run but move nothing), against the fused single-process engine (the baseline)
and the unfused composition (full ``(N, C)`` logits, then cross-entropy). On ``W`` ranks each rank runs
the same computation on ``C / W`` classes with the global batch, plus the collectives.

``python benchmarks/bench_distributed.py`` measures the peak resident memory of one rank's forward +
backward at two shard sizes (each in a fresh process), fits bytes = fixed + per_class * C_local, and
prints the per-rank memory for 10k / 100k / 1M classes over 1 rank and 10M classes over 8 ranks,
computed from the measured per-class cost.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.nn.functional as F

import losskit.functional as LF

try:
    from common import Bench
except ImportError:  # imported as benchmarks.bench_distributed
    from .common import Bench

N, D = 512, 512
ARCFACE = functools.partial(LF.arcface_target_logit, margin=0.5, fallback="linear", gradient="exact")


def _group():
    """A one-rank gloo group for this process (created once)."""
    if not dist.is_initialized():
        store = os.path.join(tempfile.mkdtemp(), "store")
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    return dist.group.WORLD


def _setup(c: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    return {
        "input": torch.randn(N, D, generator=gen).requires_grad_(True),
        "centers": torch.randn(c, D, generator=gen).requires_grad_(True),
        "target": torch.randint(0, c, (N,), generator=gen),
    }


def sharded(inputs: dict) -> torch.Tensor:
    return LF.margin_softmax_loss(
        inputs["input"], inputs["centers"], inputs["target"], target_logit=ARCFACE, scale=64.0,
        process_group=_group(),
    )  # fmt: skip


def fused(inputs: dict) -> torch.Tensor:
    return LF.margin_softmax_loss(
        inputs["input"], inputs["centers"], inputs["target"], target_logit=ARCFACE, scale=64.0
    )


def unfused(inputs: dict) -> torch.Tensor:
    """The usual composition: full cosine logits, margin on the target column, cross-entropy."""
    x, w, y = inputs["input"], inputs["centers"], inputs["target"]
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T  # (N, C)
    onehot = F.one_hot(y, w.shape[0]).bool()
    logits = 64.0 * torch.where(onehot, ARCFACE(cos), cos)
    return F.cross_entropy(logits, y)


def benchmarks(quick: bool) -> list[Bench]:
    sizes = [10_000] if quick else [10_000, 100_000]
    return [
        Bench(
            name="margin_softmax_loss_class_parallel",
            family="distributed",
            size=f"{N} x {D} x {c} (1 rank)",
            setup=functools.partial(_setup, c),
            candidates={"losskit": sharded, "fused": fused, "unfused": unfused},
            baseline="fused",
            flops=3 * 2.0 * N * D * c,  # logits, grad wrt embeddings, grad wrt centres
            notes="one-rank gloo group: the distributed path's own overhead over the fused engine",
        )
        for c in sizes
    ]


# --------------------------------------------------------------------------------------------------
# per-rank memory, measured in fresh processes


def _peak_child(c_local: int, n_global: int) -> None:
    """One rank's forward+backward with ``c_local`` centres and the global batch; prints peak RSS."""
    torch.set_num_threads(1)
    inputs = _setup(c_local)
    inputs["input"] = torch.randn(n_global, D).requires_grad_(True)
    inputs["target"] = torch.randint(0, c_local, (n_global,))
    _group()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sharded(inputs).backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"c_local": c_local, "base": base, "peak": peak}))


def _measure(c_local: int, n_global: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(c_local), str(n_global)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    a, b = _measure(50_000, N), _measure(200_000, N)
    # the inputs (centres, embeddings) are allocated before `base`; their gradients and the streaming
    # buffers after, so peak - base is the extra memory of forward+backward; the centres add 4 * D per
    # class on top (held by the model anyway)
    per_class_extra = ((b["peak"] - b["base"]) - (a["peak"] - a["base"])) / (b["c_local"] - a["c_local"])
    fixed = (a["peak"] - a["base"]) - per_class_extra * a["c_local"]
    weights = 4 * D  # float32 centres, per class
    print(f"measured extra memory per class: {per_class_extra:.0f} B (centre gradient: {4 * D} B)")
    print(f"fixed extra memory at global batch {N}: {fixed / 2**20:.1f} MiB")
    print("| classes | ranks | classes per rank | centres + grads + extra per rank |")
    print("|---:|---:|---:|---:|")
    for c, w in [(10_000, 1), (100_000, 1), (1_000_000, 1), (10_000_000, 8)]:
        local = -(-c // w)
        total = fixed + (per_class_extra + weights) * local
        print(f"| {c:,} | {w} | {local:,} | {total / 2**30:.2f} GiB |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _peak_child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
