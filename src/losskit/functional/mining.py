r"""Online triplet mining: embeddings and labels in, index and mask tensors out.

Mining is kept apart from the losses (as pytorch-metric-learning does) so that a miner can be reused,
inspected or replaced; the triplet loss in :mod:`losskit.functional.metric` calls the same code.

Every function takes a batch of anchors ``embeddings`` ``(B, D)`` with ``labels`` ``(B,)`` and an optional
*candidate set* ``ref_embeddings`` ``(R, D)`` with ``ref_labels`` ``(R,)`` that positives and negatives are
drawn from (default: the batch itself, ``R = B``). ``anchor_offset`` says where the anchors sit inside the
candidate set, so that an anchor is never its own positive: anchor ``i`` is candidate ``i + anchor_offset``.
This is how a cross-rank loss uses them: anchors are the local rows, the candidates are the rows gathered
from every rank, and ``anchor_offset = rank * B``. ``anchor_offset=None`` means the anchors are not in the
candidate set at all (queries against a gallery), so no pair is excluded.

Labels are identities, any integer dtype, any values (they are compared, never used as indices).

Distances. All pairwise distances come from matrix products (the Gram expansion
:math:`\lVert u\rVert^2 + \lVert v\rVert^2 - 2 u^\top v`), whose absolute error is about
:math:`\epsilon \lVert u\rVert^2`: on raw embeddings, rows far from the origin and close to each other
lose every digit. So the products are taken in a *frame*: the rows minus their (detached) mean row,
which makes the error relative to the spread of the batch instead of its distance from the origin.
For Euclidean distances the centred rows are also divided by a (detached) power of two near their
largest coordinate (exact, and undone on the result), so that the squares neither underflow nor
overflow: values and first and second derivatives stay finite for embeddings of 1e-20 in float32 or
1e-160 in float64. Pairs of the same label (positives, the close pairs by design) are taken in a
second frame centred on one member of their class, so their error is relative to the spread of the
class. Batch-hard mining ranks in the batch's frame alone, then computes the few selected distances
exactly from the differences. Distances are translation invariant, so no frame changes any value or
gradient beyond rounding.

Memory is ``O(B R)``: nothing of size ``B R^2`` is ever built. Mining runs under ``torch.no_grad`` in
float32 for float16/bfloat16 inputs and never synchronises with the device.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ._validation import (
    check_choice,
    check_floating,
    check_integer,
    check_ndim,
    check_same_device,
    compute_dtype,
    no_autocast,
)

__all__ = [
    "batch_hard_triplets",
    "distance_matrix",
    "semi_hard_triplets",
    "triplet_label_masks",
]

Distance = Literal["euclidean", "squared_euclidean"]
DISTANCES = ("euclidean", "squared_euclidean")


def safe_sqrt(x: Tensor) -> Tensor:
    """``sqrt(x)`` for ``x >= 0`` with gradient 0 (not ``inf``) at ``x == 0``, twice differentiable.

    NaN stays NaN (``x * 0`` in the zero branch), so a NaN distance is never turned into 0.
    """
    positive = x > 0
    # the inner where keeps sqrt's backward away from 0; the outer one gives the subgradient 0 there
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), x * 0.0)


def _power_of_two(m: Tensor) -> Tensor:
    """A power of two within a factor 2 of ``m`` (>= 0), 1 where ``m`` is 0; NaN stays NaN.

    Dividing by a power of two is exact, so a frame changes no digit of the coordinates.
    """
    s = torch.exp2(torch.floor(torch.log2(m)))
    return torch.where(m == 0, torch.ones_like(s), s)


def _absmax(t: Tensor) -> Tensor:
    return t.abs().amax() if t.numel() else t.new_zeros(())


class Frame(NamedTuple):
    """Where a batch's distance products are taken: ``(rows - centre) / scale``, both detached."""

    centre: Tensor  # (1, D): the mean candidate row
    scale: Tensor  # (): a power of two near the largest centred coordinate; NaN if any row has NaN


def frame(x: Tensor, y: Tensor) -> Frame:
    """The frame of anchors ``x`` ``(B, D)`` and candidates ``y`` ``(R, D)`` (no gradient)."""
    with torch.no_grad():
        x, y = x.detach(), y.detach()
        rows = y if y.shape[0] else x
        if rows.shape[0]:
            centre = rows.mean(0, keepdim=True)
        else:
            centre = rows.new_zeros((1, rows.shape[1]))
        scale = _power_of_two(torch.maximum(_absmax(x - centre), _absmax(y - centre)))
    return Frame(centre, scale)


def nan_guard(loss: Tensor, fr: Frame) -> Tensor:
    """``loss``, made NaN everywhere if any anchor or candidate holds a NaN (the frame's scale is NaN).

    Mining compares every candidate with every other, so a NaN row leaves no choice defined; without
    this the comparisons (false for NaN) would silently drop it and return a finite loss.
    """
    return loss + fr.scale.to(loss.dtype) * 0.0


def representatives(labels: Tensor, ref_labels: Tensor) -> tuple[Tensor, Tensor]:
    """For each anchor and each candidate, the index of the first candidate that has its label.

    ``O(R log R)``, no ``(R, R)`` mask. The candidates of one label share one representative, so the
    positives' frame (rows minus their representative) is exactly the same for both rows of a pair.
    An anchor whose label no candidate has gets an arbitrary index (it has no positive).
    """
    with torch.no_grad():
        sorted_labels, order = ref_labels.sort(stable=True)  # stable: the first of each label first
        ry = order.gather(0, torch.searchsorted(sorted_labels, ref_labels))
        if labels is ref_labels:
            return ry, ry
        at = torch.searchsorted(sorted_labels, labels).clamp_max(max(ref_labels.shape[0] - 1, 0))
        return order.gather(0, at), ry


def _gram_sq(u: Tensor, v: Tensor) -> Tensor:
    """``||u_i - v_j||^2`` by one matrix product, clamped at 0 (rounding can go below); ``(B, R)``."""
    norms = u.pow(2).sum(1, keepdim=True) + v.pow(2).sum(1).unsqueeze(0)  # (B, R)
    return torch.addmm(norms, u, v.transpose(0, 1), alpha=-2.0).clamp_min(0.0)


def pairwise_distances(
    x: Tensor,
    y: Tensor,
    distance: str,
    fr: Frame,
    same: Tensor | None = None,
    reps: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Differentiable distances ``(B, R)`` of anchors ``x`` to candidates ``y`` in the frame ``fr``.

    With ``same`` (``(B, R)``, same label) and ``reps`` (:func:`representatives`), same-label pairs are
    taken in their class frame. Squared distances are computed unscaled (their gradient ``2 (x - y)``
    must not underflow with the scale squared); Euclidean ones in the scaled frame, times the scale.
    """
    euclidean = distance == "euclidean"
    inv = 1.0 / fr.scale if euclidean else None
    u, v = x - fr.centre, y - fr.centre
    if inv is not None:
        u, v = u * inv, v * inv
    sq = _gram_sq(u, v)
    if same is not None and reps is not None:
        rx, ry = reps
        anchor = y.detach()
        up, vp = x - anchor.index_select(0, rx), y - anchor.index_select(0, ry)
        if inv is not None:
            up, vp = up * inv, vp * inv
        sq = torch.where(same, _gram_sq(up, vp), sq)
    if not euclidean:
        return sq
    return safe_sqrt(sq) * fr.scale


def row_distance(x: Tensor, y: Tensor, distance: str) -> Tensor:
    """``d(x_i, y_i)`` from the differences (no cancellation), ``(N,)``.

    The Euclidean form divides each row's difference by a power of two near its largest entry first
    (as ``hypot`` does), so the value and its first and second derivatives stay finite and accurate
    for differences of any size the dtype holds (1e-20 in float32, 1e-160 in float64).
    """
    diff = x - y  # (N, D)
    if distance == "squared_euclidean":
        return diff.pow(2).sum(1)
    if diff.shape[1] == 0:
        return diff.sum(1)
    with torch.no_grad():
        s = _power_of_two(diff.detach().abs().amax(1))  # (N,)
    return safe_sqrt((diff / s.unsqueeze(1)).pow(2).sum(1)) * s


def distance_matrix(x: Tensor, y: Tensor | None = None, *, distance: Distance = "euclidean") -> Tensor:
    r"""All pairwise distances between the rows of ``x`` and the rows of ``y``.

    .. math::
        D_{ij} = \lVert x_i - y_j \rVert_2 \quad\text{or}\quad \lVert x_i - y_j \rVert_2^2

    Computed as :math:`\lVert u_i\rVert^2 + \lVert v_j\rVert^2 - 2 u_i^\top v_j` (one matrix product)
    on the rows centred on the mean row of ``y`` and scaled by a power of two (see the module notes),
    clamped at 0.

    Args:
        x: rows ``(B, D)``.
        y: rows ``(R, D)``. Default: ``x``.
        distance: ``'euclidean'`` | ``'squared_euclidean'``. Default: ``'euclidean'``.

    Returns:
        ``(B, R)``, dtype of ``x`` (float32 inside for float16/bfloat16).

    Raises:
        ValueError: if ``x`` or ``y`` is not 2-D, their widths or devices differ, or ``distance`` is
            unknown.
        TypeError: if ``x`` or ``y`` is not floating point.

    Note:
        The square root has gradient 0 at distance 0 (a subgradient), so identical rows give finite
        gradients. The absolute error of a squared distance is about ``eps`` times the squared spread
        of the rows (not their squared norm, thanks to the centring): pairs much closer than the
        spread of the batch keep fewer digits; :func:`~losskit.functional.batch_triplet_loss` computes
        same-label pairs in a frame of their own for that reason.

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
        check_same_device(fn, ("x", x), ("y", y))
    ct = compute_dtype(x.dtype)
    with no_autocast(x.device):
        xc, yc = x.to(ct), y.to(ct)
        out = pairwise_distances(xc, yc, distance, frame(xc, yc))
    return out.to(x.dtype)


def check_candidates(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
    weight: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, int | None]:
    """Check anchors, the optional candidate set and their devices (``weight`` too, once per call).

    Returns ``(labels, ref_embeddings, ref_labels, offset)`` with both label tensors as ``int64``.
    """
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
        check_same_device(fn, ("embeddings", embeddings), ("labels", labels), ("weight", weight))
        labels = labels.long()
        return labels, embeddings, labels, 0
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
    check_same_device(
        fn,
        ("embeddings", embeddings),
        ("labels", labels),
        ("ref_embeddings", ref_embeddings),
        ("ref_labels", ref_labels),
        ("weight", weight),
    )
    return labels.long(), ref_embeddings, ref_labels.long(), anchor_offset


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
        labels: anchor identities ``(B,)``, any integer dtype.
        ref_labels: candidate identities ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset`` and is excluded from its own
            positives; ``None``: the anchors are not candidates. Default: ``0``.

    Returns:
        ``(positive, negative)``, two boolean ``(B, R)`` masks: same label and not the anchor itself;
        different label.

    Raises:
        ValueError: if a tensor is not 1-D, the two are on different devices, or ``anchor_offset`` is
            out of range.
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
        ref_fake = ref_labels.new_empty((ref_labels.shape[0], 0), dtype=torch.float32)
    labels, _, ref, offset = check_candidates(fn, fake, labels, ref_fake, ref_labels, anchor_offset)
    return label_masks(labels, ref, offset)


def mining_inputs(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    ref_embeddings: Tensor | None,
    ref_labels: Tensor | None,
    anchor_offset: int | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, int | None]:
    """Checked, detached inputs of a miner: ``(x, y, labels, ref_labels, offset)`` in the compute dtype."""
    labels, ref, ref_labels_, offset = check_candidates(
        fn, embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    ct = compute_dtype(embeddings.dtype)
    x = embeddings.detach().to(ct)
    y = x if ref_embeddings is None else ref.detach().to(ct)
    return x, y, labels, ref_labels_, offset


def hardest(
    x: Tensor,
    y: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    anchor_offset: int | None,
    fr: Frame,
) -> tuple[Tensor, Tensor, Tensor]:
    """Unchecked core of :func:`batch_hard_triplets` on detached anchors ``x`` and candidates ``y``.

    Ranks in the batch's frame only (one matrix product): the loss recomputes the two chosen distances
    from the differences, so a class frame for the positives would only settle near-ties (within the
    frame's rounding), at the price of a second product.
    """
    b, r = x.shape[0], y.shape[0]
    if r == 0:  # static shape: no candidates, nothing to mine
        zero = x.new_zeros(b, dtype=torch.long)
        return zero, zero, x.new_zeros(b, dtype=torch.bool)
    inv = 1.0 / fr.scale
    u, v = (x - fr.centre) * inv, (y - fr.centre) * inv
    # ||v_j||^2 - 2 u_i.v_j ranks the candidates of row i as ||u_i - v_j||^2 does: one fused addmm.
    score = torch.addmm(v.pow(2).sum(1).unsqueeze(0), u, v.transpose(0, 1), alpha=-2.0)  # (B, R)
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)  # (B, R)
    # 0/1 via a uint8 copy: CPU's bool->float copy is 3x slower (a bool->uint8 bit view is faster still,
    # but torch.func.vmap and inductor before torch 2.5 cannot take it)
    same = same.to(torch.uint8).to(score.dtype)
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
        labels: anchor identities ``(B,)``, any integer dtype.
        ref_embeddings: candidates ``(R, D)``. Default: ``embeddings``.
        ref_labels: candidate identities ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset``; ``None``: anchors are not
            candidates. Default: ``0``.

    Returns:
        ``(positive_idx, negative_idx, valid)``, each ``(B,)``: candidate indices (``int64``) and whether
        the anchor has at least one positive and one negative (where it has not, the index is arbitrary).

    Raises:
        ValueError: if shapes or devices disagree or ``anchor_offset`` is out of range.
        TypeError: if ``embeddings`` is not floating point or a label tensor is not integer.

    Note:
        The choice is made on squared Euclidean distances in the batch's frame (see the module notes),
        which ranks candidates as the Euclidean distance does up to that frame's rounding. Ties go to
        the lowest index.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [0.6], [4.0]])
        >>> batch_hard_triplets(x, torch.tensor([0, 0, 0, 1, 1]))
        (tensor([2, 2, 0, 4, 3]), tensor([3, 3, 4, 1, 2]), tensor([True, True, True, True, True]))

    References:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017.
        https://arxiv.org/abs/1703.07737
    """
    x, y, labels, ref_labels_, offset = mining_inputs(
        "batch_hard_triplets", embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    with torch.no_grad(), no_autocast(x.device):
        return hardest(x, y, labels, ref_labels_, offset, frame(x, y))


def semi_hard(d: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """Unchecked core of :func:`semi_hard_triplets` on a (detached) distance matrix ``(B, R)``.

    Any increasing function of the distance gives the same choice (squared or not).
    """
    b, r = d.shape
    if r == 0:
        return d.new_zeros((b, r), dtype=torch.long), d.new_zeros((b, r), dtype=torch.bool)
    masked = torch.where(negative, d, torch.full_like(d, float("inf")))
    sorted_d, order = masked.sort(dim=1)  # negatives first, ascending; (B, R)
    num_negative = negative.sum(dim=1, keepdim=True)  # (B, 1)
    # first sorted negative strictly farther than each candidate positive: (B, R)
    first_farther = torch.searchsorted(sorted_d, d.contiguous(), right=True)
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
        labels: anchor identities ``(B,)``, any integer dtype.
        ref_embeddings: candidates ``(R, D)``. Default: ``embeddings``.
        ref_labels: candidate identities ``(R,)``. Default: ``labels``.
        anchor_offset: anchor ``i`` is candidate ``i + anchor_offset``; ``None``: anchors are not
            candidates. Default: ``0``.

    Returns:
        ``(negative_idx, valid)``, each ``(B, R)``: for anchor ``a`` and candidate ``p``, the chosen
        negative's candidate index (``int64``) and whether ``(a, p)`` is a positive pair whose anchor has a
        negative at all (elsewhere the index is arbitrary).

    Raises:
        ValueError: if shapes or devices disagree or ``anchor_offset`` is out of range.
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
    x, y, labels, ref_labels_, offset = mining_inputs(
        "semi_hard_triplets", embeddings, labels, ref_embeddings, ref_labels, anchor_offset
    )
    with torch.no_grad(), no_autocast(x.device):
        positive, negative = label_masks(labels, ref_labels_, offset)
        if y.shape[0] == 0:
            return semi_hard(x.new_zeros((x.shape[0], 0)), positive, negative)
        reps = representatives(labels, ref_labels_)
        same = labels.unsqueeze(1) == ref_labels_.unsqueeze(0)
        sq = pairwise_distances(x, y, "squared_euclidean", frame(x, y), same, reps)
        return semi_hard(sq, positive, negative)
