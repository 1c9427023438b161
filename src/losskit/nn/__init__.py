"""Thin ``nn.Module`` wrappers over :mod:`losskit.functional`; Parameters and buffers live only here.

Each family module lists its public names in its own ``__all__``; this package re-exports them one per
line (a test checks that the two agree).
"""

from __future__ import annotations

from .classification import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
)
from .contrastive import (
    ClipLoss,
    NTXentLoss,
    SigLipLoss,
    SupConLoss,
)
from .feature_margin import (
    L2SoftmaxLoss,
    LargeMarginSoftmaxLoss,
    SubCenterArcFaceLoss,
)
from .focal import (
    SigmoidFocalLoss,
    SoftmaxFocalLoss,
)
from .ghm import (
    GHMCLoss,
    GHMRLoss,
)
from .iou import (
    CompleteBoxIoULoss,
    DistanceBoxIoULoss,
    GeneralizedBoxIoULoss,
    IoULoss,
)
from .linear_cross_entropy import (
    LinearCrossEntropyLoss,
)
from .margin import (
    AMSoftmaxLoss,
    ArcFaceLoss,
    CombinedMarginLoss,
    CosFaceLoss,
    NormFaceLoss,
    SphereFaceLoss,
)
from .metric import (
    BatchContrastiveLoss,
    CenterLoss,
    ContrastiveLoss,
    FaceNetTripletLoss,
    TripletLoss,
    TripletMarginLoss,
)
from .regression import (
    HuberLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
)

__all__ = [
    "AMSoftmaxLoss",
    "ArcFaceLoss",
    "BCEWithLogitsLoss",
    "BatchContrastiveLoss",
    "CenterLoss",
    "ClipLoss",
    "CombinedMarginLoss",
    "CompleteBoxIoULoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossEntropyLoss",
    "DistanceBoxIoULoss",
    "FaceNetTripletLoss",
    "GHMCLoss",
    "GHMRLoss",
    "GeneralizedBoxIoULoss",
    "HuberLoss",
    "IoULoss",
    "L1Loss",
    "L2SoftmaxLoss",
    "LargeMarginSoftmaxLoss",
    "LinearCrossEntropyLoss",
    "MSELoss",
    "NTXentLoss",
    "NormFaceLoss",
    "SigLipLoss",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "SoftmaxFocalLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
    "SupConLoss",
    "TripletLoss",
    "TripletMarginLoss",
]
