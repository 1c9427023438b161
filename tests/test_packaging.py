"""The package builds as a wheel that installs and imports in a fresh environment, and the catalogue
matches the public API in both directions."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import losskit
import losskit.functional as LF
import losskit.nn as LN
from losskit.catalog import CATALOG, FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_names_exist_in_the_public_api():
    for info in CATALOG:
        assert info.function in LF.__all__, f"catalog names a missing function {info.function}"
        assert info.module in LN.__all__, f"catalog names a missing Module {info.module}"
        assert info.family in FAMILIES
        assert info.paper


def test_every_public_loss_is_in_the_catalog():
    functions = {info.function for info in CATALOG}
    modules = {info.module for info in CATALOG}
    assert sorted(n for n in LF.__all__ if n.endswith("_loss") and n not in functions) == []
    assert sorted(n for n in LN.__all__ if n.endswith("Loss") and n not in modules) == []


def test_readme_table_lists_every_loss():
    readme = (ROOT / "README.md").read_text()
    for info in CATALOG:
        assert f"`{info.function}`" in readme and f"`{info.module}`" in readme, info.function


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_environment(tmp_path: Path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("losskit-*.whl")
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
    )
    # torch and numpy come from the test environment through a .pth path entry (installing a second copy
    # of torch would take minutes); losskit itself only from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = Path(sysconfig.get_paths()["purelib"])
    (Path(site) / "deps.pth").write_text(f"{deps}\n")
    code = (
        "import losskit, losskit.functional as LF, torch; "
        "assert 'fresh' in losskit.__file__, losskit.__file__; "
        "print(float(LF.huber_loss(torch.tensor([3.0]), torch.tensor([0.0]))))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert float(out.stdout.strip()) == pytest.approx(2.5)
    assert losskit.__version__ in wheel.name


def test_usage_example_names_every_public_name_and_runs():
    """examples/api_usage.py is what `make lint` type-checks: it must touch every public name."""
    import losskit.distributed as LD

    path = ROOT / "examples" / "api_usage.py"
    text = path.read_text()
    missing = [
        f"{prefix}.{name}"
        for prefix, module in (("LF", LF), ("LN", LN), ("LD", LD))
        for name in module.__all__
        if f"{prefix}.{name}" not in text
    ]
    assert missing == [], f"examples/api_usage.py does not use {missing}"
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True, timeout=300)
    assert "all finite: True" in out.stdout
