"""ContainerdService against ``ctr`` on the same private daemon, measured in the same run.

    sudo .venv/bin/python benchmarks/bench_containerd.py [--layers 5] [--layer-mb 11]
                                                          [--rounds 3] [--cycles 20]
                                                          [--no-pull] [--calls [--runtime-trace]]

Starts a private ``docker-registry`` on 127.0.0.1 and a private containerd
(the test harness classes), then measures:

1. Pull: an image of a busybox layer plus ``--layers`` layers of random
   (incompressible) data, pushed with skopeo, pulled and unpacked into
   overlayfs by ``ContainerdService.pull_image`` and by
   ``ctr images pull --plain-http``. Every pull starts from an empty store:
   the image is removed with ``ctr images rm --sync`` and the benchmark checks
   that no content, no snapshot and no blob file is left. The two clients
   alternate; the median of ``--rounds`` each is reported.
2. Container cycle: create + start, then stop (SIGTERM, wait) + delete task +
   delete container, of a busybox shell that exits on SIGTERM, with
   ContainerdService and with ``ctr c create`` / ``ctr t start -d`` /
   ``ctr t kill`` / ``ctr t rm`` / ``ctr c rm``. The few milliseconds until
   the shell has installed its SIGTERM handler (PID 1 ignores SIGTERM
   without one) are waited for outside the timed parts, for both clients.
   ctr has no command to wait for the task's exit after ``ctr t kill``: that
   wait is timed (ours waits for the exit inside ``stop_container`` too) but
   done by polling ``/proc`` every millisecond, cheaper than any ctr call,
   so it favours ctr. Median over ``--cycles`` each, alternating.
3. The same cycle of ours on ``ContainerdService(shim_groups=1)`` while one
   more container of the group runs (as on a host with other bots): the
   group's runc shim is running already, so no shim is started or reaped.

Prints one line per figure: ours, ctr's, ratio (ours / ctr). ``--no-pull``
measures the cycle only. With ``--calls`` it then runs ``--cycles`` more of
our cycles with every containerd call timed client-side and prints, per
step, its wall time, its client (Python) time outside the calls, and each
call's count and median; ``--runtime-trace`` adds, inside each call, the
``runc`` and shim processes the daemon ran for it (see _cycle_profile.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cycle_profile import Profile, print_profile, read_trace, run_profiled, runtime_trace

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.types import (
    ContainerInfo,
    ContainerSpec,
    CreateContainerRequest,
    StopTaskOptions,
)
from tests.harness.containerd import BUSYBOX_REF, ContainerdDaemon, build_image_archive
from tests.harness.containerd import busybox_layer as busybox_entries
from tests.harness.registry import Files, LocalRegistry, build_oci_image, start_registry
from tests.harness.registry import busybox_layer as busybox_files

SHELL = ("/bin/sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait $!")
"""Exits 0 on SIGTERM once the trap is installed."""

_SIGTERM_BIT = 1 << (15 - 1)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def poll(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait (untimed phases only) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.001)


def ctr(daemon: ContainerdDaemon, namespace: str, *args: str) -> str:
    return daemon.ctr(namespace, *args)


# ------------------------------------------------------------------ pull


def build_and_push(registry: LocalRegistry, layers: int, layer_mb: int) -> tuple[str, int]:
    """Push busybox + ``layers`` random layers; return the reference and total layer bytes."""
    files: list[Files] = [busybox_files()]
    files += [{f"data/blob{i}": os.urandom(layer_mb << 20)} for i in range(layers)]
    with tempfile.TemporaryDirectory(prefix="mcpm-bench-img-") as layout:
        built = build_oci_image(layout, files)
        blobs = os.path.join(layout, "blobs", "sha256")
        size = sum(
            os.path.getsize(os.path.join(blobs, d.split(":")[1])) for d in built.layer_digests
        )
        ref = registry.push(built, f"bench/big:{uuid.uuid4().hex[:8]}")
    return ref, size


def store_is_empty(daemon: ContainerdDaemon, namespace: str) -> bool:
    """No content, no overlayfs snapshot in ``namespace`` and no blob file on disk."""
    content = ctr(daemon, namespace, "content", "ls", "-q").split()
    snaps = ctr(daemon, namespace, "snapshots", "ls").splitlines()[1:]
    blob_dir = os.path.join(daemon.root, "io.containerd.content.v1.content", "blobs", "sha256")
    on_disk = os.listdir(blob_dir) if os.path.isdir(blob_dir) else []
    return not content and not snaps and not on_disk


def empty_store(daemon: ContainerdDaemon, namespace: str, ref: str) -> None:
    ctr(daemon, namespace, "images", "rm", "--sync", ref)
    poll(lambda: store_is_empty(daemon, namespace), "an empty content store", timeout=20)


def bench_pull(
    daemon: ContainerdDaemon, registry: LocalRegistry, args: argparse.Namespace
) -> tuple[list[float], list[float], str]:
    ref, size = build_and_push(registry, args.layers, args.layer_mb)
    namespace = f"bench-pull-{uuid.uuid4().hex[:6]}"
    service = ContainerdService(daemon.socket, namespace)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        poll(lambda: store_is_empty(daemon, namespace), "an empty content store")
        for i in range(args.rounds):
            runs: list[tuple[list[float], Callable[[], object]]] = [
                (ours, lambda: service.pull_image(ref)),
                (theirs, lambda: ctr(daemon, namespace, "images", "pull", "--plain-http", ref)),
            ]
            for results, pull in runs if i % 2 == 0 else runs[::-1]:
                results.append(timed(pull))
                empty_store(daemon, namespace, ref)
    finally:
        service.close()
    what = f"{args.layers + 1} layers, {size / 1e6:.1f} MB compressed"
    return ours, theirs, what


# ------------------------------------------------------- container cycle


def traps_sigterm(pid: int) -> bool:
    """True once process ``pid`` has a SIGTERM handler installed."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & _SIGTERM_BIT)
    except FileNotFoundError:
        pass
    return False


def exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def our_cycle(service: ContainerdService, cid: str) -> float:
    req = CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=ContainerSpec(cmd=SHELL))
    start = time.perf_counter()
    service.create_container(req)
    service.start_container(cid)
    elapsed = time.perf_counter() - start
    pid = service.get_task_info(cid).pid
    poll(lambda: traps_sigterm(pid), f"{cid} to trap SIGTERM")
    start = time.perf_counter()
    service.stop_container(cid, StopTaskOptions(timeout=10.0, force=True))
    service.delete_task(cid)
    service.delete_container(cid)
    return elapsed + time.perf_counter() - start


def ctr_cycle(daemon: ContainerdDaemon, service: ContainerdService, cid: str) -> float:
    ns = service.namespace
    start = time.perf_counter()
    ctr(daemon, ns, "containers", "create", "--", BUSYBOX_REF, cid, *SHELL)
    ctr(daemon, ns, "tasks", "start", "-d", cid)
    elapsed = time.perf_counter() - start
    pid = service.get_task_info(cid).pid
    poll(lambda: traps_sigterm(pid), f"{cid} to trap SIGTERM")
    start = time.perf_counter()
    ctr(daemon, ns, "tasks", "kill", cid)
    poll(lambda: exited(pid), f"{cid} to exit")  # ctr has no wait command
    for attempt in range(50):  # the daemon may not have seen the exit yet
        try:
            ctr(daemon, ns, "tasks", "rm", cid)
            break
        except AssertionError:
            if attempt == 49:
                raise
    ctr(daemon, ns, "containers", "rm", cid)
    return elapsed + time.perf_counter() - start


def bench_cycle(
    daemon: ContainerdDaemon, args: argparse.Namespace
) -> tuple[list[float], list[float], list[float], Profile | None]:
    """Cycles of ours, ctr's and ours with a shared shim, in turn (rotating who goes first).

    The shared-shim series runs on ``shim_groups=1`` with one resident
    container in the group (as on a host where other bots run), so its
    cycles find the group's shim running.
    """
    namespace = f"bench-cycle-{uuid.uuid4().hex[:6]}"
    service = ContainerdService(daemon.socket, namespace)
    shared = ContainerdService(daemon.socket, namespace, shim_groups=1)
    ours: list[float] = []
    theirs: list[float] = []
    grouped: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mcpm-bench-bb-") as tmp:
            archive = os.path.join(tmp, "busybox.tar")
            service.import_image(build_image_archive(archive, BUSYBOX_REF, [busybox_entries()]))
        our_cycle(service, "warm-ours")
        ctr_cycle(daemon, service, "warm-ctr")
        resident = ContainerSpec(cmd=SHELL)
        shared.create_container(
            CreateContainerRequest(id="resident", image_ref=BUSYBOX_REF, spec=resident)
        )
        shared.start_container("resident")
        series: list[tuple[list[float], Callable[[str], float]]] = [
            (ours, lambda cid: our_cycle(service, cid)),
            (theirs, lambda cid: ctr_cycle(daemon, service, cid)),
            (grouped, lambda cid: our_cycle(shared, cid)),
        ]
        for i in range(args.cycles):
            for k in range(len(series)):
                out, run = series[(i + k) % len(series)]
                out.append(run(f"c{i}-{k}"))
        shared.stop_container("resident", StopTaskOptions(timeout=10.0, force=True))
        shared.delete_container("resident")
        calls = profile_cycles(service, args.cycles) if args.calls else None
        left = service.list_containers()
        if left:
            raise SystemExit(f"containers left behind: {[c.id for c in left]}")
    finally:
        for info in _safe_list(service):
            try:
                service.delete_container(info.id)
            except errors.MCPManagerError as err:
                print(f"cleanup of {info.id} failed: {err}", file=sys.stderr)
        service.close()
        shared.close()
    return ours, theirs, grouped, calls


def _safe_list(service: ContainerdService) -> list[ContainerInfo]:
    try:
        return service.list_containers()
    except errors.MCPManagerError:
        return []


# ------------------------------------------------------- per-call profile


def profile_cycles(service: ContainerdService, cycles: int) -> Profile:
    """Run ``cycles`` of our cycle with every containerd call timed (see _cycle_profile)."""
    count = [0]

    def cycle(mark: Callable[[str], None]) -> None:
        cid = f"prof-{count[0]}"
        count[0] += 1
        req = CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=ContainerSpec(cmd=SHELL))
        mark("create")
        service.create_container(req)
        mark("start")
        service.start_container(cid)
        mark("-")
        pid = service.get_task_info(cid).pid
        poll(lambda: traps_sigterm(pid), f"{cid} to trap SIGTERM")
        mark("stop")
        service.stop_container(cid, StopTaskOptions(timeout=10.0, force=True))
        mark("delete_task")
        service.delete_task(cid)
        mark("delete_container")
        service.delete_container(cid)

    return run_profiled(cycle, cycles)


# ------------------------------------------------------------------ main


def report(name: str, ours: list[float], theirs: list[float]) -> None:
    mine, ref = statistics.median(ours), statistics.median(theirs)
    print(
        f"{name:<34} ours {mine * 1000:8.1f} ms   ctr {ref * 1000:8.1f} ms   "
        f"ratio {mine / ref:5.2f}x"
    )


Pulls = tuple[list[float], list[float], str]


Cycles = tuple[list[float], list[float], list[float]]


def run_all(
    args: argparse.Namespace,
) -> tuple[Pulls | None, Cycles, Profile | None, float]:
    """Start the registry (unless ``--no-pull``) and a daemon; run both figures."""
    registry = None if args.no_pull else start_registry()
    daemon = ContainerdDaemon()
    try:
        daemon.start()
        pulls = None if registry is None else bench_pull(daemon, registry, args)
        cycle_ours, cycle_ctr, cycle_grouped, calls = bench_cycle(daemon, args)
        ctr_call = statistics.median(
            timed(lambda: ctr(daemon, "default", "version")) for _ in range(5)
        )
    finally:
        daemon.teardown()
        if registry is not None:
            registry.stop()
    return pulls, (cycle_ours, cycle_ctr, cycle_grouped), calls, ctr_call


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--layers", type=int, default=5, help="random-data layers")
    parser.add_argument("--layer-mb", type=int, default=11, help="MiB per random layer")
    parser.add_argument("--rounds", type=int, default=3, help="pulls per client")
    parser.add_argument("--cycles", type=int, default=20, help="container cycles per client")
    parser.add_argument("--calls", action="store_true", help="then time each containerd call")
    parser.add_argument(
        "--runtime-trace",
        action="store_true",
        help="with --calls: also time the runc and shim processes inside each call",
    )
    parser.add_argument("--no-pull", action="store_true", help="measure the cycle only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_containerd.py needs root (it runs containerd)")

    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        trace_log = stack.enter_context(runtime_trace()) if args.runtime_trace else None
        pulls, (cycle_ours, cycle_ctr, cycle_grouped), calls, ctr_call = run_all(args)
        if calls is not None and trace_log is not None:
            calls.runtime = read_trace(trace_log)

    if pulls is not None:
        pull_ours, pull_ctr, what = pulls
        print(f"pull: {what}; median of {args.rounds}, each from an empty store")
        print("  ours: " + ", ".join(f"{t:.3f}s" for t in pull_ours))
        print("  ctr:  " + ", ".join(f"{t:.3f}s" for t in pull_ctr))
    print(f"cycle: create+start+stop+delete, median of {args.cycles}")
    if pulls is not None:
        report("pull_image vs ctr images pull", pulls[0], pulls[1])
    report("container cycle vs ctr", cycle_ours, cycle_ctr)
    report("cycle, shared shim vs ctr", cycle_grouped, cycle_ctr)
    print(f"(one bare ctr invocation, `ctr version`: {ctr_call * 1000:.1f} ms; the cycle makes 5)")
    if args.runtime_trace:
        print("(runtime trace: each runc/shim process carries ~1 ms of wrapper; ratios inflated)")
    if calls is not None:
        print_profile(calls)
    print(f"total benchmark time {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    main()
