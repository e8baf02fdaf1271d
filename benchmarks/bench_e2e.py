"""Cold start of a bot to its first exec, against ``ctr run`` + CNI by hand; warm exec latency.

    sudo .venv/bin/python benchmarks/bench_e2e.py [--rounds 5] [--execs 300]

Everything runs in a network namespace made here (the bridge, veths and
addresses exist only there; the script re-runs itself inside it with
``nsenter``), against a private containerd (the test harness class) and an
image whose entrypoint is our agent with the host's Python bind-mounted
read-only (tests/harness/e2e.py). Measured, alternating, ``--rounds`` each:

1. ours: ``Manager.start`` of a new bot (ensure: create container + snapshot;
   start task; CNI ADD through our runner; cache the IP) until the first
   ``client(bot).exec("true")`` succeeds over the bridge: start() returns only
   once the agent answers, so that first exec must succeed at once.
2. ctr: ``ctr run -d`` of the same image with the same bind mounts, then the
   same CNI plugin chain run by hand (loopback, then bridge with host-local,
   config on stdin, as a shell script would), then TCP connects to port 9090
   until one succeeds. That is less than ours does (a TCP accept, not a gRPC
   exec that forks ``/bin/sh``), so the ratio favours ctr.

Both poll every 5 ms. Cleanup (delete / kill + CNI DEL + rm) is not timed.
Then warm ``exec("true")`` latency over the bridge: p50 and p99 of ``--execs``.
Prints medians, the ratio ours / ctr (target <= 0.8x), the time from task start
to the agent answering, and the exec percentiles.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpmanager import Manager, ManagerConfig, errors
from mcpmanager.cni import first_ip
from mcpmanager.containerd import ContainerdService
from tests.harness.containerd import ContainerdDaemon
from tests.harness.e2e import (
    AGENT_PORT,
    AGENT_REF,
    CNI_BIN_DIR,
    E2EDir,
    agent_image_archive,
    agent_mounts,
    rerun_inside,
)

NAMESPACE = "mcpbench"
POLL = 0.005


def poll(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL)


# --- ours ----------------------------------------------------------------------


def exec_ok(manager: Manager, bot: str) -> bool:
    try:
        return manager.client(bot).exec("true", timeout=5).exit_code == 0
    except (errors.Unavailable, errors.DeadlineExceeded):
        return False


class AgentDelays(logging.Handler):
    """Collects "agent ... answers, N ms after its task started" from the Manager's log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().find("ms after its task started") >= 0:
            self.ms.append(float(record.args[1]))  # type: ignore[index]


def ours_cold(manager: Manager, bot: str) -> float:
    began = time.perf_counter()
    manager.start(bot)  # returns once the agent answers: the first exec must succeed
    if not exec_ok(manager, bot):
        raise RuntimeError(f"the first exec on {bot} failed right after start()")
    took = time.perf_counter() - began
    manager.delete(bot)
    return took


# --- ctr + CNI by hand -----------------------------------------------------------


def run_plugin(
    plugin: str, command: str, cid: str, netns: str, ifname: str, conf: dict[str, Any]
) -> dict[str, Any]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": CNI_BIN_DIR,
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    proc = subprocess.run(
        [os.path.join(CNI_BIN_DIR, plugin)],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{plugin} {command}: {proc.stdout.decode()} {proc.stderr.decode()}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def cni_by_hand(command: str, d: E2EDir, cid: str, netns: str, prev: Any = None) -> Any:
    conflist = json.loads(next(Path(d.conf_dir).glob("*.conflist")).read_text())
    version, name = conflist["cniVersion"], conflist["name"]
    plugins = conflist["plugins"]
    if command == "ADD":
        lo = {"cniVersion": version, "name": "cni-loopback", "type": "loopback"}
        run_plugin("loopback", "ADD", cid, netns, "lo", lo)
        result = None
        for p in plugins:
            conf = {**p, "cniVersion": version, "name": name}
            if result is not None:
                conf["prevResult"] = result
            result = run_plugin(p["type"], "ADD", cid, netns, "eth0", conf)
        return result
    for p in reversed(plugins):
        conf = {**p, "cniVersion": version, "name": name, "prevResult": prev}
        run_plugin(p["type"], "DEL", cid, netns, "eth0", conf)
    return None


def tcp_ok(ip: str) -> bool:
    try:
        with socket.create_connection((ip, AGENT_PORT), timeout=1):
            return True
    except OSError:
        return False


def ctr(daemon: ContainerdDaemon, *args: str) -> str:
    return daemon.ctr(NAMESPACE, *args)


def task_pid(daemon: ContainerdDaemon, cid: str) -> int:
    for line in ctr(daemon, "tasks", "ls").splitlines()[1:]:
        fields = line.split()
        if fields[0] == cid:
            return int(fields[1])
    raise RuntimeError(f"no task {cid}")


def ctr_cold(daemon: ContainerdDaemon, d: E2EDir) -> float:
    cid = f"ctr-{uuid.uuid4().hex[:8]}"
    mounts = []
    for m in agent_mounts():
        opts = ":".join(m.options)
        mounts += ["--mount", f"type={m.type},src={m.source},dst={m.destination},options={opts}"]
    began = time.perf_counter()
    ctr(daemon, "run", "-d", *mounts, AGENT_REF, cid)
    netns = f"/proc/{task_pid(daemon, cid)}/ns/net"
    result = cni_by_hand("ADD", d, cid, netns)
    ip = first_ip(result)
    poll(lambda: tcp_ok(ip), f"port {AGENT_PORT} of {cid}")
    took = time.perf_counter() - began
    ctr(daemon, "tasks", "kill", "-s", "SIGKILL", cid)
    poll(lambda: "STOPPED" in ctr(daemon, "tasks", "ls"), f"{cid} to stop")
    cni_by_hand("DEL", d, cid, netns, result)
    ctr(daemon, "tasks", "rm", cid)
    ctr(daemon, "containers", "rm", cid)
    return took


# --- driver ------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def inner(args: argparse.Namespace) -> None:
    d = E2EDir(args.dir)
    daemon = ContainerdDaemon()
    try:
        daemon.start()
        service = ContainerdService(daemon.socket, NAMESPACE, cni_cache_dir=d.cache_dir)
        service.import_image(agent_image_archive(os.path.join(args.dir, "agent.tar")))
        config = ManagerConfig(
            image=AGENT_REF,
            data_root=d.data_root,
            cni_bin_dir=CNI_BIN_DIR,
            cni_conf_dir=d.conf_dir,
            extra_mounts=agent_mounts(),
        )
        delays = AgentDelays()
        logging.getLogger("mcpmanager").addHandler(delays)
        logging.getLogger("mcpmanager").setLevel(logging.INFO)
        with Manager(service, config, owns_service=True) as manager:
            ours_cold(manager, "warmup")
            ctr_cold(daemon, d)
            ours: list[float] = []
            theirs: list[float] = []
            for i in range(args.rounds):
                ours.append(ours_cold(manager, f"b{i}"))
                theirs.append(ctr_cold(daemon, d))
            manager.start("warm")
            client = manager.client("warm")
            lat = []
            for _ in range(args.execs):
                t = time.perf_counter()
                client.exec("true")
                lat.append(time.perf_counter() - t)
            manager.delete("warm")
            assert d.allocations() == [], d.allocations()
            assert d.cache_entries() == [], d.cache_entries()
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"cold start to first exec, median of {args.rounds} (alternating):")
        print("  ours (Manager.start + CNI + exec):  " + ", ".join(f"{t:.3f}" for t in ours))
        print("  ctr run -d + CNI by hand + TCP:     " + ", ".join(f"{t:.3f}" for t in theirs))
        print(f"  ours {mo * 1000:.0f} ms, ctr {mt * 1000:.0f} ms, ratio {mo / mt:.2f}x")
        ready = statistics.median(delays.ms[1:] or delays.ms)
        print(f"  task start to agent answering (median, ours): {ready:.0f} ms")
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        print(f"warm exec('true') over the bridge, {args.execs} calls:")
        print(f"  p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    finally:
        daemon.teardown()


def outer(args: argparse.Namespace) -> int:
    more = ("--rounds", str(args.rounds), "--execs", str(args.execs))
    return rerun_inside("bench", "mcpbench0", __file__, more)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--execs", type=int, default=300)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench_e2e: run as root", file=sys.stderr)
        return 2
    if args.inner:
        inner(args)
        return 0
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
