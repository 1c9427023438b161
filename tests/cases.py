"""The table behind the contract tests: every loss in the package and how to feed it.

Each family keeps its own ``tests/cases_<family>.py`` defining ``CASES: list[Case]``; this module
collects them. A loss that is public in ``losskit.functional`` but absent here fails
``test_every_public_loss_has_a_contract_case``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module

import torch
from torch import Tensor, nn

# make(n, dtype, generator) -> inputs. The first key is the differentiable "input"; tensors that
# should receive gradients are named in ``grad_keys``.
Maker = Callable[[int, torch.dtype, torch.Generator], dict[str, Tensor]]


@dataclass
class Case:
    name: str  # the public function's name in losskit.functional
    make: Maker
    call: Callable[[dict[str, Tensor], str], Tensor]  # functional form: (inputs, reduction) -> loss
    module: Callable[[str], nn.Module] | None = None  # reduction -> Module
    # how to call the Module; default: module(**inputs)
    call_module: Callable[[nn.Module, dict[str, Tensor]], Tensor] | None = None
    # what the Module must equal, given its own state; default: call(inputs, reduction)
    module_reference: Callable[[nn.Module, dict[str, Tensor], str], Tensor] | None = None
    grad_keys: tuple[str, ...] = ("input",)
    # False where 'mean' is not none.mean() (e.g. class-weighted cross-entropy divides by weight sum)
    mean_is_mean_of_none: bool = True
    # False where 'none' does not return one entry per sample along dim 0 (batch-split test)
    batch_split: bool = True
    stateful: bool = False  # holds buffers that must round-trip through state_dict
    low_precision: bool = True  # accepts float16/bfloat16 inputs
    extra_functions: tuple[str, ...] = field(default_factory=tuple)  # other public names it covers
    # the key of an integer class-index tensor and its range [0, num_classes): out-of-range rows
    labels: str | None = None
    num_classes: int | None = None
    # torch.func.vmap over a batch of calls; False only where vmap has no meaning (say why in the case)
    vmap: bool = True
    # a short label that tells cases of the same loss apart in test ids ("weighted", "log", ...)
    variant: str = ""


_FAMILIES = (
    "regression",
    "classification",
    "focal",
    "ghm",
    "boxes",
    "margin",
    "metric",
    "contrastive",
    "scale",
    "linear_cross_entropy",
)


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for family in _FAMILIES:
        try:
            module = import_module(f"cases_{family}")
        except ModuleNotFoundError as err:
            if err.name != f"cases_{family}":
                raise
            continue
        cases.extend(module.CASES)
    return cases


def randn(shape, dtype, gen, scale=1.0) -> Tensor:
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
