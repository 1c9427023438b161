"""The documentation site: built strictly from the docstrings (a broken reference, a missing docstring
or a formula that does not render fails the build), with every public name, the how-to pages, the
benchmark tables and the atlas report as pages; every internal link and image of it resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("latex2mathml")
pytest.importorskip("furo")

from test_atlas import atlas_report  # noqa: F401  (the shared session fixture)

ROOT = Path(__file__).resolve().parents[1]
_SITE: dict = {}


@pytest.fixture(scope="session")
def site(atlas_report, tmp_path_factory):  # noqa: F811
    """``sphinx-build -W -n`` of docs/ with the tiny atlas report: (output folder, completed process)."""
    if "site" in _SITE:
        return _SITE["site"]
    report, result = atlas_report
    assert result.exit_code == 0, result.output
    out = tmp_path_factory.mktemp("site") / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         "-D", f"losskit_atlas={report}", str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )  # fmt: skip
    _SITE["site"] = (out, proc)
    return out, proc


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.imgs: list[str] = []
        self.math = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.imgs.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") == "stylesheet":
            self.imgs.append(a["href"])
        if tag == "math":
            self.math += 1


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_site_builds_strictly(site):
    out, proc = site
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    for page in (
        "index.html",
        "conventions.html",
        "howto/detector.html",
        "howto/faces-million.html",
        "howto/guide.html",
        "benchmarks.html",
        "atlas.html",
        "atlas/index.html",
        "atlas/claims.json",
        "api/index.html",
    ):
        assert (out / page).is_file(), page


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_every_public_name_is_documented_with_its_formula(site):
    import losskit.distributed as LD
    import losskit.functional as LF
    import losskit.nn as LN
    from losskit.catalog import CATALOG

    out, proc = site
    assert proc.returncode == 0, proc.stderr[-4000:]
    api = {p.name: p.read_text(encoding="utf-8") for p in (out / "api").glob("*.html")}
    ids = {i for text in api.values() for i in re.findall(r'id="(losskit\.[\w.]+)"', text)}
    for ns, mod in (("losskit.functional", LF), ("losskit.nn", LN), ("losskit.distributed", LD)):
        for name in mod.__all__:
            assert f"{ns}.{name}" in ids, f"{ns}.{name} is not on any API page"
    # every catalogued loss: its formula rendered as MathML, its defaults in the signature, its paper
    for info in CATALOG:
        fid = f"losskit.functional.{info.function}"
        page = next(text for text in api.values() if f'id="{fid}"' in text)
        block = page[page.index(f'id="{fid}"') :]
        block = block[: block.find('<dl class="py', 10) if '<dl class="py' in block[10:] else len(block)]
        assert "<math" in block, f"{info.function}: no formula rendered"
        assert "reduction" in block, f"{info.function}: signature not shown"
        assert re.search(r"(arxiv\.org|doi\.org|https?://)", block) or info.paper.split(",")[0] in block, (
            f"{info.function}: no paper"
        )


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_every_link_and_image_of_the_site_resolves(site):
    out, proc = site
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = {p: _parse(p) for p in out.rglob("*.html") if "_static" not in p.parts}
    checked = 0
    for path, page in pages.items():
        for ref in page.links + page.imgs:
            url = urlparse(ref)
            if url.scheme in ("http", "https", "mailto"):
                continue  # external (papers): not fetched, the site has no network
            assert not url.scheme, f"{path}: {ref}"
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            assert target.exists(), f"{path.relative_to(out)}: broken link {ref}"
            if url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                assert url.fragment in ids, f"{path.relative_to(out)}: no anchor {ref}"
            checked += 1
    assert checked > 200
    assert pages[out / "howto" / "faces-million.html"].links  # the how-to pages link into the API
    benchmarks = (out / "benchmarks.html").read_text(encoding="utf-8")
    assert "<table" in benchmarks and "losskit" in benchmarks  # the benchmark tables, rendered
    atlas = (out / "atlas.html").read_text(encoding="utf-8")
    assert 'href="atlas/index.html"' in atlas and "Minimal effect" in atlas and "seeds" in atlas.lower()
