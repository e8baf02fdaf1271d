"""ReadFile's paging of a text file, with memoh's limits, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

__all__ = [
    "BINARY_PROBE_BYTES",
    "MAX_BYTES",
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "Page",
    "read_page",
]

MAX_LINES = 200
MAX_BYTES = 5120
MAX_LINE_CHARS = 1000
BINARY_PROBE_BYTES = 8 * 1024

# Enough bytes to hold MAX_LINE_CHARS + 1 characters of any UTF-8 text, so a
# line cut at this length is still known to be too long once decoded.
_LINE_HEAD_BYTES = 4 * (MAX_LINE_CHARS + 1)
_COUNT_CHUNK = 1024 * 1024


class Page(NamedTuple):
    """What ReadFile answers."""

    content: str
    total_lines: int
    binary: bool


def read_page(f: BinaryIO, line_offset: int, n_lines: int) -> Page:
    """A page of ``f`` (positioned at its start), as memoh's agent makes it.

    A NUL byte in the first 8 KiB makes the file binary (no content). Lines
    split at ``\\n`` with a trailing ``\\r`` dropped; ``line_offset`` is 1-based
    (< 1 means 1); at most ``n_lines`` lines (< 1 or > 200 means 200) and 5120
    bytes of output; a line over 1000 characters is cut there and ``...``
    added; each line is written as ``"%6d\\t%s\\n"``; ``total_lines`` counts
    every line of the file. Undecodable bytes become U+FFFD. Memory use does not
    grow with the size of the file or of its lines.
    """
    if b"\0" in f.read(BINARY_PROBE_BYTES):
        return Page("", 0, True)
    f.seek(0)
    first = max(line_offset, 1)
    wanted = n_lines if 1 <= n_lines <= MAX_LINES else MAX_LINES

    out: list[str] = []
    size = 0
    number = 0
    lines = _line_heads(f)
    for head in lines:
        number += 1
        if number < first:
            continue
        if len(out) >= wanted:
            break
        text = head.decode("utf-8", errors="replace")
        if text.endswith("\r"):
            text = text[:-1]
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + "..."
        line = f"{number:6d}\t{text}\n"
        length = len(line.encode("utf-8"))
        if size + length > MAX_BYTES:
            break
        out.append(line)
        size += length
    else:
        return Page("".join(out), number, False)
    # Stopped early: the lines after the one just read are only counted.
    return Page("".join(out), number + _count_lines(f), False)


def _line_heads(f: BinaryIO) -> Iterator[bytes]:
    """Each line's first bytes (without its ``\\n``); the rest of a long line is skipped."""
    while True:
        head = f.readline(_LINE_HEAD_BYTES)
        if not head:
            return
        if head.endswith(b"\n"):
            yield head[:-1]
            continue
        if len(head) == _LINE_HEAD_BYTES:
            while True:
                rest = f.readline(_COUNT_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
        yield head


def _count_lines(f: BinaryIO) -> int:
    """Lines from the current position to the end (a last one without ``\\n`` counts)."""
    count = 0
    last = b"\n"
    while True:
        chunk = f.read(_COUNT_CHUNK)
        if not chunk:
            break
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)
