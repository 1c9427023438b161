"""Thin ``nn.Module`` wrappers over :mod:`losskit.functional`; Parameters and buffers live only here."""

from __future__ import annotations

from importlib import import_module

_FAMILIES = (
    "regression",
    "classification",
    "focal",
    "ghm",
    "iou",
    "margin",
    "feature_margin",
    "metric",
)

__all__: list[str] = []
for _family in _FAMILIES:
    _module = import_module(f"{__name__}.{_family}")
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
__all__.sort()
del _family, _module, _name
