"""File metadata in the notation memoh's Go agent uses on the wire."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

__all__ = ["go_mode", "rfc3339"]


def go_mode(mode: int) -> str:
    """``st_mode`` as Go's ``os.FileMode.String()`` prints it.

    Type and special-bit letters come first, in Go's order (``d`` directory,
    ``L`` symlink, ``D`` device, ``p`` named pipe, ``S`` socket, ``u`` setuid,
    ``g`` setgid, ``c`` character device, ``t`` sticky), or ``-`` when there
    are none; then ``rwxrwxrwx``. For example ``-rw-r--r--``, ``drwxr-x---``,
    ``Lrwxrwxrwx``, ``Dcrw-rw-rw-``, ``urwxr-xr-x``.
    """
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    rwx = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return (letters or "-") + rwx


def rfc3339(st: os.stat_result) -> str:
    """The modification time as Go's ``time.RFC3339`` (local zone, ``Z`` for UTC)."""
    when = datetime.fromtimestamp(int(st.st_mtime), tz=timezone.utc).astimezone()
    text = when.isoformat(timespec="seconds")
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text
