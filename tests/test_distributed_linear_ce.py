"""Vocabulary-parallel linear cross-entropy: the head sharded by vocabulary rows over gloo worlds of 2 and 3.

Every rank holds the same tokens and targets and its contiguous block of the head (uneven blocks, and an
empty block where the vocabulary is smaller than the world); the loss must be the single-process loss
on every rank, the hidden states' gradient the whole single-process gradient on every rank, and the
head's (and bias's) gradient this rank's block of the single-process one. A wrong or mismatched argument
on one rank must raise the same error on every rank (no rank left blocked in a collective).
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import _dist_harness as H
import _dist_workers_linear_ce as W
from losskit import functional as LF

FN = "linear_cross_entropy"


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"world{w}")
def world(request):
    return H.run_world("_dist_workers_linear_ce", request.param)


_get = H.get


def _single(name: str, data: dict):
    """The same call in one process on the whole head."""
    leaves = [data["x"].clone().requires_grad_(True), data["w"].clone().requires_grad_(True)]
    leaves.append(data["b"].clone().requires_grad_(True))
    loss = LF.linear_cross_entropy(
        leaves[0], leaves[1], data["t"], linear_bias=leaves[2], **W.kwargs_of(name, data)
    )
    out = loss if loss.dim() == 0 else (loss * data["coef"]).sum()
    return (loss.detach(), *torch.autograd.grad(out, leaves))


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize("name", [*W.OPTIONS, "empty_block"])
def test_loss_and_every_gradient_equal_one_process(world, name):
    n, res = _get(world, "values")
    data = W.global_data() if name != "empty_block" else W.global_data(vocab=n - 1, seed=1)
    want = _single(name if name != "empty_block" else "everything", data)
    vocab = data["w"].shape[0]
    for r in range(n):
        loss, gx, gw, gb = res[r][name]
        rows = W.block(vocab, n, r)
        torch.testing.assert_close(loss, want[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gx, want[1], rtol=1e-12, atol=1e-12)  # the whole gradient, every rank
        torch.testing.assert_close(gw, want[2][rows], rtol=1e-12, atol=1e-12)  # this rank's block
        torch.testing.assert_close(gb, want[3][rows], rtol=1e-12, atol=1e-12)
        assert gw.shape == (rows.stop - rows.start, W.D)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_plain_case_is_linear_then_cross_entropy_and_z_part_is_returned(world):
    n, res = _get(world, "values")
    data = W.global_data()
    want = F.cross_entropy(data["x"] @ data["w"].T + data["b"], data["t"])
    lse = torch.logsumexp(data["x"] @ data["w"].T, dim=1)
    counted = data["t"] != W.IGNORE
    z_want = (0.01 * lse[counted] ** 2).mean()
    for r in range(n):
        torch.testing.assert_close(res[r]["plain"][0], want, rtol=1e-12, atol=1e-12)
        loss, z = res[r]["z_part"]
        torch.testing.assert_close(z, z_want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(loss - z, F.cross_entropy(data["x"] @ data["w"].T, data["t"]))


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_module_with_a_process_group_equals_one_process(world):
    n, res = _get(world, "modules")
    data = W.global_data()
    x, w, b = (data[k].clone().requires_grad_(True) for k in ("x", "w", "b"))
    loss = LF.linear_cross_entropy(x, w, data["t"], linear_bias=b, label_smoothing=0.1, z_loss=0.01)
    gx, gw, gb = torch.autograd.grad(loss, (x, w, b))
    for r in range(n):
        got, rx, rw, rb, offset = res[r]["module"]
        rows = W.block(W.V, n, r)
        assert offset == rows.start and res[r]["shape"] == (rows.stop - rows.start, W.D)
        torch.testing.assert_close(got, loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rx, gx, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rw, gw[rows], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rb, gb[rows], rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize(
    ("case", "err", "match"),
    [
        (
            "bad_dim",
            "ValueError",
            r"argument check failed on 1 of {n} ranks: rank {last}: "
            r"linear_cross_entropy: expected input of shape",
        ),
        (
            "other_smoothing",
            "ValueError",
            r"expected the same label_smoothing on every rank, got \[0.1, .*0.2\]",
        ),
        ("other_target", "ValueError", r"expected the same target on every rank"),
        (
            "out_of_range",
            "ValueError",
            r"target must hold class indices in \[0, 11\) or -100; got ids in \[\d+, 11\]",
        ),
        ("grad_on_some_ranks", "ValueError", r"expected gradients needed on every rank or on none"),
        (
            "bad_weight_shape",
            "ValueError",
            r"expected per-class weight of shape \(11,\) \(the whole vocabulary\)",
        ),
    ],
)
def test_an_error_on_one_rank_raises_on_every_rank(world, case, err, match):
    n, res = _get(world, "errors")
    pattern = f"^{FN}: " + match.format(n=n, last=n - 1)
    for r in range(n):
        kind, message, _ = res[r][case]
        assert kind == err, f"rank {r}: {kind}: {message}"
        assert re.search(pattern, message), f"rank {r}: {message!r} does not match {pattern!r}"
        torch.testing.assert_close(res[r]["after"], torch.tensor([float(n)]))  # the group still works
