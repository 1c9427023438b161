"""Every public name of losskit, used once as a user would: a tour and a type check.

``make lint`` type-checks this file with mypy (a misspelt or missing public name fails the build), and
``tests/test_packaging.py`` runs it and checks that it names every public name. Run it with
``python examples/api_usage.py``; it takes a second on a CPU.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

import losskit
import losskit.distributed as LD
import losskit.functional as LF
import losskit.nn as LN

torch.manual_seed(0)
N, C, D = 8, 5, 16


def regression() -> list[Tensor]:
    pred, target = torch.randn(N, 4, requires_grad=True), torch.randn(N, 4)
    w = torch.rand(N, 4)
    out = [
        LF.l1_loss(pred, target),
        LF.l1_loss(pred, target, reduction="sum", weight=w),
        LF.mse_loss(pred, target),
        LF.smooth_l1_loss(pred, target, beta=0.5),
        LF.huber_loss(pred, target, delta=2.0),
        LN.L1Loss()(pred, target),
        LN.MSELoss(reduction="sum")(pred, target),
        LN.SmoothL1Loss(beta=0.1)(pred, target),
        LN.HuberLoss(delta=0.5)(pred, target, w),
    ]
    return out


def classification() -> list[Tensor]:
    logits, labels = torch.randn(N, C, requires_grad=True), torch.randint(0, C, (N,))
    multi = (torch.rand(N, C) < 0.3).float()
    class_weight = torch.rand(C)
    return [
        LF.binary_cross_entropy_with_logits(logits, multi, pos_weight=torch.full((C,), 2.0)),
        LF.cross_entropy(logits, labels, class_weight, label_smoothing=0.1),
        LN.BCEWithLogitsLoss(weight=torch.ones(C))(logits, multi),
        LN.CrossEntropyLoss(ignore_index=0)(logits, labels),
    ]


def focal_and_ghm() -> list[Tensor]:
    logits = torch.randn(100, C, requires_grad=True)
    hard = (torch.rand(100, C) < 0.05).float()
    soft = torch.rand(100, C)  # quality / IoU-aware targets
    counts = torch.zeros(10)
    stats: LF.GHMStatistics = LF.ghmc_statistics(logits, hard)
    regression_stats: LF.GHMStatistics = LF.ghmr_statistics(logits, soft)
    assert stats.counts.shape == regression_stats.counts.shape == (10,)
    return [
        LF.sigmoid_focal_loss(logits, hard, alpha=0.25, gamma=2.0),
        LF.sigmoid_focal_loss(logits, soft, alpha=None, gamma=1.5),
        LF.softmax_focal_loss(logits, torch.randint(0, C, (100,)), gamma=2.0),
        LF.ghmc_loss(logits, hard, bins=10, momentum=0.75, running_counts=counts),
        LF.ghmr_loss(logits, soft, mu=0.02),
        LN.SigmoidFocalLoss(alpha=-1)(logits, hard),
        LN.SoftmaxFocalLoss(gamma=1.0)(logits, torch.randint(0, C, (100,))),
        LN.GHMCLoss(bins=30, momentum=0.75)(logits, hard),
        LN.GHMRLoss()(logits, soft),
    ]


def boxes() -> list[Tensor]:
    xy = torch.rand(N, 2) * 10
    pred = torch.cat([xy, xy + 1 + torch.rand(N, 2) * 5], dim=1).requires_grad_(True)
    target = torch.cat([xy + 0.5, xy + 2 + torch.rand(N, 2) * 5], dim=1)
    LF.validate_boxes(target, "target")
    xywh = LF.box_convert(target, "xyxy", "xywh")
    assert LF.box_area(LF.box_convert(xywh, "xywh", "xyxy")).shape == (N,)
    pairwise = [LF.box_iou, LF.generalized_box_iou, LF.distance_box_iou, LF.complete_box_iou]
    aligned = [
        LF.aligned_box_iou,
        LF.aligned_generalized_box_iou,
        LF.aligned_distance_box_iou,
        LF.aligned_complete_box_iou,
    ]
    for f in pairwise:
        assert f(pred.detach(), target[:3]).shape == (N, 3)
    for g in aligned:
        assert g(pred.detach(), target).shape == (N,)
    return [
        LF.iou_loss(pred, target, mode="log"),
        LF.generalized_box_iou_loss(pred, target),
        LF.distance_box_iou_loss(pred, target),
        LF.complete_box_iou_loss(pred, target, reduction="sum"),
        LN.IoULoss()(pred, target),
        LN.GeneralizedBoxIoULoss()(pred, target),
        LN.DistanceBoxIoULoss()(pred, target),
        LN.CompleteBoxIoULoss(gated=True)(pred, target),
    ]


def margins() -> list[Tensor]:
    cosine = (torch.rand(N, C) * 2 - 1).requires_grad_(True)
    labels = torch.randint(0, C, (N,))
    x, centers = torch.randn(N, D, requires_grad=True), torch.randn(C, D, requires_grad=True)
    arc = functools.partial(LF.arcface_target_logit, margin=0.5)
    cos_t = cosine.gather(1, labels[:, None]).squeeze(1)
    lam = LF.sphereface_lambda(100)
    assert LF.l2_softmax_alpha_lower_bound(C, 0.9) > 0
    return [
        LF.normface_loss(cosine, labels, scale=16.0),
        LF.cosface_loss(cosine, labels),
        LF.am_softmax_loss(cosine, labels),
        LF.arcface_loss(cosine, labels, fallback="linear"),
        LF.combined_margin_loss(cosine, labels, m1=1.0, m2=0.3, m3=0.2, gradient="straight_through"),
        LF.sphereface_loss(cosine, labels, lambda_=lam),
        LF.subcenter_arcface_loss(torch.rand(N, C * 3) * 2 - 1, labels, subcenters=3),
        LF.margin_cross_entropy(cosine, labels, LF.cosface_target_logit(cos_t), scale=30.0),
        LF.margin_cross_entropy(cosine, labels, LF.combined_margin_target_logit(cos_t, m2=0.2)),
        LF.margin_cross_entropy(cosine, labels, LF.sphereface_target_logit(cos_t, margin=4)),
        LF.l2_softmax_loss(x, centers, labels, alpha=8.0),
        LF.large_margin_softmax_loss(x, centers, labels, margin=2),
        LF.margin_softmax_loss(x, centers, labels, target_logit=arc, scale=64.0, chunk_size=2),
        LN.ArcFaceLoss(D, C)(x, labels),
        LN.CosFaceLoss(D, C)(x, labels),
        LN.AMSoftmaxLoss(D, C)(x, labels),
        LN.CombinedMarginLoss(D, C, m2=0.5)(x, labels),
        LN.SphereFaceLoss(D, C)(x, labels),
        LN.NormFaceLoss(D, C, scale=16.0)(x, labels),
        LN.SubCenterArcFaceLoss(D, C, subcenters=2)(x, labels),
        LN.L2SoftmaxLoss(D, C, alpha=8.0)(x, labels),
        LN.LargeMarginSoftmaxLoss(D, C, margin=2)(x, labels),
    ]


def metric() -> list[Tensor]:
    emb, ids = torch.randn(N, D, requires_grad=True), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    a, p, n = torch.randn(3, N, D).unbind(0)
    centers = torch.randn(4, D)
    LF.update_centers(centers, emb.detach(), ids, alpha=0.5)
    pos, neg = LF.triplet_label_masks(ids)
    assert pos.shape == neg.shape == (N, N)
    anchor, positive, negative = LF.batch_hard_triplets(emb.detach(), ids)
    semi_anchor, semi_negative = LF.semi_hard_triplets(emb.detach(), ids)
    assert anchor.shape == positive.shape == negative.shape == (N,)
    assert semi_anchor.shape == semi_negative.shape
    assert LF.distance_matrix(emb.detach()).shape == (N, N)
    loss, stats = LF.batch_triplet_loss(emb, ids, mining="batch_all", return_stats=True)
    assert isinstance(stats, LF.TripletStats)
    module_loss, _ = LN.TripletLoss(mining="semi_hard")(emb, ids, return_stats=True)
    return [
        loss,
        module_loss,
        LF.center_loss(emb, ids, centers),
        LF.contrastive_loss(a, p, torch.rand(N) < 0.5, margin=1.0),
        LF.batch_contrastive_loss(emb, ids),
        LF.triplet_margin_loss(a, p, n, margin=1.0, p=2),
        LF.facenet_triplet_loss(a, p, n, margin=0.2),
        LN.CenterLoss(4, D)(emb, ids),
        LN.ContrastiveLoss()(a, p, torch.rand(N) < 0.5),
        LN.BatchContrastiveLoss()(emb, ids),
        LN.TripletMarginLoss(margin=0.5)(a, p, n),
        LN.FaceNetTripletLoss()(a, p, n),
    ]


def contrastive() -> list[Tensor]:
    views = torch.randn(2 * N, D, requires_grad=True)
    ids = torch.arange(N).repeat(2)  # two views of each image share an id
    img, txt = torch.randn(N, D, requires_grad=True), torch.randn(N, D)
    scale = torch.tensor(10.0, requires_grad=True)
    return [
        LF.nt_xent_loss(views, ids, temperature=0.1),
        LF.supcon_loss(views, ids, temperature=0.1, chunk_size=4),
        LF.clip_loss(img, txt, logit_scale=scale),
        LF.siglip_loss(img, txt, logit_scale=scale, logit_bias=-10.0),
        LN.NTXentLoss(temperature=0.5)(views, ids),
        LN.SupConLoss()(views, ids),
        LN.ClipLoss()(img, txt, scale),
        LN.SigLipLoss()(img, txt, scale, -10.0),
    ]


def language_model_head() -> list[Tensor]:
    hidden = torch.randn(N, D, requires_grad=True)
    vocab = torch.randn(100, D, requires_grad=True)
    tokens = torch.randint(0, 100, (N,))
    loss, z = LF.linear_cross_entropy(hidden, vocab, tokens, z_loss=1e-4, softcap=30.0, return_z_loss=True)
    head = LN.LinearCrossEntropyLoss(D, 100, bias=True, label_smoothing=0.1)
    return [loss, z, head(hidden, tokens)]


def single_process_distributed() -> list[Tensor]:
    """Every cross-rank form with ``process_group=None`` is the single-process loss."""
    emb, ids = torch.randn(N, D, requires_grad=True), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    img, txt = torch.randn(N, D, requires_grad=True), torch.randn(N, D)
    assert list(LD.class_shard(10, 3, 1)) == [4, 5, 6]
    assert LD.gather_with_grad(emb) is emb
    assert callable(LD.sum_gradients_hook)
    return [
        LD.cross_rank_batch_triplet_loss(emb, ids, process_group=None),
        LD.cross_rank_batch_contrastive_loss(emb, ids, process_group=None),
        LD.cross_rank_nt_xent_loss(emb, ids, process_group=None),
        LD.cross_rank_supcon_loss(emb, ids, process_group=None),
        LD.cross_rank_clip_loss(img, txt, logit_scale=10.0, process_group=None),
        LD.cross_rank_siglip_loss(img, txt, logit_scale=10.0, logit_bias=-10.0, process_group=None),
    ]


def main() -> None:
    losses: list[Tensor] = []
    for part in (
        regression,
        classification,
        focal_and_ghm,
        boxes,
        margins,
        metric,
        contrastive,
        language_model_head,
        single_process_distributed,
    ):
        losses += part()
    total = torch.stack([loss.float().sum() for loss in losses]).sum()
    total.backward()
    print(f"losskit {losskit.__version__}: {len(losses)} losses, all finite: {bool(torch.isfinite(total))}")


if __name__ == "__main__":
    main()
