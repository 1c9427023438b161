"""The API contract every loss in losskit must pass, driven by the table in ``cases.py``."""

from __future__ import annotations

import io

import pytest
import torch

import losskit.functional as LF
from cases import Case, all_cases
from conftest import DEVICES, DTYPES, tol

CASES = all_cases()
def case_id(case: Case) -> str:
    return case.name + (f"-{case.variant}" if case.variant else "")


IDS = [case_id(c) for c in CASES]


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


def _on(inputs: dict, case: Case, device: str) -> dict:
    out = {}
    for k, v in inputs.items():
        out[k] = v.detach().to(device)
        if k in case.grad_keys:
            out[k].requires_grad_(True)
    return out


def test_every_public_loss_has_a_contract_case():
    covered = {c.name for c in CASES} | {n for c in CASES for n in c.extra_functions}
    missing = sorted(n for n in LF.__all__ if n.endswith("_loss") and n not in covered)
    assert missing == [], f"public losses without a contract case: {missing}"


DTYPE_CASES = [
    pytest.param(c, d, id=f"{case_id(c)}-{str(d).removeprefix('torch.')}")
    for c in CASES
    for d in DTYPES
    if c.low_precision or d in (torch.float32, torch.float64)
]


@pytest.mark.parametrize(("case", "dtype"), DTYPE_CASES)
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_preserved_and_close_to_float64(case: Case, dtype: torch.dtype, device: str):
    """Every dtype on every device (CPU always, CUDA when present) against float64 on the CPU; on CUDA
    with ``torch.cuda.set_sync_debug_mode("error")``, so a host synchronisation in loss code fails."""
    cpu = _make(case, 8, dtype)
    inputs = _on(cpu, case, device)
    if device == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        loss = case.call(inputs, "mean")
        assert loss.dtype == dtype and loss.device.type == device
        assert loss.dim() == 0
        loss.backward()
    finally:
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)
    for key in case.grad_keys:
        grad = inputs[key].grad
        assert grad is not None and grad.dtype == inputs[key].dtype
        assert torch.isfinite(grad).all()
    ref = case.call(_to64(cpu, case), "mean")
    torch.testing.assert_close(loss.double().cpu(), ref.detach(), **tol(dtype))


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
    "case", [c for c in CASES if c.batch_split], ids=[case_id(c) for c in CASES if c.batch_split]
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


@pytest.mark.parametrize("case", MODULE_CASES, ids=[case_id(c) for c in MODULE_CASES])
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


@pytest.mark.parametrize("case", STATEFUL, ids=[case_id(c) for c in STATEFUL])
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


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compile_fullgraph_equals_eager(case: Case):
    """The definition compiles without a graph break (fullgraph=True) and equals eager."""
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


# --------------------------------------------------------------------------------------------------
# torch.func: grad, jacrev and vmap equal autograd and a Python loop
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_func_grad_equals_autograd(case: Case):
    inputs = _make(case, 6, torch.float64)
    key = case.grad_keys[0]
    want = torch.autograd.grad(case.call(inputs, "mean"), inputs[key])[0]
    plain = {k: v.detach() for k, v in inputs.items()}
    got = torch.func.grad(lambda x: case.call({**plain, key: x}, "mean"))(plain[key])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_func_jacrev_equals_loop(case: Case):
    inputs = _make(case, 4, torch.float64)
    key = case.grad_keys[0]
    none = case.call(inputs, "none").reshape(-1)
    rows = [torch.autograd.grad(v, inputs[key], retain_graph=True)[0] for v in none]
    want = torch.stack(rows).reshape(*none.shape, *inputs[key].shape)
    plain = {k: v.detach() for k, v in inputs.items()}
    got = torch.func.jacrev(lambda x: case.call({**plain, key: x}, "none").reshape(-1))(plain[key])
    torch.testing.assert_close(got, want)


VMAP_CASES = [c for c in CASES if c.vmap]


@pytest.mark.parametrize("case", VMAP_CASES, ids=[case_id(c) for c in VMAP_CASES])
def test_func_vmap_equals_loop(case: Case):
    calls = [{k: v.detach() for k, v in _make(case, 5, torch.float64, seed=s).items()} for s in range(3)]
    stacked = {k: torch.stack([c[k] for c in calls]) for k in calls[0]}
    got = torch.func.vmap(lambda d: case.call(d, "sum"))(stacked)
    want = torch.stack([case.call(c, "sum") for c in calls])
    torch.testing.assert_close(got, want)
    diff = {k: v for k, v in stacked.items() if k in case.grad_keys}  # labels are not differentiated
    rest = {k: v for k, v in stacked.items() if k not in case.grad_keys}
    grads = torch.func.vmap(torch.func.grad(lambda g, r: case.call({**r, **g}, "sum")))(diff, rest)
    for i, c in enumerate(calls):
        leaves = {k: v.requires_grad_(k in case.grad_keys) for k, v in c.items()}
        for key in case.grad_keys:
            (ref,) = torch.autograd.grad(case.call(leaves, "sum"), leaves[key])
            torch.testing.assert_close(grads[key][i], ref)


# --------------------------------------------------------------------------------------------------
# devices: meta (no host sync, no tensor on a fixed device), one argument elsewhere, CUDA when present
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_meta_device_forward_and_backward(case: Case):
    cpu = _make(case, 6, torch.float32)
    inputs = _on(cpu, case, "meta")
    for reduction in ("none", "mean", "sum"):
        want = case.call(cpu, reduction)
        got = case.call(inputs, reduction)
        assert got.device.type == "meta"
        assert got.shape == want.shape and got.dtype == want.dtype
    case.call(inputs, "mean").backward()
    for key in case.grad_keys:
        grad = inputs[key].grad
        assert grad is not None and grad.device.type == "meta" and grad.shape == inputs[key].shape


@pytest.mark.parametrize("case", MODULE_CASES, ids=[case_id(c) for c in MODULE_CASES])
def test_module_on_meta_device(case: Case):
    module = case.module("mean").to("meta")
    inputs = _on(_make(case, 6, torch.float32), case, "meta")
    out = case.call_module(module, inputs) if case.call_module else module(**inputs)
    assert out.device.type == "meta" and out.dim() == 0
    out.backward()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_argument_on_another_device_is_a_clear_error(case: Case):
    inputs = _make(case, 6, torch.float32)
    keys = list(inputs)
    for key in keys[1:]:
        moved = {**inputs, key: inputs[key].detach().to("meta")}
        with pytest.raises(ValueError, match=r"device.*(meta.*cpu|cpu.*meta)"):
            case.call(moved, "mean")


# --------------------------------------------------------------------------------------------------
# autocast, NaN propagation, class-index labels
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_autocast_computes_and_returns_float32(case: Case, in_dtype: torch.dtype):
    """Inside torch.autocast, as torch's own losses: float32 out, computed in float32 inside."""
    inputs = _make(case, 8, in_dtype)
    want = case.call(_to64(inputs, case), "sum")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = case.call(inputs, "sum")
    assert got.dtype == torch.float32
    tolerance = tol(in_dtype) if in_dtype != torch.float32 else {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(got.double(), want.detach(), **tolerance)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nan_in_gives_nan_out(case: Case):
    inputs = _make(case, 6, torch.float64)
    key = case.grad_keys[0]
    poisoned = inputs[key].detach().clone()
    poisoned.view(-1)[0] = float("nan")
    got = case.call({**inputs, key: poisoned.requires_grad_(True)}, "sum")
    assert torch.isnan(got), f"NaN in {key} gave {got}"


LABEL_CASES = [c for c in CASES if c.labels is not None]


@pytest.mark.parametrize("case", LABEL_CASES, ids=[case_id(c) for c in LABEL_CASES])
@pytest.mark.parametrize("bad", ["negative", "too_large"])
def test_label_out_of_range_is_a_clear_error(case: Case, bad: str):
    inputs = _make(case, 6, torch.float64)
    labels = inputs[case.labels].clone()
    labels[1] = -1 if bad == "negative" else case.num_classes
    with pytest.raises(ValueError, match=r"class indices in \[0, "):
        case.call({**inputs, case.labels: labels}, "mean")


@pytest.mark.parametrize("case", LABEL_CASES, ids=[case_id(c) for c in LABEL_CASES])
@pytest.mark.parametrize("label_dtype", [torch.int32, torch.uint8, torch.int16])
def test_every_integer_label_dtype_is_accepted(case: Case, label_dtype: torch.dtype):
    inputs = _make(case, 6, torch.float64)
    want = case.call(inputs, "none")
    got = case.call({**inputs, case.labels: inputs[case.labels].to(label_dtype)}, "none")
    torch.testing.assert_close(got, want)
