"""Every losskit loss as a pure function, grouped by family.

Conventions (see ``docs/conventions.md``): ``input, target`` first, hyperparameters keyword-only,
``weight`` (per-element, broadcast to the unreduced loss) and ``reduction='mean'|'sum'|'none'``.
"""

from __future__ import annotations

from importlib import import_module

_FAMILIES = (
    "regression",
    "classification",
    "focal",
    "ghm",
    "boxes",
    "iou",
    "margin",
    "metric",
    "mining",
    "fused",
)

__all__: list[str] = []
for _family in _FAMILIES:
    _module = import_module(f"{__name__}.{_family}")
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
__all__.sort()
del _family, _module, _name
