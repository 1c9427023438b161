"""Class imbalance, from 1:10 to 1:1000: cross-entropy, alpha-balanced CE, focal loss and GHM-C.

The data are scikit-learn's handwritten digits turned into a dense-detection problem: each 8x8 digit
is placed on a 24x24 canvas with faint noise and every 8x8 window of the canvas is a candidate, as
anchors are in a detector. A window centred exactly on a "3" is a positive; windows one pixel off a
"3" are ignored (as detectors ignore anchors between the IoU thresholds); every other window (other
digits, off-centre crops, empty background) is a negative. Most negatives are easy background. The
images are split 50/50 into training and held-out canvases, and at each ratio 1:r we sample r
negatives per positive from each side. Average precision is measured on the held-out side.
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import StepResult, require
from .._plotting import pyplot, save
from ..verdicts import Claim, by_threshold, by_wins, fmt

TITLE = "Class imbalance 1:10 to 1:1000 (digits as a dense detector)"
POSITIVE_DIGIT = 3
CANVAS, WIN, PAD = 24, 8, 8
EASY = 0.1  # gradient norm g = |p - y| below this: an easy example (GHM's first bin)
PRIOR = 0.01  # bias initialised so that p = 0.01 everywhere (Lin et al. 2017, section 4.1)

SCALES = {
    "tiny": {"ratios": (10, 100), "seeds": 1, "steps": 60, "max_pos": 30, "hidden": 0, "gammas": (2.0,)},
    "quick": {
        "ratios": (10, 100, 1000),
        "seeds": 1,
        "steps": 150,
        "max_pos": 40,
        "hidden": 0,
        "gammas": (0.5, 2.0, 5.0),
    },
    "full": {
        "ratios": (10, 30, 100, 300, 1000),
        "seeds": 3,
        "steps": 400,
        "max_pos": 90,
        "hidden": 32,
        "gammas": (0.5, 1.0, 2.0, 5.0),
    },
}
# alpha paired with gamma as in the focal-loss paper's Table 1b
ALPHA_FOR_GAMMA = {0.5: 0.5, 1.0: 0.25, 2.0: 0.25, 5.0: 0.25}


def _losses(gammas):
    from ... import functional as LF

    def per_pos(loss, y):  # the paper normalises the summed loss by the number of positives
        return loss / y.sum().clamp_min(1.0)

    losses = {
        "CE": lambda z, y: per_pos(LF.binary_cross_entropy_with_logits(z, y, reduction="sum"), y),
        "alpha-CE (0.75)": lambda z, y: per_pos(
            LF.sigmoid_focal_loss(z, y, gamma=0.0, alpha=0.75, reduction="sum"), y
        ),
    }
    for gm in gammas:
        a = ALPHA_FOR_GAMMA[gm]
        losses[f"focal g={gm:g}"] = lambda z, y, gm=gm, a=a: per_pos(
            LF.sigmoid_focal_loss(z, y, gamma=gm, alpha=a, reduction="sum"), y
        )
    # GHM-C normalises by its own density weights; its 'mean' is the authors' normalisation
    losses["GHM-C"] = lambda z, y: LF.ghmc_loss(z, y, reduction="mean")
    return losses


def _canvases(seed: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.as_tensor(d.images, dtype=torch.float32) / 16.0  # (n, 8, 8)
    lab = torch.as_tensor(d.target)
    g = torch.Generator().manual_seed(seed)
    canv = torch.randn(len(img), CANVAS, CANVAS, generator=g) * 0.03
    canv[:, PAD : PAD + WIN, PAD : PAD + WIN] += img
    perm = torch.randperm(len(img), generator=g)
    half = len(img) // 2
    return canv, lab, perm[:half], perm[half:], g


def _windows(canv, lab, images, ratio, max_pos, g):
    """Positives and ``ratio`` x as many sampled negatives from the canvases ``images``: (x (n, 64), y (n,))."""
    off = torch.arange(-PAD, PAD + 1)
    dy, dx = torch.meshgrid(off, off, indexing="ij")
    dy, dx = dy.reshape(-1), dx.reshape(-1)
    cheb = torch.maximum(dy.abs(), dx.abs())
    is_pos_img = lab[images] == POSITIVE_DIGIT
    pos_img = images[is_pos_img]
    # negatives pool: every (image, offset) except positives and the ignored 1-pixel ring around them
    keep = torch.ones(len(images), len(dy), dtype=torch.bool)
    keep[is_pos_img] = cheb > 1
    pool_img, pool_off = keep.nonzero(as_tuple=True)
    n_pos = min(len(pos_img), max_pos, len(pool_img) // ratio)
    pos_pick = pos_img[torch.randperm(len(pos_img), generator=g)[:n_pos]]
    neg_pick = torch.randperm(len(pool_img), generator=g)[: ratio * n_pos]
    img_idx = torch.cat([pos_pick, images[pool_img[neg_pick]]])
    oy = torch.cat([torch.zeros(n_pos, dtype=torch.long), dy[pool_off[neg_pick]]])
    ox = torch.cat([torch.zeros(n_pos, dtype=torch.long), dx[pool_off[neg_pick]]])
    r = (PAD + oy)[:, None] + torch.arange(WIN)
    c = (PAD + ox)[:, None] + torch.arange(WIN)
    x = canv[img_idx[:, None, None], r[:, :, None], c[:, None, :]].reshape(len(img_idx), -1)
    y = torch.cat([torch.ones(n_pos), torch.zeros(ratio * n_pos)])
    return x, y


def _model(hidden: int, seed: int):
    torch.manual_seed(seed)
    bias = -math.log((1 - PRIOR) / PRIOR)
    if hidden:
        net = torch.nn.Sequential(
            torch.nn.Linear(WIN * WIN, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )
    else:
        net = torch.nn.Linear(WIN * WIN, 1)
        torch.nn.init.zeros_(net.weight)
    torch.nn.init.constant_(net[-1].bias if hidden else net.bias, bias)
    return net


def _train(loss_fn, x, y, hidden, steps, seed, snapshot_at):
    net = _model(hidden, seed)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    snap = None
    for t in range(steps):
        z = net(x).squeeze(1)
        if t == snapshot_at:
            snap = z.detach().clone()
        loss = loss_fn(z, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, snap


def _grad_shares(loss_fn, z, y, edges):
    """Each g-bin's share of the summed |dL/dz| under ``loss_fn`` at logits ``z``."""
    z = z.double().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(z, y.double()), z)
    g = (torch.sigmoid(z) - y).abs().detach()
    idx = torch.bucketize(g, edges[1:-1])
    sums = torch.bincount(idx, weights=grad.abs(), minlength=len(edges) - 1)
    easy_neg = grad.abs()[(g < EASY) & (y == 0)].sum()
    return (sums / sums.sum()).tolist(), float(easy_neg / grad.abs().sum())


def run(out: Path, mode: str) -> StepResult:
    require("binary_cross_entropy_with_logits", "sigmoid_focal_loss", "ghmc_loss")
    from sklearn.metrics import average_precision_score

    cfg = SCALES[mode]
    ratios, seeds, steps, hidden = cfg["ratios"], cfg["seeds"], cfg["steps"], cfg["hidden"]
    losses = _losses(cfg["gammas"])
    names = list(losses)
    ap = {n: torch.zeros(len(ratios), seeds) for n in names}
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    shares, easy_share, g_counts, sizes = {}, {}, None, {}
    for s in range(seeds):
        canv, lab, tr, te, g = _canvases(seed=s)
        for i, ratio in enumerate(ratios):
            x, y = _windows(canv, lab, tr, ratio, cfg["max_pos"], g)
            xt, yt = _windows(canv, lab, te, ratio, cfg["max_pos"], g)
            sizes[ratio] = (int(y.sum()), len(y), int(yt.sum()), len(yt))
            for n in names:
                net, snap = _train(losses[n], x, y, hidden, steps, seed=s, snapshot_at=steps // 4)
                with torch.no_grad():
                    score = net(xt).squeeze(1)
                ap[n][i, s] = average_precision_score(yt.numpy(), score.numpy())
                if n == "CE" and s == 0 and i == len(ratios) - 1:
                    # gradient distribution during CE training (a quarter of the way) at the highest ratio
                    gn = (torch.sigmoid(snap.double()) - y.double()).abs()
                    g_counts = torch.bincount(torch.bucketize(gn, edges[1:-1]), minlength=10).tolist()
                    for m in names:
                        shares[m], easy_share[m] = _grad_shares(losses[m], snap, y, edges)
    ap_mean = {n: ap[n].mean(1).tolist() for n in names}
    focal2 = "focal g=2"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.5))
    for n in names:
        ax.plot(
            ratios, ap_mean[n], marker="o", label=n, ls="--" if n.startswith("focal") and n != focal2 else "-"
        )
    ax.set_xscale("log")
    ax.set_xlabel("negatives per positive")
    ax.set_ylabel("average precision (held-out)")
    ax.set_title(f"AP against imbalance ({seeds} seed{'s' * (seeds > 1)})")
    ax.legend(ncol=2)
    f_ap = save(fig, out, "imbalance_ap.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.3))
    centres = (edges[:-1] + 0.05).numpy()
    a1.bar(centres, g_counts, width=0.09)
    a1.set_yscale("log")
    a1.set_xlabel("gradient norm g = |p - y|")
    a1.set_ylabel("training examples")
    a1.set_title(f"gradient density under CE, 1:{ratios[-1]}")
    shown = ["CE", focal2, "GHM-C"] if focal2 in shares else ["CE", "GHM-C"]
    w = 0.09 / len(shown)
    for k, n in enumerate(shown):
        a2.bar(centres + (k - (len(shown) - 1) / 2) * w, shares[n], width=w, label=n)
    a2.set_xlabel("gradient norm g = |p - y|")
    a2.set_ylabel("share of the summed |gradient|")
    a2.set_title("where each loss puts its gradient (same logits)")
    a2.legend()
    f_g = save(fig, out, "imbalance_gradients.png")

    hi = ratios[-1]
    claims = []
    ce_easy = easy_share["CE"]
    claims.append(
        Claim(
            id="imbalance-ce-easy-dominate",
            statement="Under cross-entropy the many easy negatives dominate the gradient.",
            source="Lin et al. 2017; Li, Liu, Wang 2019",
            losses=("binary_cross_entropy_with_logits",),
            rule=f"share of the summed |dL/dz| from negatives with g < {EASY} during CE training at 1:{hi}: "
            "held at 50% or more, did not hold below 30%, mixed in between",
            verdict=by_threshold(-ce_easy, held_if_below=-0.5 + 1e-12, not_held_if_above=-0.3),
            evidence=f"easy negatives carried {100 * ce_easy:.0f}% of CE's gradient at 1:{hi} "
            f"({g_counts[0]} of {sum(g_counts)} training examples have g < {EASY}).",
            figure=f_g,
            experiment="imbalance",
        )
    )
    if focal2 in easy_share:
        fe = easy_share[focal2]
        claims.append(
            Claim(
                id="imbalance-focal-downweights",
                statement="Focal loss (gamma=2) down-weights the easy negatives.",
                source="Lin et al. 2017",
                losses=("sigmoid_focal_loss",),
                rule="easy negatives' share of the gradient on the same logits: held if at most half of CE's, "
                "did not hold if not below CE's",
                verdict=by_threshold(fe / max(ce_easy, 1e-12), held_if_below=0.5, not_held_if_above=1.0),
                evidence=f"easy negatives' share: {100 * fe:.1f}% under focal (gamma=2) vs {100 * ce_easy:.0f}% under CE.",
                figure=f_g,
                experiment="imbalance",
            )
        )
        d = [a - b for a, b in zip(ap_mean[focal2], ap_mean["CE"])]
        claims.append(
            Claim(
                id="imbalance-focal-beats-ce",
                statement="Focal loss fixes class imbalance: it beats cross-entropy.",
                source="Lin et al. 2017",
                losses=("sigmoid_focal_loss", "binary_cross_entropy_with_logits"),
                rule="held-out AP of focal (gamma=2, alpha=0.25) minus CE at each ratio: held if ahead by more "
                "than 0.01 at half the ratios or more and behind at none; did not hold if ahead at none",
                verdict=by_wins(d, margin=0.01),
                evidence="AP focal vs CE: "
                + "; ".join(
                    f"1:{r} {fmt(a)} vs {fmt(b)}" for r, a, b in zip(ratios, ap_mean[focal2], ap_mean["CE"])
                )
                + ".",
                figure=f_ap,
                experiment="imbalance",
            )
        )
        gam = [n for n in names if n.startswith("focal")]
        mean_by = {n: sum(ap_mean[n]) / len(ratios) for n in gam}
        best = max(mean_by.values())
        claims.append(
            Claim(
                id="imbalance-gamma-2-best",
                statement="gamma = 2 is the best focusing parameter.",
                source="Lin et al. 2017, Table 1b",
                losses=("sigmoid_focal_loss",),
                rule="AP averaged over the ratios: held if gamma=2 is the best of the gammas tried, mixed if "
                "within 0.01 of the best, did not hold otherwise",
                verdict=by_threshold(best - mean_by[focal2], held_if_below=1e-12, not_held_if_above=0.01),
                evidence="mean AP: "
                + ", ".join(f"{n.removeprefix('focal ')} {fmt(v)}" for n, v in mean_by.items())
                + ".",
                figure=f_ap,
                experiment="imbalance",
            )
        )
        d = [a - b for a, b in zip(ap_mean["GHM-C"], ap_mean[focal2])]
        claims.append(
            Claim(
                id="imbalance-ghm-beats-focal",
                statement="GHM-C matches or beats focal loss without tuning gamma and alpha.",
                source="Li, Liu, Wang 2019",
                losses=("ghmc_loss", "sigmoid_focal_loss"),
                rule="AP of GHM-C minus focal (gamma=2) at each ratio, margin 0.01, as for focal vs CE",
                verdict=by_wins(d, margin=0.01),
                evidence="AP GHM-C vs focal: "
                + "; ".join(
                    f"1:{r} {fmt(a)} vs {fmt(b)}"
                    for r, a, b in zip(ratios, ap_mean["GHM-C"], ap_mean[focal2])
                )
                + ".",
                figure=f_ap,
                experiment="imbalance",
            )
        )
    d = [a - b for a, b in zip(ap_mean["alpha-CE (0.75)"], ap_mean["CE"])]
    claims.append(
        Claim(
            id="imbalance-alpha-balanced",
            statement="Weighting the rare class (alpha-balanced CE) helps under imbalance.",
            source="Lin et al. 2017, Table 1a",
            losses=("sigmoid_focal_loss", "binary_cross_entropy_with_logits"),
            rule="AP of alpha-balanced CE (alpha=0.75) minus CE at each ratio, margin 0.01, as above",
            verdict=by_wins(d, margin=0.01),
            evidence="AP alpha-CE vs CE: "
            + "; ".join(
                f"1:{r} {fmt(a)} vs {fmt(b)}"
                for r, a, b in zip(ratios, ap_mean["alpha-CE (0.75)"], ap_mean["CE"])
            )
            + ".",
            figure=f_ap,
            experiment="imbalance",
        )
    )

    fn_of = {"CE": "binary_cross_entropy_with_logits", focal2: "sigmoid_focal_loss", "GHM-C": "ghmc_loss"}
    advice: dict[str, dict[str, list[str]]] = {}
    best_hi = max(names, key=lambda n: ap_mean[n][-1])
    for n, fn in fn_of.items():
        if n not in ap_mean:
            continue
        a = advice.setdefault(fn, {"use": [], "avoid": []})
        gap = ap_mean[best_hi][-1] - ap_mean[n][-1]
        if gap <= 0.01:
            a["use"].append(
                f"Extreme imbalance (1:{hi}): held-out AP {fmt(ap_mean[n][-1])}, the best measured or within 0.01 of it."
            )
        else:
            a["avoid"].append(
                f"Extreme imbalance (1:{hi}) if AP matters most: {fmt(ap_mean[n][-1])} vs {fmt(ap_mean[best_hi][-1])} "
                f"for {best_hi}."
            )
        lo_best = max(names, key=lambda m: ap_mean[m][0])
        if ap_mean[lo_best][0] - ap_mean[n][0] <= 0.01:
            a["use"].append(
                f"Mild imbalance (1:{ratios[0]}): AP {fmt(ap_mean[n][0])}, within 0.01 of the best."
            )
    return StepResult(
        key="imbalance",
        title=TITLE,
        kind="experiment",
        figures={"ap": f_ap, "gradients": f_g},
        captions={
            "ap": "Held-out average precision against the imbalance ratio, for each loss.",
            "gradients": f"Left: training examples per gradient-norm bin during CE training at 1:{hi} (log scale). "
            "Right: each bin's share of the summed |gradient| for CE, focal and GHM-C on the same logits.",
        },
        metrics={
            "ratios": list(ratios),
            "ap_mean": ap_mean,
            "sizes": {str(k): v for k, v in sizes.items()},
            "grad_share_by_bin": shares,
            "easy_negative_grad_share": easy_share,
            "g_counts": g_counts,
        },
        claims=claims,
        advice=advice,
        setup=f"scikit-learn digits on {CANVAS}x{CANVAS} canvases, every {WIN}x{WIN} window a candidate; positive: "
        f"window centred on a '{POSITIVE_DIGIT}'; at most {cfg['max_pos']} positives per side; "
        f"{'a linear model' if not hidden else f'an MLP (64-{hidden}-1)'} with its bias initialised to the prior "
        f"p = {PRIOR}, {steps} full-batch Adam steps (lr 0.05), losses summed and divided by the number of "
        f"positives (GHM-C: its own normalisation); {seeds} seed{'s' * (seeds > 1)}; alpha paired with gamma as in "
        "the focal-loss paper's Table 1b.",
        headline=f"AP at 1:{hi}: " + ", ".join(f"{n} {fmt(ap_mean[n][-1])}" for n in names),
    )
