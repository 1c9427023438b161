"""losskit.distributed's contrastive losses at world sizes 2 and 3 (gloo, float64).

One gloo world per size runs every scenario of ``tests/_dist_workers_contrastive.py`` once, with uneven
per-rank batches and, at world 3, an empty rank. Each test compares one scenario's saved results with
the single-process loss on the concatenated batch (itself tested against the papers' formulas in
``test_contrastive.py``): the same value on every rank, each rank's gradients equal to the
single-process gradients of its rows, and the gradients of the replicated logit scale and bias summing
over ranks to the single-process ones. Every argument mismatch raises the same error on every rank.
"""

from __future__ import annotations

import pytest
import torch

import _dist_harness as H
import _dist_workers_contrastive as W
from losskit import distributed as LD

TOL = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"world{w}")
def world(request):
    return H.run_world("_dist_workers_contrastive", request.param)


_get = H.get


def _single_process(kind: str, reduction: str, world: int):
    """The loss and gradients of one process holding the concatenated batch."""
    return W.run_case(kind, W.global_data(world), slice(None), None, reduction, None)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize("kind", W.KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_and_every_gradient_equal_single_process(world, kind, reduction):
    n, res = _get(world, "values")
    want, want_grads = _single_process(kind, reduction, n)
    for chunk in W.CHUNKS:
        got = [res[r][kind, reduction, chunk] for r in range(n)]
        if reduction == "none":
            torch.testing.assert_close(torch.cat([loss for loss, _ in got]), want, **TOL)
        else:
            for loss, _ in got:  # the global batch's loss, the same on every rank
                torch.testing.assert_close(loss, want, **TOL)
        for key, grad in want_grads.items():
            if key in ("scale", "bias"):  # replicated: the ranks' shares sum to the gradient
                torch.testing.assert_close(sum(g[key] for _, g in got), grad, **TOL)
            else:
                torch.testing.assert_close(torch.cat([g[key] for _, g in got]), grad, **TOL)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_the_ranks_actually_share_the_work(world):
    # guard against a test that compares a loss with itself: each rank's own share differs from the total
    n, res = _get(world, "values")
    _, got = res[0]["clip", "sum", None]
    want_grad = _single_process("clip", "sum", n)[1]["scale"]
    assert not torch.allclose(got["scale"], want_grad)
    assert W.sizes_for(n)[0] < sum(W.sizes_for(n))


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_modules_with_a_process_group_equal_single_process(world):
    n, res = _get(world, "modules")
    data = W.global_data(n)
    for kind in ("nt_xent", "supcon", "clip", "siglip_ring"):
        mean = W.call(kind, data, None, "mean", None)
        for r in range(n):
            torch.testing.assert_close(res[r][kind], mean, **TOL)
    e, x = W._leaf(data["e"]), W._leaf(data["x"])
    total = (
        W.call("nt_xent", {**data, "e": e}, None, "mean", None)
        + W.call("supcon", {**data, "e": e}, None, "mean", None)
        + W.call("clip", {**data, "x": x}, None, "mean", None)
        + W.call("siglip_ring", {**data, "x": x}, None, "mean", None)
    )
    total.backward()
    torch.testing.assert_close(torch.cat([res[r]["grad_e"] for r in range(n)]), e.grad, **TOL)
    torch.testing.assert_close(torch.cat([res[r]["grad_x"] for r in range(n)]), x.grad, **TOL)


EXPECTED = {
    "nt_xent_bad_dim": ("ValueError", r"expected the same embedding dim D on every rank, got \[6, .*5\]"),
    "nt_xent_bad_dtype": ("ValueError", r"expected the same embedding dtype on every rank"),
    "nt_xent_bad_labels": ("ValueError", r"failed on 1 of \d ranks: rank \d: .*expected labels of shape"),
    "nt_xent_float_labels": ("TypeError", r"labels must be an integer tensor"),
    "nt_xent_temperature": ("ValueError", r"expected the same temperature on every rank, got \[0.1,.*0.2\]"),
    "nt_xent_bad_temperature": ("ValueError", r"temperature must be a finite number > 0; got -1.0"),
    "nt_xent_reduction": ("ValueError", r"expected the same reduction on every rank"),
    "supcon_base": ("ValueError", r"cross_rank_supcon_loss: expected the same base_temperature on every"),
    "clip_bad_dim": ("ValueError", r"cross_rank_clip_loss: expected the same feature dim D on every rank"),
    "clip_mismatched_pair": ("ValueError", r"expected text_features of the same shape as image_features"),
    "clip_bad_scale": ("ValueError", r"expected logit_scale of shape \(\) or \(1,\), got \(2,\)"),
    "siglip_exchange": ("ValueError", r"cross_rank_siglip_loss: expected the same exchange on every rank"),
    "siglip_unknown_exchange": ("ValueError", r"exchange must be 'gather' or 'ring'; got 'bidir'"),
    "siglip_reduction": ("ValueError", r"expected the same reduction on every rank"),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_an_argument_mismatch_raises_on_every_rank(world, case):
    import re

    n, res = _get(world, "errors")
    kind, pattern = EXPECTED[case]
    messages = set()
    for r in range(n):
        err_type, message, _ = res[r][case]  # a rank left in a collective would time out instead
        assert err_type == kind, f"rank {r}: {err_type}: {message}"
        assert re.search(pattern, message), f"rank {r}: {message}"
        messages.add(message)
    assert len(messages) == 1  # the same message everywhere
    for r in range(n):
        torch.testing.assert_close(res[r]["after"], torch.full((1,), float(n)))


def test_no_group_is_the_single_process_loss():
    data = W.global_data(1)
    for kind in W.KINDS:
        for reduction in ("mean", "none"):
            got = W.call(kind, data, None, reduction, 2)
            if kind == "siglip_ring":
                want = LD.cross_rank_siglip_loss(
                    data["x"], data["y"], logit_scale=data["scale"], logit_bias=data["bias"],
                    process_group=None, reduction=reduction,
                )  # fmt: skip
                torch.testing.assert_close(got, want)
            assert got.dtype == torch.float64
    with pytest.raises(ValueError, match=r"cross_rank_siglip_loss: exchange must be 'gather' or 'ring'"):
        LD.cross_rank_siglip_loss(
            data["x"], data["y"], logit_scale=1.0, logit_bias=0.0, process_group=None, exchange="x"
        )
