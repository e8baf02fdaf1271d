"""Archive safety: every unsafe entry kind is refused before anything is written."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mcpmanager import archive, errors


def make_tgz(build: Callable[[tarfile.TarFile], None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        build(tar)
    buf.seek(0)
    return buf


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def add_special(tar: tarfile.TarFile, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    tar.addfile(info)


BAD: dict[str, Callable[[tarfile.TarFile], None]] = {
    "absolute": lambda t: add_file(t, "/etc/evil"),
    "dotdot": lambda t: add_file(t, "a/../../evil"),
    "dotdot-leading": lambda t: add_file(t, "../evil"),
    "through-symlink": lambda t: (add_link(t, "link", "sub"), add_file(t, "link/evil")),
    "symlink-absolute": lambda t: add_link(t, "link", "/etc/passwd"),
    "symlink-escape": lambda t: add_link(t, "a/link", "../../etc"),
    "hardlink-absolute": lambda t: add_link(t, "h", "/etc/passwd", tarfile.LNKTYPE),
    "hardlink-escape": lambda t: add_link(t, "h", "../x", tarfile.LNKTYPE),
    "hardlink-missing": lambda t: add_link(t, "h", "nothing", tarfile.LNKTYPE),
    "char-device": lambda t: add_special(t, "dev", tarfile.CHRTYPE),
    "block-device": lambda t: add_special(t, "blk", tarfile.BLKTYPE),
    "fifo": lambda t: add_special(t, "fifo", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_unsafe_entries_are_rejected(kind: str) -> None:
    src = make_tgz(lambda t: (add_file(t, "ok.txt"), BAD[kind](t)))
    with pytest.raises(errors.InvalidArgument, match="rejected"):
        archive.checked_archive(src)


@pytest.mark.parametrize("payload", [b"", b"plain text", b"\x1f\x8b\x08garbage"])
def test_non_gzip_tar_is_invalid(payload: bytes) -> None:
    with pytest.raises(errors.InvalidArgument):
        archive.checked_archive(io.BytesIO(payload))


def test_gzip_of_non_tar_is_invalid() -> None:
    import gzip

    with pytest.raises(errors.InvalidArgument):
        archive.checked_archive(io.BytesIO(gzip.compress(b"not a tar at all" * 100)))


def test_safe_links_are_accepted() -> None:
    src = make_tgz(
        lambda t: (
            add_file(t, "a/f"),
            add_link(t, "a/rel", "f"),
            add_link(t, "up", "a/f"),
            add_link(t, "a/h", "a/f", tarfile.LNKTYPE),
        )
    )
    assert [m.name for m in archive.checked_archive(src)] == ["a/f", "a/rel", "up", "a/h"]
    assert src.tell() == 0


def test_round_trip_keeps_modes_mtimes_dirs_and_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "sub").mkdir()
    (src / "sub" / "x.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "sub" / "x.sh", 0o750)
    os.utime(src / "sub" / "x.sh", (1_600_000_000, 1_600_000_000))
    os.symlink("sub/x.sh", src / "link")
    os.symlink("/etc/passwd", src / "outside")
    os.mkfifo(src / "pipe")
    buf = io.BytesIO()
    written = archive.write_tree(buf, str(src))
    assert written == len(buf.getvalue()) > 0
    buf.seek(0)
    names = {m.name for m in archive.checked_archive(buf)}
    assert names == {"empty", "sub", "sub/x.sh", "link"}  # no escaping link, no fifo
    dest = tmp_path / "dest"
    dest.mkdir()
    archive.extract_checked(buf, str(dest))
    assert (dest / "empty").is_dir()
    st = os.stat(dest / "sub" / "x.sh")
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert int(st.st_mtime) == 1_600_000_000
    assert os.readlink(dest / "link") == "sub/x.sh"


def test_empty_archive_when_no_tree() -> None:
    buf = io.BytesIO()
    archive.write_tree(buf, None)
    buf.seek(0)
    assert archive.checked_archive(buf) == []


def test_merge_replaces_named_entries_keeps_others_and_never_follows_links(
    tmp_path: Path,
) -> None:
    staged, dest, outside = tmp_path / "staged", tmp_path / "dest", tmp_path / "outside"
    for d in (staged / "d", dest / "d", outside):
        d.mkdir(parents=True)
    (staged / "d" / "new").write_text("new")
    (staged / "same").write_text("from archive")
    (staged / "trap").mkdir()
    (staged / "trap" / "f").write_text("archive")
    (dest / "d" / "old").write_text("old")
    (dest / "same").write_text("before")
    os.symlink(outside, dest / "trap")
    archive.merge_tree(str(staged), str(dest))
    assert (dest / "d" / "old").read_text() == "old"
    assert (dest / "d" / "new").read_text() == "new"
    assert (dest / "same").read_text() == "from archive"
    assert not (dest / "trap").is_symlink()
    assert (dest / "trap" / "f").read_text() == "archive"
    assert list(outside.iterdir()) == []
