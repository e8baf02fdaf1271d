"""Manager configuration and image-reference normalisation."""

from __future__ import annotations

import attrs

from . import errors
from .types import MountSpec, ResourceLimits, as_mount_tuple, as_str_tuple

__all__ = ["DEFAULT_IMAGE", "ManagerConfig", "normalize_image_ref"]

DEFAULT_IMAGE = "memohai/mcp:latest"


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

    ``data_root`` holds host-side files (resolv.conf fallback, backups);
    ``extra_mounts`` and ``env`` are added to every bot container.
    """

    image: str = DEFAULT_IMAGE
    registry: str = ""
    snapshotter: str = ""
    data_root: str = "data"
    cni_bin_dir: str = "/opt/cni/bin"
    cni_conf_dir: str = "/etc/cni/net.d"
    grpc_port: int = 9090
    extra_mounts: tuple[MountSpec, ...] = attrs.field(default=(), converter=as_mount_tuple)
    env: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)
    ready_timeout: float = attrs.field(default=30.0, validator=_not_negative)
    """Seconds start() (and every operation that restarts a bot) waits for the bot's
    agent to answer; 0 does not wait (for images without our agent)."""
    limits: ResourceLimits = attrs.field(factory=ResourceLimits, validator=_is_limits)
    """Resource limits of every bot whose options name none (default: unlimited)."""

    def image_ref(self) -> str:
        """The reference bots are created from: registry mirror prefix, or normalised."""
        image = self.image or DEFAULT_IMAGE
        if self.registry:
            return f"{self.registry}/{image}"
        return normalize_image_ref(image)
