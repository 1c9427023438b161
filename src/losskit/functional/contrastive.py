r"""Contrastive losses of the InfoNCE family: NT-Xent, supervised contrastive, CLIP and SigLIP.

Every loss here is a function of one similarity matrix: cosine similarities within a labelled batch
(:func:`nt_xent_loss`, :func:`supcon_loss`) or scaled dot products between paired image and text
features (:func:`clip_loss`, :func:`siglip_loss`). Nothing larger than that matrix is ever formed (no
per-pair or per-triplet tensors), so memory is ``O(B R)`` for ``B`` anchors and ``R`` candidates.

Two paths compute the same function (see ``CONTRIBUTING.md``):

* the **definition** below, plain differentiable torch ops on the whole ``(B, R)`` matrix: it runs under
  ``torch.compile``, ``torch.func`` transforms, forward-mode AD and double backward;
* in eager autograd, a chunked kernel (:mod:`losskit._kernels.contrastive`) that streams over blocks of
  ``chunk_size`` candidate columns with an online log-sum-exp and a closed-form gradient, recomputing
  each block in backward instead of saving it: its workspace is ``O(B x chunk_size)``. ``chunk_size``
  changes only memory and time, never the result beyond rounding; the definition ignores it.

``reduction='none'`` returns one value per anchor (per image-text pair for CLIP and SigLIP) and
``weight`` is per anchor; each function states what ``'mean'`` divides by.

Cross-rank forms (each rank's rows against the global batch, with exact gradients) are in
:mod:`losskit.distributed`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _kernels
from .._kernels import contrastive as _kc
from ._reduction import Reduction, check_reduction, check_weight, reduce_loss
from ._validation import (
    check_floating,
    check_integer,
    check_ndim,
    check_positive,
    check_positive_int,
    check_same_device,
    check_same_shape,
    compute_dtype,
    no_autocast,
    output_dtype,
)

__all__ = [
    "clip_loss",
    "nt_xent_loss",
    "siglip_loss",
    "supcon_loss",
]

_INF = float("inf")


# --------------------------------------------------------------------------------------------------
# argument checks (shared with losskit.distributed.contrastive)
# --------------------------------------------------------------------------------------------------


def check_chunk_size(fn: str, chunk_size: object) -> None:
    if chunk_size is not None:
        check_positive_int(fn, "chunk_size", chunk_size)


def check_labelled_batch(fn: str, embeddings: object, labels: object, weight: object) -> None:
    """``embeddings (B, D)`` floating, ``labels (B,)`` integer identities, one device."""
    check_floating(fn, "embeddings", embeddings)
    assert isinstance(embeddings, Tensor)
    check_ndim(fn, "embeddings", embeddings, 2, "(B, D)")
    check_integer(fn, "labels", labels)
    assert isinstance(labels, Tensor)
    b = embeddings.shape[0]
    if tuple(labels.shape) != (b,):
        raise ValueError(f"{fn}: expected labels of shape ({b},), got {tuple(labels.shape)}")
    check_same_device(fn, ("embeddings", embeddings), ("labels", labels), ("weight", weight))


def check_scalar(fn: str, name: str, value: object) -> None:
    """A Python number or a one-element floating tensor (0-dim or ``(1,)``)."""
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise TypeError(
                f"{fn}: {name} must be a floating-point tensor or a number; got dtype {value.dtype}"
            )
        if value.numel() != 1 or value.dim() > 1:
            raise ValueError(f"{fn}: expected {name} of shape () or (1,), got {tuple(value.shape)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number or a one-element tensor; got {type(value).__name__}")


def check_paired_features(
    fn: str, image_features: object, text_features: object, scalars: dict[str, object], weight: object
) -> None:
    """``image_features`` and ``text_features`` both ``(N, D)`` floating; scalars; one device."""
    check_floating(fn, "image_features", image_features)
    check_floating(fn, "text_features", text_features)
    assert isinstance(image_features, Tensor) and isinstance(text_features, Tensor)
    check_ndim(fn, "image_features", image_features, 2, "(N, D)")
    check_same_shape(fn, "image_features", image_features, "text_features", text_features)
    for name, value in scalars.items():
        check_scalar(fn, name, value)
    check_same_device(
        fn,
        ("image_features", image_features),
        ("text_features", text_features),
        *scalars.items(),
        ("weight", weight),
    )


def as_scalar(value: float | Tensor, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype (a graph edge when ``value`` is a tensor)."""
    if isinstance(value, Tensor):
        return value.reshape(()).to(like.dtype)
    return torch.as_tensor(float(value), dtype=like.dtype, device=like.device)


# --------------------------------------------------------------------------------------------------
# masks: anchor i is candidate i + offset; offset None means the anchors are not among the candidates
# --------------------------------------------------------------------------------------------------


def self_mask(rows: int, cols: Tensor, offset: int | None, device: torch.device) -> Tensor:
    """``(B, k)`` bool: True at anchor ``i``'s own column among candidate columns ``cols`` ``(k,)``."""
    if offset is None:
        return torch.zeros((rows, cols.shape[0]), dtype=torch.bool, device=device)
    anchors = torch.arange(rows, device=device).unsqueeze(1) + offset  # (B, 1)
    return anchors == cols.unsqueeze(0)


def pair_masks(labels: Tensor, ref_labels: Tensor, offset: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(positive, negative, self)`` masks ``(B, R)``: same label but not self, other label, self."""
    cols = torch.arange(ref_labels.shape[0], device=labels.device)
    own = self_mask(labels.shape[0], cols, offset, labels.device)
    same = labels.unsqueeze(1) == ref_labels.unsqueeze(0)
    return same & ~own, ~same, own


# --------------------------------------------------------------------------------------------------
# the definitions: plain differentiable ops on the whole (B, R) similarity matrix
# --------------------------------------------------------------------------------------------------


def nt_xent_definition(
    a: Tensor, c: Tensor, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float
) -> tuple[Tensor, Tensor]:
    """Per-anchor NT-Xent ``(B,)`` and the number of positive pairs, on unit rows ``a``, ``c``."""
    sim = (a @ c.transpose(0, 1)) / temperature  # (B, R)
    positive, negative, _ = pair_masks(labels, ref_labels, offset)
    has_negative = negative.any(dim=1, keepdim=True)  # (B, 1)
    # rows without any negative: the log-sum-exp runs over zeros instead of over nothing (-inf), so no
    # NaN reaches any derivative; their terms are masked out below (the loss of such a pair is 0).
    fill = torch.zeros_like(sim).masked_fill(has_negative, -_INF)
    neg_lse = torch.logsumexp(torch.where(negative, sim, fill), dim=1, keepdim=True)  # (B, 1)
    # -log(e^s / (e^s + sum_n e^{s_n})) = -log sigmoid(s - LSE_n s_n): exact, no overflow
    terms = -F.logsigmoid(sim - neg_lse)
    rows = torch.where(positive & has_negative, terms, torch.zeros_like(terms)).sum(dim=1)
    return rows, positive.sum()


def supcon_definition(
    a: Tensor,
    c: Tensor,
    labels: Tensor,
    ref_labels: Tensor,
    offset: int | None,
    temperature: float,
    base_temperature: float,
) -> tuple[Tensor, Tensor]:
    """Per-anchor SupCon L_out ``(B,)`` and the number of anchors with a positive."""
    sim = (a @ c.transpose(0, 1)) / temperature  # (B, R)
    positive, _, own = pair_masks(labels, ref_labels, offset)
    num_pos = positive.sum(dim=1)  # (B,)
    has_pos = num_pos > 0
    # an anchor with a positive has a non-self candidate; the others get a finite dummy normaliser
    fill = torch.zeros_like(sim).masked_fill(has_pos.unsqueeze(1), -_INF)
    lse = torch.logsumexp(torch.where(own, fill, sim), dim=1)  # log sum_{a != i} exp(s_ia)
    mean_pos = torch.where(positive, sim, torch.zeros_like(sim)).sum(dim=1) / num_pos.clamp_min(1)
    rows = (temperature / base_temperature) * (lse - mean_pos)
    return torch.where(has_pos, rows, torch.zeros_like(rows)), has_pos.sum()


def softmax_target_definition(a: Tensor, c: Tensor, offset: int, scale: Tensor) -> Tensor:
    """Cross-entropy of each anchor's softmax over ``scale * a c^T``, target column ``i + offset``."""
    logits = scale * (a @ c.transpose(0, 1))  # (B, R)
    return torch.logsumexp(logits, dim=1) - logits.diagonal(offset)


def clip_definition(x: Tensor, y: Tensor, scale: Tensor) -> Tensor:
    """Per-pair CLIP loss ``(N,)`` of one batch: half image-to-text plus half text-to-image."""
    logits = scale * (x @ y.transpose(0, 1))  # (N, N): image i against text j
    image_lse, text_lse = torch.logsumexp(logits, dim=1), torch.logsumexp(logits, dim=0)
    return 0.5 * (image_lse + text_lse) - logits.diagonal()


def siglip_definition(x: Tensor, ref_y: Tensor, offset: int | None, scale: Tensor, bias: Tensor) -> Tensor:
    """Per-image SigLIP loss ``(B,)``: ``-sum_j log sigmoid(z_ij (t x_i . y_j + b))``."""
    logits = scale * (x @ ref_y.transpose(0, 1)) + bias  # (B, R)
    own = self_mask(x.shape[0], torch.arange(ref_y.shape[0], device=x.device), offset, x.device)
    return -F.logsigmoid(torch.where(own, logits, -logits)).sum(dim=1)


# --------------------------------------------------------------------------------------------------
# the one dispatch point per loss: definition or chunked kernel (shared with losskit.distributed).
# Each returns the per-row loss, or with ``summed`` the weighted sum sum_i w_i L_i (the kernel then
# computes its gradient in the same sweep), next to the count that 'mean' divides by.
# --------------------------------------------------------------------------------------------------


def combine(rows: Tensor, weight: Tensor | None, summed: bool) -> Tensor:
    if not summed:
        return rows
    return (rows if weight is None else rows * weight.to(rows.dtype)).sum()


def nt_xent_terms(
    a: Tensor, c: Tensor, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float,
    chunk_size: int | None, weight: Tensor | None, summed: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """NT-Xent on unit rows in the compute dtype; the count is the number of positive pairs."""
    if _kernels.contrastive.eligible(a, c, labels, weight):
        definition = functools.partial(
            _rows_only, nt_xent_definition, labels=labels, ref_labels=ref_labels, offset=offset,
            temperature=temperature,
        )  # fmt: skip
        return _kc.nt_xent(
            a, c, labels, ref_labels, offset, temperature, chunk_size, definition, weight, summed
        )
    rows, count = nt_xent_definition(a, c, labels, ref_labels, offset, temperature)
    return combine(rows, weight, summed), count


def supcon_terms(
    a: Tensor, c: Tensor, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float,
    base_temperature: float, chunk_size: int | None, weight: Tensor | None, summed: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """SupCon on unit rows in the compute dtype; the count is the number of anchors with a positive."""
    if _kernels.contrastive.eligible(a, c, labels, weight):
        definition = functools.partial(
            _rows_only, supcon_definition, labels=labels, ref_labels=ref_labels, offset=offset,
            temperature=temperature, base_temperature=base_temperature,
        )  # fmt: skip
        return _kc.supcon(
            a, c, labels, ref_labels, offset, temperature, base_temperature, chunk_size, definition,
            weight, summed,
        )  # fmt: skip
    rows, count = supcon_definition(a, c, labels, ref_labels, offset, temperature, base_temperature)
    return combine(rows, weight, summed), count


def _rows_only(definition, a: Tensor, c: Tensor, scale: object, bias: object, **kwargs) -> Tensor:
    return definition(a, c, **kwargs)[0]


def clip_terms(
    x: Tensor, y: Tensor, ref_x: Tensor | None, ref_y: Tensor | None, offset: int, scale: Tensor,
    chunk_size: int | None, weight: Tensor | None, summed: bool,
) -> Tensor:  # fmt: skip
    """CLIP in the compute dtype.

    Without candidates (``ref_x is None``) the pairs are the batch itself and one matrix serves both
    directions; with them (a cross-rank loss), image ``i`` is scored against every text of ``ref_y``
    and text ``i`` against every image of ``ref_x``, its partner at column ``i + offset``.
    """
    if _kernels.contrastive.eligible(x, y, ref_x, ref_y, scale, weight):
        if ref_x is None or ref_y is None:
            definition = lambda a, c, s, b: clip_definition(a, c, s)  # noqa: E731
            return _kc.clip(x, y, scale, chunk_size, definition, weight, summed)
        half = lambda a, c, s, b: softmax_target_definition(a, c, offset, s)  # noqa: E731
        image = _kc.softmax_target(x, ref_y, offset, scale, chunk_size, half, weight, summed)
        text = _kc.softmax_target(y, ref_x, offset, scale, chunk_size, half, weight, summed)
        return 0.5 * (image + text)
    if ref_x is None or ref_y is None:
        rows = clip_definition(x, y, scale)
    else:
        image = softmax_target_definition(x, ref_y, offset, scale)
        rows = 0.5 * (image + softmax_target_definition(y, ref_x, offset, scale))
    return combine(rows, weight, summed)


def siglip_terms(
    x: Tensor, ref_y: Tensor, offset: int | None, scale: Tensor, bias: Tensor, chunk_size: int | None,
    weight: Tensor | None, summed: bool,
) -> Tensor:  # fmt: skip
    """SigLIP in the compute dtype; ``offset=None``: every pair is negative."""
    if _kernels.contrastive.eligible(x, ref_y, scale, bias, weight):
        definition = lambda a, c, s, b: siglip_definition(a, c, offset, s, b)  # noqa: E731
        return _kc.siglip(x, ref_y, offset, scale, bias, chunk_size, definition, weight, summed)
    return combine(siglip_definition(x, ref_y, offset, scale, bias), weight, summed)


def finish(value: Tensor, reduction: str, weight: Tensor | None, divisor: Tensor | float) -> Tensor:
    """The per-row loss weighted (``'none'``), or the weighted sum divided as ``'mean'`` says."""
    if reduction == "none":
        return reduce_loss(value, "none", weight)
    return reduce_loss(value, reduction, divisor=divisor)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------------


def nt_xent(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    temperature: float,
    chunk_size: int | None,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    check_labelled_batch(fn, embeddings, labels, weight)
    temperature = check_positive(fn, "temperature", temperature)
    check_chunk_size(fn, chunk_size)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (embeddings.shape[0],))
    out = output_dtype(embeddings)
    with no_autocast(embeddings.device):
        a = F.normalize(embeddings.to(compute_dtype(embeddings.dtype)), dim=1)
        ids = labels.long()
        summed = reduction != "none"
        value, pairs = nt_xent_terms(a, a, ids, ids, 0, temperature, chunk_size, weight, summed)
        return finish(value, reduction, weight, pairs).to(out)


def nt_xent_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = 0.07,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""NT-Xent / InfoNCE (SimCLR) over a batch whose rows with equal labels are views of one sample.

    Each positive pair :math:`(i, p)` (two different rows with the same label) is a softmax
    classification of the positive against the anchor's negatives (rows with another label), on cosine
    similarities divided by the temperature :math:`\tau`:

    .. math::
        \ell_{ip} = -\log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau} + \sum_{n:\, y_n \ne y_i} e^{s_{in}/\tau}},
        \qquad L_i = w_i \sum_{p \ne i:\, y_p = y_i} \ell_{ip}

    where :math:`s_{ij} = \hat x_i \cdot \hat x_j` with :math:`\hat x = x / \max(\lVert x\rVert, 10^{-12})`.
    With two views per label (SimCLR's batch of ``2N``) the denominator is the paper's
    :math:`\sum_{k \ne i} e^{s_{ik}/\tau}`.

    Args:
        embeddings: ``(B, D)``, normalised here.
        labels: ``(B,)``, integer identities (any values; equal labels mark the views of one sample).
        temperature: :math:`\tau > 0`. Default: ``0.07`` (pytorch-metric-learning's default; SimCLR
            tunes it, Table 5 of the paper compares 0.05 to 1).
        chunk_size: candidate columns per block of the chunked kernel (eager autograd only; workspace
            ``O(B x chunk_size)``). Default: ``None``, blocks of at most ``2**22`` similarities.
        weight: optional per-anchor weights, broadcastable to ``(B,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'sum'`` is :math:`\sum_i L_i`; ``'mean'``
            divides it by the number of positive pairs (ordered: ``(i, p)`` and ``(p, i)`` both count),
            pytorch-metric-learning's mean over positive pairs; 0 when there is none.

    Returns:
        Shape ``(B,)`` (:math:`L_i`, 0 for anchors without a positive) if ``reduction='none'``,
        otherwise a scalar; dtype of ``embeddings`` (float32 under autocast).

    Raises:
        ValueError: if shapes disagree, ``temperature <= 0``, ``chunk_size < 1``, ``weight`` does not
            broadcast, the tensors are on different devices, or ``reduction`` is unknown.
        TypeError: if ``embeddings`` is not floating point or ``labels`` not integer.

    Note:
        Equal to pytorch-metric-learning's ``NTXentLoss`` (tested to 1e-6). With more than two views of
        a label, each positive pair's denominator holds that positive and the negatives, not the other
        positives, as pytorch-metric-learning does (the paper defines two views only). An anchor
        without negatives contributes 0 for each of its positive pairs, which still count in the mean.
        Computed as :math:`-\log\sigma(s_{ip}/\tau - \mathrm{LSE}_n s_{in}/\tau)`: finite at any
        temperature, with finite gradients. Labels are identities, not class indices: they are not
        range-checked.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
        >>> nt_xent_loss(x, torch.tensor([0, 0, 1, 1]), temperature=1.0)  # log(1 + 2/e)
        tensor(0.5514)

    References:
        Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual
        Representations", ICML 2020. https://arxiv.org/abs/2002.05709 ; van den Oord, Li, Vinyals,
        "Representation Learning with Contrastive Predictive Coding", 2018. https://arxiv.org/abs/1807.03748
    """
    return nt_xent("nt_xent_loss", embeddings, labels, temperature, chunk_size, weight, reduction)


def supcon(
    fn: str,
    embeddings: Tensor,
    labels: Tensor,
    temperature: float,
    base_temperature: float,
    chunk_size: int | None,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    check_labelled_batch(fn, embeddings, labels, weight)
    temperature = check_positive(fn, "temperature", temperature)
    base_temperature = check_positive(fn, "base_temperature", base_temperature)
    check_chunk_size(fn, chunk_size)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (embeddings.shape[0],))
    out = output_dtype(embeddings)
    with no_autocast(embeddings.device):
        a = F.normalize(embeddings.to(compute_dtype(embeddings.dtype)), dim=1)
        ids = labels.long()
        summed = reduction != "none"
        value, anchors = supcon_terms(
            a, a, ids, ids, 0, temperature, base_temperature, chunk_size, weight, summed
        )
        return finish(value, reduction, weight, anchors).to(out)


def supcon_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Supervised contrastive loss, the paper's :math:`\mathcal{L}^{sup}_{out}` (Khosla et al. 2020).

    Every other row with the anchor's label is a positive; the anchor's log-probability of each
    positive under a softmax over all other rows is averaged over its positives:

    .. math::
        L_i = -w_i \frac{\tau}{\tau_b} \frac{1}{|P(i)|} \sum_{p \in P(i)}
        \log \frac{e^{s_{ip}/\tau}}{\sum_{a \ne i} e^{s_{ia}/\tau}}

    where :math:`P(i)` are the rows :math:`p \ne i` with :math:`y_p = y_i`, :math:`s_{ij}` the cosine
    similarity of rows :math:`i, j`, :math:`\tau` the temperature and :math:`\tau_b` the base
    temperature (HobbitLong/SupContrast's rescaling; :math:`\tau_b = \tau` is the paper's formula).

    Args:
        embeddings: ``(B, D)``, normalised here (SupContrast's model normalises before its loss). For
            SupContrast's ``(bsz, n_views, D)`` features, pass ``torch.cat(features.unbind(1))`` with
            ``labels.repeat(n_views)``.
        labels: ``(B,)``, integer identities (any values); not range-checked.
        temperature: :math:`\tau > 0`. Default: ``0.07`` (SupContrast's).
        base_temperature: :math:`\tau_b > 0`. Default: ``0.07`` (SupContrast's).
        chunk_size: candidate columns per block of the chunked kernel (eager autograd only). Default:
            ``None``, blocks of at most ``2**22`` similarities.
        weight: optional per-anchor weights, broadcastable to ``(B,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``. ``'mean'`` divides the sum by the number of
            anchors that have at least one positive; 0 when none has.

    Returns:
        Shape ``(B,)`` (0 for anchors without a positive) if ``reduction='none'``, otherwise a scalar;
        dtype of ``embeddings`` (float32 under autocast).

    Raises:
        ValueError: if shapes disagree, a temperature is ``<= 0``, ``chunk_size < 1``, ``weight`` does not
            broadcast, the tensors are on different devices, or ``reduction`` is unknown.
        TypeError: if ``embeddings`` is not floating point or ``labels`` not integer.

    Note:
        Anchors without any positive are excluded from the mean and give 0 (never NaN); a batch where
        none has one gives 0 with a gradient. SupContrast divides by their positive count clamped to
        1 and keeps them in its mean (its older code gave NaN). pytorch-metric-learning's
        ``SupConLoss`` (``temperature=0.1`` by default, no base temperature) drops them too and
        otherwise agrees (tested to 1e-6 with ``base_temperature=temperature``), except where its
        ``AvgNonZeroReducer`` drops an anchor whose loss is exactly 0 (rounded to 0 in float32 at a
        low temperature), and for a batch of one label, where it returns 0 and :math:`L_{out}` is
        defined (``log |P(i)|`` at equal similarities).

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
        >>> supcon_loss(x, torch.tensor([0, 0, 1, 1]), temperature=1.0, base_temperature=1.0)
        tensor(0.5514)

    References:
        Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020. https://arxiv.org/abs/2004.11362
    """
    return supcon(
        "supcon_loss", embeddings, labels, temperature, base_temperature, chunk_size, weight, reduction
    )


def clip(
    fn: str,
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: float | Tensor,
    chunk_size: int | None,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    check_paired_features(fn, image_features, text_features, {"logit_scale": logit_scale}, weight)
    check_chunk_size(fn, chunk_size)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (image_features.shape[0],))
    out = output_dtype(image_features)
    with no_autocast(image_features.device):
        ct = compute_dtype(image_features.dtype)
        x, y = image_features.to(ct), text_features.to(ct)
        scale = as_scalar(logit_scale, x)
        value = clip_terms(x, y, None, None, 0, scale, chunk_size, weight, reduction != "none")
        return finish(value, reduction, weight, float(x.shape[0])).to(out)


def clip_loss(
    image_features: Tensor,
    text_features: Tensor,
    *,
    logit_scale: float | Tensor,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""CLIP's symmetric cross-entropy over the image-text similarity matrix (Radford et al. 2021).

    Row ``i`` of both inputs is a matching image-text pair; every other text is a negative for image
    ``i`` and every other image a negative for text ``i``:

    .. math::
        L_i = \frac{w_i}{2}\Big(-\log \frac{e^{t\, x_i \cdot y_i}}{\sum_j e^{t\, x_i \cdot y_j}}
        - \log \frac{e^{t\, x_i \cdot y_i}}{\sum_j e^{t\, x_j \cdot y_i}}\Big)

    where :math:`x_i`, :math:`y_i` are the image and text features and :math:`t` the logit scale.

    Args:
        image_features: ``(N, D)``, used as given (CLIP normalises them in the model).
        text_features: ``(N, D)``, used as given.
        logit_scale: :math:`t`, the already exponentiated scale (CLIP learns :math:`\log t`, initialised
            to :math:`\log(1/0.07)`): a number or a 0-dim tensor, which receives a gradient.
        chunk_size: text columns per block of the chunked kernel (eager autograd only). Default:
            ``None``, blocks of at most ``2**22`` logits.
        weight: optional per-pair weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides by ``N`` (open_clip's value).

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``image_features``
        (float32 under autocast).

    Raises:
        ValueError: if the features are not both ``(N, D)``, ``logit_scale`` is not one element,
            ``chunk_size < 1``, ``weight`` does not broadcast, the tensors are on different devices, or
            ``reduction`` is unknown.
        TypeError: if a feature tensor or ``logit_scale`` is not floating point.

    Note:
        Equal to open_clip's ``ClipLoss()(image_features, text_features, logit_scale)`` in one process
        (tested where open_clip is installed); for many ranks see
        :func:`losskit.distributed.cross_rank_clip_loss`. open_clip's optional ``logit_bias`` is not
        part of CLIP and not offered.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> clip_loss(x, x, logit_scale=1.0)  # log(1 + 1/e)
        tensor(0.3133)

    References:
        Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
        ICML 2021. https://arxiv.org/abs/2103.00020
    """
    return clip("clip_loss", image_features, text_features, logit_scale, chunk_size, weight, reduction)


def siglip(
    fn: str,
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: float | Tensor,
    logit_bias: float | Tensor,
    chunk_size: int | None,
    weight: Tensor | None,
    reduction: str,
) -> Tensor:
    scalars = {"logit_scale": logit_scale, "logit_bias": logit_bias}
    check_paired_features(fn, image_features, text_features, scalars, weight)
    check_chunk_size(fn, chunk_size)
    check_reduction(fn, reduction)
    check_weight(fn, weight, (image_features.shape[0],))
    out = output_dtype(image_features)
    with no_autocast(image_features.device):
        ct = compute_dtype(image_features.dtype)
        x, y = image_features.to(ct), text_features.to(ct)
        scale, bias = as_scalar(logit_scale, x), as_scalar(logit_bias, x)
        value = siglip_terms(x, y, 0, scale, bias, chunk_size, weight, reduction != "none")
        return finish(value, reduction, weight, float(x.shape[0])).to(out)


def siglip_loss(
    image_features: Tensor,
    text_features: Tensor,
    *,
    logit_scale: float | Tensor,
    logit_bias: float | Tensor,
    chunk_size: int | None = None,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""SigLIP's pairwise sigmoid loss over every image-text pair of the batch (Zhai et al. 2023).

    Each of the :math:`N^2` pairs is an independent binary classification, positive for the matching
    pair only:

    .. math::
        L_i = -w_i \sum_{j=1}^{N} \log \sigma\big(z_{ij} (t\, x_i \cdot y_j + b)\big),
        \qquad z_{ij} = 2\,[i = j] - 1

    where :math:`x_i`, :math:`y_j` are the image and text features, :math:`t` the logit scale and
    :math:`b` the logit bias. The paper's loss is :math:`\frac{1}{N}\sum_i L_i`, ``'mean'``.

    Args:
        image_features: ``(N, D)``, used as given (SigLIP normalises them in the model).
        text_features: ``(N, D)``, used as given.
        logit_scale: :math:`t`, the already exponentiated scale (the paper learns :math:`t' = \log t`,
            initialised to :math:`\log 10`): a number or a 0-dim tensor, which receives a gradient.
        logit_bias: :math:`b` (the paper initialises it to -10): a number or a 0-dim tensor, which
            receives a gradient.
        chunk_size: text columns per block of the chunked kernel (eager autograd only). Default:
            ``None``, blocks of at most ``2**22`` logits.
        weight: optional per-image weights, broadcastable to ``(N,)``.
        reduction: ``'none'`` | ``'mean'`` | ``'sum'``; ``'mean'`` divides the sum over all pairs by
            ``N`` (the paper's and open_clip's normalisation).

    Returns:
        Shape ``(N,)`` if ``reduction='none'``, otherwise a scalar; dtype of ``image_features``
        (float32 under autocast).

    Raises:
        ValueError: if the features are not both ``(N, D)``, a scalar is not one element,
            ``chunk_size < 1``, ``weight`` does not broadcast, the tensors are on different devices, or
            ``reduction`` is unknown.
        TypeError: if a feature tensor, ``logit_scale`` or ``logit_bias`` is not floating point.

    Note:
        Equal to open_clip's ``SigLipLoss()(image_features, text_features, logit_scale, logit_bias)``
        in one process (tested where open_clip is installed). Computed with ``logsigmoid``: finite at
        any logit. For many ranks, the gathered and the paper's ring form, see
        :func:`losskit.distributed.cross_rank_siglip_loss`.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> siglip_loss(x, x, logit_scale=1.0, logit_bias=0.0)  # 2 (log(1 + 1/e) + log 2) / 2
        tensor(1.0064)

    References:
        Zhai, Mustafa, Kolesnikov, Beyer, "Sigmoid Loss for Language Image Pre-Training", ICCV 2023.
        https://arxiv.org/abs/2303.15343
    """
    return siglip(
        "siglip_loss", image_features, text_features, logit_scale, logit_bias, chunk_size, weight, reduction
    )
