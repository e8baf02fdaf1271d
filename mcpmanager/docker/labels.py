"""The labels that carry mcpmanager's records on Docker containers and images.

Docker cannot relabel a container or an image, and a container inherits the
labels of its image (an image those of the container it was committed from).
So every object gets every key below set explicitly at creation, and the
caller's own labels travel JSON-encoded in one label: what Docker merged in
never leaks into :class:`~mcpmanager.types.ContainerInfo` or
:class:`~mcpmanager.types.SnapshotInfo`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import attrs

from .. import errors
from ..types import ContainerSpec

__all__ = [
    "CONSUMED",
    "IMAGE",
    "KIND",
    "KIND_CONTAINER",
    "KIND_SNAPSHOT",
    "LABELS",
    "PARENT",
    "PREFIX",
    "PREPARED",
    "SNAPSHOT",
    "SNAPSHOTTER",
    "SNAP_LABELS",
    "SPEC",
    "check_user_labels",
    "decode",
    "encode",
    "record",
    "spec_hash",
]

PREFIX = "io.mcpmanager."
KIND = PREFIX + "kind"
"""``container`` (a container holding an active snapshot) or ``snapshot`` (a committed image)."""
SNAPSHOT = PREFIX + "snapshot"
"""The active snapshot key a container holds, or a committed image's snapshot name."""
PARENT = PREFIX + "parent"
"""The committed snapshot (or base image ID) the snapshot was made on."""
IMAGE = PREFIX + "image"
"""The image reference the caller asked for (a container from a snapshot runs another)."""
SNAPSHOTTER = PREFIX + "snapshotter"
"""The snapshotter name the caller gave (Docker has one storage driver; kept for reports)."""
LABELS = PREFIX + "labels"
"""The container's own labels, JSON-encoded."""
SNAP_LABELS = PREFIX + "snapshot-labels"
"""The snapshot's labels, JSON-encoded."""
SPEC = PREFIX + "spec"
"""A hash of what the container was created with: a kept container is reused only if equal."""
PREPARED = PREFIX + "prepared"
"""``1`` on a container made by prepare_snapshot: never started, its layer is empty."""
CONSUMED = PREFIX + "consumed"
"""On a committed image: the Docker ID of the container whose layer it took."""

KIND_CONTAINER = "container"
KIND_SNAPSHOT = "snapshot"

_ALL = (KIND, SNAPSHOT, PARENT, IMAGE, SNAPSHOTTER, LABELS, SNAP_LABELS, SPEC, PREPARED, CONSUMED)


def encode(labels: Mapping[str, str] | None) -> str:
    """Labels as the compact, sorted JSON stored in one Docker label."""
    return json.dumps(dict(labels or {}), sort_keys=True, separators=(",", ":"))


def decode(raw: str | None) -> dict[str, str]:
    """Labels back from :func:`encode`; anything unreadable counts as none."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def record(**values: str) -> dict[str, str]:
    """Every internal label, ``values`` (keyed by the constant's suffix) and ``""`` for the rest."""
    out = dict.fromkeys(_ALL, "")
    for name, value in values.items():
        key = PREFIX + name.replace("_", "-")
        if key not in out:
            raise AssertionError(f"unknown internal label {key}")
        out[key] = value
    return out


def check_user_labels(labels: Mapping[str, str], what: str) -> None:
    """InvalidArgument if a caller's label would clash with mcpmanager's own."""
    for key in labels:
        if not key or key.startswith(PREFIX):
            raise errors.InvalidArgument(f"{what}: label key {key!r} is reserved or empty")


def spec_hash(image_ref: str, labels: Mapping[str, str], spec: ContainerSpec) -> str:
    """A digest of a creation request, to tell whether a kept container matches a new one."""
    doc = {"image": image_ref, "labels": dict(labels), "spec": attrs.asdict(spec)}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
