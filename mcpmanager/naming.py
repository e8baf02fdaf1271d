"""Every naming rule in one place: bot IDs, container IDs, labels, snapshot names.

A bot ID becomes the container ID ``"mcp-" + bot_id``, the name of its backup
(``<bot>.tar.gz``) and of its intent file (``<bot>.json``); the one rule here
makes each of those valid for every backend and file system, so a bad ID is
refused before any backend is called.
"""

from __future__ import annotations

import re
import threading
import time

from . import errors
from .types import SnapshotInfo

__all__ = [
    "BOT_LABEL_KEY",
    "CONTAINER_PREFIX",
    "DEFAULT_SNAPSHOTTER",
    "IP_LABEL_KEY",
    "MAX_BOT_ID_LENGTH",
    "MAX_CONTAINER_ID_LENGTH",
    "OPTIONS_PENDING_LABEL",
    "OPTION_ENV_LABEL",
    "OPTION_IMAGE_LABEL",
    "OPTION_LABEL_KEYS",
    "RESOURCE_LABEL_PREFIX",
    "bot_labels",
    "bot_of_container",
    "container_id",
    "is_bot_id",
    "own_lineage",
    "owned_active",
    "runtime_name",
    "snapshot_bot",
    "validate_bot_id",
]

BOT_LABEL_KEY = "mcp.bot_id"
"""Label on every container and snapshot made for a bot: the bot's ID."""
IP_LABEL_KEY = "mcp.container_ip"
"""Optional container label that pins the bot's IP (read by IP recovery)."""
OPTION_IMAGE_LABEL = "mcp.image"
"""Container label: the image the bot's options ask for (absent: the configured one)."""
OPTION_ENV_LABEL = "mcp.env"
"""Container label: the bot's own env entries, as a JSON list (absent: none)."""
RESOURCE_LABEL_PREFIX = "mcp.resource."
"""Container labels ``mcp.resource.<field>`` hold the bot's own :class:`ResourceLimits`
(``cpu_millicores``, ``memory_bytes``, ``pids``, ``storage_bytes``; absent: the
configured limits), as memoh's ``memoh.workspace.resource.*`` labels do."""
OPTIONS_PENDING_LABEL = "mcp.options.pending"
"""Container label: options stored but not yet in effect, waiting for the next recreate."""
OPTION_LABEL_KEYS = (
    OPTION_IMAGE_LABEL,
    OPTION_ENV_LABEL,
    *(RESOURCE_LABEL_PREFIX + f for f in ("cpu_millicores", "memory_bytes", "pids")),
    RESOURCE_LABEL_PREFIX + "storage_bytes",
    OPTIONS_PENDING_LABEL,
)
"""Every label the bot's options are stored in."""
CONTAINER_PREFIX = "mcp-"
"""What a bot's container ID starts with."""
DEFAULT_SNAPSHOTTER = "overlayfs"
"""The snapshotter used when neither the container nor the config names one."""

MAX_CONTAINER_ID_LENGTH = 76
"""containerd's limit on identifiers (``identifiers.Validate``)."""
MAX_BOT_ID_LENGTH = MAX_CONTAINER_ID_LENGTH - len(CONTAINER_PREFIX)
"""The longest bot ID whose container ID containerd still accepts (72)."""

# Alphanumeric runs joined by single '-' or '_': with the "mcp-" prefix this is
# exactly a containerd identifier, and a safe file name everywhere.
_BOT_ID = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")


def is_bot_id(value: object) -> bool:
    """Whether ``value`` is a bot ID every backend can hold (see :func:`validate_bot_id`)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_BOT_ID_LENGTH
        and _BOT_ID.fullmatch(value) is not None
    )


def validate_bot_id(bot_id: object) -> str:
    """Return ``bot_id`` if every backend can hold it; else InvalidArgument.

    A bot ID is 1 to 72 characters: runs of ``A-Z a-z 0-9`` joined by single
    ``-`` or ``_`` (so ``"mcp-" + bot_id`` is a valid containerd identifier).
    """
    if is_bot_id(bot_id):
        assert isinstance(bot_id, str)
        return bot_id
    raise errors.InvalidArgument(
        f"invalid bot ID {bot_id!r}: use 1 to {MAX_BOT_ID_LENGTH} characters, runs of "
        "A-Z, a-z and 0-9 joined by single '-' or '_'"
    )


def container_id(bot_id: str) -> str:
    """The container ID of a (validated) bot: ``"mcp-" + bot_id``."""
    return CONTAINER_PREFIX + validate_bot_id(bot_id)


def bot_of_container(container_id: str, labels: dict[str, str]) -> str | None:
    """The bot a container belongs to: its label, if its ID is that bot's container ID."""
    bot = labels.get(BOT_LABEL_KEY, "")
    if bot and container_id == CONTAINER_PREFIX + bot:
        return bot
    return None


def bot_labels(bot_id: str) -> dict[str, str]:
    """The labels that mark a container or snapshot as the bot's."""
    return {BOT_LABEL_KEY: bot_id}


_last_ns = 0
_ns_lock = threading.Lock()


def runtime_name(container_id: str, kind: str) -> str:
    """``<container>-<kind>-<nanoseconds>`` (``-v<ns>`` for versions), increasing per process."""
    global _last_ns
    with _ns_lock:
        _last_ns = max(_last_ns + 1, time.time_ns())
        stamp = _last_ns
    sep = "" if kind == "v" else "-"
    return f"{container_id}-{kind}{sep}{stamp}"


def owned_active(snapshot: SnapshotInfo, container_id: str, bot_id: str) -> int | None:
    """Order of ``snapshot`` among the bot's active snapshots, or None if it is not one.

    The container's own key comes first (0); ``-active-``/``-rollback-``
    snapshots follow by their timestamp. A ``mcp.bot_id`` label naming another
    bot rules a snapshot out.
    """
    if snapshot.kind != "active" or snapshot.labels.get(BOT_LABEL_KEY, bot_id) != bot_id:
        return None
    if snapshot.name == container_id:
        return 0
    m = re.fullmatch(re.escape(container_id) + r"-(?:active|rollback)-(\d+)", snapshot.name)
    return int(m[1]) if m else None


def snapshot_bot(snapshot: SnapshotInfo) -> str | None:
    """The bot an active snapshot belongs to, by its label or its plain container name."""
    if snapshot.kind != "active":
        return None
    label = snapshot.labels.get(BOT_LABEL_KEY)
    if label:
        return label if is_bot_id(label) else None
    bot = snapshot.name[len(CONTAINER_PREFIX) :]
    if snapshot.name.startswith(CONTAINER_PREFIX) and is_bot_id(bot):
        return bot
    return None


def own_lineage(
    snapshots: list[SnapshotInfo], container_id: str, bot_id: str, active_key: str
) -> list[SnapshotInfo]:
    """The bot's own snapshots and everything they are built on, in ``snapshots``' order.

    A snapshot is the bot's when it carries the bot's label (every snapshot the
    Manager makes does), or, unlabelled, is the container's active key; its
    ancestors (the image layers, older versions) come along through ``parent``.
    Names are not matched by prefix: bot ``a-v1``'s container ``mcp-a-v1``
    looks like a version of bot ``a``.
    """
    by_name = {s.name: s for s in snapshots}

    def own(s: SnapshotInfo) -> bool:
        label = s.labels.get(BOT_LABEL_KEY)
        if label is not None:
            return label == bot_id
        return s.name in (active_key, container_id)

    keep: set[str] = set()
    for snap in snapshots:
        name: str | None = snap.name if own(snap) else None
        while name and name not in keep and name in by_name:
            keep.add(name)
            name = by_name[name].parent
    return [s for s in snapshots if s.name in keep]
