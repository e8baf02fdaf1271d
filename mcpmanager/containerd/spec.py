"""Build the OCI runtime spec for a container, like containerd's ``oci`` package.

The default Linux spec (mounts, capabilities, namespaces including a fresh
network namespace, rlimits, masked and read-only paths), then the image
config (Entrypoint/Cmd/Env/WorkingDir/User), then the caller's
:class:`ContainerSpec`. Stored in the container record as JSON inside a
``google.protobuf.Any``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import any_pb2

from .. import errors
from ..types import ContainerSpec, ResourceLimits

__all__ = [
    "CPU_PERIOD_US",
    "SHIM_GROUP_ANNOTATION",
    "SPEC_TYPE_URL",
    "apply_limits",
    "build_spec",
    "default_spec",
    "merge_env",
    "spec_any",
]

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
"""Type URL containerd and ctr expect for a JSON runtime spec."""

SHIM_GROUP_ANNOTATION = "io.containerd.runc.v2.group"
"""The spec annotation by which containerd's runc shim serves containers of one group together."""

OCI_VERSION = "1.0.2-dev"
CPU_PERIOD_US = 100_000
"""The CFS period CPU limits are a quota of (100 ms, the kernel's default)."""
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
_TMPFS = ["nosuid", "strictatime", "mode=755", "size=65536k"]
_MOUNTS: list[tuple[str, str, str, list[str]]] = [
    ("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
    ("/dev", "tmpfs", "tmpfs", _TMPFS),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    ),
    ("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    ("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
    ("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
    ("/run", "tmpfs", "tmpfs", _TMPFS),
]
_MASKED = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_NAMESPACES = ["pid", "ipc", "uts", "mount", "network"]


def default_spec(namespace: str, container_id: str) -> dict[str, Any]:
    """containerd's default Linux spec for ``container_id`` in ``namespace``."""
    return {
        "ociVersion": OCI_VERSION,
        "root": {"path": "rootfs"},
        "process": {
            "cwd": "/",
            "noNewPrivileges": True,
            "user": {"uid": 0, "gid": 0},
            "capabilities": {k: list(_CAPS) for k in ("bounding", "permitted", "effective")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        },
        "mounts": [
            {"destination": d, "type": t, "source": s, "options": list(o)} for d, t, s, o in _MOUNTS
        ],
        "linux": {
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
            "cgroupsPath": f"/{namespace}/{container_id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in _NAMESPACES],
        },
    }


def merge_env(defaults: Iterable[str], overrides: Iterable[str]) -> list[str]:
    """Set or replace ``KEY=value`` entries; a bare ``KEY`` unsets it (Go semantics)."""
    result: dict[str, str | None] = {}
    for entry in defaults:
        result[entry.split("=", 1)[0]] = entry
    for entry in overrides:
        key = entry.split("=", 1)[0]
        if "=" not in entry:
            if key in result:
                result[key] = None
            continue
        result[key] = entry
    return [v for v in result.values() if v is not None]


def _numeric_id(part: str, user: str) -> int:
    if part == "root":
        return 0
    if part.isdigit():
        return int(part)
    raise errors.NotSupported(f"user {user!r}: only numeric uid[:gid] or root is supported")


def _parse_user(user: str) -> dict[str, int]:
    """``uid[:gid]`` (numbers or ``root``); the group defaults to 0 like Go's client."""
    name, _, group = user.partition(":")
    return {"uid": _numeric_id(name, user), "gid": _numeric_id(group, user) if group else 0}


def _apply_image_config(
    spec: dict[str, Any], config: Mapping[str, Any], args: Sequence[str]
) -> None:
    cfg = config.get("config") or {}
    proc = spec["process"]
    proc["env"] = merge_env(cfg.get("Env") or [DEFAULT_PATH], proc.get("env", []))
    cmd = list(args) if args else list(cfg.get("Cmd") or [])
    proc["args"] = list(cfg.get("Entrypoint") or []) + cmd
    proc["cwd"] = cfg.get("WorkingDir") or "/"
    if cfg.get("User"):
        proc["user"] = _parse_user(cfg["User"])


def _apply_container_spec(spec: dict[str, Any], cs: ContainerSpec) -> None:
    proc = spec["process"]
    if cs.cmd:
        proc["args"] = list(cs.cmd)
    if cs.env:
        proc["env"] = merge_env(proc.get("env", []), cs.env)
    if cs.workdir:
        proc["cwd"] = cs.workdir
    if cs.user:
        proc["user"] = _parse_user(cs.user)
    if cs.tty:
        proc["terminal"] = True
    for m in cs.mounts:
        spec["mounts"].append(
            {
                "destination": m.destination,
                "type": m.type,
                "source": m.source,
                "options": list(m.options),
            }
        )


def apply_limits(resources: dict[str, Any], limits: ResourceLimits | None) -> None:
    """Set CPU (CFS quota per period), memory (hard limit) and pids in ``linux.resources``.

    runc applies these on cgroup v1 (cpu.cfs_quota_us, memory.limit_in_bytes,
    pids.max) and v2 (cpu.max, memory.max, pids.max) alike. A limit of 0
    removes the entry (unlimited); other resource entries are kept.
    """
    limits = limits or ResourceLimits()
    if limits.cpu_millicores:
        quota = limits.cpu_millicores * CPU_PERIOD_US // 1000
        resources["cpu"] = {"quota": quota, "period": CPU_PERIOD_US}
    else:
        resources.pop("cpu", None)
    if limits.memory_bytes:
        resources["memory"] = {"limit": limits.memory_bytes}
    else:
        resources.pop("memory", None)
    if limits.pids:
        resources["pids"] = {"limit": limits.pids}
    else:
        resources.pop("pids", None)


def build_spec(
    namespace: str,
    container_id: str,
    image_config: Mapping[str, Any],
    cs: ContainerSpec,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The full runtime spec: defaults, then the image config, then ``cs`` (and ``annotations``)."""
    if not image_config.get("config") and not cs.cmd:
        raise errors.InvalidArgument(f"container {container_id}: image has no config and no cmd")
    spec = default_spec(namespace, container_id)
    _apply_image_config(spec, image_config, ())
    _apply_container_spec(spec, cs)
    apply_limits(spec["linux"]["resources"], cs.limits)
    if annotations:
        spec["annotations"] = {**spec.get("annotations", {}), **annotations}
    if not spec["process"]["args"]:
        raise errors.InvalidArgument(f"container {container_id}: no command to run")
    return spec


def spec_any(spec: Mapping[str, Any]) -> any_pb2.Any:
    """Wrap ``spec`` as containerd stores it: JSON in an Any with the runtime-spec type URL."""
    return any_pb2.Any(type_url=SPEC_TYPE_URL, value=json.dumps(spec).encode())
