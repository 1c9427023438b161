"""Shared fixtures: seeding and the one per-dtype tolerance table."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one intra-op thread each, or they fight over the cores.
    torch.set_num_threads(1)

settings.register_profile("losskit", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("losskit")

# (rtol, atol) for comparing a loss computed in a dtype against the same loss in float64.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (2e-2, 2e-3),
    torch.bfloat16: (5e-2, 1e-2),
}

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]

# every device-parametrised test runs on the CPU, and on CUDA where a GPU is present
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    # IEEE subnormals for every test: older torch's inductor loads C++ kernels built with -ffast-math,
    # which switch the whole process to flush-to-zero (torch 2.4: every later hypothesis float strategy
    # then refuses to run, and a loss test would see subnormals flushed)
    torch.set_flush_denormal(False)


@pytest.fixture(params=DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def dtype(request) -> torch.dtype:
    return request.param


def tol(dtype: torch.dtype) -> dict[str, float]:
    rtol, atol = TOLERANCES[dtype]
    return {"rtol": rtol, "atol": atol}
