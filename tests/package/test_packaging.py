"""The sdist and wheel users get: metadata, a license, and an sdist whose tests run."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.harness.common import unavailable

ROOT = Path(__file__).resolve().parents[2]


def _build(out: Path) -> tuple[Path, Path]:
    """The sdist, and a wheel built from it (as pip would), so nothing lands in the tree."""
    try:
        import build  # noqa: F401
    except ImportError:
        unavailable("the 'build' package is not installed (pip install -e '.[dev]')")
    # --no-isolation: build with this venv's setuptools, no download.
    run = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _build(tmp_path_factory.mktemp("dist"))


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        return {n.removeprefix(top + "/") for n in tar.getnames()}


def test_sdist_carries_its_tests_and_examples(dists: tuple[Path, Path]) -> None:
    names = _sdist_names(dists[0])
    for wanted in (
        "LICENSE",
        "tests/fakes.py",
        "tests/conftest.py",
        "tests/harness/__init__.py",
        "tests/harness/containerd.py",
        "tests/integration/e2e/conftest.py",
        "examples/quickstart.py",
        "examples/explore.ipynb",
        "mkdocs.yml",
        "docs/index.md",
        "scripts/test",
        "mcpmanager/py.typed",
        "mcpmanager/client/mcpcontainer.proto",
    ):
        assert wanted in names, f"{wanted} is missing from the sdist"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_metadata(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as whl:
        names = whl.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(whl.read(meta_name).decode())
        points = whl.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]
    urls = meta.get_all("Project-URL") or []
    assert urls
    assert all(", https://" in u for u in urls)
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Framework :: Pytest" in classifiers
    requires = meta.get_all("Requires-Dist") or []
    psycopg = [r for r in requires if r.startswith("psycopg") and "extra ==" not in r]
    assert psycopg == ["psycopg[pool]>=3.2"]
    assert any(r.startswith("psycopg[binary,pool]") and 'extra == "binary"' in r for r in requires)
    assert "[pytest11]\nmcpmanager = mcpmanager.testing" in points


def test_sdist_tests_collect_without_errors(dists: tuple[Path, Path], tmp_path: Path) -> None:
    with tarfile.open(dists[0]) as tar:
        tar.extractall(tmp_path, filter="data")
    (src,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "error" not in run.stdout.splitlines()[-1]
    assert " collected" in run.stdout or "tests collected" in run.stdout


def test_license_is_the_apache_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
