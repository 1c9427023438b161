r"""The streaming softmax engine: log-sum-exp over class blocks without an ``(N, C)`` tensor (private).

One engine for every softmax over many classes whose logits are a product of rows and class vectors:
the margin softmax of face recognition (:func:`losskit.functional.margin_softmax_loss`, single process
and class-parallel) and the cross-entropy of a language-model head over a large vocabulary. It streams
over blocks of ``chunk_size`` classes with an online log-sum-exp (Milakov and Gimelshein 2018) and
writes the class-vector gradient block by block into the one buffer that becomes ``weight.grad``. No
``(N, C)`` tensor is ever made.

Which logits backward reads and which it recomputes
---------------------------------------------------
When the class vectors need a gradient in the compute dtype, forward already makes that gradient's
``(C, D)`` buffer and writes the logits of the first blocks into it: ``N * C`` logits fit in ``C * D``
places whenever ``N <= D`` (a face-recognition batch of 512 with 512-dimensional embeddings, a few
hundred tokens over a 4096-wide head), else the first ``C * D / N`` classes' blocks. Block ``[a, b)``
lies at flat offset ``a * max(N, D)``, so that backward, which writes the gradient of classes
``[a, b)`` at ``[a * D, b * D)`` only after reading that block's logits, never overwrites a block it
has yet to read (``_stored_blocks``). The next blocks that fit ``keep_budget`` bytes are kept in tensors
of their own; backward recomputes the rest, one more matrix product each. So with ``N <= D`` the step
costs the three matrix products any exact method needs and a workspace of a few blocks; the price is
that the gradient's buffer exists from forward on (where the loss ends the network, as a head does,
backward starts right after and allocates it anyway). ``keep_budget=0`` keeps nothing (every block
recomputed, no buffer made before backward).

What a block's logits are
-------------------------
For rows :math:`x_i` (``(N, D)``, compute dtype) and class vectors :math:`w_j` (``(C, D)``, any float
dtype, kept as they are: master weights stay in their own dtype and are cast block by block):

.. math::
    v_{ij} = x_i \cdot u_j + b_j, \qquad z_{ij} = \operatorname{cap}(s_i\, v_{ij}), \qquad
    u_j = \begin{cases} w_j / \max(\lVert w_j\rVert, \epsilon) & \texttt{normalize} \\ w_j \end{cases}

with an optional per-row scale :math:`s_i` (``scale``, receives a gradient; ``None`` is 1), optional
class biases :math:`b_j` (``bias``, receives a gradient) and ``cap(a) = c tanh(a / c)`` when
``softcap=c`` is given (identity otherwise); :math:`\epsilon = 10^{-12}` as ``F.normalize``.

What it returns
---------------
:func:`softmax_stats` returns three per-row statistics, each ``(N,)`` in the compute dtype, and they
are differentiable: their upstream gradients ARE the per-row coefficients of the closed-form backward,
so the loss itself is written after the engine in plain torch ops (margins, label smoothing, z-loss,
ignored rows, weights, reductions) and autograd supplies the coefficients.

* ``lse``: :math:`\log \sum_{j \in J_i} e^{z_{ij}}` over the included classes :math:`J_i` (every class,
  or every class but the row's target with ``exclude_target=True``); ``-inf`` where :math:`J_i` is
  empty.
* ``target``: :math:`v_{i t_i}`, the target's value BEFORE scale and cap (the cosine for the margin
  losses, the raw target logit for an LM head); 0 for a row whose target is not among these classes.
* ``logit_sum``: :math:`\sum_{j \in J_i} z_{ij}` when ``with_sum=True`` (label smoothing needs it;
  :math:`\sum_j \omega_j z_{ij}` with per-class weights ``sum_weight`` :math:`\omega`, for class-weighted
  label smoothing); zeros (and no gradient) otherwise.

Backward: with upstream gradients :math:`\alpha_i` (of ``lse``), :math:`\tau_i` (of ``target``) and
:math:`\beta_i` (of ``logit_sum``), the gradient w.r.t. a logit is
:math:`G_{ij} = (\alpha_i p_{ij} + \beta_i)\,\operatorname{cap}'(\cdot)` on the included classes, with
:math:`p_{ij} = e^{z_{ij} - \text{lse}_i}` recomputed (or read from the kept logits) block by block; the
target term :math:`\tau_i` is added once per row through :math:`v_{it_i}`. When :math:`\beta = 0` and
there is no cap (the margin losses), the row factor :math:`\alpha_i` is applied to the ``(N, D)`` side
instead of the ``(N, k)`` block: one element-wise pass less per block.

Classes sharded over ranks (``group``)
--------------------------------------
``weight`` (and ``bias``) then hold this rank's block of classes and ``target`` the positions of the
targets in this block (anything outside ``[0, C_local)``: another rank's class). The blocks are streamed
locally, then the row maxima are all-reduced (max) and the rescaled sums, target values and logit sums
all-reduced (sum) through :mod:`losskit._comm`, so every rank holds the global statistics. Two row
layouts:

* ``row_sizes=[n_0, n_1, ...]`` (*sharded rows*, the class-parallel margin loss): each rank passes its
  own ``x`` and ``scale`` (``n_rank`` rows) and ``target`` for the rows of ALL ranks in rank order (the
  caller gathers the labels: it may need them first, e.g. for Partial-FC sampling). The engine
  all-gathers ``x`` and ``scale``, returns this rank's rows, and in backward all-gathers the per-row
  coefficients and reduce-scatters the row gradients: every rank receives exactly the single-process
  gradient of its own tensors.
* ``row_sizes=None`` (*replicated rows*, tensor-parallel vocabulary as in Megatron-LM): every rank
  passes the same rows and targets and gets the statistics of all rows; the loss built on them is the
  same on every rank; backward all-reduces the row gradients (each rank's is the part through its own
  classes) and leaves the class gradients local.

The caller makes sure every rank calls with matching shapes, dtypes and options (the margin loss
exchanges an argument summary first: see ``losskit._comm.exchange_summary``).

Gradients in forward (``softmax_loss``)
---------------------------------------
For a scalar loss that is a sum over rows of a function of each row's statistics (a language-model
head's ``'mean'``/``'sum'`` cross-entropy), :func:`softmax_loss` streams the ROWS in chunks whose logits
over every class fit the budget: each chunk's statistics come from one pass over the class blocks (all
kept), the per-row coefficients from autograd through the caller's ``row_loss`` on those ``(k,)``
statistics, and the chunk's gradients at once from the kept blocks. Three matrix products in all and
no block recomputed, where :func:`softmax_stats` recomputes the blocks beyond ``keep_budget`` (its
per-row coefficients are known only in backward); the class-vector gradient is accumulated over the
row chunks in the class vectors' own dtype (so the caller uses it where that is the compute dtype).
Backward scales the gradients by the upstream gradient and hands them over; one process only.

Interface summary (for a new loss on this engine)
-------------------------------------------------
``softmax_stats(x, weight, target, *, scale=None, bias=None, normalize=False, softcap=None,
exclude_target=False, with_sum=False, chunk_size=None, keep_budget=KEEP_BUDGET, group=None,
row_sizes=None, sum_weight=None) -> (lse, target, logit_sum)`` and ``softmax_loss(x, weight, target,
row_loss, *, bias=None, softcap=None, with_sum=False, sum_weight=None, chunk_size=None,
budget=ROW_BUDGET) -> (total, lse)``. ``x`` must already be in the compute dtype (float32 for
float16/bfloat16 inputs: the engine accumulates in ``x.dtype``), autocast must be off (wrap the call in
``losskit.functional._validation.no_autocast``), ``target`` is ``int64``. ``eligible(*tensors)`` says
whether the engine may run (the shared rule ``losskit._kernels.eager_autograd``); elsewhere run the
loss's definition. The engine makes no host synchronisation (the collectives of the sharded case
aside), holds no state and creates every tensor on the inputs' device. Its backward is not itself
differentiable (no double backward: the definition provides that).

References:
    Milakov and Gimelshein, "Online normalizer calculation for softmax", 2018.
    https://arxiv.org/abs/1805.02867
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .. import _comm
from . import eager_autograd

__all__ = [
    "KEEP_BUDGET",
    "PRECOMPUTE_ROWS",
    "ROW_BUDGET",
    "auto_chunk_size",
    "eligible",
    "row_budget",
    "row_chunk",
    "softmax_loss",
    "softmax_stats",
]

# Beyond the blocks stored in the gradient's buffer (every block when N <= D), forward keeps the logits
# of as many further blocks as fit in this many bytes, so that backward recomputes only the others
# (each recomputed block costs one more matrix product). Measured at batch 512, embedding 512, 100,000
# classes on a 2-core CPU before the gradient's buffer held any (fp32, relative to the three bare matrix
# products): 32 MiB -> about 1.38x, 48-64 MiB -> 1.3x, 128 MiB -> 1.2x, all of them (195 MiB) -> 1.12x.
# 48 MiB keeps the peak workspace under 10% of the unfused path's. The default of ``keep_budget``.
KEEP_BUDGET = 48 * 2**20

# softmax_loss's token (row) chunks. A row chunk keeps its logits over every class, so it costs
# ``rows * C * itemsize`` bytes, and each row chunk streams the whole class matrix (and its gradient)
# through the cache once more, in matrix products whose row count is the chunk's. Measured at
# 512 x 512 x 100000 (410 counted tokens) and 2048 x 512 x 65536 (1638), float32, 2-core CPU,
# interleaved in one process: 1, 4, 7 row chunks of 410 tokens took 1.59, 1.82, 2.04 s. So a row
# chunk's logits take at most ROW_SPLIT-th of all of them (eager holds two such tensors: the
# workspace stays under ~10% of eager's) and at most ROW_BUDGET bytes, but no row chunk is cut
# below ROW_BUDGET_MIN bytes (small batches: one or a few chunks); chunks are balanced in size.
ROW_SPLIT = 6
ROW_BUDGET = 96 * 2**20
ROW_BUDGET_MIN = 16 * 2**20
# Below this many rows per chunk the row chunks' matrix products lose to one pass over all rows
# that recomputes the blocks it cannot keep (softmax_stats): at 512 x 512 x 100000, six chunks of 69
# rows took 2.25 s, all rows with a quarter of the blocks kept 1.77 s (torch's best chunking 1.87 s);
# at 2048 x 512 x 65536 six chunks of 273 rows took 4.29 s, the single pass 5.07 s (torch 4.66 s).
# (Measured before the single pass stored blocks in the gradient's buffer: with rows <= D it now
# recomputes none, which only widens its lead below this threshold.)
PRECOMPUTE_ROWS = 256

# chunk_size=None: classes per block such that one (N, chunk) block of logits, and one (chunk, D)
# block of class vectors, takes at most this many bytes. Measured on a 2-core CPU at N = D = 512: 2048
# classes per block run each block's matrix products at full BLAS speed while the blocks stay in cache.
_CHUNK_BYTES = 4 * 2**20

# F.normalize's default: norms are clamped to at least this before dividing.
_EPS = 1e-12


def eligible(*args: object) -> bool:
    """Whether the engine may replace a loss's definition: eager autograd (see ``eager_autograd``);
    ``args`` are the loss's arguments (non-tensors are skipped)."""
    return eager_autograd(*(a for a in args if isinstance(a, Tensor)))


def auto_chunk_size(rows: int, dim: int, num_classes: int, dtype: torch.dtype) -> int:
    """Classes per block so that ``(rows, chunk)`` and ``(chunk, dim)`` blocks take at most 4 MiB."""
    itemsize = torch.finfo(dtype).bits // 8
    per_class = max(rows, dim, 1) * itemsize
    return max(1, min(max(num_classes, 1), _CHUNK_BYTES // per_class))


def row_budget(rows: int, num_classes: int, dtype: torch.dtype, budget: int = ROW_BUDGET) -> int:
    """Bytes of logits one row chunk may keep (see ``ROW_SPLIT``): ``max(ROW_BUDGET_MIN, total /
    ROW_SPLIT)``, at most ``budget`` (``total``: all ``rows x num_classes`` logits)."""
    total = max(rows, 1) * num_classes * (torch.finfo(dtype).bits // 8)
    return min(budget, max(ROW_BUDGET_MIN, -(-total // ROW_SPLIT)))


def row_chunk(rows: int, num_classes: int, dtype: torch.dtype, budget: int = ROW_BUDGET) -> int:
    """Rows per chunk of :func:`softmax_loss`: the fewest balanced chunks whose logits fit
    :func:`row_budget` each; at least one row."""
    line = num_classes * (torch.finfo(dtype).bits // 8)  # bytes of one row's logits
    most = max(1, row_budget(rows, num_classes, dtype, budget) // line)  # rows that fit, at least one
    chunks = -(-max(rows, 1) // most)
    return max(1, -(-rows // chunks))


def _keep_blocks(rows: int, chunk: int, dtype: torch.dtype, budget: int) -> int:
    """How many leading ``(rows, chunk)`` blocks of logits fit in ``budget`` bytes."""
    itemsize = torch.finfo(dtype).bits // 8
    return budget // max(rows * chunk * itemsize, 1)


def _exp_floor(dtype: torch.dtype) -> float:
    """Just above log(smallest normal): exp() of anything lower is clamped here (see _forward_loop)."""
    return math.log(torch.finfo(dtype).tiny) + 1.0


def _mask_targets(z: Tensor, t: Tensor, start: int, value: float) -> None:
    """Set ``z[i, t[i] - start] = value`` in place where the target falls in this block of columns."""
    k = z.shape[1]
    idx = t - start
    inside = (idx >= 0) & (idx < k)
    idx = idx.clamp(0, k - 1)[:, None]  # rows whose target is elsewhere rewrite one entry unchanged
    z.scatter_(1, idx, torch.where(inside[:, None], value, z.gather(1, idx)))


def _add_targets(z: Tensor, t: Tensor, start: int, value: Tensor) -> None:
    """Add ``value[i]`` to ``z[i, t[i] - start]`` in place where the target falls in this block."""
    k = z.shape[1]
    idx = t - start
    inside = (idx >= 0) & (idx < k)
    z.scatter_add_(1, idx.clamp(0, k - 1)[:, None], torch.where(inside, value, 0.0)[:, None])


def _flat(buf: Tensor, rows: int, cols: int) -> Tensor:
    """A ``(rows, cols)`` view of the front of a flat workspace (reused block after block: a fresh
    multi-megabyte allocation per block costs page faults that take longer than the element-wise work)."""
    return buf[: rows * cols].view(rows, cols)


def _stored_blocks(rows: int, dim: int, num_classes: int, chunk: int) -> int:
    """How many leading blocks of logits fit in the class-vector gradient's buffer (``(C, D)``, the
    compute dtype), each where backward writes nothing before it has read them.

    Block ``[a, b)`` of ``rows`` logits per class is stored at flat offset ``a * max(rows, dim)`` (see
    ``_stored_view``). Backward writes the gradient of classes ``[a, b)`` at ``[a * dim, b * dim)``
    only after reading that block's logits: with ``rows <= dim`` that range is the block's own (every
    block fits); with ``rows > dim`` it overlaps only blocks starting at or before ``a`` (already read),
    and the blocks that fit are those that end by ``C * dim / rows`` classes."""
    if rows <= dim:
        return -(-num_classes // chunk)
    return (num_classes * dim // rows) // chunk


def _stored_view(store: Tensor, a: int, b: int, rows: int, dim: int) -> Tensor:
    """The ``(rows, b - a)`` logits of classes ``[a, b)`` inside the ``(C, D)`` store, read as flat (see
    ``_stored_blocks``)."""
    start = a * max(rows, dim)
    return store.view(-1)[start : start + rows * (b - a)].view(rows, b - a)


@dataclass(frozen=True)
class _Config:
    """The non-tensor arguments of one engine call."""

    normalize: bool
    softcap: float | None
    exclude_target: bool
    with_sum: bool
    chunk: int
    keep: int  # blocks after the stored ones whose logits forward keeps in their own tensors
    group: Any
    row_sizes: tuple[int, ...] | None  # sharded rows; None: replicated (or one process)
    rank: int
    # per-class weights of ``logit_sum`` ((C,), compute dtype; a constant, no gradient), or None (1)
    sum_weight: Tensor | None = None
    # leading blocks whose logits forward writes into the buffer that backward fills with the
    # class-vector gradient (see ``_stored_blocks``); 0: no such buffer
    stored: int = 0


class _Blocks:
    """Block ``a:b`` of the class vectors and the logits of all rows against it, in the compute dtype."""

    def __init__(self, x: Tensor, w: Tensor, s: Tensor | None, b: Tensor | None, inv_norm, cfg: _Config):
        self.x, self.w, self.s, self.b, self.inv_norm, self.cfg = x, w, s, b, inv_norm, cfg
        self.dt = x.dtype
        self.xs = x if s is None else x * s[:, None]  # (N, D): scaling the rows scales every logit
        k = min(cfg.chunk, w.shape[0])
        cast = inv_norm is not None or w.dtype != self.dt
        self.wbuf = x.new_empty(k * x.shape[1]) if cast else None

    def vectors(self, a: int, b: int) -> Tensor:
        """``u`` for classes ``a:b``, ``(k, D)``: unit (``normalize``) or cast rows of ``w``."""
        w = self.w[a:b]
        if self.wbuf is None:
            return w
        out = _flat(self.wbuf, b - a, w.shape[1])
        if self.inv_norm is None:
            return out.copy_(w)
        return torch.mul(w, self.inv_norm[a:b, None], out=out)

    def logits(self, u: Tensor, a: int, b: int, out: Tensor) -> Tensor:
        """``z = cap(s * (x . u + bias))`` for classes ``a:b`` into ``out`` ``(N, k)``."""
        z = torch.mm(self.xs, u.T, out=out)
        if self.b is not None:
            bias = self.b[a:b].to(self.dt)[None, :]
            if self.s is None:
                z.add_(bias)
            else:
                z.addcmul_(self.s[:, None], bias)
        c = self.cfg.softcap
        if c is not None:
            z.div_(c).tanh_().mul_(c)
        return z


def _forward_loop(
    blk: _Blocks, t: Tensor, kept: list[Tensor], store: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Online (max, sum of exp) over the included logits of every row; logit sums if asked.

    The logits of the first ``cfg.stored`` blocks are written into ``store`` (see ``_stored_blocks``),
    those of the next ``cfg.keep`` blocks into tensors appended to ``kept``."""
    cfg, x, w = blk.cfg, blk.x, blk.w
    n = x.shape[0]
    floor = _exp_floor(blk.dt)
    row_max = x.new_full((n,), -math.inf)
    row_sum = x.new_zeros(n)
    logit_sum = x.new_zeros(n) if cfg.with_sum else None
    zbuf = x.new_empty(n * min(cfg.chunk, w.shape[0]))  # (N, chunk) workspace
    for i, a in enumerate(range(0, w.shape[0], cfg.chunk)):
        b = min(a + cfg.chunk, w.shape[0])
        stored = store is not None and i < cfg.stored
        save = stored or len(kept) < cfg.keep
        if stored:
            assert store is not None
            out = _stored_view(store, a, b, n, x.shape[1])
        else:
            out = x.new_empty(n, b - a) if save else _flat(zbuf, n, b - a)
        z = blk.logits(blk.vectors(a, b), a, b, out)
        if logit_sum is not None:
            if cfg.exclude_target:
                _mask_targets(z, t, a, 0.0)
            sw = cfg.sum_weight
            logit_sum += z.sum(dim=1) if sw is None else torch.mv(z, sw[a:b])
        if cfg.exclude_target:
            _mask_targets(z, t, a, -math.inf)
        new_max = torch.maximum(row_max, z.amax(dim=1))
        seen = new_max > -math.inf  # False: every class so far excluded, nothing to add
        shift = torch.where(seen, new_max, 0.0)[:, None]
        if save:
            if not stored:
                kept.append(z)  # (masked) logits, saved so that backward need not recompute this block
            e = torch.sub(z, shift, out=_flat(zbuf, n, b - a))
        else:
            e = z.sub_(shift)
        # exp() of arguments below the floor would give denormals, which take a slow path in the CPU's
        # exp (10x); each clamped term adds < 1e-37 to a sum that is >= 1 (the max term), invisible
        block = e.clamp_min_(floor).exp_().sum(dim=1)
        row_sum = row_sum * torch.exp(row_max - shift[:, 0]) + torch.where(seen, block, 0.0)
        row_max = new_max
    return row_max, row_sum, logit_sum


def _target_vectors(blk: _Blocks, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per row: whether its target is in this block, its (clamped) position and ``u_t`` ``(N, D)``."""
    c = blk.w.shape[0]
    inside = (t >= 0) & (t < c)
    idx = t.clamp(0, max(c - 1, 0))
    u_t = blk.w[idx].to(blk.dt)
    if blk.inv_norm is not None:
        u_t = u_t * blk.inv_norm[idx, None]
    return inside, idx, u_t


def _target_values(blk: _Blocks, t: Tensor) -> Tensor:
    """``v_t = x . u_t + b_t`` for rows whose target is in this block, 0 elsewhere."""
    if blk.w.shape[0] == 0:
        return blk.x.new_zeros(blk.x.shape[0])
    inside, idx, u_t = _target_vectors(blk, t)
    v = (blk.x * u_t).sum(dim=1)
    if blk.b is not None:
        v = v + blk.b[idx].to(blk.dt)
    return torch.where(inside, v, 0.0)


def _project(u: Tensor, g: Tensor, inv_norm: Tensor) -> Tensor:
    """The gradient through ``w / max(|w|, eps)`` in place: ``(g - u (u . g)) / |w|`` (u = unit rows);
    no projection where the norm was clamped."""
    radial = torch.linalg.vecdot(u, g)[:, None]  # (k, 1) row-wise dots (6x faster than a bmm)
    return g.addcmul_(u, radial * (inv_norm[:, None] < 1 / _EPS), value=-1.0).mul_(inv_norm[:, None])


def _backward_loop(
    blk: _Blocks,
    t: Tensor,
    lse: Tensor,
    g_lse: Tensor | None,
    g_t: Tensor | None,
    g_sum: Tensor | None,
    kept: tuple[Tensor, ...],
    need: tuple[bool, bool, bool, bool],
    into: tuple[Tensor | None, Tensor | None] | None = None,
    store: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """Gradients w.r.t. ``x``, ``w``, ``scale``, ``bias`` of ``sum_i (g_lse lse + g_t v_t + g_sum S)_i``.

    ``kept``: the logits forward kept in their own tensors (blocks ``cfg.stored`` on). ``store``: the
    ``(C, D)`` buffer holding the first ``cfg.stored`` blocks' logits (``_stored_blocks``); it
    becomes the class-vector gradient, each block's part written after its logits are read. ``None``
    (a second backward: the buffer already went out as a gradient): those blocks are recomputed.
    ``into=(gw, gb)``: ADD the class-vector and bias gradients to these buffers (in place, returned)
    instead of writing new ones (rows streamed in chunks; not with ``normalize``)."""
    cfg, x, w, s, bias = blk.cfg, blk.x, blk.w, blk.s, blk.b
    need_x, need_w, need_s, need_b = need
    n, d = x.shape
    dt = blk.dt
    floor = _exp_floor(dt)
    zeros = x.new_zeros(n)
    alpha = zeros if g_lse is None else g_lse
    # class vectors in a lower precision (a bfloat16 head): the target term joins each block's products,
    # accumulated over all rows in the compute dtype with every other term and rounded once, instead of
    # an index_add_ in the class vectors' dtype (atomic bfloat16 additions on CUDA)
    fold = g_t is not None and need_w and w.dtype != dt and s is None and into is None
    # the fast form (no logit-sum gradient, no cap): G = alpha p, with alpha applied on the (N, D) side
    fast = g_sum is None and cfg.softcap is None and not fold
    row = alpha if fast else x.new_ones(n)  # the row factor left out of the (N, k) block
    sr = row if s is None else row * s  # (N,)
    gxs = x * sr[:, None] if need_w else None  # (N, D): dL/du_j = sum_i G_ij s_i x_i
    neg_lse = -torch.where(torch.isfinite(lse), lse, 0.0)[:, None]  # rows without classes: all p = 0
    acc = torch.zeros_like(x)  # (N, D): sum_j G_ij u_j
    acc_b = x.new_zeros(n) if bias is not None and need_s else None  # sum_j G_ij b_j
    if into is None:
        gw = None
        if need_w:  # (C, D) in the class vectors' own dtype
            gw = torch.empty_like(w) if store is None else store
        gb = torch.empty_like(bias) if bias is not None and need_b else None
    else:
        assert blk.inv_norm is None  # the projection of a normalised vector is not additive over rows
        gw, gb = into
    k = min(cfg.chunk, w.shape[0])
    pbuf = x.new_empty(n * k)
    zbuf = None if fast else x.new_empty(n * k)
    direct = gw is not None and gw.dtype == dt  # write each block's gradient straight into gw
    gbuf = None if direct or not need_w else x.new_empty(k * d)
    plain = bias is None and cfg.softcap is None  # logits are one product: recompute them with addmm
    for i, a in enumerate(range(0, w.shape[0], cfg.chunk)):
        b = min(a + cfg.chunk, w.shape[0])
        u = blk.vectors(a, b)
        p = _flat(pbuf, n, b - a)
        z: Tensor | None = None  # the block's logits, where the cap's derivative needs them
        j = i - cfg.stored  # position among the separately kept blocks
        if i < cfg.stored and store is not None:
            z = _stored_view(store, a, b, n, d)
            torch.add(z, neg_lse, out=p)  # logit - lse, from the logits forward stored
        elif 0 <= j < len(kept):
            z = kept[j]
            torch.add(z, neg_lse, out=p)  # logit - lse, from the logits saved in forward
        elif plain and fast:
            torch.addmm(neg_lse, blk.xs, u.T, out=p)  # logit - lse, recomputed in one product
        elif fast:
            blk.logits(u, a, b, p).add_(neg_lse)  # logit - lse, recomputed
        else:
            assert zbuf is not None
            z = blk.logits(u, a, b, _flat(zbuf, n, b - a))
            torch.add(z, neg_lse, out=p)
        # the block's softmax probabilities; clamping avoids exp's slow denormal path (probabilities
        # < 1e-37 of a row summing to 1)
        p.clamp_min_(floor).exp_()
        if not fast:
            assert z is not None
            p.mul_(alpha[:, None])
            if g_sum is not None:
                if cfg.sum_weight is None:
                    p.add_(g_sum[:, None])
                else:
                    p.addr_(g_sum, cfg.sum_weight[a:b])  # d(sum_j w_j z_j) / dz_j = w_j
            if cfg.softcap is not None:
                p.mul_(1 - (z / cfg.softcap).square())  # cap'(a) = 1 - tanh^2 = 1 - (z / c)^2
        if cfg.exclude_target:
            _mask_targets(p, t, a, 0.0)  # G of an excluded class is 0 (also where cap' gave -inf)
        if fold:
            assert g_t is not None
            _add_targets(p, t, a, g_t)  # d(g_t v_t) / dv_t = g_t, at the target's column
        if need_x or need_s:
            acc.addmm_(p, u)
        if acc_b is not None:
            acc_b.addmv_(p, bias[a:b].to(dt))
        if gb is not None:
            if into is None:
                gb[a:b] = torch.mv(p.T, sr).to(gb.dtype)
            else:
                gb[a:b] += torch.mv(p.T, sr).to(gb.dtype)
        if gw is None:
            continue
        assert gxs is not None
        if into is not None and direct:
            gw[a:b].addmm_(p.T, gxs)  # (k, D) added in place
            continue
        gu = torch.mm(p.T, gxs, out=gw[a:b] if direct and into is None else _flat(gbuf, b - a, d))  # (k, D)
        if blk.inv_norm is not None:
            _project(u, gu, blk.inv_norm[a:b])
        if into is not None:
            gw[a:b] += gu.to(gw.dtype)
        elif not direct:
            gw[a:b] = gu
    gx = acc * sr[:, None] if need_x else None
    gs = None
    if need_s:
        gs = torch.linalg.vecdot(x, acc) if acc_b is None else torch.linalg.vecdot(x, acc) + acc_b
        gs = gs * row
    if g_t is not None and w.shape[0] > 0 and t.numel() > 0 and not fold:
        # the target term, once for all rows (the projection is linear: adding it after the blocks
        # equals adding it inside them): d v_t / d (x, u_t, b_t) = (u_t, x, 1)
        inside, idx, u_t = _target_vectors(blk, t)
        gt = torch.where(inside, g_t, 0.0)  # the target of another rank's class is that rank's
        if gx is not None:
            gx = gx + gt[:, None] * u_t
        if gw is not None:
            gc = gt[:, None] * x  # (N, D)
            if blk.inv_norm is not None:
                radial = (u_t * gc).sum(dim=1, keepdim=True) * (blk.inv_norm[idx, None] < 1 / _EPS)
                gc = (gc - u_t * radial) * blk.inv_norm[idx, None]
            gw.index_add_(0, idx, gc.to(gw.dtype))
        if gb is not None:
            gb.index_add_(0, idx, gt.to(gb.dtype))
    return gx, gw, gs, gb


def _gather(local: Tensor, cfg: _Config) -> Tensor:
    assert cfg.row_sizes is not None
    return _comm.all_gather_rows(local, list(cfg.row_sizes), cfg.group)


class _SoftmaxStats(torch.autograd.Function):
    """``(lse, target, logit_sum)`` per row, and the intermediates backward needs (non-differentiable).

    Inputs: rows ``x`` (N, D) in the compute dtype, class vectors ``w`` (C, D) in their own dtype,
    targets ``t`` (M,) (positions in ``w``), per-row scales ``s`` (N,) or None, biases ``b`` (C,) or
    None, and a ``_Config``. Extra outputs (``lse`` of every row, 1 / the class norms, the gathered
    rows and scales, the kept logit blocks) are empty where unused.
    """

    @staticmethod
    def forward(x: Tensor, w: Tensor, t: Tensor, s: Tensor | None, b: Tensor | None, cfg: _Config):
        dt = x.dtype
        sharded = cfg.row_sizes is not None
        none = x.new_empty(0)
        x_all, s_all = x, s
        if sharded:
            # every rank's rows (and scales) in one collective
            rows = _gather(x if s is None else torch.cat([x, s[:, None]], dim=1), cfg)
            x_all, s_all = (rows, None) if s is None else (rows[:, :-1], rows[:, -1])
        # (C,) 1 / max(|w|, eps) as F.normalize clamps (multiplying by it is much faster than dividing)
        inv_norm = None
        if cfg.normalize:
            inv_norm = torch.linalg.vector_norm(w, dim=1, dtype=dt).clamp_min_(_EPS).reciprocal_()
        blk = _Blocks(x_all, w, s_all, b, inv_norm, cfg)
        kept: list[Tensor] = []
        # the class-vector gradient's buffer, made now: it holds the first blocks' logits until
        # backward overwrites them with the gradient (see _stored_blocks)
        store = w.new_empty(w.shape) if cfg.stored else None
        row_max, row_sum, logit_sum = _forward_loop(blk, t, kept, store)
        target = _target_values(blk, t)
        if cfg.group is None:
            lse = row_max + torch.log(row_sum)  # -inf where a row has no included class
        else:
            gmax = _comm.all_reduce(row_max.clone(), _comm.dist.ReduceOp.MAX, cfg.group)
            shift = torch.where(torch.isfinite(gmax), gmax, 0.0)  # no class anywhere: -inf; NaN: NaN
            parts = [row_sum * torch.exp(row_max - shift), target]
            if logit_sum is not None:
                parts.append(logit_sum)
            packed = _comm.all_reduce(torch.stack(parts), _comm.dist.ReduceOp.SUM, cfg.group)
            lse, target = torch.log(packed[0]) + shift, packed[1]
            logit_sum = packed[2] if logit_sum is not None else None
        if logit_sum is None:
            logit_sum = torch.zeros_like(lse)
        lse_all = none
        if sharded:
            start = sum(cfg.row_sizes[: cfg.rank])
            stop = start + cfg.row_sizes[cfg.rank]
            lse_all = lse
            lse, target, logit_sum = (v[start:stop].clone() for v in (lse, target, logit_sum))
        return (
            lse,
            target,
            logit_sum,
            lse_all,
            none if inv_norm is None else inv_norm,
            x_all if sharded else none,
            s_all if sharded and s_all is not None else none,
            none if store is None else store,
            *kept,
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, w, t, s, b, cfg = inputs
        lse, _, logit_sum, lse_all, inv_norm, x_all, s_all, store, *kept = output
        ctx.mark_non_differentiable(lse_all, inv_norm, x_all, s_all, store, *kept)
        # not saved for backward: the first backward overwrites it with the class-vector gradient
        # and hands it over (a second one, with retain_graph=True, recomputes those blocks)
        ctx.store = store if cfg.stored else None
        if not cfg.with_sum:
            ctx.mark_non_differentiable(logit_sum)
        ctx.set_materialize_grads(False)
        ctx.cfg = cfg
        sharded = cfg.row_sizes is not None
        rows = x_all if sharded else x
        srows = s_all if sharded and s is not None else s
        ctx.save_for_backward(
            x, rows, w, t, srows, b, lse_all if sharded else lse, inv_norm if cfg.normalize else None, *kept
        )

    @staticmethod
    @once_differentiable  # the block loop writes into workspaces: no double backward
    def backward(ctx: Any, g_lse, g_t, g_sum, *_):
        x, rows, w, t, srows, b, lse, inv_norm, *kept = ctx.saved_tensors
        cfg: _Config = ctx.cfg
        need = ctx.needs_input_grad
        need_x, need_w = need[0], need[1]
        need_s, need_b = srows is not None and need[3], b is not None and need[4]
        if cfg.group is not None:
            # the row gradients are summed over ranks: every rank contributes (the same collective on
            # every rank), whatever its own tensors need
            need_x, need_s = True, srows is not None
        if not cfg.with_sum:
            g_sum = None
        if cfg.row_sizes is not None:
            # every rank's per-row coefficients, in rank order (each rank back-propagates its own rows)
            grads = (g_lse, g_t, g_sum)
            cols = [g if g is not None else x.new_zeros(x.shape[0]) for g in grads]
            every = _gather(torch.stack(cols, dim=1), cfg)  # (M, 3)
            # every column, even where this rank's own coefficient is None: another rank's may not be
            g_lse, g_t, g_sum = (every[:, i].contiguous() for i in range(3))
            if not cfg.with_sum:
                g_sum = None
        blk = _Blocks(rows, w, srows, b, inv_norm, cfg)
        store, ctx.store = ctx.store, None
        gx, gw, gs, gb = _backward_loop(
            blk, t, lse, g_lse, g_t, g_sum, tuple(kept), (need_x, need_w, need_s, need_b), store=store
        )
        if cfg.group is not None:
            # the row gradients are partial (through this rank's classes only): sum them over ranks
            parts = [gx if gx is not None else rows.new_zeros(rows.shape[0], 0)]
            if gs is not None:
                parts.append(gs[:, None])
            packed = torch.cat(parts, dim=1)
            if cfg.row_sizes is not None:
                packed = _comm.reduce_scatter_rows(packed, list(cfg.row_sizes), cfg.rank, cfg.group)
            else:
                packed = _comm.all_reduce(packed, _comm.dist.ReduceOp.SUM, cfg.group)
            d = rows.shape[1] if gx is not None else 0
            gx = packed[:, :d] if gx is not None else None
            gs = packed[:, d] if gs is not None else None
        return (gx if need[0] else None), gw, None, (gs if need[3] else None), gb, None


def softmax_stats(
    x: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    scale: Tensor | None = None,
    bias: Tensor | None = None,
    normalize: bool = False,
    softcap: float | None = None,
    exclude_target: bool = False,
    with_sum: bool = False,
    chunk_size: int | None = None,
    keep_budget: int = KEEP_BUDGET,
    group: Any = None,
    row_sizes: list[int] | None = None,
    sum_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row ``(lse, target, logit_sum)`` of the streamed softmax; see the module docstring.

    Args:
        x: rows, ``(N, D)``, in the compute dtype (this rank's rows with ``row_sizes``).
        weight: class vectors, ``(C, D)``, any floating dtype (this rank's block with ``group``).
        target: ``(M,)`` int64 positions of each row's target in ``weight``; outside ``[0, C)``: not
            here. ``M = N`` except with ``row_sizes``, where it covers every rank's rows in rank order.
        scale: per-row scales ``(N,)`` in ``x``'s dtype, or None (1).
        bias: class biases ``(C,)``, or None.
        normalize: divide each class vector by its norm (clamped at 1e-12) before the product.
        softcap: ``c`` of ``c * tanh(a / c)`` applied to each scaled logit, or None.
        exclude_target: leave each row's target class out of the log-sum-exp (and of ``logit_sum``).
        with_sum: also return the per-row sum of the included logits, with its gradient.
        chunk_size: classes per block; None picks it from a 4 MiB budget (:func:`auto_chunk_size`).
        keep_budget: bytes of logits forward keeps for backward in tensors of their own, beyond the
            blocks it writes into the class-vector gradient's buffer (see the module docstring);
            0: keep nothing, recompute every block.
        group: a ``torch.distributed`` group the classes are sharded over, or None.
        row_sizes: every rank's number of rows (sharded rows), or None (replicated rows).
        sum_weight: per-class weights ``(C,)`` (this rank's block with ``group``) in ``x``'s dtype of
            the terms of ``logit_sum`` (``sum_j w_j z_ij``; class-weighted label smoothing), or None
            (1). A constant: it receives no gradient.

    Returns:
        ``(lse, target, logit_sum)``, each ``(N,)`` in ``x``'s dtype.
    """
    rank = 0
    if group is not None:
        rank = _comm.world(group)[0]
    else:
        row_sizes = None  # one process: the rows are all the rows
    rows = sum(row_sizes) if row_sizes is not None else x.shape[0]
    chunk = (
        chunk_size if chunk_size is not None else auto_chunk_size(rows, x.shape[1], weight.shape[0], x.dtype)
    )
    grad = torch.is_grad_enabled() and any(
        v is not None and v.requires_grad for v in (x, weight, scale, bias)
    )
    # the class-vector gradient is written straight into its buffer when it is in the compute dtype:
    # that buffer, made in forward, holds the first blocks' logits until then (keep_budget=0: no)
    stored = 0
    if grad and keep_budget > 0 and weight.requires_grad and weight.dtype == x.dtype:
        stored = _stored_blocks(rows, x.shape[1], weight.shape[0], chunk)
    cfg = _Config(
        normalize=normalize,
        softcap=None if softcap is None else float(softcap),
        exclude_target=exclude_target,
        with_sum=with_sum,
        chunk=chunk,
        keep=_keep_blocks(rows, chunk, x.dtype, keep_budget) if grad else 0,
        group=group,
        row_sizes=None if row_sizes is None else tuple(row_sizes),
        rank=rank,
        sum_weight=None if sum_weight is None else sum_weight.detach(),
        stored=stored,
    )
    out = _SoftmaxStats.apply(x, weight, target, scale, bias, cfg)
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------------------------------
# gradients in forward: a scalar loss over row chunks whose whole logits fit the budget
# --------------------------------------------------------------------------------------------------

RowLoss = Callable[[Tensor, Tensor, Tensor, slice], Tensor]


class _PrecomputedLoss(torch.autograd.Function):
    """``sum_i row_loss(lse, target, logit_sum, rows)_i`` with the gradients of ``x``, ``w`` and ``b``
    computed in forward (extra outputs, non-differentiable); backward scales them by the upstream
    gradient in place and hands them over (a second backward through the same call, with
    ``retain_graph=True``, computes them again from the saved inputs)."""

    @staticmethod
    def forward(
        x: Tensor,
        w: Tensor,
        t: Tensor,
        b: Tensor | None,
        row_loss: RowLoss,
        cfg: _Config,
        rows: int,
        need: tuple[bool, bool, bool],
    ):
        n = x.shape[0]
        need_x, need_w, need_b = need
        none = x.new_empty(0)
        gx = torch.empty_like(x) if need_x else none
        gw = torch.zeros_like(w) if need_w else none
        gb = torch.zeros_like(b) if b is not None and need_b else none
        lse_all = x.new_empty(n)
        total = x.new_zeros(())
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            tc = t[start:stop]
            blk = _Blocks(x[start:stop], w, None, b, None, cfg)
            kept: list[Tensor] = []  # every block of this row chunk: backward reads them all
            row_max, row_sum, logit_sum = _forward_loop(blk, tc, kept)
            lse = row_max + torch.log(row_sum)
            stats = (lse, _target_values(blk, tc), torch.zeros_like(lse) if logit_sum is None else logit_sum)
            lse_all[start:stop] = lse
            with torch.enable_grad():  # the per-row coefficients: autograd through the (rows,) loss
                leaves = [v.detach().requires_grad_(True) for v in stats]
                part = row_loss(*leaves, slice(start, stop)).sum()
                coef = torch.autograd.grad(part, leaves, allow_unused=True)
            total += part.detach()
            if not any(need):
                continue
            g_sum = coef[2] if cfg.with_sum else None
            into = (gw if need_w else None, gb if b is not None and need_b else None)
            gxc, _, _, _ = _backward_loop(
                blk, tc, lse, coef[0], coef[1], g_sum, tuple(kept), (need_x, need_w, False, need_b), into=into
            )
            if need_x:
                gx[start:stop] = gxc
        return total, lse_all, gx, gw, gb

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        x, w, t, b, *rest = inputs
        _, lse, gx, gw, gb = output
        ctx.mark_non_differentiable(lse, gx, gw, gb)
        ctx.set_materialize_grads(False)
        ctx.grads = _PrecomputedLoss._needed((gx, gw, gb), rest[-1])
        ctx.save_for_backward(x, w, t, b)  # the inputs themselves: a second backward recomputes
        ctx.rest = rest

    @staticmethod
    def _needed(grads: tuple, need: tuple[bool, bool, bool]) -> tuple:
        return tuple(g if flag else None for g, flag in zip(grads, need))

    @staticmethod
    def backward(ctx: Any, g: Tensor | None, *_):
        if torch.is_grad_enabled():  # create_graph=True: the gradients were formed without a graph
            raise RuntimeError(
                "the streamed loss has no second derivatives (its gradients are computed in forward, "
                "without a graph); use torch.func (e.g. torch.func.hessian), which runs the definition"
            )
        grads, ctx.grads = ctx.grads, None  # handed over (and scaled in place): nothing stays behind
        if g is None:
            return (None,) * 8
        if grads is None:  # a second backward through this call (retain_graph=True): compute again
            grads = _PrecomputedLoss._needed(
                _PrecomputedLoss.forward(*ctx.saved_tensors, *ctx.rest)[2:], ctx.rest[-1]
            )
        gx, gw, gb = (None if v is None else v.mul_(g) for v in grads)
        return gx, gw, None, gb, None, None, None, None


def softmax_loss(
    x: Tensor,
    weight: Tensor,
    target: Tensor,
    row_loss: RowLoss,
    *,
    bias: Tensor | None = None,
    softcap: float | None = None,
    with_sum: bool = False,
    sum_weight: Tensor | None = None,
    chunk_size: int | None = None,
    budget: int = ROW_BUDGET,
) -> tuple[Tensor, Tensor]:
    """A scalar loss built from the per-row statistics, with every gradient computed in forward.

    For a loss that is a SUM over rows of a function of each row's ``(lse, target, logit_sum)`` (see
    :func:`softmax_stats`): the rows are streamed in chunks (:func:`row_chunk`: as few as keep one
    chunk's logits within a sixth of all of them and within ``budget`` bytes, balanced); each chunk's
    statistics are computed, ``row_loss(lse, target, logit_sum, rows)`` (plain torch ops, ``(k,)`` for
    the rows ``rows`` of the chunk) is differentiated by autograd with respect to them, and the chunk's
    gradients are formed at once from its kept logits: three matrix products in all (logits, row
    gradient, class-vector gradient), no block recomputed. The class-vector (and bias) gradient is
    accumulated over the row chunks in ``weight``'s (``bias``'s) own dtype, so the caller runs this only
    where that is the compute dtype. Backward multiplies the gradients by the upstream gradient and
    hands them over (a second backward through the same call computes them again). One process only.

    Args:
        x, weight, target, bias, softcap, with_sum, sum_weight, chunk_size: as :func:`softmax_stats`
            (``chunk_size`` is the block of classes inside each row chunk).
        row_loss: the per-row loss; its sum over all rows is the returned total.
        budget: at most this many bytes of logits in one row chunk (every class); at least one row.

    Returns:
        ``(total, lse)``: the loss (a differentiable scalar in ``x``'s dtype) and every row's ``lse``
        ``(N,)`` (no gradient; for logging terms built on it).
    """
    n, d = x.shape
    c = weight.shape[0]
    rows = row_chunk(n, c, x.dtype, budget)
    chunk = chunk_size if chunk_size is not None else auto_chunk_size(rows, d, c, x.dtype)
    grad = torch.is_grad_enabled()
    need = (
        grad and x.requires_grad,
        grad and weight.requires_grad,
        grad and bias is not None and bias.requires_grad,
    )
    cfg = _Config(
        normalize=False,
        softcap=None if softcap is None else float(softcap),
        exclude_target=False,
        with_sum=with_sum,
        chunk=chunk,
        keep=-(-c // chunk),  # every block of a row chunk
        group=None,
        row_sizes=None,
        rank=0,
        sum_weight=None if sum_weight is None else sum_weight.detach(),
    )
    out = _PrecomputedLoss.apply(x, weight, target, bias, row_loss, cfg, rows, need)
    return out[0], out[1]
