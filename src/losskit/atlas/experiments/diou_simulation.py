"""The simulation experiment of the DIoU paper, built on losskit's box losses and autograd.

Zheng et al. (AAAI 2020, section "Simulation Experiment") regress anchor boxes toward targets by
gradient descent with each IoU-based loss and compare how fast the total regression error falls. The
set-up follows the authors' released simulation code:

- 7 target boxes of area 1 centred at (10, 10), aspect ratios (w:h) 1:4, 1:3, 1:2, 1:1, 2:1, 3:1, 4:1;
- 5,000 anchor centres drawn uniformly in the disc of radius 3 around (10, 10);
- at each centre, anchors of 7 areas {0.5, 0.67, 0.75, 1, 1.33, 1.5, 2} times the 7 aspect ratios;
- every (target, anchor) pair is one regression case: 7 x 7 x 7 x 5,000 = 1,715,000 cases;
- boxes are parameterised as B = (x, y, w, h) (centre and size), and each case takes 200 steps of
  ``B <- B - eta * (2 - IoU) * dL/dB`` with eta = 0.1 for t <= 160, 0.01 up to t = 180, 0.001 after;
- the error is E(t) = sum over all cases of |x - x_gt| + |y - y_gt| + |w - w_gt| + |h - h_gt|.

Everything is vectorised over all cases: one step is one call of the loss on ``(cases, 4)`` boxes and one
``torch.autograd.grad``. The paper's findings: the IoU loss barely improves (it cannot move anchors that
do not overlap their target), GIoU is slow and leaves large errors along the horizontal and vertical
axes through the target, DIoU and CIoU converge much faster to small errors everywhere, CIoU fastest.

Usage::

    from losskit.atlas.experiments import diou_simulation as sim
    result = sim.run_simulation()                # full: 1,715,000 cases, about a minute per loss on CPU
    quick = sim.run_simulation(quick=True)       # the first 200 anchor centres: 68,600 cases
    blocks = sim.run_simulation(quick=True, replicates=5)   # E(t) also per block of 40 centres
    print(sim.summary(result))                   # {"iou": {10: E(10), 40: ..., 200: ...}, ...}
    fig = sim.plot_simulation(result, "diou_simulation.png")   # needs matplotlib

    as_released = sim.run_simulation(gradient="paper")  # the authors' hand-derived gradients

Note:
    The centres are uniform in area (radius ``3 * sqrt(u)``, as in the released code). By default the
    steps follow the exact autograd gradients of losskit's losses. The authors' code uses hand-derived
    gradients that differ from those derivatives (:func:`paper_ascent` lists how); the paper's ranking
    of the losses (DIoU and CIoU far ahead of GIoU) appears with those gradients, not with the exact
    ones, and two of the differences decide it. ``python -m losskit.atlas.experiments.diou_simulation``
    prints both runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ... import functional as LF

__all__ = [
    "ANCHOR_AREAS",
    "ASPECT_RATIOS",
    "LOSSES",
    "PAPER_SLIPS",
    "QUICK_ANCHOR_POINTS",
    "REPORT_AT",
    "SimulationResult",
    "learning_rate",
    "make_cases",
    "paper_ascent",
    "plot_simulation",
    "run_simulation",
    "summary",
]

ASPECT_RATIOS: tuple[float, ...] = (1 / 4, 1 / 3, 1 / 2, 1.0, 2.0, 3.0, 4.0)  # w : h
ANCHOR_AREAS: tuple[float, ...] = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)
CENTRE: tuple[float, float] = (10.0, 10.0)
RADIUS = 3.0
QUICK_ANCHOR_POINTS = 200
REPORT_AT: tuple[int, ...] = (10, 40, 100, 160, 200)

LOSSES: dict[str, Callable[..., Tensor]] = {
    "iou": LF.iou_loss,
    "giou": LF.generalized_box_iou_loss,
    "diou": LF.distance_box_iou_loss,
    "ciou": LF.complete_box_iou_loss,
}


@dataclass
class SimulationResult:
    """What :func:`run_simulation` returns; every tensor is float64 on the CPU.

    Attributes:
        losses: the losses run, in order.
        iterations: the number of steps ``T``.
        errors: per loss, ``E(t)`` for ``t = 0 .. T``, shape ``(T + 1,)``.
        final_error_map: per loss, the final error summed over the 343 cases at each anchor centre,
            shape ``(n_anchor_points,)``, aligned with ``anchor_centres``.
        anchor_centres: the anchor centres, shape ``(n_anchor_points, 2)``.
        n_cases: the number of regression cases per loss.
        seconds: per loss, the wall-clock time of its run.
        replicate_errors: per loss, ``E(t)`` of each replicate (a contiguous block of anchor centres,
            an independent uniform draw), shape ``(T + 1, replicates)``; the columns sum to ``errors``.
    """

    losses: tuple[str, ...]
    iterations: int
    errors: dict[str, Tensor]
    final_error_map: dict[str, Tensor]
    anchor_centres: Tensor
    n_cases: int
    seconds: dict[str, float] = field(default_factory=dict)
    replicate_errors: dict[str, Tensor] = field(default_factory=dict)


def learning_rate(t: int) -> float:
    """The paper's step size at iteration ``t`` (1-based): 0.1 up to 160, 0.01 up to 180, then 0.001."""
    return 0.1 if t <= 160 else 0.01 if t <= 180 else 0.001


def make_cases(
    n_anchor_points: int = 5000, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor, Tensor]:
    """The regression cases: ``(anchors, targets, centres)``.

    ``anchors`` and ``targets`` are ``(n_anchor_points * 343, 4)`` in ``(x, y, w, h)`` (centre, size),
    ordered anchor centre-major, then target, then anchor area, then anchor ratio; ``centres`` is
    ``(n_anchor_points, 2)``. The centres are the first ``n_anchor_points`` of a fixed seeded draw of
    5,000 (or more), so smaller runs are subsets of the full one.
    """
    if isinstance(n_anchor_points, bool) or not isinstance(n_anchor_points, int) or n_anchor_points < 1:
        raise ValueError(f"make_cases: n_anchor_points must be an int >= 1; got {n_anchor_points!r}")
    gen = torch.Generator().manual_seed(seed)
    n_draw = max(n_anchor_points, 5000)
    u = torch.rand(n_draw, generator=gen, dtype=torch.float64)
    phi = torch.rand(n_draw, generator=gen, dtype=torch.float64) * (2 * math.pi)
    r = RADIUS * u.sqrt()  # uniform in area
    centres = torch.stack((CENTRE[0] + r * phi.cos(), CENTRE[1] + r * phi.sin()), dim=-1)[:n_anchor_points]
    ratios = torch.tensor(ASPECT_RATIOS, dtype=torch.float64)
    areas = torch.tensor(ANCHOR_AREAS, dtype=torch.float64)
    # w * h = area, w / h = ratio  ->  w = sqrt(area * ratio), h = sqrt(area / ratio)
    tw, th = ratios.sqrt(), (1 / ratios).sqrt()  # targets: area 1
    aw = (areas[:, None] * ratios[None, :]).sqrt().reshape(-1)  # (49,) area-major
    ah = (areas[:, None] / ratios[None, :]).sqrt().reshape(-1)
    n, k_t, k_a = n_anchor_points, len(ASPECT_RATIOS), aw.numel()
    anchors = torch.empty(n, k_t, k_a, 4, dtype=torch.float64)
    anchors[..., 0] = centres[:, None, None, 0]
    anchors[..., 1] = centres[:, None, None, 1]
    anchors[..., 2] = aw
    anchors[..., 3] = ah
    targets = torch.empty(n, k_t, k_a, 4, dtype=torch.float64)
    targets[..., 0], targets[..., 1] = CENTRE
    targets[..., 2] = tw[None, :, None]
    targets[..., 3] = th[None, :, None]
    return anchors.reshape(-1, 4).to(dtype), targets.reshape(-1, 4).to(dtype), centres


#: The ways the authors' released, hand-derived gradients differ from the gradient of the losses they
#: define (see :func:`paper_ascent`).
PAPER_SLIPS: tuple[str, ...] = (
    "wh_doubled",
    "diagonal_xy_sign",
    "diagonal_axes_mixed",
    "enclosing_width_sign",
    "aspect_no_denominator",
    "giou_unclamped_intersection",
    "inverted_edge_swap",
)


def paper_ascent(loss: str, boxes: Tensor, targets: Tensor, *, slips: Sequence[str] | None = None) -> Tensor:
    r"""The authors' update direction: their hand-derived :math:`-\partial L / \partial B`.

    Zheng et al. compute the gradients of their simulation by hand, in the form their darknet code
    uses, rather than by differentiating the losses. Written out, those formulas differ from the
    derivative of the losses the paper defines in these ways (the names are the entries of
    :data:`PAPER_SLIPS`):

    - ``wh_doubled``: the IoU part maps edge gradients to sizes as ``d/dw = d/dr - d/dl`` instead of
      ``(d/dr - d/dl) / 2``, so every loss takes steps twice as long in ``w`` and ``h``;
    - ``diagonal_xy_sign``: in DIoU/CIoU's :math:`\rho^2/c^2` term, the derivative of :math:`c^2`
      enters the ``x`` and ``y`` steps with the wrong sign (it is right for ``w`` and ``h``): where the
      exact gradient lets the centre drift outward because that widens the enclosing box, the code
      pulls it inward, toward the target;
    - ``diagonal_axes_mixed``: in DIoU/CIoU's :math:`\rho^2/c^2` term, the derivative of the enclosing
      box's width is also used for its height and vice versa, so :math:`\partial c^2/\partial x`
      becomes :math:`2(c_w + c_h)\,\partial c_w/\partial x` (and likewise for ``y``, ``w``, ``h``);
    - ``enclosing_width_sign``: where the prediction spans the target along an axis, the enclosing
      box's size along it is the prediction's, with derivative +1; the code uses -1, which turns
      the penalty's push to grow the box into a push to shrink it toward the target;
    - ``aspect_no_denominator``: CIoU's :math:`\partial v/\partial w` and :math:`\partial v/\partial h`
      drop the factor :math:`1/(w^2 + h^2)` (stated in the paper, to avoid large steps for small boxes);
    - ``giou_unclamped_intersection``: for disjoint boxes GIoU's union uses the signed, unclamped
      intersection and its derivative;
    - ``inverted_edge_swap``: for boxes with ``x2 < x1`` (or ``y2 < y1``) the IoU part's edge gradients
      are both replaced by the second edge's.

    With ``slips=()`` the function returns exactly ``-dL/dB`` of losskit's losses (with CIoU's
    :math:`\alpha` held constant), which the tests check against autograd; the defaults reproduce the
    released code. :func:`run_simulation` with ``gradient="paper"`` steps along this direction.

    Args:
        loss: ``'iou'``, ``'giou'``, ``'diou'`` or ``'ciou'``.
        boxes: predictions ``(N, 4)`` as ``(x, y, w, h)`` (centre, size).
        targets: targets ``(N, 4)`` as ``(x, y, w, h)``.
        slips: which of :data:`PAPER_SLIPS` to keep. Default ``None``: all of them, as released.

    Returns:
        The ascent direction ``(N, 4)`` in ``(x, y, w, h)``.

    Raises:
        ValueError: for an unknown loss or slip name.
    """
    fn = "paper_ascent"
    if loss not in LOSSES:
        raise ValueError(f"{fn}: loss must be one of {sorted(LOSSES)}; got {loss!r}")
    kept = set(PAPER_SLIPS if slips is None else slips)
    if not kept <= set(PAPER_SLIPS):
        raise ValueError(
            f"{fn}: slips must be taken from {list(PAPER_SLIPS)}; got {sorted(kept - set(PAPER_SLIPS))}"
        )
    x, y, w, h = boxes.unbind(-1)
    gx, gy, gw, gh = targets.unbind(-1)
    pl, pr, pt, pb = x - w / 2, x + w / 2, y - h / 2, y + h / 2
    ql, qr, qt, qb = gx - gw / 2, gx + gw / 2, gy - gh / 2, gy + gh / 2
    zero = torch.zeros_like(x)
    pw, ph = pr - pl, pb - pt

    # IoU and its derivative with respect to the edges (t, b, l, r) of the prediction
    iw = torch.minimum(pr, qr) - torch.maximum(pl, ql)  # signed: negative when disjoint
    ih = torch.minimum(pb, qb) - torch.maximum(pt, qt)
    overlap = (iw > 0) & (ih > 0)
    unclamped = loss == "giou" and "giou_unclamped_intersection" in kept
    inter = iw * ih if unclamped else torch.where(overlap, iw * ih, zero)
    union = pw * ph + (qb - qt) * (qr - ql) - inter
    d_inter = {
        "t": torch.where(pt > qt, -iw, zero),
        "b": torch.where(pb < qb, iw, zero),
        "l": torch.where(pl > ql, -ih, zero),
        "r": torch.where(pr < qr, ih, zero),
    }
    if not unclamped:
        d_inter = {e: torch.where(overlap, g, zero) for e, g in d_inter.items()}
    d_area = {"t": -pw, "b": pw, "l": -ph, "r": ph}
    d_union = {e: d_area[e] - d_inter[e] for e in d_inter}
    ok = overlap & (union > 0)
    d_iou = {
        e: torch.where(ok, (union * d_inter[e] - inter * d_union[e]) / union.square(), zero) for e in d_inter
    }
    if "inverted_edge_swap" in kept:
        d_iou["t"] = torch.where(pt < pb, d_iou["t"], d_iou["b"])
        d_iou["l"] = torch.where(pl < pr, d_iou["l"], d_iou["r"])
    iou = torch.where(ok, inter / union, zero)

    # the enclosing box
    cw = torch.maximum(pr, qr) - torch.minimum(pl, ql)
    ch = torch.maximum(pb, qb) - torch.minimum(pt, qt)
    if loss == "giou":
        area_c = cw * ch
        d_c = {
            "t": torch.where(pt < qt, -cw, zero),
            "b": torch.where(pb > qb, cw, zero),
            "l": torch.where(pl < ql, -ch, zero),
            "r": torch.where(pr > qr, ch, zero),
        }
        # GIoU = IoU - 1 + U / C
        d_uc = {e: (area_c * d_union[e] - union * d_c[e]) / area_c.square() for e in d_c}
        edge = {
            e: torch.where(overlap, d_iou[e] + torch.where(area_c > 0, d_uc[e], zero), d_uc[e]) for e in d_c
        }
    else:
        edge = d_iou
    half = 1.0 if "wh_doubled" in kept else 0.5
    ascent = torch.stack(
        (
            edge["l"] + edge["r"],
            edge["t"] + edge["b"],
            half * (edge["r"] - edge["l"]),
            half * (edge["b"] - edge["t"]),
        ),
        dim=-1,
    )
    if loss in ("iou", "giou"):
        return ascent

    # DIoU's penalty rho^2 / c^2: rho^2 = squared centre distance, c^2 = cw^2 + ch^2
    top, bottom = (pt < qt).to(x.dtype), (pb > qb).to(x.dtype)
    left, right = (pl < ql).to(x.dtype), (pr > qr).to(x.dtype)
    # derivatives of (cw, ch) with respect to (x, y, w, h)
    dcw = [right - left, zero, 0.5 * (right + left), zero]
    dch = [zero, bottom - top, zero, 0.5 * (bottom + top)]
    if "diagonal_axes_mixed" in kept:
        dcw = dch = [right - left, bottom - top, 0.5 * (right + left), 0.5 * (bottom + top)]
    if "enclosing_width_sign" in kept:
        dcw = [*dcw[:2], torch.where((left * right) > 0, -torch.ones_like(x), dcw[2]), dcw[3]]
        dch = [*dch[:3], torch.where((top * bottom) > 0, -torch.ones_like(x), dch[3])]
    diag2 = cw.square() + ch.square()
    rho2 = (x - gx).square() + (y - gy).square()
    d_diag2 = [2 * cw * a + 2 * ch * b for a, b in zip(dcw, dch)]
    xy_sign = -1.0 if "diagonal_xy_sign" in kept else 1.0
    penalty = torch.stack(
        (
            (2 * (gx - x) * diag2 + xy_sign * d_diag2[0] * rho2) / diag2.square(),
            (2 * (gy - y) * diag2 + xy_sign * d_diag2[1] * rho2) / diag2.square(),
            d_diag2[2] * rho2 / diag2.square(),
            d_diag2[3] * rho2 / diag2.square(),
        ),
        dim=-1,
    )
    ascent = ascent + penalty
    if loss == "diou":
        return ascent

    # CIoU's aspect term alpha * v, alpha held constant
    gap = torch.atan(gw / gh) - torch.atan(w / h)
    v = (4 / math.pi**2) * gap.square()
    alpha = v / (1 - iou + v + 1e-7)
    scale = 1.0 if "aspect_no_denominator" in kept else 1.0 / (w.square() + h.square())
    aspect = (
        torch.stack((zero, zero, h * scale, -w * scale), dim=-1) * ((8 / math.pi**2) * alpha * gap)[:, None]
    )
    return ascent + aspect


def run_simulation(
    losses: Sequence[str] = ("iou", "giou", "diou", "ciou"),
    n_anchor_points: int = 5000,
    iterations: int = 200,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    quick: bool = False,
    dtype: torch.dtype = torch.float32,
    gradient: str = "exact",
    slips: Sequence[str] | None = None,
    replicates: int = 1,
) -> SimulationResult:
    """Run the DIoU paper's simulation for each loss and return the error curves and maps.

    Args:
        losses: names from :data:`LOSSES` (``'iou'``, ``'giou'``, ``'diou'``, ``'ciou'``).
        n_anchor_points: anchor centres in the disc; each gives 343 cases. Default: 5,000 (the paper).
        iterations: gradient steps ``T``. Default: 200 (the paper).
        seed: seed of the anchor centres. Default: 0.
        device: where to run. Default: the CPU.
        progress: called as ``progress(loss, t, T)`` after every step, e.g. to drive a progress bar.
        quick: if ``True``, use the first :data:`QUICK_ANCHOR_POINTS` (200) centres instead of
            ``n_anchor_points``: 68,600 cases, the same curves in shape.
        dtype: the dtype of the boxes during the descent. Default: float32. Errors are summed in float64.
        gradient: ``'exact'`` (default): ``dL/dB`` by autograd through losskit's loss; ``'paper'``: the
            authors' hand-derived gradients of their released simulation code (:func:`paper_ascent`).
        slips: with ``gradient='paper'``, which of :data:`PAPER_SLIPS` to keep (default: all), to
            find out which of them change the outcome.
        replicates: split the anchor centres into this many contiguous blocks (each an independent
            uniform draw of centres) and record ``E(t)`` per block, for intervals over replicates.
            Default: 1.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: for an unknown loss name, gradient or slip, ``n_anchor_points`` or ``iterations``
            below 1, or ``replicates`` not between 1 and the number of anchor centres.
    """
    fn = "run_simulation"
    if gradient not in ("exact", "paper"):
        raise ValueError(f"{fn}: gradient must be 'exact' or 'paper'; got {gradient!r}")
    if slips is not None and gradient != "paper":
        raise ValueError(f"{fn}: slips apply only to gradient='paper'; got gradient={gradient!r}")
    unknown = [name for name in losses if name not in LOSSES]
    if unknown or not losses:
        raise ValueError(f"{fn}: losses must be a non-empty sequence of {sorted(LOSSES)}; got {list(losses)}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"{fn}: iterations must be an int >= 1; got {iterations!r}")
    if quick:
        n_anchor_points = QUICK_ANCHOR_POINTS
    device = torch.device(device) if device is not None else torch.device("cpu")
    anchors, targets, centres = make_cases(n_anchor_points, seed=seed, dtype=dtype)
    if (
        isinstance(replicates, bool)
        or not isinstance(replicates, int)
        or not 1 <= replicates <= n_anchor_points
    ):
        raise ValueError(
            f"{fn}: replicates must be an int in [1, {n_anchor_points}] (the anchor centres); "
            f"got {replicates!r}"
        )
    anchors, targets = anchors.to(device), targets.to(device)
    target_xyxy = LF.box_convert(targets, "cxcywh", "xyxy")
    errors: dict[str, Tensor] = {}
    maps: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    blocks: dict[str, Tensor] = {}
    per_centre = anchors.shape[0] // n_anchor_points
    # replicate r holds the anchor centres of block r (contiguous, as torch.tensor_split cuts them)
    block_of = torch.cat(
        [
            torch.full((len(c) * per_centre,), r, dtype=torch.long)
            for r, c in enumerate(torch.arange(n_anchor_points).tensor_split(replicates))
        ]
    ).to(device)

    def block_error(b: Tensor) -> Tensor:
        per_case = (b - targets).abs().sum(-1, dtype=torch.float64)
        return torch.zeros(replicates, dtype=torch.float64, device=device).index_add_(0, block_of, per_case)

    for name in losses:
        loss_fn = LOSSES[name]
        start = time.perf_counter()
        b = anchors.clone()
        curve = [block_error(b)]
        for t in range(1, iterations + 1):
            if gradient == "paper":
                with torch.no_grad():
                    pred = LF.box_convert(b, "cxcywh", "xyxy")
                    grad = -paper_ascent(name, b, targets, slips=slips)
            else:
                b.requires_grad_(True)
                pred = LF.box_convert(b, "cxcywh", "xyxy")
                (grad,) = torch.autograd.grad(loss_fn(pred, target_xyxy, reduction="sum"), b)
            with torch.no_grad():
                # 2 - IoU = 1 + (1 - IoU): the linear IoU loss is the cheapest way to get IoU.
                factor = 1.0 + LF.iou_loss(pred.detach(), target_xyxy, reduction="none")
                b = b.detach() - learning_rate(t) * factor[:, None] * grad
            curve.append(block_error(b))
            if progress is not None:
                progress(name, t, iterations)
        blocks[name] = torch.stack(curve).cpu()  # one transfer at the end, not one per step
        errors[name] = blocks[name].sum(1)
        per_case = (b - targets).abs().sum(-1, dtype=torch.float64)
        maps[name] = per_case.reshape(n_anchor_points, -1).sum(-1).cpu()
        seconds[name] = time.perf_counter() - start
    return SimulationResult(
        tuple(losses), iterations, errors, maps, centres, anchors.shape[0], seconds, blocks
    )


def summary(result: SimulationResult, at: Sequence[int] = REPORT_AT) -> dict[str, dict[int, float]]:
    """``E(t)`` per loss at the iterations ``at`` (those beyond the run are left out)."""
    return {
        name: {t: float(result.errors[name][t]) for t in at if t <= result.iterations}
        for name in result.losses
    }


def plot_simulation(result: SimulationResult, path: str | None = None):
    """Plot the error curves and the per-anchor-position final error maps; needs matplotlib.

    The first panel shows ``E(t)`` per loss (log scale); then one panel per loss colours each anchor
    centre by the final error summed over its 343 cases (one logarithmic colour scale for all maps).

    Args:
        result: what :func:`run_simulation` returned.
        path: if given, the figure is saved there (format from the extension).

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(result.losses)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * (n + 1), 4.0), squeeze=False)
    ax = axes[0, 0]
    for name in result.losses:
        ax.plot(range(result.iterations + 1), result.errors[name].numpy(), label=name.upper())
    ax.set_yscale("log")
    ax.set_xlabel("iteration t")
    ax.set_ylabel("total error E(t)")
    ax.set_title(f"{result.n_cases:,} regression cases")
    ax.legend()
    from matplotlib.colors import LogNorm

    # one logarithmic colour scale for all maps, so that they compare across losses
    vmax = max(float(m.max()) for m in result.final_error_map.values())
    vmin = max(min(float(m.min()) for m in result.final_error_map.values()), vmax * 1e-5, 1e-12)
    norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10))
    xy = result.anchor_centres.numpy()
    for ax, name in zip(axes[0, 1:], result.losses):
        values = result.final_error_map[name].clamp_min(vmin).numpy()
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=4, norm=norm, cmap="viridis")
        ax.set_aspect("equal")
        ax.set_title(f"{name.upper()}: final error")
    fig.colorbar(sc, ax=axes[0, 1:].tolist(), shrink=0.8, label="final error per anchor centre")
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    """Run the simulation and print E(t) as a markdown table per gradient.

    ``python -m losskit.atlas.experiments.diou_simulation [--quick] [--gradient exact|paper|both]
    [--plot DIR]``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m losskit.atlas.experiments.diou_simulation", description=main.__doc__
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"the first {QUICK_ANCHOR_POINTS} anchor centres only"
    )
    parser.add_argument("--gradient", choices=("exact", "paper", "both"), default="both")
    parser.add_argument(
        "--plot", metavar="DIR", default=None, help="save diou_simulation_<gradient>.png there"
    )
    args = parser.parse_args(argv)
    for gradient in ("exact", "paper") if args.gradient == "both" else (args.gradient,):
        result = run_simulation(quick=args.quick, gradient=gradient)
        at = (0, *REPORT_AT)
        print(f"\n{gradient} gradients, {result.n_cases:,} cases:\n")
        print("| loss | " + " | ".join(f"E({t})" for t in at) + " |")
        print("|---|" + "---|" * len(at))
        for name, values in summary(result, at).items():
            print(f"| {name.upper()} | " + " | ".join(f"{v:.3e}" for v in values.values()) + " |")
        if args.plot:
            Path(args.plot).mkdir(parents=True, exist_ok=True)
            plot_simulation(result, str(Path(args.plot) / f"diou_simulation_{gradient}.png"))


if __name__ == "__main__":
    main()
