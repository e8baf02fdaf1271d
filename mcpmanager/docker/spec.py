"""A :class:`~mcpmanager.types.ContainerSpec` as Docker's container and host config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import docker.types

from .. import errors
from ..types import ContainerSpec, MountSpec

__all__ = ["command", "to_mount", "to_mounts"]

_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_BIND_OPTIONS = ("bind", "rbind", "ro", "rw", *_PROPAGATION)


def command(
    spec: ContainerSpec, image_config: Mapping[str, Any] | None
) -> tuple[list[str] | None, list[str] | None]:
    """(Entrypoint, Cmd): ``spec.cmd`` replaces both; else the image's own (None: inherit)."""
    if spec.cmd:
        return [spec.cmd[0]], list(spec.cmd[1:])
    if image_config is None:
        return None, None
    entrypoint = image_config.get("Entrypoint") or None
    cmd = image_config.get("Cmd") or None
    return (list(entrypoint) if entrypoint else None), (list(cmd) if cmd else None)


def to_mount(m: MountSpec, container_id: str) -> docker.types.Mount:
    """One mount; InvalidArgument for a type or option Docker's mount API cannot express."""
    what = f"container {container_id}: mount on {m.destination!r}"
    if not m.destination.startswith("/"):
        raise errors.InvalidArgument(f"{what}: the destination must be absolute")
    if m.type in ("bind", "rbind") or (m.type == "none" and "rbind" in m.options):
        unknown = [o for o in m.options if o not in _BIND_OPTIONS]
        if unknown:
            raise errors.InvalidArgument(f"{what}: bind options {unknown} are not supported")
        if not m.source.startswith("/"):
            raise errors.InvalidArgument(f"{what}: the bind source must be absolute")
        propagation = next((o for o in m.options if o in _PROPAGATION), None)
        return docker.types.Mount(
            target=m.destination,
            source=m.source,
            type="bind",
            read_only="ro" in m.options,
            propagation=propagation,
        )
    if m.type == "tmpfs":
        size, mode = _tmpfs_options(m.options, what)
        return docker.types.Mount(
            target=m.destination, source=None, type="tmpfs", tmpfs_size=size, tmpfs_mode=mode
        )
    raise errors.InvalidArgument(f"{what}: mount type {m.type!r} is not supported on Docker")


def _tmpfs_options(options: Sequence[str], what: str) -> tuple[str | None, int | None]:
    size: str | None = None
    mode: int | None = None
    for opt in options:
        key, _, value = opt.partition("=")
        if key == "size" and value:
            size = value
        elif key == "mode" and value:
            try:
                mode = int(value, 8)
            except ValueError:
                raise errors.InvalidArgument(f"{what}: bad tmpfs mode {value!r}") from None
        elif opt not in ("rw", "nosuid", "nodev", "noexec"):
            raise errors.InvalidArgument(f"{what}: tmpfs option {opt!r} is not supported")
    return size, mode


def to_mounts(mounts: Sequence[MountSpec], container_id: str) -> list[docker.types.Mount]:
    """Every mount of a spec, in order."""
    return [to_mount(m, container_id) for m in mounts]
