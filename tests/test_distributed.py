"""losskit.distributed: class-parallel margin softmax and cross-rank metric learning.

The multi-process tests start gloo worlds of 2 and 3 CPU processes (unequal batch sizes, one empty
rank, an uneven class split) that run every scenario of ``tests/_dist_workers.py`` once; each test here
compares one scenario's saved results with a single-process float64 reference on the concatenated
batch with the full centre matrix, written naively from the formula.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import _dist_harness as H
import _dist_workers as W
import losskit.functional as LF
from losskit import distributed as LD
from losskit.functional import fused

FN = "margin_softmax_loss"  # the class-parallel margin loss is margin_softmax_loss(process_group=...)


# --------------------------------------------------------------------------------------------------
# naive single-process references (float64)
# --------------------------------------------------------------------------------------------------


def ref_margin_rows(x, w, y, s, phi):
    """Per-row loss: cross-entropy of s*cos logits whose target entry is s*phi(cos), all written out."""
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    s = s if isinstance(s, torch.Tensor) else torch.full((x.shape[0],), float(s), dtype=x.dtype)
    onehot = F.one_hot(y, w.shape[0]).bool()
    cos_t = cos[torch.arange(x.shape[0]), y]
    logits = torch.where(onehot, (s * phi(cos_t))[:, None], s[:, None] * cos)
    return torch.logsumexp(logits, dim=1) - logits[torch.arange(x.shape[0]), y]


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


# --------------------------------------------------------------------------------------------------
# single process (no group): the same function, no collectives
# --------------------------------------------------------------------------------------------------


@given(
    n=st.integers(0, 6),
    c=st.integers(1, 9),
    chunk=st.integers(1, 10),
    scale=st.floats(1.0, 40.0),
    seed=st.integers(0, 2**16),
    kept=st.integers(0, 3),
)
def test_single_process_matches_reference(n, c, chunk, scale, seed, kept):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(c, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, c, (n,), generator=g)
    got = LF.margin_softmax_loss(
        x, w, y, target_logit=W.arcface_logit, scale=scale, process_group=None, chunk_size=chunk,
        keep_budget=kept * n * chunk * 8, reduction="sum",
    )  # fmt: skip  # keep `kept` chunks, recompute the rest
    gx, gw = torch.autograd.grad(got, (x, w))
    want = ref_margin_rows(x, w, y, scale, W.arcface_logit).sum()
    rx, rw = torch.autograd.grad(want, (x, w))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gx, rx, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw, rw, rtol=1e-10, atol=1e-12)


def test_single_process_equals_cross_entropy_at_margin_zero():
    # phi = identity: plain NormFace, i.e. F.cross_entropy on s * cos
    x, w = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([0, 3, 3, 1, 2])
    got = LF.margin_softmax_loss(x, w, y, target_logit=lambda c: c, scale=16.0, process_group=None)
    want = F.cross_entropy(16.0 * F.normalize(x) @ F.normalize(w).T, y)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_single_process_gradcheck_with_per_row_scale():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = (2.0 + torch.rand(4, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = torch.tensor([0, 4, 2, 2])

    def f(x, w, s):
        return LF.margin_softmax_loss(
            x, w, y, target_logit=W.arcface_logit, scale=s, process_group=None, chunk_size=2
        )

    assert torch.autograd.gradcheck(f, (x, w, s))


def test_single_process_empty_batch_and_low_precision():
    x = torch.zeros(0, 3, requires_grad=True)
    w = torch.randn(4, 3, requires_grad=True)
    loss = LF.margin_softmax_loss(
        x, w, torch.zeros(0, dtype=torch.long), target_logit=W.arcface_logit, scale=30.0, process_group=None
    )
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(w.grad, torch.zeros_like(w))
    xb = torch.randn(6, 3, dtype=torch.float64)
    wb = torch.randn(4, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    want = LF.margin_softmax_loss(xb, wb, y, target_logit=W.arcface_logit, scale=30.0, process_group=None)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        got = LF.margin_softmax_loss(
            xb.to(dtype), wb.to(dtype), y, target_logit=W.arcface_logit, scale=30.0, process_group=None
        )
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"reduction": "avg"}, ValueError, r"reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
        ({"input": torch.zeros(2, 3, dtype=torch.long)}, TypeError, r"input must be a floating-point"),
        ({"centers": torch.zeros(4, 3, dtype=torch.long)}, TypeError, r"centers must be a floating-point"),
        ({"target": torch.zeros(2)}, TypeError, r"target must be an integer tensor"),
        ({"input": torch.zeros(2, 3, 1)}, ValueError, r"expected input of shape \(N, D\), got \(2, 3, 1\)"),
        ({"centers": torch.zeros(4)}, ValueError, r"expected centers of shape \(C, D\), got \(4,\)"),
        (
            {"target": torch.zeros(2, 1, dtype=torch.long)},
            ValueError,
            r"expected target of shape \(2,\), got \(2, 1\)",
        ),
        (
            {"target": torch.zeros(3, dtype=torch.long)},
            ValueError,
            r"expected target of shape \(2,\), got \(3,\)",
        ),
        (
            {"centers": torch.zeros(4, 2)},
            ValueError,
            r"expected centers of shape \(C, 3\), got \(4, 2\)",
        ),
        ({"target_logit": 0.5}, TypeError, r"target_logit must be callable; got float"),
        ({"scale": torch.ones(3)}, ValueError, r"expected scale of shape \(\) or \(2,\), got \(3,\)"),
        ({"target": torch.tensor([0, -1])}, ValueError, r"target must hold class indices in \[0, 4\)"),
        ({"keep_budget": -1}, ValueError, r"keep_budget must be >= 0 \(bytes\); got -1"),
        ({"scale": torch.ones(2, dtype=torch.long)}, TypeError, r"scale must be a floating-point"),
        ({"scale": 0.0}, ValueError, r"scale must be in \(0.0, inf\); got 0.0"),
        ({"sample_rate": 0.0}, ValueError, r"sample_rate must be in \(0.0, 1.0\]; got 0.0"),
        ({"chunk_size": 0}, ValueError, r"chunk_size must be >= 1; got 0"),
        ({"num_classes": 2.5}, TypeError, r"num_classes must be an int; got float"),
        (
            {"weight": torch.ones(3)},
            ValueError,
            r"weight must broadcast to the unreduced loss of shape \(2,\)",
        ),
    ],
)
def test_argument_errors_single_process(kwargs, err, match):
    args = {
        "input": torch.randn(2, 3),
        "centers": torch.randn(4, 3),
        "target": torch.tensor([0, 3]),
        "target_logit": W.arcface_logit,
        "scale": 30.0,
        "process_group": None,
    }
    args.update(kwargs)
    with pytest.raises(err, match=f"{FN}: {match}"):
        LF.margin_softmax_loss(args.pop("input"), args.pop("centers"), args.pop("target"), **args)


def test_class_shard_matches_tensor_split():
    for c in (0, 1, 7, 11, 100):
        for world in (1, 2, 3, 8):
            parts = torch.tensor_split(torch.arange(c), world)
            assert [list(LD.class_shard(c, world, r)) for r in range(world)] == [p.tolist() for p in parts]
    with pytest.raises(ValueError, match=r"class_shard: rank must be an int in \[0, 2\); got 2"):
        LD.class_shard(10, 2, 2)
    with pytest.raises(ValueError, match=r"class_shard: num_classes must be an int >= 0; got -1"):
        LD.class_shard(-1, 2, 0)
    with pytest.raises(ValueError, match=r"class_shard: world_size must be >= 1; got 0"):
        LD.class_shard(10, 0, 0)


def test_partial_fc_keeps_every_positive():
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([3, 3, 17, -4, 9, 40])  # block positions; -4 and 40 belong to other ranks
    keep = fused._partial_fc_keep(t, 20, 0.25, g)
    assert keep.tolist() == sorted(set(keep.tolist()))
    assert {3, 9, 17} <= set(keep.tolist()) and len(keep) == 5  # int(0.25 * 20) = 5 >= 3 positives
    keep = fused._partial_fc_keep(t, 20, 0.1, g)  # int(2.0) = 2 < 3 positives: exactly the positives
    assert keep.tolist() == [3, 9, 17]


def test_gather_with_grad_without_group_is_identity():
    x = torch.randn(3, 2)
    assert LD.gather_with_grad(x, None) is x


# --------------------------------------------------------------------------------------------------
# multi-process worlds
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"world{w}")
def world(request):
    return H.run_world("_dist_workers", request.param)


_get = H.get


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_loss_and_every_gradient_equal_single_process(world):
    n, res = _get(world, "margin")
    data = W.global_data(n)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    # 'mean' with per-row scales and weights
    x, w, s = _leaf(data["x"]), _leaf(data["w"]), _leaf(data["s"])
    want = (ref_margin_rows(x, w, data["y"], s, W.arcface_logit) * data["weight"]).mean()
    want.backward()
    for r in range(n):
        loss, gx, gw, gs = res[r]["mean"]
        torch.testing.assert_close(loss, want.detach(), **tol)  # the same value on every rank
        torch.testing.assert_close(gx, x.grad[W.row_slice(n, r)], **tol)
        torch.testing.assert_close(gw, w.grad[W.class_slice(n, r)], **tol)
        torch.testing.assert_close(gs, s.grad[W.row_slice(n, r)], **tol)
    # 'none' with a different upstream gradient per row
    x, w = _leaf(data["x"]), _leaf(data["w"])
    rows = ref_margin_rows(x, w, data["y"], 30.0, W.arcface_logit)
    (rows * data["coef"]).sum().backward()
    torch.testing.assert_close(torch.cat([res[r]["none"][0] for r in range(n)]), rows.detach(), **tol)
    torch.testing.assert_close(torch.cat([res[r]["none"][1] for r in range(n)]), x.grad, **tol)
    torch.testing.assert_close(torch.cat([res[r]["none"][2] for r in range(n)]), w.grad, **tol)
    for r in range(n):
        torch.testing.assert_close(res[r]["sum"], rows.detach().sum(), **tol)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_a_rank_whose_input_needs_no_gradient_still_completes_backward(world):
    # it used to skip the row-gradient collective the other ranks wait in (a hang)
    n, res = _get(world, "margin")
    data = W.global_data(n)
    x, w = _leaf(data["x"]), _leaf(data["w"])
    want = ref_margin_rows(x, w, data["y"], 30.0, W.arcface_logit).mean()
    want.backward()
    tol = {"rtol": 1e-10, "atol": 1e-12}
    for r in range(n):
        loss, gx, gw = res[r]["some_inputs_without_grad"]
        torch.testing.assert_close(loss, want.detach(), **tol)
        torch.testing.assert_close(gw, w.grad[W.class_slice(n, r)], **tol)
        if r == n - 1:
            assert gx is None
        else:
            torch.testing.assert_close(gx, x.grad[W.row_slice(n, r)], **tol)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_margin_modules_with_a_process_group_equal_the_single_process_module(world):
    # ArcFaceLoss(..., process_group=g) and friends: rank r holds the r-th tensor_split block of the
    # centres, takes global labels, and gets the single-process loss and its slices of every gradient
    n, res = _get(world, "modules")
    data = W.global_data(n)
    tol = {"rtol": 1e-10, "atol": 1e-12}
    for name, (module_cls, kwargs) in W.module_kinds().items():
        module = module_cls(W.D, W.C, chunk_size=3, **kwargs).double()
        with torch.no_grad():
            module.centers.copy_(data["w"])
        x = _leaf(data["x"])
        want = module(x, data["y"], data["weight"])
        want.backward()
        for r in range(n):
            loss, gx, gw, offset, shape = res[r][name]
            block = W.class_slice(n, r)
            assert (offset, shape) == (block.start, (block.stop - block.start, W.D)), name
            torch.testing.assert_close(loss, want.detach(), **tol, msg=f"{name} loss, rank {r}")
            torch.testing.assert_close(
                gx, x.grad[W.row_slice(n, r)], **tol, msg=f"{name} input grad, rank {r}"
            )
            torch.testing.assert_close(
                gw, module.centers.grad[block], **tol, msg=f"{name} centre grad, rank {r}"
            )


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_partial_fc_equals_softmax_over_kept_classes(world):
    n, res = _get(world, "margin")
    data = W.global_data(n)
    kept = torch.cat([res[r]["partial_fc"][3] for r in range(n)])
    assert set(data["y"].tolist()) <= set(kept.tolist())  # every positive class kept
    assert len(kept) < W.C  # and some negatives dropped
    x, w = _leaf(data["x"]), _leaf(data["w"])
    y_kept = torch.searchsorted(kept, data["y"])
    want = ref_margin_rows(x, w[kept], y_kept, 20.0, W.arcface_logit).mean()
    want.backward()
    tol = {"rtol": 1e-10, "atol": 1e-12}
    for r in range(n):
        loss, gx, gw, _ = res[r]["partial_fc"]
        torch.testing.assert_close(loss, want.detach(), **tol)
        torch.testing.assert_close(gx, x.grad[W.row_slice(n, r)], **tol)
        torch.testing.assert_close(gw, w.grad[W.class_slice(n, r)], **tol)  # 0 for dropped centres


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_training_matches_single_process(world):
    n, res = _get(world, "train")
    backbone = W.make_backbone()
    centers = torch.nn.Parameter(W.global_data(n)["w"].clone())
    opt = torch.optim.SGD([*backbone.parameters(), centers], lr=0.5)
    losses = []
    for step in range(W.train_steps()):
        inp, y = W.step_batch(n, step)
        opt.zero_grad()
        loss = ref_margin_rows(backbone(inp), centers, y, 8.0, W.arcface_logit).mean()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    tol = {"rtol": 1e-9, "atol": 1e-11}
    assert not torch.allclose(backbone.weight, W.make_backbone().weight)  # training moved the weights
    for r in range(n):
        torch.testing.assert_close(res[r]["losses"], torch.stack(losses), **tol)
        torch.testing.assert_close(res[r]["weight"], backbone.weight.detach(), **tol)
        torch.testing.assert_close(res[r]["bias"], backbone.bias.detach(), **tol)
        torch.testing.assert_close(res[r]["centers"], centers.detach()[W.class_slice(n, r)], **tol)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize(
    ("case", "err", "match"),
    [
        (
            "bad_label",
            "ValueError",
            r"target must hold class indices in \[0, 11\); got ids in \[14, 14\] on rank {last}",
        ),
        (
            "bad_dim",
            "ValueError",
            r"expected the same embedding dim D on every rank, got D=\[6, .*5\] by rank",
        ),
        (
            "bad_dtype",
            "TypeError",
            r"argument check failed on 1 of {n} ranks: rank {last}: .*target must be an",
        ),
        (
            "bad_shape",
            "ValueError",
            r"argument check failed on 1 of {n} ranks: rank {last}: .*expected target",
        ),
        ("bad_layout", "ValueError", r"expected centers with \[.*\] classes by rank \(num_classes=11 split"),
        (
            "bad_float_dtype",
            "ValueError",
            r"expected input and centers of the same floating dtype on every rank",
        ),
        (
            "bad_scale_kind",
            "ValueError",
            r"expected scale to be a float on every rank or a tensor on every rank",
        ),
    ],
)
def test_failure_on_one_rank_raises_on_all_ranks(world, case, err, match):
    _check_error_on_all_ranks(world, case, err, f"{FN}: " + match)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize(
    ("case", "err", "match"),
    [
        (
            "metric_bad_dim",
            "ValueError",
            r"expected the same embedding dim D on every rank, got D=\[6, .*5\]",
        ),
        (
            "metric_bad_dtype",
            "ValueError",
            r"expected embeddings of the same dtype on every rank, got \[.*'float32'\] by rank",
        ),
        (
            "metric_bad_margin",
            "ValueError",
            r"argument check failed on 1 of {n} ranks: rank {last}: cross_rank_batch_triplet_loss: "
            r"margin must be",
        ),
    ],
)
def test_cross_rank_failure_on_one_rank_raises_on_all_ranks(world, case, err, match):
    _check_error_on_all_ranks(world, case, err, "cross_rank_batch_triplet_loss: " + match)


# the last rank passes one argument differently (W.margin_mismatches); before, a different reduction
# left every rank blocked in a collective until the process-group timeout
MARGIN_MISMATCH = {
    "margin_reduction_sum": (
        "ValueError",
        r"expected the same reduction on every rank, got \['mean', .*'sum'\]",
    ),
    "margin_reduction_none": (
        "ValueError",
        r"expected the same reduction on every rank, got \['mean', .*'none'\]",
    ),
    "margin_sample_rate": (
        "ValueError",
        r"expected the same sample_rate on every rank, got \[1.0, .*0.5\] by rank",
    ),
    "margin_num_classes": (
        "ValueError",
        r"expected the same num_classes on every rank, got \[11, .*12\] by rank",
    ),
    "margin_requires_grad": (
        "ValueError",
        r"expected gradients needed on every rank or on none \(backward runs collectives\), "
        r"got \[True, .*False\]",
    ),
    "margin_no_grad_mode": ("ValueError", r"expected gradients needed on every rank or on none"),
    "margin_target_logit_shape": (
        "ValueError",
        r"argument check failed on 1 of {n} ranks: rank {last}: margin_softmax_loss: "
        r"target_logit must return one target logit per row",
    ),
    "margin_negative_label": (
        "ValueError",
        r"target must hold class indices in \[0, 11\); got ids in \[-1, -1\] on rank {last}",
    ),
}


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize("case", sorted(MARGIN_MISMATCH))
def test_class_parallel_argument_mismatch_raises_on_every_rank(world, case):
    n, res = _get(world, "margin_mismatch")
    assert set(MARGIN_MISMATCH) == set(W.margin_mismatches())
    err, match = MARGIN_MISMATCH[case]
    pattern = f"{FN}: " + match.format(n=n, last=n - 1)
    for r in range(n):
        kind, message, _ = res[r][case]
        assert kind == err, f"rank {r}: {kind}: {message}"
        assert re.search(pattern, message), f"rank {r}: {message!r} does not match {pattern!r}"
        torch.testing.assert_close(res[r]["after"], torch.tensor([float(n)]))  # group still usable


def _check_error_on_all_ranks(world, case, err, match):
    n, res = _get(world, "errors")
    pattern = match.format(n=n, last=n - 1)
    for r in range(n):
        kind, message, _ = res[r][case]
        assert kind == err, f"rank {r}: {kind}: {message}"
        assert re.search(pattern, message), f"rank {r}: {message!r} does not match {pattern!r}"
        torch.testing.assert_close(res[r]["after"], torch.tensor([float(n)]))  # group still usable


# the last rank passes one argument differently (W.metric_mismatches); before, a different reduction
# aborted rank 0 with SIGABRT (a gloo size mismatch) and the others computed a silently mixed loss
METRIC_MISMATCH = {
    "mismatch_reduction_none": r"expected the same reduction on every rank, got \['mean', .*'none'\] by rank",
    "mismatch_reduction_sum": r"expected the same reduction on every rank, got \['mean', .*'sum'\] by rank",
    "mismatch_return_stats": r"expected the same return_stats on every rank, got \[False, .*True\] by rank",
    "mismatch_mining": r"expected the same mining on every rank, got \['batch_hard', .*'batch_all'\]",
    "mismatch_distance": r"expected the same distance on every rank, got \['euclidean', .*'squared_",
    "mismatch_soft_margin": r"expected the same soft_margin on every rank, got \[False, .*True\] by rank",
    "mismatch_margin": r"expected the same margin on every rank, got \[0.2, .*0.3\] by rank",
    "mismatch_requires_grad": r"expected embeddings that require grad on every rank or on none .*"
    r"got \[True, .*False\] by rank",
    "mismatch_contrastive_reduction": r"expected the same reduction on every rank, got \['mean', .*'none'\]",
    "mismatch_contrastive_margin": r"expected the same margin on every rank, got \[1.0, .*2.0\] by rank",
}


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize("case", sorted(METRIC_MISMATCH))
def test_cross_rank_metric_argument_mismatch_raises_on_every_rank(world, case):
    n, res = _get(world, "metric_mismatch")
    assert set(METRIC_MISMATCH) == set(W.metric_mismatches())
    kind = W.metric_mismatches()[case][0]
    pattern = f"cross_rank_batch_{kind}_loss: " + METRIC_MISMATCH[case]
    for r in range(n):
        err, message, _ = res[r][case]
        assert err == "ValueError", f"rank {r}: {err}: {message}"
        assert re.search(pattern, message), f"rank {r}: {message!r} does not match {pattern!r}"
        torch.testing.assert_close(res[r]["after"], torch.tensor([float(n)]))  # group still usable


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_cross_rank_triplet_stats_and_weights_equal_single_process(world):
    import losskit.functional as LF

    n, res = _get(world, "metric")
    data = W.global_data(n)
    e = _leaf(data["e"])
    want, stats = LF.batch_triplet_loss(
        e, data["labels"], mining="batch_all", margin=0.3, return_stats=True, weight=data["weight"],
        reduction="sum",
    )  # fmt: skip
    want.backward()
    for r in range(n):
        loss, grad, got_stats = res[r]["triplet_stats"]
        torch.testing.assert_close(loss, want.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, e.grad[W.row_slice(n, r)], rtol=1e-10, atol=1e-12)
        assert [int(v) for v in got_stats[:2]] == [int(stats.num_valid), int(stats.num_active)]
        torch.testing.assert_close(got_stats[2], stats.active_fraction)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("triplet_batch_hard", {"mining": "batch_hard", "margin": 0.3}),
        ("triplet_batch_all", {"mining": "batch_all", "margin": 0.3}),
        ("triplet_semi_hard", {"mining": "semi_hard", "margin": 0.3}),
        ("contrastive", {"margin": 1.5}),
    ],
)
def test_cross_rank_metric_losses_equal_single_process(world, name, kwargs):
    import losskit.functional as LF

    n, res = _get(world, "metric")
    data = W.global_data(n)
    e = _leaf(data["e"])
    fn = LF.batch_contrastive_loss if name == "contrastive" else LF.batch_triplet_loss
    want = fn(e, data["labels"], **kwargs)
    want.backward()
    assert want > 0 and e.grad.abs().sum() > 0  # a comparison that can fail
    for r in range(n):
        loss, grad = res[r][name]
        torch.testing.assert_close(loss, want.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, e.grad[W.row_slice(n, r)], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.xdist_group("dist")
def test_gather_with_grad_returns_each_rank_its_slice_of_the_summed_gradient(world):
    n, res = _get(world, "metric")
    data = W.global_data(n)
    total = sum(W.gather_coef(n, r) for r in range(n))  # d(sum of every rank's term)/d(gathered)
    for r in range(n):
        gathered, grad = res[r]["gather"]
        torch.testing.assert_close(gathered, data["e"], rtol=0, atol=0)
        torch.testing.assert_close(grad, total[W.row_slice(n, r)], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn", [LD.cross_rank_batch_triplet_loss, LD.cross_rank_batch_contrastive_loss])
@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (
            {"embeddings": torch.zeros(3, 2, dtype=torch.long)},
            TypeError,
            r"embeddings must be a floating-point",
        ),
        ({"embeddings": torch.zeros(3)}, ValueError, r"expected embeddings of shape \(B, D\), got \(3,\)"),
        ({"labels": torch.zeros(3)}, TypeError, r"labels must be an integer tensor"),
        (
            {"labels": torch.zeros(2, dtype=torch.long)},
            ValueError,
            r"expected labels of shape \(3,\), got \(2,\)",
        ),
        ({"reduction": "avg"}, ValueError, r"reduction must be 'none', 'mean' or 'sum'; got 'avg'"),
        (
            {"weight": torch.ones(2)},
            ValueError,
            r"weight must broadcast to the unreduced loss of shape \(3,\)",
        ),
        ({"margin": -1.0}, ValueError, r"_loss: margin must be a finite number >= 0; got -1.0"),
    ],
)
def test_cross_rank_argument_errors_single_process(fn, kwargs, err, match):
    args = {"embeddings": torch.randn(3, 2), "labels": torch.tensor([0, 0, 1]), "process_group": None}
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fn(args.pop("embeddings"), args.pop("labels"), **args)


def test_cross_rank_losses_without_group_are_the_local_losses():
    import losskit.functional as LF

    x, y = torch.randn(7, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2, 0])
    for mining in ("batch_hard", "batch_all", "semi_hard"):
        got, stats = LD.cross_rank_batch_triplet_loss(
            x, y, process_group=None, mining=mining, return_stats=True, reduction="sum"
        )
        want, want_stats = LF.batch_triplet_loss(x, y, mining=mining, return_stats=True, reduction="sum")
        torch.testing.assert_close(got, want)
        assert stats == want_stats
    torch.testing.assert_close(
        LD.cross_rank_batch_contrastive_loss(x, y, process_group=None, margin=2.0, reduction="none"),
        LF.batch_contrastive_loss(x, y, margin=2.0, reduction="none"),
    )
