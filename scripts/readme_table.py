"""Rewrite the loss table in README.md from ``losskit.catalog`` (between the table markers)."""

from __future__ import annotations

import re
from pathlib import Path

from losskit.catalog import CATALOG

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- loss-table:start -->", "<!-- loss-table:end -->"


def table() -> str:
    rows = ["| family | loss | paper | function | Module |", "|---|---|---|---|---|"]
    for info in CATALOG:
        paper = f"[{info.paper}]({info.url})" if info.url else info.paper
        rows.append(f"| {info.family} | {info.title} | {paper} | `{info.function}` | `{info.module}` |")
    return "\n".join(rows)


def main() -> None:
    text = README.read_text()
    new = re.sub(f"{re.escape(START)}.*?{re.escape(END)}", f"{START}\n{table()}\n{END}", text, flags=re.S)
    README.write_text(new)


if __name__ == "__main__":
    main()
