"""Curves: each loss and its gradient along the one variable that matters for it.

A *probe* turns a 1-D grid ``x`` (an error, a probability ``p_t``, a box offset, an angle) into the
inputs of one loss, so that ``loss_curve(name, params)`` gives the per-point loss and its gradient
with respect to ``x`` (by autograd through losskit's own function). The atlas draws one comparison
chart per family, and for every loss a chart over its OWN parameters (:data:`OWN`: beta for Smooth
L1, delta for Huber, gamma and alpha for focal, bins and momentum for GHM, each margin loss's margin,
eps and mode for the IoU losses, margin and mining for triplet, ...). ``losskit plot LOSS`` draws one
loss with any parameter values overlaid.
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from . import StepResult, Unavailable, require
from ._plotting import PALETTE, pyplot, save


@dataclass(frozen=True)
class Probe:
    xlabel: str
    grid: Callable[[int], Tensor]  # n -> float64 grid
    call: Callable[[Callable, Tensor, dict], Tensor]  # (fn, x, params) -> per-point loss (n,)
    note: str = ""


def _regression(fn, x, params):
    return fn(x, torch.zeros_like(x), reduction="none", **params)


def _binary_pt(fn, x, params):
    z = torch.log(x) - torch.log1p(-x)  # logit of p_t, target 1: p_t = p
    return fn(z, torch.ones_like(z), reduction="none", **params)


def _softmax_pt(fn, x, params):
    z = torch.log(x) - torch.log1p(-x)  # two classes [z, 0]: p_t = sigmoid(z)
    logits = torch.stack([z, torch.zeros_like(z)], 1)
    return fn(logits, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


TARGET_BOX = (0.0, 0.0, 2.0, 1.0)  # non-square: width 2, height 1


def _box_offset(fn, x, params):
    t = torch.tensor(TARGET_BOX, dtype=x.dtype).expand(len(x), 4)
    shift = torch.stack([x, torch.zeros_like(x), x, torch.zeros_like(x)], 1)
    return fn(t + shift, t, reduction="none", **params)


def _cosine_theta(fn, x, params):
    cos = torch.stack([torch.cos(x), torch.zeros_like(x)], 1)  # other class at 90 degrees
    return fn(cos, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


def _feature_theta(fn, x, params):
    feats = torch.stack([torch.cos(x), torch.sin(x)], 1)  # unit feature at angle theta from class 0
    weight = torch.eye(2, dtype=x.dtype)
    return fn(feats, weight, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


def _center_distance(fn, x, params):
    feats = torch.stack([x, torch.zeros_like(x)], 1)
    centers = torch.zeros(1, 2, dtype=x.dtype)
    return fn(feats, torch.zeros(len(x), dtype=torch.long), centers, reduction="none", **params)


def _pair_distance(same: bool):
    def call(fn, x, params):
        a = torch.zeros(len(x), 2, dtype=x.dtype)
        b = torch.stack([x, torch.zeros_like(x)], 1)
        s = torch.full((len(x),), same, dtype=torch.bool)
        return fn(a, b, s, reduction="none", **params)

    return call


def _batch_pair_distance(fn, x, params):
    # per grid point, a batch of two embeddings of different identities at distance x (a loop: the
    # loss reduces over the batch)
    out = []
    for d in x.unbind(0):
        emb = torch.stack([torch.zeros_like(d), d]).unsqueeze(1) * torch.tensor([1.0, 0.0], dtype=x.dtype)
        out.append(fn(emb, torch.tensor([0, 1]), reduction="mean", **params))
    return torch.stack(out)


def _two_view_angle(pairs: bool):
    """Two samples, each seen twice: sample 0's views ``theta`` apart, sample 1's views together at 90
    degrees from sample 0; the batch's loss against ``theta`` (a loop: the loss is over the batch)."""

    def unit(a: Tensor) -> Tensor:
        return torch.stack([torch.cos(a), torch.sin(a)])

    def call(fn, x, params):
        out = []
        for t in x.unbind(0):
            zero, right = torch.zeros_like(t), torch.full_like(t, math.pi / 2)
            a = torch.stack([unit(zero), unit(right)])  # views 1: (2, 2)
            b = torch.stack([unit(t), unit(right + 0.05)])  # views 2
            if pairs:  # (image, text) pairs
                out.append(fn(a, b, reduction="mean", **params))
            else:  # 2B embeddings, labels pairing the views
                out.append(fn(torch.cat([a, b]), torch.tensor([0, 1, 0, 1]), reduction="mean", **params))
        return torch.stack(out)

    return call


def _linear_logit(fn, x, params):
    # a 1-d hidden state x through W = [[1], [0]]: logits (x, 0), the target class 0
    w = torch.tensor([[1.0], [0.0]], dtype=x.dtype)
    return fn(x[:, None], w, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


def _fused_theta(fn, x, params):
    feats = torch.stack([torch.cos(x), torch.sin(x)], 1)  # unit embedding at angle theta from centre 0
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=x.dtype)
    return fn(feats, centers, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


def _subcenter_theta(fn, x, params):
    # K = 2 sub-centres for the target class, the second 30 degrees further away; the other class at 90
    far = torch.cos(x + math.radians(30))
    cos = torch.stack([torch.stack([torch.cos(x), far], 1), torch.zeros(len(x), 2, dtype=x.dtype)], 1)
    return fn(cos, torch.zeros(len(x), dtype=torch.long), reduction="none", **params)


def _triplet_negative(fn, x, params):
    a = torch.zeros(len(x), 2, dtype=x.dtype)
    p = torch.tensor([[0.0, 1.0]], dtype=x.dtype).expand(len(x), 2)  # positive at distance 1
    n = torch.stack([x, torch.zeros_like(x)], 1)
    return fn(a, p, n, reduction="none", **params)


def _lin(lo: float, hi: float, points: int | None = None) -> Callable[[int], Tensor]:
    return lambda n: torch.linspace(lo, hi, points or n, dtype=torch.float64)


_ERR = Probe("error (input - target)", _lin(-3.0, 3.0), _regression)
_PT = Probe("p_t (probability of the true class)", _lin(0.002, 0.998), _binary_pt)
_PT_SOFTMAX = Probe("p_t (probability of the true class, 2 classes)", _lin(0.002, 0.998), _softmax_pt)
_BOX = Probe("horizontal offset of a 2x1 box from its target (box widths: 2)", _lin(-5.0, 5.0), _box_offset)
_THETA = Probe("theta: angle to the target class centre (radians)", _lin(0.0, math.pi), _cosine_theta)
_FEATURE_THETA = Probe(
    "theta: angle to the target class weight (radians)", _lin(0.0, math.pi), _feature_theta
)

PROBES: dict[str, Probe] = {
    "l1_loss": _ERR,
    "mse_loss": _ERR,
    "smooth_l1_loss": _ERR,
    "huber_loss": _ERR,
    "ghmr_loss": Probe(_ERR.xlabel, _ERR.grid, _regression, "the whole grid is one batch for the density"),
    "binary_cross_entropy_with_logits": _PT,
    "sigmoid_focal_loss": _PT,
    "ghmc_loss": Probe(_PT.xlabel, _PT.grid, _binary_pt, "the whole grid is one batch for the density"),
    "cross_entropy": _PT_SOFTMAX,
    "softmax_focal_loss": _PT_SOFTMAX,
    "iou_loss": _BOX,
    "generalized_box_iou_loss": _BOX,
    "distance_box_iou_loss": _BOX,
    "complete_box_iou_loss": _BOX,
    "normface_loss": _THETA,
    "cosface_loss": _THETA,
    "am_softmax_loss": _THETA,
    "arcface_loss": _THETA,
    "combined_margin_loss": _THETA,
    "sphereface_loss": _THETA,
    "l2_softmax_loss": _FEATURE_THETA,
    "large_margin_softmax_loss": _FEATURE_THETA,
    "subcenter_arcface_loss": Probe(
        "theta: angle to the nearest sub-centre of the target class (radians)",
        _lin(0.0, math.pi),
        _subcenter_theta,
    ),
    "margin_softmax_loss": Probe(
        "theta: angle of the embedding to its class centre (radians)", _lin(0.0, math.pi), _fused_theta
    ),
    "center_loss": Probe("distance of the feature from its class centre", _lin(0.0, 3.0), _center_distance),
    "contrastive_loss": Probe(
        "distance between a different-identity pair", _lin(0.0, 2.0), _pair_distance(False)
    ),
    "batch_contrastive_loss": Probe(
        "distance between the two (different) identities of a batch", _lin(0.0, 2.0, 81), _batch_pair_distance
    ),
    "triplet_margin_loss": Probe(
        "distance anchor-negative (anchor-positive distance is 1)", _lin(0.0, 2.5), _triplet_negative
    ),
    "facenet_triplet_loss": Probe(
        "distance anchor-negative (anchor-positive distance is 1)", _lin(0.0, 2.5), _triplet_negative
    ),
    "linear_cross_entropy": Probe(
        "logit of the target class (the other class at 0)", _lin(-10.0, 10.0), _linear_logit
    ),
    "nt_xent_loss": Probe(
        "angle between the two views of a sample (radians)", _lin(0.0, math.pi, 61), _two_view_angle(False)
    ),
    "supcon_loss": Probe(
        "angle between the two views of a sample (radians)", _lin(0.0, math.pi, 61), _two_view_angle(False)
    ),
    "clip_loss": Probe(
        "angle between an image and its text (radians)", _lin(0.0, math.pi, 61), _two_view_angle(True)
    ),
    "siglip_loss": Probe(
        "angle between an image and its text (radians)", _lin(0.0, math.pi, 61), _two_view_angle(True)
    ),
}
TENSOR_PARAMS = ("pos_weight",)  # parameters the losses take as tensors


def loss_curve(name: str, params: dict | None = None, n: int = 401) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, loss, dloss/dx)`` along the probe of loss ``name`` with keyword ``params``, in float64."""
    if name not in PROBES:
        raise KeyError(f"no curve for {name!r}; curves exist for: {', '.join(sorted(PROBES))}")
    require(name)
    from .. import functional as LF

    probe = PROBES[name]
    x = probe.grid(n).requires_grad_(True)
    params = {
        k: (x.new_tensor(v) if k in TENSOR_PARAMS and v is not None else v) for k, v in (params or {}).items()
    }
    loss = probe.call(getattr(LF, name), x, params)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return x.detach(), loss.detach(), grad


def plot_loss(name: str, variants: list[dict], out: Path, *, title: str | None = None) -> Path:
    """Draw loss and gradient of ``name`` for each parameter dict in ``variants`` into ``out`` (PNG)."""
    plt = pyplot()
    probe = PROBES.get(name)
    curves = [(v, *loss_curve(name, v)) for v in variants]  # raises before a figure is made
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for v, x, loss, grad in curves:
        label = ", ".join(f"{k}={val}" for k, val in v.items()) or "defaults"
        a1.plot(x, loss, label=label)
        a2.plot(x, grad, label=label)
    a1.set_title(title or f"{name}")
    a1.set_ylabel("loss")
    a2.set_title("gradient d loss / d x")
    for a in (a1, a2):
        a.set_xlabel(probe.xlabel)
    a1.legend()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(fig, out.parent, out.name)
    return out


# --------------------------------------------------------------------------------------------------
# Family charts: every loss of a family at its defaults, once, in the family's section


def _pair(plt, width: float = 8.4):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(width, 3.2))
    return fig, a1, a2


def regression_curves(out: Path, mode: str) -> StepResult:
    names = ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss")
    require(*names)
    labels = ("L1", "MSE", "Smooth L1 (beta=1)", "Huber (delta=1)")
    plt = pyplot()
    fig, a1, a2 = _pair(plt)
    for name, label in zip(names, labels):
        x, loss, grad = loss_curve(name)
        ls = (0, (4, 3)) if name == "smooth_l1_loss" else "-"  # dashed: it lies on Huber at beta = delta = 1
        lw = 2.2 if name == "smooth_l1_loss" else 1.4
        a1.plot(x, loss, label=label, ls=ls, lw=lw)
        a2.plot(x, grad, label=label, ls=ls, lw=lw)
    a1.set_ylim(0, 4.5)
    a1.set_title("loss against the error (defaults)")
    a2.set_title("gradient: bounded for L1, Smooth L1, Huber")
    a2.set_ylim(-3.2, 3.2)
    for a in (a1, a2):
        a.set_xlabel(_ERR.xlabel)
    a1.legend()
    f = save(fig, out, "chart_regression.png")
    return StepResult(
        "chart-regression",
        "Regression: the family compared",
        "chart",
        figures={"family": f},
        captions={
            "family": "L1, MSE, Smooth L1 and Huber at their defaults and their gradients against the error. "
            "At the defaults beta = delta = 1, Smooth L1 (dashed) and Huber are the same function; each one's "
            "own section shows it over its parameter."
        },
    )


def classification_curves(out: Path, mode: str) -> StepResult:
    require("binary_cross_entropy_with_logits", "cross_entropy", "sigmoid_focal_loss", "softmax_focal_loss")
    plt = pyplot()
    fig, a1, a2 = _pair(plt)
    for name, params, label, ls in (
        ("binary_cross_entropy_with_logits", {}, "BCE with logits", "-"),
        ("cross_entropy", {}, "cross-entropy (2 classes)", (0, (4, 3))),
        ("sigmoid_focal_loss", {"gamma": 2.0, "alpha": None}, "sigmoid focal (gamma=2)", "-"),
        ("softmax_focal_loss", {"gamma": 2.0}, "softmax focal (gamma=2, 2 classes)", (0, (4, 3))),
    ):
        x, loss, grad = loss_curve(name, params)
        a1.plot(x, loss, ls=ls, label=label, lw=2.0 if ls != "-" else 1.4)
        a2.plot(x, grad.abs(), ls=ls, label=label, lw=2.0 if ls != "-" else 1.4)
    a1.set_ylim(0, 5)
    a1.set_ylabel("loss")
    a1.set_title("loss against p_t")
    a2.set_yscale("log")
    a2.set_title("|gradient| w.r.t. p_t: focal fades out easy examples")
    for a in (a1, a2):
        a.set_xlabel(_PT.xlabel)
    a1.legend()
    f = save(fig, out, "chart_classification.png")
    figures = {"family": f}
    captions = {
        "family": "BCE and cross-entropy against focal loss (gamma = 2) along the probability of the true class. "
        "With two classes softmax cross-entropy equals BCE (dashed lines on the solid ones)."
    }
    try:
        ghm = ghm_curves(out, mode)
        figures.update(ghm.figures)
        captions.update(ghm.captions)
    except Unavailable:
        pass
    return StepResult(
        "chart-imbalance", "Classification: the family compared", "chart", figures=figures, captions=captions
    )


def ghm_curves(out: Path, mode: str) -> StepResult:
    """Gradient density of a typical detector-like batch and GHM-C's re-weighted gradient norms."""
    require("ghmc_loss", "binary_cross_entropy_with_logits")
    from .. import functional as LF

    g = torch.Generator().manual_seed(0)
    n_neg, n_pos = 20000, 200
    # logits of a half-trained detector: most negatives easy, a tail of hard ones and of outliers
    z_neg = torch.cat(
        [torch.randn(n_neg - 400, generator=g) * 1.2 - 5.0, torch.randn(400, generator=g) * 1.5 + 1.0]
    )
    z_pos = torch.randn(n_pos, generator=g) * 2.0 + 1.0
    z = torch.cat([z_neg, z_pos]).double().requires_grad_(True)
    y = torch.cat([torch.zeros(n_neg), torch.ones(n_pos)]).double()
    gnorm = (torch.sigmoid(z) - y).abs().detach()
    (g_ce,) = torch.autograd.grad(LF.binary_cross_entropy_with_logits(z, y, reduction="sum"), z)
    (g_ghm,) = torch.autograd.grad(LF.ghmc_loss(z, y, reduction="sum"), z)
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    idx = torch.bucketize(gnorm, edges[1:-1])
    count = torch.bincount(idx, minlength=10).double()
    ce_sum = torch.bincount(idx, weights=g_ce.abs(), minlength=10)
    ghm_sum = torch.bincount(idx, weights=g_ghm.abs(), minlength=10)
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    centres = (edges[:-1] + 0.05).numpy()
    a1.bar(centres, count.numpy(), width=0.09)
    a1.set_yscale("log")
    a1.set_xlabel("gradient norm g = |p - y|")
    a1.set_ylabel("examples")
    a1.set_title("gradient density: the easy examples dominate")
    a2.bar(centres - 0.022, (ce_sum / ce_sum.sum()).numpy(), width=0.044, label="CE")
    a2.bar(centres + 0.022, (ghm_sum / ghm_sum.sum()).numpy(), width=0.044, label="GHM-C")
    a2.set_xlabel("gradient norm g = |p - y|")
    a2.set_ylabel("share of the total gradient")
    a2.set_title("where the gradient goes: CE vs GHM-C")
    a2.legend()
    f = save(fig, out, "chart_ghm.png")
    return StepResult(
        "chart-ghm",
        "GHM-C gradient density",
        "chart",
        figures={"ghm": f},
        captions={
            "ghm": f"A detector-like batch ({n_neg} negatives, {n_pos} positives): "
            "examples per gradient-norm bin, "
            "and each bin's share of the summed |gradient| under CE and under GHM-C (10 bins) "
            "(Li, Liu, Wang 2019, Figures 1-2)."
        },
        metrics={
            "bin_counts": count.tolist(),
            "ce_share": (ce_sum / ce_sum.sum()).tolist(),
            "ghm_share": (ghm_sum / ghm_sum.sum()).tolist(),
        },
    )


BOX_LOSSES = ("iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss")
BOX_LABELS = ("IoU", "GIoU", "DIoU", "CIoU")


def box_curves(out: Path, mode: str) -> StepResult:
    require(*BOX_LOSSES)
    from .. import functional as LF

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.2))
    for name, label in zip(BOX_LOSSES, BOX_LABELS):
        x, loss, _ = loss_curve(name)
        axes[0].plot(x, loss, label=label)
    axes[0].axvspan(-5, -2, color="0.9", zorder=0)
    axes[0].axvspan(2, 5, color="0.9", zorder=0)
    axes[0].set_xlabel("horizontal offset (shaded: no overlap)")
    axes[0].set_title("2x1 box sliding past its target")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    # scale: a box with the target's centre, scaled by k (k > 1 encloses the target)
    k = torch.logspace(-1, 1, 301, dtype=torch.float64)
    t = torch.tensor(TARGET_BOX, dtype=torch.float64)
    c = torch.tensor([1.0, 0.5, 1.0, 0.5], dtype=torch.float64)
    pred = c + (t - c) * k[:, None]
    for name, label in zip(BOX_LOSSES, BOX_LABELS):
        axes[1].plot(k, getattr(LF, name)(pred, t.expand_as(pred), reduction="none"), label=label)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("scale of the prediction (same centre; > 1 encloses the target)")
    axes[1].set_title("same centre, other size")
    # enclosing: a big box containing the target, target placed at different positions inside it
    s = torch.linspace(0.0, 4.0, 201, dtype=torch.float64)
    big = torch.tensor([[0.0, 0.0, 6.0, 3.0]], dtype=torch.float64).expand(len(s), 4)
    inner = torch.stack([s, torch.full_like(s, 1.0), s + 2.0, torch.full_like(s, 2.0)], 1)
    for name, label in zip(BOX_LOSSES, BOX_LABELS):
        axes[2].plot(s, getattr(LF, name)(big, inner, reduction="none"), label=label)
    axes[2].set_xlabel("position of the 2x1 target inside a 6x3 prediction")
    axes[2].set_title("prediction encloses the target")
    f = save(fig, out, "chart_boxes.png")
    return StepResult(
        "chart-boxes",
        "Box regression: the family compared",
        "chart",
        figures={"family": f},
        captions={
            "family": "IoU, GIoU, DIoU and CIoU losses: sliding past the target (IoU is flat once boxes stop "
            "overlapping), scaling around its centre, and enclosing it (GIoU reduces to IoU there; DIoU/CIoU "
            "still see the centre distance)."
        },
    )


def margin_curves(out: Path, mode: str) -> StepResult:
    """Target logit against theta, recovered from each loss: with one other class at logit 0 and scale 1,
    loss = softplus(-f), so f = -log(expm1(loss))."""
    curves = [
        ("normface_loss", {"scale": 1.0}, "softmax: cos(theta)"),
        ("sphereface_loss", {"scale": 1.0, "margin": 4, "lambda_": 5.0}, "SphereFace (m=4, lambda=5)"),
        ("sphereface_loss", {"scale": 1.0, "margin": 4, "lambda_": 0.0}, "SphereFace (m=4, lambda=0)"),
        ("cosface_loss", {"scale": 1.0, "margin": 0.35}, "CosFace (m=0.35)"),
        ("arcface_loss", {"scale": 1.0, "margin": 0.5, "fallback": "linear"}, "ArcFace (m=0.5, fallback)"),
        ("arcface_loss", {"scale": 1.0, "margin": 0.5, "fallback": "none"}, "ArcFace (m=0.5, no fallback)"),
        ("combined_margin_loss", {"scale": 1.0, "m1": 1.0, "m2": 0.3, "m3": 0.2}, "combined (1, 0.3, 0.2)"),
        (
            "combined_margin_loss",
            {"scale": 1.0, "m1": 0.9, "m2": 0.4, "m3": 0.15},
            "combined (0.9, 0.4, 0.15)",
        ),
    ]
    require(*{c[0] for c in curves})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    values = {}
    for name, params, label in curves:
        x, loss, _ = loss_curve(name, params)
        f = -torch.log(torch.expm1(loss))
        style = "--" if "no fallback" in label or "lambda=0" in label or "0.9," in label else "-"
        ax.plot(torch.rad2deg(x), f, style, label=label)
        values[label] = f[:: len(f) // 8].tolist()
    ax.set_xlabel("theta (degrees)")
    ax.set_ylabel("target logit (scale 1)")
    ax.set_xticks(range(0, 181, 30))
    ax.set_ylim(-3.5, 1.1)
    ax.legend(ncol=2)
    ax.set_title("target logit against the angle to the class centre")
    fname = save(fig, out, "chart_margin.png")
    figures = {"family": fname}
    captions = {
        "family": "Target logit against theta for softmax, SphereFace, CosFace, ArcFace (with and without its "
        "fallback past theta + m > pi) and combined margins (ArcFace paper, Figure 4)."
    }
    metric = [
        ("center_loss", {}, "center: 1/2 d^2 to the class centre"),
        ("contrastive_loss", {}, "contrastive, different pair (m=1)"),
        ("triplet_margin_loss", {}, "triplet, d(a,p) = 1 (defaults)"),
    ]
    available = [m for m in metric if _has(m[0])]
    if available:
        fig, a1, a2 = _pair(plt)
        for name, params, label in available:
            x, loss, grad = loss_curve(name, params)
            a1.plot(x, loss, label=label)
            a2.plot(x, grad, label=label)
        a1.set_xlabel("distance (see each loss's section for its probe)")
        a2.set_xlabel("distance")
        a1.set_title("metric losses against a distance (defaults)")
        a2.set_title("gradient")
        a1.legend()
        figures["metric"] = save(fig, out, "chart_metric.png")
        captions["metric"] = (
            "Center loss against the distance to the class centre, contrastive loss against the distance of a "
            "different-identity pair, triplet loss against the anchor-negative distance (anchor-positive 1)."
        )
    return StepResult(
        "chart-faces",
        "Faces and metric learning: the family compared",
        "chart",
        figures=figures,
        captions=captions,
        metrics={"target_logit": values},
    )


CONTRASTIVE = (
    ("nt_xent_loss", "NT-Xent", lambda t: {"temperature": t}),
    ("supcon_loss", "SupCon (base temperature = temperature)", lambda t: {"temperature": t, "base_temperature": t}),
    ("clip_loss", "CLIP (logit_scale = 1 / temperature)", lambda t: {"logit_scale": 1.0 / t}),
    ("siglip_loss", "SigLIP (logit_scale = 1 / temperature, bias 0)", lambda t: {"logit_scale": 1.0 / t, "logit_bias": 0.0}),
)  # fmt: skip
CONTRASTIVE_ANGLES = (30.0, 120.0)  # degrees between the two views of sample 0


def contrastive_curves(out: Path, mode: str) -> StepResult:
    """The contrastive losses against the temperature, on the batch of their own charts (two samples,
    two views each: sample 0's views theta apart, sample 1 at 90 degrees): the loss at two angles, and
    its gradient with respect to the angle, which a low temperature sharpens."""
    require(*(c[0] for c in CONTRASTIVE))
    from .. import functional as LF

    temps = torch.logspace(math.log10(0.02), math.log10(2.0), 61, dtype=torch.float64)
    plt = pyplot()
    fig, a1, a2 = _pair(plt, 10.0)
    values: dict[str, dict[str, list[float]]] = {}
    for i, (name, label, params) in enumerate(CONTRASTIVE):
        probe = _two_view_angle(name in ("clip_loss", "siglip_loss"))
        fn = getattr(LF, name)
        for j, deg in enumerate(CONTRASTIVE_ANGLES):
            loss, grad = [], []
            for t in temps.tolist():
                theta = torch.tensor([math.radians(deg)], dtype=torch.float64, requires_grad=True)
                v = probe(fn, theta, params(t))
                (g,) = torch.autograd.grad(v.sum(), theta)
                loss.append(float(v.detach()))
                grad.append(float(g))
            ls = "-" if j == 0 else "--"
            lw = 3.0 if i == 0 else 1.4  # NT-Xent lies under SupCon on this batch: drawn wide
            kw = {"color": PALETTE[i % len(PALETTE)], "lw": lw}
            a1.plot(temps, loss, ls, label=f"{label}, {deg:g} deg" if j == 0 else None, **kw)
            if j == 0:
                a2.plot(temps, grad, ls, label=label, **kw)
            values[f"{name} {deg:g}"] = {"loss": loss[::10], "grad": grad[::10]}
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("temperature")
    a1.set_yscale("log")
    a1.set_title(
        f"loss: views {CONTRASTIVE_ANGLES[0]:g} deg apart (solid), {CONTRASTIVE_ANGLES[1]:g} (dashed)"
    )
    a2.set_title(f"d loss / d theta at {CONTRASTIVE_ANGLES[0]:g} deg: the pull between the views")
    a1.legend(fontsize=7)
    f = save(fig, out, "chart_contrastive.png")
    return StepResult(
        "chart-contrastive",
        "Contrastive representation learning: the family compared",
        "chart",
        figures={"family": f},
        captions={
            "family": "The four contrastive losses against the temperature (CLIP and SigLIP take logit_scale = "
            "1 / temperature; SigLIP with bias 0) on one batch: two samples seen twice, sample 0's two views "
            f"{CONTRASTIVE_ANGLES[0]:g} (solid) or {CONTRASTIVE_ANGLES[1]:g} degrees (dashed) apart, sample 1's "
            "views together at 90 degrees. Right: the gradient with respect to the angle between sample 0's "
            "views. NT-Xent (wide) and SupCon coincide here: each sample's one positive is its other view, as "
            "SupCon reduces to NT-Xent when labels pair only the views. A low temperature concentrates the softmax "
            "losses on hard cases: the loss of views far apart (dashed) grows as 1 / temperature, that of views "
            "already close (solid) and its pull vanish, while at a high temperature every pair looks alike; "
            "SigLIP with bias 0 keeps pushing its negatives apart at any temperature. Each loss's own section "
            "shows it against the angle at several temperatures."
        },
        metrics={"temperature": temps[::10].tolist(), "curves": values},
    )


# --------------------------------------------------------------------------------------------------
# Each loss over its own parameters


@dataclass(frozen=True)
class Own:
    """One chart of one loss: ``param`` overlaid at ``values`` (each a value, or a dict of parameters),
    ``fixed`` held; ``kind`` picks the drawing: ``"curve"`` (loss and gradient along the loss's probe),
    ``"margin"`` (target logit recovered at scale 1, and the gradient at scale 16), ``"targets"`` (both
    targets: positives solid, negatives dashed), ``"box"`` (offset and scale), ``"box_tiny"`` (a box
    whose area is near eps), ``"ghm_bins"``, ``"ghm_momentum"``, ``"mining"``."""

    param: str | None
    values: tuple = ()
    fixed: dict = field(default_factory=dict)
    kind: str = "curve"
    note: str = ""


_NO_PARAMS = (Own(None, note="no parameters: its curve at a glance"),)
_TINY = "a 0.02 x 0.01 box, area 2e-4: eps only matters near the areas"
OWN: dict[str, tuple[Own, ...]] = {
    "l1_loss": _NO_PARAMS,
    "mse_loss": _NO_PARAMS,
    "smooth_l1_loss": (Own("beta", (0.1, 0.5, 1.0, 2.0), note="Smooth L1 = Huber(delta=beta) / beta"),),
    "huber_loss": (
        Own("delta", (0.5, 1.0, 1.345, 2.0), note="1.345: 95% efficiency at the normal (Huber 1964)"),
    ),
    "binary_cross_entropy_with_logits": (Own("pos_weight", (None, 3.0, 10.0), kind="targets"),),
    "cross_entropy": (
        Own("label_smoothing", (0.0, 0.1, 0.3), note="smoothing moves the minimum below p_t = 1"),
    ),
    "sigmoid_focal_loss": (
        Own("gamma", (0.0, 0.5, 1.0, 2.0, 5.0), {"alpha": None}, note="gamma = 0 is BCE"),
        Own("alpha", (None, 0.25, 0.75), {"gamma": 2.0}, kind="targets"),
    ),
    "softmax_focal_loss": (Own("gamma", (0.0, 0.5, 1.0, 2.0, 5.0), note="gamma = 0 is cross-entropy"),),
    "ghmc_loss": (
        Own("bins", (5, 10, 30), kind="ghm_bins"),
        Own("momentum", (0.0, 0.5, 0.75, 0.9), kind="ghm_momentum"),
    ),
    "ghmr_loss": (
        Own("mu", (0.002, 0.02, 0.2), {"bins": 1}, note="bins = 1: the ASL1 loss itself, no re-weighting"),
        Own("bins", (5, 10, 30), kind="ghm_bins"),
    ),
    "iou_loss": (
        Own("mode", ("linear", "log"), kind="box"),
        Own("eps", (1e-7, 1e-4, 1e-3), kind="box_tiny", note=_TINY),
    ),
    "generalized_box_iou_loss": (Own("eps", (1e-7, 1e-4, 1e-3), kind="box_tiny", note=_TINY),),
    "distance_box_iou_loss": (Own("eps", (1e-7, 1e-4, 1e-3), kind="box_tiny", note=_TINY),),
    "complete_box_iou_loss": (
        Own("gated", (False, True), kind="box"),
        Own("eps", (1e-7, 1e-4, 1e-3), kind="box_tiny", note=_TINY),
    ),
    "normface_loss": (Own("scale", (4.0, 16.0, 64.0), note="the other class at 90 degrees"),),
    "l2_softmax_loss": (Own("alpha", (1.0, 4.0, 16.0), note="alpha: the fixed feature norm"),),
    "cosface_loss": (Own("margin", (0.1, 0.2, 0.35, 0.5), kind="margin"),),
    "am_softmax_loss": (Own("margin", (0.1, 0.2, 0.35, 0.5), kind="margin"),),
    "arcface_loss": (
        Own("margin", (0.1, 0.3, 0.5, 0.7), kind="margin"),
        Own("fallback", ("linear", "none"), {"margin": 0.5}, kind="margin"),
    ),
    "combined_margin_loss": (
        Own(
            "m1, m2, m3",
            (
                {"m1": 1.0, "m2": 0.0, "m3": 0.0},
                {"m1": 1.0, "m2": 0.5, "m3": 0.0},
                {"m1": 1.0, "m2": 0.0, "m3": 0.35},
                {"m1": 1.0, "m2": 0.3, "m3": 0.2},
                {"m1": 0.9, "m2": 0.4, "m3": 0.15},
            ),
            kind="margin",
        ),
    ),
    "subcenter_arcface_loss": (
        Own(
            "margin",
            (0.1, 0.3, 0.5),
            {"subcenters": None},
            kind="margin",
            note="2 sub-centres, 30 degrees apart",
        ),
    ),
    "margin_softmax_loss": (Own("scale", (4.0, 16.0, 64.0), kind="fused"),),
    "sphereface_loss": (
        Own("margin", (1, 2, 3, 4), {"lambda_": 0.0}, kind="margin"),
        Own(
            "lambda_",
            (0.0, 5.0, 1000.0),
            {"margin": 4},
            kind="margin",
            note="lambda anneals from 1000 to 5 in training",
        ),
    ),
    "large_margin_softmax_loss": (Own("margin", (1, 2, 3, 4), note="unit feature and class weight"),),
    "center_loss": _NO_PARAMS,
    "contrastive_loss": (Own("margin", (0.5, 1.0, 2.0)),),
    "batch_contrastive_loss": (Own("margin", (0.5, 1.0, 2.0)),),
    "triplet_margin_loss": (Own("margin", (0.2, 0.5, 1.0)),),
    "facenet_triplet_loss": (Own("margin", (0.1, 0.2, 0.5)),),
    "batch_triplet_loss": (Own("mining", ("batch_hard", "semi_hard", "batch_all"), kind="mining"),),
    "linear_cross_entropy": (
        Own("softcap", (None, 2.0, 5.0), note="logits capped at c tanh(z / c)"),
        Own("z_loss", (0.0, 0.01, 0.1), note="PaLM's z-loss pulls log Z toward 0"),
    ),
    "nt_xent_loss": (Own("temperature", (0.05, 0.1, 0.5), note="two samples, two views each"),),
    "supcon_loss": (Own("temperature", (0.05, 0.1, 0.5), note="two samples, two views each"),),
    "clip_loss": (Own("logit_scale", (1.0, 10.0, 100.0), note="two image-text pairs"),),
    "siglip_loss": (
        Own(
            "logit_scale",
            (1.0, 10.0, 100.0),
            {"logit_bias": -10.0},
            note="two pairs; bias -10 as SigLIP starts",
        ),
    ),
}


def _has(name: str) -> bool:
    from .. import functional

    return hasattr(functional, name)


def _variants(spec: Own) -> list[tuple[str, dict]]:
    if spec.param is None:
        return [("defaults", dict(spec.fixed))]
    out = []
    for v in spec.values:
        params = dict(v) if isinstance(v, dict) else {spec.param: v}
        label = ", ".join(f"{k}={p:g}" if isinstance(p, float) else f"{k}={p}" for k, p in params.items())
        out.append((label, {**spec.fixed, **params}))
    return out


def _draw_curve(ax1, ax2, name: str, spec: Own) -> None:
    for label, params in _variants(spec):
        x, loss, grad = loss_curve(name, params, n=201)
        ax1.plot(x, loss, label=label)
        ax2.plot(x, grad, label=label)
    ax1.set_xlabel(PROBES[name].xlabel)
    ax2.set_xlabel(PROBES[name].xlabel)
    ax1.set_title("loss")
    ax2.set_title("gradient d loss / d x")


def _draw_targets(ax1, ax2, name: str, spec: Own) -> None:
    """Positives (target 1, solid) and negatives (target 0 at the mirrored logit, dashed) along p_t."""
    from .. import functional as LF

    fn = getattr(LF, name)
    for i, (label, params) in enumerate(_variants(spec)):
        colour = PALETTE[i % len(PALETTE)]
        p = {
            k: (torch.tensor(v, dtype=torch.float64) if k in TENSOR_PARAMS and v is not None else v)
            for k, v in params.items()
        }
        for target, ls in ((1.0, "-"), (0.0, "--")):
            x = _PT.grid(401).requires_grad_(True)
            z = torch.log(x) - torch.log1p(-x)
            z = z if target == 1.0 else -z  # p_t = p for positives, 1 - p for negatives
            loss = fn(z, torch.full_like(z, target), reduction="none", **p)
            (grad,) = torch.autograd.grad(loss.sum(), x)
            lab = f"{label} ({'positive' if target else 'negative'})"
            ax1.plot(x.detach(), loss.detach(), ls=ls, color=colour, label=lab)
            ax2.plot(x.detach(), grad, ls=ls, color=colour)
    ax1.set_ylim(0, 5)
    for a in (ax1, ax2):
        a.set_xlabel(_PT.xlabel)
    ax1.set_title("loss (positives solid, negatives dashed)")
    ax2.set_title("gradient d loss / d p_t")
    ax2.set_ylim(-20, 1)


def _draw_margin(ax1, ax2, name: str, spec: Own) -> None:
    """Target logit at scale 1 (one other class at 90 degrees: loss = softplus(-f)) and the gradient at s=16."""
    for label, params in _variants(spec):
        p1 = {**params, "scale": 1.0}
        x, loss, _ = loss_curve(name, p1, n=201)
        ax1.plot(torch.rad2deg(x), -torch.log(torch.expm1(loss)), label=label)
        x, _l, grad = loss_curve(name, {**params, "scale": 16.0}, n=201)
        ax2.plot(torch.rad2deg(x), grad, label=label)
    ax1.set_ylim(-3.5, 1.1)
    ax1.set_title("target logit (scale 1)")
    ax2.set_title("gradient d loss / d theta at scale 16")
    for a in (ax1, ax2):
        a.set_xlabel("theta (degrees)")
        a.set_xticks(range(0, 181, 30))


def _draw_fused(ax1, ax2, name: str, spec: Own) -> None:
    from .. import functional as LF

    targets = [
        ("ArcFace m=0.5", lambda c: LF.arcface_target_logit(c, margin=0.5)),
        ("CosFace m=0.35", lambda c: LF.cosface_target_logit(c, margin=0.35)),
    ]
    for i, (tl_label, tl) in enumerate(targets):
        for j, s in enumerate(spec.values):
            x, loss, grad = loss_curve(name, {"target_logit": tl, "scale": s})
            ls = ("-", "--", ":")[j % 3]
            ax1.plot(torch.rad2deg(x), loss, ls=ls, color=PALETTE[i], label=f"{tl_label}, scale={s:g}")
            ax2.plot(torch.rad2deg(x), grad, ls=ls, color=PALETTE[i])
    ax1.set_title("loss (any target logit; the engine is chunked)")
    ax2.set_title("gradient d loss / d theta")
    ax1.set_yscale("symlog")
    for a in (ax1, ax2):
        a.set_xlabel("theta (degrees)")


def _box_inputs(k_or_offset: Tensor, *, scale: bool, size: float = 1.0) -> tuple[Tensor, Tensor]:
    t = torch.tensor(TARGET_BOX, dtype=torch.float64) * size
    if scale:
        c = torch.tensor([1.0, 0.5, 1.0, 0.5], dtype=torch.float64) * size
        return c + (t - c) * k_or_offset[:, None], t.expand(len(k_or_offset), 4)
    d = k_or_offset * size
    shift = torch.stack([d, torch.zeros_like(d), d, torch.zeros_like(d)], 1)
    return t + shift, t.expand(len(d), 4)


def _draw_box(ax1, ax2, name: str, spec: Own, *, size: float = 1.0) -> None:
    from .. import functional as LF

    fn = getattr(LF, name)
    for label, params in _variants(spec):
        x = torch.linspace(-5.0, 5.0, 401, dtype=torch.float64)
        pred, t = _box_inputs(x, scale=False, size=size)
        ax1.plot(x, fn(pred, t, reduction="none", **params), label=label)
        k = torch.logspace(-1, 1, 301, dtype=torch.float64)
        pred, t = _box_inputs(k, scale=True, size=size)
        ax2.plot(k, fn(pred, t, reduction="none", **params), label=label)
    ax1.set_xlabel("horizontal offset, in units of the box height (box 2 x 1)")
    ax1.set_title("sliding past the target")
    ax2.set_xscale("log")
    ax2.set_xlabel("scale of the prediction (same centre)")
    ax2.set_title("same centre, other size")


def _detector_batch(g: torch.Generator, shift: float = 0.0) -> tuple[Tensor, Tensor]:
    n_neg, n_pos = 20000, 200
    z_neg = torch.cat(
        [torch.randn(n_neg - 400, generator=g) * 1.2 - 5.0 + shift, torch.randn(400, generator=g) * 1.5 + 1.0]
    )
    z_pos = torch.randn(n_pos, generator=g) * 2.0 + 1.0
    return torch.cat([z_neg, z_pos]).double(), torch.cat([torch.zeros(n_neg), torch.ones(n_pos)]).double()


def _draw_ghm_bins(ax1, ax2, name: str, spec: Own) -> None:
    from .. import functional as LF

    g = torch.Generator().manual_seed(0)
    z, y = _detector_batch(g)
    stats_fn = LF.ghmc_statistics if name == "ghmc_loss" else LF.ghmr_statistics
    fn = getattr(LF, name)
    inp, tgt = (
        (z, y)
        if name == "ghmc_loss"
        else (
            torch.randn(len(z), generator=g).double() * z.abs().sqrt() * 0.1,
            torch.zeros(len(z), dtype=torch.float64),
        )
    )
    for b in spec.values:
        st = stats_fn(inp, tgt, bins=b)
        edges = st.edges.double()
        centres = (edges[:-1] + edges[1:]) / 2
        ax1.step(centres, st.bin_weights, where="mid", label=f"bins={b}")
        x = inp.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x, tgt, bins=b, reduction="sum"), x)
        order = torch.argsort(st.gradient_norm)
        ax2.plot(st.gradient_norm[order], grad.abs()[order], label=f"bins={b}", lw=1)
    ax1.set_yscale("log")
    ax1.set_xlabel("gradient norm g (bin centres)")
    ax1.set_title("harmonizing weight per bin (1 / density)")
    ax2.set_yscale("log")
    ax2.set_xlabel("gradient norm g")
    ax2.set_title("|gradient| each example receives")


def _draw_ghm_momentum(ax1, ax2, name: str, spec: Own) -> None:
    """Ten batches of a half-trained detector, then ten whose negatives are harder: the weight GHM-C gives
    the easiest bin follows the change at once without momentum, and lags with it."""
    from .. import functional as LF

    batches = []
    for t in range(20):
        g = torch.Generator().manual_seed(t)
        batches.append(_detector_batch(g, shift=0.0 if t < 10 else 3.0))
    for m in spec.values:
        counts = torch.zeros(10, dtype=torch.float64)
        w_easy, loss_t = [], []
        for z, y in batches:
            st = LF.ghmc_statistics(z, y, momentum=m, running_counts=counts)
            w_easy.append(float(st.bin_weights[0]))
            loss_t.append(float(LF.ghmc_loss(z, y, momentum=m, running_counts=counts)))  # updates counts once
        ax1.plot(range(1, 21), w_easy, marker=".", label=f"momentum={m:g}")
        ax2.plot(range(1, 21), loss_t, marker=".", label=f"momentum={m:g}")
    for a in (ax1, ax2):
        a.axvline(10.5, color="0.6", ls=":", lw=1)
        a.set_xlabel("batch (negatives harder from batch 11)")
    ax1.set_yscale("log")
    ax1.set_title("weight of the easiest bin (g < 0.1)")
    ax2.set_title("GHM-C loss of the batch")


def _draw_mining(ax1, ax2, name: str, spec: Own) -> None:
    from .. import functional as LF

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    emb = torch.nn.functional.normalize(
        torch.randn(8, 16, generator=g, dtype=torch.float64)[labels] * 0.6
        + torch.randn(32, 16, generator=g, dtype=torch.float64) * 0.5,
        dim=1,
    )
    margins = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)
    for mining in spec.values:
        losses, active = [], []
        for m in margins.tolist():
            loss, st = LF.batch_triplet_loss(emb, labels, margin=m, mining=mining, return_stats=True)
            losses.append(float(loss))
            active.append(float(st.active_fraction))
        ax1.plot(margins, losses, marker=".", label=f"mining={mining}")
        ax2.plot(margins, active, marker=".", label=f"mining={mining}")
    for a in (ax1, ax2):
        a.set_xlabel("margin")
    ax1.set_title("loss of one batch (8 identities x 4)")
    ax2.set_title("share of mined triplets that are active")


_DRAW = {
    "curve": _draw_curve,
    "targets": _draw_targets,
    "margin": _draw_margin,
    "fused": _draw_fused,
    "box": _draw_box,
    "box_tiny": lambda a1, a2, n, s: _draw_box(a1, a2, n, s, size=0.01),
    "ghm_bins": _draw_ghm_bins,
    "ghm_momentum": _draw_ghm_momentum,
    "mining": _draw_mining,
}


def own_chart(name: str, spec: Own, out: Path, fname: str) -> str:
    """Draw one :class:`Own` chart of ``name`` into ``out/fname``; return the file name."""
    plt = pyplot()
    fig, a1, a2 = _pair(plt)
    _DRAW[spec.kind](a1, a2, name, spec)
    title = f"{name}" + (f" over {spec.param}" if spec.param else "")
    fig.suptitle(title + (f" ({spec.note})" if spec.note else ""), fontsize=9)
    handles = a1.get_legend_handles_labels()[0] or a2.get_legend_handles_labels()[0]
    if handles:
        (a1 if a1.get_legend_handles_labels()[0] else a2).legend(fontsize=7)
    return save(fig, out, fname)


def parameter_charts(out: Path, mode: str, names: tuple[str, ...], *, key: str) -> StepResult:
    """Every chart of :data:`OWN` for the losses ``names`` that this build has; one caption each."""
    figures, captions, per_loss, missing = {}, {}, {}, []
    for name in names:
        if not _has(name):
            missing.append(name)
            continue
        for i, spec in enumerate(OWN.get(name, ())):
            role = f"{name}:{i}"
            figures[role] = own_chart(name, spec, out, f"own_{name}_{i}.png")
            what = f"{spec.param} in {tuple(v for v in spec.values)}" if spec.param else "its defaults"
            kept = ", ".join(f"{k}={v}" for k, v in spec.fixed.items())
            captions[role] = f"{name} over {what}{f' ({kept})' if kept else ''}" + (
                f": {spec.note}." if spec.note else "."
            )
            per_loss.setdefault(name, []).append(role)
    note = f"not in this build: {', '.join(missing)}" if missing else ""
    return StepResult(
        key,
        "Each loss over its own parameters",
        "parameters",
        note=note,
        figures=figures,
        captions=captions,
        per_loss=per_loss,
    )
