"""The API contract every loss in losskit must pass, driven by the table in ``cases.py``."""

from __future__ import annotations

import io

import pytest
import torch

import losskit.functional as LF
from cases import Case, all_cases
from conftest import DTYPES, tol

CASES = all_cases()
IDS = [c.name for c in CASES]


def _make(case: Case, n: int, dtype: torch.dtype, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    inputs = case.make(n, dtype, gen)
    for key in case.grad_keys:
        inputs[key] = inputs[key].detach().requires_grad_(True)
    return inputs


def _to64(inputs: dict, case: Case) -> dict:
    out = {}
    for k, v in inputs.items():
        v = v.detach()
        out[k] = v.double() if v.is_floating_point() else v.clone()
        if k in case.grad_keys:
            out[k].requires_grad_(True)
    return out


def test_every_public_loss_has_a_contract_case():
    covered = {c.name for c in CASES} | {n for c in CASES for n in c.extra_functions}
    missing = sorted(n for n in LF.__all__ if n.endswith("_loss") and n not in covered)
    assert missing == [], f"public losses without a contract case: {missing}"


DTYPE_CASES = [
    pytest.param(c, d, id=f"{c.name}-{str(d).removeprefix('torch.')}")
    for c in CASES
    for d in DTYPES
    if c.low_precision or d in (torch.float32, torch.float64)
]


@pytest.mark.parametrize(("case", "dtype"), DTYPE_CASES)
def test_dtype_preserved_and_close_to_float64(case: Case, dtype: torch.dtype):
    inputs = _make(case, 8, dtype)
    loss = case.call(inputs, "mean")
    assert loss.dtype == dtype
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for key in case.grad_keys:
        grad = inputs[key].grad
        assert grad is not None and grad.dtype == inputs[key].dtype
        assert torch.isfinite(grad).all()
    ref = case.call(_to64(inputs, case), "mean")
    torch.testing.assert_close(loss.double(), ref.detach(), **tol(dtype))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_empty_batch_gives_zero_with_gradient(case: Case):
    inputs = _make(case, 0, torch.float32)
    for reduction in ("mean", "sum"):
        loss = case.call(inputs, reduction)
        assert loss.dim() == 0
        assert loss.item() == 0.0, f"{reduction}: {loss}"
        assert loss.requires_grad
        loss.backward()
        for key in case.grad_keys:
            assert inputs[key].grad is not None and torch.isfinite(inputs[key].grad).all()
    none = case.call(inputs, "none")
    assert none.numel() == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reductions_are_consistent(case: Case):
    inputs = _make(case, 9, torch.float64)
    none = case.call(inputs, "none")
    total = case.call(inputs, "sum")
    torch.testing.assert_close(total, none.sum())
    if case.mean_is_mean_of_none:
        torch.testing.assert_close(case.call(inputs, "mean"), none.mean())


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.batch_split], ids=[c.name for c in CASES if c.batch_split]
)
def test_batch_split_invariance(case: Case):
    inputs = _make(case, 10, torch.float64)
    whole = case.call(inputs, "none")
    first = {k: v[:4] for k, v in inputs.items()}
    second = {k: v[4:] for k, v in inputs.items()}
    torch.testing.assert_close(torch.cat([case.call(first, "none"), case.call(second, "none")]), whole)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_unknown_reduction_is_rejected(case: Case):
    inputs = _make(case, 4, torch.float64)
    with pytest.raises(ValueError, match=r"reduction must be 'none', 'mean' or 'sum'; got 'avg'"):
        case.call(inputs, "avg")


MODULE_CASES = [c for c in CASES if c.module is not None]


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c.name for c in MODULE_CASES])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_module_equals_function(case: Case, reduction: str):
    module = case.module(reduction).double()
    module.eval()  # stateful losses: no state update, so both sides see the same state
    inputs = _make(case, 6, torch.float64)
    got = case.call_module(module, inputs) if case.call_module else module(**inputs)
    want = (
        case.module_reference(module, inputs, reduction)
        if case.module_reference
        else case.call(inputs, reduction)
    )
    torch.testing.assert_close(got, want)


def test_modules_reject_unknown_reduction_at_construction():
    for case in MODULE_CASES:
        with pytest.raises(ValueError, match="reduction must be"):
            case.module("avg")


STATEFUL = [c for c in CASES if c.stateful]


@pytest.mark.parametrize("case", STATEFUL, ids=[c.name for c in STATEFUL])
def test_state_dict_round_trip(case: Case):
    module = case.module("mean").double().train()
    for seed in range(3):  # let the state move away from its initial value
        inputs = _make(case, 8, torch.float64, seed=seed)
        (case.call_module(module, inputs) if case.call_module else module(**inputs)).backward()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    clone = case.module("mean").double().train()
    clone.load_state_dict(torch.load(buffer))
    for (name, a), (_, b) in zip(module.state_dict().items(), clone.state_dict().items()):
        torch.testing.assert_close(a, b, msg=f"state {name} did not round-trip")
    assert any(
        not torch.equal(v, case.module("mean").double().state_dict()[k])
        for k, v in module.state_dict().items()
    ), "training steps left the state unchanged: the round-trip test would prove nothing"
    inputs = _make(case, 8, torch.float64, seed=99)
    call = case.call_module or (lambda m, d: m(**d))
    torch.testing.assert_close(call(module, inputs), call(clone, inputs))


COMPILED = [c for c in CASES if c.compile]


@pytest.mark.parametrize("case", COMPILED, ids=[c.name for c in COMPILED])
def test_compile_equals_eager(case: Case):
    torch._dynamo.reset()
    inputs = _make(case, 16, torch.float32)
    eager = case.call(inputs, "mean")
    (eager_grad,) = torch.autograd.grad(eager, inputs[case.grad_keys[0]])
    compiled_fn = torch.compile(lambda d: case.call(d, "mean"), fullgraph=True)
    inputs2 = _make(case, 16, torch.float32)
    got = compiled_fn(inputs2)
    (got_grad,) = torch.autograd.grad(got, inputs2[case.grad_keys[0]])
    torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grad, eager_grad, rtol=1e-5, atol=1e-6)
