"""The atlas: curves of every loss, experiments that test the claims made about them, and a report.

``run_atlas(out, mode="quick")`` runs every step (curves and experiments), each one independent: a
step whose losses are missing from this build is recorded as "not available" and the rest go on. It
writes ``out/index.html`` (static, self-contained, images beside it) and ``out/results.json`` (the
numbers, read back by ``losskit guide``). Everything is seeded; two runs give the same numbers.

Needs the ``atlas`` extra (matplotlib, scikit-learn); the command line also uses typer and rich.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .verdicts import Claim

MODES = ("tiny", "quick", "full")


class Unavailable(Exception):
    """A step needs losses (or a module) this build of losskit does not have yet."""


def require(*names: str) -> None:
    """Raise :class:`Unavailable` naming the functions of ``losskit.functional`` that are missing."""
    from .. import functional

    missing = [n for n in names if not hasattr(functional, n)]
    if missing:
        raise Unavailable(f"needs {', '.join(missing)}, not in this build of losskit")


@dataclass
class StepResult:
    """What one curve set or experiment produced."""

    key: str
    title: str
    kind: str  # "curves" | "experiment"
    status: str = "ok"  # "ok" | "not available" | "failed"
    note: str = ""  # why not available / the error
    figures: dict[str, str] = field(default_factory=dict)  # role -> file name beside index.html
    captions: dict[str, str] = field(default_factory=dict)  # role -> caption
    metrics: dict = field(default_factory=dict)  # JSON-able numbers
    claims: list[Claim] = field(default_factory=list)
    setup: str = ""  # one paragraph: data, model, protocol, seeds
    headline: str = ""  # one line for the terminal summary
    # function name -> {"use": [...], "avoid": [...]}: sentences generated from the measurements
    advice: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["claims"] = [c.to_dict() for c in self.claims]
        return d


@dataclass
class Step:
    key: str
    title: str
    kind: str
    family: str  # the --only name that selects it
    run: Callable[[Path, str], StepResult]


def steps() -> list[Step]:
    """Every step of the atlas, in report order."""
    from . import curves
    from .experiments import boxes, faces, imbalance, regression

    return [
        Step("curves-regression", "Regression loss curves", "curves", "regression", curves.regression_curves),
        Step("curves-focal", "Focal loss curves", "curves", "imbalance", curves.focal_curves),
        Step("curves-ghm", "GHM-C gradient density", "curves", "imbalance", curves.ghm_curves),
        Step("curves-boxes", "IoU-family loss landscapes", "curves", "boxes", curves.box_curves),
        Step("curves-margin", "Margin-softmax target logits", "curves", "faces", curves.margin_curves),
        Step("regression", regression.TITLE, "experiment", "regression", regression.run),
        Step("imbalance", imbalance.TITLE, "experiment", "imbalance", imbalance.run),
        Step("boxes", boxes.TITLE, "experiment", "boxes", boxes.run),
        Step("faces", faces.TITLE, "experiment", "faces", faces.run),
    ]


FAMILIES = ("regression", "imbalance", "boxes", "faces")


@dataclass
class AtlasResult:
    out: Path
    mode: str
    results: list[StepResult]
    seconds: float

    @property
    def index(self) -> Path:
        return self.out / "index.html"

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def claims(self) -> list[Claim]:
        return [c for r in self.results for c in r.claims]


def run_atlas(
    out: str | Path,
    *,
    mode: str = "quick",
    only: str | None = None,
    on_step: Callable[[Step, int, int], None] | None = None,
    on_done: Callable[[Step, StepResult], None] | None = None,
) -> AtlasResult:
    """Run the atlas into ``out`` and write the report; see the module docstring.

    ``mode`` is ``"quick"`` (seconds per experiment), ``"full"`` (the complete experiments) or
    ``"tiny"`` (smallest sizes, for tests). ``only`` restricts it to one of :data:`FAMILIES`.
    ``on_step(step, i, n)`` is called before each step and ``on_done(step, result)`` after it.
    """
    if mode not in MODES:
        raise ValueError(f"run_atlas: mode must be one of {MODES}; got {mode!r}")
    if only is not None and only not in FAMILIES:
        raise ValueError(f"run_atlas: only must be one of {FAMILIES}; got {only!r}")
    from ._plotting import use_agg

    use_agg()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = [s for s in steps() if only is None or s.family == only]
    results: list[StepResult] = []
    t0 = time.perf_counter()
    for i, step in enumerate(selected):
        if on_step is not None:
            on_step(step, i, len(selected))
        results.append(run_step(step, out, mode))
        if on_done is not None:
            on_done(step, results[-1])
    seconds = time.perf_counter() - t0
    result = AtlasResult(out, mode, results, seconds)
    from .report import write_report

    write_report(result)
    (out / "results.json").write_text(
        json.dumps(
            {"mode": mode, "only": only, "seconds": seconds, "steps": [r.to_dict() for r in results]},
            indent=1,
            default=float,
        )
    )
    return result


def run_step(step: Step, out: Path, mode: str) -> StepResult:
    """Run one step, turning a missing loss into "not available" and an error into "failed"."""
    t0 = time.perf_counter()
    try:
        result = step.run(out, mode)
    except Unavailable as err:
        result = StepResult(step.key, step.title, step.kind, status="not available", note=str(err))
    except Exception as err:  # one broken step must not take the report down with it
        note = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"
        result = StepResult(step.key, step.title, step.kind, status="failed", note=note)
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["FAMILIES", "MODES", "AtlasResult", "StepResult", "Unavailable", "require", "run_atlas"]
