"""Statistics behind every verdict: a paired effect over seeds, its 95% interval, and the decision rule.

Each claim is measured once per seed. For seed ``s`` the experiment computes an effect ``d_s`` in the
direction the claim states (positive = the claim is right: the claimed method is better, or the
claimed quantity exceeds its reference), in units stated with the claim. The seeds are independent
replications (new data split, initialisation, batch order, or a new block of cases), and every
method compared in a claim runs on the same seed, so ``d_s`` is a paired difference.

The interval is Student's t interval for the mean of the ``d_s``:
``mean ± t(0.975, n - 1) · sd / sqrt(n)``, exact for normally distributed effects and the usual
choice for a handful of paired replicates (a percentile bootstrap under-covers at n = 5).

The verdict compares the interval with zero and with a *minimal meaningful effect* ``delta > 0``
stated with the claim (the negligible band is ``(-delta, delta)``):

- ``superiority`` claims ("A beats B"): **held** when the interval excludes zero in the claimed
  direction and the mean effect exceeds ``delta``; **did not hold** when the interval excludes zero
  the other way, or lies inside the negligible band; **inconclusive** otherwise.
- ``non-inferiority`` claims ("A matches or beats B"): **held** when the whole interval lies above
  ``-delta`` (A is not worse by a meaningful amount); **did not hold** when the interval excludes
  zero on the wrong side and the mean is worse than ``-delta``; **inconclusive** otherwise.

- ``deterministic`` claims (a measurement with no randomness, such as the bytes a computation
  allocates: the same run gives the same number, so one measurement is the whole evidence and there
  is no interval): the effect is the margin by which the claim's bound is met at its worst measured
  configuration; **held** when it is at least 0, **did not hold** when it is below 0 (``delta`` is the
  measurement's resolution, shown with the claim, not a band).

A claim is also **inconclusive**, with the reason stated, when the experiment cannot resolve it:
fewer than two seeds, every method compared within a stated margin of chance or of the ceiling, or
a validity check the experiment states with the claim failed (such as a learned parameter the claim
depends on that never left its initialisation) (:class:`Resolution`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HELD = "held"
NOT_HELD = "did not hold"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)

SUPERIORITY = "superiority"
NON_INFERIORITY = "non-inferiority"
DETERMINISTIC = "deterministic"
KINDS = (SUPERIORITY, NON_INFERIORITY, DETERMINISTIC)

LEVEL = 0.95


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1; got {df}")
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass(frozen=True)
class Interval:
    """Mean of the per-seed effects with its two-sided ``level`` confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    sd: float
    level: float = LEVEL
    method: str = "t"


def paired_interval(effects: Sequence[float], level: float = LEVEL) -> Interval:
    """Student's t interval for the mean of per-seed paired effects (NaN bounds for n < 2)."""
    xs = [float(x) for x in effects]
    n = len(xs)
    if n == 0:
        raise ValueError("paired_interval: needs at least one effect")
    if any(math.isnan(x) for x in xs):
        nan = float("nan")
        return Interval(nan, nan, nan, n, nan, level)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n, float("nan"), level)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd, level)


def bootstrap_interval(
    effects: Sequence[float], level: float = LEVEL, *, resamples: int = 10000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean (for comparison; the verdicts use the t interval)."""
    import torch

    x = torch.tensor([float(e) for e in effects], dtype=torch.float64)
    n = len(x)
    if n < 2:
        return paired_interval(effects, level)
    g = torch.Generator().manual_seed(seed)
    means = x[torch.randint(0, n, (resamples, n), generator=g)].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return Interval(float(x.mean()), float(lo), float(hi), n, float(x.std()), level, "bootstrap")


@dataclass(frozen=True)
class Resolution:
    """Can the experiment resolve the claim? Scores of the compared methods against chance and ceiling.

    ``scores`` maps each method compared in the claim to its mean score (same units as ``chance``
    and ``ceiling``). The claim cannot be resolved when every method lies within ``margin`` of
    ``chance`` or every method lies within ``margin`` of ``ceiling``.
    """

    scores: dict[str, float]
    chance: float | None
    ceiling: float | None
    margin: float
    metric: str = "score"
    invalid: str | None = None  # a check of the experiment's own that failed, in words (shown as is)

    def reason(self) -> str | None:
        """Why the claim cannot be resolved, or None when it can."""
        if self.invalid:
            return self.invalid
        vals = list(self.scores.values())
        if not vals:
            return None
        listed = ", ".join(f"{k} {v:.3g}" for k, v in self.scores.items())
        if self.chance is not None and all(abs(v - self.chance) <= self.margin for v in vals):
            return (
                f"every method is within {self.margin:g} of chance ({self.chance:.3g}) on {self.metric} "
                f"({listed}): the experiment cannot tell them apart"
            )
        if self.ceiling is not None and all(self.ceiling - v <= self.margin for v in vals):
            return (
                f"every method is within {self.margin:g} of the ceiling ({self.ceiling:.3g}) on "
                f"{self.metric} ({listed}): the experiment is too easy to tell them apart"
            )
        return None


@dataclass(frozen=True)
class Decision:
    verdict: str
    interval: Interval
    reason: str  # why this verdict, in words


def decide(
    effects: Sequence[float],
    *,
    delta: float,
    kind: str = SUPERIORITY,
    resolution: Resolution | None = None,
    level: float = LEVEL,
) -> Decision:
    """The verdict for per-seed effects (positive = the claim's direction); see the module docstring."""
    if not delta > 0:
        raise ValueError(f"decide: delta (the minimal meaningful effect) must be > 0; got {delta}")
    if kind not in KINDS:
        raise ValueError(f"decide: kind must be one of {KINDS}; got {kind!r}")
    if kind == DETERMINISTIC:
        xs = [float(e) for e in effects]
        if len(xs) != 1:
            raise ValueError(f"decide: a deterministic claim has one measurement; got {len(xs)}")
        exact = Interval(xs[0], xs[0], xs[0], 1, 0.0, level, "exact")
        if math.isnan(xs[0]):
            return Decision(INCONCLUSIVE, exact, "the measurement is undefined (NaN)")
        if xs[0] >= 0:
            return Decision(HELD, exact, "the bound is met at every measured size (deterministic)")
        return Decision(NOT_HELD, exact, "the bound is missed at some measured size (deterministic)")
    ci = paired_interval(effects, level)
    if resolution is not None:
        why = resolution.reason()
        if why is not None:
            return Decision(INCONCLUSIVE, ci, why)
    if ci.n < 2:
        return Decision(INCONCLUSIVE, ci, f"only {ci.n} seed: no interval can be computed")
    if math.isnan(ci.mean):
        return Decision(INCONCLUSIVE, ci, "the measurement is undefined (NaN) on some seed")
    lo, hi, m = ci.low, ci.high, ci.mean
    if kind == SUPERIORITY:
        if lo > 0 and m > delta:
            return Decision(HELD, ci, f"the interval excludes 0 and the mean effect exceeds {delta:g}")
        if hi < 0:
            return Decision(NOT_HELD, ci, "the interval excludes 0 in the opposite direction")
        if lo > -delta and hi < delta:
            return Decision(NOT_HELD, ci, f"the interval lies inside the negligible band ±{delta:g}")
        if lo > 0:
            return Decision(INCONCLUSIVE, ci, f"a real effect, but not shown to exceed {delta:g}")
        return Decision(INCONCLUSIVE, ci, "the interval includes 0 and a meaningful effect")
    # non-inferiority
    if lo > -delta:
        return Decision(HELD, ci, f"the whole interval lies above -{delta:g}")
    if hi < 0 and m < -delta:
        return Decision(NOT_HELD, ci, f"worse: the interval excludes 0 and the mean is below -{delta:g}")
    return Decision(INCONCLUSIVE, ci, f"the interval reaches below -{delta:g} and is not clearly worse")


@dataclass(frozen=True)
class Standing:
    """One method against the best of its experiment: paired difference (method - best) over seeds."""

    best: str
    mean: float
    low: float
    high: float
    status: str  # "best" | "tied" (whole interval above -delta) | "worse" | "unclear"


def compare_to_best(
    scores: dict[str, Sequence[float]], *, delta: float, higher_is_better: bool = True
) -> dict[str, Standing]:
    """Each method against the method with the best mean score, paired over seeds.

    ``tied``: the interval of (method - best) lies above ``-delta`` (not worse by a meaningful amount);
    ``worse``: the interval excludes 0 and the mean is worse than ``-delta``; ``unclear`` otherwise.
    Scores are flipped for ``higher_is_better=False`` so that differences are always "higher is better".
    """
    sign = 1.0 if higher_is_better else -1.0
    means = {k: sign * sum(v) / len(v) for k, v in scores.items()}
    best = max(means, key=lambda k: means[k])
    out = {}
    for k, v in scores.items():
        if k == best:
            out[k] = Standing(best, 0.0, 0.0, 0.0, "best")
            continue
        ci = paired_interval([sign * (a - b) for a, b in zip(v, scores[best])])
        if ci.n >= 2 and ci.low > -delta:
            status = "tied"
        elif ci.n >= 2 and ci.high < 0 and ci.mean < -delta:
            status = "worse"
        else:
            status = "unclear"
        out[k] = Standing(best, ci.mean, ci.low, ci.high, status)
    return out


def rule_text(kind: str, delta: float, unit: str) -> str:
    """The decision rule of a claim in words, as the report shows it."""
    d = f"{delta:g}{(' ' + unit) if unit else ''}"
    if kind == DETERMINISTIC:
        return (
            "deterministic: the measurement has no randomness (the same run gives the same number), so "
            "one measurement, no interval; the effect is the margin by which the claim's bound is met at "
            f"the worst measured size; held if it is >= 0, did not hold if < 0 (resolution {d})"
        )
    if kind == SUPERIORITY:
        return (
            f"paired over seeds, 95% t interval of the mean effect; held if the interval excludes 0 in the "
            f"claimed direction and the mean exceeds the minimal meaningful effect {d}; did not hold if it "
            f"excludes 0 the other way or lies within ±{d}; inconclusive otherwise"
        )
    return (
        f"non-inferiority, paired over seeds, 95% t interval; held if the whole interval lies above -{d}; "
        f"did not hold if it excludes 0 on the wrong side with a mean below -{d}; inconclusive otherwise"
    )


__all__ = [
    "DETERMINISTIC",
    "HELD",
    "INCONCLUSIVE",
    "KINDS",
    "LEVEL",
    "NON_INFERIORITY",
    "NOT_HELD",
    "SUPERIORITY",
    "VERDICTS",
    "Decision",
    "Interval",
    "Resolution",
    "Standing",
    "bootstrap_interval",
    "compare_to_best",
    "decide",
    "paired_interval",
    "rule_text",
    "t_quantile",
]
