"""Harness for a real containerd, started and stopped by the tests.

* ``containerd_daemon`` / ``containerd_socket``: a private containerd per session
  (own root, state and sockets in a ``tempfile.mkdtemp`` dir, CRI disabled);
  at the end its tasks and shims are killed, mounts under its dir unmounted
  and the dir removed.
* ``busybox_archive`` / ``busybox_image``: an OCI image built in Python from
  the host's static busybox, and that image imported with ContainerdService.
* :func:`build_image_archive` and the entry types: build small OCI or
  ``docker save`` archives with arbitrary files for other tests.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs
import pytest

from mcpmanager.containerd import ContainerdService
from mcpmanager.types import ImageInfo
from tests.harness.common import require_binaries, require_root, unavailable, wait_for

__all__ = [
    "BUSYBOX_REF",
    "GRACEFUL_CMD",
    "ContainerdDaemon",
    "Dir",
    "Entry",
    "File",
    "HostFile",
    "Symlink",
    "build_image_archive",
    "busybox_layer",
    "wait_until_ready",
]


@attrs.frozen
class File:
    """A regular file with literal contents."""

    path: str
    data: bytes
    mode: int = 0o644


@attrs.frozen
class HostFile:
    """A regular file copied from ``source`` on the host."""

    path: str
    source: str
    mode: int = 0o755


@attrs.frozen
class Dir:
    """A directory."""

    path: str
    mode: int = 0o755


@attrs.frozen
class Symlink:
    """A symbolic link to ``target``."""

    path: str
    target: str


Entry = File | HostFile | Dir | Symlink


def busybox_layer(busybox: str = "/bin/busybox") -> list[Entry]:
    """A minimal root filesystem: static busybox with a symlink per applet."""
    applets = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    entries: list[Entry] = [Dir(d) for d in ("bin", "etc", "root", "proc", "sys", "dev", "run")]
    entries += [Dir("tmp", 0o1777), Dir("data", 0o755)]
    entries.append(HostFile("bin/busybox", busybox))
    entries += [Symlink(f"bin/{a}", "busybox") for a in applets if a != "busybox"]
    entries.append(File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))
    entries.append(File("etc/group", b"root:x:0:\n"))
    return entries


def _tar_bytes(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mtime = 0
            if isinstance(entry, Dir):
                info.type, info.mode = tarfile.DIRTYPE, entry.mode
                tar.addfile(info)
            elif isinstance(entry, Symlink):
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            else:
                data = entry.data if isinstance(entry, File) else _read(entry.source)
                info.size, info.mode = len(data), entry.mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(
    diff_ids: list[str],
    entrypoint: Sequence[str],
    cmd: Sequence[str],
    env: Sequence[str],
    workdir: str,
    user: str,
) -> bytes:
    config: dict[str, object] = {
        "Env": list(env) or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": list(entrypoint) or None,
        "Cmd": list(cmd) or None,
        "WorkingDir": workdir,
        "User": user,
    }
    doc = {
        "architecture": _arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "mcpmanager tests"} for _ in diff_ids],
    }
    return json.dumps(doc).encode()


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def build_image_archive(
    dest: str,
    name: str,
    layers: Sequence[Sequence[Entry]],
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = ("/bin/sh",),
    env: Sequence[str] = (),
    workdir: str = "",
    user: str = "",
    fmt: str = "oci",
    annotations: Mapping[str, str] | None = None,
    multi_platform: bool = False,
) -> str:
    """Write an image archive to ``dest`` and return ``dest``.

    ``fmt`` is ``"oci"`` (OCI image layout, gzip layers, named by the
    ``io.containerd.image.name`` annotation unless ``annotations`` replace it)
    or ``"docker"`` (``docker save`` layout: manifest.json, plain tar layers).
    ``multi_platform`` (OCI only) puts the manifest in an image index next to
    an entry for a foreign platform whose blobs are absent, as registries do.
    """
    raw = [_tar_bytes(layer) for layer in layers]
    diff_ids = [_digest(r) for r in raw]
    config = _config(diff_ids, entrypoint, cmd, env, workdir, user)
    if fmt == "docker":
        _write_docker(dest, name, raw, config)
    elif fmt == "oci":
        names = dict(annotations) if annotations is not None else {"io.containerd.image.name": name}
        _write_oci(dest, raw, config, names, multi_platform)
    else:
        raise ValueError(f"unknown archive format {fmt!r}")
    return dest


def _add(tar: tarfile.TarFile, path: str, data: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _write_oci(
    dest: str,
    raw: list[bytes],
    config: bytes,
    annotations: Mapping[str, str],
    multi_platform: bool = False,
) -> None:
    blobs: dict[str, bytes] = {}
    layers = []
    for r in raw:
        gz = gzip.compress(r, mtime=0)
        blobs[_digest(gz)] = gz
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": _digest(gz),
                "size": len(gz),
            }
        )
    blobs[_digest(config)] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": layers,
        }
    ).encode()
    blobs[_digest(manifest)] = manifest
    top = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _digest(manifest),
        "size": len(manifest),
    }
    if multi_platform:
        foreign = {
            **top,
            "digest": "sha256:" + "f" * 64,
            "platform": {"os": "linux", "architecture": "s390x"},
        }
        nested = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    foreign,
                    {**top, "platform": {"os": "linux", "architecture": _arch()}},
                ],
            }
        ).encode()
        blobs[_digest(nested)] = nested
        top = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": _digest(nested),
            "size": len(nested),
        }
    index = {"schemaVersion": 2, "manifests": [{**top, "annotations": dict(annotations)}]}
    with tarfile.open(dest, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(tar, "index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            _add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)


def _write_docker(dest: str, name: str, raw: list[bytes], config: bytes) -> None:
    config_name = _digest(config).split(":", 1)[1] + ".json"
    layer_names = [f"{_digest(r).split(':', 1)[1]}/layer.tar" for r in raw]
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": layer_names}]
    with tarfile.open(dest, "w") as tar:
        _add(tar, config_name, config)
        for path, data in zip(layer_names, raw, strict=True):
            _add(tar, path, data)
        _add(tar, "manifest.json", json.dumps(manifest).encode())


# --- a private containerd ---------------------------------------------------

_CONFIG = """version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "info"
"""

BINARIES = ("containerd", "runc", "ctr", "containerd-shim-runc-v2")
"""Programs the containerd tests need on PATH."""


class ContainerdDaemon:
    """A containerd started by the tests in its own temp dir, with its own socket."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mcpm-ctrd-")
        self.root = os.path.join(self.dir, "root")
        self.socket = os.path.join(self.dir, "containerd.sock")
        self.config = os.path.join(self.dir, "config.toml")
        self.log_path = os.path.join(self.dir, "containerd.log")
        with open(self.config, "w") as fh:
            fh.write(_CONFIG.format(root=self.dir, sock=self.socket))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the daemon and wait until it answers on its socket."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", self.config],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(self._answers, timeout=timeout, what=f"containerd on {self.socket}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"containerd exited; see {self.log_path}:\n{self.log_tail()}")
        if not os.path.exists(self.socket):
            return False
        result = subprocess.run(
            ["ctr", "--address", self.socket, "version"], capture_output=True, timeout=10
        )
        return result.returncode == 0

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of the daemon's log."""
        with open(self.log_path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])

    def stop(self) -> None:
        """Stop the daemon process (shims and tasks keep running)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def ctr(self, namespace: str, *args: str, check: bool = True) -> str:
        """Run ``ctr`` against this daemon in ``namespace``; return its stdout."""
        result = subprocess.run(
            ["ctr", "--address", self.socket, "-n", namespace, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def exec(self, namespace: str, container_id: str, script: str) -> str:
        """``sh -c script`` in a running task via ``ctr tasks exec``; its stdout.

        Under heavy load ``ctr`` sometimes exits 0 before it has copied the
        process's output from its FIFO (an empty result); the scripts run here
        only read, so an empty answer is asked for again, three times at most.
        """
        out = ""
        for _ in range(3):
            exec_id = f"e{uuid.uuid4().hex[:8]}"
            out = self.ctr(
                namespace,
                "tasks",
                "exec",
                "--exec-id",
                exec_id,
                container_id,
                "/bin/sh",
                "-c",
                script,
            )
            if out:
                break
        return out

    def teardown(self) -> None:
        """Kill every task and shim of this daemon, stop it, unmount and remove its dir."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._kill_tasks()
        finally:
            self.stop()
            self._kill_shims()
            _unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_tasks(self) -> None:
        for ns in self.ctr("default", "namespaces", "ls", "-q", check=False).split():
            for line in self.ctr(ns, "tasks", "ls", check=False).splitlines()[1:]:
                task = line.split()[0]
                self.ctr(ns, "tasks", "kill", "-s", "SIGKILL", task, check=False)
                with contextlib.suppress(AssertionError):
                    wait_for(
                        lambda ns=ns, task=task: (
                            "STOPPED" in self.ctr(ns, "tasks", "ls", check=False)
                            or task not in self.ctr(ns, "tasks", "ls", check=False)
                        ),
                        timeout=10,
                    )
                self.ctr(ns, "tasks", "delete", "-f", task, check=False)

    def _kill_shims(self) -> None:
        for pid in _pids_with_arg(self.socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pids_with_arg(needle: str) -> list[int]:
    """PIDs of processes whose command line mentions ``needle`` (our shims)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and "containerd-shim" in cmdline:
            found.append(int(entry))
    return found


def _unmount_under(path: str) -> None:
    """Lazily unmount every mount point below ``path``, deepest first."""
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@pytest.fixture(scope="session")
def containerd_daemon() -> Iterator[ContainerdDaemon]:
    """A private containerd for the whole session (skips without root/binaries)."""
    require_root()
    require_binaries(*BINARIES)
    daemon = ContainerdDaemon()
    try:
        daemon.start()
    except (RuntimeError, AssertionError) as err:
        daemon.teardown()
        unavailable(f"cannot start containerd: {err}")
    try:
        yield daemon
    finally:
        daemon.teardown()


@pytest.fixture(scope="session")
def containerd_socket(containerd_daemon: ContainerdDaemon) -> str:
    """The socket path of the session's private containerd."""
    return containerd_daemon.socket


@pytest.fixture(scope="session")
def containerd_namespace() -> str:
    """A namespace of our own in the private daemon."""
    return f"mcpm-test-{os.getpid()}"


@pytest.fixture(scope="session")
def busybox_archive() -> Iterator[str]:
    """Path of an OCI archive of a busybox image named ``BUSYBOX_REF``."""
    require_binaries("/bin/busybox")
    workdir = tempfile.mkdtemp(prefix="mcpm-img-")
    try:
        yield build_image_archive(
            os.path.join(workdir, "busybox.tar"), BUSYBOX_REF, [busybox_layer()]
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


BUSYBOX_REF = "docker.io/library/mcpm-busybox:test"
"""Name of the busybox test image."""

GRACEFUL_CMD = (
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; echo ready > /run/ready; sleep 1000 & wait $!",
)
"""A busybox command that exits 0 on SIGTERM once :func:`wait_until_ready` saw it ready."""


def wait_until_ready(daemon: ContainerdDaemon, namespace: str, container_id: str) -> None:
    """Wait until a container running :data:`GRACEFUL_CMD` has installed its SIGTERM trap.

    PID 1 of a PID namespace ignores SIGTERM until it has a handler, so
    stopping the container before this point would hang.
    """

    def ready() -> bool:
        script = "cat /run/ready 2>/dev/null; true"
        exec_id = f"r{os.urandom(4).hex()}"
        out = daemon.ctr(
            namespace,
            "tasks",
            "exec",
            "--exec-id",
            exec_id,
            container_id,
            "/bin/sh",
            "-c",
            script,
            check=False,
        )
        return out.strip() == "ready"

    wait_for(ready, timeout=30, what=f"container {container_id} to be ready")


@pytest.fixture(scope="session")
def containerd_service(
    containerd_socket: str, containerd_namespace: str
) -> Iterator[ContainerdService]:
    """A ContainerdService on the private daemon and the test namespace."""
    service = ContainerdService(containerd_socket, containerd_namespace)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture(scope="session")
def busybox_image(containerd_service: ContainerdService, busybox_archive: str) -> ImageInfo:
    """The busybox test image, imported into the test namespace."""
    return containerd_service.import_image(busybox_archive)
