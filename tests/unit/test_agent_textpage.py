"""ReadFile's paging, checked against a direct transcription of memoh's Go loop."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from mcpmanager.agent.textpage import MAX_BYTES, MAX_LINE_CHARS, MAX_LINES, Page, read_page


def go_reference(data: bytes, line_offset: int, n_lines: int) -> Page:
    """memoh's ReadFile, line by line (bufio.ScanLines, then the same limits)."""
    if b"\0" in data[:8192]:
        return Page("", 0, True)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    offset = max(line_offset, 1)
    wanted = n_lines if 1 <= n_lines <= MAX_LINES else MAX_LINES
    out, written, taken = [], 0, 0
    for number, raw in enumerate(lines, start=1):
        if number < offset or taken >= wanted:
            continue
        text = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + "..."
        line = f"{number:6d}\t{text}\n"
        if written + len(line.encode()) > MAX_BYTES:
            break
        out.append(line)
        written += len(line.encode())
        taken += 1
    return Page("".join(out), len(lines), False)


_PIECES = st.sampled_from(
    [b"a", b"bc", b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xff", b" ", b"xyz" * 40]
)


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(_PIECES, max_size=400),
    line_offset=st.integers(-2, 60),
    n_lines=st.integers(-1, 250),
)
def test_matches_go(pieces: list[bytes], line_offset: int, n_lines: int) -> None:
    data = b"".join(pieces)
    assert read_page(io.BytesIO(data), line_offset, n_lines) == go_reference(
        data, line_offset, n_lines
    )


@settings(max_examples=50, deadline=None)
@given(
    width=st.integers(990, 5000),
    char=st.sampled_from([b"q", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80"]),
)
def test_long_lines_match_go(width: int, char: bytes) -> None:
    data = char * width + b"\nend"
    assert read_page(io.BytesIO(data), 1, 0) == go_reference(data, 1, 0)


def test_nul_after_the_probe_is_text() -> None:
    data = b"x" * 8192 + b"\0\n"
    assert not read_page(io.BytesIO(data), 1, 0).binary
