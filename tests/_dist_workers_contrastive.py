"""Worker processes for tests/test_distributed_contrastive.py: one gloo world runs every scenario.

Each rank builds the same global data from a seed, keeps its own rows, runs a scenario and saves what
it got (losses, gradients, the errors it raised) to ``<out>/<scenario>-<rank>.pt``. The parent test
compares those with the single-process losses on the concatenated batch; nothing is asserted here.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from losskit import distributed as LD

D = 6
TEMPERATURE, BASE = 0.3, 0.5
CHUNKS = (None, 2)


def sizes_for(world: int) -> list[int]:
    """Uneven batch sizes, and an empty rank when there are three."""
    return {1: [7], 2: [3, 5], 3: [4, 0, 3]}[world]


def global_data(world: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    m = sum(sizes_for(world))
    x = F.normalize(torch.randn(m, D, generator=g, dtype=torch.float64), dim=1)
    return {
        "e": torch.randn(m, D, generator=g, dtype=torch.float64),
        "labels": torch.randint(0, 3, (m,), generator=g),  # few identities: positives on other ranks
        "x": x,
        "y": F.normalize(x + 0.8 * torch.randn(m, D, generator=g, dtype=torch.float64), dim=1),
        "scale": torch.tensor(4.0, dtype=torch.float64),
        "bias": torch.tensor(-1.5, dtype=torch.float64),
        "weight": torch.rand(m, generator=g, dtype=torch.float64),
        "coef": torch.randn(m, generator=g, dtype=torch.float64),  # upstream gradient of 'none'
    }


def row_slice(world: int, rank: int) -> slice:
    sizes = sizes_for(world)
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def call(kind: str, t: dict, group, reduction: str, chunk, weight=None) -> torch.Tensor:
    """One cross-rank loss (or, with ``group=None``, the single-process one) on the tensors ``t``."""
    common = {"process_group": group, "chunk_size": chunk, "weight": weight, "reduction": reduction}
    if kind == "nt_xent":
        return LD.cross_rank_nt_xent_loss(t["e"], t["labels"], temperature=TEMPERATURE, **common)
    if kind == "supcon":
        return LD.cross_rank_supcon_loss(
            t["e"], t["labels"], temperature=TEMPERATURE, base_temperature=BASE, **common
        )
    if kind == "clip":
        return LD.cross_rank_clip_loss(t["x"], t["y"], logit_scale=t["scale"], **common)
    exchange = "ring" if kind == "siglip_ring" else "gather"
    return LD.cross_rank_siglip_loss(
        t["x"], t["y"], logit_scale=t["scale"], logit_bias=t["bias"], exchange=exchange, **common
    )


KINDS = ("nt_xent", "supcon", "clip", "siglip_gather", "siglip_ring")
GRAD_KEYS = {
    "nt_xent": ("e",),
    "supcon": ("e",),
    "clip": ("x", "y", "scale"),
    "siglip_gather": ("x", "y", "scale", "bias"),
    "siglip_ring": ("x", "y", "scale", "bias"),
}


def run_case(kind: str, data: dict, rows: slice, group, reduction: str, chunk) -> tuple:
    """(loss, {key: gradient}) of this rank's call; 'none' is back-propagated with ``coef``."""
    t = {k: data[k][rows] for k in ("e", "labels", "x", "y", "weight", "coef")}
    for k in ("e", "x", "y"):
        t[k] = _leaf(t[k])
    t["scale"], t["bias"] = _leaf(data["scale"]), _leaf(data["bias"])
    weight = t["weight"] if reduction == "mean" else None
    loss = call(kind, t, group, reduction, chunk, weight)
    (loss * t["coef"] if reduction == "none" else loss).sum().backward()
    return loss.detach(), {k: t[k].grad for k in GRAD_KEYS[kind]}


def _values(world: int, rank: int, group) -> dict:
    data, rows = global_data(world), row_slice(world, rank)
    out = {}
    for kind in KINDS:
        for reduction in ("mean", "sum", "none"):
            for chunk in CHUNKS:
                out[kind, reduction, chunk] = run_case(kind, data, rows, group, reduction, chunk)
    return out


def _modules(world: int, rank: int, group) -> dict:
    """Each Module built with ``process_group`` equals the cross-rank function."""
    from losskit import nn as LN

    data, rows = global_data(world), row_slice(world, rank)
    e, labels, x, y = _leaf(data["e"][rows]), data["labels"][rows], _leaf(data["x"][rows]), data["y"][rows]
    s, b = data["scale"], data["bias"]
    out = {
        "nt_xent": LN.NTXentLoss(temperature=TEMPERATURE, process_group=group)(e, labels),
        "supcon": LN.SupConLoss(temperature=TEMPERATURE, base_temperature=BASE, process_group=group)(
            e, labels
        ),
        "clip": LN.ClipLoss(process_group=group)(x, y, s),
        "siglip_ring": LN.SigLipLoss(process_group=group, exchange="ring")(x, y, s, b),
    }
    total = sum(out.values())
    total.backward()
    return {k: v.detach() for k, v in out.items()} | {"grad_e": e.grad, "grad_x": x.grad}


def _outcome(fn, *args, **kwargs) -> tuple[str, str, float]:
    t0 = time.perf_counter()
    try:
        fn(*args, **kwargs)
        return ("no error", "", time.perf_counter() - t0)
    except Exception as err:
        return (type(err).__name__, str(err), time.perf_counter() - t0)


def _errors(world: int, rank: int, group) -> dict:
    """Each case is wrong on the last rank only; every rank must raise the same clear error."""
    data, rows = global_data(world), row_slice(world, rank)
    last = rank == world - 1
    e, labels, x, y = data["e"][rows], data["labels"][rows], data["x"][rows], data["y"][rows]
    s, b = data["scale"], data["bias"]
    nt, sup = LD.cross_rank_nt_xent_loss, LD.cross_rank_supcon_loss
    clip, sig = LD.cross_rank_clip_loss, LD.cross_rank_siglip_loss
    sb = {"logit_scale": s, "logit_bias": b}
    cases = {
        "nt_xent_bad_dim": (nt, (e[:, :-1] if last else e, labels), {}),
        "nt_xent_bad_dtype": (nt, (e.float() if last else e, labels), {}),
        "nt_xent_bad_labels": (nt, (e, labels[:-1] if last else labels), {}),
        "nt_xent_float_labels": (nt, (e, labels.double() if last else labels), {}),
        "nt_xent_temperature": (nt, (e, labels), {"temperature": 0.2 if last else 0.1}),
        "nt_xent_bad_temperature": (nt, (e, labels), {"temperature": -1.0 if last else 0.1}),
        "nt_xent_reduction": (nt, (e, labels), {"reduction": "none" if last else "mean"}),
        "supcon_base": (sup, (e, labels), {"base_temperature": 0.5 if last else 0.07}),
        "clip_bad_dim": (clip, (x[:, :-1] if last else x, y[:, :-1] if last else y), {"logit_scale": s}),
        "clip_mismatched_pair": (clip, (x, y[:, :-1] if last else y), {"logit_scale": s}),
        "clip_bad_scale": (clip, (x, y), {"logit_scale": torch.ones(2) if last else s}),
        "siglip_exchange": (sig, (x, y), {**sb, "exchange": "ring" if last else "gather"}),
        "siglip_unknown_exchange": (sig, (x, y), {**sb, "exchange": "bidir" if last else "ring"}),
        "siglip_reduction": (sig, (x, y), {**sb, "reduction": "sum" if last else "mean"}),
    }  # fmt: skip
    out = {}
    for name, (fn, args, kwargs) in cases.items():
        out[name] = _outcome(fn, *args, process_group=group, **kwargs)
    t = torch.ones(1)  # the group is still usable after a raised check
    dist.all_reduce(t, group=group)
    out["after"] = t
    return out


SCENARIOS = {"values": _values, "modules": _modules, "errors": _errors}
TIMEOUT_S = 60  # the process group's timeout (tests/_dist_harness.py runs the scenarios)
