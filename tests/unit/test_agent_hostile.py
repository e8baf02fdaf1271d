"""Every file call of an agent with ``--root DIR`` against hostile layouts a bot can build.

Layouts: ``/data`` itself a symlink to a host directory, symlinks and hard links
inside ``/data`` pointing out, symlinked parents, ``..`` tricks, and a path
swapped for a symlink between the agent's check and its use. For each, every
call (ReadFile, WriteFile, ListDir, Stat, Mkdir, Rename both ways, ReadRaw,
WriteRaw, DeleteFile, and Exec's work directory) may fail or succeed inside
the root, but nothing outside the root is read, written, renamed or deleted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcpmanager import errors
from mcpmanager.agent import rootfs
from mcpmanager.client import Client

SECRET = "host secret"

Call = Callable[[Client, str], Any]

CALLS: dict[str, Call] = {
    "read_file": lambda c, p: c.read_file(p).content,
    "read_raw": lambda c, p: c.read_bytes(p),
    "write_file": lambda c, p: c.write_file(p, "pwned"),
    "write_raw": lambda c, p: c.write_raw(p, b"pwned"),
    "list_dir": lambda c, p: c.list_dir(p, recursive=True),
    "stat": lambda c, p: c.stat(p),
    "mkdir": lambda c, p: c.mkdir(p + "/newdir"),
    "rename_from": lambda c, p: c.rename(p, "/data/moved"),
    "rename_to": lambda c, p: c.rename("/data/own.txt", p),
    "delete": lambda c, p: c.delete_file(p),
    "delete_recursive": lambda c, p: c.delete_file(p, recursive=True),
    "exec_in": lambda c, p: c.exec("cat secret; echo x > planted; rm -rf ./*", workdir=p).stdout,
}
READS = {"read_file", "read_raw", "exec_in"}


def _abs_data_link(root: Path, outside: Path) -> None:
    shutil.rmtree(root / "data")
    os.symlink(str(outside), root / "data")


def _rel_data_link(root: Path, outside: Path) -> None:
    shutil.rmtree(root / "data")
    os.symlink("../outside", root / "data")


def _inner_links(root: Path, outside: Path) -> None:
    os.symlink(str(outside), root / "data" / "abs")
    os.symlink("../../outside", root / "data" / "rel")
    os.symlink(str(outside / "secret"), root / "data" / "abs_file")
    os.symlink("../../outside/secret", root / "data" / "rel_file")


def _symlinked_parents(root: Path, outside: Path) -> None:
    (root / "data" / "a").mkdir()
    os.symlink("../../../outside", root / "data" / "a" / "b")
    os.symlink("a/b", root / "data" / "via")
    os.symlink(str(outside.parent), root / "data" / "hostparent")


def _hard_link(root: Path, outside: Path) -> None:
    os.link(outside / "secret", root / "data" / "hard")
    (root / "data" / "dir").mkdir()
    os.link(outside / "secret", root / "data" / "dir" / "hard")


def _nothing(root: Path, outside: Path) -> None:
    pass


LAYOUTS: dict[str, tuple[Callable[[Path, Path], None], list[str]]] = {
    "data is an absolute symlink to the host": (
        _abs_data_link,
        ["/data/secret", "secret", "/data"],
    ),
    "data is a relative symlink climbing out": (_rel_data_link, ["/data/secret", "/data"]),
    "symlinks inside data point out": (
        _inner_links,
        ["/data/abs/secret", "abs", "rel/secret", "rel", "abs_file", "rel_file"],
    ),
    "symlinked parents": (
        _symlinked_parents,
        ["/data/a/b/secret", "via/secret", "via", "hostparent/outside/secret"],
    ),
    "hard links to a host file": (_hard_link, ["hard", "dir/hard", "dir"]),
    "dot-dot tricks": (
        _nothing,
        [
            "/data/../../outside/secret",
            "../outside/secret",
            "/data/x/../../../outside/secret",
            "/../outside",
            "..",
        ],
    ),
}


def _tree(top: Path, skip: Path) -> dict[str, Any]:
    """Every entry under ``top`` (except ``skip``), with file contents, never following links."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in dirnames + filenames:
            path = here / name
            rel = str(path.relative_to(top))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_file():
                out[rel] = ("file", path.read_bytes())
            else:
                out[rel] = ("dir",)
    return out


def _reset(root: Path, outside: Path) -> None:
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (root / "data").mkdir()
    (root / "data" / "own.txt").write_text("the bot's own file")
    if outside.exists():
        shutil.rmtree(outside)
    outside.mkdir()
    (outside / "secret").write_text(SECRET)
    (outside / "other").mkdir()


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_no_call_reaches_outside_the_root(
    layout: str, root: Path, client: Client, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    build, paths = LAYOUTS[layout]
    tried = 0
    for path in paths:
        for name, call in CALLS.items():
            _reset(root, outside)
            build(root, outside)
            before = _tree(tmp_path, skip=root)
            try:
                result: Any = call(client, path)
            except errors.MCPManagerError as exc:
                result = str(exc)
            where = f"{layout}: {name}({path!r})"
            assert _tree(tmp_path, skip=root) == before, f"{where} changed the host"
            if not (layout.startswith("hard links") and name in READS):
                assert SECRET not in repr(result), f"{where} read the host's file"
            tried += 1
    assert tried == len(paths) * len(CALLS)


def test_hard_links_are_read_as_files_but_never_written_in_place(
    root: Path, client: Client, tmp_path: Path
) -> None:
    """A hard link is the file itself; writing it replaces the bot's name only."""
    outside = tmp_path / "outside"
    _reset(root, outside)
    _hard_link(root, outside)
    assert client.read_text("hard") == SECRET
    client.write_file("hard", "new")
    assert client.read_text("hard") == "new"
    assert (outside / "secret").read_text() == SECRET
    assert (root / "data" / "hard").stat().st_nlink == 1


# -- a path swapped for a symlink between the agent's check and its use ----------------


class Racer:
    """``arm(name, swap)``: run ``swap`` just before the agent's next ``open`` of ``name``.

    The agent has looked at ``name`` (lstat) by then, as in a real race.
    """

    def __init__(self) -> None:
        self.armed: dict[str, Callable[[], None]] = {}
        self.fired: list[str] = []

    def arm(self, name: str, swap: Callable[[], None]) -> None:
        self.armed[name] = swap


@pytest.fixture
def racer(monkeypatch: pytest.MonkeyPatch) -> Racer:
    real_open = os.open
    race = Racer()

    def racing_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is not None and isinstance(path, str) and path in race.armed:
            race.armed.pop(path)()
            race.fired.append(path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(rootfs.os, "open", racing_open)
    return race


def _to_link(path: Path, target: Path) -> Callable[[], None]:
    def swap() -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        os.symlink(str(target), path)

    return swap


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("read_file", CALLS["read_file"]),
        ("read_raw", CALLS["read_raw"]),
        ("write_file", CALLS["write_file"]),
    ],
)
def test_a_file_swapped_for_a_symlink_is_refused(
    root: Path,
    client: Client,
    tmp_path: Path,
    racer: Racer,
    name: str,
    call: Call,
) -> None:
    outside = tmp_path / "outside"
    _reset(root, outside)
    (root / "data" / "f").write_text("bot")
    racer.arm("f", _to_link(root / "data" / "f", outside / "secret"))
    with pytest.raises(errors.FailedPrecondition, match="symlink"):  # PermissionDenied
        call(client, "f")
    assert racer.fired == ["f"]
    assert (outside / "secret").read_text() == SECRET


@pytest.mark.parametrize(
    ("name", "call"),
    [(n, CALLS[n]) for n in ("read_file", "write_file", "write_raw", "list_dir", "exec_in")]
    + [("delete_recursive", CALLS["delete_recursive"])],
)
def test_a_directory_swapped_for_a_symlink_is_not_followed(
    root: Path,
    client: Client,
    tmp_path: Path,
    racer: Racer,
    name: str,
    call: Call,
) -> None:
    outside = tmp_path / "outside"
    _reset(root, outside)
    (root / "data" / "sub").mkdir()
    (root / "data" / "sub" / "secret").write_text("bot")
    before = _tree(tmp_path, skip=root)
    racer.arm("sub", _to_link(root / "data" / "sub", outside))
    path = "sub" if name in ("list_dir", "exec_in", "delete_recursive") else "sub/secret"
    try:
        result: Any = call(client, path)
    except errors.MCPManagerError as exc:
        result = str(exc)
    assert racer.fired == ["sub"]
    assert SECRET not in repr(result)
    assert _tree(tmp_path, skip=root) == before
