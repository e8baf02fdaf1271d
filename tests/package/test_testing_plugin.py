"""The pytest plugin users get with the package: fixtures and call assertions, via pytester."""

from __future__ import annotations

from importlib import metadata

import pytest

from mcpmanager import FakeContainerService
from mcpmanager.testing import assert_called, assert_not_called, calls_of

pytest_plugins = ["pytester"]


def test_registered_under_pytest11() -> None:
    points = metadata.entry_points(group="pytest11")
    assert any(p.name == "mcpmanager" and p.value == "mcpmanager.testing" for p in points)


def test_fixtures_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import io
        from mcpmanager import Manager, FakeContainerService
        from mcpmanager.store import SQLiteStore
        from mcpmanager.testing import assert_called, calls_of

        def test_manager_is_ready(mcp_manager, mcp_fake, mcp_store, tmp_path):
            assert isinstance(mcp_manager, Manager)
            assert isinstance(mcp_fake, FakeContainerService)
            assert isinstance(mcp_store, SQLiteStore)
            assert mcp_manager.service is mcp_fake
            assert mcp_manager.config.data_root.startswith(str(tmp_path))
            assert mcp_fake.calls == []  # init() ran, and its calls were cleared

        def test_a_whole_bot(mcp_manager, mcp_fake):
            mcp_manager.start("alice")
            client = mcp_manager.client("alice")
            client.write_file("/data/hello.txt", "hi")
            assert client.exec("cat hello.txt").stdout == "hi"
            version = mcp_manager.create_version("alice")
            assert [v.version for v in mcp_manager.list_versions("alice")] == [version.version]
            assert_called(mcp_fake, "create_container", times=1)
            assert calls_of(mcp_fake, "start_container")

        def test_fake_closed_after(mcp_fake, request):
            request.config.stash.setdefault("fakes", []).append(mcp_fake)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3)


def test_fixtures_clean_up_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import socket
        import pytest
        SEEN = []

        def test_fails(mcp_manager):
            mcp_manager.start("b")
            SEEN.append(mcp_manager.container_ip("b"))
            socket.create_connection((SEEN[0], 9090), timeout=5).close()  # the agent is up
            raise RuntimeError("the user's bug")

        def test_after():
            with pytest.raises(ConnectionRefusedError):  # the fake stopped its agents
                socket.create_connection((SEEN[0], 9090), timeout=5)
        """
    )
    run(pytester).assert_outcomes(passed=1, failed=1)


def test_config_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from mcpmanager import ManagerConfig

        @pytest.fixture
        def mcp_config(tmp_path):
            return ManagerConfig(data_root=str(tmp_path / "mine"), env=("GREETING=hi",))
        """
    )
    pytester.makepyfile(
        test_user="""
        def test_env(mcp_manager):
            mcp_manager.start("b")
            assert mcp_manager.config.env == ("GREETING=hi",)
            assert mcp_manager.config.data_root.endswith("mine")
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_x(mcp_fake):\n    pass\n")
    result = run(pytester, "-p", "no:mcpmanager")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'mcp_fake' not found*"])


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the inner suite; mcpmanager is already imported here, so skip pytest's rewrite note."""
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-q", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args
    )


# -- the call helpers ----------------------------------------------------------------


@pytest.fixture
def fake() -> FakeContainerService:
    with FakeContainerService() as svc:
        svc.pull_image("docker.io/library/alpine:3")
        return svc


def test_assert_called_counts_and_matches_arguments(fake: FakeContainerService) -> None:
    (call,) = assert_called(fake, "pull_image", times=1)
    assert call.args[0] == "docker.io/library/alpine:3"
    assert_called(fake, "pull_image", args=("docker.io/library/alpine:3",))
    with pytest.raises(AssertionError, match=r"pull_image.*2 time\(s\).*called 1 time"):
        assert_called(fake, "pull_image", times=2)
    with pytest.raises(AssertionError, match=r"with args=\('other',\)"):
        assert_called(fake, "pull_image", args=("other",))


def test_assert_not_called_and_unknown_methods(fake: FakeContainerService) -> None:
    assert_not_called(fake, "start_container")
    assert calls_of(fake, "start_container") == []
    with pytest.raises(AssertionError, match=r"at least once.*called 0 time.*calls: pull_image"):
        assert_called(fake, "start_container")
    with pytest.raises(ValueError, match="no method 'strat_task'"):
        calls_of(fake, "strat_task")
