"""The agent's file calls, through the client, against a real AgentServer on loopback."""

from __future__ import annotations

import io
import os
import socket
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mcpmanager import errors
from mcpmanager.agent import AgentServer
from mcpmanager.client import RAW_CHUNK_SIZE, Client, FileEntry, ReadFileResult


def data(root: Path) -> Path:
    return root / "data"


# -- server lifecycle ------------------------------------------------------------


def test_server_picks_a_free_port_and_creates_data(root: Path, agent: AgentServer) -> None:
    assert agent.port > 0
    assert agent.address == f"127.0.0.1:{agent.port}"
    assert agent.running
    assert data(root).is_dir()


def test_server_refuses_a_busy_port(root: Path, agent: AgentServer) -> None:
    other = AgentServer(root=str(root), listen=f"127.0.0.1:{agent.port}")
    with pytest.raises(errors.Unavailable, match="cannot listen"):
        other.start()
    assert not other.running


def test_server_refuses_a_port_held_by_another_program(root: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(errors.Unavailable, match=str(port)):
            AgentServer(root=str(root), listen=f"127.0.0.1:{port}").start()


def test_server_rejects_bad_listen_and_root(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument):
        AgentServer(root=str(tmp_path), listen="no-port")
    with pytest.raises(errors.InvalidArgument):
        AgentServer(root=str(tmp_path / "missing"), listen="127.0.0.1:0").start()


def test_stop_is_idempotent_and_start_twice_is_harmless(root: Path) -> None:
    server = AgentServer(root=str(root), listen="127.0.0.1:0")
    server.start()
    port = server.port
    server.start()
    assert server.port == port
    server.stop(0)
    server.stop(0)
    assert not server.running
    assert server.wait(0)


def test_template_seeds_missing_files_only(tmp_path: Path, root: Path) -> None:
    template = tmp_path / "template"
    (template / "notes").mkdir(parents=True)
    (template / "SOUL.md").write_text("soul")
    (template / "MEMORY.md").write_text("template memory")
    (template / "notes" / "todo.txt").write_text("todo")
    os.symlink("/etc/passwd", template / "link")
    data(root).mkdir()
    (data(root) / "MEMORY.md").write_text("the bot's own memory")
    with AgentServer(root=str(root), listen="127.0.0.1:0", template=str(template)):
        pass
    assert (data(root) / "SOUL.md").read_text() == "soul"
    assert (data(root) / "MEMORY.md").read_text() == "the bot's own memory"
    assert (data(root) / "notes" / "todo.txt").read_text() == "todo"
    assert not (data(root) / "link").exists()
    assert stat.S_IMODE((data(root) / "SOUL.md").stat().st_mode) & 0o644 == 0o644


# -- write_file / read_file -----------------------------------------------------------


def test_write_then_read_relative_and_absolute(root: Path, client: Client) -> None:
    client.write_file("notes/a.txt", "one\ntwo\n")
    assert (data(root) / "notes" / "a.txt").read_bytes() == b"one\ntwo\n"
    assert stat.S_IMODE((data(root) / "notes" / "a.txt").stat().st_mode) == 0o600
    result = client.read_file("/data/notes/a.txt")
    assert result == ReadFileResult(
        content="     1\tone\n     2\ttwo\n", total_lines=2, binary=False
    )
    client.write_file("/data/notes/a.txt", b"short")
    assert client.read_file("notes/a.txt").content == "     1\tshort\n"


def test_read_file_paging(root: Path, client: Client) -> None:
    (data(root)).mkdir(exist_ok=True)
    (data(root) / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    page = client.read_file("f.txt", line_offset=3, n_lines=2)
    assert page.content == "     3\tline 3\n     4\tline 4\n"
    assert page.total_lines == 10
    assert client.read_file("f.txt", line_offset=0).content.startswith("     1\tline 1\n")
    assert client.read_file("f.txt", line_offset=-5, n_lines=1).content == "     1\tline 1\n"
    past = client.read_file("f.txt", line_offset=50)
    assert past.content == ""
    assert past.total_lines == 10


def test_read_file_caps_lines_at_200(root: Path, client: Client) -> None:
    (data(root) / "many.txt").write_text("".join(f"{i}\n" for i in range(1, 301)))
    for n in (0, 201, 10_000):
        page = client.read_file("many.txt", n_lines=n)
        assert page.content.count("\n") == 200
        assert page.total_lines == 300
    assert client.read_file("many.txt", line_offset=250).content.count("\n") == 51


def test_read_file_caps_bytes_at_5120(root: Path, client: Client) -> None:
    line = "x" * 100
    (data(root) / "wide.txt").write_text(f"{line}\n" * 100)
    page = client.read_file("wide.txt")
    # Each line is 6 + 1 + 100 + 1 = 108 bytes: 47 lines fit in 5120.
    assert page.content.count("\n") == 47
    assert len(page.content.encode()) <= 5120
    assert page.total_lines == 100


def test_read_file_cuts_long_lines_at_1000_chars(root: Path, client: Client) -> None:
    (data(root) / "long.txt").write_text("a" * 1000 + "\n" + "b" * 1001 + "\n" + "é" * 3000 + "\n")
    lines = client.read_file("long.txt", n_lines=1).content
    assert lines == "     1\t" + "a" * 1000 + "\n"
    second = client.read_file("long.txt", line_offset=2, n_lines=1).content
    assert second == "     2\t" + "b" * 1000 + "...\n"
    third = client.read_file("long.txt", line_offset=3, n_lines=1).content
    assert third == "     3\t" + "é" * 1000 + "...\n"


def test_read_file_counts_lines_like_go(root: Path, client: Client) -> None:
    cases = {"empty": b"", "nl": b"\n", "noeol": b"a\nb", "crlf": b"a\r\nb\r\n", "blank": b"\n\n\n"}
    for name, body in cases.items():
        (data(root) / name).write_bytes(body)
    assert client.read_file("empty") == ReadFileResult("", 0, False)
    assert client.read_file("nl") == ReadFileResult("     1\t\n", 1, False)
    assert client.read_file("noeol").total_lines == 2
    assert client.read_file("crlf").content == "     1\ta\n     2\tb\n"
    assert client.read_file("blank").total_lines == 3


def test_read_file_binary_probe_is_first_8k(root: Path, client: Client) -> None:
    (data(root) / "bin").write_bytes(b"abc\0def")
    (data(root) / "late").write_bytes(b"a" * 8192 + b"\n\0")
    assert client.read_file("bin") == ReadFileResult("", 0, True)
    late = client.read_file("late")
    assert not late.binary
    assert late.total_lines == 2


def test_read_file_replaces_undecodable_bytes(root: Path, client: Client) -> None:
    (data(root) / "latin1").write_bytes("caf\xe9\n".encode("latin-1"))
    assert client.read_file("latin1").content == "     1\tcaf\ufffd\n"


def test_read_file_of_a_huge_single_line(root: Path, client: Client) -> None:
    with open(data(root) / "huge", "wb") as f:
        for _ in range(8):
            f.write(b"z" * (1024 * 1024))
        f.write(b"\nnext\n")
    page = client.read_file("huge")
    assert page.total_lines == 2
    assert page.content == "     1\t" + "z" * 1000 + "...\n     2\tnext\n"


def test_read_file_errors(root: Path, client: Client) -> None:
    with pytest.raises(errors.NotFound, match=r"bot bot1: read_file.*nope"):
        client.read_file("nope")
    with pytest.raises(errors.InvalidArgument, match="directory"):
        client.read_file("/data")
    with pytest.raises(errors.InvalidArgument, match="path is required"):
        client.read_file("")
    os.mkfifo(data(root) / "fifo")
    with pytest.raises(errors.InvalidArgument, match="regular"):
        client.read_file("fifo")


def test_write_file_into_a_directory_or_fifo_fails(root: Path, client: Client) -> None:
    client.mkdir("d")
    with pytest.raises(errors.InvalidArgument):
        client.write_file("d", b"x")
    os.mkfifo(data(root) / "fifo")
    with pytest.raises(errors.InvalidArgument):
        client.write_file("fifo", b"x")


# -- list_dir / stat ----------------------------------------------------------------


def test_list_dir_sorted_and_recursive(root: Path, client: Client) -> None:
    client.write_file("b/2.txt", "22")
    client.write_file("b/1.txt", "1")
    client.write_file("a.txt", "aaa")
    client.mkdir("c/d")
    os.symlink("/data/b", data(root) / "link")
    top = client.list_dir()
    assert [e.path for e in top] == ["a.txt", "b", "c", "link"]
    a = top[0]
    assert (a.is_dir, a.size, a.mode) == (False, 3, "-rw-------")
    assert a.permissions == 0o600
    assert isinstance(a.mod_time, datetime)
    assert a.mod_time.tzinfo is not None
    assert abs((a.mod_time - datetime.now(timezone.utc)).total_seconds()) < 120
    b = top[1]
    assert b.is_dir
    assert b.mode.startswith("d")
    link = top[3]
    assert link.is_symlink
    assert not link.is_dir
    assert link.mode == "Lrwxrwxrwx"

    assert [e.path for e in client.list_dir("/data", recursive=True)] == [
        "a.txt",
        "b",
        "b/1.txt",
        "b/2.txt",
        "c",
        "c/d",
        "link",
    ]
    assert [e.path for e in client.list_dir("b")] == ["1.txt", "2.txt"]
    # A symlinked directory is listed through the link.
    assert [e.path for e in client.list_dir("link")] == ["1.txt", "2.txt"]


def test_list_dir_errors(client: Client) -> None:
    client.write_file("f", "x")
    with pytest.raises(errors.NotFound):
        client.list_dir("missing")
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        client.list_dir("f")


def test_stat(root: Path, client: Client) -> None:
    client.write_file("dir/file.txt", "hello")
    os.symlink("dir/file.txt", data(root) / "alias")
    entry = client.stat("dir/file.txt")
    assert (entry.path, entry.is_dir, entry.size) == ("file.txt", False, 5)
    followed = client.stat("/data/alias")
    assert (followed.path, followed.size, followed.is_symlink) == ("alias", 5, False)
    assert client.stat("dir").is_dir
    top = client.stat("/")
    assert (top.path, top.is_dir) == ("/", True)
    with pytest.raises(errors.NotFound):
        client.stat("nope")


def test_go_mode_strings(root: Path, client: Client) -> None:
    client.write_file("suid", "x")
    os.chmod(data(root) / "suid", 0o4755)
    client.mkdir("sticky")
    os.chmod(data(root) / "sticky", 0o1777)
    assert client.stat("suid").mode == "urwxr-xr-x"
    assert client.stat("suid").permissions == 0o4755
    assert client.stat("sticky").mode == "dtrwxrwxrwx"
    assert client.stat("/data").mode.startswith("drwx")


# -- mkdir / rename / delete --------------------------------------------------------


def test_mkdir(root: Path, client: Client) -> None:
    client.mkdir("x/y/z")
    assert (data(root) / "x" / "y" / "z").is_dir()
    client.mkdir("x/y/z")  # existing is fine
    client.write_file("file", "x")
    with pytest.raises(errors.AlreadyExists):
        client.mkdir("file")
    with pytest.raises(errors.NotFound):
        client.mkdir("file/sub")


def test_rename(root: Path, client: Client) -> None:
    client.write_file("a.txt", "A")
    client.rename("a.txt", "/data/deep/er/b.txt")
    assert (data(root) / "deep" / "er" / "b.txt").read_text() == "A"
    assert not (data(root) / "a.txt").exists()
    with pytest.raises(errors.NotFound, match="rename"):
        client.rename("a.txt", "c.txt")
    with pytest.raises(errors.InvalidArgument):
        client.rename("/", "/data/root")
    with pytest.raises(errors.InvalidArgument):
        client.rename("", "x")


def test_rename_moves_a_symlink_not_its_target(root: Path, client: Client) -> None:
    client.write_file("target", "T")
    os.symlink("target", data(root) / "link")
    client.rename("link", "moved")
    assert os.path.islink(data(root) / "moved")
    assert (data(root) / "target").read_text() == "T"


def test_delete_file(root: Path, client: Client) -> None:
    client.write_file("f", "x")
    client.delete_file("f")
    assert not (data(root) / "f").exists()
    client.delete_file("f")  # gone already: fine
    client.delete_file("no/such/parent")
    client.mkdir("empty")
    client.delete_file("empty")
    assert not (data(root) / "empty").exists()
    client.write_file("full/a/b", "x")
    with pytest.raises(errors.FailedPrecondition):
        client.delete_file("full")
    client.delete_file("full", recursive=True)
    assert not (data(root) / "full").exists()
    with pytest.raises(errors.InvalidArgument):
        client.delete_file("/", recursive=True)


def test_delete_removes_links_not_targets(root: Path, client: Client) -> None:
    client.write_file("keep/file", "precious")
    os.symlink("/data/keep", data(root) / "dirlink")
    client.write_file("tree/x", "x")
    os.symlink("/data/keep", data(root) / "tree" / "inner")
    client.delete_file("dirlink")
    client.delete_file("tree", recursive=True)
    assert (data(root) / "keep" / "file").read_text() == "precious"
    assert not os.path.lexists(data(root) / "dirlink")


# -- raw transfers ----------------------------------------------------------------------


def test_raw_round_trip_of_a_multi_mib_file(root: Path, client: Client) -> None:
    payload = os.urandom(5 * 1024 * 1024 + 12345)
    assert client.write_raw("/data/blob.bin", payload) == len(payload)
    assert (data(root) / "blob.bin").read_bytes() == payload
    chunks = list(client.read_raw("blob.bin"))
    assert all(0 < len(c) <= RAW_CHUNK_SIZE for c in chunks)
    assert len(chunks) == -(-len(payload) // RAW_CHUNK_SIZE)
    assert b"".join(chunks) == payload


def test_write_raw_from_a_file_object(root: Path, client: Client) -> None:
    payload = os.urandom(3 * RAW_CHUNK_SIZE + 7)
    assert client.write_raw("sub/dir/stream.bin", io.BytesIO(payload)) == len(payload)
    assert (data(root) / "sub" / "dir" / "stream.bin").read_bytes() == payload


def test_write_raw_empty_creates_an_empty_file(root: Path, client: Client) -> None:
    assert client.write_raw("empty.bin", b"") == 0
    assert (data(root) / "empty.bin").read_bytes() == b""
    assert list(client.read_raw("empty.bin")) == []


def test_write_raw_keeps_the_mode_of_the_file_it_replaces(root: Path, client: Client) -> None:
    client.write_file("script.sh", "old")
    os.chmod(data(root) / "script.sh", 0o751)
    client.write_raw("script.sh", b"new")
    assert (data(root) / "script.sh").read_bytes() == b"new"
    assert stat.S_IMODE((data(root) / "script.sh").stat().st_mode) == 0o751


class _FailingReader(io.RawIOBase):
    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("disk on fire")
        take = min(n, self.left)
        self.left -= take
        return b"n" * take


def test_write_raw_failure_leaves_the_old_file(root: Path, client: Client) -> None:
    client.write_file("keep.bin", b"old content")
    with pytest.raises(OSError, match="disk on fire"):
        client.write_raw("keep.bin", _FailingReader(5 * RAW_CHUNK_SIZE))  # type: ignore[arg-type]
    assert (data(root) / "keep.bin").read_bytes() == b"old content"

    def no_partial_files() -> bool:
        return sorted(os.listdir(data(root))) == ["keep.bin"]

    from tests.harness.common import wait_for

    wait_for(no_partial_files, timeout=10, what="the partial upload to be removed")


def test_read_bytes_and_read_text_give_whole_files(root: Path, client: Client) -> None:
    payload = os.urandom(3 * RAW_CHUNK_SIZE + 5)
    (data(root) / "blob").write_bytes(payload)
    assert client.read_bytes("blob") == payload
    text = "".join(f"line {i} é\n" for i in range(500))  # more than one numbered page
    (data(root) / "t.txt").write_text(text, encoding="utf-8")
    assert client.read_text("/data/t.txt") == text
    assert client.read_file("t.txt").content.startswith("     1\tline 0 é\n")
    (data(root) / "latin").write_bytes("café".encode("latin-1"))
    assert client.read_text("latin", encoding="latin-1") == "café"
    with pytest.raises(UnicodeDecodeError):
        client.read_text("latin")
    assert client.read_text("latin", errors="replace") == "caf\ufffd"
    (data(root) / "empty").write_bytes(b"")
    assert client.read_bytes("empty") == b""
    with pytest.raises(errors.NotFound, match="read_raw"):
        client.read_bytes("missing")


def test_read_raw_errors_are_raised_eagerly(client: Client) -> None:
    with pytest.raises(errors.NotFound, match="read_raw"):
        client.read_raw("missing.bin")
    client.mkdir("dir")
    with pytest.raises(errors.InvalidArgument):
        client.read_raw("dir")
    with pytest.raises(errors.InvalidArgument):
        client.write_raw("", b"x")


def test_read_raw_can_be_abandoned(root: Path, client: Client) -> None:
    client.write_raw("big", os.urandom(40 * RAW_CHUNK_SIZE))
    it = client.read_raw("big")
    assert len(next(it)) == RAW_CHUNK_SIZE
    it.close()  # type: ignore[attr-defined]
    assert client.stat("big").size == 40 * RAW_CHUNK_SIZE  # the agent is still fine


def test_file_entry_helpers() -> None:
    entry = FileEntry("x", False, 1, "-rw-r-----", None)
    assert not entry.is_symlink
    assert entry.permissions == 0o640
    assert FileEntry("x", False, 1, "Lrwxrwxrwx", None).is_symlink
    assert FileEntry("x", True, 1, "dgrwxr-x---", None).permissions == 0o2750
