"""The container spec every bot gets: DNS, time zone, and the configured extras."""

from __future__ import annotations

import os
from collections.abc import Sequence

from . import errors
from .config import ManagerConfig
from .types import ContainerSpec, MountSpec, ResourceLimits

__all__ = ["SYSTEMD_RESOLV_CONF", "bot_container_spec", "resolv_conf_source"]

SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
_FALLBACK_RESOLV = "nameserver 1.1.1.1\nnameserver 8.8.8.8\n"
_FALLBACK_MODE = 0o600


def resolv_conf_source(data_root: str, preferred: str = SYSTEMD_RESOLV_CONF) -> str:
    """The host file to bind-mount as the container's ``/etc/resolv.conf``.

    systemd-resolved's upstream list when the host has it (the stub at
    127.0.0.53 is unreachable from a container); otherwise a fallback written
    once under ``data_root``.
    """
    if not data_root.strip():
        raise errors.InvalidArgument("data_root must not be empty")
    if os.path.exists(preferred):
        return preferred
    try:
        os.makedirs(data_root, mode=0o750, exist_ok=True)
        path = os.path.join(data_root, "resolv.conf")
        if os.path.exists(path):
            os.chmod(path, _FALLBACK_MODE)
            return path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FALLBACK_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(_FALLBACK_RESOLV)
        return path
    except FileExistsError:  # another thread wrote it first
        return os.path.join(data_root, "resolv.conf")
    except OSError as exc:
        raise errors.FailedPrecondition(
            f"cannot prepare resolv.conf under data root {data_root!r}: {exc}"
        ) from exc


def timezone_spec() -> tuple[tuple[MountSpec, ...], tuple[str, ...]]:
    """Host time zone for the container: ``/etc/localtime`` read-only, and ``TZ`` if set."""
    mounts: tuple[MountSpec, ...] = ()
    if os.path.exists("/etc/localtime"):
        mounts = (MountSpec("/etc/localtime", "bind", "/etc/localtime", ("rbind", "ro")),)
    tz = os.environ.get("TZ", "")
    return mounts, ((f"TZ={tz}",) if tz else ())


def bot_container_spec(
    config: ManagerConfig, env: Sequence[str] = (), limits: ResourceLimits | None = None
) -> ContainerSpec:
    """The spec of a bot container: resolv.conf, time zone, ``extra_mounts``/``env``.

    ``env`` (the bot's own entries) comes after the configured env, so it wins;
    ``limits`` (None: ``config.limits``) are the bot's resource limits.
    """
    resolv = MountSpec(
        "/etc/resolv.conf", "bind", resolv_conf_source(config.data_root), ("rbind", "ro")
    )
    tz_mounts, tz_env = timezone_spec()
    return ContainerSpec(
        mounts=(resolv, *tz_mounts, *config.extra_mounts),
        env=(*tz_env, *config.env, *env),
        limits=config.limits if limits is None else limits,
    )
