"""A tour of mcpmanager on the in-memory fake: two bots, files, commands, versions, backups.

Run it from anywhere: ``python examples/quickstart.py`` (or ``scripts/quickstart``).
It needs no root and no container runtime: the fake keeps each bot's container
as a directory under a temporary folder, and ``agents=True`` gives every
running bot a real agent on a loopback address, so files and commands work.
Swap the fake for ``mcpmanager.containerd.ContainerdService`` to do the same
on a real containerd (see ``examples/containerd_quickstart.py``).
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
from pathlib import Path

from mcpmanager import FakeContainerService, Manager, ManagerConfig
from mcpmanager.store import SQLiteStore


def say(step: str, detail: str = "") -> None:
    """One line of the tour's log."""
    print(f"- {step}" + (f": {detail}" if detail else ""))


def notes(manager: Manager, bot: str) -> str:
    """The bot's notes file, as text."""
    return manager.client(bot).read_text("/data/notes.md")


def tour(manager: Manager) -> None:
    """Everything the SDK does for a bot, step by step."""
    image = manager.init()
    say("image ready", f"{image.name} ({image.id[:19]}…)")

    for bot in ("alice", "bob"):
        manager.start(bot)  # returns once the bot's agent answers
        st = manager.status(bot)
        say(
            f"started {bot}",
            f"container {st.container_id} {st.status.value}, pid {st.pid}, {st.ip}",
        )

    alice = manager.client("alice")
    alice.write_file("/data/notes.md", "first draft\n")
    say("alice wrote /data/notes.md", repr(notes(manager, "alice")))

    result = alice.exec("tr a-z A-Z < notes.md")  # runs in /data
    say("alice ran a command", f"exit {result.exit_code}, output {result.stdout.strip()!r}")
    bob = manager.client("bob").exec("ls")
    say("bob has his own /data", f"ls shows {bob.stdout.split() or 'nothing'}")

    v1 = manager.create_version("alice")
    say("made version", f"v{v1.version} of alice ({v1.runtime_snapshot_name})")
    manager.client("alice").write_file("/data/notes.md", "second draft, oops\n")
    say("alice changed the file", repr(notes(manager, "alice")))
    manager.rollback_version("alice", v1.version)
    say(f"rolled back to v{v1.version}", repr(notes(manager, "alice")))

    archive = io.BytesIO()
    size = manager.export_data("alice", archive)
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        say("exported alice's /data", f"{size} bytes, {tar.getnames()}")

    manager.delete("alice", preserve_data=True)
    say("deleted alice, keeping /data", f"backup kept: {manager.has_preserved_data('alice')}")
    manager.start("alice")
    manager.restore_preserved_data("alice")
    say("new alice, /data restored", repr(notes(manager, "alice")))

    for bot in manager.list_bots():
        manager.delete(bot)
    say("deleted every bot", f"left: {manager.list_bots()}")


def main() -> int:
    """Run the tour in a temporary directory and print what happened."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="mcp-quickstart-") as tmp:
        root = Path(tmp)
        service = FakeContainerService(root=root / "containers", agents=True)
        store = SQLiteStore(root / "versions.db")
        config = ManagerConfig(data_root=str(root / "data"))  # always give data_root
        try:
            with Manager(service, config, store=store, owns_service=True) as manager:
                tour(manager)
        finally:
            store.close()
    print("done: nothing left behind")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
