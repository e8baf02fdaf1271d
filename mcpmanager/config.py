"""Manager configuration, image-reference normalisation and the CNI plugin directory."""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from . import errors
from ._log import get_logger
from .types import MountSpec, ResourceLimits, as_mount_tuple, as_str_tuple

__all__ = [
    "DEBIAN_CNI_BIN_DIR",
    "DEFAULT_CNI_BIN_DIR",
    "DEFAULT_IMAGE",
    "ManagerConfig",
    "normalize_image_ref",
    "resolve_cni_bin_dir",
]

DEFAULT_IMAGE = "memohai/mcp:latest"
"""The workspace image bots are created from when ``ManagerConfig.image`` is empty."""
DEFAULT_CNI_BIN_DIR = "/opt/cni/bin"
"""Where the CNI project's release archives put the plugins (and the default of ``cni_bin_dir``)."""
DEBIAN_CNI_BIN_DIR = "/usr/lib/cni"
"""Where Debian's ``containernetworking-plugins`` package installs the plugins."""

log = get_logger("mcpmanager")


def normalize_image_ref(ref: str) -> str:
    """Qualify a short Docker Hub name the way containerd needs it.

    ``busybox`` becomes ``docker.io/library/busybox``, ``memohai/mcp:latest``
    becomes ``docker.io/memohai/mcp:latest``; a reference whose first path
    segment is a host (has a ``.`` or ``:``, or is ``localhost``) is kept.
    """
    first, sep, _ = ref.partition("/")
    if not sep:
        return "docker.io/library/" + ref
    if "." in first or ":" in first or first == "localhost":
        return ref
    return "docker.io/" + ref


def _not_negative(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise errors.InvalidArgument(f"{attribute.name} must be a number >= 0, got {value!r}")


def _is_limits(
    _instance: object, _attribute: attrs.Attribute[ResourceLimits], value: object
) -> None:
    if not isinstance(value, ResourceLimits):
        raise errors.InvalidArgument(f"limits must be a ResourceLimits, got {value!r}")


@attrs.frozen
class ManagerConfig:
    """Settings of a :class:`mcpmanager.Manager`; all have working defaults.

    Frozen: make a changed copy with ``attrs.evolve(config, field=value)``.
    Give ``data_root`` explicitly in real use: its default is relative to the
    working directory.
    """

    image: str = DEFAULT_IMAGE
    """Workspace image of every bot, e.g. ``memohai/mcp:latest``.

    A short Docker Hub name is qualified by :func:`normalize_image_ref`
    (``docker.io/...``); empty means :data:`DEFAULT_IMAGE`.
    """

    registry: str = ""
    """A registry mirror to pull from instead of the image's own host.

    When set, bots are created from ``f"{registry}/{image}"`` as given, without
    normalisation (e.g. ``registry="mirror.local:5000"``).
    """

    snapshotter: str = ""
    """The containerd snapshotter bots' root filesystems live in; empty means ``overlayfs``."""

    data_root: str = "data"
    """Host directory for the Manager's own files.

    It holds the resolv.conf fallback, ``backups/`` of preserved data and the
    journal of interrupted version operations. Relative paths are taken from
    the working directory, so give an absolute one (e.g. ``/var/lib/mcp``).
    """

    cni_bin_dir: str = DEFAULT_CNI_BIN_DIR
    """Directory (or ``:``-separated directories) holding the CNI plugin binaries.

    Left at the default and missing, :func:`resolve_cni_bin_dir` looks in
    :data:`DEBIAN_CNI_BIN_DIR` too. Only the containerd backend uses it.
    """

    cni_conf_dir: str = "/etc/cni/net.d"
    """Directory of CNI network configurations; the first one (by name) is used."""

    grpc_port: int = 9090
    """TCP port of the agent inside each bot container, dialled at the bot's IP."""

    extra_mounts: tuple[MountSpec, ...] = attrs.field(default=(), converter=as_mount_tuple)
    """Mounts added to every bot container after resolv.conf and the time zone."""

    env: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)
    """``NAME=value`` environment entries added to every bot container's process."""

    ready_timeout: float = attrs.field(default=30.0, validator=_not_negative)
    """Seconds ``start()`` (and every operation that restarts a bot) waits for the
    bot's agent to answer; 0 does not wait (for images without our agent)."""

    limits: ResourceLimits = attrs.field(factory=ResourceLimits, validator=_is_limits)
    """Resource limits of every bot whose options name none (default: unlimited)."""

    def image_ref(self) -> str:
        """The reference bots are created from: registry mirror prefix, or normalised."""
        image = self.image or DEFAULT_IMAGE
        if self.registry:
            return f"{self.registry}/{image}"
        return normalize_image_ref(image)


def _is_dir(path: str) -> bool:
    return os.path.isdir(path)


def resolve_cni_bin_dir(
    config: ManagerConfig, fallbacks: Sequence[str] = (DEBIAN_CNI_BIN_DIR,)
) -> str:
    """The CNI plugin directory to use for ``config``.

    A ``cni_bin_dir`` set by the user is kept as given. The default,
    :data:`DEFAULT_CNI_BIN_DIR`, is kept when it exists; when it does not, the
    first existing directory of ``fallbacks`` (Debian's ``/usr/lib/cni``) is
    used and an INFO line says so. With none there, the default is returned
    and the CNI layer reports the missing plugins.
    """
    chosen = config.cni_bin_dir
    if chosen != DEFAULT_CNI_BIN_DIR or _is_dir(chosen):
        return chosen
    for candidate in fallbacks:
        if _is_dir(candidate):
            log.info("CNI plugin directory %s does not exist; using %s instead", chosen, candidate)
            return candidate
    return chosen
