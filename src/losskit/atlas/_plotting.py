"""Shared matplotlib set-up: the Agg backend and one house style for every figure."""

from __future__ import annotations

from pathlib import Path

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")


def use_agg() -> None:
    """Select the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)


def pyplot():
    """matplotlib.pyplot with the Agg backend and the atlas style."""
    use_agg()
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.prop_cycle": plt.cycler(color=PALETTE),
            "font.size": 9,
            "axes.titlesize": 10,
            "legend.fontsize": 8,
            "legend.frameon": False,
        }
    )
    return plt


def save(fig, out: Path, name: str) -> str:
    """Save ``fig`` as ``out/name`` (PNG), close it, and return the file name."""
    fig.tight_layout()
    fig.savefig(out / name, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def seed_bars(ax, table: dict[str, list[float]], labels: list[str], *, rotation: int = 20) -> None:
    """One bar per key of ``table`` (per-seed values): the mean over seeds, its 95% t interval (black,
    where every key has more than one seed) and each seed (dots), labelled ``labels`` in order."""
    from .stats import paired_interval

    keys = list(table)
    ivs = [paired_interval(table[k]) for k in keys]
    xs = range(len(keys))
    ax.bar(xs, [iv.mean for iv in ivs], color=[PALETTE[i % len(PALETTE)] for i in xs], alpha=0.8)
    if all(iv.n > 1 for iv in ivs):
        ax.errorbar(
            xs,
            [iv.mean for iv in ivs],
            yerr=[[iv.mean - iv.low for iv in ivs], [iv.high - iv.mean for iv in ivs]],
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1,
        )
    for i, k in enumerate(keys):
        ax.scatter([i] * len(table[k]), table[k], s=6, color="black", zorder=3)
    ax.set_xticks(list(xs), labels, rotation=rotation, ha="right")
