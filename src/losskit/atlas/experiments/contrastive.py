"""Contrastive losses on glyph identities: representations from two views, and retrieval of pairs.

The data are the glyph identities of :mod:`.glyphs` (about 120 characters, each drawn by 16 typefaces
shipped with matplotlib). Each seed draws a new split of the typefaces: 12 for training, 4 held out
(unseen styles of every character), a new pool of augmented views (random affine jitter, stroke and
noise; :func:`.glyphs.augment`), a new initialisation and a new batch order. Every loss of a claim sees
the same batches.

- **Two views** (NT-Xent, SupCon): one network (256 -> hidden -> D) trained on batches of P characters
  x K training typefaces, each image seen as two different augmented views (2 P K rows). NT-Xent's
  labels pair the two views of an image (SimCLR: every other row is a negative, other typefaces of the
  same character included); SupCon's labels are the characters (Khosla et al.: every row of the same
  character is a positive). Quality is the k-nearest-neighbour accuracy (k = 1, cosine) of images in
  the 4 held-out typefaces against a bank of the training typefaces' images with their characters
  (chance: 1 / number of characters).
- **Pairs** (CLIP, SigLIP): each image is cut into a left and a right half, the "image" and the
  "text" of a pair, each through its own tower (128 -> hidden -> D, features L2-normalised). Quality
  is retrieval@1 (%) among the held-out typefaces' pairs: the fraction of left halves whose most
  similar right half is their own, averaged with the other direction (chance: 1 / number of pairs).
  CLIP learns log t from log(1 / 0.07); SigLIP learns log t from log 10 and its bias from -10 (the
  papers' initialisations). Batch sizes are compared at a fixed number of steps, so a larger batch also
  sees more pairs: the claim as CLIP's and SimCLR's authors state it (more negatives per step).

Budget: ``--quick`` trains 120 steps per run over 5 seeds (about half a minute on one core), enough
for the intervals of the three superiority claims to clear both 0 and the 2-point minimal effect.
SigLIP's bias starts at the paper's -10 and barely moves in so few steps (its claim says so): that
claim measures SigLIP near its initialisation, not after the paper's long training.
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
from ..stats import NON_INFERIORITY, Resolution, paired_interval
from ..verdicts import Claim, fmt, mean
from . import glyphs as G

TITLE = "Contrastive: representations from two views, retrieval of image-text pairs"
TRAIN_FACES = 12  # typefaces used in training; the other 4 are held out
POOL = 4  # augmented views per training image, drawn once per seed
LOW_T, HIGH_T = 0.1, 1.0  # NT-Xent's compared temperatures (SimCLR, Table 5: 0.05 to 1)
SMALL_B = 32  # the small batch of the SigLIP claim and of the CLIP batch-size claim
LR = 2e-3
SCALES = {
    "tiny": {
        "seeds": 2, "steps": 30, "dim": 32, "hidden": 64, "pk": (16, 4),
        "temperatures": (LOW_T, HIGH_T), "batches": (SMALL_B, 64), "siglip_batches": (SMALL_B,),
    },
    "quick": {
        "seeds": 5, "steps": 120, "dim": 64, "hidden": 192, "pk": (32, 4),
        "temperatures": (LOW_T, HIGH_T), "batches": (SMALL_B, 256), "siglip_batches": (SMALL_B,),
    },
    "full": {
        "seeds": 10, "steps": 600, "dim": 128, "hidden": 256, "pk": (32, 4),
        "temperatures": (0.05, LOW_T, 0.2, 0.5, HIGH_T), "batches": (16, SMALL_B, 64, 128, 256, 512),
        "siglip_batches": (16, SMALL_B, 64, 256),
    },
}  # fmt: skip
LARGE_B = {m: max(c["batches"]) for m, c in SCALES.items()}
FUNCTIONS = ("nt_xent_loss", "supcon_loss", "clip_loss", "siglip_loss")
DELTA = 2.0  # points of k-NN accuracy or retrieval@1: the minimal meaningful difference
RESOLVE = 3.0  # points: every method this close to chance or to 100 cannot be told apart
MOVED = 1.0  # SigLIP's learned bias must move at least this far from its start for its claim to count


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class _Data:
    """One seed's split: a pool of augmented training views, a k-NN bank, held-out queries."""

    def __init__(self, glyphs: G.Glyphs, seed: int):
        g = torch.Generator().manual_seed(seed)
        n_ids, n_faces = glyphs.images.shape[:2]
        faces = torch.randperm(n_faces, generator=g)
        train, held = faces[:TRAIN_FACES], faces[TRAIN_FACES:]
        self.n_ids, self.n_train = n_ids, len(train)
        clean = glyphs.images[:, train].flatten(0, 1)  # (ids * 12, S, S), identity-major
        self.pool = G.augment(clean, POOL, g).view(n_ids * len(train), POOL, -1)
        self.pool_labels = torch.arange(n_ids).repeat_interleave(len(train))
        self.bank = G.augment(clean, 1, g)
        self.query = G.augment(glyphs.images[:, held].flatten(0, 1), 1, g)
        self.query_labels = torch.arange(n_ids).repeat_interleave(len(held))
        self.seed = seed

    def views(self, steps: int, p: int, k: int):
        """Per step: image indices (P characters x K typefaces) and two different views of each."""
        g = torch.Generator().manual_seed(self.seed + 1)
        for _ in range(steps):
            ids = torch.randperm(self.n_ids, generator=g)[:p].repeat_interleave(k)
            face = torch.stack([torch.randperm(self.n_train, generator=g)[:k] for _ in range(p)]).flatten()
            img = ids * self.n_train + face
            a = torch.randint(0, POOL, (len(img),), generator=g)
            b = (a + torch.randint(1, POOL, (len(img),), generator=g)) % POOL  # a different view
            yield img, self.pool[img, a], self.pool[img, b]

    def pairs(self, steps: int, batch: int):
        """Per step: ``batch`` distinct training images, one pooled view each."""
        g = torch.Generator().manual_seed(self.seed + 2)
        n = len(self.pool)
        for _ in range(steps):
            img = torch.randperm(n, generator=g)[:batch]
            yield self.pool[img, torch.randint(0, POOL, (batch,), generator=g)]


def knn_accuracy(bank: torch.Tensor, bank_labels, query: torch.Tensor, query_labels) -> float:
    """Accuracy (%) of the nearest bank row (cosine) predicting each query's label."""
    s = F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T
    return 100.0 * float((bank_labels[s.argmax(1)] == query_labels).float().mean())


def retrieval_at_1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Retrieval@1 (%) of row-aligned pairs, the mean of both directions (a -> b and b -> a)."""
    s = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    right = torch.arange(len(a))
    return 50.0 * float((s.argmax(1) == right).float().mean() + (s.argmax(0) == right).float().mean())


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right halves of flattened ``SIZE x SIZE`` images: the two modalities of a pair."""
    img = x.view(-1, G.SIZE, G.SIZE)
    return img[:, :, : G.SIZE // 2].flatten(1), img[:, :, G.SIZE // 2 :].flatten(1)


def train_views(data: _Data, kind: str, temperature: float, cfg: dict, seed: int) -> float:
    """NT-Xent (``kind='nt_xent'``) or SupCon on two views; k-NN accuracy (%) on held-out typefaces."""
    from ... import functional as LF

    torch.manual_seed(seed)
    net = _mlp(G.SIZE * G.SIZE, cfg["hidden"], cfg["dim"])
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["steps"])
    p, k = cfg["pk"]
    for img, v1, v2 in data.views(cfg["steps"], p, k):
        e = net(torch.cat([v1, v2]))
        if kind == "nt_xent":
            loss = LF.nt_xent_loss(e, torch.arange(len(img)).repeat(2), temperature=temperature)
        else:
            y = data.pool_labels[img].repeat(2)
            loss = LF.supcon_loss(e, y, temperature=temperature, base_temperature=temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return knn_accuracy(net(data.bank), data.pool_labels, net(data.query), data.query_labels)


def train_pairs(data: _Data, kind: str, batch: int, cfg: dict, seed: int) -> tuple[float, float, float]:
    """CLIP (``kind='clip'``) or SigLIP on left/right halves: retrieval@1 (%) on held-out typefaces, and
    the learned logit scale t and bias b (0 for CLIP)."""
    from ... import functional as LF

    torch.manual_seed(seed)
    d_half = G.SIZE * G.SIZE // 2
    towers = nn.ModuleList([_mlp(d_half, cfg["hidden"], cfg["dim"]) for _ in range(2)])
    if kind == "clip":
        log_t = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        bias = torch.zeros(())
        extra = [log_t]
    else:
        log_t, bias = nn.Parameter(torch.tensor(math.log(10.0))), nn.Parameter(torch.tensor(-10.0))
        extra = [log_t, bias]
    opt = torch.optim.Adam([*towers.parameters(), *extra], lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["steps"])
    for x in data.pairs(cfg["steps"], batch):
        left, right = halves(x)
        a, b = F.normalize(towers[0](left), dim=1), F.normalize(towers[1](right), dim=1)
        if kind == "clip":
            loss = LF.clip_loss(a, b, logit_scale=log_t.exp().clamp(max=100.0))  # CLIP clips t at 100
        else:
            loss = LF.siglip_loss(a, b, logit_scale=log_t.exp(), logit_bias=bias)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        left, right = halves(data.query)
        r1 = retrieval_at_1(towers[0](left), towers[1](right))
        return r1, float(log_t.exp().clamp(max=100.0) if kind == "clip" else log_t.exp()), float(bias)


def _bars(ax, table: dict[str, list[float]], labels: dict[str, str], chance: float, title: str, ylabel: str):
    seed_bars(ax, table, [labels[k] for k in table])
    ax.axhline(chance, color="0.5", ls=":", lw=1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def run(out: Path, mode: str) -> StepResult:
    require(*FUNCTIONS)
    cfg = SCALES[mode]
    seeds, large = cfg["seeds"], LARGE_B[mode]
    glyphs = G.load_glyphs()
    knn: dict[str, list[float]] = {}
    r1: dict[tuple[str, int], list[float]] = {}
    learned: dict[tuple[str, int], list[tuple[float, float]]] = {}
    raw: list[float] = []
    n_pairs = 0
    for s in range(seeds):
        data = _Data(glyphs, seed=s)
        n_pairs = len(data.query)
        raw.append(knn_accuracy(data.bank, data.pool_labels, data.query, data.query_labels))
        for t in cfg["temperatures"]:
            knn.setdefault(f"nt_xent {t:g}", []).append(train_views(data, "nt_xent", t, cfg, s))
        knn.setdefault(f"supcon {LOW_T:g}", []).append(train_views(data, "supcon", LOW_T, cfg, s))
        for kind, batches in (("clip", cfg["batches"]), ("siglip", cfg["siglip_batches"])):
            for b in batches:
                r, t, bias = train_pairs(data, kind, b, cfg, s)
                r1.setdefault((kind, b), []).append(r)
                learned.setdefault((kind, b), []).append((t, bias))
    n_ids = glyphs.images.shape[0]
    chance_knn, chance_r1 = 100.0 / n_ids, 100.0 / n_pairs
    low, high, sup = f"nt_xent {LOW_T:g}", f"nt_xent {HIGH_T:g}", f"supcon {LOW_T:g}"
    m = {k: mean(v) for k, v in knn.items()}
    mr = {k: mean(v) for k, v in r1.items()}
    t_clip = mean([t for t, _ in learned[("clip", SMALL_B)]])
    t_sig = mean([t for t, _ in learned[("siglip", SMALL_B)]])
    b_sig = mean([b for _, b in learned[("siglip", SMALL_B)]])

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    temps = list(cfg["temperatures"])
    ivs = [paired_interval(knn[f"nt_xent {t:g}"]) for t in temps]
    a1.errorbar(
        temps,
        [iv.mean for iv in ivs],
        yerr=None if seeds < 2 else [[iv.mean - iv.low for iv in ivs], [iv.high - iv.mean for iv in ivs]],
        marker="o",
        capsize=3,
        label="NT-Xent (views of an image)",
    )
    iv = paired_interval(knn[sup])
    a1.errorbar(
        [LOW_T],
        [iv.mean],
        yerr=None if seeds < 2 else [[iv.mean - iv.low], [iv.high - iv.mean]],
        marker="s",
        capsize=3,
        ls="none",
        color=PALETTE[1],
        label="SupCon (characters as labels)",
    )
    a1.axhline(mean(raw), color=PALETTE[6], ls="--", lw=1, label="raw pixels")
    a1.axhline(chance_knn, color="0.5", ls=":", lw=1, label="chance")
    a1.set_xscale("log")
    a1.set_xlabel("temperature")
    a1.set_ylabel("k-NN accuracy on unseen typefaces (%)")
    a1.set_title("two views: k-NN accuracy against temperature")
    a1.legend(fontsize=7)
    for j, (kind, label) in enumerate((("clip", "CLIP"), ("siglip", "SigLIP"))):
        bs = sorted(b for (k, b) in r1 if k == kind)
        ivs = [paired_interval(r1[(kind, b)]) for b in bs]
        a2.errorbar(
            bs,
            [iv.mean for iv in ivs],
            yerr=None if seeds < 2 else [[iv.mean - iv.low for iv in ivs], [iv.high - iv.mean for iv in ivs]],
            marker="o",
            capsize=3,
            color=PALETTE[2 + j],
            label=label,
        )
    a2.axhline(chance_r1, color="0.5", ls=":", lw=1, label="chance")
    a2.set_xscale("log", base=2)
    a2.set_xlabel(f"batch size ({cfg['steps']} steps each)")
    a2.set_ylabel("retrieval@1 on unseen typefaces (%)")
    a2.set_title("pairs: left half <-> right half")
    a2.legend(fontsize=7)
    fname = save(fig, out, "contrastive_quality.png")
    figures = {"quality": fname}
    captions = {
        "quality": f"Mean over {seeds} seeds with the 95% t interval of the mean. Left: k-NN accuracy of glyph "
        f"characters in 4 typefaces never trained on ({n_ids} characters, chance {chance_knn:.2g}%), NT-Xent "
        f"against its temperature and SupCon at {LOW_T:g}; the dashed line is k-NN on raw pixels. Right: "
        f"retrieval@1 of {n_pairs} held-out left/right half pairs (chance {chance_r1:.2g}%) against the batch size."
    }

    def res(scores: dict[str, float], chance: float, metric: str) -> Resolution:
        return Resolution(scores, chance, 100.0, RESOLVE, metric)

    def d(a: list[float], b: list[float]) -> list[float]:
        return [p - q for p, q in zip(a, b)]

    kn = "k-NN accuracy (%)"
    rt = "retrieval@1 (%)"
    claims = [
        Claim.measure(
            id="contrastive-ntxent-low-temperature",
            statement=f"NT-Xent learns better representations at a low temperature ({LOW_T:g}) than at {HIGH_T:g}.",
            source="Chen et al. 2020 (SimCLR), Table 5",
            losses=("nt_xent_loss",),
            effect_name=f"k-NN accuracy at temperature {LOW_T:g} minus at {HIGH_T:g}",
            unit="points",
            delta=DELTA,
            effects=d(knn[low], knn[high]),
            resolution=res({f"NT-Xent {LOW_T:g}": m[low], f"NT-Xent {HIGH_T:g}": m[high]}, chance_knn, kn),
            evidence=f"mean k-NN accuracy: NT-Xent at {LOW_T:g} {m[low]:.1f}%, at {HIGH_T:g} {m[high]:.1f}% (raw pixels {mean(raw):.1f}%).",
            figure=fname,
            experiment="contrastive",
        ),
        Claim.measure(
            id="contrastive-supcon-beats-ntxent",
            statement="With labels, SupCon beats NT-Xent at the same temperature.",
            source="Khosla et al. 2020",
            losses=("supcon_loss", "nt_xent_loss"),
            effect_name=f"SupCon minus NT-Xent k-NN accuracy, both at temperature {LOW_T:g}",
            unit="points",
            delta=DELTA,
            effects=d(knn[sup], knn[low]),
            resolution=res({"SupCon": m[sup], "NT-Xent": m[low]}, chance_knn, kn),
            evidence=f"mean k-NN accuracy: SupCon {m[sup]:.1f}%, NT-Xent {m[low]:.1f}% (temperature {LOW_T:g}).",
            figure=fname,
            experiment="contrastive",
        ),
        Claim.measure(
            id="contrastive-clip-batch",
            statement=f"CLIP's retrieval improves with the batch size ({large} against {SMALL_B}, same steps).",
            source="Radford et al. 2021; Chen et al. 2020",
            losses=("clip_loss",),
            effect_name=f"CLIP retrieval@1 at batch {large} minus at batch {SMALL_B}",
            unit="points",
            delta=DELTA,
            effects=d(r1[("clip", large)], r1[("clip", SMALL_B)]),
            resolution=res(
                {f"CLIP {large}": mr[("clip", large)], f"CLIP {SMALL_B}": mr[("clip", SMALL_B)]},
                chance_r1,
                rt,
            ),
            evidence=f"mean retrieval@1: CLIP at batch {large} {mr[('clip', large)]:.1f}%, at {SMALL_B} {mr[('clip', SMALL_B)]:.1f}%.",
            figure=fname,
            experiment="contrastive",
        ),
        Claim.measure(
            id="contrastive-siglip-small-batch",
            statement=f"SigLIP matches or beats CLIP at a small batch ({SMALL_B}).",
            source="Zhai et al. 2023",
            losses=("siglip_loss", "clip_loss"),
            effect_name=f"SigLIP minus CLIP retrieval@1 at batch {SMALL_B}",
            unit="points",
            delta=DELTA,
            kind=NON_INFERIORITY,
            effects=d(r1[("siglip", SMALL_B)], r1[("clip", SMALL_B)]),
            resolution=Resolution(
                {"SigLIP": mr[("siglip", SMALL_B)], "CLIP": mr[("clip", SMALL_B)]},
                chance_r1,
                100.0,
                RESOLVE,
                rt,
                invalid=None
                if abs(b_sig + 10.0) >= MOVED
                else f"SigLIP's learned bias stayed at its initialisation (moved {fmt(abs(b_sig + 10.0))} < {MOVED:g} from -10 "
                f"in {cfg['steps']} steps): the run tests SigLIP untrained in b, not the trained loss the claim is about",
            ),
            evidence=f"mean retrieval@1 at batch {SMALL_B}: SigLIP {mr[('siglip', SMALL_B)]:.1f}%, CLIP {mr[('clip', SMALL_B)]:.1f}%; "
            f"learned at the end: CLIP t = {fmt(t_clip)}, SigLIP t = {fmt(t_sig)} and b = {fmt(b_sig)} (initialised at 14.3, 10 and -10, "
            f"the papers' values; {cfg['steps']} steps at lr {LR:g}): SigLIP's bias moved by {fmt(abs(b_sig + 10.0))}"
            + (
                f"; with t + b = {fmt(t_sig + b_sig)} < 0 every pair's logit t cos + b is negative, so no positive's "
                "sigmoid passes 0.5"
                if t_sig + b_sig < 0
                else ""
            )
            + ". The paper trains for many thousands of steps: this measures SigLIP near its initialisation.",
            figure=fname,
            experiment="contrastive",
        ),
    ]
    advice = _advice(claims, m, mr, seeds)
    return StepResult(
        key="contrastive",
        title=TITLE,
        kind="experiment",
        figures=figures,
        captions=captions,
        metrics={
            "knn_accuracy": knn,
            "raw_pixel_knn": raw,
            "retrieval_at_1": {f"{k} {b}": v for (k, b), v in r1.items()},
            "learned_scale_bias": {f"{k} {b}": v for (k, b), v in learned.items()},
            "chance_knn": chance_knn,
            "chance_retrieval": chance_r1,
            "seeds": seeds,
        },
        claims=claims,
        advice=advice,
        setup=f"Data: the {n_ids} glyph identities (characters) of the faces experiment, each drawn by {len(G.TYPEFACES)} "
        f"typefaces shipped with matplotlib; each of {seeds} seeds draws {TRAIN_FACES} typefaces for training and holds "
        f"out the other {len(G.TYPEFACES) - TRAIN_FACES} (unseen styles), a pool of {POOL} augmented views of each training "
        f"image, an initialisation and a batch order, the same for every loss of a claim. Two views: a network "
        f"256-{cfg['hidden']}-{cfg['dim']}, {cfg['steps']} Adam steps (lr {LR:g}, cosine schedule) on batches of "
        f"{cfg['pk'][0]} characters x {cfg['pk'][1]} typefaces, two different views of each image; NT-Xent's labels pair "
        f"the views of an image, SupCon's are the characters (base temperature = temperature); k-NN accuracy (k = 1, "
        f"cosine) of the held-out typefaces' images against the training typefaces' (chance {chance_knn:.2g}%; raw "
        f"pixels {mean(raw):.1f}%). Pairs: left and right halves of an image through two towers 128-{cfg['hidden']}-"
        f"{cfg['dim']} (L2-normalised), {cfg['steps']} steps at each batch size; CLIP learns log t from log(1/0.07) "
        f"(t at most 100), SigLIP log t from log 10 and b from -10; retrieval@1 among the {n_pairs} held-out pairs, "
        f"both directions averaged (chance {chance_r1:.2g}%). A larger batch also sees more pairs at the same steps.",
        headline=f"k-NN ({seeds} seeds): NT-Xent {LOW_T:g} {m[low]:.1f}%, {HIGH_T:g} {m[high]:.1f}%, SupCon {m[sup]:.1f}%; "
        f"R@1: CLIP {SMALL_B} {mr[('clip', SMALL_B)]:.1f}%, {large} {mr[('clip', large)]:.1f}%, SigLIP {SMALL_B} {mr[('siglip', SMALL_B)]:.1f}%",
    )


def _advice(claims: list[Claim], m: dict, mr: dict, seeds: int) -> dict[str, dict[str, list[str]]]:
    """When to use / when not, from the claims' verdicts and the measured scores."""
    by = {c.id: c for c in claims}
    advice: dict[str, dict[str, list[str]]] = {f: {"use": [], "avoid": []} for f in FUNCTIONS}

    def put(fn: str, claim: str, good: str, bad: str) -> None:
        c = by[claim]
        line = f" ({c.interval_text()})"
        if c.verdict == "held":
            advice[fn]["use"].append(good + line + ".")
        elif c.verdict == "did not hold":
            advice[fn]["avoid"].append(bad + line + ".")

    put(
        "nt_xent_loss",
        "contrastive-ntxent-low-temperature",
        f"Without labels: two augmented views at a low temperature ({LOW_T:g}) gave better k-NN accuracy than {HIGH_T:g}",
        f"A low temperature ({LOW_T:g}) did not beat {HIGH_T:g} on k-NN accuracy here",
    )
    put(
        "supcon_loss",
        "contrastive-supcon-beats-ntxent",
        "With class labels: better k-NN accuracy than NT-Xent at the same temperature",
        "With class labels it did not beat NT-Xent here",
    )
    put(
        "clip_loss",
        "contrastive-clip-batch",
        "Paired data: retrieval improved with the batch size; use the largest batch that fits",
        "Retrieval did not improve with the batch size here",
    )
    put(
        "siglip_loss",
        "contrastive-siglip-small-batch",
        f"Paired data at a small batch ({SMALL_B}): not worse than CLIP",
        f"At a small batch ({SMALL_B}) it was worse than CLIP here",
    )
    return advice


__all__ = ["TITLE", "SCALES", "knn_accuracy", "retrieval_at_1", "run", "train_pairs", "train_views"]
