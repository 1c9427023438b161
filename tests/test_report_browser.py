"""Open the atlas report and the documentation site in a real headless Chromium: every image renders,
every formula has a size, no script or resource errors.

Chromium comes from Debian's packages (``scripts/install_chromium.sh``, run by ``make test``; skip it
with ``make test SKIP_BROWSER=1``, and these tests skip). A probe script is added to a copy of each
page (beside it, so relative paths hold); it records every image's ``naturalWidth``, every formula's
rendered size and every ``error`` event (script errors and resources that fail to load) into the DOM,
which ``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from test_atlas import atlas_report  # noqa: F401  (the shared session fixture)

try:
    from test_docs import site
except pytest.skip.Exception:  # the docs tools are not installed

    @pytest.fixture
    def site():
        pytest.skip("the documentation tools (the docs extra) are not installed")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed: run scripts/install_chromium.sh (or make browser)"
)

PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target && e.target !== window ? (e.target.src || e.target.href || e.target.tagName) : "";
  window.__errors.push(String(e.message || e.type) + (t ? " " + t : ""));
}, true);
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var maths = Array.prototype.slice.call(document.getElementsByTagName("math"));
  var out = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                .map(function (i) { return i.getAttribute("src"); }),
    math: maths.length,
    flat_math: maths.filter(function (m) {
      var r = m.getBoundingClientRect(); return r.width < 2 || r.height < 2;
    }).length,
    errors: window.__errors,
    sections: document.querySelectorAll("section").length,
    articles: document.querySelectorAll("article").length,
    title: document.title
  };
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(*args, tmp_path):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--allow-file-access-from-files",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _probe(page, tmp_path) -> dict:
    """Open a copy of ``page`` with the probe in its <head> and return what the probe saw."""
    html = page.read_text(encoding="utf-8")
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        proc = _chromium("--dump-dom", probe.as_uri(), tmp_path=tmp_path)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"probe did not run on {page}; stderr: {proc.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<"))


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_report_renders_in_chromium(atlas_report, tmp_path):  # noqa: F811
    out, result = atlas_report
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page  # static report: nothing to go wrong at run time
    data = _probe(out / "index.html", tmp_path)
    assert data["title"] == "losskit atlas"
    assert data["images"] >= 60  # family charts, experiments, forest plots, every loss's own charts
    assert data["broken"] == []
    assert data["errors"] == []
    assert data["articles"] >= 30 and data["sections"] >= 6


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_report_screenshot(atlas_report, tmp_path):  # noqa: F811
    out, _ = atlas_report
    shot = tmp_path / "report.png"
    proc = _chromium(
        f"--screenshot={shot}", "--window-size=1280,2400", (out / "index.html").as_uri(), tmp_path=tmp_path
    )
    assert shot.exists(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # not a blank page


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
@pytest.mark.parametrize(
    ("page", "min_math"),
    [
        ("index.html", 0),
        ("api/focal.html", 5),
        ("api/margin.html", 20),
        ("api/boxes.html", 5),
        ("howto/detector.html", 0),
        ("howto/faces-million.html", 0),
        ("howto/guide.html", 0),
        ("benchmarks.html", 0),
        ("atlas.html", 0),
        ("atlas/index.html", 0),
    ],
)
def test_site_renders_in_chromium(site, page, min_math, tmp_path):
    out, proc = site
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = _probe(out / page, tmp_path)
    assert data["broken"] == [], data["broken"]
    assert data["errors"] == [], data["errors"]
    assert data["math"] >= min_math
    assert data["flat_math"] == 0  # every formula rendered with a size
