"""Worker processes for tests/test_distributed.py: one gloo world runs every scenario in turn.

Each rank builds the same global data from a seed, keeps its own slice, runs a scenario and saves what
it got (losses, gradients, trained weights, the error it raised) to ``<out>/<scenario>-<rank>.pt``. The
parent test compares those against single-process references; nothing is asserted here.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
from torch import nn

import losskit.functional as LF
from losskit import distributed as LD
from losskit.functional import fused

D_IN, D, C = 5, 6, 11
MARGIN = 0.5


def sizes_for(world: int) -> list[int]:
    """Unequal batch sizes, and an empty rank when there are three."""
    return {1: [7], 2: [3, 5], 3: [4, 0, 3]}[world]


def arcface_logit(cos: torch.Tensor) -> torch.Tensor:
    """ArcFace's cos(theta + m), written out here so the tests need no other losskit module."""
    c = cos.clamp(-1 + 1e-7, 1 - 1e-7)  # acos has an infinite slope at +-1
    return torch.cos(torch.acos(c) + MARGIN)


def global_data(world: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = sum(sizes_for(world))
    return {
        "x": torch.randn(m, D, generator=g, dtype=torch.float64),
        "w": torch.randn(C, D, generator=g, dtype=torch.float64),
        "y": torch.randint(0, C, (m,), generator=g),
        "s": 5.0 + 10.0 * torch.rand(m, generator=g, dtype=torch.float64),
        "weight": torch.rand(m, generator=g, dtype=torch.float64),
        "coef": torch.randn(m, generator=g, dtype=torch.float64),
        # metric learning: few labels so that every anchor has positives on other ranks
        "e": torch.randn(m, D, generator=g, dtype=torch.float64),
        "labels": torch.randint(0, 3, (m,), generator=g),
    }


def row_slice(world: int, rank: int) -> slice:
    sizes = sizes_for(world)
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def class_slice(world: int, rank: int) -> slice:
    r = LD.class_shard(C, world, rank)
    return slice(r.start, r.stop)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _margin(world: int, rank: int, group) -> dict:
    data = global_data(world)
    rows, cls = row_slice(world, rank), class_slice(world, rank)
    out: dict = {}
    # per-row scale (SphereFace style) and weights, 'mean'
    x, w, s = _leaf(data["x"][rows]), _leaf(data["w"][cls]), _leaf(data["s"][rows])
    loss = LF.margin_softmax_loss(
        x,
        w,
        data["y"][rows],
        target_logit=arcface_logit,
        scale=s,
        process_group=group,
        num_classes=C,
        chunk_size=2,
        weight=data["weight"][rows],
    )
    loss.backward()
    out["mean"] = (loss.detach(), x.grad, w.grad, s.grad)
    # float scale, 'none' with a different upstream gradient per row, default chunking
    x, w = _leaf(data["x"][rows]), _leaf(data["w"][cls])
    none = LF.margin_softmax_loss(
        x, w, data["y"][rows], target_logit=arcface_logit, scale=30.0, process_group=group, reduction="none"
    )
    (none * data["coef"][rows]).sum().backward()
    out["none"] = (none.detach(), x.grad, w.grad)
    total = LF.margin_softmax_loss(
        x.detach(), w.detach(), data["y"][rows], target_logit=arcface_logit, scale=30.0,
        process_group=group, reduction="sum",
    )  # fmt: skip
    out["sum"] = total
    # Partial-FC: the kept centres are drawn from a generator seeded per rank
    x, w = _leaf(data["x"][rows]), _leaf(data["w"][cls])
    t_block = data["y"] - cls.start
    gen = torch.Generator().manual_seed(100 + rank)
    keep = fused._partial_fc_keep(t_block, cls.stop - cls.start, 0.5, gen)
    loss = LF.margin_softmax_loss(
        x, w, data["y"][rows], target_logit=arcface_logit, scale=20.0, process_group=group,
        sample_rate=0.5, generator=torch.Generator().manual_seed(100 + rank), chunk_size=3,
    )  # fmt: skip
    loss.backward()
    out["partial_fc"] = (loss.detach(), x.grad, w.grad, keep + cls.start)
    # the last rank's embeddings need no gradient, its centres do: every rank still takes part in the
    # row-gradient collective of backward
    x = data["x"][rows].clone().requires_grad_(rank != world - 1)
    w = _leaf(data["w"][cls])
    loss = LF.margin_softmax_loss(
        x, w, data["y"][rows], target_logit=arcface_logit, scale=30.0, process_group=group, chunk_size=3
    )
    loss.backward()
    out["some_inputs_without_grad"] = (loss.detach(), x.grad, w.grad)
    return out


def train_steps() -> int:
    return 3


def make_backbone() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(D_IN, D).double()


def step_batch(world: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    m = sum(sizes_for(world))
    return torch.randn(m, D_IN, generator=g, dtype=torch.float64), torch.randint(0, C, (m,), generator=g)


def _train(world: int, rank: int, group) -> dict:
    """A few SGD steps: DDP backbone with the sum hook, class-parallel centres."""
    backbone = make_backbone()
    ddp = nn.parallel.DistributedDataParallel(backbone, process_group=group)
    ddp.register_comm_hook(group, LD.sum_gradients_hook)
    cls = class_slice(world, rank)
    centers = nn.Parameter(global_data(world)["w"][cls].clone())
    opt = torch.optim.SGD([*ddp.parameters(), centers], lr=0.5)
    rows = row_slice(world, rank)
    losses = []
    for step in range(train_steps()):
        inp, y = step_batch(world, step)
        opt.zero_grad()
        loss = LF.margin_softmax_loss(
            ddp(inp[rows]), centers, y[rows], target_logit=arcface_logit, scale=8.0,
            process_group=group, num_classes=C, chunk_size=4,
        )  # fmt: skip
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return {"weight": backbone.weight.detach(), "bias": backbone.bias.detach(), "centers": centers.detach(),
            "losses": torch.stack(losses)}  # fmt: skip


def _outcome(fn, *args, **kwargs) -> tuple[str, str, float]:
    t0 = time.perf_counter()
    try:
        fn(*args, **kwargs)
        return ("no error", "", time.perf_counter() - t0)
    except Exception as err:
        return (type(err).__name__, str(err), time.perf_counter() - t0)


def _errors(world: int, rank: int, group) -> dict:
    """Each case fails on the last rank only; every rank must raise the same clear error."""
    data = global_data(world)
    rows, cls = row_slice(world, rank), class_slice(world, rank)
    last = rank == world - 1
    x, w, y = data["x"][rows], data["w"][cls], data["y"][rows].clone()
    cases = {
        "bad_label": (x, w, torch.full_like(y, C + 3) if last else y),
        "bad_dim": (x[:, :-1] if last else x, w[:, :-1] if last else w, y),
        "bad_dtype": (x, w, y.double() if last else y),
        "bad_shape": (x, w, y[:-1] if last else y),
        "bad_layout": (x, w[:-1] if last else w, y),
    }
    cases["bad_float_dtype"] = (x.float() if last else x, w.float() if last else w, y)
    cases["bad_scale_kind"] = (x, w, y)
    out = {}
    for name, (xi, wi, yi) in cases.items():
        scale = (
            torch.full((xi.shape[0],), 30.0, dtype=xi.dtype) if name == "bad_scale_kind" and last else 30.0
        )
        out[name] = _outcome(
            LF.margin_softmax_loss,
            xi, wi, yi, target_logit=arcface_logit, scale=scale, process_group=group, num_classes=C,
        )  # fmt: skip
    e, labels = data["e"][rows], data["labels"][rows]
    metric_cases = {
        "metric_bad_dim": (e[:, :-1] if last else e, labels, 0.2),
        "metric_bad_dtype": (e.float() if last else e, labels, 0.2),
        "metric_bad_margin": (e, labels, -1.0 if last else 0.2),
    }
    for name, (ei, li, margin) in metric_cases.items():
        out[name] = _outcome(LD.cross_rank_batch_triplet_loss, ei, li, process_group=group, margin=margin)
    # the group is still usable after a raised check
    t = torch.ones(1)
    dist.all_reduce(t, group=group)
    out["after"] = t
    return out


def margin_mismatches() -> dict:
    """Class-parallel margin calls where the last rank passes one argument differently (or a bad one):
    the last rank's keyword arguments. Each must raise the same clear error on every rank (before, a
    different ``reduction`` left ranks blocked in a collective until the process-group timeout)."""
    return {
        "margin_reduction_sum": {"reduction": "sum"},
        "margin_reduction_none": {"reduction": "none"},
        "margin_sample_rate": {"sample_rate": 0.5},
        "margin_num_classes": {"num_classes": C + 1},
        "margin_requires_grad": {"requires_grad": False},  # neither input nor centres need gradients
        "margin_no_grad_mode": {"no_grad": True},
        "margin_target_logit_shape": {"target_logit": lambda c: arcface_logit(c)[:, None]},
        "margin_negative_label": {"label": -1},
    }


def _margin_mismatch(world: int, rank: int, group) -> dict:
    data = global_data(world)
    rows, cls = row_slice(world, rank), class_slice(world, rank)
    last = rank == world - 1
    out = {}
    for name, differs in margin_mismatches().items():
        kwargs = {"target_logit": arcface_logit, "scale": 30.0, "num_classes": C, **(differs if last else {})}
        grad = kwargs.pop("requires_grad", True)
        x = data["x"][rows].clone().requires_grad_(grad)
        w = data["w"][cls].clone().requires_grad_(grad)
        y = data["y"][rows].clone()
        if "label" in kwargs:
            y[:] = kwargs.pop("label")
        with torch.no_grad() if kwargs.pop("no_grad", False) else torch.enable_grad():
            out[name] = _outcome(LF.margin_softmax_loss, x, w, y, process_group=group, **kwargs)
    t = torch.ones(1)
    dist.all_reduce(t, group=group)  # the group is still usable after every raised check
    out["after"] = t
    return out


def gather_coef(world: int, rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(500 + rank)
    return torch.randn(sum(sizes_for(world)), D, generator=g, dtype=torch.float64)


def _metric(world: int, rank: int, group) -> dict:
    data = global_data(world)
    rows = row_slice(world, rank)
    out = {}
    for name, fn, kwargs in [
        ("triplet_batch_hard", LD.cross_rank_batch_triplet_loss, {"mining": "batch_hard", "margin": 0.3}),
        ("triplet_batch_all", LD.cross_rank_batch_triplet_loss, {"mining": "batch_all", "margin": 0.3}),
        ("triplet_semi_hard", LD.cross_rank_batch_triplet_loss, {"mining": "semi_hard", "margin": 0.3}),
        ("contrastive", LD.cross_rank_batch_contrastive_loss, {"margin": 1.5}),
    ]:
        e = _leaf(data["e"][rows])
        loss = fn(e, data["labels"][rows], process_group=group, **kwargs)
        loss.backward()
        out[name] = (loss.detach(), e.grad)
    e = _leaf(data["e"][rows])
    loss, stats = LD.cross_rank_batch_triplet_loss(
        e, data["labels"][rows], process_group=group, mining="batch_all", margin=0.3, return_stats=True,
        weight=data["weight"][rows], reduction="sum",
    )  # fmt: skip
    loss.backward()
    out["triplet_stats"] = (loss.detach(), e.grad, tuple(stats))
    e = _leaf(data["e"][rows])
    gathered = LD.gather_with_grad(e, group)
    # each rank's own term: its rows of the gathered tensor dotted with coefficients of all rows
    (gathered * gather_coef(world, rank)).sum().backward()
    out["gather"] = (gathered.detach(), e.grad)
    return out


def metric_mismatches() -> dict:
    """Cross-rank metric calls where the last rank passes one argument differently: (fn, common
    keyword arguments, the last rank's). Each must raise the same clear error on every rank."""
    t, c = "triplet", "contrastive"
    return {
        "mismatch_reduction_none": (t, {}, {"reduction": "none"}),
        "mismatch_reduction_sum": (t, {}, {"reduction": "sum"}),
        "mismatch_return_stats": (t, {}, {"return_stats": True}),
        "mismatch_mining": (t, {}, {"mining": "batch_all"}),
        "mismatch_distance": (t, {}, {"distance": "squared_euclidean"}),
        "mismatch_soft_margin": (t, {}, {"soft_margin": True}),
        "mismatch_margin": (t, {}, {"margin": 0.3}),
        "mismatch_requires_grad": (t, {}, {"requires_grad": False}),
        "mismatch_contrastive_reduction": (c, {}, {"reduction": "none"}),
        "mismatch_contrastive_margin": (c, {"margin": 1.0}, {"margin": 2.0}),
    }


def _metric_mismatch(world: int, rank: int, group) -> dict:
    data = global_data(world)
    rows = row_slice(world, rank)
    last = rank == world - 1
    out = {}
    for name, (kind, common, differs) in metric_mismatches().items():
        kwargs = {**common, **(differs if last else {})}
        e = data["e"][rows].clone().requires_grad_(kwargs.pop("requires_grad", True))
        fn = LD.cross_rank_batch_triplet_loss if kind == "triplet" else LD.cross_rank_batch_contrastive_loss
        out[name] = _outcome(fn, e, data["labels"][rows], process_group=group, **kwargs)
    t = torch.ones(1)
    dist.all_reduce(t, group=group)  # the group is still usable after every raised check
    out["after"] = t
    return out


def module_kinds() -> dict:
    """The margin-loss Modules, each with arguments that keep its logits moderate at these sizes."""
    from losskit import nn as LN

    return {
        "arcface": (LN.ArcFaceLoss, {"scale": 16.0, "margin": 0.3}),
        "cosface": (LN.CosFaceLoss, {"scale": 16.0, "margin": 0.2}),
        "am_softmax": (LN.AMSoftmaxLoss, {"scale": 12.0, "margin": 0.3}),
        "combined": (LN.CombinedMarginLoss, {"scale": 16.0, "m1": 1.0, "m2": 0.3, "m3": 0.1}),
        "sphereface": (LN.SphereFaceLoss, {"base": 10.0}),
        "normface": (LN.NormFaceLoss, {"scale": 10.0}),
    }


def _modules(world: int, rank: int, group) -> dict:
    """Each margin Module built with ``process_group``: its centres are this rank's block of all."""
    data = global_data(world)
    rows, cls = row_slice(world, rank), class_slice(world, rank)
    out = {}
    for name, (module_cls, kwargs) in module_kinds().items():
        module = module_cls(D, C, process_group=group, chunk_size=3, **kwargs).double()
        shape, offset = tuple(module.centers.shape), module.class_offset
        with torch.no_grad():
            module.centers.copy_(data["w"][cls])
        x = _leaf(data["x"][rows])
        loss = module(x, data["y"][rows], data["weight"][rows])
        loss.backward()
        out[name] = (loss.detach(), x.grad, module.centers.grad, offset, shape)
    return out


SCENARIOS = {
    "margin": _margin,
    "train": _train,
    "errors": _errors,
    "metric": _metric,
    "metric_mismatch": _metric_mismatch,
    "modules": _modules,
    "margin_mismatch": _margin_mismatch,
}
TIMEOUT_S = 30  # the process group's timeout (tests/_dist_harness.py runs the scenarios)
