"""Worker processes for tests/test_distributed_linear_ce.py: one gloo world runs every scenario in turn.

Every rank builds the same global data from a seed, keeps its block of the vocabulary (rows
``torch.tensor_split(arange(V), world)[rank]`` of the head: uneven blocks, and an empty one where the
vocabulary is smaller than the world), passes the SAME tokens and targets as every other rank, runs a
scenario and saves what it got (losses, gradients, the error it raised) to
``<out>/<scenario>-<rank>.pt``. The parent test compares those with one process; nothing is asserted
here.
"""

from __future__ import annotations

import traceback

import torch
import torch.distributed as dist

from losskit import functional as LF
from losskit import nn as LN

N, D, V = 10, 5, 11
IGNORE = -100

# name -> keyword arguments of linear_cross_entropy (besides the tensors)
OPTIONS = {
    "plain": {},
    "everything": {"label_smoothing": 0.1, "z_loss": 0.01, "softcap": 3.0, "class_weight": True},
    "none": {"reduction": "none", "label_smoothing": 0.2, "class_weight": True},
    "sum": {"reduction": "sum", "z_loss": 0.05, "softcap": 2.0},
    "chunked": {"chunk_size": 2, "label_smoothing": 0.1},
}


def global_data(vocab: int = V, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, vocab, (N,), generator=g)
    t[::4] = IGNORE
    return {
        "x": torch.randn(N, D, generator=g, dtype=torch.float64),
        "w": torch.randn(vocab, D, generator=g, dtype=torch.float64),
        "b": torch.randn(vocab, generator=g, dtype=torch.float64),
        "cw": torch.rand(vocab, generator=g, dtype=torch.float64) + 0.5,
        "t": t,
        "coef": torch.randn(N, generator=g, dtype=torch.float64),
    }


def block(vocab: int, world: int, rank: int) -> slice:
    sizes = [len(p) for p in torch.tensor_split(torch.arange(vocab), world)]
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def kwargs_of(name: str, data: dict) -> dict:
    kw = dict(OPTIONS[name])
    if kw.pop("class_weight", False):
        kw["weight"] = data["cw"]
    return kw


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _run(name: str, data: dict, rows: slice, group) -> tuple:
    """One call with this rank's block of the head; (loss, x.grad, w.grad, b.grad)."""
    x, w, b = _leaf(data["x"]), _leaf(data["w"][rows]), _leaf(data["b"][rows])
    kw = kwargs_of(name, data)
    loss = LF.linear_cross_entropy(x, w, data["t"], linear_bias=b, process_group=group, **kw)
    out = loss if loss.dim() == 0 else (loss * data["coef"]).sum()
    out.backward()
    return loss.detach(), x.grad, w.grad, b.grad


def _values(world: int, rank: int, group) -> dict:
    data = global_data()
    rows = block(V, world, rank)
    res = {name: _run(name, data, rows, group) for name in OPTIONS}
    # a vocabulary smaller than the world: the last rank holds no class at all
    small = global_data(vocab=world - 1, seed=1)
    res["empty_block"] = _run("everything", small, block(world - 1, world, rank), group)
    loss, z = LF.linear_cross_entropy(
        data["x"], data["w"][rows], data["t"], z_loss=0.01, process_group=group, return_z_loss=True
    )
    res["z_part"] = (loss, z)
    return res


def _modules(world: int, rank: int, group) -> dict:
    data = global_data()
    m = LN.LinearCrossEntropyLoss(D, V, bias=True, label_smoothing=0.1, z_loss=0.01, process_group=group)
    m = m.double()
    rows = block(V, world, rank)
    with torch.no_grad():
        m.linear.weight.copy_(data["w"][rows])
        m.linear.bias.copy_(data["b"][rows])
    x = _leaf(data["x"])
    loss = m(x, data["t"])
    loss.backward()
    return {
        "module": (loss.detach(), x.grad, m.linear.weight.grad, m.linear.bias.grad, m.class_offset),
        "shape": tuple(m.linear.weight.shape),
    }


def _errors(world: int, rank: int, group) -> dict:
    """Each case: only the last rank's arguments are wrong (or differ); every rank must raise."""
    data = global_data()
    rows = block(V, world, rank)
    last = rank == world - 1
    x, w, t = data["x"], data["w"][rows], data["t"]
    cases = {
        "bad_dim": lambda: LF.linear_cross_entropy(x[:, :3] if last else x, w, t, process_group=group),
        "other_smoothing": lambda: LF.linear_cross_entropy(
            x, w, t, label_smoothing=0.2 if last else 0.1, process_group=group
        ),
        "other_target": lambda: LF.linear_cross_entropy(x, w, t.roll(1) if last else t, process_group=group),
        "out_of_range": lambda: LF.linear_cross_entropy(
            x, w, torch.where(t == IGNORE, V, t), process_group=group
        ),
        "grad_on_some_ranks": lambda: LF.linear_cross_entropy(
            x, _leaf(w) if last else w, t, process_group=group
        ),
        "bad_weight_shape": lambda: LF.linear_cross_entropy(
            x, w, t, weight=data["cw"][: V - 1], process_group=group
        ),
    }
    out = {}
    for name, call in cases.items():
        try:
            call()
            out[name] = ("no error", "", "")
        except Exception as err:  # recorded for the parent to compare across ranks
            out[name] = (type(err).__name__, str(err), traceback.format_exc())
    after = torch.ones(1)
    dist.all_reduce(after, group=group)  # the group is still usable after every error
    out["after"] = after
    return out


SCENARIOS = {"values": _values, "modules": _modules, "errors": _errors}
TIMEOUT_S = 60  # the process group's timeout (tests/_dist_harness.py runs the scenarios)
