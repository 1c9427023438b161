"""The catalogue of every loss in losskit: family, paper, function and Module.

It drives ``losskit list``, the README table and the atlas, and a test checks it against the public
API in both directions, so it cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossInfo:
    function: str  # name in losskit.functional
    module: str  # name in losskit.nn
    family: str
    title: str
    paper: str
    url: str


_FAST_RCNN = ("Girshick, Fast R-CNN, ICCV 2015", "https://arxiv.org/abs/1504.08083")
_HUBER = ("Huber, Robust Estimation of a Location Parameter, 1964", "https://doi.org/10.1214/aoms/1177703732")
_FOCAL = ("Lin et al., Focal Loss for Dense Object Detection, ICCV 2017", "https://arxiv.org/abs/1708.02002")
_GHM = (
    "Li, Liu, Wang, Gradient Harmonized Single-stage Detector, AAAI 2019",
    "https://arxiv.org/abs/1811.05181",
)
_DIOU = ("Zheng et al., Distance-IoU Loss, AAAI 2020", "https://arxiv.org/abs/1911.08287")
_NORMFACE = ("Wang et al., NormFace, ACM MM 2017", "https://arxiv.org/abs/1704.06369")
_COSFACE = ("Wang et al., CosFace, CVPR 2018", "https://arxiv.org/abs/1801.09414")
_ARCFACE = ("Deng et al., ArcFace, CVPR 2019", "https://arxiv.org/abs/1801.07698")
_FACENET = ("Schroff et al., FaceNet, CVPR 2015", "https://arxiv.org/abs/1503.03832")
_DEEPID2 = ("Sun et al., DeepID2, NeurIPS 2014", "https://arxiv.org/abs/1406.4773")

CATALOG: tuple[LossInfo, ...] = (
    # regression
    LossInfo("l1_loss", "L1Loss", "regression", "L1 / mean absolute error", *_HUBER),
    LossInfo("mse_loss", "MSELoss", "regression", "Mean squared error", "Gauss, least squares, 1809", ""),
    LossInfo("smooth_l1_loss", "SmoothL1Loss", "regression", "Smooth L1", *_FAST_RCNN),
    LossInfo("huber_loss", "HuberLoss", "regression", "Huber", *_HUBER),
    # classification
    LossInfo(
        "binary_cross_entropy_with_logits",
        "BCEWithLogitsLoss",
        "classification",
        "Binary cross-entropy on logits",
        "Cox, The Regression Analysis of Binary Sequences, 1958",
        "https://doi.org/10.1111/j.2517-6161.1958.tb00292.x",
    ),
    LossInfo(
        "cross_entropy",
        "CrossEntropyLoss",
        "classification",
        "Cross-entropy / softmax loss (label smoothing, soft targets)",
        "Szegedy et al., Rethinking the Inception Architecture (label smoothing), CVPR 2016",
        "https://arxiv.org/abs/1512.00567",
    ),
    # focal / GHM
    LossInfo("sigmoid_focal_loss", "SigmoidFocalLoss", "focal", "Focal loss (sigmoid)", *_FOCAL),
    LossInfo("softmax_focal_loss", "SoftmaxFocalLoss", "focal", "Focal loss (softmax)", *_FOCAL),
    LossInfo("ghmc_loss", "GHMCLoss", "focal", "GHM-C", *_GHM),
    LossInfo("ghmr_loss", "GHMRLoss", "focal", "GHM-R (ASL1)", *_GHM),
    # boxes
    LossInfo(
        "iou_loss",
        "IoULoss",
        "boxes",
        "IoU loss (linear, -ln IoU)",
        "Yu et al., UnitBox, ACM MM 2016",
        "https://arxiv.org/abs/1608.01471",
    ),
    LossInfo(
        "generalized_box_iou_loss",
        "GeneralizedBoxIoULoss",
        "boxes",
        "GIoU",
        "Rezatofighi et al., Generalized Intersection over Union, CVPR 2019",
        "https://arxiv.org/abs/1902.09630",
    ),
    LossInfo("distance_box_iou_loss", "DistanceBoxIoULoss", "boxes", "DIoU", *_DIOU),
    LossInfo("complete_box_iou_loss", "CompleteBoxIoULoss", "boxes", "CIoU", *_DIOU),
    # margin softmax
    LossInfo(
        "normface_loss", "NormFaceLoss", "margin", "NormFace / COCO (scaled cosine softmax)", *_NORMFACE
    ),
    LossInfo(
        "l2_softmax_loss",
        "L2SoftmaxLoss",
        "margin",
        "L2-constrained softmax",
        "Ranjan et al., L2-constrained Softmax Loss, 2017",
        "https://arxiv.org/abs/1703.09507",
    ),
    LossInfo("cosface_loss", "CosFaceLoss", "margin", "CosFace (large margin cosine)", *_COSFACE),
    LossInfo(
        "am_softmax_loss",
        "AMSoftmaxLoss",
        "margin",
        "AM-Softmax",
        "Wang et al., Additive Margin Softmax, IEEE SPL 2018",
        "https://arxiv.org/abs/1801.05599",
    ),
    LossInfo("arcface_loss", "ArcFaceLoss", "margin", "ArcFace (additive angular margin)", *_ARCFACE),
    LossInfo(
        "combined_margin_loss", "CombinedMarginLoss", "margin", "Combined margin (m1, m2, m3)", *_ARCFACE
    ),
    LossInfo(
        "subcenter_arcface_loss",
        "SubCenterArcFaceLoss",
        "margin",
        "Sub-center ArcFace",
        "Deng et al., Sub-center ArcFace, ECCV 2020",
        "https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf",
    ),
    LossInfo(
        "margin_softmax_loss",
        "ArcFaceLoss",
        "margin",
        "Fused margin softmax on embeddings and class centres (chunked, class-parallel; any margin)",
        *_ARCFACE,
    ),
    LossInfo(
        "sphereface_loss",
        "SphereFaceLoss",
        "margin",
        "SphereFace (A-Softmax)",
        "Liu et al., SphereFace, CVPR 2017",
        "https://arxiv.org/abs/1704.08063",
    ),
    LossInfo(
        "large_margin_softmax_loss",
        "LargeMarginSoftmaxLoss",
        "margin",
        "L-Softmax",
        "Liu et al., Large-Margin Softmax Loss, ICML 2016",
        "https://arxiv.org/abs/1612.02295",
    ),
    # metric
    LossInfo(
        "center_loss",
        "CenterLoss",
        "metric",
        "Center loss",
        "Wen et al., A Discriminative Feature Learning Approach, ECCV 2016",
        "https://ydwen.github.io/papers/WenECCV16.pdf",
    ),
    LossInfo(
        "contrastive_loss", "ContrastiveLoss", "metric", "Contrastive (DeepID2), explicit pairs", *_DEEPID2
    ),
    LossInfo(
        "batch_contrastive_loss",
        "BatchContrastiveLoss",
        "metric",
        "Contrastive over all pairs of a batch",
        *_DEEPID2,
    ),
    LossInfo(
        "triplet_margin_loss",
        "TripletMarginLoss",
        "metric",
        "Triplet margin (torch's: p-norm, optional swap)",
        "Balntas et al., Learning local feature descriptors with triplets, BMVC 2016",
        "http://www.bmva.org/bmvc/2016/papers/paper119/",
    ),
    LossInfo(
        "facenet_triplet_loss",
        "FaceNetTripletLoss",
        "metric",
        "Triplet (FaceNet, squared distances)",
        *_FACENET,
    ),
    LossInfo(
        "batch_triplet_loss",
        "TripletLoss",
        "metric",
        "Triplet with online mining",
        "Hermans et al., In Defense of the Triplet Loss, 2017",
        "https://arxiv.org/abs/1703.07737",
    ),
    # contrastive
    LossInfo(
        "nt_xent_loss",
        "NTXentLoss",
        "contrastive",
        "NT-Xent / InfoNCE (SimCLR)",
        "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020",
        "https://arxiv.org/abs/2002.05709",
    ),
    LossInfo(
        "supcon_loss",
        "SupConLoss",
        "contrastive",
        "Supervised contrastive (SupCon, L_out)",
        "Khosla et al., Supervised Contrastive Learning, NeurIPS 2020",
        "https://arxiv.org/abs/2004.11362",
    ),
    LossInfo(
        "clip_loss",
        "ClipLoss",
        "contrastive",
        "CLIP symmetric image-text cross-entropy",
        "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021",
        "https://arxiv.org/abs/2103.00020",
    ),
    LossInfo(
        "siglip_loss",
        "SigLipLoss",
        "contrastive",
        "SigLIP pairwise sigmoid image-text loss",
        "Zhai et al., Sigmoid Loss for Language Image Pre-Training, ICCV 2023",
        "https://arxiv.org/abs/2303.15343",
    ),
    # language model
    LossInfo(
        "linear_cross_entropy",
        "LinearCrossEntropyLoss",
        "language model",
        "Linear cross-entropy: an LM head's loss without its logits (z-loss, soft-cap, vocabulary-parallel)",
        "Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models, ICLR 2025",
        "https://arxiv.org/abs/2411.09009",
    ),
)

FAMILIES: tuple[str, ...] = (
    "regression",
    "classification",
    "focal",
    "boxes",
    "margin",
    "metric",
    "contrastive",
    "language model",
)


def by_function(name: str) -> LossInfo:
    for info in CATALOG:
        if info.function == name:
            return info
    raise KeyError(f"losskit has no loss named {name!r}")
