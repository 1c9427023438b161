"""Online triplet mining: embeddings and labels in, index and mask tensors out.

Mining is kept apart from the losses (as pytorch-metric-learning does) so that a miner can be reused,
inspected or replaced; the triplet loss in :mod:`losskit.functional.metric` calls the same code.

Every function takes a batch of anchors ``embeddings`` ``(B, D)`` with ``labels`` ``(B,)`` and an optional
*candidate set* ``ref_embeddings`` ``(R, D)`` with ``ref_labels`` ``(R,)`` that positives and negatives are
drawn from (default: the batch itself, ``R = B``). ``anchor_offset`` says where the anchors sit inside the
candidate set, so that an anchor is never its own positive: anchor ``i`` is candidate ``i + anchor_offset``.
This is how a cross-rank loss uses them: anchors are the local rows, the candidates are the rows gathered
from every rank, and ``anchor_offset = rank * B``. ``anchor_offset=None`` means the anchors are not in the
candidate set at all (queries against a gallery), so no pair is excluded.

Memory is ``O(B R)``: nothing of size ``B R^2`` is ever built. Mining runs under ``torch.no_grad`` in
float32 for float16/bfloat16 inputs and never synchronises with the device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ._validation import check_choice, check_floating, check_integer, check_ndim, compute_dtype

__all__ = [
    "batch_hard_triplets",
    "distance_matrix",
    "semi_hard_triplets",
    "triplet_label_masks",
]

Distance = Literal["euclidean", "squared_euclidean"]
DISTANCES = ("euclidean", "squared_euclidean")


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` with gradient 0 (not ``inf``) at ``x == 0``, twice differentiable."""
    positive = x > 0
    # the inner where keeps sqrt's backward away from 0, the outer one gives the subgradient 0 there.
    return torch.where(
        positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x)
    )


def squared_distance_matrix(x: Tensor, y: Tensor) -> Tensor:
    """``||x_i - y_j||^2`` by the Gram expansion, clamped at 0 against cancellation; ``(B, R)``."""
    sq = (
        x.pow(2).sum(1, keepdim=True)  # (B, 1)
        + y.pow(2).sum(1).unsqueeze(0)  # (1, R)
        - 2.0 * (x @ y.transpose(0, 1))  # (B, R)
    )
    return sq.clamp_min(0.0)


def distance_matrix(x: Tensor, y: Tensor | None = None, *, distance: Distance = "euclidean") -> Tensor:
    r"""All pairwise distances between the rows of ``x`` and the rows of ``y``.

    .. math::
        D_{ij} = \lVert x_i - y_j \rVert_2 \quad\text{or}\quad \lVert x_i - y_j \rVert_2^2

    Computed as :math:`\lVert x_i\rVert^2 + \lVert y_j\rVert^2 - 2 x_i^\top y_j` (one matrix product),
    clamped at 0.

    Args:
        x: rows ``(B, D)``.
        y: rows ``(R, D)``. Default: ``x``.
        distance: ``'euclidean'`` | ``'squared_euclidean'``. Default: ``'euclidean'``.

    Returns:
        ``(B, R)``, dtype of ``x``.

    Raises:
        ValueError: if ``x`` or ``y`` is not 2-D, their widths differ, or ``distance`` is unknown.
        TypeError: if ``x`` or ``y`` is not floating point.

    Note:
        The square root has gradient 0 at distance 0 (a subgradient), so identical rows give finite
        gradients. The Gram expansion loses about ``eps * ||x||^2`` to cancellation; a loss that needs
        exact distances of a few selected pairs (batch-hard) recomputes them from the differences.

    Example:
        >>> distance_matrix(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
        tensor([[0., 5.],
                [5., 0.]])
    """
    fn = "distance_matrix"
    check_choice(fn, "distance", distance, DISTANCES)
    check_floating(fn, "x", x)
    check_ndim(fn, "x", x, 2, "(B, D)")
    if y is None:
        y = x
    else:
        check_floating(fn, "y", y)
        check_ndim(fn, "y", y, 2, "(R, D)")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"{fn}: expected y of shape (R, {x.shape[1]}), got {tuple(y.shape)}")
    ct = compute_dtype(x.dtype)
    sq = squared_distance_matrix(x.to(ct), y.to(ct))
    out = sq if distance == "squared_euclidean" else safe_sqrt(sq)
    return out.to(x.dtype)


def check_candidates(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
) -> tuple[Tensor, Tensor, int | None]:
    """Check anchors and the optional candidate set; returns ``(ref_embeddings, ref_labels, offset)``."""
    check_floating(fn, "embeddings", embeddings)
    check_ndim(fn, "embeddings", embeddings, 2, "(B, D)")
    check_integer(fn, "labels", labels)
    b = embeddings.shape[0]
    if labels.shape != (b,):
        raise ValueError(f"{fn}: expected labels of shape ({b},), got {tuple(labels.shape)}")
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError(f"{fn}: expected ref_embeddings and ref_labels both or neither, got only one")
    if anchor_offset is not None and (isinstance(anchor_offset, bool) or not isinstance(anchor_offset, int)):
        raise TypeError(f"{fn}: anchor_offset must be an int or None; got {type(anchor_offset).__name__}")
    if ref_embeddings is None or ref_labels is None:
        if anchor_offset != 0:
            raise ValueError(f"{fn}: anchor_offset must be 0 without ref_embeddings; got {anchor_offset}")
        return embeddings, labels, 0
    check_floating(fn, "ref_embeddings", ref_embeddings)
    check_integer(fn, "ref_labels", ref_labels)
    d = embeddings.shape[1]
    if ref_embeddings.dim() != 2 or ref_embeddings.shape[1] != d:
        raise ValueError(
            f"{fn}: expected ref_embeddings of shape (R, {d}), got {tuple(ref_embeddings.shape)}"
        )
    r = ref_embeddings.shape[0]
    if ref_labels.shape != (r,):
        raise ValueError(f"{fn}: expected ref_labels of shape ({r},), got {tuple(ref_labels.shape)}")
    if anchor_offset is not None and not 0 <= anchor_offset <= r - b:
        raise ValueError(
            f"{fn}: anchor_offset must be in [0, R - B] = [0, {r - b}] so that the anchors are rows of "
            f"ref_embeddings; got {anchor_offset}"
        )
    return ref_embeddings, ref_labels, anchor_offset


def label_masks(labels: Tensor, ref_labels: Tensor, anchor_offset: int | None) -> tuple[Tensor, Tensor]:
    """Unchecked core of :func:`triplet_label_masks`."""
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)  # (B, R)
    negative = ~same
    if anchor_offset is None:
        return same, negative
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1) + anchor_offset  # (B, 1)
    cols = torch.arange(ref_labels.shape[0], device=labels.device).unsqueeze(0)  # (1, R)
    return same & (rows != cols), negative


def triplet_label_masks(
    labels: Tensor,
    ref_labels: Tensor | None = None,
    *,
    anchor_offset: int | None = 0,
) -> tuple[Tensor, Tensor]:
    """Which candidates are positives and which are negatives of each anchor.

    Args:
        labels: anchor class labels ``(B,)``, integer.
        ref_labels: candidate labels ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset`` and is excluded from its own
            positives; ``None``: the anchors are not candidates. Default: ``0``.

    Returns:
        ``(positive, negative)``, two boolean ``(B, R)`` masks: same label and not the anchor itself;
        different label.

    Raises:
        ValueError: if a tensor is not 1-D or ``anchor_offset`` is out of range.
        TypeError: if a label tensor is not an integer tensor.

    Example:
        >>> pos, neg = triplet_label_masks(torch.tensor([0, 0, 1]))
        >>> pos
        tensor([[False,  True, False],
                [ True, False, False],
                [False, False, False]])
        >>> neg
        tensor([[False, False,  True],
                [False, False,  True],
                [ True,  True, False]])
    """
    fn = "triplet_label_masks"
    check_integer(fn, "labels", labels)
    check_ndim(fn, "labels", labels, 1, "(B,)")
    fake = labels.new_empty((labels.shape[0], 0), dtype=torch.float32)
    ref_fake = None
    if ref_labels is not None:
        check_integer(fn, "ref_labels", ref_labels)
        check_ndim(fn, "ref_labels", ref_labels, 1, "(R,)")
        ref_fake = labels.new_empty((ref_labels.shape[0], 0), dtype=torch.float32)
    _, ref, offset = check_candidates(fn, fake, labels, ref_fake, ref_labels, anchor_offset)
    return label_masks(labels, ref, offset)


def _mining_inputs(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked inputs -> (squared distances (B, R) without grad, positive mask, negative mask)."""
    ref_embeddings, ref_labels, offset = check_candidates(
        fn, embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    ct = compute_dtype(embeddings.dtype)
    with torch.no_grad():
        sq = squared_distance_matrix(embeddings.detach().to(ct), ref_embeddings.detach().to(ct))
    positive, negative = label_masks(labels, ref_labels, offset)
    return sq, positive, negative


def hardest(
    x: Tensor, y: Tensor, labels: Tensor, ref_labels: Tensor, anchor_offset: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Unchecked core of :func:`batch_hard_triplets` on detached anchors ``x`` and candidates ``y``."""
    b, r = x.shape[0], y.shape[0]
    if r == 0:  # static shape: no candidates, nothing to mine
        zero = x.new_zeros(b, dtype=torch.long)
        return zero, zero, x.new_zeros(b, dtype=torch.bool)
    # ||y_j||^2 - 2 x_i.y_j ranks the candidates of row i as ||x_i - y_j||^2 does: one fused addmm.
    score = torch.addmm(y.pow(2).sum(1).unsqueeze(0), x, y.transpose(0, 1), alpha=-2.0)  # (B, R)
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)  # (B, R)
    same = same.view(torch.uint8).to(score.dtype)  # 0/1; via uint8: CPU's bool->float copy is slow
    # masks as arithmetic with a finite penalty: on CPU it is several times faster than where/masked_fill
    # with a bool mask, and unlike +-inf it cannot make 0 * inf = NaN.
    big = torch.finfo(score.dtype).max
    # score - big * (1 - same): other labels pushed to about -big; built in place, 3 (B, R) buffers at most
    positive_score = (same - 1.0).mul_(big).add_(score)
    if anchor_offset is not None:
        rows = torch.arange(b, device=x.device)
        positive_score[rows, rows + anchor_offset] = float("-inf")  # an anchor is not its own positive
    positive_idx = positive_score.argmax(dim=1)  # farthest positive, (B,)
    # valid where the winner was not a penalised entry: O(B), no (B, R) reduction needed.
    has_positive = positive_score.gather(1, positive_idx.unsqueeze(1)).squeeze(1) > -0.5 * big
    del positive_score
    negative_score = score.add_(same, alpha=big)  # same label (self included) pushed to about +big
    negative_idx = negative_score.argmin(dim=1)  # closest negative, (B,)
    has_negative = negative_score.gather(1, negative_idx.unsqueeze(1)).squeeze(1) < 0.5 * big
    return positive_idx, negative_idx, has_positive & has_negative


def batch_hard_triplets(
    embeddings: Tensor,
    labels: Tensor,
    *,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining (Hermans et al. 2017): each anchor's farthest positive and closest negative.

    Args:
        embeddings: anchors ``(B, D)``.
        labels: anchor labels ``(B,)``, integer.
        ref_embeddings: candidates ``(R, D)``. Default: ``embeddings``.
        ref_labels: candidate labels ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset``; ``None``: anchors are not
            candidates. Default: ``0``.

    Returns:
        ``(positive_idx, negative_idx, valid)``, each ``(B,)``: candidate indices (``int64``) and whether
        the anchor has at least one positive and one negative (where it has not, the index is arbitrary).

    Raises:
        ValueError: if shapes disagree or ``anchor_offset`` is out of range.
        TypeError: if ``embeddings`` is not floating point or a label tensor is not integer.

    Note:
        The choice is made on squared Euclidean distances, which ranks candidates exactly as the
        Euclidean distance does. Ties go to the lowest index.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [0.6], [4.0]])
        >>> batch_hard_triplets(x, torch.tensor([0, 0, 0, 1, 1]))
        (tensor([2, 2, 0, 4, 3]), tensor([3, 3, 4, 1, 2]), tensor([True, True, True, True, True]))

    References:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017.
        https://arxiv.org/abs/1703.07737
    """
    ref_embeddings, ref_labels, offset = check_candidates(
        "batch_hard_triplets", embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    ct = compute_dtype(embeddings.dtype)
    with torch.no_grad():
        x, y = embeddings.detach().to(ct), ref_embeddings.detach().to(ct)
        return hardest(x, y, labels, ref_labels, offset)


def semi_hard(sq: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """Unchecked core of :func:`semi_hard_triplets` on a (detached) distance matrix ``(B, R)``."""
    b, r = sq.shape
    if r == 0:
        return sq.new_zeros((b, r), dtype=torch.long), sq.new_zeros((b, r), dtype=torch.bool)
    masked = torch.where(negative, sq, torch.full_like(sq, float("inf")))
    sorted_sq, order = masked.sort(dim=1)  # negatives first, ascending; (B, R)
    num_negative = negative.sum(dim=1, keepdim=True)  # (B, 1)
    # first sorted negative strictly farther than each candidate positive: (B, R)
    first_farther = torch.searchsorted(sorted_sq, sq.contiguous(), right=True)
    # fallback: none farther -> the farthest negative, i.e. the least hard of the closer ones.
    position = torch.where(first_farther < num_negative, first_farther, (num_negative - 1).clamp_min(0))
    negative_idx = order.gather(1, position)
    valid = positive & (num_negative > 0)
    return negative_idx, valid


def semi_hard_triplets(
    embeddings: Tensor,
    labels: Tensor,
    *,
    ref_embeddings: Tensor | None = None,
    ref_labels: Tensor | None = None,
    anchor_offset: int | None = 0,
) -> tuple[Tensor, Tensor]:
    r"""Semi-hard mining (FaceNet): for each anchor-positive pair, the closest negative farther away.

    For anchor :math:`a` and positive :math:`p` the chosen negative is
    :math:`\arg\min_n \{ d(a, n) : d(a, n) > d(a, p) \}`. Where no negative is farther than the
    positive, the farthest negative is taken instead (the least hard of the harder ones), as TensorFlow
    Addons' ``triplet_semihard_loss`` does; FaceNet does not say what to do there.

    Args:
        embeddings: anchors ``(B, D)``.
        labels: anchor labels ``(B,)``, integer.
        ref_embeddings: candidates ``(R, D)``. Default: ``embeddings``.
        ref_labels: candidate labels ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset``; ``None``: anchors are not
            candidates. Default: ``0``.

    Returns:
        ``(negative_idx, valid)``, each ``(B, R)``: for anchor ``a`` and candidate ``p``, the chosen
        negative's candidate index (``int64``) and whether ``(a, p)`` is a positive pair whose anchor has a
        negative at all (elsewhere the index is arbitrary).

    Raises:
        ValueError: if shapes disagree or ``anchor_offset`` is out of range.
        TypeError: if ``embeddings`` is not floating point or a label tensor is not integer.

    Note:
        Sorting each anchor's negatives once and binary-searching every positive keeps memory at
        ``O(B R)``; no ``(B, R, R)`` tensor is built.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [0.5], [2.0]])
        >>> neg, valid = semi_hard_triplets(x, torch.tensor([0, 0, 0, 1, 1]))
        >>> torch.where(valid[0], neg[0], -1)  # anchor 0: positives 1 and 2; only 4 is past 1, none past 3
        tensor([-1,  4,  4, -1, -1])

    References:
        Schroff, Kalenichenko, Philbin, "FaceNet: A Unified Embedding for Face Recognition and
        Clustering", CVPR 2015. https://arxiv.org/abs/1503.03832
    """
    sq, positive, negative = _mining_inputs(
        "semi_hard_triplets", embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    return semi_hard(sq, positive, negative)
