"""Class imbalance, from 1:10 to 1:1000: cross-entropy, alpha-balanced CE, focal loss and GHM-C.

The data are scikit-learn's handwritten digits turned into a dense-detection problem: each 8x8 digit
is placed on a 24x24 canvas at a random contrast (0.2 to 1) in strong pixel noise, and every 8x8
window of the canvas is a candidate, as anchors are in a detector. A window centred exactly on a "3"
is a positive; windows one pixel off a "3" are ignored (as detectors ignore anchors between the IoU
thresholds); every other window (other digits, off-centre crops, empty background) is a negative.
Most negatives are easy background. The images are split 50/50 into training and held-out canvases,
and at each ratio 1:r we sample r negatives per positive from each side. Average precision is
measured on the held-out side; the task is hard enough that no loss reaches AP 0.9 at 1:10. Each
seed draws new canvases, a new split, new samples and a new initialisation.
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import StepResult, require
from .._plotting import pyplot, save
from ..stats import NON_INFERIORITY, Resolution, compare_to_best, paired_interval
from ..verdicts import Claim, fmt, mean

TITLE = "Class imbalance 1:10 to 1:1000 (digits as a dense detector)"
POSITIVE_DIGIT = 3
CANVAS, WIN, PAD = 24, 8, 8
EASY = 0.1  # gradient norm g = |p - y| below this: an easy example (GHM's first bin)
NOISE, CONTRAST = 0.3, (0.2, 1.0)  # pixel noise sd; each digit's contrast is uniform in this range
DELTA_AP = 1.0  # AP points (AP x 100): the minimal meaningful difference
RESOLVE = 2.0  # AP points: all methods this close to chance or to 100 cannot be told apart
PRIOR = 0.01  # bias initialised so that p = 0.01 everywhere (Lin et al. 2017, section 4.1)

SCALES = {
    "tiny": {"ratios": (10, 100), "seeds": 2, "steps": 40, "max_pos": 30, "hidden": 0, "gammas": (2.0,)},
    "quick": {
        "ratios": (10, 100, 1000),
        "seeds": 5,
        "steps": 150,
        "max_pos": 40,
        "hidden": 0,
        "gammas": (0.5, 2.0, 5.0),
    },
    "full": {
        "ratios": (10, 30, 100, 300, 1000),
        "seeds": 10,
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
    canv = torch.randn(len(img), CANVAS, CANVAS, generator=g) * NOISE
    contrast = CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * torch.rand(len(img), 1, 1, generator=g)
    canv[:, PAD : PAD + WIN, PAD : PAD + WIN] += img * contrast
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
    ap = {n: torch.zeros(len(ratios), seeds) for n in names}  # AP points (x 100)
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    share = {n: [] for n in names}  # easy negatives' share of the gradient (%) per seed, at the top ratio
    shares, g_counts, sizes = {}, None, {}
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
                ap[n][i, s] = 100.0 * average_precision_score(yt.numpy(), score.numpy())
                if n == "CE" and i == len(ratios) - 1:
                    # the gradient during CE training (a quarter of the way) at the highest ratio: every
                    # loss's gradient on these same logits
                    for m in names:
                        by_bin, easy = _grad_shares(losses[m], snap, y, edges)
                        share[m].append(100.0 * easy)
                        if s == 0:
                            shares[m] = by_bin
                    if s == 0:
                        gn = (torch.sigmoid(snap.double()) - y.double()).abs()
                        g_counts = torch.bincount(torch.bucketize(gn, edges[1:-1]), minlength=10).tolist()
    ap_mean = {n: ap[n].mean(1).tolist() for n in names}
    ap_avg = {n: ap[n].mean(0).tolist() for n in names}  # per seed, averaged over the ratios
    chance = 100.0 * mean([1 / (r + 1) for r in ratios])
    focal2 = "focal g=2"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 3.6))
    for n in names:
        ivs = [paired_interval(ap[n][i].tolist()) for i in range(len(ratios))]
        ls = "--" if n.startswith("focal") and n != focal2 else "-"
        line = ax.plot(ratios, [iv.mean for iv in ivs], marker="o", label=n, ls=ls)[0]
        if seeds > 1:
            ax.fill_between(
                ratios, [iv.low for iv in ivs], [iv.high for iv in ivs], alpha=0.08, color=line.get_color()
            )
    ax.plot(ratios, [100 / (r + 1) for r in ratios], color="0.5", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("negatives per positive")
    ax.set_ylabel("average precision x 100 (held-out)")
    ax.set_title(f"AP against imbalance: mean and 95% interval over {seeds} seeds")
    ax.legend(ncol=2)
    f_ap = save(fig, out, "imbalance_ap.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.3))
    centres = (edges[:-1] + 0.05).numpy()
    a1.bar(centres, g_counts, width=0.09)
    a1.set_yscale("log")
    a1.set_xlabel("gradient norm g = |p - y|")
    a1.set_ylabel("training examples")
    a1.set_title(f"gradient density under CE, 1:{ratios[-1]} (seed 0)")
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
    r_txt = ", ".join(f"1:{r}" for r in ratios)

    def resolution(*ns: str) -> Resolution:
        return Resolution(
            {n: mean(ap_avg[n]) for n in ns}, chance, 100.0, RESOLVE, f"AP x 100 averaged over {r_txt}"
        )

    def ap_diff(a: str, b: str) -> list[float]:
        return [p - q for p, q in zip(ap_avg[a], ap_avg[b])]

    def aps(*ns: str) -> str:
        return "; ".join(
            f"{n}: " + ", ".join(f"1:{r} {fmt(v)}" for r, v in zip(ratios, ap_mean[n])) for n in ns
        )

    claims = [
        Claim.measure(
            id="imbalance-ce-easy-dominate",
            statement="Under cross-entropy the many easy negatives dominate the gradient.",
            source="Lin et al. 2017; Li, Liu, Wang 2019",
            losses=("binary_cross_entropy_with_logits",),
            effect_name=f"share of CE's summed |dL/dz| from negatives with g < {EASY}, a quarter into CE training at 1:{hi}, minus 50% (dominate = more than half)",
            unit="points",
            delta=5.0,
            effects=[v - 50.0 for v in share["CE"]],
            evidence=f"easy negatives carried {mean(share['CE']):.0f}% of CE's gradient at 1:{hi} (mean over seeds; seed 0: "
            f"{g_counts[0]} of {sum(g_counts)} training examples have g < {EASY}).",
            figure=f_g,
            experiment="imbalance",
        )
    ]
    if focal2 in share:
        claims += [
            Claim.measure(
                id="imbalance-focal-downweights",
                statement="Focal loss (gamma=2) down-weights the easy negatives.",
                source="Lin et al. 2017",
                losses=("sigmoid_focal_loss",),
                effect_name="easy negatives' share of the gradient under CE minus under focal (gamma=2), same logits",
                unit="points",
                delta=10.0,
                effects=[c - f for c, f in zip(share["CE"], share[focal2])],
                evidence=f"easy negatives' share: {mean(share[focal2]):.1f}% under focal (gamma=2) vs {mean(share['CE']):.0f}% under CE.",
                figure=f_g,
                experiment="imbalance",
            ),
            Claim.measure(
                id="imbalance-focal-beats-ce",
                statement="Focal loss fixes class imbalance: it beats cross-entropy.",
                source="Lin et al. 2017",
                losses=("sigmoid_focal_loss", "binary_cross_entropy_with_logits"),
                effect_name=f"held-out AP x 100 of focal (gamma=2, alpha=0.25) minus CE, averaged over {r_txt}",
                unit="AP points",
                delta=DELTA_AP,
                effects=ap_diff(focal2, "CE"),
                resolution=resolution(focal2, "CE"),
                evidence="mean AP x 100, " + aps(focal2, "CE") + ".",
                figure=f_ap,
                experiment="imbalance",
            ),
        ]
        gam = [n for n in names if n.startswith("focal")]
        others = [n for n in gam if n != focal2]
        if others:
            claims.append(
                Claim.measure(
                    id="imbalance-gamma-2-best",
                    statement="gamma = 2 is the best focusing parameter.",
                    source="Lin et al. 2017, Table 1b",
                    losses=("sigmoid_focal_loss",),
                    effect_name=f"AP x 100 of gamma=2 minus the best other gamma ({', '.join(n.removeprefix('focal ') for n in others)}) per seed, averaged over the ratios",
                    unit="AP points",
                    delta=DELTA_AP,
                    effects=[a - max(vs) for a, *vs in zip(ap_avg[focal2], *(ap_avg[n] for n in others))],
                    resolution=resolution(*gam),
                    evidence="mean AP x 100 over the ratios: "
                    + ", ".join(f"{n.removeprefix('focal ')} {fmt(mean(ap_avg[n]))}" for n in gam)
                    + ".",
                    figure=f_ap,
                    experiment="imbalance",
                )
            )
        claims.append(
            Claim.measure(
                id="imbalance-ghm-beats-focal",
                statement="GHM-C matches or beats focal loss without tuning gamma and alpha.",
                source="Li, Liu, Wang 2019",
                losses=("ghmc_loss", "sigmoid_focal_loss"),
                effect_name="AP x 100 of GHM-C (10 bins, no momentum) minus focal (gamma=2), averaged over the ratios",
                unit="AP points",
                delta=DELTA_AP,
                kind=NON_INFERIORITY,
                effects=ap_diff("GHM-C", focal2),
                resolution=resolution("GHM-C", focal2),
                evidence="mean AP x 100, " + aps("GHM-C", focal2) + ".",
                figure=f_ap,
                experiment="imbalance",
            )
        )
    claims.append(
        Claim.measure(
            id="imbalance-alpha-balanced",
            statement="Weighting the rare class (alpha-balanced CE) helps under imbalance.",
            source="Lin et al. 2017, Table 1a",
            losses=("sigmoid_focal_loss", "binary_cross_entropy_with_logits"),
            effect_name="AP x 100 of alpha-balanced CE (alpha=0.75) minus CE, averaged over the ratios",
            unit="AP points",
            delta=DELTA_AP,
            effects=ap_diff("alpha-CE (0.75)", "CE"),
            resolution=resolution("alpha-CE (0.75)", "CE"),
            evidence="mean AP x 100, " + aps("alpha-CE (0.75)", "CE") + ".",
            figure=f_ap,
            experiment="imbalance",
        )
    )

    fn_of = {"CE": "binary_cross_entropy_with_logits", focal2: "sigmoid_focal_loss", "GHM-C": "ghmc_loss"}
    advice: dict[str, dict[str, list[str]]] = {}
    for i_r, label in ((len(ratios) - 1, "Extreme"), (0, "Mild")):
        standing = compare_to_best({n: ap[n][i_r].tolist() for n in names}, delta=DELTA_AP)
        for n, fn in fn_of.items():
            if n not in standing:
                continue
            a = advice.setdefault(fn, {"use": [], "avoid": []})
            st = standing[n]
            line = (
                f"{label} imbalance (1:{ratios[i_r]}): AP x 100 {fmt(ap_mean[n][i_r])}, {fmt(st.mean, signed=True)} "
                f"[{fmt(st.low, signed=True)}, {fmt(st.high, signed=True)}] against the best ({st.best}), {seeds} seeds"
            )
            if st.status in ("best", "tied"):
                a["use"].append(
                    line + (" — the best." if st.status == "best" else " — within 1 point of the best.")
                )
            elif st.status == "worse":
                a["avoid"].append(line + " — worse than the best by more than 1 point.")
    return StepResult(
        key="imbalance",
        title=TITLE,
        kind="experiment",
        figures={"ap": f_ap, "gradients": f_g},
        captions={
            "ap": "Held-out average precision against the imbalance ratio, for each loss: mean over seeds, 95% t "
            "interval (shaded), chance (dotted).",
            "gradients": f"Left: training examples per gradient-norm bin during CE training at 1:{hi} (log scale). "
            "Right: each bin's share of the summed |gradient| for CE, focal and GHM-C on the same logits.",
        },
        metrics={
            "ratios": list(ratios),
            "ap": {n: ap[n].tolist() for n in names},
            "ap_mean": ap_mean,
            "sizes": {str(k): v for k, v in sizes.items()},
            "grad_share_by_bin": shares,
            "easy_negative_grad_share": share,
            "g_counts": g_counts,
        },
        claims=claims,
        advice=advice,
        setup=f"scikit-learn digits on {CANVAS}x{CANVAS} canvases at a random contrast in U{CONTRAST} with pixel noise of sd "
        f"{NOISE:g}; every {WIN}x{WIN} window a candidate; positive: window centred on a '{POSITIVE_DIGIT}', windows one pixel "
        f"off it ignored; at most {cfg['max_pos']} positives per side; "
        f"{'a linear model' if not hidden else f'an MLP (64-{hidden}-1)'} with its bias initialised to the prior "
        f"p = {PRIOR}, {steps} full-batch Adam steps (lr 0.05), losses summed and divided by the number of "
        f"positives (GHM-C: its own normalisation); ratios {r_txt}; {seeds} seeds (new canvases, split, samples and "
        "initialisation each); alpha paired with gamma as in the focal-loss paper's Table 1b. AP is reported x 100.",
        headline=f"AP x 100 at 1:{ratios[0]} / 1:{hi}: "
        + ", ".join(f"{n} {fmt(ap_mean[n][0])} / {fmt(ap_mean[n][-1])}" for n in names),
    )
