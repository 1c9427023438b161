"""Slow float64 references for the margin-softmax family, written from the papers with ``math`` loops.

Nothing here imports losskit: each function is the paper's formula with an explicit angle
``theta = acos(cos)``, so a shared bug between these and the library (which avoids ``acos``) is unlikely.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def _theta(c: float) -> float:
    return math.acos(max(-1.0, min(1.0, c)))


# ---- target logits (unscaled), one scalar at a time ---------------------------------------------------


def arcface_phi(c: float, m: float, fallback: str = "linear") -> float:
    """Deng et al. 2019, Eq. 3 (cos(theta + m)); fallbacks from the released code / 'easy margin'."""
    t = _theta(c)
    if fallback == "linear" and t + m > math.pi:
        return c - m * math.sin(m)
    if fallback == "easy" and c <= 0:
        return c
    return math.cos(t + m)


def cosface_phi(c: float, m: float) -> float:
    """Wang et al. 2018, Eq. 4: cos(theta) - m."""
    return c - m


def combined_phi(c: float, m1: float, m2: float, m3: float) -> float:
    """Deng et al. 2019, Eq. 4: cos(m1 theta + m2) - m3."""
    return math.cos(m1 * _theta(c) + m2) - m3


def sphereface_psi(c: float, m: int) -> float:
    """Liu et al. 2017, Eq. 6: psi(theta) = (-1)^k cos(m theta) - 2k on [k pi/m, (k+1) pi/m]."""
    t = _theta(c)
    k = min(math.floor(m * t / math.pi), m - 1)
    return (-1) ** k * math.cos(m * t) - 2 * k


def sphereface_phi(c: float, m: int, lam: float) -> float:
    """Liu et al. 2017, Sec. 4 (annealing): (lambda cos + psi) / (1 + lambda)."""
    return (lam * c + sphereface_psi(c, m)) / (1 + lam)


# ---- the softmax loss over one row -------------------------------------------------------------------


def softmax_ce(logits: Sequence[float], y: int) -> float:
    """-log softmax(logits)[y], with the max subtracted as anyone would by hand."""
    top = max(logits)
    return top + math.log(sum(math.exp(z - top) for z in logits)) - logits[y]


def margin_loss(
    cosine: Sequence[Sequence[float]],
    target: Sequence[int],
    phi: Callable[[float], float],
    scale: float | Sequence[float],
) -> list[float]:
    """Per-sample margin softmax: the target cosine goes through ``phi``, every logit is scaled."""
    out = []
    for i, (row, y) in enumerate(zip(cosine, target)):
        s = scale if isinstance(scale, (int, float)) else scale[i]
        logits = [s * (phi(c) if j == y else c) for j, c in enumerate(row)]
        out.append(softmax_ce(logits, y))
    return out


def subcenter_arcface_loss(
    cosine: Sequence[Sequence[Sequence[float]]], target: Sequence[int], scale: float, m: float, fallback: str
) -> list[float]:
    """Deng et al. 2020, Eq. 1: max over the K sub-centres of each class, then ArcFace."""
    rows = [[max(sub) for sub in row] for row in cosine]
    return margin_loss(rows, target, lambda c: arcface_phi(c, m, fallback), scale)


# ---- feature-based losses ----------------------------------------------------------------------------


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _norm(a: Sequence[float]) -> float:
    return math.sqrt(_dot(a, a))


def l2_softmax_loss(x, w, y, alpha: float, bias=None) -> list[float]:
    """Ranjan et al. 2017, Eq. 3: softmax on W (alpha x / |x|) + b."""
    out = []
    for xi, yi in zip(x, y):
        n = _norm(xi)
        z = [alpha * _dot(wj, xi) / n + (0.0 if bias is None else bias[j]) for j, wj in enumerate(w)]
        out.append(softmax_ce(z, yi))
    return out


def large_margin_softmax_loss(x, w, y, m: int, lam: float) -> list[float]:
    """Liu et al. 2016, Eq. 5-6: f_y = |W_y||x| (lam cos + psi) / (1 + lam), others |W_j||x| cos."""
    out = []
    for xi, yi in zip(x, y):
        z = []
        for j, wj in enumerate(w):
            nn_ = _norm(wj) * _norm(xi)
            c = _dot(wj, xi) / nn_
            z.append(nn_ * (sphereface_phi(c, m, lam) if j == yi else c))
        out.append(softmax_ce(z, yi))
    return out


def l2_softmax_alpha_lower_bound(num_classes: int, p: float) -> float:
    """Ranjan et al. 2017, Eq. 5."""
    return math.log(p * (num_classes - 2) / (1 - p))
