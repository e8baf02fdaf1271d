"""Harness for a private dockerd, started and stopped by the tests.

* ``docker_daemon`` (session): Debian's dockerd with its own data root, exec
  root, pidfile and socket in a temp dir, its own containerd (a
  :class:`ContainerdDaemon`), running inside a network namespace made here
  (or the one named by ``MCPMANAGER_DOCKER_NETNS``, for the end-to-end child
  that already runs in it). Its bridges and container addresses exist only
  in that namespace. Teardown removes its containers, stops both daemons,
  unmounts what they left, deletes the temp dir and the namespace, and the
  ``/etc/docker/key.json`` and ``/run/docker`` a first start wrote.
* ``docker_service``: a DockerService on it; everything mcpmanager made on
  the daemon is removed after each test (the contract suite plugs in here).
* ``docker_busybox``: the busybox test image, loaded once.
* :class:`NetnsRegistry`: a docker-registry inside the daemon's namespace
  (the daemon pulls from 127.0.0.1 there), pushed to with skopeo.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator

import docker
import pytest

from mcpmanager.docker import DockerService
from mcpmanager.types import ImageInfo
from tests.harness.common import require_binaries, require_root, unavailable, wait_for
from tests.harness.containerd import (
    BINARIES,
    BUSYBOX_REF,
    ContainerdDaemon,
    _unmount_under,
    build_image_archive,
    busybox_layer,
)
from tests.harness.e2e import HostNetns
from tests.harness.registry import REGISTRY_BIN, BuiltImage, free_port

__all__ = ["DOCKER_BINARIES", "NETNS_ENV", "DockerDaemon", "NetnsRegistry", "clean_daemon"]

NETNS_ENV = "MCPMANAGER_DOCKER_NETNS"
"""Name of an existing network namespace to run dockerd in (set for the e2e child)."""
DOCKER_BINARIES = ("dockerd", "ip", "nsenter", *BINARIES)
_SYSTEM_FILES = ("/etc/docker/key.json", "/run/docker")


class DockerDaemon:
    """A dockerd (and its containerd) of the tests' own, inside a network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="mcpm-dockerd-")
        self.socket = os.path.join(self.dir, "docker.sock")
        self.base_url = f"unix://{self.socket}"
        self.log_path = os.path.join(self.dir, "dockerd.log")
        self.containerd = ContainerdDaemon()
        self._own_netns: HostNetns | None = None
        self.netns_path = f"/var/run/netns/{netns}" if netns else ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._preexisting = {p for p in _SYSTEM_FILES if os.path.exists(p)}

    def exec_argv(self, *argv: str) -> list[str]:
        """``argv`` run in the daemon's network namespace."""
        return ["nsenter", f"--net={self.netns_path}", *argv]

    def start(self, timeout: float = 60.0) -> None:
        """Start containerd, then dockerd in the namespace; wait until it answers."""
        if not self.netns_path:
            self._own_netns = HostNetns("dock")
            self.netns_path = self._own_netns.path
        self.containerd.start()
        config = os.path.join(self.dir, "daemon.json")
        with open(config, "w") as fh:
            json.dump({}, fh)
        argv = self.exec_argv(
            "dockerd",
            f"--config-file={config}",
            f"--data-root={self.dir}/data",
            f"--exec-root={self.dir}/exec",
            f"--pidfile={self.dir}/docker.pid",
            f"--host={self.base_url}",
            f"--containerd={self.containerd.socket}",
            f"--cgroup-parent=mcpm-dockerd-{os.getpid()}",
            "--userland-proxy=false",
            "--iptables=false",
            "--ip-forward=false",
            "--bridge=none",
            "--storage-driver=overlay2",
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        wait_for(self._answers, timeout=timeout, interval=0.1, what=f"dockerd on {self.socket}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited; see {self.log_path}:\n{self.log_tail()}")
        if not os.path.exists(self.socket):
            return False
        try:
            api = docker.APIClient(base_url=self.base_url, version="1.41", timeout=5)
            try:
                return bool(api.ping())
            finally:
                api.close()
        except Exception:
            return False

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of dockerd's log."""
        with open(self.log_path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])

    def api(self) -> docker.APIClient:
        """A raw docker-py client on the daemon (the caller closes it)."""
        return docker.APIClient(base_url=self.base_url, version="auto", timeout=60)

    def teardown(self) -> None:
        """Remove containers, stop both daemons, unmount, delete the dir and the namespace."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(Exception):
                    clean_daemon(self.base_url, everything=True)
            self._stop()
        finally:
            self.containerd.teardown()
            _unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            if self._own_netns is not None:
                self._own_netns.close()
            for path in _SYSTEM_FILES:
                if path not in self._preexisting and os.path.exists(path):
                    with contextlib.suppress(OSError):
                        (shutil.rmtree if os.path.isdir(path) else os.remove)(path)

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def clean_daemon(base_url: str, *, everything: bool = False) -> None:
    """Remove what mcpmanager made (every container and image too with ``everything``)."""
    api = docker.APIClient(base_url=base_url, version="auto", timeout=60)
    try:
        filters = {} if everything else {"label": "io.mcpmanager.kind"}
        for c in api.containers(all=True, filters=filters):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(c["Id"], force=True)
        for _ in range(5):  # children first: retry until no snapshot image is left
            found = api.images(filters={"label": "io.mcpmanager.kind"})
            found += api.images(filters={"dangling": True})
            if not found:
                break
            for image in found:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_image(image["Id"], force=True)
        for net in api.networks(filters={"label": "io.mcpmanager.network"}):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(net["Id"])
    finally:
        api.close()


class NetnsRegistry:
    """A docker-registry on 127.0.0.1 inside the daemon's namespace."""

    def __init__(self, daemon: DockerDaemon) -> None:
        self.daemon = daemon
        self.dir = tempfile.mkdtemp(prefix="mcpm-dreg-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.policy = os.path.join(self.dir, "policy.json")
        with open(self.policy, "w") as fh:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, fh)
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as fh:
            fh.write(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                f"    rootdirectory: {self.dir}/storage\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.host}\n"
            )
        with open(os.path.join(self.dir, "registry.log"), "wb") as log:
            self.proc = subprocess.Popen(
                daemon.exec_argv(REGISTRY_BIN, "serve", config), stdout=log, stderr=log
            )
        try:
            wait_for(self._answers, timeout=20, interval=0.2, what="docker-registry in the netns")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("docker-registry exited")
        probe = f"import urllib.request as u; u.urlopen('http://{self.host}/v2/', timeout=1)"
        argv = self.daemon.exec_argv("python3", "-c", probe)
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0

    def push(self, image: BuiltImage, repo_tag: str) -> str:
        """Copy ``image``'s OCI layout to ``<host>/<repo_tag>``; return the reference."""
        ref = f"{self.host}/{repo_tag}"
        argv = self.daemon.exec_argv(
            "skopeo",
            "--policy",
            self.policy,
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
            "--preserve-digests",
            f"oci:{image.layout}:{image.tag}",
            f"docker://{ref}",
        )
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"skopeo push of {ref} failed: {proc.stderr.strip()}")
        return ref

    def stop(self) -> None:
        """Stop the registry and remove its storage."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """A private dockerd for the session (skips without root or docker.io)."""
    require_root()
    require_binaries(*DOCKER_BINARIES)
    daemon = DockerDaemon(os.environ.get(NETNS_ENV) or None)
    try:
        daemon.start()
    except (RuntimeError, AssertionError) as err:
        daemon.teardown()
        unavailable(f"cannot start dockerd: {err}")
    try:
        yield daemon
    finally:
        daemon.teardown()


@pytest.fixture(scope="session")
def docker_network() -> str:
    """The bridge network name the tests' services use."""
    return f"mcpt{os.getpid()}"


@pytest.fixture
def docker_service(docker_daemon: DockerDaemon, docker_network: str) -> Iterator[DockerService]:
    """A DockerService on the private daemon; what it made is removed after the test."""
    service = DockerService(docker_daemon.base_url, network=docker_network)
    try:
        yield service
    finally:
        service.close()
        clean_daemon(docker_daemon.base_url)


@pytest.fixture(scope="session")
def docker_busybox(docker_daemon: DockerDaemon) -> ImageInfo:
    """The busybox test image (``BUSYBOX_REF``), loaded from an OCI archive once."""
    require_binaries("/bin/busybox")
    workdir = tempfile.mkdtemp(prefix="mcpm-dimg-")
    try:
        path = build_image_archive(
            os.path.join(workdir, "busybox.tar"), BUSYBOX_REF, [busybox_layer()]
        )
        with DockerService(docker_daemon.base_url) as service:
            return service.import_image(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_registry(docker_daemon: DockerDaemon) -> Iterator[NetnsRegistry]:
    """A registry the private dockerd can pull from."""
    require_binaries(REGISTRY_BIN, "skopeo")
    registry = NetnsRegistry(docker_daemon)
    try:
        yield registry
    finally:
        registry.stop()
