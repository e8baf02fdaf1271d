"""The agent's codec (mcpmanager.agent.wire) against protobuf's, message by message.

The host-side client speaks protobuf; the agent speaks :mod:`wire`. For every
message both must write the same bytes and read each other's, whatever the
values (hypothesis draws them at the proto types' limits).
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpmanager.agent import wire
from mcpmanager.client import mcpcontainer_pb2 as pb

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=40)
DATA = st.binary(max_size=300)

_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    wire.STRING: TEXT,
    wire.BYTES: DATA,
    wire.BOOL: st.booleans(),
    wire.INT32: INT32,
    wire.INT64: INT64,
    wire.REPEATED_STRING: st.lists(TEXT, max_size=4).map(tuple),
}


def messages(cls: type[Any]) -> st.SearchStrategy[Any]:
    """Any ``cls`` message, nested ones included."""
    fields = []
    for kind in wire.SCHEMAS[cls]:
        if kind in _SCALARS:
            fields.append(_SCALARS[kind])
        elif kind[0] == "repeated":
            fields.append(st.lists(messages(kind[1]), max_size=3).map(tuple))
        else:
            fields.append(st.none() | messages(kind[1]))
    return st.tuples(*fields).map(lambda values: cls(*values))


def to_pb(message: Any) -> Any:
    """The protobuf message with the same field values."""
    kwargs: dict[str, Any] = {}
    for name, kind, value in zip(
        message._fields, wire.SCHEMAS[type(message)], message, strict=True
    ):
        if kind in _SCALARS:
            kwargs[name] = list(value) if kind == wire.REPEATED_STRING else value
        elif kind[0] == "repeated":
            kwargs[name] = [to_pb(item) for item in value]
        elif value is not None:
            kwargs[name] = to_pb(value)
    return getattr(pb, type(message).__name__)(**kwargs)


def from_pb(cls: type[Any], message: Any) -> Any:
    """What :func:`wire.decode` should give for protobuf's ``message``."""
    values = []
    for name, kind in zip(cls._fields, wire.SCHEMAS[cls], strict=True):
        value = getattr(message, name)
        if kind == wire.REPEATED_STRING:
            value = tuple(value)
        elif kind not in _SCALARS and kind[0] == "repeated":
            value = tuple(from_pb(kind[1], item) for item in value)
        elif kind not in _SCALARS:
            value = from_pb(kind[1], value) if message.HasField(name) else None
        values.append(value)
    return cls(*values)


ALL = sorted(wire.SCHEMAS, key=lambda c: c.__name__)


def test_every_proto_message_has_a_wire_twin_with_the_same_fields() -> None:
    names = {m.name for m in pb.DESCRIPTOR.message_types_by_name.values()}
    assert {c.__name__ for c in ALL} == names
    for cls in ALL:
        descriptor = pb.DESCRIPTOR.message_types_by_name[cls.__name__]
        assert [(f.name, f.number) for f in descriptor.fields] == [
            (name, i) for i, name in enumerate(cls._fields, start=1)
        ], cls.__name__


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_both_codecs_write_the_same_bytes_and_read_each_other(cls: type[Any], data: Any) -> None:
    message = data.draw(messages(cls))
    ours = wire.encode(message)
    theirs = to_pb(message).SerializeToString(deterministic=True)
    assert ours == theirs
    assert wire.decode(cls, theirs) == from_pb(cls, pb.__dict__[cls.__name__].FromString(ours))
    assert wire.decode(cls, ours) == message


def test_unknown_fields_are_skipped_as_proto3_readers_do() -> None:
    extra = pb.WriteRawChunk(path="a", data=b"xy").SerializeToString()
    # field 9 as varint, fixed64, length-delimited and fixed32, then field 1 again
    unknown = b"\x48\x01" + b"\x49" + bytes(8) + b"\x4a\x02hi" + b"\x4d" + bytes(4)
    got = wire.decode(wire.WriteRawChunk, extra + unknown + b"\x0a\x01b")
    assert got == wire.WriteRawChunk(path="b", data=b"xy")


def test_a_field_with_the_wrong_wire_type_is_skipped_like_an_unknown_one() -> None:
    assert wire.decode(wire.StatRequest, b"\x08\x05") == wire.StatRequest()


def test_an_int32_read_from_a_wider_varint_keeps_its_low_32_bits_as_protobuf_does() -> None:
    wide = b"\x18" + wire._varint(2**40 + 7)  # field 3, n_lines
    assert (
        wire.decode(wire.ReadFileRequest, wide).n_lines
        == pb.ReadFileRequest.FromString(wide).n_lines
        == 7
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",  # a string longer than what follows
        b"\x0a",  # a length missing
        b"\x08" + b"\xff" * 11,  # a varint longer than 10 bytes
        b"\x0a\x02\xff\xfe",  # a string that is not UTF-8
        b"\x0b",  # a group start: not in proto3
        b"\x49\x00",  # a truncated fixed64
    ],
)
def test_malformed_input_is_a_decode_error_as_protobuf_refuses_it(data: bytes) -> None:
    with pytest.raises(wire.DecodeError):
        wire.decode(wire.ReadRawRequest, data)
    with pytest.raises(ProtobufDecodeError):
        pb.ReadRawRequest.FromString(data)


def test_decoder_is_a_named_request_deserializer() -> None:
    read = wire.decoder(wire.MkdirRequest)
    assert read(b"\x0a\x01d") == wire.MkdirRequest(path="d")
    assert read.__name__ == "decode_MkdirRequest"
