"""Archive safety: every unsafe entry kind is refused before anything is written."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

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


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    add_special(tar, name, tarfile.DIRTYPE)


def add_raw(tar: tarfile.TarFile, name: str, **fields: object) -> None:
    """An entry whose name (and other fields) travel in PAX headers verbatim."""
    info = tarfile.TarInfo("placeholder")
    info.pax_headers = {"path": name}
    for key, value in fields.items():
        setattr(info, key, value)
    if info.linkname:
        info.pax_headers["linkpath"] = info.linkname
    data = b"x" * info.size
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


DEEP = "/".join(["d" * 200] * 21)  # 4220 bytes: every component fits, the path does not


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
    "file-then-dir-below": lambda t: (add_file(t, "a"), add_file(t, "a/b")),
    "implicit-dir-then-file": lambda t: (add_file(t, "a/b"), add_file(t, "a")),
    "dir-then-file": lambda t: (add_dir(t, "a"), add_file(t, "a")),
    "file-then-dir": lambda t: (add_file(t, "a"), add_dir(t, "a")),
    "symlink-then-file": lambda t: (add_link(t, "a", "ok.txt"), add_file(t, "a")),
    "under-hardlink": lambda t: (add_link(t, "h", "ok.txt", tarfile.LNKTYPE), add_file(t, "h/x")),
    "duplicate-file": lambda t: (add_file(t, "dup"), add_file(t, "dup")),
    "duplicate-dir": lambda t: (add_dir(t, "dup"), add_dir(t, "dup")),
    "duplicate-normalized": lambda t: (add_file(t, "dup"), add_file(t, "./dup/")),
    "nul-in-pax-name": lambda t: add_raw(t, "nul\x00name", size=1),
    "nul-in-pax-linkname": lambda t: add_raw(t, "l", type=tarfile.SYMTYPE, linkname="ok\x00"),
    "long-component": lambda t: add_file(t, "n" * 256),
    "long-component-utf8": lambda t: add_file(t, "é" * 128),  # 256 bytes in 128 characters
    "long-path": lambda t: add_file(t, DEEP),
    "long-symlink-target": lambda t: add_link(t, "l", "a/" * 2048),
    "empty-symlink-target": lambda t: add_raw(t, "l", type=tarfile.SYMTYPE),
    "hardlink-to-dir": lambda t: (add_dir(t, "d"), add_link(t, "h", "d", tarfile.LNKTYPE)),
    "hardlink-to-symlink": lambda t: (
        add_link(t, "s", "ok.txt"),
        add_link(t, "h", "s", tarfile.LNKTYPE),
    ),
    "hardlink-to-later": lambda t: (add_link(t, "h", "f", tarfile.LNKTYPE), add_file(t, "f")),
    "hardlink-through-symlink": lambda t: (
        add_dir(t, "d"),
        add_file(t, "d/f"),
        add_link(t, "s", "d"),
        add_link(t, "h", "s/f", tarfile.LNKTYPE),
    ),
    "file-named-dot": lambda t: add_file(t, "."),
    "mtime-out-of-range": lambda t: add_raw(t, "m", size=1, mtime=1e300),
    "uid-out-of-range": lambda t: add_raw(t, "u", size=1, uid=1 << 40),
    "contiguous-file": lambda t: add_special(t, "c", tarfile.CONTTYPE),
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


def test_archive_cut_short_is_invalid() -> None:
    whole = make_tgz(lambda t: add_file(t, "big", b"y" * 100_000)).getvalue()
    tar = gzip.decompress(whole)
    with pytest.raises(errors.InvalidArgument, match="not a complete"):
        archive.checked_archive(io.BytesIO(gzip.compress(tar[:50_000])))
    with pytest.raises(errors.InvalidArgument, match="not a complete"):
        archive.checked_archive(io.BytesIO(whole[: len(whole) // 2]))


def test_rejection_names_the_member() -> None:
    src = make_tgz(lambda t: (add_file(t, "notes/a"), add_file(t, "notes/a/inner")))
    with pytest.raises(errors.InvalidArgument, match=r"'notes/a/inner'.*'notes/a' is a file"):
        archive.checked_archive(src)


def test_gzip_of_non_tar_is_invalid() -> None:
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


def test_explicit_dir_after_its_contents_and_dot_entries_are_accepted(tmp_path: Path) -> None:
    src = make_tgz(
        lambda t: (add_dir(t, "."), add_file(t, "./a/b", b"b"), add_dir(t, "a"), add_dir(t, "./"))
    )
    assert len(archive.checked_archive(src)) == 4
    archive.extract_checked(src, str(tmp_path))
    assert (tmp_path / "a" / "b").read_bytes() == b"b"


def test_extraction_drops_setuid_and_keeps_hard_links(tmp_path: Path) -> None:
    def build(t: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("suid")
        info.mode, info.size = 0o4777, 1
        t.addfile(info, io.BytesIO(b"s"))
        add_link(t, "again", "suid", tarfile.LNKTYPE)

    src = make_tgz(build)
    archive.checked_archive(src)
    archive.extract_checked(src, str(tmp_path))
    st = os.lstat(tmp_path / "suid")
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_ino == os.lstat(tmp_path / "again").st_ino


# -- fuzzing: what the checker accepts extracts completely and stays inside ----------

HOSTILE_COMPONENTS = [".", "..", "", "x" * 256, "n\x00l", "é", "\udcff", "a b"]
PLAIN_KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]
HOSTILE_KINDS = [tarfile.AREGTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, b"Z"]


def member_lists(hostile: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Archives as member lists: plain names only (conflicts, links and order are
    the hazards), or mixed with every hostile name, kind and attribute."""
    components = ["a", "b", "c"] * 3 + (HOSTILE_COMPONENTS if hostile else [])
    names = st.builds(
        lambda lead, parts: lead + "/".join(parts),
        st.sampled_from(["", "", "", "", "./", "/"] if hostile else ["", "./"]),
        st.lists(st.sampled_from(components), min_size=1, max_size=4 if hostile else 3),
    )
    odd: list[object] = [-5, 1e300] if hostile else []
    member = st.fixed_dictionaries(
        {
            "name": names,
            "type": st.sampled_from(PLAIN_KINDS * 2 + (HOSTILE_KINDS if hostile else [])),
            "linkname": st.one_of(names, st.sampled_from(["", "../x", "/etc/passwd", "."])),
            "size": st.sampled_from([0, 1, 700]),
            "mtime": st.sampled_from([0, 1_600_000_000, 1.5, *odd]),
            "uid": st.sampled_from([0, 1000, *([(1 << 32) - 1, 1 << 40] if hostile else [])]),
            "mode": st.sampled_from([0o644, 0o755, 0o7777, 0o000]),
        }
    )
    return st.lists(member, min_size=1, max_size=6)


def build_archive(entries: list[dict[str, Any]]) -> io.BytesIO:
    def build(t: tarfile.TarFile) -> None:
        for entry in entries:
            add_raw(t, **entry)

    return make_tgz(build)


def assert_extracted(dest: Path, accepted: list[tarfile.TarInfo]) -> None:
    """Every accepted entry is there, as the kind it was archived as."""
    last: dict[str, tarfile.TarInfo] = {}
    for m in accepted:
        name = os.path.normpath(m.name)
        if name != ".":
            last[name] = m
    for name, m in last.items():
        mode = os.lstat(dest / name).st_mode
        if m.isdir():
            assert stat.S_ISDIR(mode), name
        elif m.issym():
            assert stat.S_ISLNK(mode), name
            assert os.readlink(dest / name) == m.linkname
        else:
            assert stat.S_ISREG(mode), name


def check_or_extract(src: io.BytesIO) -> bool:
    """False if refused (only ever InvalidArgument), True if accepted and safely extracted."""
    try:
        accepted = archive.checked_archive(src)
    except errors.InvalidArgument:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp)
        (box / "dest").mkdir()
        (box / "sentinel").write_bytes(b"host")
        archive.extract_checked(src, str(box / "dest"))
        assert sorted(p.name for p in box.iterdir()) == ["dest", "sentinel"]
        assert (box / "sentinel").read_bytes() == b"host"
        assert_extracted(box / "dest", accepted)
    return True


@pytest.mark.parametrize("hostile", [False, True], ids=["plain", "hostile"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_accepted_archives_extract_completely_inside(
    hostile: bool, data: st.DataObject
) -> None:
    entries = data.draw(member_lists(hostile))
    try:
        src = build_archive(entries)
    except (ValueError, OverflowError, UnicodeError):
        assume(False)  # tarfile itself cannot write this one
        return
    check_or_extract(src)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_damaged_archives_are_invalid_or_extract(flips: list[tuple[int, int]]) -> None:
    def build(t: tarfile.TarFile) -> None:
        add_dir(t, "d")
        add_file(t, "d/f", b"f" * 600)
        add_link(t, "d/s", "f")
        add_link(t, "h", "d/f", tarfile.LNKTYPE)
        add_raw(t, "é/long-" + "p" * 120, size=3)

    raw = bytearray(gzip.decompress(make_tgz(build).getvalue()))
    for pos, value in flips:
        raw[pos % len(raw)] = value
    check_or_extract(io.BytesIO(gzip.compress(bytes(raw))))


def test_fuzz_corpus_is_not_all_refused() -> None:
    """The fuzz strategies reach acceptance too (else the property above says little)."""
    ok = build_archive(
        [{"name": "a/b", "type": tarfile.REGTYPE, "size": 1, "mtime": 1.5, "uid": 1000}]
    )
    assert check_or_extract(ok)
