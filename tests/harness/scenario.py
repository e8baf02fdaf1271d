"""A scenario folder run as a child pytest inside a network namespace the test made.

The end-to-end tests (containerd with CNI, containerd with limits, Docker) each
make a namespace that plays the host, run their scenario's tests there as a
child pytest, and then check that the child left nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.harness.e2e import HostNetns

__all__ = ["CHILD_TIMEOUT", "PROJECT", "run_child", "run_scenario"]

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD_TIMEOUT = 300


def run_child(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the child pytest; on timeout interrupt it so its fixtures still clean up."""
    child = subprocess.Popen(
        argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)  # pytest runs fixture teardown on Ctrl-C
        try:
            output, _ = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            output, _ = child.communicate()
        return -1, f"timed out after {CHILD_TIMEOUT}s:\n{output}"
    return child.returncode, output


def run_scenario(host: HostNetns, folder: str, env: dict[str, str], basetemp: str) -> None:
    """Run ``pytest folder`` inside ``host``; fail unless every test ran and passed.

    Afterwards nothing may still run in the namespace.
    """
    argv = host.exec_argv(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        folder,
    )
    returncode, output = run_child(argv, {**os.environ, **env})
    assert returncode == 0, f"end-to-end run of {folder} failed:\n{output}"
    assert " passed" in output, output
    assert "skipped" not in output, output
    assert host.pids() == [], "processes left running in the namespace"
