"""The DIoU paper's simulation: its set-up, its update rule, and the paper's qualitative findings."""

from __future__ import annotations

import math

import pytest
import torch

import losskit.functional as LF
from losskit.atlas.experiments import diou_simulation as sim


def test_cases_follow_the_papers_setup():
    anchors, targets, centres = sim.make_cases(4, seed=0)
    assert anchors.shape == targets.shape == (4 * 7 * 7 * 7, 4)
    assert centres.shape == (4, 2)
    assert ((centres - 10.0).norm(dim=-1) <= 3.0).all()  # in the disc of radius 3 around (10, 10)
    # targets: centred at (10, 10), area 1, the seven aspect ratios
    assert (targets[:, :2] == 10.0).all()
    torch.testing.assert_close(targets[:, 2] * targets[:, 3], torch.ones(len(targets), dtype=torch.float64))
    ratios = sorted({round(r, 6) for r in (targets[:, 2] / targets[:, 3]).tolist()})
    assert ratios == [round(r, 6) for r in sorted(sim.ASPECT_RATIOS)]
    # anchors: 7 areas x 7 ratios at each centre, centred on it
    areas = sorted({round(a, 6) for a in (anchors[:, 2] * anchors[:, 3]).tolist()})
    assert areas == [round(a, 6) for a in sim.ANCHOR_AREAS]
    torch.testing.assert_close(anchors[:343, :2], centres[0].expand(343, 2))
    # the quick mode's centres are a subset (prefix) of the full run's
    more_centres = sim.make_cases(300, seed=0)[2]
    torch.testing.assert_close(sim.make_cases(sim.QUICK_ANCHOR_POINTS)[2], more_centres[:200])


def test_learning_rate_schedule():
    assert [sim.learning_rate(t) for t in (1, 160, 161, 180, 181, 200)] == [
        0.1,
        0.1,
        0.01,
        0.01,
        0.001,
        0.001,
    ]


def test_one_step_is_the_papers_update_with_the_librarys_loss():
    result = sim.run_simulation(losses=("diou",), n_anchor_points=1, iterations=1, dtype=torch.float64)
    anchors, targets, _ = sim.make_cases(1, dtype=torch.float64)
    # B <- B - 0.1 (2 - IoU) dL/dB, with B = (x, y, w, h) and L the DIoU loss of the xyxy boxes
    b = anchors.clone().requires_grad_(True)
    pred = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], dim=-1)
    target = torch.cat([targets[:, :2] - targets[:, 2:] / 2, targets[:, :2] + targets[:, 2:] / 2], dim=-1)
    (grad,) = torch.autograd.grad(LF.distance_box_iou_loss(pred, target, reduction="sum"), b)
    iou = 1 - LF.iou_loss(pred.detach(), target, reduction="none")  # aligned IoU of each pair
    stepped = anchors - 0.1 * (2 - iou)[:, None] * grad
    assert result.errors["diou"][0].item() == pytest.approx((anchors - targets).abs().sum().item())
    assert result.errors["diou"][1].item() == pytest.approx((stepped - targets).abs().sum().item(), rel=1e-9)


def test_small_run_reproduces_the_papers_findings():
    calls = []
    result = sim.run_simulation(n_anchor_points=4, progress=lambda *a: calls.append(a))
    assert len(calls) == 4 * 200 and calls[-1] == ("ciou", 200, 200)
    assert result.n_cases == 4 * 343 and result.iterations == 200
    e = {k: v.tolist() for k, v in result.errors.items()}
    assert len({round(v[0], 6) for v in e.values()}) == 1  # the same start for every loss
    # IoU loss barely improves: anchors that do not overlap their target never move
    assert e["iou"][-1] > 0.5 * e["iou"][0]
    # GIoU, DIoU and CIoU converge to small errors; CIoU ends lowest
    for k in ("giou", "diou", "ciou"):
        assert e[k][-1] < 0.05 * e[k][0]
        assert e[k][200] < e[k][100] < e[k][10]
    assert e["ciou"][-1] < min(e["giou"][-1], e["diou"][-1])
    # the per-centre map sums to the final error
    for k in result.losses:
        assert result.final_error_map[k].shape == (4,)
        assert result.final_error_map[k].sum().item() == pytest.approx(e[k][-1], rel=1e-6)
    report = sim.summary(result)
    assert list(report["ciou"]) == [10, 40, 100, 160, 200]
    assert report["ciou"][200] == pytest.approx(e["ciou"][200])
    assert all(math.isfinite(x) for v in report.values() for x in v.values())


def test_replicates_are_blocks_of_anchor_centres():
    # 5 centres in 2 blocks (3 + 2 centres): each block's E(t) is the error of its own cases, and the
    # blocks add up to the total; a run on a block's centres alone gives the same curve
    result = sim.run_simulation(losses=("giou",), n_anchor_points=5, iterations=5, replicates=2)
    blocks = result.replicate_errors["giou"]
    assert blocks.shape == (6, 2)
    torch.testing.assert_close(blocks.sum(1), result.errors["giou"])
    first3 = sim.run_simulation(losses=("giou",), n_anchor_points=3, iterations=5)
    torch.testing.assert_close(blocks[:, 0], first3.errors["giou"], rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match=r"run_simulation: replicates must be an int in \[1, 5\]"):
        sim.run_simulation(n_anchor_points=5, replicates=6)


def test_module_runs_as_a_script():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "losskit.atlas.experiments.diou_simulation", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--gradient" in proc.stdout and "--quick" in proc.stdout


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = sim.run_simulation(losses=("giou", "diou"), n_anchor_points=2, iterations=3)
    fig = sim.plot_simulation(result, str(tmp_path / "sim.png"))
    assert (tmp_path / "sim.png").stat().st_size > 0
    assert len(fig.axes) >= 3  # the curves, one map per loss (and a colour bar)


def test_errors():
    with pytest.raises(
        ValueError, match=r"run_simulation: losses must be a non-empty sequence of .*; got \['eiou'\]"
    ):
        sim.run_simulation(losses=("eiou",))
    with pytest.raises(ValueError, match=r"run_simulation: losses must be a non-empty sequence"):
        sim.run_simulation(losses=())
    with pytest.raises(ValueError, match=r"run_simulation: iterations must be an int >= 1; got 0"):
        sim.run_simulation(iterations=0)
    with pytest.raises(ValueError, match=r"make_cases: n_anchor_points must be an int >= 1; got 0"):
        sim.run_simulation(n_anchor_points=0)


def _random_cases(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.cat(
        [8 + 4 * torch.rand(n, 2, generator=gen), 0.3 + 1.5 * torch.rand(n, 2, generator=gen)], 1
    )
    targets = torch.cat([torch.full((n, 2), 10.0), 0.3 + 1.5 * torch.rand(n, 2, generator=gen)], 1)
    return boxes.double(), targets.double()


def _autograd_descent(name: str, boxes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    b = boxes.clone().requires_grad_(True)
    pred = LF.box_convert(b, "cxcywh", "xyxy")
    kwargs = {} if name == "iou" else {"eps": 0.0}
    loss = sim.LOSSES[name](pred, LF.box_convert(targets, "cxcywh", "xyxy"), reduction="sum", **kwargs)
    return torch.autograd.grad(loss, b)[0]


@pytest.mark.parametrize("name", ["iou", "giou", "diou", "ciou"])
def test_paper_ascent_without_slips_is_minus_the_exact_gradient(name):
    # overlapping and disjoint pairs, every relative position: the hand-derived formulas, with each slip
    # corrected, must be the derivative of the losses
    boxes, targets = _random_cases(3000, seed=1)
    iw = torch.minimum(boxes[:, 0] + boxes[:, 2] / 2, targets[:, 0] + targets[:, 2] / 2) - torch.maximum(
        boxes[:, 0] - boxes[:, 2] / 2, targets[:, 0] - targets[:, 2] / 2
    )
    assert (iw > 0).any() and (iw < 0).any()
    expected = -_autograd_descent(name, boxes, targets)
    tol = 1e-6 if name in ("iou", "ciou") else 1e-12  # iou_loss and CIoU's alpha keep their eps
    torch.testing.assert_close(sim.paper_ascent(name, boxes, targets, slips=()), expected, rtol=0, atol=tol)


def test_paper_ascent_slips_change_what_they_say():
    boxes, targets = _random_cases(3000, seed=2)
    exact = {n: sim.paper_ascent(n, boxes, targets, slips=()) for n in sim.LOSSES}
    # wh_doubled: the IoU loss's steps in w and h are twice the exact ones, those in x and y unchanged
    doubled = sim.paper_ascent("iou", boxes, targets, slips=("wh_doubled",))
    torch.testing.assert_close(doubled[:, :2], exact["iou"][:, :2])
    torch.testing.assert_close(doubled[:, 2:], 2 * exact["iou"][:, 2:])
    # diagonal_xy_sign: DIoU's w and h steps are exact, x and y are not
    signed = sim.paper_ascent("diou", boxes, targets, slips=("diagonal_xy_sign",))
    torch.testing.assert_close(signed[:, 2:], exact["diou"][:, 2:])
    assert (signed[:, :2] - exact["diou"][:, :2]).abs().max() > 0.1
    # aspect_no_denominator: only CIoU's w and h change, by the dropped 1 / (w^2 + h^2) on the aspect term
    aspect = sim.paper_ascent("ciou", boxes, targets, slips=("aspect_no_denominator",))
    torch.testing.assert_close(aspect[:, :2], exact["ciou"][:, :2])
    assert (aspect[:, 2:] - exact["ciou"][:, 2:]).abs().max() > 1e-3
    # the DIoU-only slips leave IoU and GIoU alone
    for name in ("iou", "giou"):
        torch.testing.assert_close(
            sim.paper_ascent(name, boxes, targets, slips=("diagonal_xy_sign", "diagonal_axes_mixed")),
            exact[name],
        )


def test_papers_gradients_reproduce_the_papers_ranking():
    # with the authors' hand-derived gradients, DIoU and CIoU are far ahead of GIoU early on and GIoU
    # stalls at a large error, as the paper reports
    result = sim.run_simulation(n_anchor_points=20, gradient="paper")
    e = {k: v.tolist() for k, v in result.errors.items()}
    assert e["diou"][40] < 0.5 * e["giou"][40] and e["ciou"][40] < 0.5 * e["giou"][40]
    assert e["giou"][-1] > 10 * max(e["diou"][-1], e["ciou"][-1])
    assert e["iou"][-1] > 0.5 * e["iou"][0]


def test_gradient_errors():
    with pytest.raises(
        ValueError, match=r"run_simulation: gradient must be 'exact' or 'paper'; got 'numeric'"
    ):
        sim.run_simulation(gradient="numeric")
    with pytest.raises(ValueError, match=r"run_simulation: slips apply only to gradient='paper'"):
        sim.run_simulation(slips=())
    boxes, targets = _random_cases(2, seed=0)
    with pytest.raises(ValueError, match=r"paper_ascent: slips must be taken from .*; got \['typo'\]"):
        sim.paper_ascent("diou", boxes, targets, slips=("typo",))
    with pytest.raises(ValueError, match=r"paper_ascent: loss must be one of"):
        sim.paper_ascent("eiou", boxes, targets)
