"""examples/quickstart.py runs as a user would run it and shows every step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"

STEPS = (
    "started alice: container mcp-alice running, pid",
    "started bob: container mcp-bob running, pid",
    "alice wrote /data/notes.md: 'first draft\\n'",
    "alice ran a command: exit 0, output 'FIRST DRAFT'",
    "bob has his own /data: ls shows nothing",
    "made version: v1 of alice",
    "alice changed the file: 'second draft, oops\\n'",
    "rolled back to v1: 'first draft\\n'",
    "exported alice's /data",
    "deleted alice, keeping /data: backup kept: True",
    "new alice, /data restored: 'first draft\\n'",
    "deleted every bot: left: []",
    "done: nothing left behind",
)


def test_quickstart_tells_the_whole_story(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    at = 0
    for step in STEPS:  # every step, in order
        found = [i for i, line in enumerate(lines) if step in line and i >= at]
        assert found, f"missing (after line {at}): {step!r}\n{run.stdout}"
        at = found[0]
    assert run.stderr == ""  # no warnings, no tracebacks
    assert list(tmp_path.iterdir()) == []  # no ./data, no temp dir left behind
