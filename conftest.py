"""Doctest namespace: every docstring example may use ``torch``, ``F`` and the public losskit API."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import losskit
    import losskit.functional as LF
    import losskit.nn as LN

    doctest_namespace["torch"] = torch
    doctest_namespace["losskit"] = losskit
    doctest_namespace["LF"] = LF
    doctest_namespace["LN"] = LN
    for name in LF.__all__:
        doctest_namespace[name] = getattr(LF, name)
    for name in LN.__all__:
        doctest_namespace[name] = getattr(LN, name)
    torch.manual_seed(0)
