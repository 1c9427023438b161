"""Smoke tests of the benchmark harness (``benchmarks/run.py`` and ``benchmarks/_harness.py``).

Nothing here asserts a time: the harness is checked for what it reports (statuses, ratios, peak
memory of allocations worked out by hand, JSON and markdown), and every ``bench_*.py`` for the shape
of what it returns.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
BENCH_FILES = sorted(BENCH_DIR.glob("bench_*.py"))


def _load_run():
    name = "losskit_benchmarks_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH_DIR / "run.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


run = _load_run()
H = run.H

FAST = H.TimingPlan(rounds=2, budget_s=0.01, warmup_runs=1, warmup_s=0.0)
MACHINE = H.Machine(bandwidth_gbs=10.0, alloc_copy_gbs=1.0, matmul_gflops=50.0)


def _setup(n: int = 1000) -> dict:
    return {"input": torch.randn(n, requires_grad=True), "target": torch.randn(n)}


def _mse(d: dict) -> torch.Tensor:
    return torch.nn.functional.mse_loss(d["input"], d["target"])


def _broken(d: dict) -> torch.Tensor:
    raise RuntimeError("boom: this candidate always fails")


def test_bench_files_exist():
    assert (BENCH_DIR / "bench_regression.py") in BENCH_FILES


@pytest.mark.parametrize("path", BENCH_FILES, ids=lambda p: p.stem)
def test_bench_module_returns_well_formed_benches(path):
    module = run.load_module(path)
    for quick in (True, False):
        benches = module.benchmarks(quick)
        assert isinstance(benches, list) and benches, f"{path.name}: benchmarks({quick}) returned no Bench"
        for b in benches:
            assert isinstance(b, run.Bench), f"{path.name}: {b!r} is not a Bench"
            assert run.check_bench(b) == [], f"{path.name}: {b.name}"
            assert "losskit" in b.candidates, f"{path.name}: {b.name} has no 'losskit' candidate"
            assert b.candidates[b.baseline] is not None, f"{path.name}: {b.name}'s baseline is missing"


def test_check_bench_finds_problems():
    good = run.Bench("x", "f", "1", _setup, {"losskit": _mse, "torch": _mse}, baseline="torch")
    assert run.check_bench(good) == []
    bad = run.Bench("x", "f", "1", _setup, {"losskit": _mse, "peer": 3}, baseline="torch", bytes_moved=-1)
    problems = " ".join(run.check_bench(bad))
    assert "baseline 'torch' is not a candidate" in problems
    assert "candidate 'peer' must be callable or None" in problems
    assert "bytes_moved must be a positive int" in problems


def test_quantiles_golden():
    # inclusive quartiles of 1..5 are 2, 3, 4; one value is all three
    assert H.quantiles([5.0, 1.0, 3.0, 2.0, 4.0]) == (2.0, 3.0, 4.0)
    assert H.quantiles([7.0]) == (7.0, 7.0, 7.0)


def test_peak_bytes_of_known_allocations():
    n = 1 << 18
    x = torch.randn(n, requires_grad=True)
    # forward: x * 2 allocates n floats, freed once summed (mul by a number saves nothing);
    # backward: grad * 2 allocates n floats that become x.grad. Never more than 4n bytes at once.
    peak = H.peak_bytes(lambda d: (d["x"] * 2).sum(), {"x": x})
    assert 4 * n <= peak <= 4 * n + 4096
    assert x.grad is None  # gradients are cleared after the measurement
    # forward: x - y (kept for backward) and its square coexist: 8n bytes before any gradient exists
    y = torch.randn(n)
    naive = H.peak_bytes(lambda d: ((d["x"] - d["y"]) ** 2).mean(), {"x": x, "y": y})
    assert naive >= 8 * n


def test_grad_leaves_and_run_once_zero_gradients():
    lin = torch.nn.Linear(3, 2)
    d = {"a": torch.ones(3, requires_grad=True), "m": lin, "b": [torch.ones(2)], "c": torch.ones(2) * 2}
    leaves = H.grad_leaves(d)
    assert len(leaves) == 3 and leaves[0] is d["a"]
    fn = lambda d: (d["m"](d["a"]) * 1.0).sum() + d["a"].sum()  # noqa: E731
    for _ in range(3):
        assert H.run_once(fn, d, leaves) > 0
    # grads zeroed before each run: three runs leave one run's gradient, not three
    assert torch.equal(d["a"].grad, lin.weight.sum(0).detach() + 1.0)


def test_run_bench_reports_ok_missing_and_failed():
    b = run.Bench(
        name="mse_smoke",
        family="smoke",
        size="1000",
        setup=_setup,
        candidates={"losskit": _mse, "peer": None, "broken": _broken, "torch": _mse},
        baseline="torch",
        bytes_moved=20 * 1000,
        flops=4000.0,
    )
    rows = {r.candidate: r for r in run.run_bench(b, MACHINE, FAST, log=lambda s: None)}
    assert [*rows] == ["losskit", "peer", "broken", "torch"]
    assert rows["peer"].status == "n/a" and rows["peer"].error == "not installed"
    assert rows["broken"].status == "failed" and "RuntimeError: boom" in rows["broken"].error
    ok, base = rows["losskit"], rows["torch"]
    assert ok.status == base.status == "ok" and base.baseline and not ok.baseline
    assert ok.median_ms > 0 and ok.runs >= 2 and ok.iqr_ms >= 0
    assert base.time_ratio == 1.0 and base.mem_ratio == 1.0
    assert ok.time_ratio == pytest.approx(ok.median_ms / base.median_ms)
    # floor fractions: bytes / (10 GB/s), flops / (50 GFLOP/s), over the measured time
    assert ok.floor_fraction == pytest.approx(20_000 / 10e9 * 1e3 / ok.median_ms)
    assert ok.flops_fraction == pytest.approx(4000 / 50e9 * 1e3 / ok.median_ms)
    # mse_loss(mean) here: a 1000-float temporary in forward, then the 1000-float gradient
    assert 4000 / 2**20 <= ok.peak_mib <= 16000 / 2**20


def test_setup_failure_fails_every_candidate():
    def bad_setup() -> dict:
        raise ValueError("no inputs")

    b = run.Bench("s", "smoke", "0", bad_setup, {"losskit": _mse, "torch": _mse}, baseline="torch")
    rows = run.run_bench(b, MACHINE, FAST, log=lambda s: None)
    assert [r.status for r in rows] == ["failed", "failed"]
    assert all("setup: ValueError: no inputs" in r.error for r in rows)


def test_write_results_json_markdown_and_merge(tmp_path):
    meta = H.metadata(BENCH_DIR.parent, 1, True, MACHINE)
    rows_a = [
        H.Row("a", "fam_a", "1", "losskit", "ok", median_ms=1.0, iqr_ms=0.1, runs=3, peak_mib=2.0),
        H.Row("a", "fam_a", "1", "peer", "n/a", error="not installed"),
        H.Row("a", "fam_a", "1", "torch", "failed", baseline=True, error="RuntimeError: x | y"),
    ]
    rows_b = [H.Row("b", "fam_b", "2", "losskit", "ok", baseline=True, median_ms=3.0, time_ratio=1.0)]
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    run.write_results(rows_a, meta, js, md, merge=False)
    run.write_results(rows_b, meta, js, md, merge=True)
    data = json.loads(js.read_text())
    assert {"date", "commit", "torch", "threads", "cpu", "machine"} <= set(data["meta"])
    assert [(r["bench"], r["candidate"], r["status"]) for r in data["results"]] == [
        ("b", "losskit", "ok"),
        ("a", "losskit", "ok"),
        ("a", "peer", "n/a"),
        ("a", "torch", "failed"),
    ]
    text = md.read_text()
    assert "| a | 1 | peer | n/a |" in text and "RuntimeError: x \\| y" in text and "**losskit**" in text
    run.write_results(rows_b, meta, js, md, merge=False)
    assert len(json.loads(js.read_text())["results"]) == 1


def test_run_main_quick_regression_end_to_end(tmp_path, capsys):
    js, md = tmp_path / "latest.json", tmp_path / "latest.md"
    threads = torch.get_num_threads()
    argv = ["--quick", "--only", "regression", "--json", str(js), "--markdown", str(md), "--plain"]
    rc = run.main([*argv, "--threads", "1", "--rounds", "2", "--budget", "0.02"])
    assert rc == 0
    assert torch.get_num_threads() == threads  # restored
    data = json.loads(js.read_text())
    rows = data["results"]
    assert {r["bench"] for r in rows} == {"l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"}
    assert all(r["status"] == "ok" and r["median_ms"] > 0 and r["floor_fraction"] > 0 for r in rows)
    assert all(r["time_ratio"] == 1.0 for r in rows if r["baseline"])
    assert data["meta"]["quick"] is True and data["meta"]["machine"]["bandwidth_gbs"] > 0
    out = capsys.readouterr().out
    assert "huber_loss" in out and "median ms" in out
    assert "| l1_loss | 1M | **losskit** |" in md.read_text()


def test_run_main_unknown_family(capsys):
    assert run.main(["--only", "no_such_family", "--no-write"]) == 2
    assert "no benchmark matches" in capsys.readouterr().err


def test_peak_rss_of_step_counts_what_the_step_allocates():
    # 64 MiB at the peak: forward holds the 32 MiB ones and the 32 MiB product; backward the saved ones
    # and the leaf's 32 MiB gradient, which stays
    leaf = torch.zeros(8 * 2**20, requires_grad=True)

    def step():
        return (leaf * torch.ones(8 * 2**20)).sum()

    mib = H.peak_rss_of_step(step, [leaf])
    assert leaf.grad is not None and leaf.grad.shape == leaf.shape
    assert 62 <= mib <= 80, mib  # freed heap blocks must not hide it, nor one-time buffers inflate it


@pytest.mark.slow
def test_scale_table_runs_end_to_end():
    # the README's scale table: unfused, fused and a 2-rank gloo run per class count, then the fit
    import subprocess

    out = subprocess.run(
        [sys.executable, str(BENCH_DIR / "scale_table.py"), "1000", "3000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| 1,000 |") or line.startswith("| 3,000 |")]
    assert len(rows) == 2 and all(line.count(" s, ") == 3 for line in rows), out
    assert "10,000,000 classes over 8 ranks" in out and "per rank" in out
