"""``python -m mcpmanager.agent``: run the agent until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ..errors import MCPManagerError
from . import reaper
from ._slim_grpc import import_grpc

import_grpc()  # first: the server's modules then find grpc loaded without asyncio

from .server import DEFAULT_LISTEN, DEFAULT_TEMPLATE, AgentServer  # noqa: E402

log = logging.getLogger("mcpmanager.agent")

_M_ARENA_MAX = -8  # glibc's mallopt() parameter number for the arena limit
_ARENAS = 2


def limit_malloc_arenas() -> bool:
    """Cap glibc malloc at 2 arenas, unless ``$MALLOC_ARENA_MAX`` already decides.

    glibc gives each new thread its own arena (up to 8 per core), and every
    arena keeps freed memory: the server's threads cost an idle bot private
    memory for nothing. Two arenas keep throughput (calls hold the GIL
    anyway) and save about 0.5 MiB per agent under parallel calls. The
    image can set ``MALLOC_ARENA_MAX`` instead (then ctypes is not loaded
    at all). Returns whether the limit was set here; elsewhere than glibc
    it does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: the image's environment may make it unnecessary

    try:
        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, _ARENAS))
    except (OSError, AttributeError):  # not glibc
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mcpmanager.agent",
        description="Serve a container's files and commands over gRPC "
        "(mcpcontainer.ContainerService).",
    )
    p.add_argument(
        "--listen",
        default=os.environ.get("MCP_LISTEN_ADDR") or DEFAULT_LISTEN,
        help="HOST:PORT, or :PORT for all interfaces (default: $MCP_LISTEN_ADDR or %(default)s)",
    )
    p.add_argument(
        "--root", default="/", help="directory container paths are rooted at (default: /)"
    )
    p.add_argument(
        "--template",
        default=None,
        help=f"directory whose files seed /data when missing there (default: {DEFAULT_TEMPLATE} "
        "if it exists)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds calls in flight get on shutdown (default: %(default)s)",
    )
    p.add_argument(
        "--confine-exec",
        action="store_true",
        help="run commands in a private mount namespace showing --root as / (bubblewrap)",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; returns the process exit status."""
    args = _parser().parse_args(argv)
    limit_malloc_arenas()  # before the server starts its threads
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    template = args.template
    if template is None and os.path.isdir(DEFAULT_TEMPLATE):
        template = DEFAULT_TEMPLATE
    elif template is not None and not os.path.isdir(template):
        log.warning("template directory %s does not exist; /data is not seeded", template)

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = AgentServer(
            root=args.root, listen=args.listen, template=template, confine_exec=args.confine_exec
        )
        server.start()
    except MCPManagerError as exc:
        log.error("%s", exc)
        return 1
    print(f"listening on {server.address}", flush=True)
    init = reaper.is_init()  # a container's PID 1 inherits every orphan
    while not stopping.wait(0.5):
        if init:
            reaper.reap_orphans()
    server.stop(args.grace)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
