"""Metric-learning losses on embeddings: center loss, contrastive (DeepID2) and triplet losses.

Three triplet losses: :func:`triplet_margin_loss` is torch's (same signature, defaults, values and
gradients: Euclidean distance with ``eps`` added to each difference, margin 1, optional swap);
:func:`facenet_triplet_loss` is FaceNet's form (squared Euclidean distance, margin 0.2) on explicit
triplets; :func:`batch_triplet_loss` forms the triplets itself from a labelled batch by online mining
(batch-hard, semi-hard, batch-all).

The batch losses (:func:`batch_contrastive_loss`, :func:`batch_triplet_loss`) take a labelled batch and
form the pairs or triplets themselves, with memory ``O(B R)`` for ``B`` anchors and ``R`` candidates; the
mining and the distance frames are in :mod:`losskit.functional.mining`. Both accept an optional candidate
set (``ref_embeddings``, ``ref_labels``, ``anchor_offset``) so that a cross-rank loss can use the local
rows as anchors against the rows gathered from every rank; see :mod:`losskit.functional.mining`.

Their ``reduction='none'`` returns one value per anchor ``(B,)`` and ``weight`` is per anchor;
``'mean'`` divides by the number of pairs or valid triplets, stated on each function, so ``'mean'`` is
not ``none.mean()`` there.

Each loss is defined once, by a private function that takes the name of what the user called (the
function, its Module or its cross-rank form), so that every error names it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, cast, overload

import torch
import torch.nn.functional as F
from torch import Tensor

from ._reduction import Reduction, check_reduction, check_weight, reduce_loss, reject_legacy_reduction
from ._validation import (
    autocast_enabled,
    check_choice,
    check_class_indices,
    check_floating,
    check_integer,
    check_interval,
    check_ndim,
    check_nonnegative,
    check_positive,
    check_same_device,
    check_same_shape,
    check_tensor,
    compute_dtype,
    no_autocast,
    output_dtype,
)
from .mining import (
    DISTANCES,
    Distance,
    Frame,
    check_candidates,
    frame,
    hardest,
    label_masks,
    nan_guard,
    pairwise_distances,
    representatives,
    row_distance,
    semi_hard,
)

__all__ = [
    "TripletStats",
    "batch_contrastive_loss",
    "batch_triplet_loss",
    "center_loss",
    "contrastive_loss",
    "facenet_triplet_loss",
    "triplet_margin_loss",
    "update_centers",
]

Mining = Literal["batch_all", "batch_hard", "semi_hard"]
MININGS = ("batch_all", "batch_hard", "semi_hard")


class TripletStats(NamedTuple):
    """What :func:`batch_triplet_loss` returns next to the loss with ``return_stats=True``.

    All three are 0-d tensors on the device of the loss (reading them is the caller's sync, not ours).
    """

    # int64: triplets (batch_all), anchor-positive pairs (semi_hard) or anchors (batch_hard)
    num_valid: Tensor
    num_active: Tensor  # int64: how many of those have a positive hinge argument (a non-zero loss)
    active_fraction: Tensor  # num_active / num_valid, 0 when nothing is valid


def _check_bool(fn: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a bool; got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------------------
# center loss


def check_center_inputs(
    fn: str, input: Tensor, target: Tensor, centers: Tensor, weight: Tensor | None = None
) -> Tensor:
    """Shapes, dtypes, devices and class indices of a center-loss call; returns ``target`` as int64."""
    check_floating(fn, "input", input)
    check_ndim(fn, "input", input, 2, "(N, D)")
    check_integer(fn, "target", target)
    n, d = input.shape
    if target.shape != (n,):
        raise ValueError(f"{fn}: expected target of shape ({n},), got {tuple(target.shape)}")
    check_floating(fn, "centers", centers)
    if centers.dim() != 2 or centers.shape[1] != d:
        raise ValueError(f"{fn}: expected centers of shape (C, {d}), got {tuple(centers.shape)}")
    check_same_device(fn, ("input", input), ("target", target), ("centers", centers), ("weight", weight))
    return check_class_indices(fn, "target", target, centers.shape[0])


def _center_loss(
    fn: str, input: Tensor, target: Tensor, centers: Tensor, weight: Tensor | None, reduction: Reduction
) -> Tensor:
    t = check_center_inputs(fn, input, target, centers, weight)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (input.shape[0],))
    out = output_dtype(input)
    ct = compute_dtype(input.dtype)
    with no_autocast(input.device):
        diff = input.to(ct) - centers.to(ct).index_select(0, t)  # (N, D)
        loss = 0.5 * diff.pow(2).sum(dim=1)  # (N,)
        return reduce_loss(loss, reduction, weight).to(out)


def center_loss(
    input: Tensor,
    target: Tensor,
    centers: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Center loss (Wen et al. 2016): half the squared distance of each feature to its class centre.

    Used next to softmax cross-entropy to pull deep features of one class together; the centres are
    moved by :func:`update_centers` (or learnt, if ``centers`` requires grad).

    .. math::
        \ell_i = w_i \, \tfrac12 \lVert x_i - c_{y_i} \rVert_2^2

    where :math:`x_i` is row ``i`` of ``input``, :math:`y_i` its class and :math:`c_j` row ``j`` of
    ``centers``.

    Args:
        input: deep features ``(N, D)``.
        target: classes ``(N,)``, any integer dtype, in ``[0, C)``.
        centers: class centres ``(C, D)``.
        weight: optional per-sample weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``input`` (float32 under
        ``torch.autocast``).

    Raises:
        ValueError: if shapes or devices disagree, a class index is outside ``[0, C)`` (on CPU; on an
            accelerator a device-side assertion fails instead), ``weight`` does not broadcast, or
            ``reduction`` is unknown.
        TypeError: if ``input``/``centers`` is not floating point or ``target`` not integer.

    Note:
        The paper's :math:`L_C = \frac12 \sum_{i=1}^m \lVert x_i - c_{y_i}\rVert^2` sums over the
        mini-batch: that is ``reduction='sum'``. The default ``'mean'`` divides it by the batch size, as
        the authors' released Caffe layer does, so the weight :math:`\lambda` does not depend on the batch
        size. ``centers`` is cast to the compute dtype of ``input``.

    Example:
        >>> x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
        >>> centers = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
        >>> center_loss(x, torch.tensor([1, 0]), centers, reduction="none")
        tensor([0.5000, 0.5000])

    References:
        Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for Deep Face Recognition",
        ECCV 2016. https://ydwen.github.io/papers/WenECCV16.pdf
    """
    return _center_loss("center_loss", input, target, centers, weight, reduction)


def _update_centers(fn: str, centers: Tensor, input: Tensor, target: Tensor, alpha: object) -> None:
    t = check_center_inputs(fn, input, target, centers)
    a = check_interval(fn, "alpha", alpha, 0.0, 1.0)
    with torch.no_grad():
        x = input.detach().to(centers.dtype)
        counts = centers.new_zeros(centers.shape[0]).index_add_(0, t, centers.new_ones(x.shape[0]))
        sums = torch.zeros_like(centers).index_add_(0, t, x)  # (C, D)
        counts = counts.unsqueeze(1)  # (C, 1)
        centers.sub_(a * (counts * centers - sums) / (1.0 + counts))


def update_centers(centers: Tensor, input: Tensor, target: Tensor, *, alpha: float = 0.5) -> None:
    r"""Move class centres towards their features in place, by the center-loss update rule.

    .. math::
        c_j \leftarrow c_j - \alpha \, \frac{\sum_{i:\,y_i=j} (c_j - x_i)}{1 + n_j}

    where :math:`n_j` is the number of samples of class :math:`j` in the batch; classes absent from the
    batch stay where they are. Runs under ``torch.no_grad`` and never reads values back to the host.

    Args:
        centers: class centres ``(C, D)``, updated in place.
        input: deep features ``(N, D)`` (not differentiated through).
        target: classes ``(N,)``, any integer dtype, in ``[0, C)``.
        alpha: the centre learning rate, in ``[0, 1]``. Default: ``0.5`` (the paper's experiments).

    Raises:
        ValueError: if shapes or devices disagree, a class index is outside ``[0, C)`` (CPU), or
            ``alpha`` is outside ``[0, 1]``.
        TypeError: if ``input``/``centers`` is not floating point or ``target`` not integer.

    Example:
        >>> centers = torch.zeros(2, 1)
        >>> update_centers(centers, torch.tensor([[2.0], [4.0]]), torch.tensor([1, 1]), alpha=0.5)
        >>> centers  # c_1 - 0.5 * ((0 - 2) + (0 - 4)) / (1 + 2) = 1
        tensor([[0.],
                [1.]])

    References:
        Wen et al., ECCV 2016, Algorithm 1.
    """
    _update_centers("update_centers", centers, input, target, alpha)


# --------------------------------------------------------------------------------------------------
# contrastive (DeepID2)


def _contrastive(
    fn: str,
    x1: Tensor,
    x2: Tensor,
    same: Tensor,
    margin: object,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    check_floating(fn, "x1", x1)
    check_floating(fn, "x2", x2)
    check_ndim(fn, "x1", x1, 2, "(N, D)")
    check_same_shape(fn, "x1", x1, "x2", x2)
    check_tensor(fn, "same", same)
    if same.is_floating_point() or same.is_complex():
        raise TypeError(f"{fn}: same must be a bool or integer tensor; got dtype {same.dtype}")
    if same.shape != (x1.shape[0],):
        raise ValueError(f"{fn}: expected same of shape ({x1.shape[0]},), got {tuple(same.shape)}")
    check_same_device(fn, ("x1", x1), ("x2", x2), ("same", same), ("weight", weight))
    m = check_nonnegative(fn, "margin", margin)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (x1.shape[0],))
    out = output_dtype(x1)
    ct = compute_dtype(x1.dtype)
    with no_autocast(x1.device):
        a, b = x1.to(ct), x2.to(ct)
        sq = row_distance(a, b, "squared_euclidean")  # (N,)
        d = row_distance(a, b, "euclidean")  # scaled differences: finite second derivatives at any size
        loss = torch.where(same.bool(), 0.5 * sq, 0.5 * F.relu(m - d).pow(2))
        return reduce_loss(loss, reduction, weight).to(out)


def contrastive_loss(
    x1: Tensor,
    x2: Tensor,
    same: Tensor,
    *,
    margin: float = 1.0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Contrastive loss on explicit pairs, as DeepID2's verification signal defines it.

    Pulls pairs of the same identity together and pushes other pairs at least ``margin`` apart.

    .. math::
        \ell_i = w_i \begin{cases} \tfrac12 d_i^2 & \text{same identity} \\
                                   \tfrac12 \max(0,\, m - d_i)^2 & \text{otherwise} \end{cases},
        \qquad d_i = \lVert x_{1,i} - x_{2,i} \rVert_2

    Args:
        x1: first embeddings of the pairs ``(N, D)``.
        x2: second embeddings ``(N, D)``.
        same: ``(N,)`` bool (or integer 0/1): whether pair ``i`` shares an identity.
        margin: :math:`m`, the distance beyond which different pairs cost nothing, ``>= 0``.
            Default: ``1.0``.
        weight: optional per-pair weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``x1`` (float32 under
        ``torch.autocast``).

    Raises:
        ValueError: if shapes or devices disagree, ``margin < 0`` or ``reduction`` is unknown.
        TypeError: if ``x1``/``x2`` is not floating point or ``same`` is floating point.

    Note:
        The distance is computed from the differences (not a Gram expansion), each row scaled by a
        power of two first, so values and first and second derivatives stay finite for differences
        of any size; its gradient at :math:`d = 0` is taken as 0, so identical different-identity pairs
        give finite gradients. The paper labels pairs :math:`y_{ij} = \pm 1`; here ``same`` is boolean.

    Example:
        >>> x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
        >>> x2 = torch.tensor([[0.6, 0.8], [0.3, 0.4]])
        >>> contrastive_loss(x1, x2, torch.tensor([True, False]), reduction="none")  # d = 1 and 0.5
        tensor([0.5000, 0.1250])

    References:
        Sun, Wang, Wang, Tang, "Deep Learning Face Representation by Joint Identification-Verification",
        NeurIPS 2014. https://arxiv.org/abs/1406.4773
    """
    return _contrastive("contrastive_loss", x1, x2, same, margin, weight, reduction)


def _batch_contrastive(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    margin: object,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    labels, ref, ref_labels_, offset = check_candidates(
        fn, embeddings, labels, ref_embeddings, ref_labels, anchor_offset, weight
    )
    m = check_nonnegative(fn, "margin", margin)
    check_reduction(fn, reduction)
    b, r = embeddings.shape[0], ref.shape[0]
    check_weight(fn, weight, (b,))
    out = output_dtype(embeddings)
    ct = compute_dtype(embeddings.dtype)
    pairs = b * (r - 1) if offset is not None else b * r
    with no_autocast(embeddings.device):
        x = embeddings.to(ct)
        y = x if ref_embeddings is None else ref.to(ct)
        if b == 0 or r == 0:  # static shapes: no pair; 0 with the graph kept
            loss = x.sum(dim=1) * 0.0
        else:
            fr = frame(x, y)
            positive, negative = label_masks(labels, ref_labels_, offset)
            same = labels.unsqueeze(1) == ref_labels_.unsqueeze(0)
            reps = representatives(labels, ref_labels_)
            sq = pairwise_distances(x, y, "squared_euclidean", fr, same, reps)  # positives: class frame
            d = pairwise_distances(x, y, "euclidean", fr)  # negatives: the batch's frame
            zero = torch.zeros_like(sq)
            pair = torch.where(positive, 0.5 * sq, zero) + torch.where(
                negative, 0.5 * F.relu(m - d).pow(2), zero
            )
            loss = nan_guard(0.5 * pair.sum(dim=1), fr)  # (B,)
        return reduce_loss(loss, reduction, weight, divisor=pairs / 2).to(out)


def batch_contrastive_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 1.0,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Contrastive loss (DeepID2) over all pairs of a labelled batch.

    Every pair :math:`i < j` of the batch costs :func:`contrastive_loss`'s :math:`\ell_{ij}`. Each pair's
    cost is split evenly between its two rows, so the per-anchor value is

    .. math::
        L_i = w_i \, \tfrac12 \sum_{j \ne i} \ell_{ij}, \qquad \sum_i L_i = \sum_{i<j} \ell_{ij}

    Args:
        embeddings: ``(B, D)``.
        labels: identities ``(B,)``, any integer dtype (compared, never used as indices).
        margin: :math:`m`, ``>= 0``. Default: ``1.0``.
        ref_embeddings: candidate rows ``(R, D)`` that the anchors are paired with. Default:
            ``embeddings``. For a cross-rank loss: all gathered rows.
        ref_labels: candidate labels ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset`` and is not paired with itself;
            ``None``: the anchors are not candidates (every anchor-candidate pair counts). Default: ``0``.
        weight: optional per-anchor weights, broadcastable to ``(B,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'sum'`` is :math:`\sum_{i<j} \ell_{ij}`;
            ``'mean'`` divides it by the number of pairs, ``B (B - 1) / 2`` (with candidates:
            ``B (R - 1) / 2``, or ``B R / 2`` when ``anchor_offset=None``), i.e. the average pair.

    Returns:
        Shape ``(B,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``embeddings`` (float32
        under ``torch.autocast``).

    Raises:
        ValueError: if shapes or devices disagree, ``margin < 0``, ``anchor_offset`` is out of range,
            only one of ``ref_embeddings``/``ref_labels`` is given, or ``reduction`` is unknown.
        TypeError: if an embedding tensor is not floating point or a label tensor is not integer.

    Note:
        Distances come from Gram matrices ``(B, R)`` in the frames of :mod:`losskit.functional.mining`
        (same-identity pairs in their class's frame); memory is ``O(B R)``. A NaN in any row makes
        every anchor's value NaN. With candidates from every rank (equal local batch sizes), the average
        over ranks of the local ``'mean'`` equals the ``'mean'`` of the whole global batch, and the sum
        over ranks of ``'sum'`` equals its ``'sum'``.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.6, 0.8], [0.0, -0.5]])
        >>> batch_contrastive_loss(x, torch.tensor([0, 0, 1]), reduction="sum")  # d = 1, 0.5, 1.43
        tensor(0.6250)

    References:
        Sun et al., "Deep Learning Face Representation by Joint Identification-Verification",
        NeurIPS 2014. https://arxiv.org/abs/1406.4773
    """
    return _batch_contrastive(
        "batch_contrastive_loss",
        embeddings,
        labels,
        margin,
        ref_embeddings,
        ref_labels,
        anchor_offset,
        weight,
        reduction,
    )


# --------------------------------------------------------------------------------------------------
# triplets on explicit (anchor, positive, negative) rows: torch's and FaceNet's


def _triplet_margin(
    fn: str,
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: object,
    p: object,
    eps: object,
    swap: object,
    reduction: Reduction,
) -> Tensor:
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        check_floating(fn, name, t)
    if not anchor.dim() == positive.dim() == negative.dim() or anchor.dim() == 0:
        raise ValueError(
            f"{fn}: expected anchor, positive and negative with the same number of dimensions (at least "
            f"1, the last one the embedding), got {tuple(anchor.shape)}, {tuple(positive.shape)} and "
            f"{tuple(negative.shape)}"
        )
    try:
        torch.broadcast_shapes(anchor.shape, positive.shape, negative.shape)
    except RuntimeError:
        raise ValueError(
            f"{fn}: expected anchor, positive and negative of broadcastable shapes, got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)} and {tuple(negative.shape)}"
        ) from None
    check_same_device(fn, ("anchor", anchor), ("positive", positive), ("negative", negative))
    m = check_positive(fn, "margin", margin)  # torch: "margin must be greater than 0"
    norm = check_interval(fn, "p", p)  # any real degree, as torch's norm (inf included)
    e = check_interval(fn, "eps", eps)
    swap_ = _check_bool(fn, "swap", swap)
    check_reduction(fn, reduction)
    dtype = torch.promote_types(torch.promote_types(anchor.dtype, positive.dtype), negative.dtype)
    low = dtype in (torch.float16, torch.bfloat16)
    out = torch.float32 if low and autocast_enabled(anchor.device.type) else dtype  # output_dtype's rule
    ct = compute_dtype(dtype)
    with no_autocast(anchor.device):
        a, pos, neg = anchor.to(ct), positive.to(ct), negative.to(ct)
        # torch's pairwise_distance: ||x1 - x2 + eps||_p over the last dimension
        d_ap = F.pairwise_distance(a, pos, p=norm, eps=e)
        d_an = F.pairwise_distance(a, neg, p=norm, eps=e)
        if swap_:  # Balntas et al.: the harder of the anchor's and the positive's negative distance
            d_an = torch.minimum(d_an, F.pairwise_distance(pos, neg, p=norm, eps=e))
        loss = (m + d_ap - d_an).clamp_min(0.0)  # torch's order of operations and its kink gradient
        return reduce_loss(loss, reduction).to(out)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Triplet margin loss, exactly :func:`torch.nn.functional.triplet_margin_loss`.

    Same signature, defaults, semantics, values and gradients as torch's (a peer's name is a promise):
    the :math:`p`-norm distance with ``eps`` added to every difference, optionally with the distance
    swap. For FaceNet's squared-distance form with margin 0.2 use :func:`facenet_triplet_loss`; for
    triplets mined from a labelled batch, :func:`batch_triplet_loss`.

    .. math::
        \ell_i = \max\bigl(0,\; m + d(a_i, p_i) - d(a_i, n_i)\bigr), \qquad
        d(x, y) = \lVert x - y + \epsilon \rVert_p

    and with ``swap=True`` :math:`d(a_i, n_i)` is replaced by :math:`\min(d(a_i, n_i), d(p_i, n_i))`.

    Args:
        anchor: ``(N, D)`` or ``(D,)`` (any number of leading dimensions, the same for all three, which
            broadcast as in torch).
        positive: same identity as the anchor, shape of ``anchor``.
        negative: another identity, shape of ``anchor``.
        margin: :math:`m`, ``> 0`` (torch rejects ``<= 0`` too). Default: ``1.0``.
        p: the norm degree. Default: ``2``.
        eps: :math:`\epsilon`, added to each difference (torch's numerical guard). Default: ``1e-6``.
        swap: use the distance swap of Balntas et al. Default: ``False``.
        size_average: deprecated in torch and not supported here: must be ``None``.
        reduce: deprecated in torch and not supported here: must be ``None``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by the number of triplets
            (``N``).

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; the promoted dtype of the three
        inputs (float32 under ``torch.autocast``, as torch's).

    Raises:
        ValueError: if the inputs' dimensions differ or do not broadcast, devices differ,
            ``margin <= 0``, ``p``/``eps`` is NaN, or ``reduction`` is unknown.
        TypeError: if an input is not floating point, ``swap`` is not a bool, or ``size_average`` or
            ``reduce`` is not ``None`` (use ``reduction=``).

    Note:
        Deliberate differences from torch: an empty batch gives 0 (with a gradient) for ``'mean'``,
        where torch gives NaN; float16/bfloat16 are computed in float32 inside and returned in the
        input's dtype (torch computes in the input's dtype); errors are ``ValueError``/``TypeError``
        naming this function instead of torch's ``RuntimeError``.

    Example:
        >>> a, p, n = torch.zeros(1, 2), torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 4.5]])
        >>> triplet_margin_loss(a, p, n)  # 1 + 5 - 4.5, up to eps
        tensor(1.5000)

    References:
        Balntas, Riba, Ponsa, Mikolajczyk, "Learning local feature descriptors with triplets and shallow
        convolutional neural networks", BMVC 2016. http://www.bmva.org/bmvc/2016/papers/paper119/
    """
    fn = "triplet_margin_loss"
    reject_legacy_reduction(fn, size_average, reduce)
    check_reduction(fn, reduction)
    return _triplet_margin(fn, anchor, positive, negative, margin, p, eps, swap, cast(Reduction, reduction))


def _facenet_triplet(
    fn: str,
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: object,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        check_floating(fn, name, t)
    check_ndim(fn, "anchor", anchor, 2, "(N, D)")
    check_same_shape(fn, "anchor", anchor, "positive", positive)
    check_same_shape(fn, "anchor", anchor, "negative", negative)
    check_same_device(
        fn, ("anchor", anchor), ("positive", positive), ("negative", negative), ("weight", weight)
    )
    m = check_nonnegative(fn, "margin", margin)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (anchor.shape[0],))
    out = output_dtype(anchor)
    ct = compute_dtype(anchor.dtype)
    with no_autocast(anchor.device):
        a = anchor.to(ct)
        d_ap = row_distance(a, positive.to(ct), "squared_euclidean")  # (N,), from the differences
        d_an = row_distance(a, negative.to(ct), "squared_euclidean")
        loss = F.relu(d_ap - d_an + m)
        return reduce_loss(loss, reduction, weight).to(out)


def facenet_triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 0.2,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""FaceNet's triplet loss on explicit triplets: squared Euclidean distances, margin 0.2.

    .. math::
        \ell_i = w_i \max\bigl(0,\; \lVert a_i - p_i \rVert_2^2 - \lVert a_i - n_i \rVert_2^2 + \alpha\bigr)

    FaceNet applies it to L2-normalised embeddings (normalise them first: this function does not).
    torch's :func:`triplet_margin_loss` is the non-squared form with margin 1.

    Args:
        anchor: ``(N, D)``.
        positive: same identity as the anchor, ``(N, D)``.
        negative: another identity, ``(N, D)``.
        margin: :math:`\alpha`, ``>= 0``, in squared-distance units. Default: ``0.2`` (FaceNet).
        weight: optional per-triplet weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N``, as FaceNet's
            average over the triplets of a batch.

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``anchor`` (float32 under
        ``torch.autocast``).

    Raises:
        ValueError: if shapes or devices differ, ``margin < 0`` or ``reduction`` is unknown.
        TypeError: if an input is not floating point.

    Note:
        The paper's loss (eq. 3) sums over the triplets: that is ``reduction='sum'``. The distances are
        computed from the differences, not a Gram expansion, so close rows lose no digits.

    Example:
        >>> a, p, n = torch.zeros(1, 2), torch.tensor([[0.3, 0.4]]), torch.tensor([[0.6, 0.0]])
        >>> facenet_triplet_loss(a, p, n)  # 0.25 - 0.36 + 0.2
        tensor(0.0900)

    References:
        Schroff, Kalenichenko, Philbin, "FaceNet: A Unified Embedding for Face Recognition and
        Clustering", CVPR 2015, eq. 1-3. https://arxiv.org/abs/1503.03832
    """
    return _facenet_triplet("facenet_triplet_loss", anchor, positive, negative, margin, weight, reduction)


# --------------------------------------------------------------------------------------------------
# triplet loss with online mining (FaceNet, Hermans et al.)


def check_triplet_hyperparameters(
    fn: str, margin: object, mining: object, distance: object, soft_margin: object, return_stats: object
) -> float:
    """The Python-scalar arguments of :func:`batch_triplet_loss`; returns ``margin`` as a float."""
    m = check_nonnegative(fn, "margin", margin)
    check_choice(fn, "mining", mining, MININGS)
    check_choice(fn, "distance", distance, DISTANCES)
    soft = _check_bool(fn, "soft_margin", soft_margin)
    if soft and mining == "batch_all":
        raise ValueError(f"{fn}: soft_margin must be False with mining='batch_all'; got soft_margin=True")
    _check_bool(fn, "return_stats", return_stats)
    return m


def _batch_triplet(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: object,
    mining: str,
    distance: str,
    soft_margin: bool,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
    return_stats: bool,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor | tuple[Tensor, TripletStats]:
    labels, ref, ref_labels_, offset = check_candidates(
        fn, embeddings, labels, ref_embeddings, ref_labels, anchor_offset, weight
    )
    m = check_triplet_hyperparameters(fn, margin, mining, distance, soft_margin, return_stats)
    check_reduction(fn, reduction)
    b, r = embeddings.shape[0], ref.shape[0]
    check_weight(fn, weight, (b,))
    out_dtype = output_dtype(embeddings)
    ct = compute_dtype(embeddings.dtype)
    alpha = 0.0 if soft_margin else m
    with no_autocast(embeddings.device):
        x = embeddings.to(ct)
        y = x if ref_embeddings is None else ref.to(ct)
        count = torch.zeros((), dtype=torch.long, device=x.device)
        if b == 0 or r == 0:  # static shapes: nothing to mine; 0 with the graph kept
            loss = x.sum(dim=1) * 0.0
            num_valid, num_active = count, count
        else:
            fr = frame(x, y)
            loss, num_valid, num_active = _mined(
                x, y, labels, ref_labels_, offset, fr, mining, distance, soft_margin, alpha
            )
            loss = nan_guard(loss, fr)
        out = reduce_loss(loss, reduction, weight, divisor=num_valid).to(out_dtype)
        if not return_stats:
            return out
        fraction = num_active.to(ct) / num_valid.to(ct).clamp_min(1.0)
        return out, TripletStats(num_valid, num_active, fraction)


def _mined(
    x: Tensor,
    y: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    offset: int | None,
    fr: Frame,
    mining: str,
    distance: str,
    soft_margin: bool,
    alpha: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-anchor loss ``(B,)``, number of valid and of active triplets, for one mining strategy."""
    if mining == "batch_hard":
        with torch.no_grad():
            positive_idx, negative_idx, valid = hardest(
                x.detach(), y.detach(), labels, ref_labels, offset, fr
            )
        # the two chosen distances, exactly from the differences; index_select, not y[idx]: its
        # backward is index_add_, much cheaper than index_put_ on CPU
        d_ap = row_distance(x, y.index_select(0, positive_idx), distance)
        d_an = row_distance(x, y.index_select(0, negative_idx), distance)
        arg = d_ap - d_an + alpha
        hinge = F.softplus(arg) if soft_margin else F.relu(arg)
        loss = torch.where(valid, hinge, torch.zeros_like(arg))
        return loss, valid.sum(), (valid & (arg > 0)).sum()
    positive, negative = label_masks(labels, ref_labels, offset)
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)  # (B, R)
    reps = representatives(labels, ref_labels)
    d = pairwise_distances(x, y, distance, fr, same, reps)  # (B, R), with gradient; positives: class frame
    if mining == "semi_hard":
        negative_idx, valid = semi_hard(d.detach(), positive, negative)
        arg = d - d.gather(1, negative_idx) + alpha  # (B, R): anchor a, positive p
        hinge = F.softplus(arg) if soft_margin else F.relu(arg)
        loss = torch.where(valid, hinge, torch.zeros_like(hinge)).sum(dim=1)
        return loss, valid.sum(), (valid & (arg > 0)).sum()
    loss, num_active = _batch_all(d, positive, negative, alpha)
    return loss, (positive.sum(dim=1) * negative.sum(dim=1)).sum(), num_active


def _batch_all(d: Tensor, positive: Tensor, negative: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Sum over all valid triplets per anchor, in O(B R) memory; returns (loss (B,), num_active)."""
    b, r = d.shape
    masked = torch.where(negative, d, torch.full_like(d, float("inf")))
    sorted_d, _ = masked.sort(dim=1)  # each anchor's negatives ascending, then +inf; (B, R)
    num_negative = negative.sum(dim=1, keepdim=True)  # (B, 1)
    finite = torch.arange(r, device=d.device).unsqueeze(0) < num_negative  # (B, R)
    prefix = torch.where(finite, sorted_d, torch.zeros_like(sorted_d)).cumsum(dim=1)
    prefix = torch.cat([prefix.new_zeros(b, 1), prefix], dim=1)  # (B, R + 1): S_0 = 0
    threshold = d + alpha  # (B, R): the hinge is positive for negatives closer than this
    # k: how many negatives are strictly closer than the threshold (their hinges are the positive ones)
    k = torch.searchsorted(sorted_d.detach(), threshold.detach().contiguous(), right=False)  # (B, R)
    pair = k.to(d.dtype) * threshold - prefix.gather(1, k)  # sum over n of the hinges; (B, R)
    # rounding can leave a tiny negative where every hinge is tiny; the true value is >= 0.
    pair = torch.where(positive, pair.clamp_min(0.0), torch.zeros_like(pair))
    return pair.sum(dim=1), torch.where(positive, k, torch.zeros_like(k)).sum()


@overload
def batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    mining: Mining = "batch_hard",
    distance: Distance = "euclidean",
    soft_margin: bool = False,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
    return_stats: Literal[False] = False,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor: ...


@overload
def batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    mining: Mining = "batch_hard",
    distance: Distance = "euclidean",
    soft_margin: bool = False,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
    return_stats: Literal[True],
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> tuple[Tensor, TripletStats]: ...


def batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    mining: Mining = "batch_hard",
    distance: Distance = "euclidean",
    soft_margin: bool = False,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
    return_stats: bool = False,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor | tuple[Tensor, TripletStats]:
    r"""Triplet loss with online mining over a labelled batch.

    For anchor :math:`a`, positive :math:`p` (same label, not :math:`a` itself) and negative :math:`n`
    (another label), a triplet costs

    .. math::
        h(d(a, p) - d(a, n) + \alpha), \qquad h(z) = \max(0, z) \;\text{or, with soft margin,}\;
        h(z) = \log(1 + e^{z}) \text{ and } \alpha = 0

    and ``mining`` chooses the triplets:

    - ``'batch_hard'`` (Hermans et al. 2017, eq. 5): per anchor, its farthest positive and closest
      negative; one triplet per anchor that has both.
    - ``'semi_hard'`` (FaceNet, sec. 3.2): per anchor-positive pair, the closest negative farther than
      the positive (where none is, the farthest negative; see
      :func:`~losskit.functional.semi_hard_triplets`).
    - ``'batch_all'`` (Hermans et al., eq. 6): every valid triplet.

    Args:
        embeddings: ``(B, D)``.
        labels: identities ``(B,)``, any integer dtype (compared, never used as indices).
        margin: :math:`\alpha`, ``>= 0``, in the units of ``distance``; unused with ``soft_margin``.
            Default: ``0.2`` (FaceNet).
        mining: ``'batch_hard'`` | ``'semi_hard'`` | ``'batch_all'``. Default: ``'batch_hard'``.
        distance: ``'euclidean'`` (Hermans et al.) | ``'squared_euclidean'`` (FaceNet).
            Default: ``'euclidean'``.
        soft_margin: use :math:`\log(1 + e^z)` instead of the hinge (Hermans et al.); with
            ``'batch_hard'`` or ``'semi_hard'``. Default: ``False``.
        ref_embeddings: candidate rows ``(R, D)`` that positives and negatives are drawn from. Default:
            ``embeddings``. For a cross-rank loss: all gathered rows.
        ref_labels: candidate labels ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset`` and never its own positive;
            ``None``: the anchors are not candidates. Default: ``0``.
        return_stats: also return a :class:`TripletStats` (valid and active counts, active fraction).
            Default: ``False``.
        weight: optional per-anchor weights, broadcastable to ``(B,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'none'`` gives each anchor's sum over its
            triplets; ``'mean'`` divides the sum by the number of valid triplets: anchors with a positive
            and a negative (``'batch_hard'``), anchor-positive pairs whose anchor has a negative
            (``'semi_hard'``), or triplets (``'batch_all'``).

    Returns:
        The loss, shape ``(B,)`` if ``reduction='none'``, otherwise a scalar, dtype of ``embeddings``
        (float32 under ``torch.autocast``); with ``return_stats=True`` the pair ``(loss, TripletStats)``.

    Raises:
        ValueError: for an unknown ``mining``/``distance``/``reduction``, ``margin < 0``,
            ``soft_margin`` with ``'batch_all'``, shape or device mismatches, or ``anchor_offset`` out of
            range.
        TypeError: if an embedding tensor is not floating point, a label tensor is not integer, or
            ``soft_margin``/``return_stats`` is not a bool.

    Note:
        Memory is ``O(B R)``: no ``(B, R, R)`` tensor is ever built. ``'batch_hard'`` mines on
        detached Gram scores (in the batch's frame) and recomputes the two chosen distances per anchor
        from the differences, so its values and gradients are exact and its backward pass is
        ``O(B D)``. ``'semi_hard'`` and ``'batch_all'`` take their distances from Gram matrices in the
        frames of :mod:`losskit.functional.mining` (centred and scaled; same-label pairs in their
        class's frame), accurate to a few float32 roundings of the distance unless a pair is far
        closer than the spread of its frame. ``'batch_all'`` sorts each anchor's negatives once:
        with :math:`k` negatives closer than :math:`t = d(a,p) + \alpha` and :math:`S_k` the sum of
        their distances, the anchor-positive pair costs :math:`k t - S_k`, exactly the sum of its
        hinges. Euclidean
        distances are taken in a frame scaled by a power of two, so values and first and second
        derivatives stay finite for embeddings of any size the dtype holds; the distance's gradient
        at 0 is taken as 0 (finite for identical embeddings). A batch with no valid triplet gives 0
        with a gradient. A NaN in any embedding or candidate makes every anchor's value NaN (mining
        compares each row with all others); the statistics then mean nothing.

        ``'mean'`` over all valid triplets (not only the active ones) keeps torch's meaning of mean;
        Hermans et al.'s "batch all, non-zero" average (pytorch-metric-learning's default reducer) is
        ``reduction='sum'`` divided by ``stats.num_active``. "Active" means a positive hinge argument
        (with ``soft_margin``, :math:`d(a,p) > d(a,n)`).

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [0.6], [4.0]])
        >>> y = torch.tensor([0, 0, 0, 1, 1])
        >>> loss, stats = batch_triplet_loss(x, y, margin=0.5, return_stats=True, reduction="none")
        >>> loss  # d(a,p) - d(a,n) + 0.5 with batch-hard (p, n): (2, 3), (2, 3), (0, 4), (4, 1), (3, 2)
        tensor([2.9000, 2.1000, 2.5000, 3.5000, 2.9000])
        >>> stats.active_fraction
        tensor(1.)

    References:
        Schroff et al., "FaceNet", CVPR 2015. https://arxiv.org/abs/1503.03832 ;
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017.
        https://arxiv.org/abs/1703.07737
    """
    return _batch_triplet(
        "batch_triplet_loss",
        embeddings,
        labels,
        margin=margin,
        mining=mining,
        distance=distance,
        soft_margin=soft_margin,
        ref_embeddings=ref_embeddings,
        ref_labels=ref_labels,
        anchor_offset=anchor_offset,
        return_stats=return_stats,
        weight=weight,
        reduction=reduction,
    )
