"""Constants both ends of the in-container protocol agree on."""

from __future__ import annotations

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_WORKDIR",
    "EXIT_TIMED_OUT",
    "RAW_CHUNK_SIZE",
    "UPLOAD_CHUNK_SIZE",
    "WRITE_RAW_END_KEY",
    "WRITE_RAW_END_VALUE",
]

#: The port the agent listens on inside every container.
DEFAULT_PORT = 9090

#: Where relative container paths point, and where commands run by default.
DEFAULT_WORKDIR = "/data"

#: Seconds a command may run when the caller gives no limit.
DEFAULT_EXEC_TIMEOUT = 30

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
