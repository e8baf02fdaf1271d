"""ContainerdService when its daemon is down or restarts between calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from tests.harness.common import require_binaries, require_root, unavailable
from tests.harness.containerd import BINARIES, ContainerdDaemon

pytestmark = pytest.mark.integration


@pytest.fixture
def own_daemon() -> Iterator[ContainerdDaemon]:
    """A private containerd just for this test, which the test may stop and start."""
    require_root()
    require_binaries(*BINARIES)
    daemon = ContainerdDaemon()
    try:
        try:
            daemon.start()
        except (RuntimeError, AssertionError) as err:
            unavailable(f"cannot start containerd: {err}")
        yield daemon
    finally:
        daemon.teardown()


def test_down_daemon_is_unavailable(own_daemon: ContainerdDaemon) -> None:
    with ContainerdService(own_daemon.socket, "down") as svc:
        assert svc.list_containers() == []
        own_daemon.stop()
        # Unavailable (not DeadlineExceeded) shows it failed fast, not at the deadline.
        with pytest.raises(errors.Unavailable, match="list containers"):
            svc.list_containers()
        with pytest.raises(errors.Unavailable):
            svc.get_image("busybox")


def test_missing_socket_is_unavailable() -> None:
    with (
        ContainerdService("/nonexistent/containerd.sock", "x") as svc,
        pytest.raises(errors.Unavailable),
    ):
        svc.list_images()


def test_survives_daemon_restart(own_daemon: ContainerdDaemon) -> None:
    with ContainerdService(own_daemon.socket, "restart") as svc:
        assert svc.list_images() == []
        own_daemon.stop()
        own_daemon.start()
        assert svc.list_images() == []
        assert svc.list_snapshots("overlayfs") == []


def test_non_idempotent_call_first_after_restart(own_daemon: ContainerdDaemon) -> None:
    with ContainerdService(own_daemon.socket, "restart2") as svc:
        assert svc.list_containers() == []
        own_daemon.stop()
        with pytest.raises(errors.Unavailable):
            svc.list_containers()  # leaves the channel reconnecting
        own_daemon.start()
        # Prepare is never retried; it must still reach the restarted daemon.
        with pytest.raises(errors.NotFound):
            svc.prepare_snapshot("overlayfs", "k", "no-such-parent")


def test_closed_service_refuses_calls(own_daemon: ContainerdDaemon) -> None:
    svc = ContainerdService(own_daemon.socket, "closed")
    svc.close()
    with pytest.raises(errors.FailedPrecondition):
        svc.list_containers()
