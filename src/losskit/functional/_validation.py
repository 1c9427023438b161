"""Argument checks shared by every loss: shapes, dtypes and Python-scalar hyperparameters.

Only static information is inspected (shapes, dtypes, Python numbers), so none of these checks forces a
device synchronisation. Value checks that would (label ranges, box validity) are opt-in helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss computes in: float32 for float16/bfloat16 inputs, the input dtype otherwise."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


def check_tensor(fn: str, name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor; got {type(value).__name__}")


def check_floating(fn: str, name: str, t: object) -> None:
    """Raise ``TypeError`` unless ``t`` is a floating-point tensor."""
    check_tensor(fn, name, t)
    assert isinstance(t, Tensor)
    if not t.is_floating_point():
        raise TypeError(f"{fn}: {name} must be a floating-point tensor; got dtype {t.dtype}")


def check_integer(fn: str, name: str, t: object) -> None:
    """Raise ``TypeError`` unless ``t`` is an integer (class-index) tensor."""
    check_tensor(fn, name, t)
    assert isinstance(t, Tensor)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be an integer tensor of class indices; got dtype {t.dtype}")


def check_same_shape(fn: str, name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have exactly the same shape (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: expected {name_b} of the same shape as {name_a} {tuple(a.shape)}, got {tuple(b.shape)}"
        )


def check_ndim(fn: str, name: str, t: Tensor, ndim: int | Sequence[int], what: str) -> None:
    """Raise ``ValueError`` unless ``t.dim()`` is ``ndim`` (or one of them); ``what`` names the layout."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if t.dim() not in allowed:
        raise ValueError(f"{fn}: expected {name} of shape {what}, got {tuple(t.shape)}")


def check_last_dim(fn: str, name: str, t: Tensor, size: int) -> None:
    """Raise ``ValueError`` unless the last dimension of ``t`` has ``size`` entries."""
    if t.dim() == 0 or t.shape[-1] != size:
        raise ValueError(f"{fn}: expected {name} of shape (..., {size}), got {tuple(t.shape)}")


def _check_number(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number; got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{fn}: {name} must not be NaN; got {value}")
    return value


def check_interval(
    fn: str,
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Raise unless ``value`` is a number in the interval; returns it as a float."""
    v = _check_number(fn, name, value)
    bad_low = v <= low if low_open else v < low
    bad_high = v >= high if high_open else v > high
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{fn}: {name} must be in {lo}{low}, {high}{hi}; got {value}")
    return v


def check_nonnegative(fn: str, name: str, value: object) -> float:
    v = _check_number(fn, name, value)
    if not v >= 0 or math.isinf(v):
        raise ValueError(f"{fn}: {name} must be a finite number >= 0; got {value}")
    return v


def check_positive(fn: str, name: str, value: object) -> float:
    v = _check_number(fn, name, value)
    if not v > 0 or math.isinf(v):
        raise ValueError(f"{fn}: {name} must be a finite number > 0; got {value}")
    return v


def check_positive_int(fn: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{fn}: {name} must be >= 1; got {value}")
    return value


def check_choice(fn: str, name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{fn}: {name} must be {listed}; got {value!r}")


# --------------------------------------------------------------------------------------------------
# class-index labels: every class-index loss goes through check_class_indices
# --------------------------------------------------------------------------------------------------


def _plain(t: Tensor) -> Tensor:
    """The ordinary tensor under ``torch.func`` wrappers (vmap/grad levels), for value checks only."""
    from torch._C._functorch import get_unwrapped, is_functorch_wrapped_tensor

    while is_functorch_wrapped_tensor(t):
        t = get_unwrapped(t)
    return t


def check_class_indices(
    fn: str, name: str, target: Tensor, num_classes: int, *, ignore_index: int | None = None
) -> Tensor:
    """Check that integer class labels lie in ``[0, num_classes)`` (or equal ``ignore_index``).

    Every integer dtype is accepted (``uint8``, ``int32``, ...); ``bool`` is not. The range check costs
    no synchronisation: on CPU the values are already on the host and a label out of range raises a
    ``ValueError`` naming ``fn``, ``name``, the first bad value and the valid range; on an accelerator
    a device-side assertion (``torch._assert_async``, as torch's own ``cross_entropy``) fails the
    next synchronising call instead; on the ``meta`` device there is nothing to check. Under
    ``torch.compile`` the device-side assertion is used on every device (a Python branch on a value
    would break the graph).

    Returns:
        ``target`` as ``int64`` (a no-op for ``int64`` input).
    """
    check_integer(fn, name, target)
    t = target.long()
    if t.device.type == "meta" or t.numel() == 0:
        return t
    valid = (t >= 0) & (t < num_classes)
    if ignore_index is not None:
        valid = valid | (t == ignore_index)
    if torch.compiler.is_compiling() or t.device.type != "cpu":
        torch._assert_async(valid.all(), f"{fn}: {name} holds a class index outside [0, {num_classes})")
        return t
    plain_valid = _plain(valid)
    if not bool(plain_valid.all()):
        plain_t = _plain(t)
        bad = plain_t[~plain_valid]
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or {ignore_index}")
        raise ValueError(
            f"{fn}: {name} must hold class indices in {allowed}; got {bad.numel()} outside it, "
            f"the first {int(bad[0])}"
        )
    return t


# --------------------------------------------------------------------------------------------------
# devices, autocast and the output dtype
# --------------------------------------------------------------------------------------------------


def check_same_device(fn: str, *named: tuple[str, object]) -> None:
    """Raise ``ValueError`` unless every tensor among ``(name, value)`` pairs is on the first one's device.

    ``None`` and non-tensors are skipped. A 0-dim CPU tensor may accompany tensors on another device,
    as torch allows for scalars.
    """
    first: tuple[str, Tensor] | None = None
    for name, value in named:
        if not isinstance(value, Tensor):
            continue
        if first is None:
            first = (name, value)
            continue
        if value.device != first[1].device and not (value.dim() == 0 and value.device.type == "cpu"):
            raise ValueError(
                f"{fn}: expected {name} on the device of {first[0]} ({first[1].device}), "
                f"got {name} on {value.device}"
            )


# device types with an autocast mode in this torch (read once: ``is_autocast_available`` itself does not
# trace under torch.compile in torch 2.4, and ``is_autocast_enabled`` raises for other device types)
_AUTOCAST_DEVICES = frozenset(
    d for d in ("cpu", "cuda", "xpu", "hpu", "mps", "mtia") if torch.amp.is_autocast_available(d)
)


def autocast_enabled(device_type: str) -> bool:
    """Whether ``torch.autocast`` is active for ``device_type`` (False where autocast does not exist)."""
    return device_type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device_type)


def output_dtype(input: Tensor) -> torch.dtype:
    """The dtype a loss returns, torch's rule: float32 for float16/bfloat16 ``input`` inside
    ``torch.autocast`` on its device (losses are on autocast's float32 list), ``input``'s otherwise."""
    if input.dtype in _LOW_PRECISION and autocast_enabled(input.device.type):
        return torch.float32
    return input.dtype


def no_autocast(device: torch.device):
    """A context that switches autocast off on ``device`` (losses compute in float32 or wider)."""
    import contextlib

    if autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()  # nothing to switch off (and 20 us cheaper per call)
