"""What the agent's calls return: frozen value types, safe to share between threads."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

import attrs

__all__ = [
    "ExecChunk",
    "ExecResult",
    "FileEntry",
    "ReadFileResult",
    "parse_mod_time",
]

# Type letters of Go's os.FileMode.String(), in its order, for the bits that
# carry meaning besides rwx.
_SPECIAL_BITS = {"u": 0o4000, "g": 0o2000, "t": 0o1000}


@attrs.frozen
class ReadFileResult:
    """One page of a text file, as the agent's ``ReadFile`` formats it.

    ``content`` holds each returned line as ``"%6d\\t<text>\\n"`` (its 1-based
    number, a tab, the text); ``total_lines`` counts the lines of the whole
    file. A file with a NUL byte in its first 8 KiB is ``binary``, with no
    content and ``total_lines == 0``.
    """

    content: str
    total_lines: int
    binary: bool


@attrs.frozen
class FileEntry:
    """A directory entry or ``stat`` result.

    ``path`` is relative to the listed directory (``list_dir``) or the base name
    (``stat``). ``mode`` is in Go's ``os.FileMode`` notation, for instance
    ``-rw-r--r--``, ``drwxr-x---`` or ``Lrwxrwxrwx`` (a symlink); ``mod_time`` is
    timezone-aware, or None when the agent sent none it could be read as.
    """

    path: str
    is_dir: bool
    size: int
    mode: str
    mod_time: datetime | None

    @property
    def is_symlink(self) -> bool:
        """True for a symbolic link (``list_dir`` reports links, it does not follow them)."""
        return "L" in self.mode[:-9]

    @property
    def permissions(self) -> int:
        """The permission bits of ``mode`` as a number (``0o644``, ``0o4755``...)."""
        rwx, letters = self.mode[-9:], self.mode[:-9]
        bits = 0
        for i, ch in enumerate(rwx):
            if ch != "-":
                bits |= 1 << (8 - i)
        for letter, bit in _SPECIAL_BITS.items():
            if letter in letters:
                bits |= bit
        return bits


@attrs.frozen
class ExecResult:
    """The outcome of a command: its whole output and its exit code.

    stdout and stderr are decoded as UTF-8 (undecodable bytes become U+FFFD).
    ``exit_code`` is the command's status; -1 when it was ended by a signal
    (the agent kills timed-out commands) or never reported one.
    """

    stdout: str
    stderr: str
    exit_code: int


@attrs.frozen
class ExecChunk:
    """A piece of a running command's output, as :class:`ExecStream` yields it."""

    stream: Literal["stdout", "stderr"]
    data: bytes


def parse_mod_time(text: str) -> datetime | None:
    """Read an RFC 3339 time as Go formats it; None when it is empty or malformed."""
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value
