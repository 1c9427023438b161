"""Claims: what people say about a loss, measured over seeds, with a verdict computed by :mod:`.stats`.

No verdict is written by hand. An experiment states the claim, the effect it measures (positive in
the claimed direction, in a stated unit), the minimal meaningful effect, and the per-seed effects;
:meth:`Claim.measure` computes the interval, the verdict and the reason. The report and
``claims.json`` show all of it.
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .stats import (
    DETERMINISTIC,
    HELD,
    INCONCLUSIVE,
    KINDS,
    NON_INFERIORITY,
    NOT_HELD,
    SUPERIORITY,
    VERDICTS,
    Resolution,
    decide,
    rule_text,
)


@dataclass
class Claim:
    """One claim about one or more losses, with its measured evidence and computed verdict."""

    id: str  # stable anchor in the report: ``claim-<id>``
    statement: str  # the claim as people make it
    source: str  # who makes it (paper or folklore)
    losses: tuple[str, ...]  # function names in losskit.functional the claim is about
    effect_name: str  # what the effect is, e.g. "ArcFace minus softmax verification accuracy"
    unit: str  # unit of the effect, e.g. "points"
    delta: float  # minimal meaningful effect, in ``unit``
    kind: str  # stats.SUPERIORITY, NON_INFERIORITY or DETERMINISTIC
    effects: list[float]  # per-seed effects, positive = claimed direction
    verdict: str
    effect: float  # mean effect
    low: float  # 95% interval
    high: float
    reason: str  # why this verdict
    rule: str  # the decision rule in words
    evidence: str = ""  # the measured numbers per method, one or two sentences
    figure: str | None = None  # file name of the supporting picture, beside index.html
    experiment: str = ""  # the experiment's key
    scores: dict[str, float] = field(default_factory=dict)  # mean score per compared method
    unresolved: str | None = None  # why the experiment cannot resolve the claim (chance, ceiling, a check)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Claim: verdict must be one of {VERDICTS}; got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Claim: kind must be one of {KINDS}; got {self.kind!r}")

    @classmethod
    def measure(
        cls,
        *,
        id: str,
        statement: str,
        source: str,
        losses: Sequence[str],
        effect_name: str,
        unit: str,
        delta: float,
        effects: Sequence[float],
        kind: str = SUPERIORITY,
        resolution: Resolution | None = None,
        evidence: str = "",
        figure: str | None = None,
        experiment: str = "",
    ) -> Claim:
        """Compute the verdict of a claim from its per-seed effects (see :func:`.stats.decide`)."""
        d = decide(effects, delta=delta, kind=kind, resolution=resolution)
        return cls(
            id=id,
            statement=statement,
            source=source,
            losses=tuple(losses),
            effect_name=effect_name,
            unit=unit,
            delta=float(delta),
            kind=kind,
            effects=[float(e) for e in effects],
            verdict=d.verdict,
            effect=d.interval.mean,
            low=d.interval.low,
            high=d.interval.high,
            reason=d.reason,
            rule=rule_text(kind, delta, unit),
            evidence=evidence,
            figure=figure,
            experiment=experiment,
            scores=dict(resolution.scores) if resolution is not None else {},
            unresolved=resolution.reason() if resolution is not None else None,
        )

    @property
    def seeds(self) -> int:
        return len(self.effects)

    def interval_text(self) -> str:
        """``+2.1 points [0.8, 3.4], 5 seeds``."""
        u = f" {self.unit}" if self.unit else ""
        if self.kind == DETERMINISTIC:
            return f"{fmt(self.effect, signed=True)}{u} (exact: one deterministic measurement)"
        if math.isnan(self.low):
            return f"{fmt(self.effect, signed=True)}{u} (no interval), {self.seeds} seed{'s' * (self.seeds != 1)}"
        return (
            f"{fmt(self.effect, signed=True)}{u} [{fmt(self.low, signed=True)}, {fmt(self.high, signed=True)}], "
            f"{self.seeds} seeds"
        )

    def to_dict(self) -> dict:
        """The machine-readable record written to ``claims.json``."""

        def num(x: float) -> float | None:
            return None if x != x else float(x)

        return {
            "id": self.id,
            "claim": self.statement,
            "source": self.source,
            "loss": self.losses[0] if self.losses else None,
            "losses": list(self.losses),
            "experiment": self.experiment,
            "verdict": self.verdict,
            "reason": self.reason,
            "effect": num(self.effect),
            "effect_name": self.effect_name,
            "unit": self.unit,
            "interval": {
                "low": num(self.low),
                "high": num(self.high),
                "level": 0.95,
                "method": "exact" if self.kind == DETERMINISTIC else "t",
            },
            "seeds": self.seeds,
            "per_seed_effects": [num(e) for e in self.effects],
            "minimal_effect": self.delta,
            "kind": self.kind,
            "rule": self.rule,
            "evidence": self.evidence,
            "scores": {k: num(v) for k, v in self.scores.items()},
            "unresolved": self.unresolved,
            "figure": self.figure,
        }


def mean(xs: Sequence[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def fmt(x: float, digits: int = 3, *, signed: bool = False) -> str:
    """Compact number for evidence sentences."""
    if x != x:  # NaN
        return "n/a"
    sign = "+" if signed and x > 0 else ""
    if abs(x) >= 1000 or (0 < abs(x) < 1e-3):
        return f"{sign}{x:.{digits - 1}e}"
    return f"{sign}{x:.{digits}g}"


__all__ = [
    "HELD",
    "INCONCLUSIVE",
    "NON_INFERIORITY",
    "NOT_HELD",
    "SUPERIORITY",
    "VERDICTS",
    "Claim",
    "Resolution",
    "fmt",
    "mean",
]
