"""atomic_write: the file is complete or untouched, never half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

import pytest

from mcpmanager._atomic import atomic_write


def test_writes_and_returns_size_with_private_modes(tmp_path: Path) -> None:
    target = tmp_path / "new" / "file"
    assert atomic_write(str(target), lambda f: f.write(b"hello"), dir_mode=0o700) == 5
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(target.parent).st_mode) & 0o077 == 0


def test_a_failing_writer_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def broken(f: IO[bytes]) -> int:
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(target), broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
