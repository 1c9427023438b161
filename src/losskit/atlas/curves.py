"""Curves: each loss and its gradient along the one variable that matters for it.

A *probe* turns a 1-D grid ``x`` (an error, a probability ``p_t``, a box offset, an angle) into the
inputs of one loss, so that ``loss_curve(name, x, params)`` gives the per-point loss and its gradient
with respect to ``x`` (by autograd through losskit's own function). The atlas draws family charts
from probes; ``losskit plot LOSS`` draws one loss with several parameter values overlaid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from . import StepResult, require
from ._plotting import pyplot, save


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


def _triplet_negative(fn, x, params):
    a = torch.zeros(len(x), 2, dtype=x.dtype)
    p = torch.tensor([[0.0, 1.0]], dtype=x.dtype).expand(len(x), 2)  # positive at distance 1
    n = torch.stack([x, torch.zeros_like(x)], 1)
    return fn(a, p, n, reduction="none", **params)


def _lin(lo: float, hi: float) -> Callable[[int], Tensor]:
    return lambda n: torch.linspace(lo, hi, n, dtype=torch.float64)


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
    "center_loss": Probe("distance of the feature from its class centre", _lin(0.0, 3.0), _center_distance),
    "contrastive_loss": Probe(
        "distance between a different-identity pair", _lin(0.0, 2.0), _pair_distance(False)
    ),
    "triplet_margin_loss": Probe(
        "distance anchor-negative (anchor-positive distance is 1)", _lin(0.0, 2.5), _triplet_negative
    ),
}


def loss_curve(name: str, params: dict | None = None, n: int = 401) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, loss, dloss/dx)`` along the probe of loss ``name`` with keyword ``params``, in float64."""
    if name not in PROBES:
        raise KeyError(f"no curve for {name!r}; curves exist for: {', '.join(sorted(PROBES))}")
    require(name)
    from .. import functional as LF

    probe = PROBES[name]
    x = probe.grid(n).requires_grad_(True)
    loss = probe.call(getattr(LF, name), x, dict(params or {}))
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
# Family charts for the atlas


def regression_curves(out: Path, mode: str) -> StepResult:
    names = ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss")
    require(*names)
    labels = ("L1", "MSE", "Smooth L1 (beta=1)", "Huber (delta=1)")
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for name, label in zip(names, labels):
        x, loss, grad = loss_curve(name)
        a1.plot(x, loss, label=label)
        a2.plot(x, grad, label=label)
    a1.set_ylim(0, 4.5)
    a1.set_title("loss against the error")
    a2.set_title("gradient: bounded for L1, Smooth L1, Huber")
    a2.set_ylim(-3.2, 3.2)
    for a in (a1, a2):
        a.set_xlabel(_ERR.xlabel)
    a1.legend()
    f = save(fig, out, "curves_regression.png")
    figs = {"regression": f}
    caps = {"regression": "L1, MSE, Smooth L1 and Huber and their gradients against the error (defaults)."}
    for name, param, values in (
        ("huber_loss", "delta", (0.5, 1.0, 2.0)),
        ("smooth_l1_loss", "beta", (0.5, 1.0, 2.0)),
    ):
        fname = f"curves_{name}.png"
        plot_loss(name, [{param: v} for v in values], out / fname, title=f"{name}, {param} overlaid")
        figs[name] = fname
        caps[name] = f"{name} for {param} in {values}: Smooth L1 = Huber / beta."
    return StepResult("curves-regression", "Regression loss curves", "curves", figures=figs, captions=caps)


def focal_curves(out: Path, mode: str) -> StepResult:
    require("sigmoid_focal_loss")
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    ratios = {}
    for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
        x, loss, grad = loss_curve("sigmoid_focal_loss", {"gamma": gamma, "alpha": None})
        a1.plot(x, loss, label=f"gamma={gamma:g}")
        a2.plot(x, grad.abs(), label=f"gamma={gamma:g}")
        ratios[gamma] = float(loss[x.sub(0.9).abs().argmin()])
    a1.set_ylim(0, 5)
    a1.set_title("focal loss against p_t (alpha=None; gamma=0 is CE)")
    a1.set_ylabel("loss")
    a2.set_yscale("log")
    a2.set_title("|gradient| w.r.t. p_t: well-classified examples fade out")
    for a in (a1, a2):
        a.set_xlabel(_PT.xlabel)
    a1.legend()
    f = save(fig, out, "curves_focal.png")
    return StepResult(
        "curves-focal",
        "Focal loss curves",
        "curves",
        figures={"focal": f},
        captions={"focal": "Focal loss for gamma in {0, 0.5, 1, 2, 5} (Lin et al. 2017, Figure 1)."},
        metrics={"loss_at_pt_0.9": ratios},
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
    f = save(fig, out, "curves_ghm.png")
    return StepResult(
        "curves-ghm",
        "GHM-C gradient density",
        "curves",
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
    f = save(fig, out, "curves_boxes.png")
    return StepResult(
        "curves-boxes",
        "IoU-family loss landscapes",
        "curves",
        figures={"boxes": f},
        captions={
            "boxes": "IoU, GIoU, DIoU and CIoU losses: sliding past the target (IoU is flat once boxes stop "
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
    fname = save(fig, out, "curves_margin.png")
    return StepResult(
        "curves-margin",
        "Margin-softmax target logits",
        "curves",
        figures={"margin": fname},
        captions={
            "margin": "Target logit against theta for softmax, SphereFace, CosFace, ArcFace "
            "(with and without "
            "its fallback past theta + m > pi) and combined margins (ArcFace paper, Figure 4)."
        },
        metrics={"target_logit": values},
    )
