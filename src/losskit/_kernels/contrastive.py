r"""Chunked kernel for the contrastive losses (private): one engine, one small spec per loss.

Every contrastive loss of :mod:`losskit.functional.contrastive` is a function of a similarity matrix
``S = f(A C^T)`` between ``B`` anchor rows and ``R`` candidate rows (``f``: division by a temperature,
or a logit scale and bias). The engine streams over blocks of ``chunk`` candidate columns, each block
``S_k = f(A C_k^T)`` updating per-row statistics (an online log-sum-exp, sums, counts) and, for CLIP,
the log-sum-exp of its own columns. Nothing of size ``B x R`` is kept, except the one block when a
single block covers every column. The gradient comes from each spec's closed form
``G_k = dL/dS_k``: ``dA += G_k C_k``, ``dC_k = G_k^T A`` (times ``f``'s slope), ``d scale =
sum(A * (G C))``, ``d bias = sum(G)``.

Two modes:

* **summed** (``reduction='sum'``/``'mean'``): the per-row weights are known in forward, so forward
  computes the weighted sum *and* its gradients in the same sweep (a second sweep for the losses whose
  gradient needs a finished normaliser: CLIP, SupCon, NT-Xent); backward only scales them. Matrix
  products: SigLIP ``3 B R D`` multiply-adds, the others ``4`` (NT-Xent ``5``), and ``3`` whenever a
  single block covers the columns;
* **rows** (``reduction='none'``): forward returns the per-row losses; backward recomputes each block
  for the incoming per-row gradient.

The workspace is ``O(B x chunk)`` (a few blocks at once). Double backward (``create_graph=True``)
differentiates the definition instead, passed in by the caller, so second derivatives are the
definition's. Nothing here compiles, caches or synchronises.

Why it exists (``benchmarks/bench_contrastive.py``, one interleaved run on a 2-core CPU): CLIP and
SigLIP at 4096 x 512 peak at 48 MiB against the definition's 384 and 336 MiB, at 1.41x and 1.22x the
time of the three bare matrix products (the definition: 1.45x and 1.80x); NT-Xent and SupCon at
1024 x 128 at 19.5 and 14.5 MiB against 36.5 and 23.5 MiB, at about the definition's time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import eager_autograd

_INF = float("inf")

# the default block: at most this many similarities (8 MiB in float32); a single block when B R fits.
_DEFAULT_BLOCK_ELEMENTS = 2**21


def eligible(*tensors: Tensor | None) -> bool:
    """Whether the chunked kernel replaces the definition: eager autograd (every device and dtype)."""
    return eager_autograd(*tensors)


def block_columns(rows: int, cols: int, chunk_size: int | None) -> int:
    """Candidate columns per block: ``chunk_size``, or the default block budget spread over ``rows``."""
    if chunk_size is None:
        chunk_size = max(1, _DEFAULT_BLOCK_ELEMENTS // max(rows, 1))
    return max(1, min(chunk_size, cols))


def _blocks(cols: int, chunk: int) -> list[tuple[int, int]]:
    return [(c0, min(c0 + chunk, cols)) for c0 in range(0, cols, chunk)]


def _own(s: Tensor, c0: int, offset: int | None) -> Tensor | None:
    """The view of block ``s`` (columns from ``c0``) holding anchor ``i``'s own column ``i + offset``."""
    return None if offset is None else s.diagonal(offset - c0)


# --------------------------------------------------------------------------------------------------
# specs: what each loss accumulates per block, its per-row result, and its closed-form dL/dS
# --------------------------------------------------------------------------------------------------


class _Spec:
    temperature: float | None = None  # S = A C^T / temperature, else S = scale A C^T (+ bias)
    passes: int = 1  # forward sweeps before the loss is final
    streamed_grad: bool = False  # dL/dS of a block needs no finished statistic: fuse it in the last sweep

    def prepare(self, s: Tensor, c0: int, c1: int) -> None:
        """In-place fix-up of a freshly computed block (e.g. mask the anchors' own columns)."""

    def start(self, a: Tensor, cols: int) -> None:
        raise NotImplementedError

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[Tensor, Tensor]:
        """(per-row loss ``(B,)``, count) after the last sweep."""
        raise NotImplementedError

    def state(self) -> list[Tensor]:
        """The statistics backward needs (rows mode)."""
        raise NotImplementedError

    def load(self, state: list[Tensor]) -> None:
        raise NotImplementedError

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        """``dL/dS`` of block ``s`` ``(B, k)`` for per-row gradient ``g`` ``(B,)``; may overwrite ``s``
        when ``consume``."""
        raise NotImplementedError


def _same(labels: Tensor, ref_labels: Tensor, c0: int, c1: int) -> Tensor:
    return labels.unsqueeze(1) == ref_labels[c0:c1].unsqueeze(0)  # (B, k) bool


class NTXentSpec(_Spec):
    passes = 2

    def __init__(self, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float):
        self.labels, self.ref_labels, self.offset, self.temperature = labels, ref_labels, offset, temperature

    def _masks(self, c0: int, c1: int) -> tuple[Tensor, Tensor]:
        """(same label incl. self, positive = same label but not self)."""
        same = _same(self.labels, self.ref_labels, c0, c1)
        positive = same.clone()
        own = _own(positive, c0, self.offset)
        if own is not None:
            own.fill_(False)
        return same, positive

    def start(self, a: Tensor, cols: int) -> None:
        rows = a.shape[0]
        self.neg_lse = a.new_full((rows,), -_INF)  # log sum over the anchor's negatives
        self.rows = a.new_zeros(rows)
        self.q = a.new_zeros(rows)  # sum over positives of sigmoid(N_i - s_ip) = dL_i/dN_i
        self.count = torch.zeros((), dtype=torch.int64, device=a.device)

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        same, positive = self._masks(c0, c1)
        if sweep == 0:
            block = torch.logsumexp(s.masked_fill(same, -_INF), dim=1)
            self.neg_lse = torch.logaddexp(self.neg_lse, block)
            self.count += positive.sum()
            return
        # t = s - N: +inf where the anchor has no negative, whose terms are then 0 with 0 slope
        t = (s - self.neg_lse.unsqueeze(1)).masked_fill_(~positive, _INF)
        self.rows -= F.logsigmoid(t).sum(dim=1)  # -log sigmoid(s_ip - N_i) over the positives
        self.q += t.neg_().sigmoid_().sum(dim=1)

    def finish(self) -> tuple[Tensor, Tensor]:
        return self.rows, self.count

    def state(self) -> list[Tensor]:
        return [self.neg_lse, self.q]

    def load(self, state: list[Tensor]) -> None:
        self.neg_lse, self.q = state

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        same, positive = self._masks(c0, c1)
        t = s.sub_(self.neg_lse.unsqueeze(1)) if consume else s - self.neg_lse.unsqueeze(1)
        # positives: d/ds_ip = -sigmoid(N_i - s_ip); negatives: d/ds_in = q_i exp(s_in - N_i)
        pos = torch.neg(t).sigmoid_().masked_fill_(~positive, 0.0)
        out = t.exp_().mul_(self.q.unsqueeze(1)).masked_fill_(same, 0.0).sub_(pos)
        return out.mul_(g.unsqueeze(1))


class SupConSpec(_Spec):
    def __init__(
        self, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float, base: float
    ):
        self.labels, self.ref_labels, self.offset = labels, ref_labels, offset
        self.temperature, self.factor = temperature, temperature / base

    def prepare(self, s: Tensor, c0: int, c1: int) -> None:
        own = _own(s, c0, self.offset)
        if own is not None:
            own.fill_(-_INF)  # the anchor is not among its own candidates

    def _positive(self, c0: int, c1: int) -> Tensor:
        positive = _same(self.labels, self.ref_labels, c0, c1)
        own = _own(positive, c0, self.offset)
        if own is not None:
            own.fill_(False)
        return positive

    def start(self, a: Tensor, cols: int) -> None:
        rows = a.shape[0]
        self.lse = a.new_full((rows,), -_INF)  # log sum over every candidate but the anchor itself
        self.pos_sum = a.new_zeros(rows)
        self.num_pos = a.new_zeros(rows)

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        positive = self._positive(c0, c1)
        self.lse = torch.logaddexp(self.lse, torch.logsumexp(s, dim=1))
        self.pos_sum += s.masked_fill(~positive, 0.0).sum(dim=1)
        self.num_pos += positive.sum(dim=1)

    def finish(self) -> tuple[Tensor, Tensor]:
        has = self.num_pos > 0
        rows = self.factor * (self.lse - self.pos_sum / self.num_pos.clamp_min(1.0))
        return rows.masked_fill_(~has, 0.0), has.sum()

    def state(self) -> list[Tensor]:
        return [self.lse, self.num_pos]

    def load(self, state: list[Tensor]) -> None:
        self.lse, self.num_pos = state

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        positive = self._positive(c0, c1)
        lacks = (self.num_pos == 0).unsqueeze(1)
        coef = (self.factor * g).unsqueeze(1)  # (B, 1)
        # d/ds_ia = factor (softmax over a != i  -  [a in P(i)] / |P(i)|), for anchors with a positive
        t = s.sub_(self.lse.unsqueeze(1)) if consume else s - self.lse.unsqueeze(1)
        out = t.exp_().mul_(coef).masked_fill_(lacks, 0.0)  # exp(-inf) = 0 at the anchor's own column
        pos = positive.to(out.dtype).mul_(coef / self.num_pos.clamp_min(1.0).unsqueeze(1))
        return out.sub_(pos)


class ClipSpec(_Spec):
    """One batch against itself: row ``i`` is image ``i``, column ``j`` text ``j``; both directions."""

    def start(self, a: Tensor, cols: int) -> None:
        self.image_lse = a.new_full((a.shape[0],), -_INF)
        self.text_lse = a.new_empty(cols)
        self.target = a.new_empty(a.shape[0])

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        self.image_lse = torch.logaddexp(self.image_lse, torch.logsumexp(s, dim=1))
        self.text_lse[c0:c1] = torch.logsumexp(s, dim=0)  # every image is in the block: complete
        self.target[c0:c1] = s.diagonal(-c0)

    def finish(self) -> tuple[Tensor, Tensor]:
        rows = 0.5 * (self.image_lse + self.text_lse) - self.target
        return rows, torch.zeros((), dtype=torch.int64, device=rows.device)

    def state(self) -> list[Tensor]:
        return [self.image_lse, self.text_lse]

    def load(self, state: list[Tensor]) -> None:
        self.image_lse, self.text_lse = state

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        # d/ds_ij = g_i softmax_j(s_i.) / 2 + g_j softmax_i(s_.j) / 2 - g_i [i = j]
        image = (s - self.image_lse.unsqueeze(1)).exp_().mul_((0.5 * g).unsqueeze(1))
        text = s.sub_(self.text_lse[c0:c1]) if consume else s - self.text_lse[c0:c1]
        out = text.exp_().mul_(0.5 * g[c0:c1]).add_(image)
        out.diagonal(-c0).sub_(g[c0:c1])
        return out


class SoftmaxTargetSpec(_Spec):
    """Cross-entropy of each row's softmax over the candidates, target column ``i + offset``."""

    def __init__(self, offset: int):
        self.offset = offset

    def start(self, a: Tensor, cols: int) -> None:
        self.lse = a.new_full((a.shape[0],), -_INF)
        self.target = a.new_zeros(a.shape[0])

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        self.lse = torch.logaddexp(self.lse, torch.logsumexp(s, dim=1))
        own = s.diagonal(self.offset - c0)
        start = max(c0 - self.offset, 0)  # the first anchor whose target is in this block
        self.target[start : start + own.shape[0]] = own

    def finish(self) -> tuple[Tensor, Tensor]:
        return self.lse - self.target, torch.zeros((), dtype=torch.int64, device=self.lse.device)

    def state(self) -> list[Tensor]:
        return [self.lse]

    def load(self, state: list[Tensor]) -> None:
        (self.lse,) = state

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        # d/ds_ij = g_i (softmax_ij - [j = i + offset])
        t = s.sub_(self.lse.unsqueeze(1)) if consume else s - self.lse.unsqueeze(1)
        out = t.exp_()
        out.diagonal(self.offset - c0).sub_(1.0)
        return out.mul_(g.unsqueeze(1))


class SigLipSpec(_Spec):
    """Sum over candidates of ``-log sigmoid(z s)``, ``z = +1`` at column ``i + offset``, else ``-1``."""

    streamed_grad = True

    def __init__(self, offset: int | None):
        self.offset = offset

    def _signed(self, s: Tensor, c0: int, consume: bool) -> Tensor:
        u = s.neg_() if consume else s.neg()
        own = _own(u, c0, self.offset)
        if own is not None:
            own.neg_()
        return u  # z s

    def start(self, a: Tensor, cols: int) -> None:
        self.rows = a.new_zeros(a.shape[0])

    def accumulate(self, s: Tensor, c0: int, c1: int, sweep: int) -> None:
        self.rows -= F.logsigmoid(self._signed(s, c0, False)).sum(dim=1)

    def finish(self) -> tuple[Tensor, Tensor]:
        return self.rows, torch.zeros((), dtype=torch.int64, device=self.rows.device)

    def state(self) -> list[Tensor]:
        return []

    def load(self, state: list[Tensor]) -> None:
        pass

    def grad(self, s: Tensor, c0: int, c1: int, g: Tensor, consume: bool) -> Tensor:
        # d/ds -log sigmoid(z s) = -z sigmoid(-z s): sigmoid(s) off the diagonal, -sigmoid(-s) on it
        out = s.sigmoid_() if consume else s.sigmoid()
        own = _own(out, c0, self.offset)
        if own is not None:
            own.sub_(1.0)
        return out.mul_(g.unsqueeze(1))


# --------------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------------


def _logits(a: Tensor, c: Tensor, c0: int, c1: int, spec: _Spec, scale, bias) -> Tensor:
    s = a @ c[c0:c1].transpose(0, 1)  # (B, k)
    if spec.temperature is not None:
        s.div_(spec.temperature)
    else:
        s.mul_(scale)
        if bias is not None:
            s.add_(bias)
    spec.prepare(s, c0, c1)
    return s


class _Grads:
    """Accumulates ``G C`` and ``G^T A`` block by block; ``result`` applies ``f``'s slope."""

    def __init__(self, a: Tensor, c: Tensor, spec: _Spec, scale, bias) -> None:
        self.a, self.c, self.spec, self.scale = a, c, spec, scale
        self.gc = torch.zeros_like(a)
        self.grad_c = torch.empty_like(c)
        self.grad_bias = a.new_zeros(()) if bias is not None else None

    def add(self, grad_s: Tensor, c0: int, c1: int) -> None:
        self.gc.addmm_(grad_s, self.c[c0:c1])
        torch.mm(grad_s.transpose(0, 1), self.a, out=self.grad_c[c0:c1])
        if self.grad_bias is not None:
            self.grad_bias += grad_s.sum()

    def result(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        if self.spec.temperature is not None:
            t = self.spec.temperature
            return self.gc.div_(t), self.grad_c.div_(t), None, self.grad_bias
        grad_scale = (self.a * self.gc).sum()
        return self.gc.mul_(self.scale), self.grad_c.mul_(self.scale), grad_scale, self.grad_bias


def sweep(
    a: Tensor, c: Tensor, spec: _Spec, scale, bias, chunk: int, g: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, tuple | None]:
    """The forward sweeps; with per-row weights ``g``, the gradients of ``sum(g * rows)`` too.

    Returns (rows, count, the single block if one covers ``c`` and no gradient consumed it, gradients).
    """
    spec.start(a, c.shape[0])
    blocks = _blocks(c.shape[0], chunk)
    single = len(blocks) == 1
    grads = _Grads(a, c, spec, scale, bias) if g is not None else None
    kept = None
    for p in range(spec.passes):
        last = p == spec.passes - 1
        for c0, c1 in blocks:
            s = kept if kept is not None else _logits(a, c, c0, c1, spec, scale, bias)
            spec.accumulate(s, c0, c1, p)
            if grads is not None and last and spec.streamed_grad:
                grads.add(spec.grad(s, c0, c1, g, consume=True), c0, c1)  # type: ignore[arg-type]
            elif single:
                kept = s
    rows, count = spec.finish()
    if grads is not None and not spec.streamed_grad:
        for c0, c1 in blocks:
            s = kept if kept is not None else _logits(a, c, c0, c1, spec, scale, bias)
            grads.add(spec.grad(s, c0, c1, g, consume=True), c0, c1)  # type: ignore[arg-type]
        kept = None
    return rows, count, kept, None if grads is None else grads.result()


def backward_sweep(
    a: Tensor, c: Tensor, spec: _Spec, scale, bias, chunk: int, g: Tensor, kept: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(dA, dC, d scale, d bias) for the per-row gradient ``g``, the statistics already in ``spec``."""
    grads = _Grads(a, c, spec, scale, bias)
    for c0, c1 in _blocks(c.shape[0], chunk):
        s = kept if kept is not None else _logits(a, c, c0, c1, spec, scale, bias)
        grads.add(spec.grad(s, c0, c1, g, consume=kept is None), c0, c1)
    return grads.result()


def _double_backward(ctx: Any, inputs: tuple, output: Tensor, g: Tensor) -> list:
    """create_graph=True: gradients of the definition's ``output``, themselves differentiable."""
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    grads = iter(torch.autograd.grad(output, wanted, g, create_graph=True, allow_unused=True))
    return [next(grads) if t is not None and t.requires_grad else None for t in inputs]


class _Rows(torch.autograd.Function):
    """Per-row loss of ``spec`` on ``A C^T``; backward recomputes each block."""

    @staticmethod
    def forward(a, c, scale, bias, spec: _Spec, chunk: int, definition):
        rows, count, kept, _ = sweep(a, c, spec, scale, bias, chunk, None)
        return rows, count, kept if kept is not None else a.new_zeros(0), *spec.state()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        a, c, scale, bias, spec, chunk, definition = inputs
        _, count, kept, *state = output
        ctx.spec, ctx.chunk, ctx.definition, ctx.has_kept, ctx.n_state = (
            spec,
            chunk,
            definition,
            kept.numel() > 0,
            len(state),
        )
        ctx.mark_non_differentiable(count, kept, *state)
        ctx.save_for_backward(a, c, scale, bias, kept, *state)

    @staticmethod
    def backward(ctx: Any, g: Tensor, *unused: Tensor):
        a, c, scale, bias, kept, *state = ctx.saved_tensors
        if torch.is_grad_enabled():
            with torch.enable_grad():
                rows = ctx.definition(a, c, scale, bias)
            out = _double_backward(ctx, (a, c, scale, bias), rows, g)
        else:
            ctx.spec.load(state)
            out = backward_sweep(a, c, ctx.spec, scale, bias, ctx.chunk, g, kept if ctx.has_kept else None)
        return *out, None, None, None


class _Summed(torch.autograd.Function):
    """``sum(w * rows)`` of ``spec`` on ``A C^T``, its gradients computed in forward (when wanted)."""

    @staticmethod
    def forward(a, c, scale, bias, w, spec: _Spec, chunk: int, definition, want_grad: bool):
        rows, count, _, grads = sweep(a, c, spec, scale, bias, chunk, w if want_grad else None)
        total = (rows * w).sum()
        if grads is None:
            return total, count, rows
        ga, gc, gs, gb = grads
        return (
            total,
            count,
            rows,
            ga,
            gc,
            gs if gs is not None else a.new_zeros(0),
            gb if gb is not None else a.new_zeros(0),
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        a, c, scale, bias, w = inputs[:5]
        ctx.definition = inputs[7]
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(a, c, scale, bias, w, *output[2:])

    @staticmethod
    def backward(ctx: Any, g: Tensor, *unused: Tensor):
        a, c, scale, bias, w, rows, *grads = ctx.saved_tensors
        if torch.is_grad_enabled():
            with torch.enable_grad():
                total = (ctx.definition(a, c, scale, bias) * w).sum()
            out = _double_backward(ctx, (a, c, scale, bias, w), total, g)
            return *out, None, None, None, None
        if not grads:  # forward ran without gradients (no input required one then)
            return None, None, None, None, None, None, None, None, None
        ga, gc, gs, gb = grads
        return (
            ga * g,
            gc * g,
            gs * g if scale is not None else None,
            gb * g if bias is not None else None,
            rows * g,
            None, None, None, None,
        )  # fmt: skip


def run(
    a: Tensor, c: Tensor, scale: Tensor | None, bias: Tensor | None, spec: _Spec, chunk_size: int | None,
    definition: Callable[..., Tensor], weight: Tensor | None, summed: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(per-row loss, count), or (``sum(weight * rows)``, count) when ``summed``.

    ``definition(a, c, scale, bias)`` gives the per-row loss in plain ops (for double backward).
    """
    chunk = block_columns(a.shape[0], c.shape[0], chunk_size)
    if not summed:
        rows, count, *_ = _Rows.apply(a, c, scale, bias, spec, chunk, definition)
        return rows, count
    w = a.new_ones(a.shape[0]) if weight is None else weight.to(a.dtype).broadcast_to((a.shape[0],))
    leaves = (a, c, scale, bias, w)
    want_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in leaves)
    total, count, *_ = _Summed.apply(a, c, scale, bias, w, spec, chunk, definition, want_grad)
    return total, count


# --------------------------------------------------------------------------------------------------
# entry points, called from the one dispatch point of each loss in functional/contrastive.py; each
# ``definition(a, c, scale, bias)`` returns the definition's per-row loss (for double backward)
# --------------------------------------------------------------------------------------------------


def nt_xent(
    a: Tensor, c: Tensor, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float,
    chunk_size: int | None, definition: Callable[..., Tensor], weight: Tensor | None, summed: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    spec = NTXentSpec(labels, ref_labels, offset, temperature)
    return run(a, c, None, None, spec, chunk_size, definition, weight, summed)


def supcon(
    a: Tensor, c: Tensor, labels: Tensor, ref_labels: Tensor, offset: int | None, temperature: float,
    base_temperature: float, chunk_size: int | None, definition: Callable[..., Tensor],
    weight: Tensor | None, summed: bool,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    spec = SupConSpec(labels, ref_labels, offset, temperature, base_temperature)
    return run(a, c, None, None, spec, chunk_size, definition, weight, summed)


def clip(
    x: Tensor, y: Tensor, scale: Tensor, chunk_size: int | None, definition: Callable[..., Tensor],
    weight: Tensor | None, summed: bool,
) -> Tensor:  # fmt: skip
    """CLIP on one batch: one matrix, its row (image) and column (text) normalisers."""
    return run(x, y, scale, None, ClipSpec(), chunk_size, definition, weight, summed)[0]


def softmax_target(
    a: Tensor, c: Tensor, offset: int, scale: Tensor, chunk_size: int | None,
    definition: Callable[..., Tensor], weight: Tensor | None, summed: bool,
) -> Tensor:  # fmt: skip
    """Each anchor's cross-entropy over its candidates, target ``i + offset`` (one CLIP direction)."""
    return run(a, c, scale, None, SoftmaxTargetSpec(offset), chunk_size, definition, weight, summed)[0]


def siglip(
    x: Tensor, c: Tensor, offset: int | None, scale: Tensor, bias: Tensor, chunk_size: int | None,
    definition: Callable[..., Tensor], weight: Tensor | None, summed: bool,
) -> Tensor:  # fmt: skip
    return run(x, c, scale, bias, SigLipSpec(offset), chunk_size, definition, weight, summed)[0]
