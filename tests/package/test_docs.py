"""The docs site builds offline and strictly, with a reference page per public module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.common import unavailable

ROOT = Path(__file__).resolve().parents[2]
GUIDES = (
    "quickstart",
    "containerd",
    "testing",
    "data-and-versions",
    "reliability",
    "errors",
    "logging",
    "jupyter",
)
REFERENCE = {
    "mcpmanager": "mcpmanager",
    "manager": "mcpmanager.Manager",
    "config": "mcpmanager.config",
    "types": "mcpmanager.types",
    "errors": "mcpmanager.errors",
    "service": "mcpmanager.service",
    "fake": "mcpmanager.fake",
    "client": "mcpmanager.client",
    "store": "mcpmanager.store",
    "containerd": "mcpmanager.containerd",
    "testing": "mcpmanager.testing",
    "progress": "mcpmanager.progress",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        unavailable("mkdocs is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_every_guide_and_reference_page_is_built(site: Path) -> None:
    for guide in GUIDES:
        assert (site / guide / "index.html").is_file(), guide
    for page, obj in REFERENCE.items():
        source = (ROOT / "docs" / "reference" / f"{page}.md").read_text()
        assert f"::: {obj}\n" in source
        assert (site / "reference" / page / "index.html").is_file(), page


def test_reference_renders_the_docstrings(site: Path) -> None:
    config = _text(site / "reference" / "config" / "index.html")
    assert "Host directory for the Manager's own files" in config  # a field docstring
    manager = _text(site / "reference" / "manager" / "index.html")
    assert "rollback_version" in manager
    testing = _text(site / "reference" / "testing" / "index.html")
    assert "assert_called" in testing


def test_built_site_loads_nothing_from_the_network(site: Path) -> None:
    for page in site.rglob("*.html"):
        body = page.read_text()
        assert "fonts.googleapis" not in body, page
        assert "fonts.gstatic" not in body, page


def _text(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))
