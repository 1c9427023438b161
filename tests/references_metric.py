"""Slow float64 references for the metric-learning losses, written from the papers with plain loops.

Rows are Python lists of floats; nothing here uses torch, so no bug in losskit can leak in.
"""

from __future__ import annotations

import math


def dist(u: list[float], v: list[float], squared: bool) -> float:
    s = sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
    return s if squared else math.sqrt(s)


def center_loss_ref(x: list[list[float]], y: list[int], centers: list[list[float]]) -> list[float]:
    # Wen et al. 2016, eq. 2 per sample: 1/2 ||x_i - c_{y_i}||^2
    return [0.5 * dist(xi, centers[yi], squared=True) for xi, yi in zip(x, y, strict=True)]


def update_centers_ref(
    centers: list[list[float]], x: list[list[float]], y: list[int], alpha: float
) -> list[list[float]]:
    # Wen et al. 2016, eq. 4 and Algorithm 1: c_j <- c_j - alpha * sum_{y_i=j}(c_j - x_i) / (1 + n_j)
    out = []
    for j, c in enumerate(centers):
        members = [xi for xi, yi in zip(x, y, strict=True) if yi == j]
        new = []
        for k, ck in enumerate(c):
            delta = sum(ck - xi[k] for xi in members) / (1 + len(members))
            new.append(ck - alpha * delta)
        out.append(new)
    return out


def contrastive_ref(u: list[float], v: list[float], same: bool, margin: float) -> float:
    # DeepID2 (Sun et al. 2014), eq. 5: 1/2 d^2 if same identity else 1/2 max(0, m - d)^2
    d = dist(u, v, squared=False)
    return 0.5 * d * d if same else 0.5 * max(0.0, margin - d) ** 2


def batch_contrastive_ref(
    x: list[list[float]],
    y: list[int],
    margin: float,
    ref: list[list[float]] | None = None,
    ref_y: list[int] | None = None,
    offset: int | None = 0,
) -> list[float]:
    """Per anchor: half the sum of its pair costs over every candidate that is not itself."""
    ref = x if ref is None else ref
    ref_y = y if ref_y is None else ref_y
    out = []
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        total = 0.0
        for j, (rj, yj) in enumerate(zip(ref, ref_y, strict=True)):
            if offset is not None and j == i + offset:
                continue
            total += contrastive_ref(xi, rj, yi == yj, margin)
        out.append(0.5 * total)
    return out


def hinge(z: float, soft: bool) -> float:
    if soft:  # log(1 + e^z), written stably
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    return max(0.0, z)


def triplet_ref(a: list[float], p: list[float], n: list[float], margin: float, squared: bool) -> float:
    # FaceNet (Schroff et al. 2015), eq. 1 per triplet: [d(a,p) - d(a,n) + alpha]_+
    return max(0.0, dist(a, p, squared) - dist(a, n, squared) + margin)


def batch_triplet_ref(
    x: list[list[float]],
    y: list[int],
    *,
    margin: float,
    mining: str,
    squared: bool,
    soft: bool = False,
    ref: list[list[float]] | None = None,
    ref_y: list[int] | None = None,
    offset: int | None = 0,
) -> tuple[list[float], int, int]:
    """Enumerate every triplet (B * R * R loop). Returns (per-anchor loss, num_valid, num_active)."""
    ref = x if ref is None else ref
    ref_y = y if ref_y is None else ref_y
    alpha = 0.0 if soft else margin
    per_anchor, valid, active = [], 0, 0
    for i, (a, ya) in enumerate(zip(x, y, strict=True)):
        positives = [
            j for j, yj in enumerate(ref_y) if yj == ya and not (offset is not None and j == i + offset)
        ]
        negatives = [j for j, yj in enumerate(ref_y) if yj != ya]
        d = [dist(a, r, squared) for r in ref]
        total = 0.0
        if mining == "batch_all":  # every (p, n)
            for p in positives:
                for n in negatives:
                    z = d[p] - d[n] + alpha
                    total += hinge(z, soft)
                    valid += 1
                    active += z > 0
        elif mining == "batch_hard":  # Hermans et al. 2017, eq. 5: hardest positive, hardest negative
            if positives and negatives:
                z = max(d[p] for p in positives) - min(d[n] for n in negatives) + alpha
                total = hinge(z, soft)
                valid += 1
                active += z > 0
        elif mining == "semi_hard":  # FaceNet sec. 3.2: closest negative with d(a,n) > d(a,p)
            for p in positives:
                if not negatives:
                    continue
                farther = [d[n] for n in negatives if d[n] > d[p]]
                # none farther: the farthest negative (TensorFlow Addons' fallback, documented in losskit)
                d_an = min(farther) if farther else max(d[n] for n in negatives)
                z = d[p] - d_an + alpha
                total += hinge(z, soft)
                valid += 1
                active += z > 0
        else:
            raise ValueError(mining)
        per_anchor.append(total)
    return per_anchor, valid, active


def pnorm_dist(u: list[float], v: list[float], p: float, eps: float) -> float:
    # torch.nn.functional.pairwise_distance: ||u - v + eps||_p
    diffs = [abs(a - b + eps) for a, b in zip(u, v, strict=True)]
    if math.isinf(p):
        return max(diffs)
    return sum(x**p for x in diffs) ** (1.0 / p)


def torch_triplet_ref(
    a: list[float], p: list[float], n: list[float], margin: float, norm: float, eps: float, swap: bool
) -> float:
    # torch's TripletMarginLoss docs: max(d(a,p) - d(a,n) + margin, 0); swap (Balntas et al. 2016):
    # d(a,n) replaced by min(d(a,n), d(p,n))
    d_an = pnorm_dist(a, n, norm, eps)
    if swap:
        d_an = min(d_an, pnorm_dist(p, n, norm, eps))
    return max(0.0, margin + pnorm_dist(a, p, norm, eps) - d_an)
