"""Claims, and the rules that turn a measurement into a verdict.

A claim is what people say about a loss ("MAE is robust to outliers"). The atlas measures it and a
rule written here decides the verdict: ``"held"``, ``"did not hold"`` or ``"mixed"``. No verdict is
written by hand; each rule states its thresholds in words, shown in the report next to the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

HELD = "held"
NOT_HELD = "did not hold"
MIXED = "mixed"
VERDICTS = (HELD, NOT_HELD, MIXED)


@dataclass
class Claim:
    """One claim about one or more losses, with its measured evidence and computed verdict."""

    id: str  # stable anchor in the report: ``claim-<id>``
    statement: str  # the claim as people make it
    source: str  # who makes it (paper or folklore)
    losses: tuple[str, ...]  # function names in losskit.functional the claim is about
    rule: str  # the decision rule in words
    verdict: str  # one of VERDICTS
    evidence: str  # the measured numbers, one or two sentences
    figure: str | None = None  # file name of the supporting picture, beside index.html
    experiment: str = ""  # the experiment's key

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Claim: verdict must be one of {VERDICTS}; got {self.verdict!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Advice:
    """The "when to use / when not" lines of one loss, each generated from a measurement."""

    use: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)


def by_threshold(value: float, *, held_if_below: float, not_held_if_above: float) -> str:
    """Verdict for a "smaller is better" quantity: held below one bound, not held above the other."""
    if held_if_below > not_held_if_above:
        raise ValueError("by_threshold: held_if_below must be <= not_held_if_above")
    if value < held_if_below:
        return HELD
    if value > not_held_if_above:
        return NOT_HELD
    return MIXED


def by_wins(diffs: list[float], *, margin: float) -> str:
    """Verdict over several settings from differences ``claimed - baseline`` (positive = claim right).

    held: better by more than ``margin`` in at least half of the settings and worse by more than
    ``margin`` in none; did not hold: better by more than ``margin`` in none; mixed otherwise.
    """
    wins = sum(d > margin for d in diffs)
    losses = sum(d < -margin for d in diffs)
    if wins == 0:
        return NOT_HELD
    if losses == 0 and 2 * wins >= len(diffs):
        return HELD
    return MIXED


def combine(*verdicts: str) -> str:
    """All held -> held; none held -> did not hold; otherwise mixed (several conditions of one claim)."""
    if all(v == HELD for v in verdicts):
        return HELD
    if all(v == NOT_HELD for v in verdicts):
        return NOT_HELD
    return MIXED


def fmt(x: float, digits: int = 3) -> str:
    """Compact number for evidence sentences."""
    if x != x:  # NaN
        return "n/a"
    if abs(x) >= 1000 or (0 < abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"
