"""Unpack an image's layers into a snapshotter, as containerd's Go client does.

For each layer: prepare a temporary active snapshot on the previous layer's
chain ID, let the daemon's differ apply the layer onto its mounts, and commit
it under the layer's chain ID. Then label the blobs so the garbage collector
keeps what the image needs: ``containerd.io/uncompressed`` on each layer and
``containerd.io/gc.ref.snapshot.<snapshotter>`` (the top chain ID) on the config.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from .. import errors
from .._log import get_logger
from . import snapshots
from ._conn import Connection
from .api import descriptor_pb2, diff_pb2
from .content import set_blob_labels
from .images import chain_ids

__all__ = ["SNAPSHOT_REF_LABEL_PREFIX", "UNCOMPRESSED_LABEL", "unpack"]

log = get_logger("mcpmanager.containerd")

UNCOMPRESSED_LABEL = "containerd.io/uncompressed"
"""Blob label naming a layer's uncompressed digest (its diff ID)."""

SNAPSHOT_REF_LABEL_PREFIX = "containerd.io/gc.ref.snapshot."
"""Config-blob label prefix (plus the snapshotter name) pointing at the top snapshot."""

APPLY_TIMEOUT = 1800.0
"""Seconds the daemon may take to apply one layer."""


@contextlib.contextmanager
def _leased(conn: Connection) -> Iterator[Connection]:
    if conn.lease_id:
        yield conn
    else:
        with conn.lease() as leased:
            yield leased


def unpack(
    conn: Connection,
    manifest: Mapping[str, Any],
    config: Mapping[str, Any],
    snapshotter: str,
) -> str:
    """Unpack ``manifest``'s layers into ``snapshotter``; return the top chain ID.

    Layers already unpacked (their chain ID exists) are skipped. Runs under
    ``conn``'s lease, or a lease of its own when ``conn`` has none.
    """
    layers = list(manifest.get("layers", []))
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    if len(layers) != len(diff_ids):
        raise errors.InvalidArgument(
            f"image config lists {len(diff_ids)} diff IDs for {len(layers)} layers"
        )
    if not layers:
        raise errors.InvalidArgument("image has no layers")
    chain = chain_ids(diff_ids)
    with _leased(conn) as leased:
        parent = ""
        for layer, diff_id, chain_id in zip(layers, diff_ids, chain, strict=True):
            _unpack_layer(leased, snapshotter, layer, diff_id, chain_id, parent)
            set_blob_labels(leased, layer["digest"], {UNCOMPRESSED_LABEL: diff_id})
            parent = chain_id
        config_digest = manifest["config"]["digest"]
        set_blob_labels(leased, config_digest, {SNAPSHOT_REF_LABEL_PREFIX + snapshotter: chain[-1]})
    return chain[-1]


def _unpack_layer(
    conn: Connection,
    snapshotter: str,
    layer: Mapping[str, Any],
    diff_id: str,
    chain_id: str,
    parent: str,
) -> None:
    if snapshots.exists(conn, snapshotter, chain_id):
        return
    key = f"extract-{uuid.uuid4().hex[:16]} {chain_id}"
    mounts = snapshots.prepare(conn, snapshotter, key, parent)
    committed = False
    try:
        applied = _apply(conn, layer, mounts)
        if applied != diff_id:
            raise errors.InvalidArgument(
                f"layer {layer['digest']}: unpacked to {applied}, config says {diff_id}"
            )
        try:
            snapshots.commit(conn, snapshotter, chain_id, key)
            committed = True
        except errors.AlreadyExists:
            log.debug("layer %s was unpacked concurrently", chain_id)
    finally:
        if not committed:
            with contextlib.suppress(errors.MCPManagerError):
                snapshots.remove(conn, snapshotter, key)


def _apply(conn: Connection, layer: Mapping[str, Any], mounts: list[Any]) -> str:
    desc = descriptor_pb2.Descriptor(
        media_type=layer.get("mediaType", ""),
        digest=layer["digest"],
        size=int(layer.get("size", 0)),
    )
    resp = conn.unary(
        conn.diff.Apply,
        diff_pb2.ApplyRequest(diff=desc, mounts=mounts),
        what=f"apply layer {layer['digest']}",
        timeout=APPLY_TIMEOUT,
        idempotent=False,
    )
    return str(resp.applied.digest)
