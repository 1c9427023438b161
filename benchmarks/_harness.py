"""Timing, peak-memory and machine-floor utilities for ``benchmarks/run.py``.

Everything here is independent of any loss: it times callables that take the dict made by a
:class:`Bench`'s ``setup`` and return a scalar loss, interleaving the candidates of one bench so that
the noise of a shared machine hits all of them alike.

* Time: each candidate runs forward + backward on fresh inputs (one ``setup()`` per round, gradients
  set to ``None`` before every run, as ``zero_grad()`` does); candidates are visited round-robin in a
  rotating order, each round running a block of runs sized from a warm-up estimate; the report is the
  median and interquartile range of all the per-run times. Python's garbage collector is off while
  timing, as in ``timeit``.
* Memory: one forward + backward under ``torch.profiler`` with ``profile_memory=True``; the running
  sum of the allocator's allocation (+) and free (-) events, in time order, peaks at the most bytes
  torch held above what was allocated before the call (the inputs). Gradients of the inputs, which
  outlive the call, count.
* Floors: memory bandwidth from copying a 256 MiB tensor into a preallocated one (bytes read +
  written / time, best of several), and the float32 matmul rate from a 2048 x 2048 product.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

Fn = Callable[[dict], Tensor]

# The profiler (used for peak memory) logs two lines per session at its default level; read when it
# first starts, so setting it here, before any profile, is enough. Set it yourself to override.
os.environ.setdefault("KINETO_LOG_LEVEL", "10")


# --------------------------------------------------------------------------------------------------
# resident memory of a whole process (for runs too large for the profiler, one per fresh process)
# --------------------------------------------------------------------------------------------------


def status_mib(field: str) -> float:
    """A field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset the peak resident set (VmHWM) to the current one (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def track_live_memory() -> None:
    """Make the resident set follow the live tensors (glibc; a no-op elsewhere).

    Freed blocks otherwise stay resident in the heap, where a later peak can hide. From now on every
    allocation above 128 KiB is mmapped and unmapped when freed, and the heap's free pages are handed
    back now (``malloc_trim``), so memory reused from the heap is faulted in again and counted. Called
    after timing, as fresh mappings cost page faults.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)


def peak_rss_of_step(step: Callable[[], Tensor], leaves: list[Tensor]) -> float:
    """MiB of resident memory one ``step().backward()`` adds at its peak, gradients of ``leaves`` included.

    One untimed step first (one-time allocations such as BLAS buffers and thread pools are not the
    step's workspace), with live-memory tracking on; gradients are dropped before each step.
    """
    for _ in range(2):
        for t in leaves:
            t.grad = None
        gc.collect()
        track_live_memory()
        reset_peak_rss()
        base = status_mib("VmRSS")
        step().backward()
    return status_mib("VmHWM") - base


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------


def grad_leaves(obj: Any) -> list[Tensor]:
    """Every leaf tensor that requires grad inside ``obj`` (dicts, lists, tuples and Modules searched)."""
    found: list[Tensor] = []
    seen: set[int] = set()

    def visit(o: Any) -> None:
        if isinstance(o, Tensor):
            if o.requires_grad and o.is_leaf and id(o) not in seen:
                seen.add(id(o))
                found.append(o)
        elif isinstance(o, torch.nn.Module):
            for p in o.parameters():
                visit(p)
        elif isinstance(o, dict):
            for v in o.values():
                visit(v)
        elif isinstance(o, list | tuple):
            for v in o:
                visit(v)

    visit(obj)
    return found


def _needs_cuda_sync(obj: Any) -> bool:
    return any(t.is_cuda for t in grad_leaves(obj)) or (
        isinstance(obj, dict) and any(isinstance(v, Tensor) and v.is_cuda for v in obj.values())
    )


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def run_once(fn: Fn, inputs: dict, leaves: list[Tensor], cuda: bool = False) -> float:
    """Zero the gradients, then time one forward + backward; seconds."""
    for t in leaves:
        t.grad = None
    _sync(cuda)
    t0 = time.perf_counter()
    loss = fn(inputs)
    loss.backward()
    _sync(cuda)
    elapsed = time.perf_counter() - t0
    del loss
    return elapsed


# --------------------------------------------------------------------------------------------------
# timing, interleaved
# --------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    median_s: float
    q25_s: float
    q75_s: float
    runs: int

    @property
    def iqr_s(self) -> float:
        return self.q75_s - self.q25_s


@dataclass
class TimingPlan:
    """How long to time. ``budget_s`` is the target timed seconds per candidate, spread over ``rounds``."""

    rounds: int = 7
    budget_s: float = 2.0
    warmup_runs: int = 2
    warmup_s: float = 0.2
    max_runs_per_block: int = 500

    @classmethod
    def quick(cls) -> TimingPlan:
        return cls(rounds=3, budget_s=0.3, warmup_runs=1, warmup_s=0.05)


def quantiles(xs: list[float]) -> tuple[float, float, float]:
    """(25th, 50th, 75th) percentiles, linear interpolation; a single value is all three."""
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def time_interleaved(
    setup: Callable[[], dict],
    fns: dict[str, Fn],
    plan: TimingPlan,
) -> tuple[dict[str, Timing], dict[str, str]]:
    """Time every candidate in ``fns`` side by side; returns (timings, errors) keyed by candidate name.

    A candidate that raises (in warm-up or later) is dropped from later rounds and its error returned.
    """
    errors: dict[str, str] = {}
    per_run: dict[str, float] = {}
    inputs = setup()
    leaves = grad_leaves(inputs)
    cuda = _needs_cuda_sync(inputs)
    # warm-up (compiles, first-touch allocations) and a per-run time estimate
    for name, fn in fns.items():
        try:
            times: list[float] = []
            start = time.perf_counter()
            while len(times) < plan.warmup_runs or time.perf_counter() - start < plan.warmup_s:
                times.append(run_once(fn, inputs, leaves, cuda))
                if len(times) >= 50:
                    break
            per_run[name] = min(times[-max(1, len(times) // 2) :])
        except Exception as e:  # a failing candidate is reported, the run goes on
            errors[name] = describe_error(e)
    del inputs, leaves

    alive = [n for n in fns if n not in errors]
    samples: dict[str, list[float]] = {n: [] for n in alive}
    # slow candidates: fewer rounds, but never fewer than 3 runs
    slowest = max((per_run[n] for n in alive), default=0.0)
    rounds = plan.rounds
    if slowest > 0 and slowest * plan.rounds > plan.budget_s:
        rounds = max(3, math.ceil(plan.budget_s / slowest))
    block = {
        n: max(1, min(plan.max_runs_per_block, round(plan.budget_s / rounds / max(per_run[n], 1e-9))))
        for n in alive
    }
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            if not alive:
                break
            inputs = setup()
            leaves = grad_leaves(inputs)
            order = alive[r % len(alive) :] + alive[: r % len(alive)]
            gc.disable()
            for name in order:
                try:
                    for _ in range(block[name]):
                        samples[name].append(run_once(fns[name], inputs, leaves, cuda))
                except Exception as e:
                    errors[name] = describe_error(e)
            alive = [n for n in alive if n not in errors]
            del inputs, leaves
            gc.collect()  # between rounds, never inside a timed block
    finally:
        if gc_was_enabled:
            gc.enable()

    timings: dict[str, Timing] = {}
    for name, xs in samples.items():
        if name in errors or not xs:
            continue
        q25, med, q75 = quantiles(xs)
        timings[name] = Timing(median_s=med, q25_s=q25, q75_s=q75, runs=len(xs))
    return timings, errors


def describe_error(e: BaseException) -> str:
    """``Type: first line of the message``, kept short for a table cell."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text[:300]


def format_traceback(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


# --------------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------------


def _walk(nodes: list[Any]) -> Iterator[Any]:
    stack = list(nodes)
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


def peak_bytes(fn: Fn, inputs: dict) -> int | None:
    """Peak bytes torch allocated during one forward + backward of ``fn(inputs)``, above what was held before.

    Replays the allocator's events recorded by ``torch.profiler`` (``profile_memory=True``): allocation
    sizes are positive and frees negative, so the running sum in time order is the extra memory held,
    and its maximum the peak. Returns ``None`` if this torch's profiler does not expose the events.
    """
    from torch.profiler import ProfilerActivity, profile

    try:
        from torch._C._profiler import _EventType
    except ImportError:  # pragma: no cover - older torch
        return None
    leaves = grad_leaves(inputs)
    for t in leaves:
        t.grad = None
    activities = [ProfilerActivity.CPU]
    if _needs_cuda_sync(inputs):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, profile_memory=True) as prof:
        loss = fn(inputs)
        loss.backward()
        del loss
    results = prof.profiler.kineto_results if prof.profiler is not None else None
    if results is None or not hasattr(results, "experimental_event_tree"):
        return None
    events = [e for e in _walk(results.experimental_event_tree()) if e.tag == _EventType.Allocation]
    events.sort(key=lambda e: e.start_time_ns)
    held = peak = 0
    for e in events:
        held += int(e.extra_fields.alloc_size)
        peak = max(peak, held)
    for t in leaves:
        t.grad = None
    return peak


# --------------------------------------------------------------------------------------------------
# machine floors
# --------------------------------------------------------------------------------------------------


@dataclass
class Machine:
    bandwidth_gbs: float  # copy into a preallocated tensor: (read + write) bytes / s / 1e9
    alloc_copy_gbs: float  # clone (allocation + page faults + copy), for reference
    matmul_gflops: float  # float32 2048 x 2048 matmul


def _best_time(f: Callable[[], object], reps: int) -> float:
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
        del out
    return best


def _copy_times(mib: int, reps: int) -> tuple[float, float]:
    """Best seconds to copy ``mib`` MiB into a preallocated tensor, and to clone it (fresh allocation)."""
    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch the pages once
    t_copy = _best_time(lambda: dst.copy_(src), reps)
    t_clone = _best_time(lambda: src.clone(), max(2, reps // 2))
    return t_copy, t_clone


def _matmul_time(n: int, reps: int) -> float:
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    a @ b
    return _best_time(lambda: a @ b, reps)


def measure_machine(quick: bool = False, mib: int = 256) -> Machine:
    """Memory bandwidth (a ``mib`` MiB copy) and matmul rate; best of a few repetitions each."""
    reps = 4 if quick else 8
    t_copy, t_clone = _copy_times(mib, reps)
    t_mm = _matmul_time(2048, reps)
    nbytes = 2 * mib * 2**20  # read + write
    return Machine(
        bandwidth_gbs=nbytes / t_copy / 1e9,
        alloc_copy_gbs=nbytes / t_clone / 1e9,
        matmul_gflops=2.0 * 2048**3 / t_mm / 1e9,
    )


# --------------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def metadata(repo: Path, threads: int, quick: bool, machine: Machine) -> dict[str, Any]:
    peers = {}
    for mod in ("torchvision", "pytorch_metric_learning"):
        try:
            peers[mod] = __import__(mod).__version__
        except Exception:
            peers[mod] = None
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(repo),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "quick": quick,
        "peers": peers,
        "machine": asdict(machine),
    }


# --------------------------------------------------------------------------------------------------
# one row of the report
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    bench: str
    family: str
    size: str
    candidate: str
    status: str  # "ok" | "failed" | "n/a"
    baseline: bool = False
    median_ms: float | None = None
    iqr_ms: float | None = None
    runs: int | None = None
    peak_mib: float | None = None
    time_ratio: float | None = None  # median / baseline's median
    mem_ratio: float | None = None  # peak / baseline's peak
    floor_fraction: float | None = None  # (bytes_moved / bandwidth) / median
    flops_fraction: float | None = None  # (flops / matmul rate) / median
    cold_ms: float | None = None  # first forward+backward in a fresh process, empty compile cache
    error: str | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)
