"""Faces: open-set verification on glyph identities never seen in training, over several seeds.

The identities are characters drawn by the 16 typefaces matplotlib ships (:mod:`.glyphs`: about 120
identities, each under 16 "appearances" plus random affine jitter, stroke and noise). Each seed
draws a new split: 32 identities are held out of training entirely (the open set); the rest train
a small network (256 -> 256 -> D, D = 64 in ``--quick``) with each loss. Verification accuracy is
measured on balanced pairs of held-out identities (same identity or not, by the cosine of the
embeddings, the threshold fitted on one half of the pairs and scored on the other), as in the LFW
protocol. Compactness is measured on new appearances of the training identities.

All losses see the same batches (32 identities x 4 images), the same network and optimiser, the same
number of steps; each loss's learning rate (and the triplet loss's mining and margin) chosen by
:func:`tune` on a validation split of the training identities (:data:`LR`); the papers' margins; the scale s = 30 for the normalised losses (the CosFace
bound for about 90 classes is 10). The 2-D and 3-D feature pictures are pictures only, with a class
count the margins can separate (5 identities in 2-D: ArcFace's m = 0.5 needs C x 2m < 2 pi).
"""

# ruff: noqa: E501  (long generated sentences read better unbroken)

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .. import StepResult, require
from .._plotting import PALETTE, pyplot, save, seed_bars
from ..stats import NON_INFERIORITY, Resolution, compare_to_best
from ..verdicts import Claim, fmt, mean
from . import glyphs as G

TITLE = "Faces: open-set verification on unseen identities"
SCALE = 30.0
CENTER_WEIGHT = 0.01  # lambda of center loss, added to softmax
OPEN_IDS = 32
P_IDS, K_IMGS = 32, 4  # batch: P identities x K images
SCALES = {
    "tiny": {"seeds": 2, "steps": 60, "dim": 32, "hidden": 64, "copies": 1, "pic_steps": 20},
    "quick": {"seeds": 5, "steps": 300, "dim": 64, "hidden": 192, "copies": 3, "pic_steps": 60},
    "full": {"seeds": 10, "steps": 1500, "dim": 128, "hidden": 256, "copies": 4, "pic_steps": 400},
}
LOSSES = ("softmax", "center", "normface", "sphereface", "cosface", "arcface", "contrastive", "triplet")
FUNCTIONS = {
    "softmax": ("cross_entropy",),
    "center": ("cross_entropy", "center_loss"),
    "normface": ("normface_loss",),
    "sphereface": ("sphereface_loss", "sphereface_lambda"),
    "cosface": ("cosface_loss",),
    "arcface": ("arcface_loss",),
    "contrastive": ("batch_contrastive_loss",),
    "triplet": ("batch_triplet_loss",),
}
MAIN = {k: v[-1] if k == "center" else v[0] for k, v in FUNCTIONS.items()}
LABELS = {
    "softmax": "softmax",
    "center": "softmax + center",
    "normface": "NormFace (s=30)",
    "sphereface": "SphereFace (m=4)",
    "cosface": "CosFace (m=0.35)",
    "arcface": "ArcFace (m=0.5)",
    "contrastive": "contrastive (m=1)",
    "triplet": "triplet (semi-hard, m=0.2)",
}
MARGIN = ("sphereface", "cosface", "arcface")
# Learning rate and the triplet loss's options, chosen by tune("quick") (1 thread, 200 s CPU) on
# validation_split of seeds 100-102: 24 training identities held out, never the experiment's open set.
# Mean validation verification accuracy (%) at lr 1e-3 / 2e-3 / 5e-3:
#   softmax 71.3 / 73.1 / 76.0, center 71.9 / 74.7 / 79.1, NormFace 73.1 / 75.3 / 76.1,
#   SphereFace 73.1 / 76.0 / 79.9, CosFace 73.0 / 74.7 / 76.1, ArcFace 72.9 / 74.8 / 70.8,
#   contrastive 75.4 / 77.9 / 79.0;
#   triplet semi-hard m = 0.1 / 0.2 / 0.5: 79.7 / 79.7 / 79.8 (lr 1e-3), 81.5 / 81.6 / 81.3 (2e-3),
#   81.8 / 82.2 / 81.9 (5e-3); triplet batch-hard 59.5 / 59.7 / 58.7 at every margin (it collapses from
#   a random start, as Hermans et al. 2017 warn, so the margin never acts): semi-hard, m = 0.2, lr 5e-3.
# 5e-3 is the grid's largest rate and the best for every loss but ArcFace (which is unstable there on
# one seed of three): a wider grid might move several losses a little further, equally.
LR = {k: 5e-3 for k in LOSSES} | {"arcface": 2e-3}
TRIPLET = {"mining": "semi_hard", "margin": 0.2}
VALIDATION_IDS = 24  # training identities held out of training, as an open set, when tuning
VALIDATION_SEEDS = (100, 101, 102)  # never the experiment's seeds (0, 1, ...)
LR_GRID = (1e-3, 2e-3, 5e-3)
TRIPLET_GRID = tuple({"mining": m, "margin": a} for m in ("batch_hard", "semi_hard") for a in (0.1, 0.2, 0.5))
CHANCE, CEILING, RESOLVE = 50.0, 100.0, 3.0  # verification accuracy in %, and the margin to resolve
DELTA_ACC = 1.0  # points of verification accuracy: the minimal meaningful difference
DELTA_COMPACT = 10.0  # percent: the minimal meaningful reduction of the compactness ratio


def _split(glyphs: G.Glyphs, seed: int, copies: int):
    """One seed's data: training images and labels, open-set images and labels, new views of training ids."""
    g = torch.Generator().manual_seed(seed)
    n_ids, n_faces = glyphs.images.shape[:2]
    perm = torch.randperm(n_ids, generator=g)
    open_ids, train_ids = perm[:OPEN_IDS], perm[OPEN_IDS:]

    def views(ids, k):
        x = G.augment(glyphs.images[ids].flatten(0, 1), k, g)
        y = torch.arange(len(ids)).repeat_interleave(n_faces * k)
        return x, y

    x, y = views(train_ids, copies)
    xo, yo = views(open_ids, 2)
    xv, yv = views(train_ids, 1)
    return x, y, xo, yo, xv, yv, train_ids


def validation_split(glyphs: G.Glyphs, seed: int, copies: int):
    """Tuning data: the seed's training identities only (its open set is never touched), of which
    :data:`VALIDATION_IDS` are held out of training and verified on as an open set.

    Returns ``(x, y, x_val, y_val)``: training images and labels, validation images and labels."""
    g = torch.Generator().manual_seed(seed)
    n_ids, n_faces = glyphs.images.shape[:2]
    train_ids = torch.randperm(n_ids, generator=g)[OPEN_IDS:]
    gv = torch.Generator().manual_seed(seed + 1000)
    pick = torch.randperm(len(train_ids), generator=gv)
    val_ids, fit_ids = train_ids[pick[:VALIDATION_IDS]], train_ids[pick[VALIDATION_IDS:]]
    x = G.augment(glyphs.images[fit_ids].flatten(0, 1), copies, gv)
    y = torch.arange(len(fit_ids)).repeat_interleave(n_faces * copies)
    xv = G.augment(glyphs.images[val_ids].flatten(0, 1), 2, gv)
    yv = torch.arange(len(val_ids)).repeat_interleave(n_faces * 2)
    return x, y, xv, yv


def tune(
    mode: str = "quick",
    *,
    losses: tuple[str, ...] = LOSSES,
    lrs: tuple[float, ...] = LR_GRID,
    triplets: tuple[dict, ...] = TRIPLET_GRID,
    seeds: tuple[int, ...] = VALIDATION_SEEDS,
) -> list[dict]:
    """The validation sweep behind :data:`LR` and :data:`TRIPLET`: each loss at each learning rate of
    ``lrs`` (the triplet loss also at each of its ``triplets`` options), trained as in :func:`run` at
    ``mode``'s sizes on :func:`validation_split` of each of ``seeds``, and its verification accuracy
    (%) on the validation identities. One record per setting, with the per-seed accuracies and their
    mean; ``python -m losskit.atlas.experiments.faces`` prints them (about 6 minutes at ``quick``)."""
    cfg = SCALES[mode]
    glyphs = G.load_glyphs()
    records: dict[tuple, dict] = {}
    for s in seeds:
        x, y, xv, yv = validation_split(glyphs, s, cfg["copies"])
        for k in losses:
            for opts in triplets if k == "triplet" else (None,):
                for lr in lrs:
                    net = _train(
                        k, x, y, dim=cfg["dim"], hidden=cfg["hidden"], steps=cfg["steps"], seed=s, lr=lr,
                        triplet=opts,
                    )  # fmt: skip
                    with torch.no_grad():
                        acc = verification_accuracy(net(xv), yv, seed=s)
                    key = (k, lr, tuple(sorted((opts or {}).items())))
                    rec = records.setdefault(key, {"loss": k, "lr": lr, "triplet": opts, "accuracy": []})
                    rec["accuracy"].append(acc)
    for rec in records.values():
        rec["mean"] = mean(rec["accuracy"])
    return list(records.values())


class _Net(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(G.SIZE * G.SIZE, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x):
        return self.body(x)


def _objective(kind: str, dim: int, classes: int, steps: int, triplet: dict | None = None):
    """(extra parameters, loss(emb, y, step)) for one loss; ``triplet``: the triplet loss's options."""
    from ... import functional as LF

    head = nn.Linear(dim, classes)
    centers = nn.Parameter(torch.randn(classes, dim) * 0.1)
    w = nn.Parameter(nn.init.xavier_uniform_(torch.empty(classes, dim)))
    # SphereFace's lambda annealing (Liu et al. 2017: from 1000 down to 5), compressed to the run:
    # lambda reaches its floor of 5 at 60% of the steps
    gamma = 199.0 / (0.6 * steps)
    trip = dict(TRIPLET if triplet is None else triplet)

    def cosine(e):
        return F.normalize(e, dim=1) @ F.normalize(w, dim=1).T  # (N, C)

    if kind == "softmax":
        return list(head.parameters()), lambda e, y, t: LF.cross_entropy(head(e), y)
    if kind == "center":
        return [
            *head.parameters(),
            centers,
        ], lambda e, y, t: LF.cross_entropy(head(e), y) + CENTER_WEIGHT * LF.center_loss(e, y, centers)
    if kind == "normface":
        return [w], lambda e, y, t: LF.normface_loss(cosine(e), y, scale=SCALE)
    if kind == "sphereface":
        return [w], lambda e, y, t: LF.sphereface_loss(
            cosine(e), y, scale=e.norm(dim=1), margin=4, lambda_=LF.sphereface_lambda(t, gamma=gamma)
        )
    if kind == "cosface":
        return [w], lambda e, y, t: LF.cosface_loss(cosine(e), y, scale=SCALE, margin=0.35)
    if kind == "arcface":
        return [w], lambda e, y, t: LF.arcface_loss(cosine(e), y, scale=SCALE, margin=0.5)
    if kind == "contrastive":
        return [], lambda e, y, t: LF.batch_contrastive_loss(F.normalize(e, dim=1), y, margin=1.0)
    if kind == "triplet":
        return [], lambda e, y, t: LF.batch_triplet_loss(F.normalize(e, dim=1), y, **trip)
    raise ValueError(kind)


def _pk_batches(y: torch.Tensor, steps: int, g: torch.Generator):
    """Index batches of P identities x K images each (the same batches for every loss of a seed)."""
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y)
    starts = torch.cumsum(counts, 0) - counts
    p = min(P_IDS, len(counts))
    for _ in range(steps):
        ids = torch.randperm(len(counts), generator=g)[:p].repeat_interleave(K_IMGS)
        offset = (torch.rand(len(ids), generator=g) * counts[ids]).long()
        yield order[starts[ids] + offset]


def _train(
    kind: str,
    x,
    y,
    *,
    dim: int,
    hidden: int,
    steps: int,
    seed: int,
    lr: float | None = None,
    triplet: dict | None = None,
) -> nn.Module:
    torch.manual_seed(seed)
    net = _Net(dim, hidden)
    extra, loss_fn = _objective(kind, dim, int(y.max()) + 1, steps, triplet)
    opt = torch.optim.Adam([*net.parameters(), *extra], lr=LR[kind] if lr is None else lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for t, idx in enumerate(_pk_batches(y, steps, torch.Generator().manual_seed(seed))):
        loss = loss_fn(net(x[idx]), y[idx], t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    return net


def verification_accuracy(e: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """Accuracy (%) of same/different decisions by cosine on balanced pairs; threshold fitted on half."""
    e = F.normalize(e, dim=1)
    i, j = torch.triu_indices(len(y), len(y), 1)
    s = (e @ e.T)[i, j]
    same = y[i] == y[j]
    g = torch.Generator().manual_seed(seed)
    pos, neg = same.nonzero().squeeze(1), (~same).nonzero().squeeze(1)
    k = min(len(pos), len(neg))
    pick = torch.cat(
        [pos[torch.randperm(len(pos), generator=g)[:k]], neg[torch.randperm(len(neg), generator=g)[:k]]]
    )
    pick = pick[torch.randperm(len(pick), generator=g)]
    fit, test = pick[: len(pick) // 2], pick[len(pick) // 2 :]
    order = torch.argsort(s[fit], descending=True)
    lab = same[fit][order].double()
    # calling the first t pairs (most similar) "same": correct = positives among them + negatives after
    correct = torch.cat([lab.new_zeros(1), lab.cumsum(0)]) + (
        (1 - lab).sum() - torch.cat([lab.new_zeros(1), (1 - lab).cumsum(0)])
    )
    t = int(correct.argmax())
    sf = s[fit][order]
    thr = math.inf if t == 0 else float(sf[t - 1] if t == len(sf) else (sf[t - 1] + sf[t]) / 2)
    return 100.0 * float(((s[test] >= thr) == same[test]).float().mean())


def compactness(e: torch.Tensor, y: torch.Tensor) -> float:
    """Mean angle of a feature to its identity's mean direction over the mean angle from each identity's
    mean direction to its nearest other identity's (both on the unit sphere): lower is more compact."""
    e = F.normalize(e, dim=1)
    classes = int(y.max()) + 1
    means = F.normalize(torch.zeros(classes, e.shape[1]).index_add_(0, y, e), dim=1)
    intra = torch.acos((e * means[y]).sum(1).clamp(-1, 1)).mean()
    cos = (means @ means.T).clamp(-1, 1) - 3 * torch.eye(classes)  # exclude self
    inter = torch.acos(cos.max(1).values.clamp(-1, 1)).mean()
    return float(intra / inter)


def _pictures(glyphs: G.Glyphs, out: Path, steps: int) -> tuple[dict, dict]:
    """2-D (5 identities) and 3-D (8 identities) features of each loss, one seed: pictures only."""
    plt = pyplot()
    figures, captions = {}, {}
    g = torch.Generator().manual_seed(123)
    for dim, n_ids in ((2, 5), (3, 8)):
        ids = torch.arange(n_ids) * (len(glyphs.images) // n_ids)  # spread over the character ranges
        x = G.augment(glyphs.images[ids].flatten(0, 1), 4, g)
        y = torch.arange(n_ids).repeat_interleave(glyphs.images.shape[1] * 4)
        fig = plt.figure(figsize=(13.0, 3.5))
        for i, k in enumerate(LOSSES):
            net = _train(k, x, y, dim=dim, hidden=64, steps=steps, seed=0)
            with torch.no_grad():
                e = net(x)
            if dim == 3:
                ax = fig.add_subplot(1, len(LOSSES), i + 1, projection="3d")
                e = F.normalize(e, dim=1)
            else:
                ax = fig.add_subplot(1, len(LOSSES), i + 1)
            for c in range(n_ids):
                pts = e[y == c][:60]
                ax.scatter(*pts.T.numpy(), s=3, color=PALETTE[c % len(PALETTE)], alpha=0.7)
            ax.set_title(LABELS[k], fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if dim == 3:
                ax.set_zticks([])
            else:
                ax.set_aspect("equal", adjustable="datalim")
        chars = "".join(glyphs.characters[int(i)] for i in ids)
        figures[f"features{dim}d"] = save(fig, out, f"faces_features_{dim}d.png")
        captions[f"features{dim}d"] = (
            f"Pictures, not measurements: {dim}-D features of {n_ids} identities ({chars}) trained with each loss "
            f"(one seed, {steps} steps){'; on the unit sphere' if dim == 3 else ''}. {n_ids} identities, so that "
            "the margins can be met (ArcFace m = 0.5 in 2-D needs C x 2m < 2 pi)."
        )
    return figures, captions


def run(out: Path, mode: str) -> StepResult:
    require(*{f for fs in FUNCTIONS.values() for f in fs})
    cfg = SCALES[mode]
    seeds, steps, dim, hidden = cfg["seeds"], cfg["steps"], cfg["dim"], cfg["hidden"]
    glyphs = G.load_glyphs()
    acc = {k: [] for k in LOSSES}
    comp = {k: [] for k in LOSSES}
    n_train = n_open = 0
    for s in range(seeds):
        x, y, xo, yo, xv, yv, _ = _split(glyphs, seed=s, copies=cfg["copies"])
        n_train, n_open = int(y.max()) + 1, int(yo.max()) + 1
        for k in LOSSES:
            net = _train(k, x, y, dim=dim, hidden=hidden, steps=steps, seed=s)
            with torch.no_grad():
                acc[k].append(verification_accuracy(net(xo), yo, seed=s))
                comp[k].append(compactness(net(xv), yv))
    acc_m = {k: mean(v) for k, v in acc.items()}
    comp_m = {k: mean(v) for k, v in comp.items()}
    figures, captions = _pictures(glyphs, out, cfg["pic_steps"])

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.4))
    for ax, table, ylabel in (
        (a1, acc, "verification accuracy (%)"),
        (a2, comp, "compactness (lower: more compact)"),
    ):
        seed_bars(ax, {k: table[k] for k in LOSSES}, [LABELS[k].split(" (")[0] for k in LOSSES], rotation=30)
        ax.set_ylabel(ylabel)
    a1.axhline(CHANCE, color="0.5", ls=":", lw=1)
    a1.set_ylim(CHANCE - 2, 100)
    a1.set_title(f"open-set verification, {OPEN_IDS} unseen identities")
    a2.set_title("compactness on new views of training identities")
    figures["verification"] = save(fig, out, "faces_verification.png")
    captions["verification"] = (
        f"Per loss: mean over {seeds} seeds (bars), 95% t interval of the mean (black), each seed (dots). "
        f"Left: open-set verification accuracy (chance {CHANCE:g}%, dotted). Right: compactness."
    )

    def resolution(*kinds: str) -> Resolution:
        return Resolution(
            {LABELS[k]: acc_m[k] for k in kinds}, CHANCE, CEILING, RESOLVE, "verification accuracy (%)"
        )

    def diff(a: str, b: str, table=acc) -> list[float]:
        return [p - q for p, q in zip(table[a], table[b])]

    def pct_more_compact(a: str, base: str = "softmax") -> list[float]:
        return [100.0 * (1 - p / q) for p, q in zip(comp[a], comp[base])]

    def accs(*kinds: str) -> str:
        return ", ".join(f"{LABELS[k].split(' (')[0]} {acc_m[k]:.1f}%" for k in kinds)

    def comps(*kinds: str) -> str:
        return ", ".join(f"{LABELS[k].split(' (')[0]} {fmt(comp_m[k])}" for k in kinds)

    fv = figures["verification"]
    claims = [
        Claim.measure(
            id="faces-arcface-beats-softmax",
            statement="ArcFace separates unseen identities better than softmax.",
            source="Deng et al. 2019",
            losses=("arcface_loss", "cross_entropy"),
            effect_name="ArcFace minus softmax open-set verification accuracy",
            unit="points",
            delta=DELTA_ACC,
            effects=diff("arcface", "softmax"),
            resolution=resolution("arcface", "softmax"),
            evidence=f"mean verification accuracy: {accs('arcface', 'softmax')}.",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-arcface-beats-cosface-sphereface",
            statement="ArcFace beats CosFace and SphereFace.",
            source="Deng et al. 2019",
            losses=("arcface_loss", "cosface_loss", "sphereface_loss"),
            effect_name="ArcFace minus the better of CosFace and SphereFace (per seed), verification accuracy",
            unit="points",
            delta=DELTA_ACC,
            effects=[a - max(c, s) for a, c, s in zip(acc["arcface"], acc["cosface"], acc["sphereface"])],
            resolution=resolution("arcface", "cosface", "sphereface"),
            evidence=f"mean verification accuracy: {accs('arcface', 'cosface', 'sphereface')}.",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-margin-beats-normface",
            statement="An additive margin (CosFace, ArcFace) improves on the same normalised softmax without one (NormFace).",
            source="Wang et al. 2018; Deng et al. 2019",
            losses=("cosface_loss", "arcface_loss", "normface_loss"),
            effect_name="the worse of CosFace and ArcFace minus NormFace (per seed), verification accuracy",
            unit="points",
            delta=DELTA_ACC,
            effects=[min(c, a) - n for c, a, n in zip(acc["cosface"], acc["arcface"], acc["normface"])],
            resolution=resolution("cosface", "arcface", "normface"),
            evidence=f"mean verification accuracy: {accs('cosface', 'arcface', 'normface')} (all at s = {SCALE:g}).",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-margins-compact",
            statement="Angular margins make each identity's features more compact than softmax does.",
            source="Liu et al. 2017; Wang et al. 2018; Deng et al. 2019",
            losses=("sphereface_loss", "cosface_loss", "arcface_loss"),
            effect_name="the smallest of SphereFace's, CosFace's and ArcFace's reduction of the compactness ratio against softmax (per seed)",
            unit="%",
            delta=DELTA_COMPACT,
            effects=[min(v) for v in zip(*(pct_more_compact(m) for m in MARGIN))],
            evidence=f"mean compactness (intra-identity angle / angle to the nearest other identity): {comps('softmax', *MARGIN)}.",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-center-compact",
            statement="Center loss makes features more compact than softmax alone.",
            source="Wen et al. 2016",
            losses=("center_loss",),
            effect_name="softmax + center loss's reduction of the compactness ratio against softmax",
            unit="%",
            delta=DELTA_COMPACT,
            effects=pct_more_compact("center"),
            evidence=f"mean compactness: {comps('softmax', 'center')} (lambda = {CENTER_WEIGHT:g}).",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-metric-open-set",
            statement="Losses trained on distances (contrastive, triplet) generalise to unseen identities better than softmax.",
            source="Sun et al. 2014; Schroff et al. 2015",
            losses=(
                "batch_contrastive_loss",
                "batch_triplet_loss",
                "contrastive_loss",
                "triplet_margin_loss",
            ),
            effect_name="the worse of contrastive and triplet minus softmax (per seed), verification accuracy",
            unit="points",
            delta=DELTA_ACC,
            effects=[min(c, t) - s for c, t, s in zip(acc["contrastive"], acc["triplet"], acc["softmax"])],
            resolution=resolution("contrastive", "triplet", "softmax"),
            evidence=f"mean verification accuracy: {accs('contrastive', 'triplet', 'softmax')}.",
            figure=fv,
            experiment="faces",
        ),
        Claim.measure(
            id="faces-sphereface-matches-cosface",
            statement="SphereFace's multiplicative margin does as well as CosFace's additive one.",
            source="Liu et al. 2017; Wang et al. 2018 (who report it does worse)",
            losses=("sphereface_loss", "cosface_loss"),
            effect_name="SphereFace minus CosFace verification accuracy",
            unit="points",
            delta=DELTA_ACC,
            kind=NON_INFERIORITY,
            effects=diff("sphereface", "cosface"),
            resolution=resolution("sphereface", "cosface"),
            evidence=f"mean verification accuracy: {accs('sphereface', 'cosface')}.",
            figure=fv,
            experiment="faces",
        ),
    ]
    # when to use / when not: each loss against the best (paired over seeds, 95% interval)
    ranking = compare_to_best(acc, delta=DELTA_ACC)
    advice: dict[str, dict[str, list[str]]] = {}
    for k in LOSSES:
        a = advice.setdefault(MAIN[k], {"use": [], "avoid": []})
        r = ranking[k]
        line = (
            f"Open-set verification ({dim}-D, {OPEN_IDS} unseen identities): {acc_m[k]:.1f}%, "
            f"{fmt(r.mean, signed=True)} points [{fmt(r.low, signed=True)}, {fmt(r.high, signed=True)}] against the best ({LABELS[r.best]}) over {seeds} seeds"
        )
        if r.status in ("best", "tied"):
            a["use"].append(
                line + (" — the best." if r.status == "best" else " — not distinguishable from the best.")
            )
        elif r.status == "worse":
            a["avoid"].append(line + " — worse than the best by more than 1 point.")
    return StepResult(
        key="faces",
        title=TITLE,
        kind="experiment",
        figures=figures,
        captions=captions,
        metrics={"verification_accuracy": acc, "compactness": comp, "dim": dim, "seeds": seeds},
        claims=claims,
        advice=advice,
        setup=f"Data: {len(glyphs.characters)} glyph identities (letters, digits, Greek and Cyrillic characters; look-alikes merged) "
        f"drawn by the {len(G.TYPEFACES)} typefaces shipped with matplotlib, {G.SIZE}x{G.SIZE} pixels, with random affine jitter, "
        f"stroke and noise: real glyph designs, nothing downloaded. Each of {seeds} seeds draws a new split: {n_open} identities "
        f"held out entirely (the open set), {n_train} for training ({n_train * len(G.TYPEFACES) * cfg['copies']} images). "
        f"Network 256-{hidden}-{dim} (D = {dim}); {steps} Adam steps (cosine schedule; lr 5e-3, ArcFace 2e-3: each loss's best of 1e-3, 2e-3, 5e-3 on a validation split of training identities, never the open set, see tune()) on batches of {P_IDS} identities "
        f"x {K_IMGS} images, the same batches for every loss. Normalised losses at s = {SCALE:g}; SphereFace: the feature norm "
        f"as scale, lambda annealed from 1000 to 5 over the first 60% of the steps; center loss weight {CENTER_WEIGHT:g}; "
        f"contrastive (margin 1) and triplet (semi-hard mining, margin 0.2: the best of batch-hard and semi-hard at margins 0.1, 0.2, 0.5 on the same validation split; batch-hard collapses from a random start) on L2-normalised embeddings. Verification: all positive "
        f"pairs of the open set and as many negatives, threshold fitted on half, accuracy (%) on the other half (chance {CHANCE:g}%).",
        headline=f"verification (D={dim}, {seeds} seeds): "
        + ", ".join(f"{LABELS[k].split(' (')[0]} {acc_m[k]:.1f}%" for k in LOSSES),
    )


if __name__ == "__main__":  # the validation sweep behind LR and TRIPLET
    import json
    import sys

    torch.set_num_threads(1)
    for record in tune(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(json.dumps(record), flush=True)
