"""The loss-selection guide: task, outliers, imbalance and number of classes in; losses and reasons out.

Each recommendation names the claims of the atlas that bear on it. Given an atlas output folder, the
guide shows each claim with its verdict, mean effect, 95% interval and seeds from ``claims.json``,
and says "not measured here" where no claim backs a reason (or the report did not measure it), so a
reader sees which advice rests on evidence and which on the papers alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TASKS = ("regression", "classification", "dense-detection", "box-regression", "face-metric")
NOT_MEASURED = "not measured here"


@dataclass(frozen=True)
class Recommendation:
    function: str
    reason: str
    claims: tuple[str, ...]  # claim ids in the report: the evidence for the reason (may be empty)

    def link(self, report: str = "atlas-out/index.html") -> str:
        return f"{report}#claim-{self.claims[0]}" if self.claims else f"{report}#loss-{self.function}"


@dataclass(frozen=True)
class Evidence:
    """One claim behind a recommendation, as ``claims.json`` records it."""

    claim: str  # the claim id
    statement: str
    verdict: str
    effect: float | None
    low: float | None
    high: float | None
    unit: str
    seeds: int

    def text(self) -> str:
        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:+.3g}"

        return (
            f"{self.statement} {self.verdict.upper()}: {f(self.effect)} {self.unit} "
            f"[{f(self.low)}, {f(self.high)}], {self.seeds} seeds"
        )


def _recs(task: str, outliers: bool, imbalance: float, num_classes: int) -> list[Recommendation]:
    R = Recommendation
    if task == "regression":
        if outliers:
            return [
                R(
                    "huber_loss",
                    "outliers in the targets: bounded gradient, quadratic near zero",
                    ("regression-huber-robust", "regression-huber-fast"),
                ),
                R("l1_loss", "robust to gross target errors", ("regression-l1-robust",)),
                R(
                    "smooth_l1_loss",
                    "Huber / beta: the same shape, used by detectors",
                    ("regression-smooth-l1-robust", "regression-smooth-l1-fast"),
                ),
            ]
        return [
            R(
                "mse_loss",
                "clean targets: fastest convergence under plain gradient descent",
                ("regression-mse-fast",),
            ),
            R("huber_loss", "a safe default if outliers may appear later", ("regression-huber-fast",)),
        ]
    if task in ("classification", "dense-detection"):
        recs = []
        if imbalance >= 100 or task == "dense-detection":
            recs += [
                R(
                    "sigmoid_focal_loss",
                    "many easy negatives: focal loss shrinks their share of the gradient",
                    ("imbalance-focal-downweights", "imbalance-focal-beats-ce", "imbalance-gamma-2-best"),
                ),
                R(
                    "ghmc_loss",
                    "re-weights by gradient density, no gamma to tune",
                    ("imbalance-ghm-beats-focal",),
                ),
            ]
        if imbalance >= 10:
            recs.append(
                R(
                    "sigmoid_focal_loss" if num_classes <= 2 else "softmax_focal_loss",
                    "class weighting (alpha) for the rare class",
                    ("imbalance-alpha-balanced",),
                )
            )
        recs.append(
            R(
                "binary_cross_entropy_with_logits" if num_classes <= 2 else "cross_entropy",
                "the baseline: at mild imbalance it is hard to beat",
                ("imbalance-focal-beats-ce",),
            )
        )
        if task == "dense-detection":
            recs.append(
                R("generalized_box_iou_loss", "the box branch of the detector: see box-regression", ())
            )
        seen, out = set(), []
        for r in recs:  # keep the first reason for each loss
            if r.function not in seen:
                seen.add(r.function)
                out.append(r)
        return out
    if task == "box-regression":
        return [
            R(
                "complete_box_iou_loss",
                "fastest to small errors in the DIoU simulation",
                ("boxes-ciou-fastest",),
            ),
            R(
                "distance_box_iou_loss",
                "moves non-overlapping boxes by their centre distance",
                ("boxes-diou-faster-than-giou", "boxes-diou-faster-with-papers-gradients"),
            ),
            R(
                "generalized_box_iou_loss",
                "works without overlap, unlike the plain IoU loss",
                ("boxes-iou-stalls",),
            ),
        ]
    if task == "face-metric":
        recs = [
            R(
                "arcface_loss",
                "additive angular margin: compact identities",
                (
                    "faces-arcface-beats-softmax",
                    "faces-margins-compact",
                    "faces-arcface-beats-cosface-sphereface",
                ),
            ),
            R(
                "cosface_loss",
                "additive cosine margin, simpler",
                ("faces-margin-beats-normface", "faces-margins-compact"),
            ),
        ]
        if num_classes > 100000:
            recs.append(
                R(
                    "margin_softmax_loss",
                    "many identities: the fused, chunked engine (and process_group= across ranks) "
                    "never builds the (N, C) logits",
                    (),
                )
            )
        recs.append(
            R(
                "batch_triplet_loss",
                "no class labels beyond pairs, open-set identities",
                ("faces-metric-open-set",),
            )
        )
        return recs
    raise ValueError(f"recommend: task must be one of {TASKS}; got {task!r}")


def load_claims(report: Path | str) -> dict[str, dict]:
    """The claims of an atlas output folder (or of a ``claims.json`` path), by id; {} when absent."""
    path = Path(report)
    if path.is_dir():
        path = path / "claims.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {c["id"]: c for c in data["claims"]}


def recommend(
    task: str,
    *,
    outliers: bool = False,
    imbalance: float = 1.0,
    num_classes: int = 2,
    report: Path | str | None = None,
) -> list[tuple[Recommendation, list[Evidence]]]:
    """Recommendations with the evidence the atlas report at ``report`` holds for each.

    Returns ``(recommendation, evidence)`` pairs; ``evidence`` is empty when nothing in the report backs
    the reason (shown as "not measured here").
    """
    if imbalance < 1:
        raise ValueError(f"recommend: imbalance must be >= 1 (negatives per positive); got {imbalance}")
    if num_classes < 2:
        raise ValueError(f"recommend: num_classes must be >= 2; got {num_classes}")
    claims = load_claims(report) if report is not None else {}
    out = []
    for r in _recs(task, outliers, imbalance, num_classes):
        ev = [
            Evidence(
                cid,
                c["claim"],
                c["verdict"],
                c["effect"],
                c["interval"]["low"],
                c["interval"]["high"],
                c["unit"],
                c["seeds"],
            )
            for cid in r.claims
            if (c := claims.get(cid)) is not None
        ]
        out.append((r, ev))
    return out


__all__ = ["NOT_MEASURED", "TASKS", "Evidence", "Recommendation", "load_claims", "recommend"]
