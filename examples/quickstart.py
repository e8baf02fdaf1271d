"""Three bots on the in-memory fake: create, start, look at them, stop, delete.

Run it from anywhere: ``python examples/quickstart.py``. It needs no root and
no container runtime; swap the fake for ``mcpmanager.containerd.ContainerdService``
to do the same on a real containerd.
"""

from __future__ import annotations

import logging
import tempfile

from mcpmanager import FakeContainerService, Manager, ManagerConfig

BOTS = ("alice", "bob", "carol")


def main() -> int:
    """Run the walk-through and print a table of the bots."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="mcp-quickstart-") as data_root:
        config = ManagerConfig(data_root=data_root)
        with Manager(FakeContainerService(), config, owns_service=True) as manager:
            image = manager.init()
            print(f"image {image.name} ({image.id[:19]})")
            for bot in BOTS:
                manager.start(bot)

            print(f"{'bot':<8} {'container':<12} {'ip':<16} status")
            for bot in manager.list_bots():
                cid = manager.container_id(bot)
                status = manager.service.get_task_info(cid).status.value
                print(f"{bot:<8} {cid:<12} {manager.container_ip(bot):<16} {status}")

            for bot in BOTS:
                manager.stop(bot)
                manager.delete(bot)
            print(f"left after delete: {manager.list_bots()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
