"""Bad bot IDs are refused by every Manager method before any service call."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpmanager import FakeContainerService, Manager, errors, validate_bot_id
from tests.fakes import make_manager

# containerd's identifier rule (identifiers.Validate), which "mcp-" + bot ID must pass.
CONTAINERD_ID = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
VALID = st.from_regex(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*", fullmatch=True).filter(
    lambda s: len(s) <= 72
)
INVALID = st.one_of(
    st.just(""),
    st.text(min_size=1).filter(
        lambda s: not all(c.isascii() and (c.isalnum() or c in "_-") for c in s)
    ),
    st.sampled_from(["../x", "a/b", "a b", "a.b", "bot\n", "ü", "a\x00"]),
    # Shapes containerd cannot hold as "mcp-" + ID, or too long for it (and for file names).
    st.sampled_from(["p-", "-p", "p--q", "_p", "p_", "a_-b", "a" * 73, "b" * 249]),
    st.from_regex(r"[A-Za-z0-9]{73,90}", fullmatch=True),
)

# Every public Manager method that takes a bot ID, with the rest of its arguments.
CALLS: dict[str, Callable[[Manager, str], Any]] = {
    "container_id": lambda m, b: m.container_id(b),
    "ensure_bot": lambda m, b: m.ensure_bot(b),
    "start": lambda m, b: m.start(b),
    "stop": lambda m, b: m.stop(b),
    "delete": lambda m, b: m.delete(b),
    "delete_preserve": lambda m, b: m.delete(b, preserve_data=True),
    "container_ip": lambda m, b: m.container_ip(b),
    "set_container_ip": lambda m, b: m.set_container_ip(b, "127.0.0.9"),
    "client": lambda m, b: m.client(b),
    "export_data": lambda m, b: m.export_data(b, io.BytesIO()),
    "import_data": lambda m, b: m.import_data(b, io.BytesIO(b"not read")),
    "preserve_data": lambda m, b: m.preserve_data(b),
    "restore_preserved_data": lambda m, b: m.restore_preserved_data(b),
    "has_preserved_data": lambda m, b: m.has_preserved_data(b),
    "create_snapshot": lambda m, b: m.create_snapshot(b, "name"),
    "create_version": lambda m, b: m.create_version(b),
    "list_versions": lambda m, b: m.list_versions(b),
    "rollback_version": lambda m, b: m.rollback_version(b, 1),
    "version_snapshot_name": lambda m, b: m.version_snapshot_name(b, 1),
    "list_bot_snapshot_data": lambda m, b: m.list_bot_snapshot_data(b),
    "reconcile": lambda m, b: m.reconcile(b),
    "wait_ready": lambda m, b: m.wait_ready(b),
    "status": lambda m, b: m.status(b),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manager, FakeContainerService]:
    root = tmp_path_factory.mktemp("validation")
    fake = FakeContainerService(root=root / "fake")
    return make_manager(fake, Path(root)), fake


@pytest.mark.parametrize("method", sorted(CALLS))
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bot_id=INVALID)
def test_invalid_bot_id_is_refused_without_service_calls(
    shared: tuple[Manager, FakeContainerService], method: str, bot_id: str
) -> None:
    manager, fake = shared
    fake.calls.clear()
    with pytest.raises(errors.InvalidArgument) as info:
        CALLS[method](manager, bot_id)
    assert isinstance(info.value, ValueError)
    assert fake.calls == []


@given(bot_id=VALID)
def test_valid_ids_pass(bot_id: str) -> None:
    assert validate_bot_id(bot_id) == bot_id
    container_id = "mcp-" + bot_id
    assert CONTAINERD_ID.fullmatch(container_id)
    assert len(container_id) <= 76


@pytest.mark.parametrize("bad", [None, 5, b"bot", ["bot"]])
def test_non_strings_are_invalid(bad: object) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_bot_id(bad)
