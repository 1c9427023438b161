"""The ``losskit`` command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

typer = pytest.importorskip("typer")
from typer.testing import CliRunner  # noqa: E402

from losskit import cli  # noqa: E402
from losskit.catalog import CATALOG  # noqa: E402

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    # rich wraps tables to the terminal width; wide enough that names are not folded
    monkeypatch.setenv("COLUMNS", "400")


def invoke(*args):
    return runner.invoke(cli.build_app(), list(args))


@pytest.mark.parametrize("command", ["atlas", "plot", "guide", "list", "bench", "demo"])
def test_every_subcommand_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_list_shows_every_loss():
    result = runner.invoke(cli.build_app(), ["list"], terminal_width=400)
    assert result.exit_code == 0
    for info in CATALOG:
        assert info.function in result.output and info.module in result.output


def test_plot_writes_png(tmp_path):
    out = tmp_path / "huber.png"
    result = invoke("plot", "huber_loss", "--param", "delta=0.5,1,2", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_unknown_loss_and_bad_param(tmp_path):
    result = invoke("plot", "nope_loss", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "no curve for 'nope_loss'" in result.output
    result = invoke("plot", "huber_loss", "--param", "delta", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "--param must be KEY=VALUE" in result.output


def test_parse_params_cartesian_product():
    assert cli._parse_params(["gamma=0,2", "alpha=none"]) == [
        {"gamma": 0, "alpha": None},
        {"gamma": 2, "alpha": None},
    ]
    assert cli._parse_params([]) == [{}]


def test_guide_with_flags(tmp_path):
    result = runner.invoke(
        cli.build_app(),
        ["guide", "--task", "regression", "--outliers", "--report", str(tmp_path)],
        terminal_width=300,
    )
    assert result.exit_code == 0, result.output
    assert "huber_loss" in result.output and "#claim-regression-huber-robust" in result.output
    assert "not measured here" in result.output  # no report in tmp_path: no evidence to show


def test_guide_shows_verdict_and_interval_from_a_report(tmp_path):
    from losskit.atlas.verdicts import Claim

    claim = Claim.measure(
        id="regression-huber-robust",
        statement="Huber is robust to outliers, as L1 is.",
        source="Huber 1964",
        losses=("huber_loss",),
        effect_name="MSE's minus Huber's clean RMSE",
        unit="%",
        delta=5.0,
        effects=[40.0, 42.0, 45.0, 41.0, 39.0],
    )
    (tmp_path / "claims.json").write_text(json.dumps({"claims": [claim.to_dict()]}))
    result = runner.invoke(
        cli.build_app(),
        ["guide", "--task", "regression", "--outliers", "--report", str(tmp_path)],
        terminal_width=400,
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "Huber is robust" in line)
    assert "held" in row and "+41.4" in row and "5 seeds" in row
    assert "not measured here" in result.output  # l1_loss's claim is not in this report


def test_guide_interactive_prompts(tmp_path):
    result = runner.invoke(
        cli.build_app(),
        ["guide", "--report", str(tmp_path)],
        input="dense-detection\n1000\n",
        terminal_width=300,
    )
    assert result.exit_code == 0, result.output
    assert "sigmoid_focal_loss" in result.output


def test_guide_rejects_unknown_task(tmp_path):
    result = invoke("guide", "--task", "vision", "--report", str(tmp_path))
    assert result.exit_code == 2 and "--task must be one of" in result.output


def test_atlas_help_states_the_full_runtime():
    result = invoke("atlas", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--full" in text and "1,715,000" in text and cli.FULL_RUNTIME in text


def test_atlas_rejects_unknown_family(tmp_path):
    result = invoke("atlas", "--only", "vision", "--out", str(tmp_path))
    assert result.exit_code == 2 and "--only must be one of" in result.output


def test_bench_without_source_checkout(monkeypatch):
    monkeypatch.setattr(cli, "source_root", lambda: None)
    result = invoke("bench")
    assert result.exit_code == 1 and "needs a source checkout" in result.output


def test_missing_extra_names_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "typer", None)  # import typer -> ModuleNotFoundError
    with pytest.raises(SystemExit) as err:
        cli.main(["list"])
    assert err.value.code == 1
    assert "pip install 'losskit[atlas]'" in capsys.readouterr().err


def test_python_dash_m_losskit():
    proc = subprocess.run(
        [sys.executable, "-m", "losskit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("atlas", "plot", "guide", "list", "bench", "demo"):
        assert command in proc.stdout
