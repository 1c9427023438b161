"""Boxes: the DIoU paper's simulation, run by ``losskit.experiments.diou_simulation``.

Anchors regress toward 7 targets by gradient descent with each IoU-family loss; the total error
E(t) and the final error per anchor position are compared (Zheng et al., AAAI 2020).
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

from pathlib import Path

from .. import StepResult, Unavailable, require
from ..verdicts import Claim, by_threshold, combine, fmt

TITLE = "Boxes: the DIoU simulation"
LOSSES = ("iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss")
SIM_NAMES = ("iou", "giou", "diou", "ciou")
FUNCTION = dict(zip(SIM_NAMES, LOSSES))
SCALES = {
    "tiny": {"points": 4, "iterations": 60},
    "quick": {"points": 12, "iterations": 200},
    "full": {"points": 5000, "iterations": 200},
}


def _simulation():
    try:
        from ...experiments import diou_simulation
    except ModuleNotFoundError as err:
        raise Unavailable("needs losskit.experiments.diou_simulation, not in this build of losskit") from err
    return diou_simulation


def _distance_losses_vs_giou(errors: dict[str, float]):
    """Held if DIoU's and CIoU's errors are each below half of GIoU's, not held if either is above it."""
    return combine(
        *(
            by_threshold(errors[n] / errors["giou"], held_if_below=0.5, not_held_if_above=1.0)
            for n in ("diou", "ciou")
        )
    )


def run(out: Path, mode: str) -> StepResult:
    require(*LOSSES)
    sim = _simulation()
    cfg = SCALES[mode]
    res = sim.run_simulation(SIM_NAMES, n_anchor_points=cfg["points"], iterations=cfg["iterations"])
    # the same run with the authors' hand-derived gradients (their released simulation code)
    res_p = sim.run_simulation(
        SIM_NAMES, n_anchor_points=cfg["points"], iterations=cfg["iterations"], gradient="paper"
    )
    fig_name, fig_paper = "boxes_diou_simulation.png", "boxes_diou_simulation_paper_gradients.png"
    sim.plot_simulation(res, str(out / fig_name))
    sim.plot_simulation(res_p, str(out / fig_paper))
    import matplotlib.pyplot as plt

    plt.close("all")
    T = res.iterations
    at = [t for t in (10, 40, 100, 160, 200) if t <= T]
    e = {n: [float(v) for v in res.errors[n]] for n in SIM_NAMES}
    e_p = {n: [float(v) for v in res_p.errors[n]] for n in SIM_NAMES}
    t_mid = 40 if T >= 40 else T // 2
    mid = {n: e[n][t_mid] for n in SIM_NAMES}
    mid_p = {n: e_p[n][t_mid] for n in SIM_NAMES}
    claims = [
        Claim(
            id="boxes-iou-stalls",
            statement="The IoU loss barely improves: it cannot move boxes that do not overlap their target.",
            source="Rezatofighi et al. 2019; Zheng et al. 2020",
            losses=("iou_loss",),
            rule="E(T)/E(0) for the IoU loss: held above 0.5, did not hold below 0.2, mixed in between",
            verdict=by_threshold(-e["iou"][-1] / e["iou"][0], held_if_below=-0.5, not_held_if_above=-0.2),
            evidence=f"IoU loss: E(0) = {fmt(e['iou'][0])}, E({T}) = {fmt(e['iou'][-1])} "
            f"({100 * e['iou'][-1] / e['iou'][0]:.0f}% left); GIoU left {100 * e['giou'][-1] / e['giou'][0]:.1f}%.",
            figure=fig_name,
            experiment="boxes",
        ),
        Claim(
            id="boxes-diou-faster-than-giou",
            statement="DIoU and CIoU converge much faster than GIoU.",
            source="Zheng et al. 2020",
            losses=("distance_box_iou_loss", "complete_box_iou_loss", "generalized_box_iou_loss"),
            rule=f"E({t_mid}) of DIoU and of CIoU over GIoU's: each held below 0.5, not held above 1; combined",
            verdict=_distance_losses_vs_giou(mid),
            evidence=f"E({t_mid}): GIoU {fmt(mid['giou'])}, DIoU {fmt(mid['diou'])}, CIoU {fmt(mid['ciou'])}.",
            figure=fig_name,
            experiment="boxes",
        ),
        Claim(
            id="boxes-diou-faster-with-papers-gradients",
            statement="With the authors' own hand-derived gradients, DIoU and CIoU converge much faster than GIoU.",
            source="Zheng et al. 2020 (released simulation code)",
            losses=("distance_box_iou_loss", "complete_box_iou_loss", "generalized_box_iou_loss"),
            rule=f"as above, on the run with the released code's gradients: E({t_mid}) of DIoU and of CIoU over GIoU's",
            verdict=_distance_losses_vs_giou(mid_p),
            evidence=f"E({t_mid}) with the released gradients: GIoU {fmt(mid_p['giou'])}, DIoU {fmt(mid_p['diou'])}, "
            f"CIoU {fmt(mid_p['ciou'])}; E({T}): GIoU {fmt(e_p['giou'][-1])}, DIoU {fmt(e_p['diou'][-1])}, "
            f"CIoU {fmt(e_p['ciou'][-1])}. Those gradients are not the losses' derivatives: the distance "
            "penalty's x/y derivative has a sign slip that pulls centres inward, and GIoU's disjoint-box "
            "gradient uses an unclamped intersection that stalls it (losskit.experiments.diou_simulation.paper_ascent "
            "lists each slip; switching them one at a time shows these two decide the ranking).",
            figure=fig_paper,
            experiment="boxes",
        ),
        Claim(
            id="boxes-ciou-fastest",
            statement="CIoU converges fastest.",
            source="Zheng et al. 2020",
            losses=("complete_box_iou_loss",),
            rule=f"E({t_mid}) of CIoU over the best other loss: held below 1, not held above 1.1",
            verdict=by_threshold(
                mid["ciou"] / min(mid[n] for n in SIM_NAMES if n != "ciou"),
                held_if_below=1.0,
                not_held_if_above=1.1,
            ),
            evidence="E(t): "
            + "; ".join(f"{n.upper()} " + ", ".join(f"t={t}: {fmt(e[n][t])}" for t in at) for n in SIM_NAMES)
            + ".",
            figure=fig_name,
            experiment="boxes",
        ),
    ]
    best = min(SIM_NAMES, key=lambda n: e[n][-1])
    advice = {}
    for n in SIM_NAMES:
        a = advice.setdefault(FUNCTION[n], {"use": [], "avoid": []})
        if e[n][-1] <= 1.1 * e[best][-1]:
            a["use"].append(
                f"Box regression from poorly placed anchors: final error {fmt(e[n][-1])}, the best measured or within 10%."
            )
        elif e[n][-1] > 3 * e[best][-1]:
            a["avoid"].append(
                f"Anchors that may not overlap their target: final error {fmt(e[n][-1])} vs {fmt(e[best][-1])} for {best.upper()}."
            )
    return StepResult(
        key="boxes",
        title=TITLE,
        kind="experiment",
        figures={"simulation": fig_name, "simulation_paper": fig_paper},
        captions={
            "simulation": "E(t) per loss (log scale) and the final error at each anchor centre (DIoU paper, Figure 3), "
            "with the exact gradients of losskit's losses.",
            "simulation_paper": "The same simulation stepping along the authors' hand-derived gradients from their "
            "released code: the paper's ranking appears.",
        },
        metrics={
            "E": {n: {t: e[n][t] for t in [0, *at]} for n in SIM_NAMES},
            "E_paper_gradients": {n: {t: e_p[n][t] for t in [0, *at]} for n in SIM_NAMES},
            "cases": res.n_cases,
        },
        claims=claims,
        advice=advice,
        setup=f"the DIoU paper's simulation: 7 targets, {cfg['points']} anchor centres in a disc of radius 3, 49 "
        f"anchors per centre per target ({res.n_cases:,} cases; the paper: 5,000 centres, 1,715,000 cases), {T} "
        "steps of B <- B - eta (2 - IoU) dL/dB with the paper's step schedule, once with the exact gradients "
        "and once with the gradients of the authors' released code.",
        headline=f"E({T}): " + ", ".join(f"{n.upper()} {fmt(e[n][-1])}" for n in SIM_NAMES),
    )
