"""Open the atlas report in a real headless Chromium: every image renders, no script errors.

Chromium comes from Debian's packages (``scripts/install_chromium.sh``, run by the test set-up). The
page itself has no scripts; the test adds a probe script to a copy of it that records every image's
``naturalWidth`` and any ``window.onerror`` into the DOM, which ``--dump-dom`` then prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from test_atlas import quick_atlas  # noqa: F401  (the shared session fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed: run scripts/install_chromium.sh"
)

PROBE = """
<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message || e.type)); }, true);
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                .map(function (i) { return i.getAttribute("src"); }),
    errors: window.__errors,
    sections: document.querySelectorAll("section").length,
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
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.xdist_group("atlas-quick")
def test_report_renders_in_chromium(quick_atlas, tmp_path):  # noqa: F811
    out, result = quick_atlas
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page  # static report: nothing to go wrong at run time
    probe = out / "_probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    try:
        proc = _chromium("--dump-dom", probe.as_uri(), tmp_path=tmp_path)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"probe did not run; stderr: {proc.stderr[-2000:]}"
    data = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert data["title"] == "losskit atlas"
    assert data["images"] >= 30
    assert data["broken"] == []
    assert data["errors"] == []
    assert data["sections"] >= 30


@pytest.mark.slow
@pytest.mark.xdist_group("atlas-quick")
def test_report_screenshot(quick_atlas, tmp_path):  # noqa: F811
    out, _ = quick_atlas
    shot = tmp_path / "report.png"
    proc = _chromium(
        f"--screenshot={shot}", "--window-size=1280,2400", (out / "index.html").as_uri(), tmp_path=tmp_path
    )
    assert shot.exists(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # not a blank page
