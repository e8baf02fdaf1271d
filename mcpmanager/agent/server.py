"""The agent as an in-process gRPC server: :class:`AgentServer`."""

from __future__ import annotations

import logging
import os
import posixpath
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from .. import errors
from ..client.protocol import DEFAULT_WORKDIR
from .failures import AgentError
from .rootfs import RootFS
from .service import ContainerServicer, handler

__all__ = ["DEFAULT_LISTEN", "DEFAULT_TEMPLATE", "AgentServer"]

log = logging.getLogger("mcpmanager.agent")

#: Where the agent listens in a container (all interfaces, port 9090).
DEFAULT_LISTEN = ":9090"

#: The files every new bot's ``/data`` starts with, in memoh's image.
DEFAULT_TEMPLATE = "/opt/mcp-template"

_SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Two servers must never share a port: binding a busy one is an error.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


class AgentServer:
    """The in-container agent, serving ``mcpcontainer.ContainerService``.

    ``root`` is where container paths are rooted (``/data/x`` is
    ``ROOT/data/x``; nothing outside ``root`` can be reached through the file
    calls). ``listen`` is ``HOST:PORT`` (``:PORT`` for all interfaces; port 0
    picks a free one, see :attr:`port`). On :meth:`start`, ``ROOT/data`` is
    created and, when ``template`` names a directory, seeded with the files in
    it that ``/data`` lacks.

    Commands run as ``/bin/sh -c`` in ``/data`` or the requested work
    directory. With ``confine_exec`` they run in a private mount namespace
    that shows ``ROOT`` as ``/`` (see :mod:`mcpmanager.agent.sandbox`; where
    that cannot be made, the agent warns once and runs them unconfined).
    Without it they are host processes, started in the work directory's host
    directory: only their working directory is mapped into the root.

    ::

        with AgentServer(root=tmp, listen="127.0.0.1:0") as agent:
            client = Client(agent.address)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        listen: str = "127.0.0.1:0",
        template: str | os.PathLike[str] | None = None,
        *,
        max_workers: int = 64,
        confine_exec: bool = False,
    ) -> None:
        self._root = os.fspath(root)
        self._confine_exec = confine_exec
        self._listen = listen
        self._template = os.fspath(template) if template is not None else None
        self._max_workers = max_workers
        self._bind, self._host = _parse_listen(listen)
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._servicer: ContainerServicer | None = None
        self._port = 0

    # -- properties ------------------------------------------------------------

    @property
    def root(self) -> str:
        """The host directory container paths are rooted at."""
        return self._root

    @property
    def port(self) -> int:
        """The port listened on (the one picked, for port 0); 0 before :meth:`start`."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` to dial; a wildcard listen address gives ``127.0.0.1``."""
        host = "127.0.0.1" if self._host in _WILDCARD_HOSTS else self._host
        return f"{host}:{self._port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Prepare ``/data`` and start serving; returns once listening.

        Raises :class:`~mcpmanager.errors.Unavailable` when the address cannot
        be bound and :class:`~mcpmanager.errors.InvalidArgument` when the root
        is not a directory. Starting a running server does nothing.
        """
        with self._lock:
            if self._server is not None:
                return
            try:
                fs = RootFS(self._root)
                fs.mkdir(DEFAULT_WORKDIR)
            except AgentError as exc:
                raise errors.InvalidArgument(f"agent root {self._root!r}: {exc.message}") from exc
            if self._template:
                seed_from_template(fs, self._template)
            sandbox = None
            if self._confine_exec:
                from .sandbox import Sandbox  # only confining agents need bubblewrap's module

                sandbox = Sandbox.create(fs)
            servicer = ContainerServicer(fs, sandbox)
            server = grpc.server(
                ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="agent"),
                options=list(_SERVER_OPTIONS),
            )
            server.add_generic_rpc_handlers((handler(servicer),))
            reason = "address unavailable"
            try:
                port = server.add_insecure_port(self._bind)
            except RuntimeError as exc:
                port, reason = 0, str(exc)
            if not port:
                server.stop(None)
                raise errors.Unavailable(f"agent cannot listen on {self._listen}: {reason}")
            server.start()
            self._server, self._servicer, self._port = server, servicer, port
        log.info("agent listening on %s, root %s", self.address, self._root)

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving: calls in flight get ``grace`` seconds, then are cancelled.

        Commands still running then are killed. Stopping a stopped server does
        nothing.
        """
        with self._lock:
            server, servicer = self._server, self._servicer
            self._server = self._servicer = None
        if server is None:
            return
        server.stop(grace).wait()
        if servicer is not None:
            killed = servicer.kill_all()
            if killed:
                log.info("killed %d command(s) still running at shutdown", killed)
        log.info("agent on %s stopped", self.address)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it has stopped."""
        server = self._server
        if server is None:
            return True
        return bool(server.wait_for_termination(timeout))

    def __enter__(self) -> AgentServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"on {self.address}" if self.running else "stopped"
        return f"<AgentServer root={self._root!r} {state}>"


def seed_from_template(fs: RootFS, template: str) -> int:
    """Copy the files of ``template`` that ``/data`` lacks into it; returns how many.

    Directories are copied recursively; existing files are never overwritten,
    symlinks and special files are skipped. New files get mode 0644. Failures
    are logged, not raised: a bot without its template files still works.
    """
    if not os.path.isdir(template):
        log.debug("no template directory %s", template)
        return 0
    copied = 0
    for dirpath, dirnames, filenames in os.walk(template):
        rel = os.path.relpath(dirpath, template)
        base = DEFAULT_WORKDIR if rel == "." else posixpath.join(DEFAULT_WORKDIR, rel)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames):
            src = os.path.join(dirpath, name)
            if os.path.islink(src) or not os.path.isfile(src):
                continue
            try:
                with open(src, "rb") as f:
                    if fs.create_new(posixpath.join(base, name), f):
                        copied += 1
            except (OSError, AgentError) as exc:
                log.warning("cannot seed %s from the template: %s", name, exc)
    if copied:
        log.info("seeded %d file(s) into /data from %s", copied, template)
    return copied


def _parse_listen(listen: str) -> tuple[str, str]:
    """``(address for grpc, host)`` from ``HOST:PORT`` or ``:PORT``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise errors.InvalidArgument(f"listen address {listen!r} is not HOST:PORT")
    if host == "":
        return f"[::]:{port}", ""
    return f"{host}:{port}", host
