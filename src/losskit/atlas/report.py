"""The static HTML report: ``index.html`` with its images beside it, one section per family.

Plain f-strings and ``html.escape`` (no template engine, no script, no network): the page opens from
disk in any browser. The summary lists every claim with its verdict, mean effect, 95% interval,
seeds and minimal meaningful effect (the same records as ``claims.json`` beside it). Each family
section shows the family compared once, its experiment (set-up, figures, a forest plot of its
claims, the claims with their rule), and one article per loss: formula, defaults (read from the
function's signature), paper, the loss over its own parameters, the claims about it, and "when to use
/ when not" lines generated from the measurements.
"""

# ruff: noqa: E501  (long generated sentences and CSS read better unbroken)

from __future__ import annotations

import html
import inspect
from pathlib import Path

from ..catalog import LossInfo
from . import FAMILY_TABLE, AtlasResult, StepResult, family_losses
from .stats import HELD, INCONCLUSIVE, NOT_HELD
from .verdicts import Claim, fmt

# Per-element formulas in matplotlib's mathtext, rendered to SVG beside the report.
FORMULAS: dict[str, str] = {
    "l1_loss": r"$\ell = |x - y|$",
    "mse_loss": r"$\ell = (x - y)^2$",
    "smooth_l1_loss": r"$\ell = 0.5\,d^2/\beta\ \ (|d|<\beta),\quad |d| - 0.5\,\beta\ \ \mathrm{otherwise}$",
    "huber_loss": r"$\ell = 0.5\,d^2\ \ (|d|<\delta),\quad \delta\,(|d| - 0.5\,\delta)\ \ \mathrm{otherwise}$",
    "binary_cross_entropy_with_logits": r"$\ell = -[y \log\sigma(x) + (1-y)\log(1-\sigma(x))]$",
    "cross_entropy": r"$\ell = -\sum_c q_c \log \mathrm{softmax}(x)_c$",
    "sigmoid_focal_loss": r"$\ell = -\alpha_t\,(1-p_t)^\gamma \log p_t$",
    "softmax_focal_loss": r"$\ell = -\alpha_y\,(1-p_y)^\gamma \log p_y$",
    "ghmc_loss": r"$\ell = \mathrm{CE}(x, y)\,/\,GD(g),\quad g = |\sigma(x) - y|$",
    "ghmr_loss": r"$\ell = (\sqrt{d^2+\mu^2}-\mu)\,/\,GD(g)$",
    "iou_loss": r"$\ell = 1 - \mathrm{IoU}\quad \mathrm{or}\quad -\ln \mathrm{IoU}$",
    "generalized_box_iou_loss": r"$\ell = 1 - \mathrm{IoU} + |C \setminus (A \cup B)|\,/\,|C|$",
    "distance_box_iou_loss": r"$\ell = 1 - \mathrm{IoU} + \rho^2(b, b^{gt})\,/\,c^2$",
    "complete_box_iou_loss": r"$\ell = 1 - \mathrm{IoU} + \rho^2/c^2 + \alpha v$",
    "normface_loss": r"$\ell = -\log \frac{e^{s\cos\theta_y}}{\sum_j e^{s\cos\theta_j}}$",
    "l2_softmax_loss": r"$\ell = \mathrm{CE}(W\,\alpha\, x/\|x\|,\ y)$",
    "cosface_loss": r"$\ell = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + \sum_{j\neq y} e^{s\cos\theta_j}}$",
    "am_softmax_loss": r"$\ell = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + \sum_{j\neq y} e^{s\cos\theta_j}}$",
    "arcface_loss": r"$\ell = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + \sum_{j\neq y} e^{s\cos\theta_j}}$",
    "combined_margin_loss": r"$f_y = s\,(\cos(m_1\theta_y + m_2) - m_3)$",
    "subcenter_arcface_loss": r"$\cos\theta_y = \max_k \cos\theta_{y,k}$,  then ArcFace",
    "sphereface_loss": r"$f_y = \|x\|\,\psi(\theta_y),\quad \psi = (-1)^k\cos(m\theta) - 2k$",
    "large_margin_softmax_loss": r"$f_y = \|W_y\|\,\|x\|\,\psi(\theta_y)$",
    "center_loss": r"$\ell = \frac{1}{2}\,\|x - c_y\|^2$",
    "contrastive_loss": r"$\ell = \frac{1}{2}d^2\ \ (\mathrm{same}),\quad \frac{1}{2}\max(0, m - d)^2\ \ \mathrm{otherwise}$",
    "batch_contrastive_loss": r"$\frac{1}{2}d^2\ \ \mathrm{or}\ \ \frac{1}{2}\max(0, m - d)^2$  over all pairs",
    "triplet_margin_loss": r"$\ell = \max(0,\ d(a,p) - d(a,n) + m)$",
    "batch_triplet_loss": r"$\max(0,\ d(a,p) - d(a,n) + m)$  over mined triplets",
    "margin_softmax_loss": r"$\ell = -\log \frac{e^{s\,\phi(\cos\theta_y)}}{e^{s\,\phi(\cos\theta_y)} + \sum_{j\neq y} e^{s\cos\theta_j}}$",
    "facenet_triplet_loss": r"$\ell = \max(0,\ \|a-p\|^2 - \|a-n\|^2 + m)$",
}

CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
header { background:#111827; color:#f9fafb; padding:28px 40px 22px; }
header h1 { margin:0 0 6px; font-size:26px; } header p { margin:0; color:#d1d5db; max-width:70em; }
nav { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line); padding:8px 40px; z-index:2;
      display:flex; flex-wrap:wrap; gap:6px 14px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; } nav a:hover { text-decoration:underline; }
main { max-width:1180px; margin:0 auto; padding:20px 40px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 24px; margin:18px 0; }
h2 { margin:4px 0 10px; font-size:21px; } h3 { margin:16px 0 6px; font-size:16px; }
.meta { color:var(--muted); font-size:13px; } code { background:#f3f4f6; padding:1px 5px; border-radius:4px; font-size:13px; }
figure { margin:10px 0; } figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; }
img.formula { max-width:100%; height:auto; vertical-align:middle; }
table { border-collapse:collapse; width:100%; font-size:14px; margin:8px 0; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f3f4f6; font-weight:600; }
.v { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.v-held { background:#dcfce7; color:#166534; } .v-not { background:#fee2e2; color:#991b1b; } .v-inconclusive { background:#e5e7eb; color:#374151; }
.status-na { color:#92400e; } .status-failed { color:#991b1b; }
.claim { border-left:4px solid var(--line); padding:6px 12px; margin:10px 0; }
.claim.held { border-color:#16a34a; } .claim.not { border-color:#dc2626; } .claim.inconclusive { border-color:#9ca3af; }
.claim .rule { color:var(--muted); font-size:13px; }
.advice { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
.advice div { background:var(--bg); border-radius:8px; padding:8px 14px; } .advice ul { margin:4px 0; padding-left:20px; }
table.claims td:nth-child(1) { width:38%; } table.claims td:nth-child(2) { width:110px; }
table.steps td:last-child { white-space:nowrap; }
article { border-top:1px solid var(--line); margin-top:18px; padding-top:8px; }
article h3 { font-size:18px; } .toc { font-size:13px; } .num { white-space:nowrap; font-variant-numeric:tabular-nums; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:20px; }
"""

MODE_NOTE = {
    "tiny": "tiny mode: a smoke run with 2 seeds and the smallest sizes; its verdicts are mostly inconclusive by design. Run <code>losskit atlas --quick</code> (or <code>make demo</code>) for evidence.",
    "quick": "quick mode: at least 5 seeds per claim, sized to run in minutes on two CPU cores.",
    "full": "full mode: at least 10 seeds per claim and the complete experiments (the DIoU simulation at the paper's 1,715,000 cases).",
}
_CLS = {HELD: "held", NOT_HELD: "not", INCONCLUSIVE: "inconclusive"}


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _badge(v: str) -> str:
    cls = {HELD: "v-held", NOT_HELD: "v-not", INCONCLUSIVE: "v-inconclusive"}[v]
    return f'<span class="v {cls}">{_e(v)}</span>'


def _defaults(info: LossInfo) -> str:
    from .. import functional

    fn = getattr(functional, info.function, None)
    if fn is None:
        return ""
    params = [
        f"{p.name}={p.default!r}"
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.default is not inspect.Parameter.empty
        and p.name not in ("weight", "reduction", "size_average", "reduce")
    ]
    return ", ".join(params)


def _render_formula(name: str, out: Path) -> str | None:
    """Render FORMULAS[name] to ``formula_<name>.svg``; None (shown as text) if mathtext cannot."""
    src = FORMULAS.get(name)
    if src is None:
        return None
    from ._plotting import use_agg

    use_agg()
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    fname = f"formula_{name}.svg"
    try:
        mathtext.math_to_image(src, out / fname, prop=FontProperties(size=15), dpi=100, format="svg")
    except Exception:  # an unsupported construct: fall back to the source text
        return None
    return fname


def _figure(fname: str, caption: str) -> str:
    return (
        f'<figure><img src="{_e(fname)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _table(t: dict) -> str:
    """A measurement table of an experiment: caption, header row, rows of text (escaped)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in t["header"])
    rows = "".join(
        "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' for c in row) + "</tr>" for row in t["rows"]
    )
    return f'<table class="measured"><caption>{_e(t["caption"])}</caption><tr>{head}</tr>{rows}</table>'


def _num(c: Claim) -> str:
    return f'<span class="num">{_e(c.interval_text())}</span>'


def claims_table(claims: list[Claim], *, link: bool = True) -> str:
    """One row per claim: statement, verdict, mean effect with its 95% interval and seeds, minimal effect, why."""

    def statement(c: Claim) -> str:
        return f'<a href="#claim-{_e(c.id)}">{_e(c.statement)}</a>' if link else _e(c.statement)

    rows = "".join(
        f"<tr><td>{statement(c)}</td><td>{_badge(c.verdict)}</td><td>{_num(c)}</td>"
        f'<td class="num">{_e(fmt(c.delta))} {_e(c.unit)}</td><td>{_e(c.reason)}</td></tr>'
        for c in claims
    )
    return (
        '<table class="claims"><tr><th>Claim</th><th>Verdict</th><th>Effect [95% interval], seeds</th>'
        f"<th>Minimal effect</th><th>Why</th></tr>{rows}</table>"
    )


def _claim_box(c: Claim) -> str:
    """The full record of a claim (its one anchor ``claim-<id>``, in its experiment's section)."""
    return (
        f'<div class="claim {_CLS[c.verdict]}" id="claim-{_e(c.id)}">'
        f'<div><b>“{_e(c.statement)}”</b> <span class="meta">— {_e(c.source)}</span> {_badge(c.verdict)}</div>'
        f"<div>Effect: {_e(c.effect_name)}: {_num(c)}; minimal meaningful effect {_e(fmt(c.delta))} {_e(c.unit)}. "
        f"<b>{_e(c.verdict.capitalize())}</b>: {_e(c.reason)}.</div>"
        f"<div>{_e(c.evidence)}</div>"
        f'<div class="rule">Rule ({_e(c.kind)}): {_e(c.rule)}. Per-seed effects: {_e(", ".join(fmt(x) for x in c.effects))}.</div></div>'
    )


def _claim_ref(c: Claim) -> str:
    return f'<li><a href="#claim-{_e(c.id)}">{_e(c.statement)}</a> {_badge(c.verdict)} {_num(c)}</li>'


def forest_plot(claims: list[Claim], out: Path, name: str) -> str | None:
    """Each claim's mean effect and 95% interval in units of its minimal meaningful effect (the grey
    band is the negligible band, +-1); colour by verdict."""
    if not claims:
        return None
    from ._plotting import pyplot, save

    plt = pyplot()
    colour = {HELD: "#16a34a", NOT_HELD: "#dc2626", INCONCLUSIVE: "#6b7280"}
    fig, ax = plt.subplots(figsize=(8.4, 0.45 * len(claims) + 1.0))
    ax.axvspan(-1, 1, color="0.92", zorder=0)
    ax.axvline(0, color="0.3", lw=1)
    for i, c in enumerate(claims):
        y = len(claims) - 1 - i
        m, lo, hi = c.effect / c.delta, c.low / c.delta, c.high / c.delta
        if lo == lo:  # an interval exists
            ax.plot([lo, hi], [y, y], color=colour[c.verdict], lw=2.2)
        ax.plot([m], [y], "o", color=colour[c.verdict])
    ax.set_yticks(
        range(len(claims)),
        [c.statement if len(c.statement) < 60 else c.statement[:57] + "..." for c in reversed(claims)],
    )
    ax.set_xlabel(
        "effect / minimal meaningful effect (grey: negligible band; right of 0: the claimed direction)"
    )
    ax.set_title("claims of this experiment: mean and 95% interval over seeds")
    ax.grid(axis="y", alpha=0)
    return save(fig, out, name)


def _experiment_html(r: StepResult, out: Path) -> str:
    parts = [f'<div id="exp-{_e(r.key)}"><h3>Experiment: {_e(r.title)}</h3>']
    if r.status != "ok":
        cls = "status-na" if r.status == "not available" else "status-failed"
        parts.append(
            f'<p class="{cls}"><b>{_e(r.status)}</b>: {_e(r.note.splitlines()[0] if r.note else "")}</p></div>'
        )
        return "".join(parts)
    parts.append(f"<p><b>Set-up.</b> {_e(r.setup)}</p>")
    own = {role for roles in r.per_loss.values() for role in roles}
    parts.extend(_figure(f, r.captions.get(role, "")) for role, f in r.figures.items() if role not in own)
    parts.extend(_table(t) for t in r.tables)
    forest = forest_plot(r.claims, out, f"forest_{r.key}.png")
    if forest:
        parts.append(
            _figure(
                forest,
                "Every claim of this experiment: mean effect over seeds with its 95% t interval, in units of the claim's minimal meaningful effect.",
            )
        )
    if r.claims:
        parts.append(claims_table(r.claims))
        parts.extend(_claim_box(c) for c in r.claims)
    parts.append(f'<p class="meta">{r.seconds:.1f} s</p></div>')
    return "".join(parts)


def _loss_article(info: LossInfo, result: AtlasResult, formula: str | None) -> str:
    from .. import functional

    anchor = f"loss-{info.function}"
    paper = f'<a href="{_e(info.url)}">{_e(info.paper)}</a>' if info.url else _e(info.paper)
    parts = [f'<article id="{anchor}"><h3>{_e(info.title)}</h3>']
    parts.append(
        f'<p class="meta"><code>losskit.functional.{_e(info.function)}</code> · '
        f"<code>losskit.nn.{_e(info.module)}</code> · {paper}</p>"
    )
    if not hasattr(functional, info.function):
        parts.append('<p class="status-na">Not available in this build of losskit.</p></article>')
        return "".join(parts)
    if formula:
        parts.append(f'<p><img class="formula" src="{_e(formula)}" alt="{_e(FORMULAS[info.function])}"></p>')
    elif info.function in FORMULAS:
        parts.append(f"<p><code>{_e(FORMULAS[info.function])}</code></p>")
    d = _defaults(info)
    parts.append(
        f"<p>Defaults: <code>{_e(d) if d else 'none'}</code> (see the docstring for each one's meaning and source).</p>"
    )
    shown = 0
    for r in result.results:
        if r.status != "ok":
            continue
        for role in r.per_loss.get(info.function, []):
            if role in r.figures:
                parts.append(_figure(r.figures[role], r.captions.get(role, "")))
                shown += 1
    if not shown:
        parts.append('<p class="meta">No chart of this loss in this run.</p>')
    claims = [c for c in result.claims if info.function in c.losses]
    if claims:
        parts.append("<h4>Claims, measured</h4><ul>" + "".join(_claim_ref(c) for c in claims) + "</ul>")
    use = [s for r in result.results for s in r.advice.get(info.function, {}).get("use", [])]
    avoid = [s for r in result.results for s in r.advice.get(info.function, {}).get("avoid", [])]
    parts.append("<h4>When to use / when not</h4>")
    if use or avoid:
        li = lambda xs: "".join(f"<li>{_e(x)}</li>" for x in xs) or "<li>nothing measured stood out</li>"  # noqa: E731
        parts.append(
            f'<div class="advice"><div><b>Use for</b><ul>{li(use)}</ul></div><div><b>Avoid for</b><ul>{li(avoid)}</ul></div></div>'
        )
    else:
        parts.append(
            '<p class="meta">Not measured here: no experiment of this atlas run compares this loss.</p>'
        )
    parts.append("</article>")
    return "".join(parts)


METHOD = (
    "Every claim is measured once per seed (a seed is a full replication: new data split or draw, "
    "initialisation and batch order; for the DIoU simulation a new block of anchor centres), and every "
    "method of a claim runs on the same seeds, so the per-seed effect is a paired difference, signed so "
    "that positive is the claimed direction. The report gives the mean effect with its 95% Student t "
    "interval over seeds. Each claim states a minimal meaningful effect delta. A claim that one method is "
    "better <b>held</b> when the interval excludes 0 in the claimed direction and the mean exceeds delta, "
    "<b>did not hold</b> when the interval excludes 0 the other way or lies inside the negligible band "
    "(-delta, delta), and is <b>inconclusive</b> otherwise. A claim that a method matches another "
    "(non-inferiority) held when the whole interval lies above -delta. A claim is also inconclusive, with "
    "the reason shown, when the experiment cannot resolve it: every method compared within a stated margin "
    "of chance or of the ceiling, a validity check stated with the claim failed (a learned parameter the "
    "claim depends on never left its initialisation), or fewer than two seeds. A measurement with no "
    "randomness (the bytes a computation allocates) is one exact, <b>deterministic</b> measurement: such a "
    "claim held when its bound is met at every measured size, and did not hold otherwise."
)


def write_report(result: AtlasResult) -> Path:
    """Write ``result.out/index.html`` and the formula images; return the index path."""
    out = result.out
    by_key = {r.key: r for r in result.results}
    claims = result.claims
    counts = {v: sum(c.verdict == v for c in claims) for v in (HELD, INCONCLUSIVE, NOT_HELD)}
    families = [
        f
        for f in FAMILY_TABLE
        if any(k in by_key for k in (f"chart-{f.key}", f"params-{f.key}", f.experiment))
    ]
    nav = [
        '<a href="#summary">Summary</a>',
        '<a href="#method">How verdicts are decided</a>',
        '<a href="claims.json">claims.json</a>',
    ]
    nav += [f'<a href="#family-{_e(f.key)}">{_e(f.title)}</a>' for f in families]
    steps_rows = "".join(
        f"<tr><td>{_e(r.title)}</td><td>{_e(r.status)}</td><td>{_e(r.headline or (r.note.splitlines()[0] if r.note else ''))}</td>"
        f"<td>{r.seconds:.1f} s</td></tr>"
        for r in result.results
    )
    summary = (
        '<section id="summary"><h2>Summary</h2>'
        f"<p>{len(claims)} claims tested: {_badge(HELD)} {counts[HELD]} · {_badge(INCONCLUSIVE)} {counts[INCONCLUSIVE]} · "
        f"{_badge(NOT_HELD)} {counts[NOT_HELD]}. {MODE_NOTE[result.mode]} The same records, for machines: "
        '<a href="claims.json">claims.json</a>.</p>'
        f"{claims_table(claims)}"
        f'<h3>Steps</h3><table class="steps"><tr><th>Step</th><th>Status</th><th>Result</th><th>Time</th></tr>{steps_rows}</table></section>'
        f'<section id="method"><h2>How verdicts are decided</h2><p>{METHOD}</p></section>'
    )
    body = [summary]
    for fam in families:
        infos = family_losses(fam)
        formulas = {i.function: _render_formula(i.function, out) for i in infos}
        parts = [f'<section id="family-{_e(fam.key)}"><h2>{_e(fam.title)}</h2><p>{_e(fam.intro)}</p>']
        parts.append(
            '<p class="toc">Losses: '
            + " · ".join(f'<a href="#loss-{_e(i.function)}">{_e(i.title)}</a>' for i in infos)
            + "</p>"
        )
        chart = by_key.get(f"chart-{fam.key}")
        if chart is not None:
            parts.append("<h3>The family compared</h3>")
            if chart.status == "ok":
                parts.extend(_figure(f, chart.captions.get(role, "")) for role, f in chart.figures.items())
            else:
                parts.append(
                    f'<p class="status-na">{_e(chart.status)}: {_e(chart.note.splitlines()[0] if chart.note else "")}</p>'
                )
        if fam.experiment and fam.experiment in by_key:
            parts.append(_experiment_html(by_key[fam.experiment], out))
        parts.extend(_loss_article(i, result, formulas[i.function]) for i in infos)
        parts.append("</section>")
        body.append("".join(parts))
    from .. import __version__

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>losskit atlas</title><style>{CSS}</style></head>
<body><header><h1>losskit atlas</h1>
<p>Every loss in losskit as a picture and a measurement: its formula, defaults and paper, its curves over its own
parameters, and the claims people make about it, each tested over several seeds by an experiment on data shipped
with a package (scikit-learn's digits and diabetes data, the glyphs of matplotlib's fonts; nothing is downloaded),
with a verdict computed from a 95% interval. Mode: <b>{_e(result.mode)}</b>, losskit {_e(__version__)},
{result.seconds:.0f} s.</p></header>
<nav>{" ".join(nav)}</nav>
<main>{"".join(body)}</main>
<footer>Generated by <code>losskit atlas</code>. Static page: no scripts, no network.</footer>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
