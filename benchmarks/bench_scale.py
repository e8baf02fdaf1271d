"""Many bots at once: 50 bots started from 8 threads through one Manager, against ctr + CNI.

    sudo .venv/bin/python benchmarks/bench_scale.py [--bots 50] [--threads 8] [--rounds 1]
    sudo .venv/bin/python benchmarks/bench_scale.py --profile /tmp/scale.txt  # py-spy

Everything runs in a network namespace made here (as bench_e2e.py does: the
bridge, veths and addresses exist only there), against a private containerd
(the test harness class) and the agent image of tests/harness/e2e.py. Timed,
alternating, ``--rounds`` each:

1. ours: ``--threads`` threads share ``--bots`` bot IDs and call
   ``Manager.start(bot)`` then ``client(bot).exec("true")`` on one Manager;
   the wall time until every bot has answered its exec.
2. ctr: ``--threads`` workers each run, per container, ``ctr run -d`` with
   the same mounts, the same CNI chain by hand (loopback, then bridge with
   host-local), then TCP connects to port 9090 until one succeeds (a TCP
   accept, less than our gRPC exec: the ratio favours ctr).

Cleanup is not timed. Prints both wall times and the ratio ours / ctr
(target <= 0.7x). With ``--profile PATH`` (needs py-spy) one extra round of
ours is sampled by ``py-spy record --threads --idle`` into PATH (raw
collapsed stacks) so waits on locks show up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _figures import Figures, add_json_argument  # noqa: E402
from bench_e2e import NAMESPACE, cni_by_hand, ctr, exec_ok, poll, task_pid, tcp_ok  # noqa: E402

from mcpmanager import Manager, ManagerConfig  # noqa: E402
from mcpmanager.cni import first_ip  # noqa: E402
from mcpmanager.containerd import ContainerdService  # noqa: E402
from tests.harness.containerd import ContainerdDaemon  # noqa: E402
from tests.harness.e2e import (  # noqa: E402
    AGENT_REF,
    CNI_BIN_DIR,
    E2EDir,
    agent_image_archive,
    agent_mounts,
    rerun_inside,
)

TARGET = 0.7


# --- CPU of this process and the processes it ran ---------------------------------


class CPU:
    """CPU seconds this process and its reaped children (ctr, CNI plugins) spent in a block.

    The daemon, the shims, runc and the agents are not counted: both sides
    make them run alike.
    """

    def __init__(self) -> None:
        self.own = self.children = 0.0

    def __enter__(self) -> CPU:
        self._own, self._children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc: object) -> None:
        self.own = _cpu(resource.RUSAGE_SELF) - self._own
        self.children = _cpu(resource.RUSAGE_CHILDREN) - self._children


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# --- ours ---------------------------------------------------------------------------


def ours(manager: Manager, bots: list[str], threads: int, cpu: CPU | None = None) -> float:
    """Start every bot from ``threads`` threads; seconds until all answered exec."""

    def one(bot: str) -> None:
        manager.start(bot)
        if not exec_ok(manager, bot):
            raise RuntimeError(f"the first exec on {bot} failed right after start()")

    began = time.perf_counter()
    with cpu or CPU(), ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bots))
    took = time.perf_counter() - began
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(manager.delete, bots))
    return took


# --- ctr + CNI by hand ----------------------------------------------------------------


def ctr_mounts() -> list[str]:
    mounts: list[str] = []
    for m in agent_mounts():
        opts = ":".join(m.options)
        mounts += ["--mount", f"type={m.type},src={m.source},dst={m.destination},options={opts}"]
    return mounts


def theirs(
    daemon: ContainerdDaemon, d: E2EDir, ids: list[str], threads: int, cpu: CPU | None = None
) -> float:
    """``ctr run -d`` + CNI + TCP polling of every container by ``threads`` workers."""
    mounts = ctr_mounts()
    results: dict[str, tuple[str, object]] = {}
    mu = threading.Lock()

    def one(cid: str) -> None:
        ctr(daemon, "run", "-d", *mounts, AGENT_REF, cid)
        netns = f"/proc/{task_pid(daemon, cid)}/ns/net"
        result = cni_by_hand("ADD", d, cid, netns)
        with mu:
            results[cid] = (netns, result)
        ip = first_ip(result)
        poll(lambda: tcp_ok(ip), f"port of {cid}")

    began = time.perf_counter()
    try:
        with cpu or CPU(), ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, ids))
        return time.perf_counter() - began
    finally:
        cleanup_ctr(daemon, d, results, threads)


def cleanup_ctr(
    daemon: ContainerdDaemon, d: E2EDir, results: dict[str, tuple[str, object]], threads: int
) -> None:
    def one(cid: str) -> None:
        netns, result = results[cid]
        daemon.ctr(NAMESPACE, "tasks", "kill", "-s", "SIGKILL", cid, check=False)
        poll(lambda: cid not in running(daemon), f"{cid} to stop")
        cni_by_hand("DEL", d, cid, netns, result)
        daemon.ctr(NAMESPACE, "tasks", "rm", cid, check=False)
        daemon.ctr(NAMESPACE, "containers", "rm", cid, check=False)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, list(results)))


def running(daemon: ContainerdDaemon) -> set[str]:
    out = ctr(daemon, "tasks", "ls")
    return {f[0] for f in (line.split() for line in out.splitlines()[1:]) if f[2] == "RUNNING"}


# --- profile ----------------------------------------------------------------------


def profiled(manager: Manager, bots: list[str], threads: int, path: str) -> float:
    """One round of ours under ``py-spy record`` (collapsed stacks, idle threads kept)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "--pid", str(os.getpid()), "--threads", "--idle", "--nonblocking"]
    argv += ["--format", "raw", "--rate", "200", "--output", path]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # py-spy attaches
        return ours(manager, bots, threads)
    finally:
        proc.send_signal(2)
        proc.wait(30)


# --- driver ------------------------------------------------------------------------


def inner(args: argparse.Namespace) -> None:
    d = E2EDir(args.dir)
    daemon = ContainerdDaemon()
    figures = Figures("scale")
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
        with Manager(service, config, owns_service=True) as manager:
            ours(manager, ["warm"], 1)
            theirs(daemon, d, ["ctr-warm"], 1)
            mine: list[float] = []
            anchor: list[float] = []
            cpu_ours, cpu_ctr = CPU(), CPU()
            for r in range(args.rounds):
                bots = [f"s{r}-{i}" for i in range(args.bots)]
                mine.append(ours(manager, bots, args.threads, cpu_ours))
                ids = [f"c{r}-{i}" for i in range(args.bots)]
                anchor.append(theirs(daemon, d, ids, 8, cpu_ctr))
            if args.profile:
                bots = [f"p-{i}" for i in range(args.bots)]
                took = profiled(manager, bots, args.threads, args.profile)
                print(f"profiled round (py-spy attached): {took:.2f} s -> {args.profile}")
        assert d.allocations() == [], d.allocations()
        mo, mt = min(mine), min(anchor)
        print(f"{args.bots} bots, {args.threads} threads, best of {args.rounds} (alternating):")
        print("  ours (Manager.start + exec):          " + ", ".join(f"{t:.2f}" for t in mine))
        print("  ctr run -d + CNI by hand + TCP (8w):  " + ", ".join(f"{t:.2f}" for t in anchor))
        print(f"  ours {mo:.2f} s, ctr {mt:.2f} s, ratio {mo / mt:.2f}x (target <= {TARGET}x)")
        per_bot = 1000 / args.bots
        print(
            "  CPU per bot in the last round, ms (this process + the processes it ran):\n"
            f"    ours: {cpu_ours.own * per_bot:.1f} Manager + {cpu_ours.children * per_bot:.1f}"
            f" CNI plugins\n    ctr:  {cpu_ctr.own * per_bot:.1f} workers +"
            f" {cpu_ctr.children * per_bot:.1f} ctr and CNI plugins"
        )
        figures.add(
            f"{args.bots} bots from {args.threads} threads, wall time to all answering exec",
            mo / mt,
            "x",
            f"ctr run -d + CNI + TCP, 8 workers: {mt:.2f} s (ours {mo:.2f} s)",
            f"<= {TARGET}x",
        )
        figures.write(args.json)
    finally:
        daemon.teardown()


def outer(args: argparse.Namespace) -> int:
    more = [
        *("--bots", str(args.bots), "--threads", str(args.threads)),
        *("--rounds", str(args.rounds)),
        *(["--profile", args.profile] if args.profile else []),
        *(["--json", args.json] if args.json else []),
    ]
    return rerun_inside("scale", "mcpscale0", __file__, more)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--bots", type=int, default=50)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--profile", metavar="PATH", help="py-spy one more round of ours into PATH")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    add_json_argument(p)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench_scale: run as root", file=sys.stderr)
        return 2
    if args.inner:
        inner(args)
        return 0
    return outer(args)


if __name__ == "__main__":
    sys.exit(main())
