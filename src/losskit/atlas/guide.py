"""The loss-selection guide: task, outliers, imbalance and number of classes in; losses and reasons out.

Each reason points at the evidence in the atlas report (``index.html#claim-...``); when a report's
``results.json`` is given, the reason quotes the measured verdict and numbers from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TASKS = ("regression", "classification", "dense-detection", "box-regression", "face-metric")


@dataclass
class Recommendation:
    function: str
    reason: str
    claim: str | None  # claim id in the report, the evidence for the reason

    def link(self, report: str = "atlas-out/index.html") -> str:
        return f"{report}#claim-{self.claim}" if self.claim else f"{report}#loss-{self.function}"


def _recs(task: str, outliers: bool, imbalance: float, num_classes: int) -> list[Recommendation]:
    R = Recommendation
    if task == "regression":
        if outliers:
            return [
                R(
                    "huber_loss",
                    "outliers in the targets: bounded gradient, quadratic near zero",
                    "regression-huber-both",
                ),
                R(
                    "l1_loss",
                    "the most robust to gross target errors in the atlas experiment",
                    "regression-l1-robust",
                ),
                R(
                    "smooth_l1_loss",
                    "Huber / beta: the same shape, used by detectors",
                    "regression-smooth-l1-both",
                ),
            ]
        return [
            R(
                "mse_loss",
                "clean targets: fastest convergence under plain gradient descent",
                "regression-mse-fast",
            ),
            R("huber_loss", "a safe default if outliers may appear later", "regression-huber-both"),
        ]
    if task in ("classification", "dense-detection"):
        recs = []
        if imbalance >= 100 or task == "dense-detection":
            recs += [
                R(
                    "sigmoid_focal_loss",
                    "many easy negatives: focal loss shrinks their share of the gradient",
                    "imbalance-focal-downweights",
                ),
                R(
                    "ghmc_loss",
                    "re-weights by gradient density, no gamma to tune",
                    "imbalance-ghm-beats-focal",
                ),
            ]
        if imbalance >= 10:
            recs.append(
                R(
                    "sigmoid_focal_loss" if num_classes <= 2 else "softmax_focal_loss",
                    "class weighting (alpha) for the rare class",
                    "imbalance-alpha-balanced",
                )
            )
        recs.append(
            R(
                "binary_cross_entropy_with_logits" if num_classes <= 2 else "cross_entropy",
                "the baseline: at mild imbalance it is hard to beat",
                "imbalance-focal-beats-ce",
            )
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
                "boxes-ciou-fastest",
            ),
            R(
                "distance_box_iou_loss",
                "moves non-overlapping boxes by their centre distance",
                "boxes-diou-faster-than-giou",
            ),
            R("generalized_box_iou_loss", "works without overlap, but slowly", "boxes-diou-faster-than-giou"),
        ]
    if task == "face-metric":
        recs = [
            R("arcface_loss", "additive angular margin: compact identities", "faces-margins-compact"),
            R("cosface_loss", "additive cosine margin, simpler and as compact", "faces-margins-compact"),
        ]
        if num_classes > 100000:
            recs.append(
                R("arcface_loss", "many identities: use the Module's chunked fused path (chunk_size)", None)
            )
        recs.append(
            R(
                "batch_triplet_loss",
                "no class labels beyond pairs, open-set identities",
                "faces-metric-open-set",
            )
        )
        return recs
    raise ValueError(f"recommend: task must be one of {TASKS}; got {task!r}")


def recommend(
    task: str,
    *,
    outliers: bool = False,
    imbalance: float = 1.0,
    num_classes: int = 2,
    results: Path | None = None,
) -> list[tuple[Recommendation, str]]:
    """Recommendations with reasons; each reason extended by the measured verdict when ``results`` exists.

    Returns ``(recommendation, evidence)`` pairs; evidence is "" without a results file.
    """
    if imbalance < 1:
        raise ValueError(f"recommend: imbalance must be >= 1 (negatives per positive); got {imbalance}")
    if num_classes < 2:
        raise ValueError(f"recommend: num_classes must be >= 2; got {num_classes}")
    claims = {}
    if results is not None and Path(results).exists():
        data = json.loads(Path(results).read_text())
        claims = {c["id"]: c for s in data["steps"] for c in s["claims"]}
    out = []
    for r in _recs(task, outliers, imbalance, num_classes):
        c = claims.get(r.claim or "")
        evidence = f"measured: {c['verdict']} ({c['evidence']})" if c else ""
        out.append((r, evidence))
    return out
