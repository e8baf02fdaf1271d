"""Memory per bot: the agent's (and runc shim's) RSS, PSS and USS, idle and after 150 calls.

    .venv/bin/python benchmarks/bench_density.py [--n 1,10,100] [--calls 150]
    sudo .venv/bin/python benchmarks/bench_density.py --containerd [--containerd-n 1,10]

Plain processes: N agents (``python -m mcpmanager.agent`` on loopback, each
rooted in its own temp dir) are started at once; once all listen, each one's
``/proc/<pid>/smaps_rollup`` is read ("idle"); then every agent gets
``--calls`` calls (write_file, exec("cat ..."), read_file in turn, from 8
client threads) and is read again. USS = Private_Clean + Private_Dirty: what
the process alone holds, the memory that grows with the number of bots. PSS
shares the interpreter's pages among the N processes.

Anchors, measured in the same run as N processes each: ``python -c pass``
(kept alive: the bare interpreter) and ``python -c 'import grpc'`` (the
gRPC runtime alone). memoh's Go agent (cmd/mcp at dae772f72) needs Go >= 1.21
and Debian here has 1.19, so it is not built: its figures are the documented
ones of issue 15 (7 MiB RSS idle, 13 MiB after 150 calls, measured side by
side as plain processes); the target is our USS after 150 calls <= 13 MiB.

With ``--containerd`` (root): bots through one Manager on a private
containerd (tests/harness) with CNI in a network namespace made here, image
of tests/harness/e2e.py (our agent, the host's Python bind-mounted); the
agent (the task's init) and its ``containerd-shim-runc-v2`` are measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _figures import Figures, add_json_argument  # noqa: E402
from _memory import Memory, fmt, mean, memory  # noqa: E402

from mcpmanager.client import Client  # noqa: E402

MEMOH_RSS_IDLE = 7.0
MEMOH_AFTER_CALLS = 13.0
TARGET = f"agent USS after calls <= {MEMOH_AFTER_CALLS:.0f} MiB (memoh's Go agent)"
ANCHORS: dict[str, str] = {
    "python -c pass": "import sys; sys.stdin.read()",
    "python -c 'import grpc'": "import grpc, sys; sys.stdin.read()",
}


def env_for_children(extra: Sequence[str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.pop("PYTHONMALLOC", None)
    for entry in extra:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


# --- plain processes ---------------------------------------------------------------


class Agent:
    """One ``python -m mcpmanager.agent`` on a free loopback port."""

    def __init__(self, root: str, env: dict[str, str]) -> None:
        # $BENCH_AGENT_SCRIPT: a script to run instead of -m mcpmanager.agent (A/B trials).
        script = env.get("BENCH_AGENT_SCRIPT")
        agent = [script] if script else ["-m", "mcpmanager.agent"]
        self.proc = subprocess.Popen(
            [sys.executable, *agent, "--listen", "127.0.0.1:0", "--root", root],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=root,  # not the checkout: $PYTHONPATH decides which mcpmanager runs
            text=True,
        )
        self.address = ""

    def wait_listening(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"agent {self.proc.pid} did not start: {line!r}")
        self.address = line.split()[-1]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def calls(client: Client, count: int) -> None:
    """``count`` calls: write_file, exec (cat of it), read_file, in turn."""
    for i in range(count):
        step = i % 3
        if step == 0:
            client.write_file(f"f{i % 10}.txt", f"line {i}\n" * 20)
        elif step == 1:
            result = client.exec(f"cat f{(i - 1) % 10}.txt | wc -l")
            if result.exit_code != 0:
                raise RuntimeError(f"exec failed on {client.target}: {result}")
        else:
            client.read_file(f"f{(i - 2) % 10}.txt")


def drive(addresses: Sequence[str], count: int, parallel: int = 1) -> float:
    """Give every agent ``count`` calls (``parallel`` at a time each), 8 threads in all."""

    def one(address: str) -> None:
        with Client(address) as c:
            if parallel == 1:
                calls(c, count)
                return
            with ThreadPoolExecutor(parallel) as each:
                share = [count // parallel + (i < count % parallel) for i in range(parallel)]
                list(each.map(lambda k: calls(c, k), share))

    began = time.perf_counter()
    with ThreadPoolExecutor(max(1, 8 // parallel)) as pool:
        list(pool.map(one, addresses))
    return time.perf_counter() - began


@contextlib.contextmanager
def agents(n: int, env: dict[str, str]) -> Iterator[list[Agent]]:
    tmp = tempfile.mkdtemp(prefix="mcpm-density-")
    started: list[Agent] = []
    try:
        for i in range(n):
            root = os.path.join(tmp, f"r{i}")
            os.mkdir(root)
            started.append(Agent(root, env))
        for a in started:
            a.wait_listening()
        yield started
    finally:
        for a in started:
            a.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def settle(pids: Sequence[int]) -> list[Memory]:
    """Memory of ``pids`` once their RSS stops moving (background threads done)."""
    last: list[Memory] = []
    deadline = time.monotonic() + 5
    while True:
        now = [memory(p) for p in pids]
        if last and all(abs(a.rss - b.rss) < 0.05 for a, b in zip(now, last, strict=True)):
            return now
        if time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.2)


def anchor(code: str, n: int, env: dict[str, str]) -> Memory:
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, env=env)
        for _ in range(n)
    ]
    try:
        # The interpreter has imported everything once its RSS is stable.
        return mean(settle([p.pid for p in procs]))
    finally:
        for p in procs:
            p.kill()
            p.wait()


def compile_package() -> None:
    """Byte-compile mcpmanager as ``pip install`` does, so agents load .pyc, not source.

    An agent that compiles its modules at every start (a read-only mount with
    no __pycache__, as the test image has) keeps about 1 MiB more, and starts slower.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "mcpmanager")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def plain(args: argparse.Namespace, figures: Figures) -> None:
    env = env_for_children(args.env)
    if not args.no_compile:
        compile_package()
    print(
        f"plain processes; {args.calls} calls each after idle, {args.parallel} at a time; "
        "MiB per process (mean)"
    )
    if args.env:
        print(f"  agent environment: {' '.join(args.env)}")
    print(f"  mcpmanager {'from source (no .pyc)' if args.no_compile else 'byte-compiled'}")
    for n in args.n:
        base = {name: anchor(code, n, env) for name, code in ANCHORS.items()}
        with agents(n, env) as started:
            pids = [a.proc.pid for a in started]
            idle = mean(settle(pids))
            took = drive([a.address for a in started], args.calls, args.parallel)
            busy = mean(settle(pids))
        print(f"N={n}:")
        for name, m in base.items():
            print(f"  {name:32s} {fmt(m)}")
        print(f"  {'agent idle':32s} {fmt(idle)}")
        print(f"  {f'agent after {args.calls} calls':32s} {fmt(busy)}   ({took:.1f} s of calls)")
        print(
            f"  agent USS after calls {busy.uss:.1f} MiB = "
            f"{busy.uss / MEMOH_AFTER_CALLS:.2f}x memoh's documented {MEMOH_AFTER_CALLS:.0f} MiB"
        )
        grpc_uss = base["python -c 'import grpc'"].uss
        bare_uss = base["python -c pass"].uss
        anchors = f"python -c 'import grpc' {grpc_uss:.1f}, python -c pass {bare_uss:.1f}"
        figures.add(f"agent USS idle, {n} agents", idle.uss, "MiB", anchors)
        figures.add(
            f"agent USS after {args.calls} calls, {n} agents",
            busy.uss,
            "MiB",
            f"memoh {MEMOH_AFTER_CALLS:.0f} (documented); {anchors}",
            "<= 13 MiB",
        )
        figures.add(f"agent PSS after {args.calls} calls, {n} agents", busy.pss, "MiB")
        if n == 1:
            figures.add("agent RSS idle, 1 agent", idle.rss, "MiB", f"memoh {MEMOH_RSS_IDLE:.0f}")
    print(f"memoh's Go agent (documented, issue 15): RSS {MEMOH_RSS_IDLE:.0f} idle; {TARGET}")


# --- containerd ------------------------------------------------------------------


def containerd_outer(args: argparse.Namespace) -> int:
    from tests.harness.e2e import rerun_inside

    more = [
        *("--calls", str(args.calls)),
        *("--containerd-n", ",".join(map(str, args.containerd_n))),
        *("--shim-groups", str(args.shim_groups)),
        *(["--json", args.json] if args.json else []),
    ]
    return rerun_inside("dens", "mcpdens0", __file__, more)


def task_pids(daemon: object, namespace: str) -> dict[str, int]:
    out: str = daemon.ctr(namespace, "tasks", "ls")  # type: ignore[attr-defined]
    pids: dict[str, int] = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "RUNNING":
            pids[fields[0]] = int(fields[1])
    return pids


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def containerd_inner(args: argparse.Namespace, figures: Figures) -> None:
    from mcpmanager import Manager, ManagerConfig
    from mcpmanager.containerd import ContainerdService
    from tests.harness.containerd import ContainerdDaemon
    from tests.harness.e2e import AGENT_REF, CNI_BIN_DIR, E2EDir, agent_image_archive, agent_mounts

    namespace = "mcpdensity"
    d = E2EDir(args.dir)
    daemon = ContainerdDaemon()
    try:
        daemon.start()
        image = agent_image_archive(os.path.join(args.dir, "agent.tar"))
        config = ManagerConfig(
            image=AGENT_REF,
            data_root=d.data_root,
            cni_bin_dir=CNI_BIN_DIR,
            cni_conf_dir=d.conf_dir,
            extra_mounts=agent_mounts(),
        )
        for groups in sorted({0, args.shim_groups}):
            service = ContainerdService(
                daemon.socket, namespace, cni_cache_dir=d.cache_dir, shim_groups=groups
            )
            service.import_image(image)
            shims = f"{groups} shared runc shims" if groups else "a runc shim per bot"
            print(f"containerd bots through one Manager, {shims}; {args.calls} calls each")
            with Manager(service, config, owns_service=True) as manager:
                for n in args.containerd_n:
                    containerd_round(manager, daemon, namespace, n, args.calls, figures, groups)
    finally:
        daemon.teardown()


def per_bot(samples: list[Memory], bots: int) -> Memory:
    """The memory of processes shared by ``bots`` bots, per bot (each shim counted once)."""
    return Memory(
        sum(s.rss for s in samples) / bots,
        sum(s.pss for s in samples) / bots,
        sum(s.uss for s in samples) / bots,
    )


def containerd_round(
    manager: object,
    daemon: object,
    namespace: str,
    n: int,
    count: int,
    figures: Figures,
    groups: int = 0,
) -> None:
    from mcpmanager import Manager

    assert isinstance(manager, Manager)
    bots = [f"d{n}-{i}" for i in range(n)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(manager.start, bots))
    try:
        pids = task_pids(daemon, namespace)
        agents_ = [pids[manager.container_id(b)] for b in bots]
        shims = sorted({parent_pid(p) for p in agents_})
        idle, shim_idle = mean(settle(agents_)), per_bot(settle(shims), n)

        def one(bot: str) -> None:
            calls(manager.client(bot), count)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, bots))
        busy, shim_busy = mean(settle(agents_)), per_bot(settle(shims), n)
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(manager.delete, bots))
    print(f"N={n} ({len(shims)} shim processes; shim figures are their sum / N):")
    print(f"  {'agent idle':28s} {fmt(idle)}")
    print(f"  {'shim idle':28s} {fmt(shim_idle)}")
    print(f"  {f'agent after {count} calls':28s} {fmt(busy)}")
    print(f"  {f'shim after {count} calls':28s} {fmt(shim_busy)}")
    if groups:
        figures.add(
            f"containerd: runc shim USS per bot, {n} bots, shim_groups={groups}",
            shim_busy.uss,
            "MiB",
            f"PSS {shim_busy.pss:.1f}, RSS {shim_busy.rss:.1f}",
        )
        return
    figures.add(
        f"containerd: agent USS after {count} calls, {n} bots",
        busy.uss,
        "MiB",
        f"idle {idle.uss:.1f}; PSS {busy.pss:.1f}",
        "<= 13 MiB",
    )
    figures.add(
        f"containerd: runc shim USS per bot, {n} bots",
        shim_busy.uss,
        "MiB",
        f"PSS {shim_busy.pss:.1f}, RSS {shim_busy.rss:.1f}",
    )


# --- driver -----------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--n", type=sizes, default=[1, 10, 100], help="plain process counts")
    p.add_argument("--calls", type=int, default=150)
    p.add_argument(
        "--parallel", type=int, default=1, help="calls in flight per agent (plain processes)"
    )
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="agent environment"
    )
    p.add_argument("--no-compile", action="store_true", help="do not byte-compile mcpmanager first")
    p.add_argument("--containerd", action="store_true", help="also bots on containerd (root)")
    p.add_argument("--containerd-n", type=sizes, default=[1, 10])
    p.add_argument(
        "--shim-groups", type=int, default=0, help="also measure bots sharing N runc shims"
    )
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    add_json_argument(p)
    args = p.parse_args()
    figures = Figures("density")
    if args.inner:
        containerd_inner(args, figures)
        _merge(args.json, figures)
        return 0
    plain(args, figures)
    figures.write(args.json)
    if not args.containerd:
        return 0
    if os.geteuid() != 0:
        print("bench_density: --containerd needs root", file=sys.stderr)
        return 2
    return containerd_outer(args)


def _merge(path: str | None, figures: Figures) -> None:
    """Append the containerd figures to the plain ones already written to ``path``."""
    if not path:
        return
    import json

    doc = json.loads(Path(path).read_text()) if Path(path).exists() else {"figures": []}
    earlier = Figures("density")
    for r in doc["figures"]:
        earlier.add(**r)
    earlier.rows.extend(figures.rows)
    earlier.write(path)


if __name__ == "__main__":
    sys.exit(main())
