"""losskit: exact, fast, memory-lean PyTorch loss functions.

``losskit.functional`` holds every loss as a function, ``losskit.nn`` a thin Module for each.
"""

from __future__ import annotations

from . import functional, nn

__all__ = ["functional", "nn"]
__version__ = "0.1.0"
