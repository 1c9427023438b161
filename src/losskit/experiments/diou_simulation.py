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

    from losskit.experiments import diou_simulation as sim
    result = sim.run_simulation()                # full: 1,715,000 cases, about a minute per loss on CPU
    quick = sim.run_simulation(quick=True)       # the first 200 anchor centres: 68,600 cases
    print(sim.summary(result))                   # {"iou": {10: E(10), 40: ..., 200: ...}, ...}
    fig = sim.plot_simulation(result, "diou_simulation.png")   # needs matplotlib

Note:
    The centres are uniform in area (radius ``3 * sqrt(u)``); the dIoU losses' gradients are the exact
    autograd gradients (the paper's own code drops the factor ``1 / (w^2 + h^2)`` from CIoU's aspect
    gradient, see :func:`losskit.functional.complete_box_iou_loss`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..functional import boxes as _boxes
from ..functional import iou as _iou

__all__ = [
    "ANCHOR_AREAS",
    "ASPECT_RATIOS",
    "LOSSES",
    "QUICK_ANCHOR_POINTS",
    "REPORT_AT",
    "SimulationResult",
    "learning_rate",
    "make_cases",
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
    "iou": _iou.iou_loss,
    "giou": _iou.generalized_box_iou_loss,
    "diou": _iou.distance_box_iou_loss,
    "ciou": _iou.complete_box_iou_loss,
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
    """

    losses: tuple[str, ...]
    iterations: int
    errors: dict[str, Tensor]
    final_error_map: dict[str, Tensor]
    anchor_centres: Tensor
    n_cases: int
    seconds: dict[str, float] = field(default_factory=dict)


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

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: for an unknown loss name, or ``n_anchor_points`` or ``iterations`` below 1.
    """
    fn = "run_simulation"
    unknown = [name for name in losses if name not in LOSSES]
    if unknown or not losses:
        raise ValueError(f"{fn}: losses must be a non-empty sequence of {sorted(LOSSES)}; got {list(losses)}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"{fn}: iterations must be an int >= 1; got {iterations!r}")
    if quick:
        n_anchor_points = QUICK_ANCHOR_POINTS
    device = torch.device(device) if device is not None else torch.device("cpu")
    anchors, targets, centres = make_cases(n_anchor_points, seed=seed, dtype=dtype)
    anchors, targets = anchors.to(device), targets.to(device)
    target_xyxy = _boxes.box_convert(targets, "cxcywh", "xyxy")
    errors: dict[str, Tensor] = {}
    maps: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    for name in losses:
        loss_fn = LOSSES[name]
        start = time.perf_counter()
        b = anchors.clone()
        curve = [(b - targets).abs().sum(dtype=torch.float64)]
        for t in range(1, iterations + 1):
            b.requires_grad_(True)
            pred = _boxes.box_convert(b, "cxcywh", "xyxy")
            (grad,) = torch.autograd.grad(loss_fn(pred, target_xyxy, reduction="sum"), b)
            with torch.no_grad():
                # 2 - IoU = 1 + (1 - IoU): the linear IoU loss is the cheapest way to get IoU.
                factor = 1.0 + _iou.iou_loss(pred.detach(), target_xyxy, reduction="none")
                b = b.detach() - learning_rate(t) * factor[:, None] * grad
            curve.append((b - targets).abs().sum(dtype=torch.float64))
            if progress is not None:
                progress(name, t, iterations)
        errors[name] = torch.stack(curve).cpu()  # one transfer at the end, not one per step
        per_case = (b - targets).abs().sum(-1, dtype=torch.float64)
        maps[name] = per_case.reshape(n_anchor_points, -1).sum(-1).cpu()
        seconds[name] = time.perf_counter() - start
    return SimulationResult(tuple(losses), iterations, errors, maps, centres, anchors.shape[0], seconds)


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
