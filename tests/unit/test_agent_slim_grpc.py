"""The agent's grpc import (mcpmanager.agent._slim_grpc): lighter, and never broken.

Each check runs in a fresh interpreter: what a process has imported is the
point, and pytest's own process has grpc loaded already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_grpc_serves_without_asyncio_ssl_or_grpc_aio_loaded() -> None:
    out = run_python(
        "import sys\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from mcpmanager.agent._slim_grpc import import_grpc\n"
        "grpc = import_grpc()\n"
        "echo = grpc.unary_unary_rpc_method_handler(lambda req, ctx: req[::-1])\n"
        "server = grpc.server(ThreadPoolExecutor(2))\n"
        "handler = grpc.method_handlers_generic_handler('t.T', {'E': echo})\n"
        "server.add_generic_rpc_handlers((handler,))\n"
        "port = server.add_insecure_port('127.0.0.1:0'); server.start()\n"
        "with grpc.insecure_channel(f'127.0.0.1:{port}') as ch:\n"
        "    reply = ch.unary_unary('/t.T/E')(b'abc', timeout=10)\n"
        "server.stop(None)\n"
        "print(reply, sorted(m for m in ('asyncio', 'ssl', 'grpc.aio') if m in sys.modules))\n"
    )
    assert out == "b'cba' []"


def test_asyncio_and_grpc_aio_used_later_are_the_real_ones() -> None:
    out = run_python(
        "import sys\n"
        "from mcpmanager.agent._slim_grpc import import_grpc\n"
        "grpc = import_grpc()\n"
        "from grpc._cython import cygrpc\n"
        "import asyncio, grpc.aio\n"
        "async def main():\n"
        "    async with grpc.aio.insecure_channel('127.0.0.1:9') as ch:\n"
        "        return ch.get_state()\n"
        "state = asyncio.run(main())\n"
        "print(cygrpc.asyncio.sleep is asyncio.sleep, grpc.aio is sys.modules['grpc.aio'], state)\n"
    )
    assert out == "True True ChannelConnectivity.IDLE"


def test_with_grpc_already_imported_nothing_is_deferred() -> None:
    out = run_python(
        "import sys, grpc, asyncio\n"
        "from mcpmanager.agent._slim_grpc import import_grpc\n"
        "print(import_grpc() is grpc, type(sys.modules['asyncio']).__name__)\n"
    )
    assert out == "True module"


def test_the_agent_process_maps_no_ssl_asyncio_or_protobuf_library(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcpmanager.agent",
            "--listen",
            "127.0.0.1:0",
            "--root",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on ")
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "cygrpc" in maps  # grpc's core is loaded: the check below is meaningful
        loaded = {line.rsplit("/", 1)[-1] for line in maps.splitlines() if ".so" in line}
        assert [
            so for so in loaded if so.startswith(("_ssl", "_asyncio", "_message", "_upb"))
        ] == []
    finally:
        proc.kill()
        proc.wait(timeout=30)
