"""losskit: exact, fast, memory-lean PyTorch loss functions.

``losskit.functional`` holds every loss as a function, ``losskit.nn`` a thin Module for each, and
``losskit.distributed`` the class-parallel and cross-rank forms over ``torch.distributed``.
"""

from __future__ import annotations

from . import distributed, functional, nn

__all__ = ["distributed", "functional", "nn"]
__version__ = "0.1.0"
