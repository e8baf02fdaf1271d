"""Nothing outside the agent's root is reachable: ``..``, absolute paths, symlinks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpmanager import errors
from mcpmanager.agent import AgentServer
from mcpmanager.agent.failures import AgentError
from mcpmanager.agent.rootfs import RootFS, clean
from mcpmanager.client import Client, PermissionDenied

SECRET = "host secret"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``root`` (with /data and /etc/passwd of its own) beside ``outside`` (a secret)."""
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("container passwd")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text(SECRET)
    data = root / "data"
    os.symlink("/etc", data / "abs_etc")  # absolute: the container's /etc
    os.symlink(str(outside), data / "abs_outside")  # a host path, meaningless inside
    os.symlink("../../outside", data / "up")  # climbs above the root
    os.symlink("../../../../../../../../..", data / "way_up")
    os.symlink("../etc", data / "rel_etc")  # stays inside
    os.symlink("loop", data / "loop")
    return root, outside


@pytest.fixture
def client(layout: tuple[Path, Path]) -> Iterator[Client]:
    root, _ = layout
    with (
        AgentServer(root=str(root), listen="127.0.0.1:0") as agent,
        Client(agent.address, bot_id="jail") as c,
    ):
        yield c


def test_clean_resolves_relative_paths_under_data() -> None:
    assert clean("x/y") == "/data/x/y"
    assert clean("./x/../y/") == "/data/y"
    assert clean("/data/../etc") == "/etc"
    assert clean("..") == "/"
    assert clean("/") == "/"
    for bad in ("", "../../x", "/../etc", "/data/../../x", "a\0b"):
        with pytest.raises(AgentError):
            clean(bad)


@pytest.mark.parametrize(
    "path", ["../../outside/secret", "../../../etc/passwd", "/../outside/secret", "/data/../../x"]
)
def test_dotdot_above_the_root_is_refused(client: Client, path: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="climbs above"):
        client.read_file(path)
    with pytest.raises(errors.InvalidArgument):
        client.write_file(path, "pwned")
    with pytest.raises(errors.InvalidArgument):
        client.exec("true", workdir=path)


def test_absolute_paths_are_container_paths(client: Client) -> None:
    assert "container passwd" in client.read_file("/etc/passwd").content
    assert "container passwd" in client.read_file("../etc/passwd").content
    with pytest.raises(errors.NotFound):
        client.read_file("/etc/shadow")  # the host's exists; the container's does not


def test_absolute_symlinks_resolve_inside_the_root(
    layout: tuple[Path, Path], client: Client
) -> None:
    assert "container passwd" in client.read_file("abs_etc/passwd").content
    assert "container passwd" in client.read_file("rel_etc/passwd").content
    assert [e.path for e in client.list_dir("abs_etc")] == ["passwd"]
    with pytest.raises(errors.NotFound):
        client.read_file("abs_etc/hostname")
    # A host path in a link means nothing inside the container.
    with pytest.raises(errors.NotFound):
        client.read_file("abs_outside/secret")


@pytest.mark.parametrize("path", ["up/secret", "/data/up/secret", "way_up/etc/passwd"])
def test_symlinks_climbing_out_are_refused(client: Client, path: str) -> None:
    with pytest.raises(PermissionDenied, match="outside the container root") as info:
        client.read_file(path)
    assert isinstance(info.value, errors.FailedPrecondition)
    with pytest.raises(PermissionDenied):
        list(client.read_raw(path))
    with pytest.raises(PermissionDenied):
        client.stat(path)


def test_no_call_writes_outside(layout: tuple[Path, Path], client: Client) -> None:
    _, outside = layout
    before = sorted(os.listdir(outside))
    attempts = [
        lambda: client.write_file("up/new", "x"),
        lambda: client.write_file("up/secret", "x"),
        lambda: client.write_raw("up/raw", b"x"),
        lambda: client.mkdir("up/dir"),
        lambda: client.rename("/etc/passwd", "up/stolen"),
        lambda: client.delete_file("up/secret"),
        lambda: client.list_dir("up"),
        lambda: client.exec("true", workdir="/data/up"),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()
    assert sorted(os.listdir(outside)) == before
    assert (outside / "secret").read_text() == SECRET


def test_writing_through_an_absolute_link_stays_inside(
    layout: tuple[Path, Path], client: Client
) -> None:
    root, outside = layout
    client.write_file("abs_outside/secret", "inside")
    assert (outside / "secret").read_text() == SECRET
    assert (root / outside.relative_to("/") / "secret").read_text() == "inside"


def test_deleting_links_leaves_their_targets(layout: tuple[Path, Path], client: Client) -> None:
    root, outside = layout
    client.delete_file("up")
    client.delete_file("abs_etc")
    client.delete_file("/data", recursive=True)
    assert (outside / "secret").read_text() == SECRET
    assert (root / "etc" / "passwd").exists()
    assert not (root / "data").exists()


def test_symlink_loops_are_invalid(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument, match="symbolic links"):
        client.read_file("loop")


def test_a_symlink_to_the_secret_cannot_be_planted_and_followed(
    layout: tuple[Path, Path], client: Client
) -> None:
    _, outside = layout
    # A command in the container can make links (here: on the host) ...
    client.exec(f"ln -s {outside}/secret planted && ln -s ../../outside/secret planted_rel")
    # ... but the file calls read them inside the root.
    with pytest.raises(errors.NotFound):
        client.read_file("planted")
    with pytest.raises(PermissionDenied):
        client.read_file("planted_rel")


# -- property: whatever the path, the secret is never read ------------------------------

_COMPONENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "data",
        "etc",
        "passwd",
        "up",
        "way_up",
        "abs_etc",
        "abs_outside",
        "rel_etc",
        "outside",
        "secret",
        "loop",
        "root",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(_COMPONENTS, min_size=1, max_size=8), absolute=st.booleans())
def test_no_path_reads_the_secret(
    layout: tuple[Path, Path], parts: list[str], absolute: bool
) -> None:
    root, _ = layout
    fs = RootFS(str(root))
    path = ("/" if absolute else "") + "/".join(parts)
    try:
        with fs.open_regular(path, "read") as f:
            content = f.read()
    except AgentError:
        return
    assert SECRET.encode() not in content
    assert content == b"container passwd"
