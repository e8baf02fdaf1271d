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

import attrs

from .. import errors
from .._log import get_logger
from . import snapshots
from ._conn import Connection
from .api import descriptor_pb2, diff_pb2
from .content import set_blob_labels
from .images import chain_ids

__all__ = [
    "SNAPSHOT_REF_LABEL_PREFIX",
    "UNCOMPRESSED_LABEL",
    "LayerStep",
    "apply_layer",
    "label_config",
    "plan",
    "snapshot_labels",
    "unpack",
    "unpack_layer",
    "unpacked_prefix",
]

log = get_logger("mcpmanager.containerd")

UNCOMPRESSED_LABEL = "containerd.io/uncompressed"
"""Blob label naming a layer's uncompressed digest (its diff ID)."""

SNAPSHOT_REF_LABEL_PREFIX = "containerd.io/gc.ref.snapshot."
"""Config-blob label prefix (plus the snapshotter name) pointing at the top snapshot."""

APPLY_TIMEOUT = 1800.0
"""Seconds the daemon may take to apply one layer."""


@attrs.frozen
class LayerStep:
    """One layer to unpack: its descriptor, diff ID, chain ID and the parent's chain ID."""

    layer: Mapping[str, Any]
    diff_id: str
    chain_id: str
    parent: str

    @property
    def digest(self) -> str:
        """The compressed layer's digest (its blob in the content store)."""
        return str(self.layer["digest"])


@contextlib.contextmanager
def _leased(conn: Connection) -> Iterator[Connection]:
    if conn.lease_id:
        yield conn
    else:
        with conn.lease() as leased:
            yield leased


def plan(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> list[LayerStep]:
    """The layers of ``manifest`` in order, each with its diff ID and chain IDs."""
    layers = list(manifest.get("layers", []))
    diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
    if len(layers) != len(diff_ids):
        raise errors.InvalidArgument(
            f"image config lists {len(diff_ids)} diff IDs for {len(layers)} layers"
        )
    if not layers:
        raise errors.InvalidArgument("image has no layers")
    chain = chain_ids(diff_ids)
    parents = ["", *chain[:-1]]
    return [
        LayerStep(layer, diff_id, chain_id, parent)
        for layer, diff_id, chain_id, parent in zip(layers, diff_ids, chain, parents, strict=True)
    ]


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
    steps = plan(manifest, config)
    with _leased(conn) as leased:
        done = unpacked_prefix(leased, snapshotter, steps)
        for step in steps[done:]:
            apply_layer(leased, snapshotter, step)
        for step in steps:
            set_blob_labels(leased, step.digest, {UNCOMPRESSED_LABEL: step.diff_id})
        label_config(leased, manifest, snapshotter, steps[-1].chain_id)
    return steps[-1].chain_id


def snapshot_labels(snapshotter: str, top: str) -> dict[str, str]:
    """The config-blob label that makes an image record keep its unpacked chain ``top``."""
    return {SNAPSHOT_REF_LABEL_PREFIX + snapshotter: top}


def label_config(conn: Connection, manifest: Mapping[str, Any], snapshotter: str, top: str) -> None:
    """Point the image config at its top snapshot, so the image record keeps the chain."""
    set_blob_labels(conn, manifest["config"]["digest"], snapshot_labels(snapshotter, top))


def unpacked_prefix(conn: Connection, snapshotter: str, steps: list[LayerStep]) -> int:
    """How many leading ``steps`` are unpacked already; the deepest of them joins the lease.

    A committed snapshot's parent cannot be removed before it, so the chain
    present is always a prefix: the first missing chain ID ends the search
    (a fresh image costs one ``Stat``). Holding the deepest snapshot holds its
    parents too (the garbage collector follows parent links). The look-up
    comes first and is repeated once the lease holds the snapshot, so one
    collected in between is simply unpacked again.
    """
    done = 0
    while done < len(steps) and snapshots.exists(conn, snapshotter, steps[done].chain_id):
        done += 1
    if done and conn.lease_id:
        deepest = steps[done - 1].chain_id
        _lease_snapshot(conn, snapshotter, deepest)
        if not snapshots.exists(conn, snapshotter, deepest):
            return 0
    return done


def unpack_layer(conn: Connection, snapshotter: str, step: LayerStep) -> None:
    """Apply one layer onto its parent unless its chain ID exists (its blob must be in).

    ``conn`` must carry a lease: the new snapshot (or the existing one
    skipped) is held by it until the image's config label references it.
    """
    if not unpacked_prefix(conn, snapshotter, [step]):
        apply_layer(conn, snapshotter, step)


def apply_layer(conn: Connection, snapshotter: str, step: LayerStep) -> None:
    """Apply one layer onto its parent and commit it as its chain ID, without looking first.

    For a layer known to be missing (see :func:`unpacked_prefix`): it costs
    ``Prepare``, ``Apply`` and ``Commit``. Should the chain ID appear
    meanwhile (a concurrent pull), the extraction is dropped and the existing
    snapshot joins ``conn``'s lease instead.
    """
    key = f"extract-{uuid.uuid4().hex[:16]} {step.chain_id}"
    mounts = snapshots.prepare(conn, snapshotter, key, step.parent)
    committed = False
    try:
        applied = _apply(conn, step.layer, mounts)
        if applied != step.diff_id:
            raise errors.InvalidArgument(
                f"layer {step.digest}: unpacked to {applied}, config says {step.diff_id}"
            )
        try:
            snapshots.commit(conn, snapshotter, step.chain_id, key)
            committed = True
        except errors.AlreadyExists:
            log.debug("layer %s was unpacked concurrently", step.chain_id)
            _lease_snapshot(conn, snapshotter, step.chain_id)
    finally:
        if not committed:
            with contextlib.suppress(errors.MCPManagerError):
                snapshots.remove(conn, snapshotter, key)


def _lease_snapshot(conn: Connection, snapshotter: str, chain_id: str) -> None:
    """Hold an existing layer snapshot in ``conn``'s lease (GC may not take it meanwhile)."""
    with contextlib.suppress(errors.NotFound):
        conn.hold(
            chain_id, f"snapshots/{snapshotter}", f"lease snapshot {chain_id!r} in {snapshotter}"
        )


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
