"""Constants (and the upload chunking) both ends of the in-container protocol agree on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_WORKDIR",
    "EXIT_TIMED_OUT",
    "INT32_MAX",
    "RAW_CHUNK_SIZE",
    "UPLOAD_CHUNK_SIZE",
    "WRITE_RAW_END_KEY",
    "WRITE_RAW_END_VALUE",
    "upload_pieces",
]

#: The port the agent listens on inside every container.
DEFAULT_PORT = 9090

#: Where relative container paths point, and where commands run by default.
DEFAULT_WORKDIR = "/data"

#: Seconds a command may run when the caller gives no limit.
DEFAULT_EXEC_TIMEOUT = 30

#: The largest value the protocol's int32 fields (line offsets, timeouts) hold.
INT32_MAX = 2**31 - 1

#: Largest piece of a file one ReadRaw/WriteRaw message carries.
RAW_CHUNK_SIZE = 64 * 1024

#: How much one WriteRaw message carries when uploading. Larger than the
#: agent's 64 KiB read chunks (fewer messages, more MB/s) but far below the
#: 4 MiB message limit of memoh's Go agent, which must accept it too.
UPLOAD_CHUNK_SIZE = 1024 * 1024

#: The data of an EXIT message of a command that was killed for running too
#: long starts with this. (memoh's own agent sends an EXIT without data, and
#: exit code -1, in that case.)
EXIT_TIMED_OUT = b"timed out"

#: Metadata a WriteRaw client sends to promise an end marker: after its data,
#: one chunk with neither path nor data. An agent that sees the promise
#: replaces the file only once that marker arrived and the stream then ended,
#: so a cancelled upload (which gRPC may present to the server as a plain end
#: of stream) never replaces the old file. memoh's agent ignores the metadata,
#: and the empty chunk writes nothing there.
WRITE_RAW_END_KEY = "mcpmanager-write-raw-end"

#: The value of :data:`WRITE_RAW_END_KEY` (the kind of marker promised).
WRITE_RAW_END_VALUE = "empty-chunk"


def upload_pieces(data: bytes | bytearray | memoryview | IO[bytes]) -> Iterator[bytes]:
    """``data`` (bytes or a readable file) in pieces of at most :data:`UPLOAD_CHUNK_SIZE`."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), UPLOAD_CHUNK_SIZE):
            yield bytes(view[start : start + UPLOAD_CHUNK_SIZE])
        return
    while True:
        piece = data.read(UPLOAD_CHUNK_SIZE)
        if not piece:
            return
        yield bytes(piece)
