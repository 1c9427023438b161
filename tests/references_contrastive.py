"""Slow float64 references for the contrastive losses, written from the papers' formulas.

Plain Python on lists of floats (``math.fsum``, a stable log-sum-exp), no torch: each function returns
the per-anchor (per-pair, per-image) losses and, where ``'mean'`` divides by a count, that count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Rows = Sequence[Sequence[float]]


def _unit(v: Sequence[float]) -> list[float]:
    n = math.sqrt(math.fsum(x * x for x in v))
    return [x / max(n, 1e-12) for x in v]  # F.normalize's eps


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))


def _lse(values: list[float]) -> float:
    m = max(values)
    return m + math.log(math.fsum(math.exp(v - m) for v in values))


def _neg_log_sigmoid(u: float) -> float:
    """-log(1 / (1 + e^-u)), without overflow."""
    return math.log1p(math.exp(-u)) if u >= 0 else -u + math.log1p(math.exp(u))


def nt_xent(x: Rows, labels: Sequence[int], temperature: float) -> tuple[list[float], int]:
    """SimCLR (Chen et al. 2020, eq. 1) for every ordered positive pair (i, p), p != i, y_p = y_i:
    -log( e^{s_ip/t} / (e^{s_ip/t} + sum over the anchor's negatives n (y_n != y_i) of e^{s_in/t}) ),
    summed per anchor; returns (per-anchor sums, number of positive pairs)."""
    u = [_unit(v) for v in x]
    rows, pairs = [], 0
    for i in range(len(u)):
        negatives = [_dot(u[i], u[n]) / temperature for n in range(len(u)) if labels[n] != labels[i]]
        terms = []
        for p in range(len(u)):
            if p == i or labels[p] != labels[i]:
                continue
            pairs += 1
            s = _dot(u[i], u[p]) / temperature
            terms.append(_lse([s, *negatives]) - s)
        rows.append(math.fsum(terms))
    return rows, pairs


def supcon(
    x: Rows, labels: Sequence[int], temperature: float, base_temperature: float
) -> tuple[list[float], int]:
    """Khosla et al. 2020, eq. 2 (L_out), with SupContrast's factor t / t_b:
    L_i = -(t / t_b) (1 / |P(i)|) sum_{p in P(i)} log( e^{s_ip/t} / sum_{a != i} e^{s_ia/t} ),
    0 for anchors without a positive; returns (per-anchor losses, number of anchors with a positive)."""
    u = [_unit(v) for v in x]
    rows, anchors = [], 0
    for i in range(len(u)):
        positives = [p for p in range(len(u)) if p != i and labels[p] == labels[i]]
        if not positives:
            rows.append(0.0)
            continue
        anchors += 1
        lse = _lse([_dot(u[i], u[a]) / temperature for a in range(len(u)) if a != i])
        mean_log_prob = math.fsum(_dot(u[i], u[p]) / temperature - lse for p in positives) / len(positives)
        rows.append(-(temperature / base_temperature) * mean_log_prob)
    return rows, anchors


def clip(images: Rows, texts: Rows, scale: float) -> list[float]:
    """Radford et al. 2021 (Figure 3's pseudocode): for pair i, half the cross-entropy of image i over
    all texts plus half that of text i over all images, logits scale * x_i . y_j."""
    n = len(images)
    logits = [[scale * _dot(images[i], texts[j]) for j in range(n)] for i in range(n)]
    out = []
    for i in range(n):
        image_ce = _lse(logits[i]) - logits[i][i]
        text_ce = _lse([logits[j][i] for j in range(n)]) - logits[i][i]
        out.append(0.5 * (image_ce + text_ce))
    return out


def siglip(images: Rows, texts: Rows, scale: float, bias: float) -> list[float]:
    """Zhai et al. 2023, Algorithm 1: for image i, sum over texts j of -log sigmoid(z_ij (t x_i . y_j + b)),
    z_ij = 1 if i = j else -1 (the paper divides the total by the batch size)."""
    n = len(images)
    out = []
    for i in range(n):
        terms = []
        for j in range(n):
            z = 1.0 if i == j else -1.0
            terms.append(_neg_log_sigmoid(z * (scale * _dot(images[i], texts[j]) + bias)))
        out.append(math.fsum(terms))
    return out
