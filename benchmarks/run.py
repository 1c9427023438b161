"""Time every losskit loss forward+backward against its baselines, side by side in one process.

    python benchmarks/run.py [--quick] [--only FAMILY[,..]] [--json PATH] [--markdown PATH]

Finds ``benchmarks/bench_*.py``, calls each module's ``benchmarks(quick)`` (see ``common.py``) and, for
every :class:`Bench`, times each installed candidate's forward + backward interleaved with the others
(median and IQR of many runs), measures its peak memory above the inputs, and reports the ratios
against the bench's baseline and the fraction of this machine's floor reached (memory bandwidth for
benches that state ``bytes_moved``, float32 matmul rate for those that state ``flops``).

A peer that is not installed gives an "n/a" row and a candidate that raises a "failed" row with its
error; neither stops the run. Results go to ``benchmarks/results/latest.json`` (with metadata: commit,
torch version, threads, CPU, date, the measured floors) and ``latest.md`` (a table for the README).
With ``--only`` the rows of the benches not run are kept from the existing JSON (``--no-merge`` to
start afresh). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
for _p in (str(REPO), str(BENCH_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
# OpenMP's wait policy: by default it is left as a user who sets nothing gets it (waiters spin a
# while, then sleep). --omp-passive makes waiters sleep at once: steadier on a machine shared with
# other jobs, where a spinning thread that is descheduled stalls the others, but each parallel region
# then costs a wake-up (tens of microseconds on a virtual machine), which a kernel of many small
# operations pays many times: at 100000 x 80 the focal kernel measured 1.17x torch BCE's time with
# the default policy and 1.64x with passive waiters in the same hour. Read once, when torch loads
# OpenMP; OMP_WAIT_POLICY in the environment wins over both. (Imported by a process that already
# loaded torch, it changes nothing.)
OMP_PASSIVE = "--omp-passive" in sys.argv[1:]
if "torch" not in sys.modules and OMP_PASSIVE:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import _harness as H  # noqa: E402
import common  # noqa: E402

# Family files import the contract as ``common`` (run as scripts) or ``benchmarks.common`` /
# ``.common`` (imported as a package): make all three the same module, so there is one ``Bench``.
sys.modules.setdefault("benchmarks.common", common)
Bench = common.Bench


# --------------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------------


def bench_files(bench_dir: Path = BENCH_DIR) -> list[Path]:
    return sorted(bench_dir.glob("bench_*.py"))


def load_module(path: Path) -> ModuleType:
    """Import a family file by path, under its own name (``bench_<family>``)."""
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def check_bench(b: Any) -> list[str]:
    """What is wrong with ``b`` as a :class:`Bench` (empty when well-formed). Duck-typed on purpose."""
    problems: list[str] = []
    for attr, typ in (("name", str), ("family", str), ("size", str), ("baseline", str), ("notes", str)):
        if not isinstance(getattr(b, attr, None), typ):
            problems.append(f"{attr} must be a str; got {getattr(b, attr, None)!r}")
    if not callable(getattr(b, "setup", None)):
        problems.append("setup must be callable")
    cands = getattr(b, "candidates", None)
    if not isinstance(cands, dict) or not cands:
        problems.append("candidates must be a non-empty dict")
    else:
        for k, v in cands.items():
            if not isinstance(k, str):
                problems.append(f"candidate key must be a str; got {k!r}")
            if v is not None and not callable(v):
                problems.append(f"candidate {k!r} must be callable or None; got {type(v).__name__}")
        if getattr(b, "baseline", None) not in cands:
            problems.append(f"baseline {getattr(b, 'baseline', None)!r} is not a candidate ({list(cands)})")
    bm = getattr(b, "bytes_moved", None)
    if bm is not None and (not isinstance(bm, int) or isinstance(bm, bool) or bm <= 0):
        problems.append(f"bytes_moved must be a positive int or None; got {bm!r}")
    fl = getattr(b, "flops", None)
    if fl is not None and (not isinstance(fl, int | float) or isinstance(fl, bool) or not fl > 0):
        problems.append(f"flops must be a positive number or None; got {fl!r}")
    if not isinstance(getattr(b, "extra", {}), dict):
        problems.append("extra must be a dict")
    return problems


def collect(quick: bool, only: set[str] | None, bench_dir: Path = BENCH_DIR) -> tuple[list[Any], list[H.Row]]:
    """All benches to run (filtered by ``only``: a family, a file's ``<family>`` or a bench name), and
    a failed row for each file that could not be imported or returned malformed benches."""
    benches: list[Any] = []
    failures: list[H.Row] = []
    for path in bench_files(bench_dir):
        stem = path.stem.removeprefix("bench_")
        try:
            module = load_module(path)
            found = list(module.benchmarks(quick))
        except Exception as e:
            if only is None or stem in only:
                failures.append(H.Row(path.name, stem, "", "-", "failed", error=H.describe_error(e)))
            continue
        for b in found:
            if only is not None and not ({stem, getattr(b, "family", None), getattr(b, "name", None)} & only):
                continue
            problems = check_bench(b)
            if not problems:
                b._file_stem = stem  # where the cold probe finds it again
            if problems:
                name = str(getattr(b, "name", path.name))
                failures.append(
                    H.Row(name, stem, "", "-", "failed", error="malformed Bench: " + "; ".join(problems))
                )
            else:
                benches.append(b)
    return benches, failures


# --------------------------------------------------------------------------------------------------
# cold start: the first call in a fresh process
# --------------------------------------------------------------------------------------------------

# Whose first call is measured: losskit's (the default path must not stall) and the baseline's.
COLD_CANDIDATES = ("losskit",)


def cold_probe(stem: str, bench: str, candidate: str, quick: bool, threads: int) -> float:
    """In this (fresh) process: seconds of the first forward + backward of one candidate."""
    torch.set_num_threads(threads)
    module = load_module(BENCH_DIR / f"bench_{stem}.py")
    found = [b for b in module.benchmarks(quick) if b.name == bench]
    if not found:
        raise SystemExit(f"no bench {bench!r} in bench_{stem}.py")
    b = found[0]
    fn = b.candidates[candidate]
    inputs = b.setup()
    t0 = time.perf_counter()
    fn(inputs).backward()
    return time.perf_counter() - t0


def cold_first_call(stem: str, b: Any, candidate: str, quick: bool, threads: int) -> float | None:
    """Seconds of ``candidate``'s first call at benchmark size in a fresh interpreter whose compile caches
    (inductor, triton) are empty; None if the probe failed."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, TRITON_CACHE_DIR=cache)
        if OMP_PASSIVE:
            env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--cold-probe", stem, b.name, candidate]
        cmd += ["--threads", str(threads)] + (["--quick"] if quick else [])
        cmd += ["--omp-passive"] if OMP_PASSIVE else []
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
            return float(out.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError):
            return None


# --------------------------------------------------------------------------------------------------
# running one bench
# --------------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def run_bench(
    b: Any, machine: H.Machine, plan: H.TimingPlan, log=print, cold: tuple[str, bool, int] | None = None
) -> list[H.Row]:
    """Time and measure every candidate of ``b``; one row per candidate, in the bench's order."""
    rows = {
        name: H.Row(b.name, b.family, b.size, name, "n/a", baseline=name == b.baseline, notes=b.notes)
        for name in b.candidates
    }
    for name, fn in b.candidates.items():
        if fn is None:
            rows[name].error = "not installed"
    fns = {n: f for n, f in b.candidates.items() if f is not None}
    try:
        timings, errors = H.time_interleaved(b.setup, fns, plan)
    except Exception as e:  # setup itself failed: every candidate fails with it
        timings, errors = {}, {n: "setup: " + H.describe_error(e) for n in fns}
    for name in fns:
        if name in errors:
            rows[name].status, rows[name].error = "failed", errors[name]
            continue
        t = timings[name]
        rows[name].status = "ok"
        rows[name].median_ms, rows[name].iqr_ms, rows[name].runs = t.median_s * 1e3, t.iqr_s * 1e3, t.runs
        try:
            inputs = b.setup()
            peak = H.peak_bytes(fns[name], inputs)
            del inputs
            rows[name].peak_mib = None if peak is None else peak / 2**20
        except Exception as e:
            rows[name].status, rows[name].error = "failed", "memory run: " + H.describe_error(e)
        if b.bytes_moved and rows[name].median_ms:
            floor_ms = b.bytes_moved / (machine.bandwidth_gbs * 1e9) * 1e3
            rows[name].floor_fraction = floor_ms / rows[name].median_ms
        if b.flops and rows[name].median_ms:
            floor_ms = b.flops / (machine.matmul_gflops * 1e9) * 1e3
            rows[name].flops_fraction = floor_ms / rows[name].median_ms
        if cold is not None and (name in COLD_CANDIDATES or name == b.baseline):
            seconds = cold_first_call(cold[0], b, name, cold[1], cold[2])
            rows[name].cold_ms = None if seconds is None else seconds * 1e3
    base = rows[b.baseline]
    for r in rows.values():
        if r.status == "ok" and base.status == "ok":
            r.time_ratio = _ratio(r.median_ms, base.median_ms)
            r.mem_ratio = _ratio(r.peak_mib, base.peak_mib)
    for r in rows.values():
        if r.status == "failed":
            log(f"  {b.name} [{r.candidate}] failed: {r.error}")
    return list(rows.values())


# --------------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------------

COLUMNS = [
    "bench", "size", "candidate", "median ms", "IQR ms", "peak MiB", "time ×", "mem ×", "floor", "cold ms",
]  # fmt: skip


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _floor(r: H.Row) -> str:
    parts = []
    if r.floor_fraction is not None:
        parts.append(f"{r.floor_fraction:.0%} bw")
    if r.flops_fraction is not None:
        parts.append(f"{r.flops_fraction:.0%} mm")
    return ", ".join(parts) or "-"


def cells(r: H.Row) -> list[str]:
    cand = r.candidate + (" (baseline)" if r.baseline else "")
    if r.status == "n/a":
        return [r.bench, r.size, cand, "n/a", "", "", "", "", "not installed", ""]
    if r.status == "failed":
        return [r.bench, r.size, cand, "failed", "", "", "", "", r.error or "", ""]
    return [
        r.bench,
        r.size,
        cand,
        _num(r.median_ms, ".2f"),
        _num(r.iqr_ms, ".2f"),
        _num(r.peak_mib, ".1f"),
        _num(r.time_ratio, ".2f"),
        _num(r.mem_ratio, ".2f"),
        _floor(r),
        "" if r.cold_ms is None else f"{r.cold_ms:.0f}",
    ]


def _machine_line(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    return (
        f"torch {meta['torch']}, {meta['threads']} threads, {meta['cpu']}; "
        f"bandwidth {m['bandwidth_gbs']:.1f} GB/s (copy), matmul {m['matmul_gflops']:.0f} GFLOP/s (float32); "
        f"OpenMP wait policy {meta.get('omp_wait_policy') or 'default'}; "
        f"commit {meta['commit']}, {meta['date']}" + (", quick sizes" if meta.get("quick") else "")
    )


def print_table(rows: list[H.Row], meta: dict[str, Any], plain: bool = False) -> None:
    try:
        if plain:
            raise ImportError
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(c), *(len(cells(r)[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
        print(_machine_line(meta))
        print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(cells(r), widths)))
        return
    table = Table(title="losskit forward+backward", caption=_machine_line(meta))
    for i, c in enumerate(COLUMNS):
        table.add_column(c, justify="right" if 3 <= i <= 7 or i == 9 else "left", overflow="fold")
    for r in rows:
        style = {"failed": "red", "n/a": "dim"}.get(r.status)
        table.add_row(*cells(r), style=style)
    Console(width=max(160, Console().width)).print(table)


def to_markdown(rows: list[H.Row], meta: dict[str, Any]) -> str:
    head = (
        "| bench | size | candidate | median ms | IQR ms | peak MiB | time vs baseline "
        "| memory vs baseline | floor reached | cold first call ms |"
    )
    lines = [
        "<!-- generated by benchmarks/run.py; do not edit by hand -->",
        f"Forward + backward, {_machine_line(meta)}.",
        "",
        head,
        "|---|---|---|--:|--:|--:|--:|--:|---|--:|",
    ]
    for r in rows:
        c = cells(r)
        c[2] = f"**{r.candidate}**" if r.candidate == "losskit" else c[2]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in c) + " |")
    lines += [
        "",
        "time/memory vs baseline: ratio to the row marked baseline (below 1 is better). floor reached: the "
        "time the bytes that must move would take at the measured copy bandwidth (bw), or the FLOPs at the "
        "measured matmul rate (mm), as a fraction of the measured time. cold first call: the first "
        "forward + backward at this size in a fresh process with empty compile caches (losskit and the "
        "baseline).",
    ]
    return "\n".join(lines) + "\n"


def row_from_dict(d: dict[str, Any]) -> H.Row:
    fields = H.Row.__dataclass_fields__
    return H.Row(**{k: v for k, v in d.items() if k in fields})


def write_results(
    rows: list[H.Row],
    meta: dict[str, Any],
    json_path: Path | None,
    md_path: Path | None,
    merge: bool,
) -> list[H.Row]:
    """Write JSON and markdown; with ``merge``, rows of benches not run now are kept from ``json_path``."""
    all_rows = list(rows)
    row_meta = [{"date": meta["date"], "commit": meta["commit"], "quick": meta["quick"]} for _ in rows]
    if merge and json_path is not None and json_path.exists():
        try:
            old = json.loads(json_path.read_text())
            ran = {(r.family, r.bench) for r in rows}  # a bench run now replaces all its old rows
            for d in old.get("results", []):
                if (d.get("family"), d.get("bench")) in ran:
                    continue
                all_rows.append(row_from_dict(d))
                row_meta.append({k: d.get(k) for k in ("date", "commit", "quick")})
        except (OSError, ValueError, TypeError):
            pass  # an unreadable old file is replaced
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": meta,
            "results": [asdict(r) | m for r, m in zip(all_rows, row_meta)],
        }
        tmp = json_path.with_suffix(json_path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
        tmp.replace(json_path)
    if md_path is not None:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(to_markdown(all_rows, meta))
    return all_rows


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and short timing (smoke run)")
    p.add_argument("--only", help="comma-separated families, bench_<family> files or bench names")
    p.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="JSON output path")
    p.add_argument("--markdown", type=Path, default=RESULTS / "latest.md", help="markdown output path")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--no-merge", action="store_true", help="with --only: drop the other rows of the JSON")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2)")
    p.add_argument("--rounds", type=int, help="round-robin rounds per bench (default: 7, quick: 3)")
    p.add_argument("--budget", type=float, help="timed seconds per candidate (default: 2, quick: 0.3)")
    p.add_argument("--plain", action="store_true", help="plain-text table even if rich is installed")
    p.add_argument("--list", action="store_true", help="list the benches and exit")
    p.add_argument("--no-cold", action="store_true", help="skip the cold first-call probes")
    p.add_argument(
        "--omp-passive",
        action="store_true",
        help="OpenMP waiters sleep at once (OMP_WAIT_POLICY=PASSIVE): steadier on a shared machine",
    )
    p.add_argument("--cold-probe", nargs=3, metavar=("FAMILY", "BENCH", "CANDIDATE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cold_probe:
        print(cold_probe(*args.cold_probe, quick=args.quick, threads=args.threads))
        return 0
    only = (
        {s.strip().removeprefix("bench_") for s in args.only.split(",") if s.strip()} if args.only else None
    )
    benches, failures = collect(args.quick, only)
    if args.list:
        for b in benches:
            cands = ", ".join(k + ("" if v is not None else " (n/a)") for k, v in b.candidates.items())
            print(f"{b.family:16} {b.name:36} {b.size:24} {cands}")
        for r in failures:
            print(f"{r.family:16} {r.bench:36} failed: {r.error}")
        return 0
    if only is not None and not benches and not failures:
        print(f"no benchmark matches --only {args.only}", file=sys.stderr)
        return 2

    old_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        plan = H.TimingPlan.quick() if args.quick else H.TimingPlan()
        if args.rounds is not None:
            plan.rounds = args.rounds
        if args.budget is not None:
            plan.budget_s = args.budget
        machine = H.measure_machine(quick=args.quick)
        meta = H.metadata(REPO, args.threads, args.quick, machine)
        print(_machine_line(meta), file=sys.stderr)
        rows: list[H.Row] = list(failures)
        for r in failures:
            print(f"{r.bench}: failed: {r.error}", file=sys.stderr)
        for b in benches:
            t0 = time.perf_counter()
            print(f"{b.family}/{b.name} ({b.size}) ...", file=sys.stderr, flush=True)
            stem = getattr(b, "_file_stem", None) or b.family
            cold = None if args.no_cold else (stem, args.quick, args.threads)
            rows += run_bench(b, machine, plan, log=lambda s: print(s, file=sys.stderr), cold=cold)
            print(f"  done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(old_threads)
    print_table(rows, meta, plain=args.plain)
    if not args.no_write:
        write_results(
            rows,
            meta,
            args.json,
            args.markdown,
            merge=only is not None and not args.no_merge,
        )
        print(f"wrote {args.json} and {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
