"""The agent's memory settings: the malloc arena limit it sets for itself."""

from __future__ import annotations

import platform

import pytest

from mcpmanager.agent.__main__ import limit_malloc_arenas


def test_an_explicit_malloc_arena_max_is_left_to_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arena limit is glibc's")
def test_without_the_variable_the_agent_caps_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas() is True
