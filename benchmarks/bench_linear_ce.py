"""Linear cross-entropy (a language-model head's loss) against torch's chunked path and eager, fwd + bwd.

``benchmarks(quick)`` follows ``benchmarks/common.py``. Hidden states ``(N, D)``, a head ``(V, D)``,
targets with 20% of the tokens ignored (``-100``), as in issue 13. Candidates:

* ``losskit``: :func:`losskit.functional.linear_cross_entropy` with its default arguments;
* ``torch_default``: torch's ``F.linear_cross_entropy(..., options=LinearCrossEntropyOptions())`` (its
  chunked path with its own batch-chunk heuristic), ``None`` where torch has no such function (before
  2.13);
* ``torch_b64`` ... ``torch_b512``: the same with ``batch_chunk_size`` 64-512 (the best of them is the
  bar: the issue found 128-256 best by hand);
* ``eager``: ``F.cross_entropy(F.linear(x, W), target)``, the full ``(N, V)`` logits;
* ``matmul3``: the three matrix products any exact method needs (logits, gradient of the hidden states,
  gradient of the head) and nothing else, the floor (the baseline of the float32 benches).

Every candidate is device-agnostic (``scripts/gpu_check.py`` moves the inputs to CUDA). The bfloat16
language-model vocabulary (V = 128256, D = 1024) is a bench only where CUDA is present (8192 tokens):
on a CPU without bfloat16 matrix units torch's bfloat16 products are emulated (eager took 278 s for 64
tokens on the 2-core development machine), so ``python benchmarks/bench_linear_ce.py lm`` measures that
case instead, one candidate per fresh process (time of one step after a warm-up step, peak resident
memory above the inputs), with eager in float32 (the head cast up) and in bfloat16 at 64 tokens.

``python benchmarks/bench_linear_ce.py memory`` measures every candidate's peak resident memory above the
inputs in fresh processes at both float32 sizes, and the same minus the inputs' gradients (the
workspace).
"""

from __future__ import annotations

import functools
import json
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

_TORCH_LCE = getattr(F, "linear_cross_entropy", None)
_OPTIONS = getattr(torch.nn, "LinearCrossEntropyOptions", None)
CHUNKS = (64, 128, 256, 512)
IGNORED = 0.2
LM = (128256, 1024)  # Llama 3's vocabulary and a 1B model's hidden size


def _setup(n: int, d: int, v: int, dtype: torch.dtype = torch.float32) -> dict:
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, v, (n,), generator=gen)
    target[torch.rand(n, generator=gen) < IGNORED] = -100
    return {
        "input": torch.randn(n, d, generator=gen).to(dtype).requires_grad_(True),
        "linear_weight": (torch.randn(v, d, generator=gen) * d**-0.5).to(dtype).requires_grad_(True),
        "target": target,
    }


def _losskit(inputs: dict):
    return LF.linear_cross_entropy(inputs["input"], inputs["linear_weight"], inputs["target"])


def _eager(inputs: dict):
    return F.cross_entropy(F.linear(inputs["input"], inputs["linear_weight"]), inputs["target"])


def _eager_upcast(inputs: dict):
    """Eager with the head and the hidden states cast to float32 (fast on a CPU without bf16 units)."""
    x, w = inputs["input"].float(), inputs["linear_weight"].float()
    return F.cross_entropy(F.linear(x, w), inputs["target"])


def _torch_chunked(batch_chunk_size: int | None, inputs: dict):
    assert _TORCH_LCE is not None and _OPTIONS is not None
    opts = _OPTIONS() if batch_chunk_size is None else _OPTIONS(batch_chunk_size=batch_chunk_size)
    return _TORCH_LCE(inputs["input"], inputs["linear_weight"], inputs["target"], options=opts)


class _ThreeMatmuls(torch.autograd.Function):
    """Only the three products: logits = X W^T; backward G W and G^T X (G = the logits, as a stand-in)."""

    @staticmethod
    def forward(ctx, x, w):
        z = x @ w.T
        ctx.save_for_backward(x, w)
        ctx.z = z
        return z.sum()  # scalar; one pass, negligible next to the products

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        z = ctx.z
        return z @ w, z.T @ x


def _matmul3(inputs: dict):
    return _ThreeMatmuls.apply(inputs["input"], inputs["linear_weight"])


def candidates(with_eager: bool = True) -> dict:
    have = _TORCH_LCE is not None and _OPTIONS is not None
    out = {
        "losskit": _losskit,
        "torch_default": functools.partial(_torch_chunked, None) if have else None,
    }
    for b in CHUNKS:
        out[f"torch_b{b}"] = functools.partial(_torch_chunked, b) if have else None
    if with_eager:
        out["eager"] = _eager
    out["matmul3"] = _matmul3
    return out


def _bench(n: int, d: int, v: int, dtype: torch.dtype = torch.float32, baseline: str = "matmul3") -> Bench:
    tag = "" if dtype == torch.float32 else f" {str(dtype).removeprefix('torch.')}"
    return Bench(
        name="linear_cross_entropy" + tag.replace(" ", "_"),
        family="linear_ce",
        size=f"{n} x {d} x {v}{tag}",
        setup=functools.partial(_setup, n, d, v, dtype),
        candidates=candidates(),
        baseline=baseline,
        flops=3 * 2.0 * n * d * v,
        notes=(
            f"N x D x V, {IGNORED:.0%} of targets ignored; peak includes the inputs' gradients "
            f"({(n + v) * d * (torch.finfo(dtype).bits // 8) / 2**20:.1f} MiB): subtract them for the "
            "workspace; matmul3 = the three products alone"
        ),
    )


def benchmarks(quick: bool) -> list:
    if quick:
        return [_bench(256, 64, 8192)]
    out = [_bench(2048, 512, 65536), _bench(512, 512, 100_000)]
    if torch.cuda.is_available():  # the bf16 LM head where its products run natively (see above)
        out.append(_bench(8192, LM[1], LM[0], torch.bfloat16, baseline="eager"))
    return out


# --------------------------------------------------------------------------------------------------
# peak resident memory and the language-model case on the CPU (each measurement in a fresh process)
# --------------------------------------------------------------------------------------------------

_CHILD = {
    **{k: v for k, v in candidates().items() if v is not None},
    "eager_upcast": _eager_upcast,
}


def _child(candidate: str, n: int, d: int, v: int, dtype: str, reps: int) -> None:
    inputs = _setup(n, d, v, getattr(torch, dtype))
    fn = _CHILD[candidate]
    leaves = [inputs["input"], inputs["linear_weight"]]
    times = []
    for _ in range(reps + 1):  # the first step is a warm-up
        for t in leaves:
            t.grad = None
        t0 = time.perf_counter()
        fn(inputs).backward()
        times.append(time.perf_counter() - t0)
    extra = H.peak_rss_of_step(lambda: fn(inputs), leaves)  # after timing: it changes malloc's policy
    grad_mib = sum(t.numel() * t.element_size() for t in leaves) / 2**20
    print(
        json.dumps(
            {
                "candidate": candidate,
                "size": f"{n} x {d} x {v} {dtype}",
                "seconds": min(times[1:]) if reps else times[0],
                "peak_extra_mib": extra,
                "workspace_mib": extra - grad_mib,
            }
        )
    )


def measure(candidate: str, n: int, d: int, v: int, dtype: str = "float32", reps: int = 1) -> dict:
    """One candidate in a fresh process: best step time (s), peak RSS above the inputs, workspace (MiB)."""
    out = subprocess.run(
        [sys.executable, __file__, "child", candidate, str(n), str(d), str(v), dtype, str(reps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv and argv[0] == "child":
        _child(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5], int(argv[6]))
    elif argv and argv[0] == "lm":
        n = int(argv[1]) if len(argv) > 1 else 1024
        v, d = LM
        for cand in ["losskit", "torch_default", "torch_b64", "torch_b128", "eager_upcast"]:
            if cand in _CHILD:
                print(json.dumps(measure(cand, n, d, v, "bfloat16")), flush=True)
        print(json.dumps(measure("eager", 64, d, v, "bfloat16", reps=0)), flush=True)
    else:  # memory table at the float32 sizes
        for n, d, v in [(2048, 512, 65536), (512, 512, 100_000)]:
            for cand in _CHILD:
                if cand not in ("torch_default", "eager_upcast"):
                    print(json.dumps(measure(cand, n, d, v, reps=0)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
