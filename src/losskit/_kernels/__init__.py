"""losskit's one fast-path layer (private).

Every loss is *defined* once, as plain differentiable torch ops, in its family file under
:mod:`losskit.functional`. That definition is what runs under the user's ``torch.compile``, under
``torch.func`` transforms, for forward-mode AD and double backward, and it is the reference the kernels
here are tested against. A kernel in this package computes the same function faster or in less memory
(fused closed-form gradients, chunks that stay in cache, streamed softmax over class chunks); it exists
only where a benchmark shows it wins, and it must be no less accurate than the definition at the same
precision (tested at the hard cases for each kernel).

Which path runs is decided by :func:`eager_autograd` (the rule every kernel shares) plus the kernel's
own ``eligible(...)`` next to it, called from exactly one place in the loss's family file. Nothing here
compiles anything, holds process-wide state, or synchronises with the device.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad


def eager_autograd(*tensors: Tensor | None) -> bool:
    """The one dispatch rule: True where a kernel of this package may replace a loss's definition.

    False under ``torch.compile`` (dynamo traces the definition: no graph break, inductor fuses it),
    under any ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``, ``functional_call`` with
    transforms: the definition composes with them) and under forward-mode AD (the kernels define only
    reverse mode). Everything else (CPU, CUDA, ``meta``, every dtype) may take the kernel.
    """
    if torch.compiler.is_compiling():
        return False
    if torch._C._are_functorch_transforms_active():
        return False
    if forward_ad._current_level >= 0:  # inside forward_ad.dual_level()
        return False
    return not any(t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
