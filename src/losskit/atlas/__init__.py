"""The atlas: curves of every loss, experiments that test the claims made about them, and a report.

``run_atlas(out, mode="quick")`` runs every step (charts, parameter curves and experiments), each one
independent: a step whose losses are missing from this build is recorded as "not available" and the
rest go on. It writes ``out/index.html`` (static, self-contained, images beside it),
``out/claims.json`` (every claim with its verdict, effect, 95% interval, seeds and rule: what
``losskit guide`` reads) and ``out/results.json`` (all the numbers). Everything is seeded; two runs
give the same numbers. Verdicts come from :mod:`losskit.atlas.stats`.

The report is organised by :data:`FAMILY_TABLE`: one entry per family names the catalogue families
it shows, its family chart and its experiment module. Adding a family is adding one entry there
(plus, for each new loss, a probe and its own parameters in :data:`losskit.atlas.curves.OWN`).

Needs the ``atlas`` extra (matplotlib, scikit-learn); the command line also uses typer and rich.
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

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
    # function name -> figure roles of this step that belong in that loss's own section
    per_loss: dict[str, list[str]] = field(default_factory=dict)
    # tables shown after the figures: {"caption": str, "header": [str], "rows": [[str]]}
    tables: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["claims"] = [c.to_dict() for c in self.claims]
        return d


@dataclass(frozen=True)
class Family:
    """One section of the atlas: its losses, family chart and experiment.

    Attributes:
        key: the ``--only`` name and the report anchor ``family-<key>``.
        title: section title.
        catalog: the :mod:`losskit.catalog` families whose losses the section shows.
        intro: one paragraph on what the family is for.
        chart: ``"function"`` of :mod:`losskit.atlas.curves` drawing the family comparison, or None.
        experiment: module of :mod:`losskit.atlas.experiments` with ``TITLE`` and ``run(out, mode)``,
            or None.
    """

    key: str
    title: str
    catalog: tuple[str, ...]
    intro: str
    chart: str | None
    experiment: str | None


FAMILY_TABLE: tuple[Family, ...] = (
    Family(
        "regression",
        "Regression",
        ("regression",),
        "Losses on a real-valued error: how hard they pull on large errors decides how much outliers move the fit.",
        "regression_curves",
        "regression",
    ),
    Family(
        "imbalance",
        "Classification and class imbalance",
        ("classification", "focal"),
        "Cross-entropy and the losses that re-weight it (focal, GHM) for the many easy negatives of dense detection.",
        "classification_curves",
        "imbalance",
    ),
    Family(
        "boxes",
        "Box regression",
        ("boxes",),
        "IoU-family losses on xyxy boxes: what they do when boxes do not overlap, enclose or differ in shape.",
        "box_curves",
        "boxes",
    ),
    Family(
        "faces",
        "Faces and metric learning",
        ("margin", "metric"),
        "Margin softmax on cosine logits and losses on embedding distances: open-set recognition of identities.",
        "margin_curves",
        "faces",
    ),
    Family(
        "contrastive",
        "Contrastive representation learning",
        ("contrastive",),
        "Losses over a whole batch of embeddings at a temperature: two views of an image (NT-Xent, SupCon with "
        "labels) and paired modalities (CLIP's softmax, SigLIP's sigmoid).",
        "contrastive_curves",
        "contrastive",
    ),
    Family(
        "language",
        "Language-model heads",
        ("language model",),
        "Cross-entropy over a large vocabulary, streamed from the hidden states without the (N, V) logits.",
        None,
        "lm_head",
    ),
)
FAMILIES = tuple(f.key for f in FAMILY_TABLE)


def family_losses(family: Family) -> list:
    """The catalogue entries a family shows; entries of families no atlas family names go to the last."""
    from ..catalog import CATALOG

    named = {c for f in FAMILY_TABLE for c in f.catalog}
    last = family is FAMILY_TABLE[-1]
    return [i for i in CATALOG if i.family in family.catalog or (last and i.family not in named)]


@dataclass
class Step:
    key: str
    title: str
    kind: str  # "chart" | "parameters" | "experiment"
    family: str  # the --only name that selects it
    run: Callable[[Path, str], StepResult]


def steps() -> list[Step]:
    """Every step of the atlas, in report order: per family its chart, its losses' own curves, its experiment."""
    import importlib

    from . import curves

    out = []
    for fam in FAMILY_TABLE:
        if fam.chart is not None:
            out.append(
                Step(
                    f"chart-{fam.key}",
                    f"{fam.title}: the family compared",
                    "chart",
                    fam.key,
                    getattr(curves, fam.chart),
                )
            )
        names = tuple(i.function for i in family_losses(fam))
        out.append(
            Step(
                f"params-{fam.key}",
                f"{fam.title}: each loss over its own parameters",
                "parameters",
                fam.key,
                lambda o, m, names=names, key=fam.key: curves.parameter_charts(
                    o, m, names, key=f"params-{key}"
                ),
            )
        )
        if fam.experiment is not None:
            mod = importlib.import_module(f".experiments.{fam.experiment}", __name__)
            out.append(Step(fam.experiment, mod.TITLE, "experiment", fam.key, mod.run))
    return out


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
    threads: int = 1,
) -> AtlasResult:
    """Run the atlas into ``out`` and write the report; see the module docstring.

    ``mode`` is ``"quick"`` (at least 5 seeds per claim, minutes), ``"full"`` (at least 10 seeds, the
    complete experiments) or ``"tiny"`` (2 seeds, smallest sizes: a smoke run for tests whose verdicts
    are mostly inconclusive). ``only`` restricts it to one of :data:`FAMILIES`. ``on_step(step, i, n)``
    is called before each step and ``on_done(step, result)`` after it. ``threads`` is torch's number of
    intra-op threads during the run (restored afterwards): the experiments train small models, for which
    one thread is fastest, and several threads slow to a crawl on a loaded machine.
    """
    if mode not in MODES:
        raise ValueError(f"run_atlas: mode must be one of {MODES}; got {mode!r}")
    if only is not None and only not in FAMILIES:
        raise ValueError(f"run_atlas: only must be one of {FAMILIES}; got {only!r}")
    from ._plotting import use_agg

    use_agg()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"run_atlas: threads must be an int >= 1; got {threads!r}")
    import torch

    selected = [s for s in steps() if only is None or s.family == only]
    results: list[StepResult] = []
    t0 = time.perf_counter()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for i, step in enumerate(selected):
            if on_step is not None:
                on_step(step, i, len(selected))
            results.append(run_step(step, out, mode))
            if on_done is not None:
                on_done(step, results[-1])
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t0
    result = AtlasResult(out, mode, results, seconds)
    from .report import write_report

    write_report(result)
    from .. import __version__

    (out / "claims.json").write_text(
        json.dumps(
            {
                "losskit": __version__,
                "mode": mode,
                "only": only,
                "level": 0.95,
                "claims": [c.to_dict() for c in result.claims],
            },
            indent=1,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
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


__all__ = [
    "FAMILIES",
    "FAMILY_TABLE",
    "MODES",
    "AtlasResult",
    "Family",
    "StepResult",
    "Unavailable",
    "family_losses",
    "require",
    "run_atlas",
    "steps",
]
