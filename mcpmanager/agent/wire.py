"""The agent's own codec for the ``mcpcontainer`` messages (proto3 wire format).

Why not protobuf here: its runtime and the generated module cost each bot
about 2.4 MiB of private memory and 15 ms of start, and these 21 flat
messages need only varints and length-delimited fields. The host-side client
keeps protobuf; the tests check that both encode the same bytes and read
each other's.

Each message is a :class:`~typing.NamedTuple` whose fields are the proto
fields in order (field number = position + 1); :data:`SCHEMAS` gives each
field's proto type. :func:`encode` writes a message as protobuf would
(default values left out, fields in number order); :func:`decoder` makes the
``request_deserializer`` gRPC wants. Unknown fields are skipped, as proto3
readers do; malformed input raises :class:`DecodeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "SCHEMAS",
    "STREAM_EXIT",
    "STREAM_STDERR",
    "STREAM_STDOUT",
    "DataChunk",
    "DecodeError",
    "DeleteFileRequest",
    "DeleteFileResponse",
    "ExecInput",
    "ExecOutput",
    "FileEntry",
    "ListDirRequest",
    "ListDirResponse",
    "MkdirRequest",
    "MkdirResponse",
    "ReadFileRequest",
    "ReadFileResponse",
    "ReadRawRequest",
    "RenameRequest",
    "RenameResponse",
    "StatRequest",
    "StatResponse",
    "WriteFileRequest",
    "WriteFileResponse",
    "WriteRawChunk",
    "WriteRawResponse",
    "decode",
    "decoder",
    "encode",
]


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the expected message."""


# -- the messages (memoh's mcpcontainer.proto, in field order) -------------------


class ReadFileRequest(NamedTuple):
    """A page of a text file: ``line_offset`` is 1-based, ``n_lines`` < 1 means the cap."""

    path: str = ""
    line_offset: int = 0
    n_lines: int = 0


class ReadFileResponse(NamedTuple):
    """The page's numbered lines, the file's line count, and whether it looked binary."""

    content: str = ""
    total_lines: int = 0
    binary: bool = False


class WriteFileRequest(NamedTuple):
    """Create or truncate ``path`` with ``content``."""

    path: str = ""
    content: bytes = b""


class WriteFileResponse(NamedTuple):
    """Empty: the write is done."""


class ListDirRequest(NamedTuple):
    """List ``path`` (empty: ``/data``), recursively if asked."""

    path: str = ""
    recursive: bool = False


class FileEntry(NamedTuple):
    """One file: path, kind, size, Go mode string and RFC 3339 modification time."""

    path: str = ""
    is_dir: bool = False
    size: int = 0
    mode: str = ""
    mod_time: str = ""


class ListDirResponse(NamedTuple):
    """The listed entries."""

    entries: tuple[FileEntry, ...] = ()


class ExecInput(NamedTuple):
    """The first message starts a command; later ones carry stdin only."""

    command: str = ""
    work_dir: str = ""
    env: tuple[str, ...] = ()
    timeout_seconds: int = 0
    stdin_data: bytes = b""


class ExecOutput(NamedTuple):
    """Output bytes of one stream, or (``stream`` EXIT) the exit code and a note."""

    stream: int = 0
    data: bytes = b""
    exit_code: int = 0


#: The :attr:`ExecOutput.stream` values (proto enum ``ExecOutput.Stream``).
STREAM_STDOUT, STREAM_STDERR, STREAM_EXIT = 0, 1, 2


class ReadRawRequest(NamedTuple):
    """Stream the bytes of ``path``."""

    path: str = ""


class DataChunk(NamedTuple):
    """A piece of a file."""

    data: bytes = b""


class WriteRawChunk(NamedTuple):
    """A piece of an upload; ``path`` is set on the first chunk."""

    path: str = ""
    data: bytes = b""


class WriteRawResponse(NamedTuple):
    """How many bytes the upload wrote."""

    bytes_written: int = 0


class DeleteFileRequest(NamedTuple):
    """Remove ``path`` (a directory only with ``recursive``)."""

    path: str = ""
    recursive: bool = False


class DeleteFileResponse(NamedTuple):
    """Empty: the file is gone."""


class StatRequest(NamedTuple):
    """Describe ``path``."""

    path: str = ""


class StatResponse(NamedTuple):
    """The file's entry (its base name as ``path``)."""

    entry: FileEntry | None = None


class MkdirRequest(NamedTuple):
    """Make ``path`` and its parents."""

    path: str = ""


class MkdirResponse(NamedTuple):
    """Empty: the directory exists."""


class RenameRequest(NamedTuple):
    """Move ``old_path`` to ``new_path``."""

    old_path: str = ""
    new_path: str = ""


class RenameResponse(NamedTuple):
    """Empty: the move is done."""


# -- field types -------------------------------------------------------------------

# A field's proto type: a scalar name, or ("message"|"repeated", message class).
Kind = Any
STRING, BYTES, BOOL, INT32, INT64 = "string", "bytes", "bool", "int32", "int64"
REPEATED_STRING = "repeated string"

#: Each message's field types, in field-number order.
SCHEMAS: dict[type, tuple[Kind, ...]] = {
    ReadFileRequest: (STRING, INT32, INT32),
    ReadFileResponse: (STRING, INT32, BOOL),
    WriteFileRequest: (STRING, BYTES),
    WriteFileResponse: (),
    ListDirRequest: (STRING, BOOL),
    FileEntry: (STRING, BOOL, INT64, STRING, STRING),
    ListDirResponse: (("repeated", FileEntry),),
    ExecInput: (STRING, STRING, REPEATED_STRING, INT32, BYTES),
    ExecOutput: (INT32, BYTES, INT32),  # the enum is an int32 on the wire
    ReadRawRequest: (STRING,),
    DataChunk: (BYTES,),
    WriteRawChunk: (STRING, BYTES),
    WriteRawResponse: (INT64,),
    DeleteFileRequest: (STRING, BOOL),
    DeleteFileResponse: (),
    StatRequest: (STRING,),
    StatResponse: (("message", FileEntry),),
    MkdirRequest: (STRING,),
    MkdirResponse: (),
    RenameRequest: (STRING, STRING),
    RenameResponse: (),
}

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


def _wire_type(kind: Kind) -> int:
    return _VARINT if kind in (BOOL, INT32, INT64) else _LENGTH


# -- encoding ------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    """``value`` as a base-128 varint; negative numbers as their 64-bit two's complement."""
    value &= _MASK64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def encode(message: tuple[Any, ...]) -> bytes:
    """``message`` in protobuf's wire format, byte for byte what protobuf writes."""
    parts: list[bytes] = []
    fields = zip(SCHEMAS[type(message)], message, strict=True)
    for number, (kind, value) in enumerate(fields, start=1):
        tag = _varint(number << 3 | _wire_type(kind))
        if kind == STRING:
            if value:
                parts.append(_length_delimited(tag, value.encode()))
        elif kind == BYTES:
            if value:
                parts.append(_length_delimited(tag, bytes(value)))
        elif kind in (BOOL, INT32, INT64):
            if value:
                parts.append(tag + _varint(int(value)))
        elif kind == REPEATED_STRING:
            parts.extend(_length_delimited(tag, item.encode()) for item in value)
        elif kind[0] == "repeated":
            parts.extend(_length_delimited(tag, encode(item)) for item in value)
        elif value is not None:  # a singular message: present even when empty
            parts.append(_length_delimited(tag, encode(value)))
    return b"".join(parts)


# -- decoding ------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _span(data: bytes, pos: int) -> tuple[int, int]:
    """``(start, end)`` of the length-delimited value whose length is at ``pos``."""
    size, start = _read_varint(data, pos)
    end = start + size
    if end > len(data):
        raise DecodeError("truncated field")
    return start, end


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    if wire_type == _VARINT:
        return _read_varint(data, pos)[1]
    if wire_type == _LENGTH:
        return _span(data, pos)[1]
    if wire_type not in (_FIXED64, _FIXED32):
        raise DecodeError(f"unsupported wire type {wire_type}")
    end = pos + (8 if wire_type == _FIXED64 else 4)
    if end > len(data):
        raise DecodeError("truncated field")
    return end


def _scalar(kind: Kind, raw: int) -> Any:
    if kind == BOOL:
        return raw != 0
    return _signed(raw, 32 if kind == INT32 else 64)


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a string field is not valid UTF-8: {exc}") from None


def _length_value(kind: Kind, raw: bytes) -> Any:
    if kind in (STRING, REPEATED_STRING):
        return _text(raw)
    if kind == BYTES:
        return raw
    return decode(kind[1], raw)


M = TypeVar("M", bound=tuple[Any, ...])


def decode(cls: type[M], data: bytes) -> M:
    """Read a ``cls`` message from ``data``; unknown fields are skipped."""
    schema = SCHEMAS[cls]
    values: list[Any] = list(cls())
    repeated: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        kind = schema[number - 1] if 0 < number <= len(schema) else None
        if kind is None or wire_type != _wire_type(kind):
            pos = _skip(data, pos, wire_type)
            continue
        if wire_type == _VARINT:
            raw, pos = _read_varint(data, pos)
            values[number - 1] = _scalar(kind, raw)
            continue
        start, end = _span(data, pos)
        value = _length_value(kind, data[start:end])
        if kind == REPEATED_STRING or kind[0] == "repeated":
            repeated.setdefault(number, []).append(value)
        else:
            values[number - 1] = value
        pos = end
    for number, items in repeated.items():
        values[number - 1] = tuple(items)
    return cls(*values)


def decoder(cls: type[M]) -> Callable[[bytes], M]:
    """A function reading ``cls`` messages, as gRPC's ``request_deserializer``."""

    def read(data: bytes) -> M:
        return decode(cls, data)

    read.__name__ = f"decode_{cls.__name__}"
    return read
