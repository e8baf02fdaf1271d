"""ManagerConfig defaults and the CNI plugin directory fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import pytest

from mcpmanager import config as config_mod
from mcpmanager.config import (
    DEBIAN_CNI_BIN_DIR,
    DEFAULT_CNI_BIN_DIR,
    ManagerConfig,
    resolve_cni_bin_dir,
)


@pytest.fixture
def dirs(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Pretend exactly the paths put in the returned set are directories."""
    existing: set[str] = set()
    monkeypatch.setattr(config_mod, "_is_dir", lambda p: p in existing)
    return existing


def test_default_kept_when_it_exists(dirs: set[str]) -> None:
    dirs.update({DEFAULT_CNI_BIN_DIR, DEBIAN_CNI_BIN_DIR})
    assert resolve_cni_bin_dir(ManagerConfig()) == DEFAULT_CNI_BIN_DIR


def test_missing_default_falls_back_to_debian_and_says_so(
    dirs: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    dirs.add(DEBIAN_CNI_BIN_DIR)
    with caplog.at_level(logging.INFO, "mcpmanager"):
        assert resolve_cni_bin_dir(ManagerConfig()) == DEBIAN_CNI_BIN_DIR
    assert any(
        DEFAULT_CNI_BIN_DIR in r.getMessage() and DEBIAN_CNI_BIN_DIR in r.getMessage()
        for r in caplog.records
    )


def test_nothing_there_keeps_the_default(dirs: set[str]) -> None:
    assert resolve_cni_bin_dir(ManagerConfig()) == DEFAULT_CNI_BIN_DIR


def test_explicit_dir_is_kept_even_when_missing(dirs: set[str]) -> None:
    dirs.add(DEBIAN_CNI_BIN_DIR)
    assert resolve_cni_bin_dir(ManagerConfig(cni_bin_dir="/srv/cni")) == "/srv/cni"


def test_fallbacks_on_a_real_filesystem(tmp_path: Path) -> None:
    missing_default = ManagerConfig()
    found = tmp_path / "cni"
    found.mkdir()
    if Path(DEFAULT_CNI_BIN_DIR).is_dir():
        pytest.skip(f"{DEFAULT_CNI_BIN_DIR} exists on this machine")
    assert resolve_cni_bin_dir(missing_default, (str(tmp_path / "no"), str(found))) == str(found)


def test_every_field_is_documented() -> None:
    import griffe

    cls = griffe.load("mcpmanager.config")["ManagerConfig"]
    fields = [f.name for f in attrs.fields(ManagerConfig)]
    undocumented = [
        n for n in fields if not (cls.members[n].docstring and cls.members[n].docstring.value)
    ]
    assert not undocumented
