"""Harness for a real registry, started and stopped by the tests (see tests/harness/common.py).

``local_registry`` (session scope) runs Debian's ``docker-registry`` on
127.0.0.1 with filesystem storage in a temp dir. Images are built here in
Python as OCI layouts (:func:`build_oci_image`) and pushed with ``skopeo``
(:meth:`LocalRegistry.push`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.harness.common import require_binaries, wait_for

REGISTRY_BIN = "/usr/bin/docker-registry"
BUSYBOX = "/bin/busybox"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

Files = Mapping[str, "bytes | str"]
"""A layer's content: path -> file bytes, or ``"->target"`` for a symlink."""


@dataclass
class BuiltImage:
    """What :func:`build_oci_image` wrote: the layout dir and the digests inside."""

    layout: str
    tag: str
    target_digest: str
    target_media_type: str
    manifest_digests: dict[str, str] = field(default_factory=dict)
    config_digests: dict[str, str] = field(default_factory=dict)
    layer_digests: list[str] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)


Pushed = dict[str, tuple[BuiltImage, str]]
"""Test images by role: (what was built, the reference it was pushed to)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: Files) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip of it), both deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted({os.path.dirname(p) for p in files} - {""}):
            parts = d.split("/")
            for i in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:i]))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                if info.name not in tar.getnames():
                    tar.addfile(info)
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            if isinstance(content, str) and content.startswith("->"):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content[2:], 0o777
                tar.addfile(info)
                continue
            data = content.encode() if isinstance(content, str) else content
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return plain, gzip.compress(plain, compresslevel=1, mtime=0)


class _Layout:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def put(self, data: bytes) -> str:
        digest = _sha(data)
        path = os.path.join(self.root, "blobs", "sha256", digest.split(":", 1)[1])
        with open(path, "wb") as fh:
            fh.write(data)
        return digest

    def put_json(self, obj: object) -> tuple[str, int]:
        data = json.dumps(obj, sort_keys=True).encode()
        return self.put(data), len(data)

    def finish(self, desc: dict[str, object], tag: str) -> None:
        desc = {**desc, "annotations": {"org.opencontainers.image.ref.name": tag}}
        with open(os.path.join(self.root, "index.json"), "w") as fh:
            json.dump({"schemaVersion": 2, "manifests": [desc]}, fh)
        with open(os.path.join(self.root, "oci-layout"), "w") as fh:
            json.dump({"imageLayoutVersion": "1.0.0"}, fh)


def _image_manifest(
    layout: _Layout, layers: Sequence[Files], arch: str, variant: str, built: BuiltImage
) -> dict[str, object]:
    layer_descs, diff_ids = [], []
    for files in layers:
        plain, packed = _layer(files)
        digest = layout.put(packed)
        layer_descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len(packed)})
        diff_ids.append(_sha(plain))
    config = {
        "architecture": arch,
        "os": "linux",
        **({"variant": variant} if variant else {}),
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_digest, config_size = layout.put_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layer_descs,
    }
    digest, size = layout.put_json(manifest)
    key = f"{arch}/{variant}" if variant else arch
    built.manifest_digests[key] = digest
    built.config_digests[key] = config_digest
    if not built.layer_digests:
        built.layer_digests = [str(d["digest"]) for d in layer_descs]
        built.diff_ids = diff_ids
    plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": plat}


def build_oci_image(
    dest: str,
    layers: Sequence[Files],
    *,
    tag: str = "latest",
    platforms: Sequence[tuple[str, str]] = (),
) -> BuiltImage:
    """Write an OCI layout at ``dest`` holding one image made of ``layers``.

    With ``platforms`` (``[(arch, variant), ...]``) the target is an image
    index with one manifest per platform (same layers, different configs);
    the first platform's digests land in ``layer_digests``/``diff_ids``.
    Otherwise the target is a single manifest for the host's architecture.
    """
    layout = _Layout(dest)
    built = BuiltImage(layout=dest, tag=tag, target_digest="", target_media_type="")
    if not platforms:
        desc = _image_manifest(layout, layers, host_arch(), "", built)
    else:
        children = [_image_manifest(layout, layers, a, v, built) for a, v in platforms]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        digest, size = layout.put_json(index)
        desc = {"mediaType": OCI_INDEX, "digest": digest, "size": size}
    built.target_digest = str(desc["digest"])
    built.target_media_type = str(desc["mediaType"])
    layout.finish({k: v for k, v in desc.items() if k != "platform"}, tag)
    return built


def host_arch() -> str:
    """The OCI architecture name of this machine."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def busybox_layer() -> dict[str, bytes | str]:
    """A layer with a static busybox as /bin/busybox and /bin/sh, ls, cat, echo."""
    with open(BUSYBOX, "rb") as fh:
        data = fh.read()
    files: dict[str, bytes | str] = {"bin/busybox": data}
    for tool in ("sh", "ls", "cat", "echo", "sleep", "true"):
        files[f"bin/{tool}"] = "->busybox"
    return files


@dataclass
class LocalRegistry:
    """A running ``docker-registry`` on 127.0.0.1 and a way to push into it."""

    host: str
    workdir: str
    process: subprocess.Popen[bytes]
    policy: str

    def push(self, image: BuiltImage, repo_tag: str) -> str:
        """Copy ``image``'s layout to ``<host>/<repo_tag>``; return the full reference."""
        ref = f"{self.host}/{repo_tag}"
        cmd = ["skopeo", "--policy", self.policy, "copy", "--quiet", "--all"]
        cmd += ["--dest-tls-verify=false", "--preserve-digests"]
        cmd += [f"oci:{image.layout}:{image.tag}", f"docker://{ref}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"skopeo push of {ref} failed: {proc.stderr.strip()}")
        return ref

    def stop(self) -> None:
        """Stop the daemon and remove its storage."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


_CONFIG = """version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_registry() -> LocalRegistry:
    """Start ``docker-registry`` on a free port; the caller must :meth:`~LocalRegistry.stop` it."""
    workdir = tempfile.mkdtemp(prefix="mcpm-registry-")
    port = free_port()
    config = os.path.join(workdir, "config.yml")
    with open(config, "w") as fh:
        fh.write(_CONFIG.format(storage=os.path.join(workdir, "storage"), port=port))
    policy = os.path.join(workdir, "policy.json")
    with open(policy, "w") as fh:
        json.dump({"default": [{"type": "insecureAcceptAnything"}]}, fh)
    log = open(os.path.join(workdir, "registry.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([REGISTRY_BIN, "serve", config], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    reg = LocalRegistry(host=f"127.0.0.1:{port}", workdir=workdir, process=proc, policy=policy)
    try:
        wait_for(
            lambda: proc.poll() is not None or _answers(f"http://{reg.host}/v2/"),
            timeout=20,
            what="docker-registry to answer",
        )
        if proc.poll() is not None:
            with open(os.path.join(workdir, "registry.log")) as fh:
                raise AssertionError(f"docker-registry exited: {fh.read()[-2000:]}")
    except BaseException:
        reg.stop()
        raise
    return reg


@pytest.fixture(scope="session")
def local_registry() -> Iterator[LocalRegistry]:
    """A private ``docker-registry`` on 127.0.0.1 for the whole test session (no root needed)."""
    require_binaries(REGISTRY_BIN, "skopeo")
    reg = start_registry()
    try:
        yield reg
    finally:
        reg.stop()


# ------------------------------------------- a tiny token-auth registry (stdlib)


class FakeRegistry:
    """Serves an OCI layout as repository ``r`` (tag = the image's tag) behind bearer auth.

    Blob GETs redirect to ``/storage/<digest>`` (as Docker Hub redirects to a
    CDN). Knobs: ``tamper`` (digests whose bytes get corrupted),
    ``head_digest`` (send Docker-Content-Digest on HEAD), ``reject_tokens``.
    Records token requests, blob requests and the Authorization header seen
    after a redirect.
    """

    def __init__(self, image: BuiltImage) -> None:
        self.image = image
        self.token_requests: list[str] = []
        self.blob_requests: list[str] = []
        self.redirect_auth: list[str | None] = []
        self.tamper: set[str] = set()
        self.head_digest = True
        self.reject_tokens = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _fake_handler(self))
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def blob(self, digest: str) -> bytes | None:
        """The stored bytes of ``digest``, or None."""
        path = os.path.join(self.image.layout, "blobs", "sha256", digest.partition(":")[2])
        if ":" not in digest or not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            return fh.read()

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def _fake_handler(fake: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        def _route(self, head: bool) -> None:
            if self.path.startswith("/token"):
                fake.token_requests.append(self.path)
                return self._send(200, json.dumps({"token": "tok-1"}).encode(), "x", head)
            if self.path.startswith("/storage/"):
                return self._storage(self.path.rsplit("/", 1)[1], head)
            if fake.reject_tokens or self.headers.get("Authorization") != "Bearer tok-1":
                return self._challenge()
            kind, _, name = self.path.removeprefix("/v2/r/").partition("/")
            if kind == "manifests":
                return self._manifest(name, head)
            if kind == "blobs" and fake.blob(name) is not None:
                fake.blob_requests.append(name)
                self.send_response(307)
                self.send_header("Location", f"/storage/{name}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            return self._send(404, b'{"errors":[]}', "application/json", head)

        def _challenge(self) -> None:
            realm = f"http://{fake.host}/token"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake",scope="x"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _manifest(self, name: str, head: bool) -> None:
            digest = fake.image.target_digest if name == fake.image.tag else name
            body = fake.blob(digest)
            if body is None:
                return self._send(404, b'{"errors":[]}', "application/json", head)
            mt = json.loads(body).get("mediaType", OCI_MANIFEST)
            send_digest = digest if fake.head_digest or not head else None
            return self._send(200, body, mt, head, send_digest)

        def _storage(self, digest: str, head: bool) -> None:
            fake.redirect_auth.append(self.headers.get("Authorization"))
            data = fake.blob(digest) or b""
            if digest in fake.tamper:
                data = bytes([data[0] ^ 1]) + data[1:]
            self._send(200, data, "application/octet-stream", head)

        def _send(
            self, code: int, body: bytes, ctype: str, head: bool, digest: str | None = None
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if not head:
                self.wfile.write(body)

    return Handler


@pytest.fixture
def fake_registry(tmp_path: Path) -> Iterator[FakeRegistry]:
    """A :class:`FakeRegistry` serving a one-layer image as ``<host>/r:t``."""
    image = build_oci_image(str(tmp_path / "fake-image"), [{"hello": b"hi " * 5000}], tag="t")
    fake = FakeRegistry(image)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
