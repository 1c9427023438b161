"""losskit: exact, fast, memory-lean PyTorch loss functions.

``losskit.functional`` holds every loss as a function, ``losskit.nn`` a thin Module for each, and
``losskit.distributed`` the cross-rank forms over ``torch.distributed`` (imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import functional, nn

if TYPE_CHECKING:
    from . import distributed

__all__ = ["distributed", "functional", "nn"]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    # torch.distributed is only imported by code that asks for it
    if name == "distributed":
        import importlib

        return importlib.import_module(f"{__name__}.distributed")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
