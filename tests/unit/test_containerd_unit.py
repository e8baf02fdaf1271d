"""Pure-Python parts of the containerd backend (no daemon, no root)."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest

from mcpmanager import errors
from mcpmanager.containerd._conn import Connection
from mcpmanager.containerd._errors import from_rpc_error
from mcpmanager.containerd.images import ManifestCache, chain_ids
from mcpmanager.containerd.spec import SPEC_TYPE_URL, build_spec, merge_env, spec_any
from mcpmanager.refs import name_candidates, normalize_name
from mcpmanager.types import ContainerSpec, MountSpec

IMAGE_CONFIG = {
    "config": {
        "Env": ["PATH=/bin", "LANG=C"],
        "Entrypoint": ["/entry"],
        "Cmd": ["serve"],
        "WorkingDir": "/app",
    }
}


class _FakeRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> None: ...
    def trailing_metadata(self) -> None: ...
    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None: ...
    def cancel(self) -> None: ...
    def add_callback(self, callback: object) -> None: ...


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.UNIMPLEMENTED, errors.NotSupported),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.ABORTED, errors.Unavailable),
        (grpc.StatusCode.CANCELLED, errors.Unavailable),
        (grpc.StatusCode.INTERNAL, errors.MCPManagerError),
    ],
)
def test_rpc_errors_map_to_our_classes(code: grpc.StatusCode, cls: type[Exception]) -> None:
    err = from_rpc_error(_FakeRpcError(code, "boom"), "get container c1")
    assert type(err) is cls
    assert "get container c1" in str(err)
    assert "boom" in str(err)


def test_shim_deadline_reported_as_unknown_is_deadline_exceeded() -> None:
    err = from_rpc_error(
        _FakeRpcError(grpc.StatusCode.UNKNOWN, "context deadline exceeded: unknown"), "wait"
    )
    assert isinstance(err, errors.DeadlineExceeded)
    other = from_rpc_error(_FakeRpcError(grpc.StatusCode.INTERNAL, "x"), "wait")
    assert type(other) is errors.MCPManagerError


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("memohai/mcp:latest", "docker.io/memohai/mcp:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("localhost:5000/x/y", "localhost:5000/x/y:latest"),
        ("ghcr.io/a/b@sha256:" + "0" * 64, "ghcr.io/a/b@sha256:" + "0" * 64),
    ],
)
def test_normalize_name(ref: str, full: str) -> None:
    assert normalize_name(ref) == full


def test_name_candidates_include_short_docker_hub_form() -> None:
    assert name_candidates("docker.io/library/nginx:1") == [
        "docker.io/library/nginx:1",
        "nginx:1",
    ]
    assert name_candidates("nginx:1") == ["nginx:1", "docker.io/library/nginx:1"]


def test_chain_ids_follow_the_image_spec() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]
    assert chain_ids([]) == []


def test_merge_env_replaces_appends_and_unsets() -> None:
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]


def test_spec_from_image_config() -> None:
    spec = build_spec("ns", "c1", IMAGE_CONFIG, ContainerSpec())
    proc = spec["process"]
    assert proc["args"] == ["/entry", "serve"]
    assert proc["cwd"] == "/app"
    assert proc["env"] == ["PATH=/bin", "LANG=C"]
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert {"type": "network"} in spec["linux"]["namespaces"]
    assert spec["linux"]["cgroupsPath"] == "/ns/c1"
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "CAP_KILL" in proc["capabilities"]["bounding"]
    assert any(m["destination"] == "/proc" for m in spec["mounts"])


def test_container_spec_overrides_image_config() -> None:
    cs = ContainerSpec(
        cmd=("/bin/sh", "-c", "x"),
        env=("LANG=en", "TZ=UTC"),
        workdir="/data",
        user="1000:1000",
        tty=True,
        mounts=(MountSpec("/etc/resolv.conf", "bind", "/r", ("rbind", "ro")),),
    )
    spec = build_spec("ns", "c1", IMAGE_CONFIG, cs)
    proc = spec["process"]
    assert proc["args"] == ["/bin/sh", "-c", "x"]
    assert proc["env"] == ["PATH=/bin", "LANG=en", "TZ=UTC"]
    assert proc["cwd"] == "/data"
    assert proc["user"] == {"uid": 1000, "gid": 1000}
    assert proc["terminal"] is True
    assert spec["mounts"][-1] == {
        "destination": "/etc/resolv.conf",
        "type": "bind",
        "source": "/r",
        "options": ["rbind", "ro"],
    }


def test_spec_errors() -> None:
    with pytest.raises(errors.InvalidArgument):
        build_spec("ns", "c1", {"config": {"Env": []}}, ContainerSpec())
    with pytest.raises(errors.NotSupported):
        build_spec("ns", "c1", IMAGE_CONFIG, ContainerSpec(user="nobody"))


def test_spec_any_is_json_with_containerd_type_url() -> None:
    spec = build_spec("ns", "c1", IMAGE_CONFIG, ContainerSpec())
    wrapped = spec_any(spec)
    assert wrapped.type_url == SPEC_TYPE_URL
    assert json.loads(wrapped.value) == spec


def test_service_implements_the_protocol_without_connecting() -> None:
    from mcpmanager.containerd import ContainerdService
    from mcpmanager.service import ContainerService

    svc = ContainerdService("/nonexistent.sock", "ns", plain_http_registries=("reg:5000",))
    try:
        assert isinstance(svc, ContainerService)
        assert svc.plain_http_registries == ("reg:5000",)
    finally:
        svc.close()
    with pytest.raises(errors.InvalidArgument):
        ContainerdService("/x.sock", "")


def test_manifest_cache_keeps_the_newest_entries() -> None:
    cache = ManifestCache(size=2)
    for n in range(3):
        cache.put(f"sha256:{n}", (f"m{n}", {"n": n}, {"c": n}))
    assert cache.get("sha256:0") is None
    assert cache.get("sha256:2") == ("m2", {"n": 2}, {"c": 2})
    assert cache.get("sha256:1") is not None


class _FakeFuture:
    def __init__(self, outcome: object) -> None:
        self.outcome = outcome
        self.cancelled = False

    def result(self, timeout: float | None = None) -> object:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _FakeMethod:
    """A stub method whose ``future`` hands out a prepared outcome."""

    def __init__(self, outcome: object) -> None:
        self.sent: list[tuple[object, float | None, object]] = []
        self.future_made = _FakeFuture(outcome)

    def __call__(
        self, request: object, timeout: float | None = None, metadata: object = None
    ) -> object:
        raise AssertionError("send() must not make a blocking call")

    def future(
        self, request: object, timeout: float | None = None, metadata: object = None
    ) -> _FakeFuture:
        self.sent.append((request, timeout, metadata))
        return self.future_made


def test_sent_call_carries_namespace_and_deadline_and_maps_errors() -> None:
    conn = Connection("/nonexistent.sock", "ns1", timeout=7.0)
    ok = _FakeMethod("answer")
    assert conn.send(ok, "req", what="wait for task of container c1").result() == "answer"  # type: ignore[arg-type]
    assert ok.sent == [("req", 7.0, (("containerd-namespace", "ns1"),))]
    failing = _FakeMethod(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "no task"))
    pending = conn.send(failing, "req", what="wait for task of container c1", timeout=2.0)  # type: ignore[arg-type]
    with pytest.raises(errors.NotFound, match="wait for task of container c1"):
        pending.result()
    assert failing.sent[0][1] == 2.0
    pending.cancel()
    assert failing.future_made.cancelled
    conn.close()
