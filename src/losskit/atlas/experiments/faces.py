"""Faces: scikit-learn's handwritten digits as identities, 2-D and 3-D embeddings, open-set verification.

Digits 0-6 are the training identities; digits 7-9 never appear in training and serve as the open
set. A small network (64-128-64-D) is trained with each loss; the feature distributions are drawn as
in the papers (2-D plane, 3-D sphere), and verification accuracy is measured on pairs of held-out
digits: same identity or not, decided by a threshold chosen on one half of the pairs and scored on
the other half. The similarity is the cosine for every loss except contrastive (negative Euclidean
distance, the distance it is trained on).
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .. import StepResult, require
from .._plotting import PALETTE, pyplot, save
from ..verdicts import Claim, by_wins, fmt

TITLE = "Faces: digits as identities, open-set verification"
TRAIN_IDS = tuple(range(7))
OPEN_IDS = (7, 8, 9)
SCALE = 16.0  # s for the normalised losses: the papers' s = 64 is for 512-D features, too steep in 2-D/3-D
CENTER_WEIGHT = 0.1  # lambda of center loss, added to softmax
SCALES = {
    "tiny": {"dims": (2,), "seeds": 1, "epochs": 4},
    "quick": {"dims": (2, 3), "seeds": 1, "epochs": 15},
    "full": {"dims": (2, 3), "seeds": 3, "epochs": 120},
}
LOSSES = ("softmax", "center", "sphereface", "cosface", "arcface", "contrastive", "triplet")
FUNCTIONS = {
    "softmax": ("cross_entropy",),
    "center": ("cross_entropy", "center_loss"),
    "sphereface": ("sphereface_loss", "sphereface_lambda"),
    "cosface": ("cosface_loss",),
    "arcface": ("arcface_loss",),
    "contrastive": ("batch_contrastive_loss",),
    "triplet": ("batch_triplet_loss",),
}
LABELS = {
    "softmax": "softmax",
    "center": "softmax + center",
    "sphereface": "SphereFace (m=4)",
    "cosface": "CosFace (m=0.35)",
    "arcface": "ArcFace (m=0.5)",
    "contrastive": "contrastive (m=1)",
    "triplet": "triplet (batch-hard, m=0.2)",
}
CLASSIFIER = ("softmax", "center", "sphereface", "cosface", "arcface")
MARGIN = ("sphereface", "cosface", "arcface")


def _data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(d.target)
    train = torch.isin(y, torch.tensor(TRAIN_IDS))
    return x[train], y[train], x[~train], y[~train]


class _Net(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, dim)
        )

    def forward(self, x):
        return self.body(x)


def _objective(kind: str, dim: int):
    """(extra parameters, loss(emb, y, step)) for one loss."""
    from ... import functional as LF

    c = len(TRAIN_IDS)
    head = nn.Linear(dim, c)
    centers = nn.Parameter(torch.randn(c, dim) * 0.1)
    w = nn.Parameter(nn.init.xavier_uniform_(torch.empty(c, dim)))

    def cosine(emb):
        return nn.functional.normalize(emb, dim=1) @ nn.functional.normalize(w, dim=1).T  # (N, C)

    if kind == "softmax":
        return list(head.parameters()), lambda e, y, t: LF.cross_entropy(head(e), y)
    if kind == "center":
        return [
            *head.parameters(),
            centers,
        ], lambda e, y, t: LF.cross_entropy(head(e), y) + CENTER_WEIGHT * (LF.center_loss(e, y, centers))
    if kind == "sphereface":
        return [w], lambda e, y, t: LF.sphereface_loss(
            cosine(e), y, scale=e.norm(dim=1), margin=4, lambda_=LF.sphereface_lambda(t)
        )
    if kind == "cosface":
        return [w], lambda e, y, t: LF.cosface_loss(cosine(e), y, scale=SCALE, margin=0.35)
    if kind == "arcface":
        return [w], lambda e, y, t: LF.arcface_loss(cosine(e), y, scale=SCALE, margin=0.5)
    if kind == "contrastive":
        return [], lambda e, y, t: LF.batch_contrastive_loss(e, y, margin=1.0)
    if kind == "triplet":
        return [], lambda e, y, t: LF.batch_triplet_loss(nn.functional.normalize(e, dim=1), y, margin=0.2)
    raise ValueError(kind)


def _train(kind: str, dim: int, x, y, epochs: int, seed: int):
    torch.manual_seed(seed)
    net = _Net(dim)
    extra, loss_fn = _objective(kind, dim)
    opt = torch.optim.Adam([*net.parameters(), *extra], lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    batch, step = 128, 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i : i + batch]
            loss = loss_fn(net(x[idx]), y[idx], step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    net.eval()
    return net


def _similarity(kind: str, e):
    if kind == "contrastive":
        return -torch.cdist(e, e)
    e = nn.functional.normalize(e, dim=1)
    return e @ e.T


def _verification(kind: str, e, y, seed: int) -> float:
    """Accuracy of same/different decisions on balanced pairs; threshold fitted on half of them."""
    sim = _similarity(kind, e)
    i, j = torch.triu_indices(len(y), len(y), 1)
    s, same = sim[i, j], y[i] == y[j]
    g = torch.Generator().manual_seed(seed)
    pos, neg = same.nonzero().squeeze(1), (~same).nonzero().squeeze(1)
    k = min(len(pos), len(neg), 20000)
    pick = torch.cat(
        [pos[torch.randperm(len(pos), generator=g)[:k]], neg[torch.randperm(len(neg), generator=g)[:k]]]
    )
    pick = pick[torch.randperm(len(pick), generator=g)]
    half = len(pick) // 2
    fit, test = pick[:half], pick[half:]
    order = torch.argsort(s[fit], descending=True)
    lab = same[fit][order].float()
    # threshold after position t: the first t pairs are called "same"
    correct = torch.cat([torch.zeros(1), lab.cumsum(0)]) + torch.cat(
        [torch.tensor([(1 - lab).sum()]), (1 - lab).sum() - (1 - lab).cumsum(0)]
    )
    t = int(correct.argmax())
    sf = s[fit][order]
    thr = float("inf") if t == 0 else float(sf[t - 1] if t == len(sf) else (sf[t - 1] + sf[t]) / 2)
    return float(((s[test] >= thr) == same[test]).float().mean())


def _compactness(e, y) -> float:
    """Mean angle of a feature to its class's mean direction over the smallest angle between class means."""
    e = nn.functional.normalize(e, dim=1)
    means = torch.stack([nn.functional.normalize(e[y == c].mean(0), dim=0) for c in TRAIN_IDS])
    intra = torch.acos((e * means[y]).sum(1).clamp(-1, 1)).mean()
    cos = (means @ means.T).clamp(-1, 1)
    inter = torch.acos(cos[~torch.eye(len(means), dtype=torch.bool)]).min()
    return float(intra / inter)


def run(out: Path, mode: str) -> StepResult:
    require(*{f for fs in FUNCTIONS.values() for f in fs})
    cfg = SCALES[mode]
    dims, seeds, epochs = cfg["dims"], cfg["seeds"], cfg["epochs"]
    x, y, xo, yo = _data()
    acc = {(k, d): [] for k in LOSSES for d in dims}
    comp = {(k, d): [] for k in LOSSES for d in dims}
    feats = {}
    for s in range(seeds):
        for d in dims:
            for k in LOSSES:
                net = _train(k, d, x, y, epochs, seed=s)
                with torch.no_grad():
                    e, eo = net(x), net(xo)
                acc[k, d].append(_verification(k, eo, yo, seed=s))
                comp[k, d].append(_compactness(e, y))
                if s == 0:
                    feats[k, d] = (e, eo)
    acc_m = {f"{k}@{d}": sum(v) / len(v) for (k, d), v in acc.items()}
    comp_m = {f"{k}@{d}": sum(v) / len(v) for (k, d), v in comp.items()}

    plt = pyplot()
    figures, captions = {}, {}
    for d in dims:
        fig = plt.figure(figsize=(12.5, 3.7))
        for i, k in enumerate(LOSSES):
            e, eo = feats[k, d]
            if d == 3:
                ax = fig.add_subplot(1, len(LOSSES), i + 1, projection="3d")
                e, eo = nn.functional.normalize(e, dim=1), nn.functional.normalize(eo, dim=1)
            else:
                ax = fig.add_subplot(1, len(LOSSES), i + 1)
            for c in TRAIN_IDS:
                pts = e[y == c][:80]
                ax.scatter(*pts.T.numpy(), s=3, color=PALETTE[c % len(PALETTE)], alpha=0.7)
            ax.scatter(*eo[:120].T.numpy(), s=4, color="black", marker="x", alpha=0.35, linewidths=0.6)
            ax.set_title(f"{LABELS[k]}\nverif. {100 * acc_m[f'{k}@{d}']:.1f}%", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            if d == 3:
                ax.set_zticks([])
            else:
                ax.set_aspect("equal", adjustable="datalim")
        figures[f"features{d}d"] = save(fig, out, f"faces_features_{d}d.png")
        captions[f"features{d}d"] = (
            f"{d}-D features of the training identities (colours, digits 0-6) and of the held-out digits 7-9 "
            f"(black crosses){' on the unit sphere' if d == 3 else ''}, with open-set verification accuracy."
        )
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    width = 0.8 / len(dims)
    for j, d in enumerate(dims):
        vals = [100 * acc_m[f"{k}@{d}"] for k in LOSSES]
        ax.bar(
            [i + (j - (len(dims) - 1) / 2) * width for i in range(len(LOSSES))],
            vals,
            width=width,
            label=f"{d}-D",
        )
    ax.set_xticks(range(len(LOSSES)), [LABELS[k].split(" (")[0] for k in LOSSES], rotation=20)
    ax.set_ylabel("verification accuracy (%)")
    ax.set_ylim(50, 100)
    ax.set_title("open-set verification on digits 7-9 (never seen in training)")
    ax.legend()
    figures["verification"] = save(fig, out, "faces_verification.png")
    captions["verification"] = "Open-set verification accuracy per loss and embedding dimension."

    def diffs(a: str, b: str, table) -> list[float]:
        return [table[f"{a}@{d}"] - table[f"{b}@{d}"] for d in dims]

    dim_txt = " and ".join(f"{d}-D" for d in dims)
    claims = [
        Claim(
            id="faces-arcface-beats-softmax",
            statement="ArcFace separates identities better than softmax.",
            source="Deng et al. 2019",
            losses=("arcface_loss",),
            rule=f"open-set verification accuracy, ArcFace minus softmax in {dim_txt}: held if ahead by more than "
            "1 point in at least half and behind in none; did not hold if ahead in none",
            verdict=by_wins(diffs("arcface", "softmax", acc_m), margin=0.01),
            evidence="; ".join(
                f"{d}-D: {100 * acc_m[f'arcface@{d}']:.1f}% vs {100 * acc_m[f'softmax@{d}']:.1f}%"
                for d in dims
            )
            + ".",
            figure=figures["verification"],
            experiment="faces",
        ),
        Claim(
            id="faces-arcface-beats-cosface-sphereface",
            statement="ArcFace beats CosFace and SphereFace.",
            source="Deng et al. 2019",
            losses=("arcface_loss", "cosface_loss", "sphereface_loss"),
            rule="verification accuracy, ArcFace minus the better of CosFace and SphereFace, margin 1 point, as above",
            verdict=by_wins(
                [acc_m[f"arcface@{d}"] - max(acc_m[f"cosface@{d}"], acc_m[f"sphereface@{d}"]) for d in dims],
                margin=0.01,
            ),
            evidence="; ".join(
                f"{d}-D: ArcFace {100 * acc_m[f'arcface@{d}']:.1f}%, CosFace {100 * acc_m[f'cosface@{d}']:.1f}%, "
                f"SphereFace {100 * acc_m[f'sphereface@{d}']:.1f}%"
                for d in dims
            )
            + ".",
            figure=figures["verification"],
            experiment="faces",
        ),
        Claim(
            id="faces-margins-compact",
            statement="Angular margins make each identity's features more compact than softmax does.",
            source="Liu et al. 2017; Wang et al. 2018; Deng et al. 2019",
            losses=("sphereface_loss", "cosface_loss", "arcface_loss"),
            rule="compactness = mean angle to the class's mean direction / smallest angle between class means "
            "(training identities); softmax's minus each margin loss's, per dimension: held if lower by more "
            "than 0.02 in at least half of the cases and higher in none",
            verdict=by_wins([v for m in MARGIN for v in diffs("softmax", m, comp_m)], margin=0.02),
            evidence="compactness "
            + "; ".join(
                f"{d}-D: softmax {fmt(comp_m[f'softmax@{d}'])}, "
                + ", ".join(f"{m} {fmt(comp_m[f'{m}@{d}'])}" for m in MARGIN)
                for d in dims
            )
            + " (lower is more compact).",
            figure=figures[f"features{dims[-1]}d"],
            experiment="faces",
        ),
        Claim(
            id="faces-center-compact",
            statement="Center loss makes features more compact than softmax alone.",
            source="Wen et al. 2016",
            losses=("center_loss",),
            rule="compactness of softmax minus softmax + center loss, per dimension, margin 0.02, as above",
            verdict=by_wins(diffs("softmax", "center", comp_m), margin=0.02),
            evidence="compactness "
            + "; ".join(
                f"{d}-D: softmax {fmt(comp_m[f'softmax@{d}'])}, + center {fmt(comp_m[f'center@{d}'])}"
                for d in dims
            )
            + ".",
            figure=figures[f"features{dims[0]}d"],
            experiment="faces",
        ),
        Claim(
            id="faces-metric-open-set",
            statement="Losses trained on distances (contrastive, triplet) generalise to unseen identities better "
            "than softmax.",
            source="Sun et al. 2014; Schroff et al. 2015",
            losses=(
                "batch_contrastive_loss",
                "batch_triplet_loss",
                "contrastive_loss",
                "triplet_margin_loss",
            ),
            rule="verification accuracy of contrastive and of triplet minus softmax, each dimension, margin 1 point",
            verdict=by_wins(
                diffs("contrastive", "softmax", acc_m) + diffs("triplet", "softmax", acc_m), margin=0.01
            ),
            evidence="; ".join(
                f"{d}-D: contrastive {100 * acc_m[f'contrastive@{d}']:.1f}%, triplet {100 * acc_m[f'triplet@{d}']:.1f}%, "
                f"softmax {100 * acc_m[f'softmax@{d}']:.1f}%"
                for d in dims
            )
            + ".",
            figure=figures["verification"],
            experiment="faces",
        ),
    ]
    fn_main = {
        "softmax": "cross_entropy",
        "center": "center_loss",
        "sphereface": "sphereface_loss",
        "cosface": "cosface_loss",
        "arcface": "arcface_loss",
        "contrastive": "batch_contrastive_loss",
        "triplet": "batch_triplet_loss",
    }
    d_hi = dims[-1]
    best = max(LOSSES, key=lambda k: acc_m[f"{k}@{d_hi}"])
    advice: dict[str, dict[str, list[str]]] = {}
    for k in LOSSES:
        a = advice.setdefault(fn_main[k], {"use": [], "avoid": []})
        v = acc_m[f"{k}@{d_hi}"]
        if acc_m[f"{best}@{d_hi}"] - v <= 0.01:
            a["use"].append(
                f"Open-set verification: {100 * v:.1f}% on unseen digits in {d_hi}-D, the best measured or within 1 point."
            )
        elif acc_m[f"{best}@{d_hi}"] - v > 0.05:
            a["avoid"].append(
                f"Open-set verification in low dimension: {100 * v:.1f}% vs {100 * acc_m[f'{best}@{d_hi}']:.1f}% for {LABELS[best]}."
            )
    return StepResult(
        key="faces",
        title=TITLE,
        kind="experiment",
        figures=figures,
        captions=captions,
        metrics={"verification_accuracy": acc_m, "compactness": comp_m, "dims": list(dims)},
        claims=claims,
        advice=advice,
        setup=f"scikit-learn digits: identities 0-6 for training ({len(y)} images), 7-9 held out ({len(yo)} images); "
        f"MLP 64-128-64-D, D in {list(dims)}; {epochs} epochs of Adam (lr 3e-3, batch 128); normalised losses at "
        f"s = {SCALE:g} (SphereFace: the feature norm, with the authors' lambda annealing); center loss weight "
        f"{CENTER_WEIGHT}; {seeds} seed{'s' * (seeds > 1)}; verification on up to 20000 balanced pairs of held-out "
        "digits, threshold fitted on half, accuracy on the other half.",
        headline=f"verification ({d_hi}-D): "
        + ", ".join(f"{LABELS[k].split(' (')[0]} {100 * acc_m[f'{k}@{d_hi}']:.1f}%" for k in LOSSES),
    )
