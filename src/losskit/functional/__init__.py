"""Every losskit loss as a pure function, grouped by family.

Conventions (see ``docs/conventions.md``): ``input, target`` first, hyperparameters keyword-only,
``weight`` (per-element, broadcast to the unreduced loss) and ``reduction='mean'|'sum'|'none'``; losses
that carry a torch name keep torch's signature. Each family module lists its public names in its own
``__all__``; this package re-exports them one per line (a test checks that the two agree).
"""

from __future__ import annotations

from .boxes import (
    aligned_box_iou,
    aligned_complete_box_iou,
    aligned_distance_box_iou,
    aligned_generalized_box_iou,
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    validate_boxes,
)
from .classification import (
    binary_cross_entropy_with_logits,
    cross_entropy,
)
from .contrastive import (
    clip_loss,
    nt_xent_loss,
    siglip_loss,
    supcon_loss,
)
from .focal import (
    sigmoid_focal_loss,
    softmax_focal_loss,
)
from .fused import (
    margin_softmax_loss,
)
from .ghm import (
    GHMStatistics,
    ghmc_loss,
    ghmc_statistics,
    ghmr_loss,
    ghmr_statistics,
)
from .iou import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    iou_loss,
)
from .linear_cross_entropy import (
    linear_cross_entropy,
)
from .margin import (
    am_softmax_loss,
    arcface_loss,
    arcface_target_logit,
    combined_margin_loss,
    combined_margin_target_logit,
    cosface_loss,
    cosface_target_logit,
    l2_softmax_alpha_lower_bound,
    l2_softmax_loss,
    large_margin_softmax_loss,
    margin_cross_entropy,
    normface_loss,
    sphereface_lambda,
    sphereface_loss,
    sphereface_target_logit,
    subcenter_arcface_loss,
)
from .metric import (
    TripletStats,
    batch_contrastive_loss,
    batch_triplet_loss,
    center_loss,
    contrastive_loss,
    facenet_triplet_loss,
    triplet_margin_loss,
    update_centers,
)
from .mining import (
    batch_hard_triplets,
    distance_matrix,
    semi_hard_triplets,
    triplet_label_masks,
)
from .regression import (
    huber_loss,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)

__all__ = [
    "GHMStatistics",
    "TripletStats",
    "aligned_box_iou",
    "aligned_complete_box_iou",
    "aligned_distance_box_iou",
    "aligned_generalized_box_iou",
    "am_softmax_loss",
    "arcface_loss",
    "arcface_target_logit",
    "batch_contrastive_loss",
    "batch_hard_triplets",
    "batch_triplet_loss",
    "binary_cross_entropy_with_logits",
    "box_area",
    "box_convert",
    "box_iou",
    "center_loss",
    "clip_loss",
    "combined_margin_loss",
    "combined_margin_target_logit",
    "complete_box_iou",
    "complete_box_iou_loss",
    "contrastive_loss",
    "cosface_loss",
    "cosface_target_logit",
    "cross_entropy",
    "distance_box_iou",
    "distance_box_iou_loss",
    "distance_matrix",
    "facenet_triplet_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "ghmc_loss",
    "ghmc_statistics",
    "ghmr_loss",
    "ghmr_statistics",
    "huber_loss",
    "iou_loss",
    "l1_loss",
    "l2_softmax_alpha_lower_bound",
    "l2_softmax_loss",
    "large_margin_softmax_loss",
    "linear_cross_entropy",
    "margin_cross_entropy",
    "margin_softmax_loss",
    "mse_loss",
    "normface_loss",
    "nt_xent_loss",
    "semi_hard_triplets",
    "siglip_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "softmax_focal_loss",
    "sphereface_lambda",
    "sphereface_loss",
    "sphereface_target_logit",
    "subcenter_arcface_loss",
    "supcon_loss",
    "triplet_label_masks",
    "triplet_margin_loss",
    "update_centers",
    "validate_boxes",
]
