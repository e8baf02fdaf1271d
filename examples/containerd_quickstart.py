"""One bot on a real containerd: start it, run commands in it over its bridge, clean up.

Needs root, a containerd, CNI plugins and a CNI network config. The easiest
way to get all three without touching the machine's own network is
``sudo scripts/dev-containerd --quickstart``, which starts a private containerd
and a bridge network in a namespace of its own and runs this script there.
By hand::

    sudo python examples/containerd_quickstart.py \\
        --address /run/containerd/containerd.sock --image memohai/mcp:latest \\
        --cni-conf-dir /etc/cni/net.d --cni-bin-dir /opt/cni/bin

Every option also has an environment variable (shown by ``--help``). The
image's entrypoint must run the agent (``python -m mcpmanager.agent``), as
the one built from ``examples/workspace-image/Dockerfile`` does; with
``--host-python`` a bare image (busybox) works too, because the host's
Python and this package are bind-mounted into the container read-only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import mcpmanager
from mcpmanager import Manager, ManagerConfig, errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.progress import PullProgressBar
from mcpmanager.types import MountSpec, PullImageOptions


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MCPMANAGER_{name}", default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--address", default=_env("ADDRESS", "/run/containerd/containerd.sock"))
    p.add_argument("--namespace", default=_env("NAMESPACE", "mcpmanager"))
    p.add_argument("--image", default=_env("IMAGE", "memohai/mcp:latest"))
    p.add_argument("--cni-conf-dir", default=_env("CNI_CONF_DIR", "/etc/cni/net.d"))
    p.add_argument("--cni-bin-dir", default=_env("CNI_BIN_DIR", "/opt/cni/bin"))
    p.add_argument("--cni-cache-dir", default=_env("CNI_CACHE_DIR", "") or None)
    p.add_argument("--data-root", default=_env("DATA_ROOT", ""))
    p.add_argument("--bot", default=_env("BOT", "quickstart"))
    p.add_argument(
        "--host-python",
        action="store_true",
        default=_env("HOST_PYTHON", "") not in ("", "0"),
        help="bind-mount this Python, its libraries and mcpmanager into the container",
    )
    p.add_argument("--keep", action="store_true", help="leave the bot running at the end")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def host_python_mounts() -> tuple[MountSpec, ...]:
    """Read-only bind mounts that let a bare image run this interpreter and package.

    ``/usr`` and the library dirs (symlinks such as ``/lib -> usr/lib`` are
    mounted from their targets), Python's prefixes and the package's parent.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mcpmanager.__file__)))
    wanted = {sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), package_parent}
    wanted |= {d for d in ("/usr", "/lib", "/lib64") if os.path.isdir(d)}
    kept: list[str] = []
    for p in sorted((os.path.abspath(w) for w in wanted), key=len):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    kept.sort(key=lambda p: (p != "/usr", p))
    return tuple(MountSpec(p, "bind", os.path.realpath(p), ("rbind", "ro")) for p in kept)


def run(args: argparse.Namespace, data_root: str) -> int:
    config = ManagerConfig(
        image=args.image,
        data_root=data_root,
        cni_bin_dir=args.cni_bin_dir,
        cni_conf_dir=args.cni_conf_dir,
        extra_mounts=host_python_mounts() if args.host_python else (),
    )
    service = ContainerdService(args.address, args.namespace, cni_cache_dir=args.cni_cache_dir)
    with Manager(service, config, owns_service=True) as manager:
        try:  # a local image is used as it is; otherwise pull it with progress bars
            image = service.get_image(args.image)
        except errors.NotFound:
            with PullProgressBar() as bar:
                service.pull_image(config.image_ref(), PullImageOptions(progress=bar))
            image = manager.init()
        print(f"image    {image.name} ({image.id[:19]})")
        started = time.monotonic()
        manager.start(args.bot)  # returns once the bot's agent answers
        print(f"bot      {args.bot} -> container {manager.container_id(args.bot)}")
        print(f"address  {manager.container_ip(args.bot)}:{config.grpc_port}")
        print(f"ready in {time.monotonic() - started:.2f}s")
        client = manager.client(args.bot)
        for command in ("echo hello from $(hostname)", "uname -sr", "ip -o -4 addr show eth0"):
            result = client.exec(command)
            out = (result.stdout or result.stderr).strip()
            print(f"$ {command}\n  {out} (exit {result.exit_code})")
        client.write_file("/data/hello.txt", "kept in the bot's snapshot\n")
        print(f"/data    {[e.path for e in client.list_dir('/data')]}")
        if args.keep:
            print(f"left running; remove it with: Manager.delete({args.bot!r})")
            return 0
        manager.delete(args.bot)
        print(f"deleted  {args.bot}; bots left: {manager.list_bots()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the walk-through; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.data_root:
            return run(args, args.data_root)
        with tempfile.TemporaryDirectory(prefix="mcp-ctrd-quickstart-") as data_root:
            return run(args, data_root)
    except errors.MCPManagerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
