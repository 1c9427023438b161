"""Margin softmax at 10k, 100k and 1M classes: unfused, fused and class-parallel, side by side.

``python benchmarks/scale_table.py [CLASSES ...]`` runs ArcFace (scale 64, margin 0.5) forward + backward at
batch 512, embedding 512, float32, for each number of classes (default 10,000, 100,000 and 1,000,000), each
candidate in fresh processes so that every peak is its own:

* ``unfused``: the usual composition: normalise, full ``(N, C)`` cosine logits, then
  :func:`losskit.functional.arcface_loss` on them;
* ``fused``: :func:`losskit.functional.margin_softmax_loss`, which streams over class chunks;
* ``sharded``: :func:`losskit.functional.margin_softmax_loss` with ``process_group``, on a gloo group of 2
  ranks on this machine (one thread each); each rank holds ``C / 2`` centres and ``N / 2`` embeddings.

Peak memory is the peak resident set above the inputs (embeddings and centres) of one step, measured after
the timing and a warm-up step (``_harness.peak_rss_of_step``: one-time allocations such as BLAS buffers and
thread pools excluded, freed blocks returned to the system); it includes the
gradients of the inputs, which every method allocates (the centre gradient is ``4 D`` bytes per class); for
``sharded`` it is the larger of the two ranks. Time is the best of a few steps (the slowest rank's for
``sharded``). The per-rank cost of the sharded path is then fitted as ``fixed + per_class * C_local`` from
the two largest runs, and extrapolated to 10,000,000 classes over 8 ranks at the same global batch (the
centres themselves, ``4 D`` bytes per class, added; optimiser state excluded).

Prints a markdown table; ``--json PATH`` also writes the raw measurements.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import losskit.functional as LF

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as H  # benchmarks/ is not a package

N, D = 512, 512
SCALE, MARGIN = 64.0, 0.5
ARCFACE = functools.partial(LF.arcface_target_logit, margin=MARGIN)


def _inputs(rows: int, classes: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "input": torch.randn(rows, D, generator=gen).requires_grad_(True),
        "centers": torch.randn(classes, D, generator=gen).mul_(0.05).requires_grad_(True),
    }


def _reps(classes: int) -> int:
    return 3 if classes <= 100_000 else 2


def _time_steps(step, inputs: dict, reps: int, barrier=None) -> float:
    """Best time of ``reps`` steps after one warm-up step."""
    best = float("inf")
    for i in range(reps + 1):
        for t in (inputs["input"], inputs["centers"]):
            t.grad = None
        if barrier is not None:
            barrier()
        t0 = time.perf_counter()
        step().backward()
        if barrier is not None:
            barrier()
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def _single(candidate: str, classes: int) -> dict:
    """One process, all classes: ``unfused`` or ``fused``."""
    inputs = _inputs(N, classes, seed=0)
    target = torch.randint(0, classes, (N,), generator=torch.Generator().manual_seed(1))
    x, w = inputs["input"], inputs["centers"]
    if candidate == "unfused":

        def step():
            cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
            return LF.arcface_loss(cos, target, scale=SCALE, margin=MARGIN)

    else:

        def step():
            return LF.margin_softmax_loss(x, w, target, target_logit=ARCFACE, scale=SCALE)

    seconds = _time_steps(step, inputs, _reps(classes))
    peak = H.peak_rss_of_step(step, [x, w])  # after timing: it changes malloc's policy
    return {"candidate": candidate, "C": classes, "peak_mib": peak, "seconds": seconds}


def _rank(rank: int, world: int, classes: int, store: str) -> dict:
    """One rank of the sharded run: its block of centres, its slice of the batch."""
    import torch.distributed as dist

    from losskit import distributed as LD

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    block = LD.class_shard(classes, world, rank)
    rows = torch.tensor_split(torch.arange(N), world)[rank]
    inputs = _inputs(len(rows), len(block), seed=10 + rank)
    target = torch.randint(0, classes, (N,), generator=torch.Generator().manual_seed(1))[rows]
    x, w = inputs["input"], inputs["centers"]

    def step():
        return LF.margin_softmax_loss(
            x,
            w,
            target,
            target_logit=ARCFACE,
            scale=SCALE,
            process_group=dist.group.WORLD,
            num_classes=classes,
        )

    seconds = _time_steps(step, inputs, _reps(classes), barrier=dist.barrier)
    peak = H.peak_rss_of_step(step, [x, w])  # every rank runs it: the collectives stay matched
    out = {"rank": rank, "C_local": len(block), "peak_mib": peak, "seconds": seconds}
    dist.destroy_process_group()
    return out


def _run_child(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _sharded(classes: int, world: int = 2) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--rank", str(r), str(world), str(classes), store],
                stdout=subprocess.PIPE,
                text=True,
            )
            for r in range(world)
        ]
        ranks = []
        for p in procs:
            stdout, _ = p.communicate()
            if p.returncode:
                raise RuntimeError(f"sharded rank failed with exit code {p.returncode}")
            ranks.append(json.loads(stdout.strip().splitlines()[-1]))
    return {
        "candidate": "sharded",
        "C": classes,
        "world": world,
        "C_local": max(r["C_local"] for r in ranks),
        "peak_mib": max(r["peak_mib"] for r in ranks),
        "seconds": max(r["seconds"] for r in ranks),
    }


def _fmt_mib(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def main(classes: list[int], json_path: str | None) -> None:
    rows = []
    for c in classes:
        for cand in ("unfused", "fused"):
            rows.append(_run_child(["--single", cand, str(c)]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        rows.append(_sharded(c))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    per_class_fp32 = 4 * D / 2**20  # MiB per class: one centre, or its gradient
    print(
        f"ArcFace forward + backward, batch {N}, embedding {D}, float32, {torch.get_num_threads()} threads."
    )
    print(
        "Peak memory above the inputs (gradients of the inputs included); sharded: 2 gloo ranks, per rank.\n"
    )
    print("| classes | unfused | fused | sharded (2 ranks, per rank) | fused / unfused workspace |")
    print("|---:|---|---|---|---:|")
    by = {(r["candidate"], r["C"]): r for r in rows}
    for c in classes:
        u, f, s = by["unfused", c], by["fused", c], by["sharded", c]
        # the fused path's own workspace: its peak minus the gradients every method allocates
        own = lambda r, k: r["peak_mib"] - per_class_fp32 * k - N * D * 4 / 2**20  # noqa: E731
        print(
            f"| {c:,} | {u['seconds']:.2f} s, {_fmt_mib(u['peak_mib'])} | {f['seconds']:.2f} s, "
            f"{_fmt_mib(f['peak_mib'])} | {s['seconds']:.2f} s, {_fmt_mib(s['peak_mib'])} | "
            f"{own(f, c) / max(own(u, c), 1e-9):.1%} |"
        )
    shard = sorted((r for r in rows if r["candidate"] == "sharded"), key=lambda r: r["C_local"])
    if len(shard) >= 2:
        a, b = shard[-2], shard[-1]
        per_class = (b["peak_mib"] - a["peak_mib"]) / (b["C_local"] - a["C_local"])  # MiB per local class
        fixed = a["peak_mib"] - per_class * a["C_local"]
        local = 10_000_000 // 8
        total = fixed + (per_class + per_class_fp32) * local  # + the centres themselves
        print(
            f"\nSharded per-rank cost fitted from the two largest runs: {per_class * 2**20:.0f} B per local "
            f"class (the centre gradient is {4 * D} B) + {fixed:.0f} MiB. 10,000,000 classes over 8 ranks at "
            f"global batch {N}: {local:,} classes per rank -> {_fmt_mib(total)} per rank (centres, their "
            "gradient and the workspace; optimiser state excluded)."
        )
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--single":
        print(json.dumps(_single(sys.argv[2], int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--rank":
        print(json.dumps(_rank(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("classes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
        parser.add_argument("--json", default=None, help="also write the raw measurements here")
        ns = parser.parse_args()
        main(ns.classes, ns.json)
