"""The agent as a container's init reaps the orphans commands leave behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run as a child subreaper (PR_SET_CHILD_SUBREAPER), so the orphans come to it as
# they would to a container's PID 1, without touching the test process itself.
SCENARIO = textwrap.dedent(
    """
    import ctypes, os, subprocess, time
    from mcpmanager.agent import reaper

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER

    def zombies():
        return sorted(reaper._zombie_children())

    # A command that leaves three background children behind and exits at once.
    cmd = subprocess.Popen(["/bin/sh", "-c", "for i in 1 2 3; do true & done; exit 0"])
    with reaper.spawning() as track:
        track(cmd.pid)
    deadline = time.monotonic() + 10
    while len(zombies()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)  # poll with a deadline until the orphans have exited
    before = zombies()
    reaped = reaper.reap_orphans()
    after = zombies()
    print(len(before), sorted(reaped) == sorted(set(before) - {cmd.pid}), after == [cmd.pid])
    cmd.wait()
    reaper.untrack(cmd.pid)
    print(zombies())
    """
)


def test_orphans_are_reaped_and_a_tracked_command_is_left_to_its_watcher() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first == "4 True True"  # 3 orphans + the command; only the orphans reaped
    assert second == "[]"  # and the command's own wait() still got its child
