"""Regression with outliers: L1, MSE, Smooth L1 and Huber on scikit-learn's diabetes data.

A linear model is fitted by full-batch gradient descent (fixed step, the setting in which the claims
about gradients are made) on training targets of which a share ``p`` is corrupted by gross one-sided
errors; the error is measured on clean held-out targets. Convergence speed is the number of steps a
loss needs to bring the clean test RMSE within 2 % of its own final value, on clean data.
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

from pathlib import Path

import torch

from .. import StepResult, require
from .._plotting import pyplot, save
from ..stats import NON_INFERIORITY, compare_to_best, paired_interval
from ..verdicts import Claim, fmt, mean

TITLE = "Regression with outliers (diabetes data)"
LOSSES = ("l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss")
LABELS = {
    "l1_loss": "L1",
    "mse_loss": "MSE",
    "smooth_l1_loss": "Smooth L1 (beta=1)",
    "huber_loss": "Huber (delta=1)",
}
SCALES = {
    "tiny": {"rates": (0.0, 0.3), "seeds": 2, "steps": 150},
    "quick": {"rates": (0.0, 0.1, 0.2, 0.3), "seeds": 5, "steps": 400},
    "full": {"rates": (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), "seeds": 10, "steps": 2000},
}
LR = 0.05
SHIFT = (4.0, 12.0)  # corrupted targets move up by this many standard deviations
SWEEPS = {  # each loss's own parameter, swept in the same experiment
    "huber_loss": ("delta", (0.25, 0.5, 1.0, 2.0, 4.0)),
    "smooth_l1_loss": ("beta", (0.1, 0.25, 0.5, 1.0, 2.0)),
}


def _data(seed: int):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = torch.as_tensor(x, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    n_train = int(0.7 * len(y))
    tr, te = perm[:n_train], perm[n_train:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    ymu, ysd = y[tr].mean(), y[tr].std()
    xs = torch.cat([(x - mu) / sd, torch.ones(len(y), 1, dtype=x.dtype)], 1)  # bias column
    ys = (y - ymu) / ysd
    return xs[tr], ys[tr], xs[te], ys[te], float(ysd), g


def _corrupt(y: torch.Tensor, rate: float, g: torch.Generator) -> torch.Tensor:
    y = y.clone()
    k = round(rate * len(y))
    idx = torch.randperm(len(y), generator=g)[:k]
    y[idx] += torch.empty(k, dtype=y.dtype).uniform_(*SHIFT, generator=g)
    return y


def _fit(loss_name: str, x, ys, x_test, y_test, steps: int, ysd: float, params: dict | None = None):
    """Gradient descent on the loss, one independent model per row of ``ys`` (R, n).

    Returns the clean test RMSE after every step, shape (steps, R), and the final clean test MAE (R,),
    both in the target's units.
    """
    from ... import functional as LF

    loss_fn = getattr(LF, loss_name)
    w = torch.zeros(ys.shape[0], x.shape[1], dtype=x.dtype, requires_grad=True)  # (R, d)
    ws = torch.empty(steps, *w.shape, dtype=x.dtype)
    for t in range(steps):
        # the models are independent: sum of per-model mean losses gives each its own gradient
        loss = loss_fn(w @ x.T, ys, reduction="none", **(params or {})).mean(1).sum()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= LR * grad
            ws[t] = w
    resid = ws @ x_test.T - y_test  # (steps, R, n_test)
    history = resid.pow(2).mean(-1).sqrt() * ysd
    mae = resid[-1].abs().mean(-1) * ysd
    return history, mae


def _steps_to_converge(history: torch.Tensor) -> int:
    final = history[-1]
    inside = history <= final * 1.02
    # first step from which the curve stays inside the 2 % band
    outside = (~inside).nonzero()
    return int(outside[-1]) + 2 if len(outside) else 1


def run(out: Path, mode: str) -> StepResult:
    require(*LOSSES)
    cfg = SCALES[mode]
    rates, seeds, steps = cfg["rates"], cfg["seeds"], cfg["steps"]
    rmse = {n: torch.zeros(len(rates), seeds) for n in LOSSES}
    curves = {n: {} for n in LOSSES}  # rate -> mean history over seeds
    conv = {n: [] for n in LOSSES}
    sweep = {
        f"{n}:{v:g}": {"rmse": [], "clean": [], "steps": []} for n, (_, vals) in SWEEPS.items() for v in vals
    }
    for s in range(seeds):
        x, y, xt, yt, ysd, _g = _data(seed=s)
        ys = torch.stack(
            [_corrupt(y, r, torch.Generator().manual_seed(1000 * s + i)) for i, r in enumerate(rates)]
        )
        for n in LOSSES:
            hist, _m = _fit(n, x, ys, xt, yt, steps, ysd)
            rmse[n][:, s] = hist[-1]
            for i, rate in enumerate(rates):
                curves[n][rate] = curves[n].get(rate, 0) + hist[:, i] / seeds
            conv[n].append(_steps_to_converge(hist[:, 0]))
        for n, (param, vals) in SWEEPS.items():
            for v in vals:
                hist, _m = _fit(n, x, ys[[0, -1]], xt, yt, steps, ysd, {param: v})
                rec = sweep[f"{n}:{v:g}"]
                rec["clean"].append(float(hist[-1, 0]))
                rec["rmse"].append(float(hist[-1, 1]))
                rec["steps"].append(_steps_to_converge(hist[:, 0]))
    mean_rmse = {n: rmse[n].mean(1).tolist() for n in LOSSES}
    steps_conv = {n: mean(conv[n]) for n in LOSSES}
    hi = f"{100 * rates[-1]:.0f}%"

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    pct = [100 * r for r in rates]
    for n in LOSSES:
        ivs = [paired_interval(rmse[n][i].tolist()) for i in range(len(rates))]
        ls = "--" if n == "smooth_l1_loss" else "-"  # coincides with Huber at beta = delta = 1
        line = ax.plot(pct, [iv.mean for iv in ivs], marker="o", ls=ls, label=LABELS[n])[0]
        if seeds > 1:
            ax.fill_between(
                pct, [iv.low for iv in ivs], [iv.high for iv in ivs], alpha=0.1, color=line.get_color()
            )
    ax.set_xlabel("training targets corrupted (%)")
    ax.set_ylabel("clean test RMSE")
    ax.set_title(f"Error on clean test data: mean, 95% interval, {seeds} seeds")
    ax.legend(title="Smooth L1 = Huber at beta = delta = 1", title_fontsize=7)
    f_err = save(fig, out, "regression_error_vs_corruption.png")

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
    for ax, rate in zip(axes, (rates[0], rates[-1])):
        for n in LOSSES:
            ax.plot(
                range(1, steps + 1),
                curves[n][rate],
                ls="--" if n == "smooth_l1_loss" else "-",
                label=LABELS[n],
            )
        ax.set_xscale("log")
        ax.set_xlabel("gradient-descent step")
        ax.set_title(f"{100 * rate:.0f}% corrupted")
    axes[0].set_ylabel("clean test RMSE")
    axes[0].set_ylim(top=min(200.0, float(max(c[rates[0]].max() for c in curves.values())) * 1.05))
    axes[1].legend()
    f_conv = save(fig, out, "regression_convergence.png")

    figures = {"error": f_err, "convergence": f_conv}
    captions = {
        "error": "Clean test RMSE against the share of corrupted training targets (mean and 95% t interval over seeds). "
        "Smooth L1 (dashed) and Huber coincide at their defaults beta = delta = 1.",
        "convergence": "Clean test RMSE during training, on clean data (left) and at the highest corruption (mean over seeds).",
    }
    per_loss: dict[str, list[str]] = {}
    for n, (param, vals) in SWEEPS.items():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.0))
        for key, ax, ylab in (
            ("rmse", a1, f"clean test RMSE, {hi} corrupted"),
            ("steps", a2, "steps to converge, clean data"),
        ):
            ivs = [paired_interval(sweep[f"{n}:{v:g}"][key]) for v in vals]
            ax.errorbar(
                vals,
                [iv.mean for iv in ivs],
                fmt="o-",
                yerr=None
                if seeds < 2
                else [[iv.mean - iv.low for iv in ivs], [iv.high - iv.mean for iv in ivs]],
                capsize=3,
            )
            ax.set_xscale("log")
            ax.set_xlabel(param)
            ax.set_ylabel(ylab)
        for ref in ("l1_loss", "mse_loss"):
            a1.axhline(mean_rmse[ref][-1], ls=":", lw=1, color="0.4")
            a1.annotate(LABELS[ref], (vals[0], mean_rmse[ref][-1]), fontsize=7, va="bottom")
        a1.set_title(f"robustness over {param}")
        a2.set_title(f"speed over {param}")
        role = f"sweep_{n}"
        figures[role] = save(fig, out, f"regression_sweep_{n}.png")
        captions[role] = (
            f"{LABELS[n].split(' (')[0]} over its own parameter {param} in {vals}: clean test RMSE at {hi} corrupted targets "
            f"(L1 and MSE dotted) and steps to converge on clean data (mean, 95% interval, {seeds} seeds)."
        )
        per_loss[n] = [role]

    def rel(a: str, b: str) -> list[float]:
        """(RMSE of b - RMSE of a) at the highest corruption, in % of b's clean RMSE, per seed."""
        return [100.0 * float((rmse[b][-1, s] - rmse[a][-1, s]) / rmse[b][0, s]) for s in range(seeds)]

    def fewer_steps(a: str, b: str) -> list[float]:
        """% fewer steps for a than for b, per seed."""
        return [100.0 * (1 - p / q) for p, q in zip(conv[a], conv[b])]

    def rm(*ns: str) -> str:
        return ", ".join(
            f"{LABELS[n].split(' (')[0]} {fmt(mean_rmse[n][0])} → {fmt(mean_rmse[n][-1])}" for n in ns
        )

    def st(*ns: str) -> str:
        return ", ".join(f"{LABELS[n].split(' (')[0]} {steps_conv[n]:.0f}" for n in ns)

    claims = [
        Claim.measure(
            id="regression-l1-robust",
            statement="L1 (mean absolute error) is robust to outliers; MSE is not.",
            source="folklore; Huber 1964",
            losses=("l1_loss", "mse_loss"),
            effect_name=f"MSE's minus L1's clean test RMSE at {hi} corrupted targets, in % of MSE's clean-data RMSE",
            unit="%",
            delta=5.0,
            effects=rel("l1_loss", "mse_loss"),
            evidence=f"clean test RMSE from 0% to {hi} corrupted: {rm('l1_loss', 'mse_loss')}.",
            figure=f_err,
            experiment="regression",
        ),
        Claim.measure(
            id="regression-mse-fast",
            statement="MSE converges faster than L1.",
            source="folklore (L1's gradient does not shrink near the optimum)",
            losses=("mse_loss", "l1_loss"),
            effect_name="% fewer gradient-descent steps for MSE than for L1 to reach 2% of the final clean test RMSE (clean data, same fixed step)",
            unit="%",
            delta=20.0,
            effects=fewer_steps("mse_loss", "l1_loss"),
            evidence=f"mean steps to converge: {st('mse_loss', 'l1_loss')} (step size {LR}).",
            figure=f_conv,
            experiment="regression",
        ),
    ]
    for n in ("smooth_l1_loss", "huber_loss"):
        short = LABELS[n].split(" (")[0]
        slug = n.removesuffix("_loss").replace("_", "-")
        claims += [
            Claim.measure(
                id=f"regression-{slug}-robust",
                statement=f"{short} is robust to outliers, as L1 is.",
                source="Girshick 2015 (Smooth L1); Huber 1964",
                losses=(n,),
                effect_name=f"MSE's minus {short}'s clean test RMSE at {hi} corrupted targets, in % of MSE's clean-data RMSE",
                unit="%",
                delta=5.0,
                effects=rel(n, "mse_loss"),
                evidence=f"clean test RMSE from 0% to {hi} corrupted: {rm(n, 'l1_loss', 'mse_loss')}.",
                figure=f_err,
                experiment="regression",
            ),
            Claim.measure(
                id=f"regression-{slug}-fast",
                statement=f"{short} converges as fast as MSE.",
                source="Girshick 2015 (Smooth L1); Huber 1964",
                losses=(n,),
                effect_name=f"% fewer steps for {short} than for MSE to converge (negative: slower)",
                unit="%",
                delta=25.0,
                kind=NON_INFERIORITY,
                effects=fewer_steps(n, "mse_loss"),
                evidence=f"mean steps to converge: {st(n, 'mse_loss', 'l1_loss')}.",
                figure=f_conv,
                experiment="regression",
            ),
        ]

    advice: dict[str, dict[str, list[str]]] = {n: {"use": [], "avoid": []} for n in LOSSES}
    robust = compare_to_best(
        {n: rmse[n][-1].tolist() for n in LOSSES},
        delta=0.05 * mean_rmse["mse_loss"][0],
        higher_is_better=False,
    )
    fast = compare_to_best(
        {n: [float(c) for c in conv[n]] for n in LOSSES},
        delta=0.25 * steps_conv["mse_loss"],
        higher_is_better=False,
    )
    for n in LOSSES:
        r, f = robust[n], fast[n]
        if r.status in ("best", "tied"):
            advice[n]["use"].append(
                f"Targets with gross errors: clean RMSE {fmt(mean_rmse[n][-1])} at {hi} corruption, the best or within 5% of MSE's clean error of it ({seeds} seeds)."
            )
        elif r.status == "worse":
            advice[n]["avoid"].append(
                f"Data with outliers: clean RMSE {fmt(mean_rmse[n][-1])} at {hi} corruption against {fmt(mean_rmse[r.best][-1])} for {LABELS[r.best]} ({seeds} seeds)."
            )
        if f.status in ("best", "tied"):
            advice[n]["use"].append(
                f"Clean data, fixed-step gradient descent: {steps_conv[n]:.0f} steps to converge, the fastest or within 25% of MSE's steps."
            )
        elif f.status == "worse":
            advice[n]["avoid"].append(
                f"Fixed-step gradient descent: {steps_conv[n]:.0f} steps to converge against {steps_conv[f.best]:.0f} for {LABELS[f.best]}."
            )
    return StepResult(
        key="regression",
        title=TITLE,
        kind="experiment",
        figures=figures,
        captions=captions,
        per_loss=per_loss,
        metrics={
            "rates": list(rates),
            "rmse": {n: rmse[n].tolist() for n in LOSSES},
            "rmse_mean": mean_rmse,
            "steps_to_converge": conv,
            "sweeps": sweep,
        },
        claims=claims,
        advice=advice,
        setup=f"scikit-learn diabetes data (442 patients, 10 features), {seeds} seeds, each a new random 70/30 train/test "
        f"split and new corruption; standardised features and target; a share of the training targets moved up by "
        f"U({SHIFT[0]:g}, {SHIFT[1]:g}) standard deviations; linear model fitted by {steps} steps of full-batch gradient "
        f"descent (step {LR}) on each loss (defaults; Huber's delta and Smooth L1's beta also swept); RMSE on the clean "
        "test targets, in the data's units. Steps to converge: the first step from which the clean-data RMSE stays "
        "within 2% of its final value.",
        headline=f"at {hi} outliers clean RMSE: "
        + ", ".join(f"{LABELS[n].split(' (')[0]} {fmt(mean_rmse[n][-1])}" for n in LOSSES),
    )
