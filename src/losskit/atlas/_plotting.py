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
