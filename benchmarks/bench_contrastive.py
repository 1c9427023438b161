"""Contrastive losses, forward + backward: losskit's chunked kernel against its own unchunked
definition, the bare matrix products, pytorch-metric-learning and open_clip.

``benchmarks(quick)`` follows ``benchmarks/common.py``. Sizes follow the issue: NT-Xent and SupCon at
batch 1024, dimension 128 (two views per sample; SupCon with 128 classes of 8 rows); CLIP and SigLIP
at batch 4096, dimension 512 (L2-normalised features, logit scale 1/0.07, SigLIP bias -10). Candidates:

* ``losskit``: the public function (eager: the chunked kernel, blocks of at most 2**22 similarities);
* ``definition``: losskit's definition, the plain ops on the whole ``(B, B)`` matrix that run under
  ``torch.compile`` and ``torch.func`` (the "unchunked path");
* ``matmul3``: the three products any exact method needs (similarities, gradient of each input);
* ``pml``/``open_clip``: the peers, when installed.

pytorch-metric-learning's ``NTXentLoss`` builds per-pair tensors whose memory grows with the cube of
the batch (about 17 GiB and 27 s at batch 1024), too big to time in the interleaved run; in it, it is
timed at batch 256. ``python benchmarks/bench_contrastive.py ntxent-peer`` runs it and losskit once each
at batch 256, 512 and 1024 in fresh processes (peak resident memory above the inputs, seconds), and
``python benchmarks/bench_contrastive.py cross-rank`` reports the per-rank peak memory of the cross-rank
losses at a global batch of 8192 over 2 gloo ranks against one process holding the whole batch.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import losskit.functional as LF
from losskit.functional import contrastive as C

try:
    from . import _harness as H
    from .common import Bench
except ImportError:  # run as a script, or imported by run.py as bench_contrastive
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness as H
    from common import Bench

try:
    from pytorch_metric_learning import losses as pml_losses
except ImportError:  # optional peer
    pml_losses = None
try:
    from open_clip import loss as oc_loss
except ImportError:  # optional peer
    oc_loss = None

TEMPERATURE = 0.07
SCALE, BIAS = 1 / 0.07, -10.0


def _labelled(b: int, d: int, per_label: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, d, generator=gen)
    return {"embeddings": x.requires_grad_(True), "labels": torch.arange(b) // per_label}


def _paired(n: int, d: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    y = F.normalize(x + 0.5 * torch.randn(n, d, generator=gen) / math.sqrt(d), dim=1)
    return {
        "image": x.requires_grad_(True),
        "text": y.requires_grad_(True),
        "scale": torch.tensor(SCALE, requires_grad=True),
        "bias": torch.tensor(BIAS, requires_grad=True),
    }


# ------------------------------------------------------------------------------------------- candidates


def nt_xent(i: dict) -> torch.Tensor:
    return LF.nt_xent_loss(i["embeddings"], i["labels"], temperature=TEMPERATURE)


def nt_xent_definition(i: dict) -> torch.Tensor:
    a, y = F.normalize(i["embeddings"], dim=1), i["labels"]
    rows, pairs = C.nt_xent_definition(a, a, y, y, 0, TEMPERATURE)
    return rows.sum() / pairs


def supcon(i: dict) -> torch.Tensor:
    return LF.supcon_loss(i["embeddings"], i["labels"], temperature=TEMPERATURE)


def supcon_definition(i: dict) -> torch.Tensor:
    a, y = F.normalize(i["embeddings"], dim=1), i["labels"]
    rows, anchors = C.supcon_definition(a, a, y, y, 0, TEMPERATURE, TEMPERATURE)
    return rows.sum() / anchors


def clip(i: dict) -> torch.Tensor:
    return LF.clip_loss(i["image"], i["text"], logit_scale=i["scale"])


def clip_definition(i: dict) -> torch.Tensor:
    return C.clip_definition(i["image"], i["text"], i["scale"]).mean()


def siglip(i: dict) -> torch.Tensor:
    return LF.siglip_loss(i["image"], i["text"], logit_scale=i["scale"], logit_bias=i["bias"])


def siglip_definition(i: dict) -> torch.Tensor:
    return C.siglip_definition(i["image"], i["text"], 0, i["scale"], i["bias"]).mean()


class _ThreeMatmuls(torch.autograd.Function):
    """Only the three products: S = X Y^T; backward S Y and S^T X (S standing in for dL/dS)."""

    @staticmethod
    def forward(ctx, x, y):
        s = x @ y.T
        ctx.save_for_backward(x, y)
        ctx.s = s
        return s.sum()  # one pass over S, negligible next to the products

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return ctx.s @ y, ctx.s.T @ x


def matmul3_paired(i: dict) -> torch.Tensor:
    return _ThreeMatmuls.apply(i["image"], i["text"])


def matmul3_labelled(i: dict) -> torch.Tensor:
    x = i["embeddings"]
    return _ThreeMatmuls.apply(x, x)


def _pml(name: str, **kwargs):
    if pml_losses is None:
        return None
    loss_fn = getattr(pml_losses, name)(**kwargs)
    return lambda i: loss_fn(i["embeddings"], i["labels"])


def _open_clip(name: str):
    if oc_loss is None:
        return None
    loss_fn = getattr(oc_loss, name)()
    if name == "ClipLoss":
        return lambda i: loss_fn(i["image"], i["text"], i["scale"])
    return lambda i: loss_fn(i["image"], i["text"], i["scale"], i["bias"])


def benchmarks(quick: bool) -> list[Bench]:
    b, d = (256, 64) if quick else (1024, 128)
    n, e = (1024, 128) if quick else (4096, 512)
    pairs = 2.0 * b * b * d
    paired = 2.0 * n * n * e
    peer = "pml (NTXentLoss, batch 256 only)"
    labelled = [
        Bench(
            name="nt_xent_loss",
            family="contrastive",
            size=f"{b} x {d}",
            setup=functools.partial(_labelled, b, d, 2),
            candidates={
                "losskit": nt_xent,
                "definition": nt_xent_definition,
                "matmul3": matmul3_labelled,
                **({"pml": _pml("NTXentLoss", temperature=TEMPERATURE)} if b <= 256 else {}),
            },
            baseline="definition",
            flops=3 * pairs,
            notes=f"two views per sample, temperature {TEMPERATURE}; {peer}: its memory grows with B^3 "
            "(see `bench_contrastive.py ntxent-peer` for batch 1024)",
        ),
        Bench(
            name="supcon_loss",
            family="contrastive",
            size=f"{b} x {d}",
            setup=functools.partial(_labelled, b, d, 8),
            candidates={
                "losskit": supcon,
                "definition": supcon_definition,
                "matmul3": matmul3_labelled,
                "pml": _pml("SupConLoss", temperature=TEMPERATURE),
            },
            baseline="pml" if pml_losses is not None else "definition",
            flops=3 * pairs,
            notes=f"classes of 8 rows, temperature {TEMPERATURE} (base temperature equal)",
        ),
    ]
    image_text = [
        Bench(
            name=name,
            family="contrastive",
            size=f"{n} x {e}",
            setup=functools.partial(_paired, n, e),
            candidates={
                "losskit": fast,
                "definition": slow,
                "matmul3": matmul3_paired,
                "open_clip": _open_clip(peer_name),
            },
            baseline="matmul3",
            flops=3 * paired,
            notes=f"unit features, logit scale 1/0.07{', bias -10' if name == 'siglip_loss' else ''}; "
            "definition = losskit's unchunked path",
        )
        for name, fast, slow, peer_name in [
            ("clip_loss", clip, clip_definition, "ClipLoss"),
            ("siglip_loss", siglip, siglip_definition, "SigLipLoss"),
        ]
    ]
    return labelled + image_text


# --------------------------------------------------------------------------------------------------
# pytorch-metric-learning's NTXentLoss at batch 1024, and the cross-rank memory, in fresh processes
# --------------------------------------------------------------------------------------------------


def _step_child(which: str, b: int) -> None:
    inputs = _labelled(b, 128, 2)
    fn = nt_xent if which == "losskit" else _pml("NTXentLoss", temperature=TEMPERATURE)
    leaves = [inputs["embeddings"]]
    t0 = time.perf_counter()
    fn(inputs).backward()  # the first step, a warm-up too
    first = time.perf_counter() - t0
    leaves[0].grad = None
    t0 = time.perf_counter()
    fn(inputs).backward()
    second = time.perf_counter() - t0
    extra = H.peak_rss_of_step(lambda: fn(inputs), leaves)
    print(json.dumps({"seconds": min(first, second), "peak_mib": extra}))


def ntxent_peer(sizes: list[int]) -> None:
    """One step each of losskit and PML NTXentLoss per batch size, each in a fresh process."""
    script = str(Path(__file__).resolve())
    print("| batch | candidate | seconds | peak MiB above inputs |\n|---|---|---|---|")
    for b in sizes:
        for which in ("losskit", "pml"):
            out = subprocess.run(
                [sys.executable, script, "step-child", which, str(b)],
                capture_output=True, text=True, check=True, timeout=1800,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {b} | {which} | {r['seconds']:.4f} | {r['peak_mib']:.1f} |", flush=True)


def _rank_child(rank: int, world: int, store: str, loss: str, n_global: int) -> None:
    import torch.distributed as dist

    from losskit import distributed as LD

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    inputs = _paired(n_global, 512)
    rows = slice(rank * n_global // world, (rank + 1) * n_global // world)
    x = inputs["image"].detach()[rows].clone().requires_grad_(True)
    y = inputs["text"].detach()[rows].clone().requires_grad_(True)
    s, bias, group = inputs["scale"], inputs["bias"], dist.group.WORLD
    calls = {
        "cross_rank_clip_loss": lambda: LD.cross_rank_clip_loss(x, y, logit_scale=s, process_group=group),
        "cross_rank_siglip_loss[gather]": lambda: LD.cross_rank_siglip_loss(
            x, y, logit_scale=s, logit_bias=bias, process_group=group
        ),
        "cross_rank_siglip_loss[ring]": lambda: LD.cross_rank_siglip_loss(
            x, y, logit_scale=s, logit_bias=bias, process_group=group, exchange="ring"
        ),
    }
    fn = calls[loss]
    fn().backward()  # warm-up
    extra = H.peak_rss_of_step(fn, [x, y, s, bias])
    t0 = time.perf_counter()
    fn().backward()
    seconds = time.perf_counter() - t0
    dist.barrier()
    if rank == 0:
        print(json.dumps({"seconds": seconds, "peak_mib": extra}))
    dist.destroy_process_group()


def _single_child(loss: str, n: int) -> None:
    inputs = _paired(n, 512)
    fn = {"clip_loss": clip, "clip_loss[definition]": clip_definition, "siglip_loss": siglip,
          "siglip_loss[definition]": siglip_definition}[loss]  # fmt: skip
    leaves = H.grad_leaves(inputs)
    fn(inputs).backward()
    extra = H.peak_rss_of_step(lambda: fn(inputs), leaves)
    print(json.dumps({"peak_mib": extra}))


def cross_rank(n_global: int = 8192, world: int = 2) -> None:
    script = str(Path(__file__).resolve())
    print(f"| loss | global batch {n_global}, dim 512 | peak MiB above inputs |\n|---|---|---|")
    for loss in ("clip_loss", "clip_loss[definition]", "siglip_loss", "siglip_loss[definition]"):
        out = subprocess.run(
            [sys.executable, script, "single-child", loss, str(n_global)],
            capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {loss} | one process | {r['peak_mib']:.1f} |", flush=True)
    for loss in ("cross_rank_clip_loss", "cross_rank_siglip_loss[gather]", "cross_rank_siglip_loss[ring]"):
        with tempfile.TemporaryDirectory() as tmp:
            store = os.path.join(tmp, "store")
            procs = [
                subprocess.Popen(
                    [sys.executable, script, "rank-child", str(r), str(world), store, loss, str(n_global)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for r in range(world)
            ]
            outs = [p.communicate(timeout=1800)[0] for p in procs]
        r = json.loads(outs[0].strip().splitlines()[-1])
        print(f"| {loss} | per rank, {world} gloo ranks | {r['peak_mib']:.1f} |", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "ntxent-peer":
        ntxent_peer([int(v) for v in sys.argv[2:]] or [256, 512, 1024])
    elif cmd == "step-child":
        _step_child(sys.argv[2], int(sys.argv[3]))
    elif cmd == "cross-rank":
        cross_rank()
    elif cmd == "rank-child":
        _rank_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))
    elif cmd == "single-child":
        _single_child(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit("usage: bench_contrastive.py ntxent-peer [B ...] | cross-rank")
