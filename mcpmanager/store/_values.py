"""Argument checks and conversions shared by every store backend."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from mcpmanager.errors import InvalidArgument

SOURCE_MANUAL = "manual"
MAX_VERSION = 2**31 - 1
_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@attrs.frozen
class SnapshotArgs:
    """The cleaned-up arguments of ``record_snapshot``; empty optionals become ``None``."""

    container_id: str
    runtime_snapshot_name: str
    display_name: str | None
    parent_runtime_snapshot_name: str | None
    snapshotter: str
    source: str


def require_text(value: str, what: str) -> str:
    """Return ``value`` stripped, or raise ``InvalidArgument`` if it is not a non-empty str."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def optional_text(value: str) -> str | None:
    """Return ``value`` stripped, or ``None`` when it is empty."""
    if not isinstance(value, str):
        raise InvalidArgument(f"expected a string, got {value!r}")
    return value.strip() or None


def snapshot_args(
    container_id: str,
    runtime_snapshot_name: str,
    display_name: str,
    parent_runtime_snapshot_name: str,
    snapshotter: str,
    source: str,
) -> SnapshotArgs:
    """Validate and normalise the arguments of ``record_snapshot``."""
    return SnapshotArgs(
        container_id=require_text(container_id, "container_id"),
        runtime_snapshot_name=require_text(runtime_snapshot_name, "runtime_snapshot_name"),
        display_name=optional_text(display_name),
        parent_runtime_snapshot_name=optional_text(parent_runtime_snapshot_name),
        snapshotter=require_text(snapshotter, "snapshotter"),
        source=optional_text(source) or SOURCE_MANUAL,
    )


def check_version(container_id: str, version: int) -> int:
    """Raise ``InvalidArgument`` unless ``version`` is an int in 1..2^31-1."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArgument(f"version of {container_id!r} must be an int, got {version!r}")
    if not 1 <= version <= MAX_VERSION:
        raise InvalidArgument(f"version {version} of {container_id!r} is out of 1..{MAX_VERSION}")
    return version


def encode_payload(container_id: str, event_type: str, payload: Mapping[str, object]) -> str:
    """Serialise an event payload to JSON text, or raise ``InvalidArgument``."""
    if not isinstance(payload, Mapping):
        raise InvalidArgument(f"payload of event {event_type!r} must be a mapping")
    try:
        return json.dumps(dict(payload), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"payload of event {event_type!r} for container {container_id!r} is not JSON: {exc}"
        ) from exc


def decode_payload(raw: object) -> dict[str, Any]:
    """Turn a stored payload (JSON text, or an already decoded dict) back into a dict."""
    value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return dict(value) if isinstance(value, Mapping) else {}


def check_schema(schema: str) -> str:
    """Return ``schema`` if it is a plain SQL identifier of at most 63 characters."""
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise InvalidArgument(
            f"schema must match [A-Za-z_][A-Za-z0-9_]* (at most 63 chars), got {schema!r}"
        )
    return schema
