"""The atlas engine: verdict rules, curves, the guide, and one full --quick run checked for structure."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from losskit.atlas import FAMILIES, Unavailable, require, run_atlas
from losskit.atlas.curves import PROBES, loss_curve
from losskit.atlas.guide import TASKS, recommend
from losskit.atlas.verdicts import HELD, MIXED, NOT_HELD, Claim, by_threshold, by_wins, combine
from losskit.catalog import CATALOG


# ---------------------------------------------------------------- verdict rules
@pytest.mark.parametrize(("value", "expected"), [(0.1, HELD), (0.5, MIXED), (0.8, MIXED), (1.2, NOT_HELD)])
def test_by_threshold(value, expected):
    assert by_threshold(value, held_if_below=0.5, not_held_if_above=1.0) == expected


def test_by_threshold_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="held_if_below must be <= not_held_if_above"):
        by_threshold(0.1, held_if_below=2.0, not_held_if_above=1.0)


@pytest.mark.parametrize(
    ("diffs", "expected"),
    [
        ([0.05, 0.02, 0.0], HELD),  # ahead in 2 of 3, behind nowhere
        ([0.05, -0.05], MIXED),  # ahead once, behind once
        ([0.05, 0.0, 0.0], MIXED),  # ahead in under half
        ([0.0, -0.05], NOT_HELD),  # ahead nowhere
        ([0.005, 0.009], NOT_HELD),  # inside the margin counts as no win
    ],
)
def test_by_wins(diffs, expected):
    assert by_wins(diffs, margin=0.01) == expected


def test_combine():
    assert combine(HELD, HELD) == HELD
    assert combine(NOT_HELD, NOT_HELD) == NOT_HELD
    assert combine(HELD, NOT_HELD) == MIXED


def test_claim_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("x", "s", "src", ("l1_loss",), "rule", "true", "e")


def test_require_names_missing_losses():
    with pytest.raises(Unavailable, match="needs no_such_loss, not in this build"):
        require("l1_loss", "no_such_loss")


def test_run_atlas_rejects_bad_mode_and_family(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        run_atlas(tmp_path, mode="huge")
    with pytest.raises(ValueError, match="only must be one of"):
        run_atlas(tmp_path, only="vision")


# ---------------------------------------------------------------- curves
def test_regression_curves_match_hand_values():
    # Huber (delta=1): 0.5 d^2 inside, |d| - 0.5 outside; gradient d inside, sign(d) outside.
    x, loss, grad = loss_curve("huber_loss", {"delta": 1.0}, n=7)  # x = -3, -2, ..., 3
    torch.testing.assert_close(loss, torch.tensor([2.5, 1.5, 0.5, 0.0, 0.5, 1.5, 2.5], dtype=torch.float64))
    torch.testing.assert_close(
        grad, torch.tensor([-1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    )
    # MSE: d^2 and 2d
    x, loss, grad = loss_curve("mse_loss", n=7)
    torch.testing.assert_close(loss, x**2)
    torch.testing.assert_close(grad, 2 * x)


def test_focal_curve_follows_the_paper():
    # FL(p_t) = -(1 - p_t)^gamma log p_t with alpha=None: at p_t = 0.5, gamma = 2: 0.25 * ln 2 = 0.173287
    _x, loss, _ = loss_curve("sigmoid_focal_loss", {"gamma": 2.0, "alpha": None}, n=3)
    grid = torch.tensor([0.002, 0.5, 0.998], dtype=torch.float64)
    torch.testing.assert_close(loss, -((1 - grid) ** 2) * torch.log(grid))
    assert loss[1].item() == pytest.approx(0.173287, abs=1e-6)


def test_margin_curve_recovers_target_logit():
    # one other class at logit 0 and scale 1: loss = softplus(-f); CosFace f = cos(theta) - m
    x, loss, _ = loss_curve("cosface_loss", {"scale": 1.0, "margin": 0.35}, n=5)
    f = -torch.log(torch.expm1(loss))
    torch.testing.assert_close(f, torch.cos(x) - 0.35)


def test_every_probe_names_a_catalogued_loss():
    names = {i.function for i in CATALOG}
    assert set(PROBES) <= names
    with pytest.raises(KeyError, match="no curve for 'nope'"):
        loss_curve("nope")


# ---------------------------------------------------------------- guide
@pytest.mark.parametrize("task", TASKS)
def test_guide_recommends_catalogued_losses(task):
    names = {i.function for i in CATALOG}
    recs = recommend(task, outliers=True, imbalance=1000, num_classes=10)
    assert recs
    for r, evidence in recs:
        assert r.function in names and r.reason and evidence == ""


def test_guide_regression_outliers_prefers_robust_losses():
    robust = [r.function for r, _ in recommend("regression", outliers=True)]
    clean = [r.function for r, _ in recommend("regression", outliers=False)]
    assert "mse_loss" not in robust and robust[0] == "huber_loss"
    assert clean[0] == "mse_loss"


def test_guide_rejects_bad_arguments():
    with pytest.raises(ValueError, match="task must be one of"):
        recommend("vision")
    with pytest.raises(ValueError, match="imbalance must be >= 1"):
        recommend("classification", imbalance=0.5)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        recommend("classification", num_classes=1)


# ---------------------------------------------------------------- the full --quick atlas
class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.sections = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "section":
            self.sections += 1


_QUICK_RUN: dict = {}  # the fixture is imported by test_report_browser too: run the atlas once per process


@pytest.fixture(scope="session")
def quick_atlas(tmp_path_factory):
    """One complete ``losskit atlas --quick`` run through the command line, shared by the report tests."""
    if "run" in _QUICK_RUN:
        return _QUICK_RUN["run"]
    from typer.testing import CliRunner

    from losskit.cli import build_app

    out = tmp_path_factory.mktemp("atlas") / "report"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLUMNS", "200")
    result = CliRunner().invoke(build_app(), ["atlas", "--quick", "--out", str(out)])
    mp.undo()
    _QUICK_RUN["run"] = (out, result)
    return out, result


@pytest.mark.slow
@pytest.mark.xdist_group("atlas-quick")
def test_quick_atlas_report_structure(quick_atlas):
    out, result = quick_atlas
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output and "verdict" in result.output  # summary table printed
    data = json.loads((out / "results.json").read_text())
    assert data["mode"] == "quick"
    status = {s["key"]: s["status"] for s in data["steps"]}
    assert set(status) >= {"regression", "imbalance", "boxes", "faces"}
    assert all(v == "ok" for v in status.values()), status  # every family works at the end
    claims = [c for s in data["steps"] for c in s["claims"]]
    assert len(claims) >= 15
    assert {c["verdict"] for c in claims} <= {HELD, MIXED, NOT_HELD}

    refs = _Refs()
    refs.feed((out / "index.html").read_text(encoding="utf-8"))
    for src in refs.imgs:  # every image the report references exists beside it, and is not empty
        assert not re.match(r"^[a-z]+:", src) and not src.startswith("/"), src  # relative, no network
        assert (out / src).stat().st_size > 200, src
    for i in CATALOG:  # one section per loss
        assert f"loss-{i.function}" in refs.ids
    for c in claims:
        assert f"claim-{c['id']}" in refs.ids
    for h in refs.hrefs:  # every in-page link lands
        if h.startswith("#"):
            assert h[1:] in refs.ids, h
    assert refs.sections >= len(CATALOG) + 5
    nav = re.search(r"<nav>(.*?)</nav>", (out / "index.html").read_text(encoding="utf-8")).group(1)
    labels = re.findall(r">([^<]+)</a>", nav)
    assert len(labels) == len(set(labels)), labels  # no two links read the same ("Focal loss" twice)


@pytest.mark.slow
@pytest.mark.xdist_group("atlas-quick")
def test_quick_atlas_is_reproducible(quick_atlas, tmp_path):
    # the cheapest family again: same seed, same numbers
    out, _ = quick_atlas
    first = json.loads((out / "results.json").read_text())
    again = run_atlas(tmp_path, mode="quick", only="regression")
    (reg,) = [s for s in first["steps"] if s["key"] == "regression"]
    (reg2,) = [r for r in again.results if r.key == "regression"]
    for name, values in reg["metrics"]["rmse_mean"].items():
        assert reg2.metrics["rmse_mean"][name] == pytest.approx(values, rel=1e-12)
    assert [c.verdict for c in reg2.claims] == [c["verdict"] for c in reg["claims"]]


def test_missing_family_degrades_to_a_note(tmp_path, monkeypatch):
    import losskit.functional as LF

    monkeypatch.delattr(LF, "l1_loss")
    result = run_atlas(tmp_path, mode="tiny", only="regression")
    assert {r.status for r in result.results} == {"not available"}
    assert all("l1_loss" in r.note for r in result.results)
    page = (tmp_path / "index.html").read_text()
    assert "not available" in page and "Not available in this build" in page


def test_families_cover_every_step():
    from losskit.atlas import steps

    assert {s.family for s in steps()} == set(FAMILIES)
