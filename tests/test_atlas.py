"""The atlas: the statistics and the verdict rule on constructed cases, curves, the guide, the family
registry, the experiments' design, and one complete (tiny) run checked for the report's and
claims.json's structure."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from losskit.atlas import FAMILIES, FAMILY_TABLE, Unavailable, family_losses, require, run_atlas, steps
from losskit.atlas.curves import OWN, PROBES, loss_curve
from losskit.atlas.guide import TASKS, load_claims, recommend
from losskit.atlas.stats import (
    DETERMINISTIC,
    HELD,
    INCONCLUSIVE,
    NON_INFERIORITY,
    NOT_HELD,
    Resolution,
    bootstrap_interval,
    compare_to_best,
    decide,
    paired_interval,
    t_quantile,
)
from losskit.atlas.verdicts import Claim
from losskit.catalog import CATALOG


# ---------------------------------------------------------------- the interval
def test_t_quantile_matches_tables():
    # Student t, two-sided 95%: 12.706 (df 1), 2.776 (df 4), 2.262 (df 9), 1.960 in the limit
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 9) == pytest.approx(2.2622, abs=1e-4)
    assert t_quantile(0.975, 10**6) == pytest.approx(1.95996, abs=1e-4)


def test_paired_interval_by_hand():
    # effects 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), half-width 2.7764 * sqrt(2.5) / sqrt(5) = 1.96324
    iv = paired_interval([1, 2, 3, 4, 5])
    assert iv.mean == pytest.approx(3.0)
    assert iv.sd == pytest.approx(math.sqrt(2.5))
    assert iv.low == pytest.approx(3 - 1.963243, abs=1e-5) and iv.high == pytest.approx(
        3 + 1.963243, abs=1e-5
    )
    assert iv.n == 5 and iv.level == 0.95


def test_paired_interval_edge_cases():
    one = paired_interval([2.0])
    assert one.mean == 2.0 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(paired_interval([1.0, float("nan")]).mean)
    same = paired_interval([0.5, 0.5, 0.5])  # no spread: a zero-width interval
    assert same.low == same.high == 0.5
    with pytest.raises(ValueError, match="needs at least one effect"):
        paired_interval([])


def test_bootstrap_and_t_agree_on_a_large_normal_sample():
    x = (torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1).tolist()
    t, b = paired_interval(x), bootstrap_interval(x)
    assert b.method == "bootstrap"
    assert b.low == pytest.approx(t.low, abs=0.03) and b.high == pytest.approx(t.high, abs=0.03)


# ---------------------------------------------------------------- the verdict rule, constructed cases
@pytest.mark.parametrize(
    ("effects", "verdict", "why"),
    [
        ([2.0, 2.5, 3.0, 2.2, 2.8], HELD, "excludes 0 and the mean effect exceeds 1"),
        ([-2.0, 1.5, 3.0, -1.0, 2.0], INCONCLUSIVE, "includes 0"),  # an interval across zero
        ([-2.0, -2.5, -3.0, -2.2, -2.8], NOT_HELD, "opposite direction"),
        ([0.1, -0.1, 0.2, 0.0, 0.05], NOT_HELD, "inside the negligible band"),
        ([0.5, 0.6, 0.55, 0.45, 0.7], NOT_HELD, "inside the negligible band"),  # real but negligible
        ([0.6, 1.3, 0.8, 1.5, 0.7], INCONCLUSIVE, "not shown to exceed"),  # real, maybe meaningful
        ([3.0], INCONCLUSIVE, "only 1 seed"),
        ([1.0, float("nan"), 2.0], INCONCLUSIVE, "undefined"),
    ],
)
def test_superiority_rule(effects, verdict, why):
    d = decide(effects, delta=1.0)
    assert d.verdict == verdict and why in d.reason


@pytest.mark.parametrize(
    ("effects", "verdict"),
    [
        ([0.1, -0.2, 0.3, 0.0, -0.1], HELD),  # the whole interval above -delta: matches
        ([2.0, 3.0, 2.5, 2.2, 2.8], HELD),  # beats
        ([-3.0, -2.5, -2.8, -3.2, -2.6], NOT_HELD),  # clearly worse
        ([-3.0, 1.0, -2.0, 0.5, -1.5], INCONCLUSIVE),  # may be worse, may not
    ],
)
def test_non_inferiority_rule(effects, verdict):
    assert decide(effects, delta=1.0, kind=NON_INFERIORITY).verdict == verdict


def test_deterministic_rule():
    # one exact measurement: the margin by which the bound is met at the worst size decides, no interval
    held = decide([3.5], delta=0.01, kind=DETERMINISTIC)
    assert held.verdict == HELD and held.interval.low == held.interval.high == 3.5
    assert decide([0.0], delta=0.01, kind=DETERMINISTIC).verdict == HELD  # the bound met exactly
    assert decide([-0.2], delta=0.01, kind=DETERMINISTIC).verdict == NOT_HELD
    assert decide([float("nan")], delta=0.01, kind=DETERMINISTIC).verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="one measurement"):
        decide([1.0, 2.0], delta=0.01, kind=DETERMINISTIC)
    c = Claim.measure(**{**_claim_kwargs(), "unit": "points"}, effects=[2.0], kind=DETERMINISTIC)
    assert c.interval_text() == "+2 points (exact: one deterministic measurement)"
    d = c.to_dict()
    assert d["verdict"] == HELD and d["interval"]["method"] == "exact" and "no randomness" in d["rule"]


def test_unresolvable_experiments_are_inconclusive_with_the_reason():
    clear = [5.0, 6.0, 5.5, 6.5, 5.2]  # would be held
    assert decide(clear, delta=1.0).verdict == HELD
    chance = Resolution({"ArcFace": 51.0, "softmax": 52.5}, chance=50.0, ceiling=100.0, margin=3.0)
    d = decide(clear, delta=1.0, resolution=chance)
    assert d.verdict == INCONCLUSIVE and "of chance" in d.reason and "ArcFace 51" in d.reason
    ceiling = Resolution({"focal": 99.4, "CE": 98.9}, chance=1.0, ceiling=100.0, margin=2.0)
    d = decide(clear, delta=1.0, resolution=ceiling)
    assert d.verdict == INCONCLUSIVE and "ceiling" in d.reason
    check = Resolution({"A": 70.0, "B": 80.0}, 50.0, 100.0, 3.0, invalid="a learned bias never moved")
    d = decide(clear, delta=1.0, resolution=check)
    assert d.verdict == INCONCLUSIVE and d.reason == "a learned bias never moved"
    # one method away from chance is enough to resolve
    fine = Resolution({"ArcFace": 51.0, "softmax": 80.0}, chance=50.0, ceiling=100.0, margin=3.0)
    assert decide(clear, delta=1.0, resolution=fine).verdict == HELD


def test_decide_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"delta .* must be > 0"):
        decide([1.0, 2.0], delta=0.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        decide([1.0, 2.0], delta=1.0, kind="better")


def test_compare_to_best():
    scores = {"a": [80.0, 81.0, 79.0, 80.5], "b": [79.8, 80.9, 79.2, 80.1], "c": [70.0, 71.0, 69.0, 70.5]}
    st = compare_to_best(scores, delta=1.0)
    assert st["a"].status == "best" and st["b"].status == "tied" and st["c"].status == "worse"
    assert st["c"].mean == pytest.approx(-10.0)
    low = compare_to_best({"x": [1.0, 1.1], "y": [2.0, 2.2]}, delta=0.5, higher_is_better=False)
    assert low["x"].status == "best" and low["y"].best == "x"


def test_claim_record():
    c = Claim.measure(
        id="x-beats-y",
        statement="X beats Y.",
        source="folklore",
        losses=("l1_loss", "mse_loss"),
        effect_name="X minus Y",
        unit="points",
        delta=1.0,
        effects=[2.0, 2.5, 3.0, 2.2, 2.8],
        resolution=Resolution({"X": 80.0, "Y": 77.5}, 50.0, 100.0, 3.0),
    )
    d = c.to_dict()
    assert d["verdict"] == HELD and d["loss"] == "l1_loss" and d["seeds"] == 5
    assert d["effect"] == pytest.approx(2.5)
    assert d["interval"]["low"] < 2.5 < d["interval"]["high"] and d["interval"]["level"] == 0.95
    assert d["minimal_effect"] == 1.0 and "held if the interval excludes 0" in d["rule"]
    assert set(d) >= {"claim", "loss", "verdict", "effect", "interval", "seeds", "rule"}
    assert c.interval_text().startswith("+2.5 points [") and c.interval_text().endswith("5 seeds")
    json.dumps(d, allow_nan=False)  # valid JSON: no NaN
    one = Claim.measure(**{**_claim_kwargs(), "effects": [1.0]}).to_dict()
    assert one["interval"]["low"] is None
    json.dumps(one, allow_nan=False)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim(**{**c.__dict__, "verdict": "mixed"})


def _claim_kwargs():
    return dict(id="c", statement="s", source="src", losses=("l1_loss",), effect_name="e", unit="", delta=1.0)


def test_require_names_missing_losses():
    with pytest.raises(Unavailable, match="needs no_such_loss, not in this build"):
        require("l1_loss", "no_such_loss")


def test_run_atlas_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        run_atlas(tmp_path, mode="huge")
    with pytest.raises(ValueError, match="only must be one of"):
        run_atlas(tmp_path, only="vision")
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        run_atlas(tmp_path, only="regression", threads=0)


# ---------------------------------------------------------------- curves
def test_regression_curves_match_hand_values():
    # Huber (delta=1): 0.5 d^2 inside, |d| - 0.5 outside; gradient d inside, sign(d) outside.
    x, loss, grad = loss_curve("huber_loss", {"delta": 1.0}, n=7)  # x = -3, -2, ..., 3
    torch.testing.assert_close(loss, torch.tensor([2.5, 1.5, 0.5, 0.0, 0.5, 1.5, 2.5], dtype=torch.float64))
    torch.testing.assert_close(
        grad, torch.tensor([-1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    )
    x, loss, grad = loss_curve("mse_loss", n=7)
    torch.testing.assert_close(loss, x**2)
    torch.testing.assert_close(grad, 2 * x)


def test_focal_curve_follows_the_paper():
    # FL(p_t) = -(1 - p_t)^gamma log p_t with alpha=None: at p_t = 0.5, gamma = 2: 0.25 * ln 2 = 0.173287
    _x, loss, _ = loss_curve("sigmoid_focal_loss", {"gamma": 2.0, "alpha": None}, n=3)
    grid = torch.tensor([0.002, 0.5, 0.998], dtype=torch.float64)
    torch.testing.assert_close(loss, -((1 - grid) ** 2) * torch.log(grid))
    assert loss[1].item() == pytest.approx(0.173287, abs=1e-6)


def test_pos_weight_curve_scales_the_positive_term():
    # BCE with pos_weight c on a positive: -c log p; the probe passes c as a tensor
    _x, loss, _ = loss_curve("binary_cross_entropy_with_logits", {"pos_weight": 3.0}, n=3)
    grid = torch.tensor([0.002, 0.5, 0.998], dtype=torch.float64)
    torch.testing.assert_close(loss, -3.0 * torch.log(grid))


def test_margin_curve_recovers_target_logit():
    # one other class at logit 0 and scale 1: loss = softplus(-f); CosFace f = cos(theta) - m
    x, loss, _ = loss_curve("cosface_loss", {"scale": 1.0, "margin": 0.35}, n=5)
    torch.testing.assert_close(-torch.log(torch.expm1(loss)), torch.cos(x) - 0.35)


def test_every_loss_shows_its_own_parameters():
    # every catalogued loss has its own chart; a chart over a parameter names one the function takes
    import inspect

    import losskit.functional as LF

    for info in CATALOG:
        assert info.function in OWN, f"{info.function} has no chart of its own (losskit.atlas.curves.OWN)"
        fn = getattr(LF, info.function, None)
        if fn is None:
            continue
        params = set(inspect.signature(fn).parameters)
        for spec in OWN[info.function]:
            names = [spec.param] if spec.param and "," not in spec.param else []
            names += [k for v in spec.values if isinstance(v, dict) for k in v] + list(spec.fixed)
            assert set(names) <= params, (info.function, names)
    expected = {
        "smooth_l1_loss": "beta",
        "huber_loss": "delta",
        "ghmc_loss": "momentum",
        "cosface_loss": "margin",
        "arcface_loss": "margin",
        "batch_triplet_loss": "mining",
        "generalized_box_iou_loss": "eps",
    }
    for name, param in expected.items():
        assert param in [s.param for s in OWN[name]], name
    assert {s.param for s in OWN["sigmoid_focal_loss"]} == {"gamma", "alpha"}
    assert {s.param for s in OWN["ghmc_loss"]} == {"bins", "momentum"}
    with pytest.raises(KeyError, match="no curve for 'nope'"):
        loss_curve("nope")
    assert {n for n in PROBES} <= {i.function for i in CATALOG} | {"facenet_triplet_loss"}


# ---------------------------------------------------------------- the family registry
def test_every_catalogued_loss_is_in_exactly_one_family():
    shown = [i.function for f in FAMILY_TABLE for i in family_losses(f)]
    assert sorted(shown) == sorted(i.function for i in CATALOG)
    assert {s.family for s in steps()} == set(FAMILIES)
    keys = [s.key for s in steps()]
    assert len(keys) == len(set(keys))
    for f in FAMILY_TABLE:  # a parameter step per family; its chart and experiment where it has them
        assert f"params-{f.key}" in keys
        assert f.chart is None or f"chart-{f.key}" in keys
        assert f.experiment is None or f.experiment in keys
    assert {"regression", "imbalance", "boxes", "faces", "contrastive", "lm_head"} <= {
        f.experiment for f in FAMILY_TABLE
    }


# ---------------------------------------------------------------- the experiments' design
def test_experiments_have_the_power_to_answer():
    from losskit.atlas.experiments import boxes, contrastive, faces, imbalance, regression

    for mod in (regression, imbalance, faces, contrastive):
        assert mod.SCALES["quick"]["seeds"] >= 5 and mod.SCALES["full"]["seeds"] >= 10
    assert boxes.SCALES["quick"]["replicates"] >= 5 and boxes.SCALES["full"]["replicates"] >= 10
    assert boxes.SCALES["quick"]["points"] >= 200
    assert boxes.SCALES["full"]["points"] * 343 == 1_715_000  # the paper's cases
    assert faces.OPEN_IDS >= 20 and faces.SCALES["quick"]["dim"] >= 32 and faces.SCALES["full"]["dim"] >= 32
    # the contrastive claims: NT-Xent's low temperature at most 0.2 against 1, CLIP's batch against the
    # small one (SigLIP's claim at it, at most 64)
    assert contrastive.LOW_T <= 0.2 and contrastive.HIGH_T == 1.0 and contrastive.SMALL_B <= 64
    for cfg in contrastive.SCALES.values():
        assert max(cfg["batches"]) > contrastive.SMALL_B in cfg["batches"]
        assert contrastive.SMALL_B in cfg["siglip_batches"]
    # faces: the learning rates and the triplet options come from the validation sweep's grid
    assert set(faces.LR) == set(faces.LOSSES) and set(faces.LR.values()) <= set(faces.LR_GRID)
    assert faces.TRIPLET in faces.TRIPLET_GRID


def test_contrastive_scores_by_construction():
    from losskit.atlas.experiments.contrastive import halves, knn_accuracy, retrieval_at_1

    bank, labels = torch.eye(4), torch.arange(4)
    query = torch.eye(4)[[0, 1, 2, 3]] + 0.1 * torch.eye(4)[[1, 2, 3, 0]]  # each nearest its own row
    assert knn_accuracy(bank, labels, query, labels) == 100.0
    assert knn_accuracy(bank, labels, query, labels.roll(1)) == 0.0
    a = torch.eye(5)
    assert retrieval_at_1(a, a) == 100.0
    # a -> b right for rows 0..2 only (rows 3 and 4 swapped), and the same back: 60%
    assert retrieval_at_1(a, a[[0, 1, 2, 4, 3]]) == pytest.approx(60.0)
    left, right = halves(torch.arange(256.0)[None])
    assert left.shape == right.shape == (1, 128) and left[0, :8].tolist() == list(range(8))
    assert right[0, :8].tolist() == list(range(8, 16))


def test_peak_bytes_counts_live_storages():
    from losskit.atlas.experiments.lm_head import PeakBytes

    x = torch.ones(1000)  # made before the mode: not counted
    with PeakBytes() as mode:
        a = x * 2  # 4000 bytes
        b = a + 1  # 8000 alive
        v = b[:10]  # a view: no new storage
        b.mul_(2)  # in place: no new storage
        del a
        c = torch.ones(500)  # 6000 alive (b and c)
    assert mode.peak == 8000 and mode.now == 6000
    assert v.sum() > 0 and c.sum() == 500


def test_glyph_identities():
    from losskit.atlas.experiments import glyphs

    g = glyphs.load_glyphs()
    n, f, h, w = g.images.shape
    assert n == len(g.characters) >= 100 and f == len(glyphs.TYPEFACES) == 16 and h == w == glyphs.SIZE
    assert g.images.min() >= 0 and g.images.max() <= 1
    assert (g.images.flatten(2).sum(2) > 5).all()  # every character drawn by every typeface
    # look-alikes merged: no two kept characters whose median cosine over typefaces reaches 0.9
    flat = torch.nn.functional.normalize(g.images.flatten(2), dim=2)
    cos = torch.einsum("afd,bfd->abf", flat, flat).median(2).values - 2 * torch.eye(n)
    assert cos.max() < glyphs.LOOKALIKE
    assert "A" in g.characters and "А" not in g.characters  # Latin A kept, Cyrillic A merged into it
    x = glyphs.augment(g.images[:2, :3].flatten(0, 1), 4, torch.Generator().manual_seed(0))
    assert x.shape == (2 * 3 * 4, glyphs.SIZE**2)


def test_verification_accuracy_and_compactness_by_construction():
    from losskit.atlas.experiments.faces import compactness, verification_accuracy

    y = torch.arange(4).repeat_interleave(10)
    centres = torch.eye(8)[:4]
    tight = centres[y] + 0.01 * torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    assert verification_accuracy(tight, y, seed=0) == 100.0
    noise = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    assert 30.0 < verification_accuracy(noise, y, seed=0) < 70.0  # chance
    assert compactness(tight, y) < 0.05 < compactness(noise, y)


# ---------------------------------------------------------------- guide
def _write_claims(path, claims):
    (path / "claims.json").write_text(json.dumps({"claims": [c.to_dict() for c in claims]}))


@pytest.mark.parametrize("task", TASKS)
def test_guide_recommends_catalogued_losses(task, tmp_path):
    names = {i.function for i in CATALOG}
    recs = recommend(task, outliers=True, imbalance=1000, num_classes=10**6, report=tmp_path)
    assert recs
    for r, evidence in recs:
        assert r.function in names and r.reason and evidence == []  # no report: not measured here


def test_guide_shows_the_claim_verdict_and_interval(tmp_path):
    held = Claim.measure(
        **{**_claim_kwargs(), "id": "regression-huber-robust", "statement": "Huber is robust.", "unit": "%"},
        effects=[10.0, 12.0, 11.0, 13.0, 12.0],
    )
    _write_claims(tmp_path, [held])
    assert set(load_claims(tmp_path)) == {"regression-huber-robust"}
    recs = dict(recommend("regression", outliers=True, report=tmp_path))
    (huber,) = [r for r in recs if r.function == "huber_loss"]
    (ev,) = recs[huber]
    assert ev.verdict == HELD and ev.seeds == 5 and ev.effect == pytest.approx(11.6)
    assert ev.low < 11.6 < ev.high
    assert "HELD" in ev.text() and "5 seeds" in ev.text()
    (l1,) = [r for r in recs if r.function == "l1_loss"]
    assert recs[l1] == []  # the report did not measure that claim: not measured here


def test_guide_claim_ids_exist_in_the_experiments():
    import inspect

    from losskit.atlas.experiments import boxes, faces, imbalance, regression
    from losskit.atlas.guide import _recs

    source = "".join(inspect.getsource(m) for m in (boxes, faces, imbalance, regression))
    ids = set(re.findall(r'id=f?"([a-z0-9{}_.\-]+)"', source))
    ids |= {f"regression-{s}-{k}" for s in ("huber", "smooth-l1") for k in ("robust", "fast")}
    for task in TASKS:
        for r in _recs(task, True, 1000, 10**6) + _recs(task, False, 1, 2):
            for cid in r.claims:
                assert cid in ids, cid


def test_guide_rejects_bad_arguments():
    with pytest.raises(ValueError, match="task must be one of"):
        recommend("vision")
    with pytest.raises(ValueError, match="imbalance must be >= 1"):
        recommend("classification", imbalance=0.5)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        recommend("classification", num_classes=1)


# ---------------------------------------------------------------- one complete run
class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.articles: list[str] = []
        self._article: str | None = None
        self.article_imgs: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "article":
            self._article = a["id"]
            self.articles.append(a["id"])
            self.article_imgs[a["id"]] = []
        if tag == "img":
            self.imgs.append(a["src"])
            if self._article is not None:
                self.article_imgs[self._article].append(a["src"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "article":
            self._article = None


_RUN: dict = {}  # imported by the browser and docs tests too: one atlas run per process


@pytest.fixture(scope="session")
def atlas_report(tmp_path_factory):
    """One complete ``losskit atlas --tiny`` run through the command line, shared by the report tests."""
    if "run" in _RUN:
        return _RUN["run"]
    from typer.testing import CliRunner

    from losskit.cli import build_app

    out = tmp_path_factory.mktemp("atlas") / "report"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLUMNS", "200")
    result = CliRunner().invoke(build_app(), ["atlas", "--tiny", "--out", str(out)])
    mp.undo()
    _RUN["run"] = (out, result)
    return out, result


@pytest.mark.slow
@pytest.mark.xdist_group("atlas")
def test_report_and_claims_json(atlas_report):
    out, result = atlas_report
    assert result.exit_code == 0, result.output
    assert "Report:" in result.output and "atlas (tiny) took" in result.output
    data = json.loads((out / "results.json").read_text())
    status = {s["key"]: s["status"] for s in data["steps"]}
    assert set(status) >= {"regression", "imbalance", "boxes", "faces", "contrastive", "lm_head"}
    assert all(v == "ok" for v in status.values()), status  # every family works at the end
    # the head's memory: eager holds the (N, V) log-softmax and its gradient at once (2 N V floats at
    # least); the streamed loss less than the logits alone at the largest V
    lm = next(s for s in data["steps"] if s["key"] == "lm_head")["metrics"]
    n, v = lm["tokens"], lm["vocab"][-1]
    assert lm["workspace_mib"]["eager"][-1] * 2**20 >= 2 * n * v * 4
    assert lm["workspace_mib"]["losskit"][-1] * 2**20 < lm["workspace_mib"]["eager"][-1] * 2**20
    claims = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert claims["mode"] == "tiny" and claims["level"] == 0.95
    records = claims["claims"]
    assert len(records) >= 20 and len({c["id"] for c in records}) == len(records)
    assert [c["id"] for c in records] == [c["id"] for s in data["steps"] for c in s["claims"]]
    for c in records:
        assert c["verdict"] in (HELD, NOT_HELD, INCONCLUSIVE)
        if c["kind"] == "deterministic":  # one exact measurement, said so in the rule
            assert c["seeds"] == len(c["per_seed_effects"]) == 1 and "no randomness" in c["rule"]
        else:
            assert c["seeds"] == len(c["per_seed_effects"]) >= 2
        assert c["minimal_effect"] > 0 and c["rule"] and c["reason"] and c["claim"] and c["loss"]
        lo, hi = c["interval"]["low"], c["interval"]["high"]
        assert c["effect"] is None or lo <= c["effect"] <= hi
        # the verdict is the rule's, recomputed from the per-seed effects (unless the experiment said why not)
        effects = [math.nan if e is None else e for e in c["per_seed_effects"]]
        d = decide(effects, delta=c["minimal_effect"], kind=c["kind"])
        assert c["verdict"] == d.verdict or c["unresolved"] == c["reason"]

    page = (out / "index.html").read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(page)
    assert len(refs.ids) == len(set(refs.ids)), "duplicate anchors"
    for src in refs.imgs:  # every image the report references exists beside it, and is not empty
        assert not re.match(r"^[a-z]+:", src) and not src.startswith("/"), src  # relative, no network
        assert (out / src).stat().st_size > 200, src
    # each chart appears once: the family chart in its family's section, never repeated per loss
    charts = [s for s in refs.imgs if s.endswith(".png")]
    assert len(charts) == len(set(charts)), [s for s in charts if charts.count(s) > 1]
    for f in FAMILY_TABLE:
        assert f"family-{f.key}" in refs.ids
        assert f.experiment is None or f"exp-{f.experiment}" in refs.ids
    for i in CATALOG:  # one article per loss, showing its own charts (and no family chart)
        art = f"loss-{i.function}"
        assert art in refs.articles
        own = [s for s in refs.article_imgs[art] if s.endswith(".png")]
        assert any(s.startswith(f"own_{i.function}_") for s in own), (art, own)
        assert all(i.function in s for s in own), (art, own)  # its own charts (sweeps too), none of others
    for c in records:
        assert f"claim-{c['id']}" in refs.ids
        assert f"{c['seeds']} seeds" in page or c["kind"] == "deterministic"
    for h in refs.hrefs:  # every in-page link lands; claims.json is linked
        if h.startswith("#"):
            assert h[1:] in refs.ids, h
    assert "claims.json" in refs.hrefs
    assert "How verdicts are decided" in page and "95% Student t" in page
    nav = re.search(r"<nav>(.*?)</nav>", page).group(1)
    labels = re.findall(r">([^<]+)</a>", nav)
    assert len(labels) == len(set(labels)), labels


def test_regression_family_is_reproducible(tmp_path):
    a = run_atlas(tmp_path / "a", mode="tiny", only="regression")
    b = run_atlas(tmp_path / "b", mode="tiny", only="regression")
    ca, cb = (json.loads((p / "claims.json").read_text())["claims"] for p in (tmp_path / "a", tmp_path / "b"))
    assert [c["per_seed_effects"] for c in ca] == [c["per_seed_effects"] for c in cb]
    assert [c.verdict for c in a.claims] == [c.verdict for c in b.claims]


def test_missing_family_degrades_to_a_note(tmp_path, monkeypatch):
    import losskit.functional as LF

    monkeypatch.delattr(LF, "l1_loss")
    result = run_atlas(tmp_path, mode="tiny", only="regression")
    status = {r.key: r.status for r in result.results}
    assert status["regression"] == "not available" and status["chart-regression"] == "not available"
    assert "l1_loss" in result.results[-1].note
    page = (tmp_path / "index.html").read_text()
    assert "not available" in page and "Not available in this build" in page
    assert json.loads((tmp_path / "claims.json").read_text())["claims"] == []
