"""The OCI distribution client: reference parsing, auth, verification, error mapping."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mcpmanager import errors
from mcpmanager.containerd.pull import resolve_remote_digest
from mcpmanager.containerd.registry import (
    Credentials,
    DigestMismatch,
    InvalidContent,
    RegistryAuthError,
    RegistryClient,
    load_docker_credentials,
)
from mcpmanager.oci import Descriptor, Platform, select_manifest
from mcpmanager.refs import parse_reference
from tests.harness.registry import (
    FakeRegistry,
    Files,
    LocalRegistry,
    Pushed,
    build_oci_image,
    busybox_layer,
    free_port,
)

# ------------------------------------------------------------------ unit


@pytest.mark.parametrize(
    ("ref", "registry", "repo", "tag", "digest", "host"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", "", "registry-1.docker.io"),
        ("memohai/mcp:v1", "docker.io", "memohai/mcp", "v1", "", "registry-1.docker.io"),
        ("docker.io/x/y", "docker.io", "x/y", "latest", "", "registry-1.docker.io"),
        ("index.docker.io/x/y:1", "docker.io", "x/y", "1", "", "registry-1.docker.io"),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", "", "localhost:5000"),
        ("ghcr.io/o/r", "ghcr.io", "o/r", "latest", "", "ghcr.io"),
        ("[::1]:5000/r", "[::1]:5000", "r", "latest", "", "[::1]:5000"),
        ("localhost/r@sha256:" + "a" * 64, "localhost", "r", "", "sha256:" + "a" * 64, "localhost"),
        ("h.io/r:t@sha256:" + "b" * 64, "h.io", "r", "t", "sha256:" + "b" * 64, "h.io"),
    ],
)
def test_parse_reference(
    ref: str, registry: str, repo: str, tag: str, digest: str, host: str
) -> None:
    parsed = parse_reference(ref)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        repo,
        tag,
        digest,
    )
    assert parsed.host == host
    assert parsed.object == (digest or tag)


@pytest.mark.parametrize(
    "ref", ["", "UPPER/case", "a/b@sha256:abc", "a/b@md5:" + "0" * 32, "a/b:bad tag", "a//b"]
)
def test_parse_reference_rejects(ref: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        parse_reference(ref)


def test_scheme_plain_for_loopback_and_listed_hosts() -> None:
    client = RegistryClient(["reg.lan:5000", "other.lan"])
    url = client.base_url
    assert url(parse_reference("localhost:5000/r")).startswith("http://")
    assert url(parse_reference("127.0.0.1:1/r")).startswith("http://")
    assert url(parse_reference("[::1]:5000/r")).startswith("http://[::1]:5000/")
    assert url(parse_reference("reg.lan:5000/r")).startswith("http://")
    assert url(parse_reference("other.lan:443/r")).startswith("http://")
    assert url(parse_reference("ghcr.io/r")) == "https://ghcr.io/v2/r"
    assert url(parse_reference("busybox")) == "https://registry-1.docker.io/v2/library/busybox"


def _desc(
    arch: str, variant: str = "", mt: str = "application/vnd.oci.image.manifest.v1+json"
) -> dict[str, Any]:
    plat = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
    digest = "sha256:" + hashlib.sha256(f"{arch}{variant}".encode()).hexdigest()
    return {"mediaType": mt, "digest": digest, "size": 10, "platform": plat}


def test_select_manifest_by_platform() -> None:
    index = {"manifests": [_desc("arm", "v7"), _desc("arm64", "v8"), _desc("amd64")]}
    assert (
        select_manifest(index, Platform("linux", "amd64")).digest == index["manifests"][2]["digest"]
    )
    assert select_manifest(index, Platform("linux", "arm64", "v8")).platform == Platform(
        "linux", "arm64", "v8"
    )
    assert select_manifest(index, Platform("linux", "arm", "v7")).platform == Platform(
        "linux", "arm", "v7"
    )
    with pytest.raises(errors.NotFound, match="s390x"):
        select_manifest(index, Platform("linux", "s390x"))


def _bare(name: str, mt: str = "application/vnd.oci.image.manifest.v1+json") -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    return {"mediaType": mt, "digest": digest, "size": 10}


def test_select_manifest_prefers_a_platform_match_then_an_unnamed_child() -> None:
    amd64 = Platform("linux", "amd64")
    unnamed, other = _bare("unnamed"), _bare("other")
    index = {"manifests": [unnamed, _desc("amd64"), other]}
    assert select_manifest(index, amd64).digest == index["manifests"][1]["digest"]
    index = {"manifests": [_desc("arm64", "v8"), unnamed, other]}
    assert select_manifest(index, amd64).digest == unnamed["digest"]


def test_select_manifest_skips_other_media_types_and_follows_nested_indexes() -> None:
    amd64 = Platform("linux", "amd64")
    attestation = _bare("att", mt="application/vnd.in-toto+json")
    nested = _bare("nested", mt="application/vnd.oci.image.index.v1+json")
    chosen = select_manifest({"manifests": [attestation, nested]}, amd64)
    assert (chosen.digest, chosen.media_type) == (nested["digest"], nested["mediaType"])
    with pytest.raises(errors.NotFound, match="offers: none"):
        select_manifest({"manifests": [attestation]}, amd64)


@pytest.mark.parametrize(
    "data",
    [
        {"digest": "sha256:../../etc/passwd", "size": 1},
        {"digest": "sha256:" + "a" * 64, "size": -1},
        {"digest": "sha256:" + "a" * 64},
        "not an object",
    ],
)
def test_malformed_descriptor_is_invalid_content(data: Any) -> None:
    with pytest.raises(InvalidContent):
        Descriptor.from_json(data, "test")


def test_docker_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(b"alice:s3:cret").decode()
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "reg.lan:5000": {"username": "bob", "password": "pw"},
        }
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    hub = load_docker_credentials("docker.io")
    assert hub is not None
    assert (hub.username, hub.password) == ("alice", "s3:cret")
    lan = load_docker_credentials("reg.lan:5000")
    assert lan is not None
    assert lan.username == "bob"
    assert load_docker_credentials("ghcr.io") is None
    assert "s3:cret" not in repr(hub)


# ----------------------------------------------------- real local registry


@pytest.fixture(scope="module")
def pushed(local_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    layers: list[Files] = [busybox_layer(), {"etc/hello": "hello\n"}]
    single = build_oci_image(str(tmp_path_factory.mktemp("single")), layers)
    multi = build_oci_image(
        str(tmp_path_factory.mktemp("multi")),
        layers,
        platforms=[("amd64", ""), ("arm64", "v8")],
    )
    return {
        "single": (single, local_registry.push(single, "test/single:v1")),
        "multi": (multi, local_registry.push(multi, "test/multi:v1")),
    }


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_resolve_against_registry(pushed: Pushed, kind: str) -> None:
    image, ref = pushed[kind]
    desc = RegistryClient().resolve(parse_reference(ref))
    assert desc.digest == image.target_digest
    assert desc.media_type == image.target_media_type
    assert resolve_remote_digest(ref) == image.target_digest
    by_digest = ref.rsplit(":", 1)[0] + "@" + image.target_digest
    assert resolve_remote_digest(by_digest) == image.target_digest


@pytest.mark.integration
def test_fetch_index_manifest_and_blobs(pushed: Pushed) -> None:
    image, ref = pushed["multi"]
    client = RegistryClient()
    parsed = parse_reference(ref)
    index_desc = client.resolve(parsed)
    index = json.loads(client.fetch_manifest(parsed, index_desc))
    chosen = select_manifest(index, Platform("linux", "arm64", "v8"))
    assert chosen.digest == image.manifest_digests["arm64/v8"]
    manifest = json.loads(client.fetch_manifest(parsed, chosen))
    layer = Descriptor.from_json(manifest["layers"][1], "test")
    blob = b"".join(client.iter_blob(parsed, layer, chunk_size=100))
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == image.layer_digests[1]


@pytest.mark.integration
def test_registry_errors_are_mapped(pushed: Pushed, local_registry: LocalRegistry) -> None:
    image, ref = pushed["single"]
    with pytest.raises(errors.NotFound, match="test/single:nope"):
        resolve_remote_digest(ref.replace(":v1", ":nope"))
    parsed = parse_reference(ref)
    wrong = Descriptor(image.target_media_type, "sha256:" + "0" * 64, 10)
    with pytest.raises(errors.NotFound, match=local_registry.host):
        RegistryClient().fetch_manifest(parsed, wrong)
    lying = Descriptor(image.target_media_type, image.target_digest, 3)
    with pytest.raises(DigestMismatch):
        RegistryClient().fetch_manifest(parsed, lying)


def test_connection_refused_is_unavailable() -> None:
    with pytest.raises(errors.Unavailable, match=r"127\.0\.0\.1"):
        resolve_remote_digest(f"127.0.0.1:{free_port()}/r:t")


def test_silent_registry_is_deadline_exceeded() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        client = RegistryClient(timeout=0.3)
        with pytest.raises(errors.DeadlineExceeded, match=host):
            client.resolve(parse_reference(f"{host}/r:t"))


# ---------------------------------------- a tiny token-auth registry (stdlib)


def _layer_desc(fake: FakeRegistry) -> Descriptor:
    digest = fake.image.layer_digests[0]
    data = fake.blob(digest)
    assert data is not None
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(data))


def test_bearer_token_flow_and_cache(fake_registry: FakeRegistry) -> None:
    client = RegistryClient(credentials=lambda _host: None)
    ref = parse_reference(f"{fake_registry.host}/r:t")
    desc = client.resolve(ref)
    assert desc.digest == fake_registry.image.target_digest
    assert client.fetch_manifest(ref, desc) == fake_registry.blob(desc.digest)
    layer = _layer_desc(fake_registry)
    assert b"".join(client.iter_blob(ref, layer, 1000)) == fake_registry.blob(layer.digest)
    assert len(fake_registry.token_requests) == 1
    assert "scope=repository%3Ar%3Apull" in fake_registry.token_requests[0]
    assert "service=fake" in fake_registry.token_requests[0]
    assert fake_registry.redirect_auth == [None]


def test_get_fallback_when_head_has_no_digest(fake_registry: FakeRegistry) -> None:
    fake_registry.head_digest = False
    ref = f"{fake_registry.host}/r:t"
    assert resolve_remote_digest(ref) == fake_registry.image.target_digest


def test_tampered_blob_is_digest_mismatch(fake_registry: FakeRegistry) -> None:
    layer = _layer_desc(fake_registry)
    fake_registry.tamper.add(layer.digest)
    client = RegistryClient()
    ref = parse_reference(f"{fake_registry.host}/r:t")
    with pytest.raises(DigestMismatch, match=layer.digest):
        b"".join(client.iter_blob(ref, layer))


def test_rejected_token_is_auth_error(fake_registry: FakeRegistry) -> None:
    fake_registry.reject_tokens = True
    with pytest.raises(RegistryAuthError, match=fake_registry.host):
        resolve_remote_digest(f"{fake_registry.host}/r:t")
    assert len(fake_registry.token_requests) == 1


class _BasicAuth(BaseHTTPRequestHandler):
    digest = "sha256:" + "c" * 64

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        if self.headers.get("Authorization") == "Basic " + base64.b64encode(b"u:p").decode():
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Docker-Content-Digest", self.digest)
            self.send_header("Content-Length", "10")
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="r"')
            self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def basic_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_basic_auth(basic_registry: str) -> None:
    ref = parse_reference(f"{basic_registry}/r:t")
    anonymous = RegistryClient(credentials=lambda _h: None)
    with pytest.raises(RegistryAuthError, match=basic_registry):
        anonymous.resolve(ref)
    wrong = RegistryClient(credentials=lambda _h: Credentials("u", "bad"))
    with pytest.raises(errors.FailedPrecondition, match="401"):
        wrong.resolve(ref)
    right = RegistryClient(
        credentials=lambda h: Credentials("u", "p") if h == basic_registry else None
    )
    assert right.resolve(ref).digest == _BasicAuth.digest
