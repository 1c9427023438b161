"""One way to run gloo worlds for the distributed tests (imported by the test files and their workers).

A worker module defines ``SCENARIOS = {name: fn(world, rank, group) -> result}`` (and optionally
``TIMEOUT_S``, the process group's timeout); :func:`run_world` runs every scenario on ``n`` ranks of one
world, each rank saving its result (or the traceback of what it raised), and returns them all.
"""

from __future__ import annotations

import datetime
import importlib
import os
import tempfile
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, module: str, world: int, store: str, out_dir: str, scenarios: list[str]) -> None:
    mod = importlib.import_module(module)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=getattr(mod, "TIMEOUT_S", 60)),
    )
    try:
        group = dist.group.WORLD
        for name in scenarios:
            try:
                result = mod.SCENARIOS[name](world, rank, group)
            except Exception:
                result = {"__error__": traceback.format_exc()}
            torch.save(result, os.path.join(out_dir, f"{name}-{rank}.pt"))
            dist.barrier(group=group)
    finally:
        dist.destroy_process_group()


def run_world(module: str, n: int) -> tuple[int, dict]:
    """Every scenario of worker module ``module`` on a gloo world of ``n`` ranks.

    Returns ``(n, {(name, rank): result})``."""
    scenarios = list(importlib.import_module(module).SCENARIOS)
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        # forkserver: torch is imported once, in the server, instead of once per rank per world
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch.distributed", "_dist_harness", module])
        mp.start_processes(
            _worker, args=(module, n, store, tmp, scenarios), nprocs=n, join=True, start_method="forkserver"
        )
        results = {}
        for name in scenarios:
            for rank in range(n):
                results[name, rank] = torch.load(os.path.join(tmp, f"{name}-{rank}.pt"), weights_only=False)
    return n, results


def get(world: tuple[int, dict], name: str) -> tuple[int, list]:
    """Every rank's result of scenario ``name``, failing the test with the traceback of a rank that raised."""
    n, results = world
    out = [results[name, r] for r in range(n)]
    for r, res in enumerate(out):
        assert "__error__" not in res, f"rank {r} failed {name}:\n{res.get('__error__')}"
    return n, out
