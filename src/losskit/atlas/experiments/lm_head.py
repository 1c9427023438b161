"""Language-model head: the memory (and time) of its loss against the vocabulary size, eager against streamed.

For hidden states ``x`` ``(N, D)``, a head ``W`` ``(V, D)`` and targets ``(N,)``, one forward and
backward pass of

- **eager**: ``F.cross_entropy(F.linear(x, W), target)``, which holds the ``(N, V)`` logits, their
  log-softmax and their gradient;
- **losskit**: :func:`losskit.functional.linear_cross_entropy` at its defaults (the streaming engine:
  blocks of the vocabulary, gradients computed in forward);
- **torch**: torch's ``F.linear_cross_entropy(..., options=torch.nn.LinearCrossEntropyOptions())``, its
  own chunked path at its defaults (torch >= 2.13; absent from the chart before).

Memory is counted exactly rather than sampled: a ``TorchDispatchMode`` sees every tensor each
operation returns during the pass (forward and backward) and follows its storage until it is freed;
the peak of the bytes alive at once is the pass's peak. The **workspace** is that peak minus the
gradients the pass must return (``x.grad`` and ``W.grad``, ``(N + V) D`` floats), i.e. what the loss
needs beyond its inputs and outputs. The count has no randomness: the same sizes give the same bytes,
so the claim rests on one measurement (stated in its rule). Times are wall-clock seconds, 1 thread:
of the counted pass itself in ``--quick`` (the bookkeeping adds microseconds per operation), the
median of more passes in ``--full``; a rough figure on a shared CPU, not part of a claim. All tokens
are counted (no ``ignore_index``), float32. ``--tiny`` stops below 32k, where the claim starts: its
verdict there is inconclusive by design.
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .. import StepResult, require
from .._plotting import PALETTE, pyplot, save
from ..stats import DETERMINISTIC
from ..verdicts import Claim

TITLE = "Language-model head: memory of the loss against the vocabulary size"
SCALES = {
    "tiny": {"tokens": 256, "dim": 16, "vocab": (2048, 8192), "reps": 0},
    "quick": {"tokens": 2048, "dim": 32, "vocab": (8192, 32768, 65536), "reps": 0},
    "full": {"tokens": 4096, "dim": 64, "vocab": (8192, 16384, 32768, 65536, 131072), "reps": 1},
}
BOUND = 10.0  # percent of eager's workspace: the claim's bound
FROM_V = 32768  # the claim holds from this vocabulary size up
RESOLUTION = 0.01  # points: the count is exact in bytes; the percentages are rounded to this
METHODS = ("eager", "losskit", "torch")
LABELS = {
    "eager": "eager F.linear + F.cross_entropy",
    "losskit": "losskit linear_cross_entropy",
    "torch": "torch F.linear_cross_entropy (chunked options)",
}
MIB = 2.0**20


def _mib(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


class PeakBytes(TorchDispatchMode):
    """Bytes of tensor storage alive at once, at most, over the operations run inside the mode.

    Every tensor an operation returns is followed by a weak reference to its storage (views and
    in-place results share one); storages freed are dropped before each operation's outputs are added.
    Tensors made before the mode are counted only once an operation returns a view of them; the
    storages of ``exclude`` (the inputs) never are."""

    def __init__(self, exclude: tuple[torch.Tensor, ...] = ()) -> None:
        super().__init__()
        from torch.multiprocessing.reductions import StorageWeakRef

        self._ref = StorageWeakRef
        self.live: dict[int, tuple[object, int]] = {}
        for t in exclude:  # held at size 0: a view of an input adds nothing
            storage = t.untyped_storage()
            self.live[storage._cdata] = (StorageWeakRef(storage), 0)
        self.now = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now -= self.live.pop(key)[1]
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage._cdata not in self.live:
                    self.live[storage._cdata] = (self._ref(storage), storage.nbytes())
                    self.now += storage.nbytes()
        self.peak = max(self.peak, self.now)
        return out


def _loss(method: str):
    from ... import functional as LF

    if method == "eager":
        return lambda x, w, t: F.cross_entropy(F.linear(x, w), t)
    if method == "losskit":
        return LF.linear_cross_entropy
    options = torch.nn.LinearCrossEntropyOptions
    return lambda x, w, t: F.linear_cross_entropy(x, w, t, options=options())


def available() -> tuple[str, ...]:
    """The methods this torch has (torch's own ``F.linear_cross_entropy`` from 2.13)."""
    has_torch = hasattr(F, "linear_cross_entropy") and hasattr(torch.nn, "LinearCrossEntropyOptions")
    return tuple(m for m in METHODS if m != "torch" or has_torch)


def measure(method: str, tokens: int, dim: int, vocab: int, *, reps: int = 1) -> dict:
    """One forward + backward pass of ``method``: peak and workspace bytes (exact), and the median
    wall-clock seconds of ``reps`` untracked passes (``reps=0``: of the counted pass itself, whose
    bookkeeping adds a few microseconds per operation)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, dim, generator=g).requires_grad_(True)
    w = (torch.randn(vocab, dim, generator=g) / dim**0.5).requires_grad_(True)
    t = torch.randint(0, vocab, (tokens,), generator=g)
    fn = _loss(method)
    mode = PeakBytes()
    t0 = time.perf_counter()
    with mode:
        fn(x, w, t).backward()
    counted = time.perf_counter() - t0
    peak = mode.peak
    del mode
    seconds = []
    for _ in range(reps):
        x.grad = w.grad = None
        t0 = time.perf_counter()
        fn(x, w, t).backward()
        seconds.append(time.perf_counter() - t0)
    grads = (tokens + vocab) * dim * x.element_size()
    return {
        "peak_bytes": peak,
        "workspace_bytes": peak - grads,
        "seconds": sorted(seconds)[len(seconds) // 2] if seconds else counted,
    }


def run(out: Path, mode: str) -> StepResult:
    require("linear_cross_entropy")
    cfg = SCALES[mode]
    n, d, vocab = cfg["tokens"], cfg["dim"], cfg["vocab"]
    methods = available()
    for m in methods:  # warm-up (first-call costs: imports, the dispatch mode's set-up), not recorded
        measure(m, 8, 4, 16)
    table = {m: [measure(m, n, d, v, reps=cfg["reps"]) for v in vocab] for m in methods}
    ws = {m: [r["workspace_bytes"] / MIB for r in table[m]] for m in methods}
    ratio = [100.0 * a / b for a, b in zip(ws["losskit"], ws["eager"])]
    logits = [n * v * 4 / MIB for v in vocab]

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for i, m in enumerate(methods):
        style = {"lw": 3.0, "alpha": 0.6} if m == "eager" else {"lw": 1.4}  # eager wide: the reference
        a1.plot(vocab, ws[m], "o-", color=PALETTE[i], label=LABELS[m], **style)
        a2.plot(vocab, [r["seconds"] for r in table[m]], "o-", color=PALETTE[i], label=LABELS[m], **style)
    a1.plot(vocab, logits, ":", color="0.5", label="the (N, V) logits alone, float32")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("vocabulary size V")
    a1.set_ylabel("workspace (MiB): peak minus the gradients")
    a1.set_title(f"memory of forward + backward, {n} tokens, D = {d}")
    a2.set_ylabel("seconds (one pass, 1 thread)")
    a2.set_title("time of forward + backward (rough: one run, shared CPU)")
    a1.legend(fontsize=7)
    fname = save(fig, out, "lm_head_memory.png")

    big = [(v, r) for v, r in zip(vocab, ratio) if v >= FROM_V]
    worst_v, worst = max(big, key=lambda p: p[1]) if big else (None, float("nan"))  # NaN: inconclusive
    rows = "; ".join(
        f"V = {v}: "
        + ", ".join(f"{m} {_mib(ws[m][j])} MiB" for m in methods)
        + f" (losskit {r:.1f}% of eager)"
        for j, (v, r) in enumerate(zip(vocab, ratio))
    )
    claim = Claim.measure(
        id="lm-head-chunked-memory",
        statement=f"The streamed language-model head loss needs at most {BOUND:g}% of eager's workspace at V >= {FROM_V // 1024}k ({n} tokens).",
        source="Wijmans et al. 2024 (Cut Cross-Entropy); issue 13",
        losses=("linear_cross_entropy",),
        effect_name=f"{BOUND:g} minus losskit's workspace as a percentage of eager's, at the worst V >= {FROM_V}",
        unit="points",
        delta=RESOLUTION,
        kind=DETERMINISTIC,
        effects=[BOUND - worst],
        evidence=f"{n} tokens, D = {d}, float32, forward + backward; workspace (peak minus x.grad and W.grad): {rows}. "
        + (
            f"Worst at V >= {FROM_V}: {worst:.1f}% at V = {worst_v}."
            if big
            else f"No measured size reaches V >= {FROM_V}: the claim is not tested by this run."
        ),
        figure=fname,
        experiment="lm_head",
    )
    eager_at = {v: r["workspace_bytes"] / MIB for v, r in zip(vocab, table["eager"])}
    note = (
        ""
        if "torch" in methods
        else " torch's F.linear_cross_entropy is absent from this torch (before 2.13)."
    )
    advice = {
        "linear_cross_entropy": {
            "use": [
                f"Large vocabularies: at V = {vocab[-1]} ({n} tokens, D = {d}) its workspace was {_mib(ws['losskit'][-1])} MiB "
                f"against eager's {_mib(eager_at[vocab[-1]])} MiB ({ratio[-1]:.1f}%), and it does not grow with the logits "
                "(see the how-to page howto/language_model_head)."
            ]
            if claim.verdict == "held"
            else [],
            "avoid": [],
        }
    }
    metrics = {
        "tokens": n,
        "dim": d,
        "vocab": list(vocab),
        "workspace_mib": ws,
        "peak_mib": {m: [r["peak_bytes"] / MIB for r in table[m]] for m in methods},
        "seconds": {m: [r["seconds"] for r in table[m]] for m in methods},
        "losskit_percent_of_eager": ratio,
    }
    return StepResult(
        key="lm_head",
        title=TITLE,
        kind="experiment",
        figures={"memory": fname},
        captions={
            "memory": f"Left: workspace (peak tensor bytes of forward + backward minus the gradients of x and W, counted "
            f"exactly per operation) against V at {n} tokens and D = {d}, float32; the dotted line is the (N, V) logits "
            f"alone. Right: seconds of one pass, 1 thread (rough).{note}"
        },
        metrics=metrics,
        tables=[_table(metrics)],
        claims=[claim],
        advice=advice,
        setup=f"Hidden states ({n}, {d}), a head (V, {d}) and {n} counted targets, float32, for V in "
        f"{', '.join(str(v) for v in vocab)}; one forward + backward of each of: "
        + "; ".join(LABELS[m] for m in methods)
        + ". Memory: every tensor that an operation returns during the pass is followed to its release (a dispatch "
        "mode over the storages), so the peak is exact and deterministic (one measurement per size); workspace = peak "
        "minus the gradients x.grad and W.grad the pass must return. Time: "
        + ("the counted pass itself" if cfg["reps"] == 0 else f"median of {cfg['reps']} untracked passes")
        + ", 1 thread."
        + note,
        headline="workspace at V = "
        + f"{vocab[-1]}: "
        + ", ".join(f"{m} {_mib(ws[m][-1])} MiB" for m in methods)
        + f"; losskit/eager at V >= {FROM_V}: at most {worst:.1f}%",
    )


def _table(metrics: dict) -> dict:
    """The measurements as a report table: workspace MiB and seconds per method and V."""
    methods = list(metrics["workspace_mib"])
    rows = [
        [str(v)]
        + [f"{_mib(metrics['workspace_mib'][k][j])} MiB, {metrics['seconds'][k][j]:.2f} s" for k in methods]
        + [f"{metrics['losskit_percent_of_eager'][j]:.1f}%"]
        for j, v in enumerate(metrics["vocab"])
    ]
    return {
        "caption": f"Workspace (exact) and time of one forward + backward at {metrics['tokens']} tokens, "
        f"D = {metrics['dim']}, float32.",
        "header": ["V", *(LABELS[k] for k in methods), "losskit / eager workspace"],
        "rows": rows,
    }


__all__ = ["SCALES", "TITLE", "PeakBytes", "available", "measure", "run"]
