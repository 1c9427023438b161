"""The CUDA check: every loss of the contract table on the GPU, and a CUDA timing table.

    PYTHONPATH=src python scripts/gpu_check.py [--out DIR] [--budget SECONDS] [--only FAMILY[,..]]

Needs only torch (and torchvision for its rows); pytest and hypothesis are not required, so it runs on a
bare GPU machine with losskit from source. Two parts:

1. Parity and host syncs: every case of ``tests/cases*.py`` (the contract table) in every dtype it
   accepts, forward and backward on ``cuda`` under ``torch.cuda.set_sync_debug_mode("error")`` (any host
   synchronisation in loss code raises), compared with the same call in float64 on the CPU at the
   tolerances of ``tests/conftest.py``; plus the label check on CUDA (a device-side assertion, no sync).
2. Timing: every bench of ``benchmarks/bench_*.py`` with its inputs moved to the GPU, each candidate's
   forward + backward timed with CUDA events (median of repeated runs, interleaved), peak memory from
   ``torch.cuda.max_memory_allocated`` above the inputs, ratios against the bench's baseline.

Writes ``gpu_check.md`` (both tables) and ``gpu_check.json`` into ``--out`` (default: ``$OUT`` or
``gpu-check-out``). Exit status 1 if any parity or sync check failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests"), str(REPO / "benchmarks")]

TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (2e-2, 2e-3),
    torch.bfloat16: (5e-2, 1e-2),
}


def _sync_debug(device: str, mode: str) -> None:
    if device == "cuda":
        torch.cuda.set_sync_debug_mode(mode)


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _leaves(inputs: dict, keys, device: str, dtype: torch.dtype | None = None) -> dict:
    out = {}
    for k, v in inputs.items():
        v = v.detach().to(device)
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.requires_grad_(k in keys and v.is_floating_point())
    return out


def parity(only: set[str] | None, device: str = "cuda") -> list[dict]:
    """Part 1: every contract case on CUDA against float64 on the CPU, with host syncs as errors."""
    from cases import all_cases

    results = []
    for case in all_cases():
        for dtype in TOLERANCES:
            if not case.low_precision and dtype in (torch.float16, torch.bfloat16):
                continue
            if only and case.name not in only:
                continue
            row = {"case": case.name, "dtype": str(dtype).removeprefix("torch."), "status": "ok", "error": ""}
            try:
                gen = torch.Generator().manual_seed(0)
                cpu = case.make(8, dtype, gen)
                gpu = _leaves(cpu, case.grad_keys, device)
                _sync_debug(device, "error")
                try:
                    loss = case.call(gpu, "mean")
                    loss.backward()
                finally:
                    _sync_debug(device, "default")
                ref_inputs = _leaves(cpu, case.grad_keys, "cpu", torch.float64)
                ref = case.call(ref_inputs, "mean")
                ref.backward()
                rtol, atol = TOLERANCES[dtype]
                torch.testing.assert_close(loss.detach().double().cpu(), ref.detach(), rtol=rtol, atol=atol)
                for key in case.grad_keys:
                    torch.testing.assert_close(
                        gpu[key].grad.double().cpu(), ref_inputs[key].grad, rtol=rtol * 10, atol=atol * 10
                    )
                if case.labels is not None:
                    bad = {**gpu, case.labels: gpu[case.labels].clone().fill_(case.num_classes)}
                    try:
                        case.call(bad, "mean")
                        _synchronize(device)
                        row["status"], row["error"] = "failed", "out-of-range label was not caught"
                    except (RuntimeError, ValueError) as err:  # CUDA: the device assertion, at the sync
                        if "class ind" not in str(err) and "assert" not in str(err).lower():
                            raise
            except Exception as err:  # report and go on: this is a survey of every case
                row["status"], row["error"] = "failed", f"{type(err).__name__}: {str(err).splitlines()[0]}"
            results.append(row)
            print(f"parity {row['case']:36} {row['dtype']:9} {row['status']} {row['error']}", flush=True)
    return results


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _time(fn, setup, reps: int) -> tuple[float, float]:
    """Median milliseconds of forward + backward, and peak MiB above the inputs."""
    times = []
    for _ in range(reps):
        inputs = setup()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(inputs).backward()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    inputs = setup()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn(inputs).backward()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return statistics.median(times), peak


def timing(only: set[str] | None, budget: float) -> list[dict]:
    """Part 2: every bench on CUDA, candidates interleaved, ratios against the baseline."""
    import common  # noqa: F401  (the Bench contract, imported as the family files expect)

    rows = []
    for path in sorted((REPO / "benchmarks").glob("bench_*.py")):
        stem = path.stem.removeprefix("bench_")
        if only and stem not in only:
            continue
        try:
            benches = _load(path).benchmarks(False)
        except Exception as err:
            rows.append({"bench": path.name, "candidate": "-", "status": f"failed: {err}"})
            continue
        for b in benches:

            def setup(b=b):
                return {
                    k: (v.detach().cuda().requires_grad_(v.requires_grad) if torch.is_tensor(v) else v)
                    for k, v in b.setup().items()
                }

            got: dict[str, dict] = {}
            t_end = time.perf_counter() + budget
            for name, fn in b.candidates.items():
                if fn is None:
                    got[name] = {"status": "n/a"}
                    continue
                try:
                    fn(setup()).backward()  # warm-up (absorbs compilation of compiled peers)
                    torch.cuda.synchronize()
                    reps = 5 if time.perf_counter() > t_end else 15
                    ms, peak = _time(fn, setup, reps)
                    got[name] = {"status": "ok", "ms": ms, "peak_mib": peak}
                except Exception as err:
                    got[name] = {"status": f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"}
            base = got.get(b.baseline, {})
            for name, r in got.items():
                row = {
                    "bench": b.name,
                    "size": b.size,
                    "candidate": name,
                    "baseline": name == b.baseline,
                    **r,
                }
                if r.get("status") == "ok" and base.get("status") == "ok":
                    row["time_ratio"] = r["ms"] / base["ms"]
                    row["mem_ratio"] = r["peak_mib"] / base["peak_mib"] if base["peak_mib"] > 0 else math.nan
                rows.append(row)
                print(f"timing {b.name:34} {name:28} {row.get('status')} {row.get('ms', '')}", flush=True)
            torch.cuda.empty_cache()
    return rows


def markdown(par: list[dict], tim: list[dict]) -> str:
    dev = torch.cuda.get_device_name()
    lines = [f"CUDA check on {dev}, torch {torch.__version__}.", ""]
    failed = [r for r in par if r["status"] != "ok"]
    lines.append(f"Parity and host syncs: {len(par) - len(failed)} of {len(par)} case x dtype passed.")
    for r in failed:
        lines.append(f"- {r['case']} {r['dtype']}: {r['error']}")
    lines += [
        "",
        "| bench | size | candidate | median ms | peak MiB | time vs baseline | memory vs baseline |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for r in tim:
        if r.get("status") != "ok":
            lines.append(f"| {r['bench']} | {r.get('size', '')} | {r['candidate']} | {r['status']} | | | |")
            continue
        cand = r["candidate"] + (" (baseline)" if r.get("baseline") else "")
        lines.append(
            f"| {r['bench']} | {r['size']} | {cand} | {r['ms']:.2f} | {r['peak_mib']:.1f} | "
            f"{r.get('time_ratio', math.nan):.2f} | {r.get('mem_ratio', math.nan):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    p.add_argument("--budget", type=float, default=4.0, help="seconds per bench before fewer repetitions")
    p.add_argument("--only", help="comma-separated loss names (parity) and bench families (timing)")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--dry-run-on-cpu", action="store_true", help="run part 1 on the CPU (tests this script)")
    args = p.parse_args()
    if args.dry_run_on_cpu:
        par = parity({s.strip() for s in args.only.split(",")} if args.only else None, device="cpu")
        print(f"dry run: {sum(r['status'] == 'ok' for r in par)} of {len(par)} ok")
        return 0
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        par = parity(only)
    except Exception:
        traceback.print_exc()
        par = [{"case": "parity", "dtype": "-", "status": "failed", "error": "the survey itself failed"}]
    tim = [] if args.skip_timing else timing(only, args.budget)
    (args.out / "gpu_check.json").write_text(json.dumps({"parity": par, "timing": tim}, indent=1))
    (args.out / "gpu_check.md").write_text(markdown(par, tim))
    print(markdown(par, tim))
    print(f"gpu_check: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 1 if any(r["status"] != "ok" for r in par) else 0


if __name__ == "__main__":
    sys.exit(main())
