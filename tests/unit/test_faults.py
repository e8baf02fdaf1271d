"""The fault harness: every Manager operation, a fault at every backend call it makes.

For each operation a clean run on the fake records how many backend calls it
makes. Then, for every call position, a fresh world is built and the call at
that position fails: with an mcpmanager error, with a raw backend exception,
and with a crash (a BaseException that no ``except Exception`` stops). After
each, the harness checks what the SDK promises:

- only ``MCPManagerError`` comes out of the public API (a crash is re-raised);
- ``/data`` is intact byte for byte (or, where the operation changes it, is
  wholly the old or wholly the new content);
- the bot runs again after ``reconcile()`` + ``start()``;
- versions stay numbered 1..n with no gap or double, each on a live snapshot;
- separately, a plain retry of the failed operation succeeds, or raises a
  clear error after which ``reconcile()`` + ``start()`` repairs the bot.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from mcpmanager import FakeContainerService, Manager, ManagerConfig, errors
from mcpmanager.service import ContainerService
from mcpmanager.store import SQLiteStore
from mcpmanager.types import TaskStatus
from tests.harness.archives import tgz

BOT = "alice"
CID = "mcp-" + BOT
BASE = {"notes/a.txt": b"alpha", "b.bin": bytes(range(256)), "deep/x/y.txt": b"y"}
LATER = {**BASE, "later.txt": b"written after version 1"}
IMPORTED = {**BASE, "notes/a.txt": b"imported", "new.txt": b"new"}
CHANGED = {**BASE, "notes/a.txt": b"changed since the backup"}

Files = dict[str, bytes]
PROTOCOL = {
    name
    for name in dir(ContainerService)
    if not name.startswith("_") and callable(getattr(ContainerService, name))
}


class Crash(BaseException):
    """A crash in the middle of a backend call: escapes every ``except Exception``."""


class Injector:
    """A ContainerService in front of the fake that fails the call at one position."""

    def __init__(self, fake: FakeContainerService) -> None:
        self.fake = fake
        self.count = 0
        self.at: int | None = None
        self.error: BaseException | None = None

    def arm(self, at: int, error: BaseException) -> None:
        self.count, self.at, self.error = 0, at, error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.fake, name)
        if name not in PROTOCOL:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            position = self.count
            self.count += 1
            if position == self.at and self.error is not None:
                self.at = None
                raise self.error
            return attr(*args, **kwargs)

        return call


@attrs.define
class World:
    fake: FakeContainerService
    service: Injector
    manager: Manager
    root: Path

    def data(self) -> Files | None:
        """The bot's /data as the fake holds it, or None when it has no container."""
        try:
            info = self.fake.get_container(CID)
        except errors.NotFound:
            return None
        top = Path(self.fake.snapshot_path(info.snapshotter, info.snapshot_key), "data")
        return read_tree(top)

    def running(self) -> bool:
        try:
            return self.fake.get_task_info(CID).status is TaskStatus.RUNNING
        except errors.NotFound:
            return False

    def write(self, files: Files) -> None:
        info = self.fake.get_container(CID)
        top = Path(self.fake.snapshot_path(info.snapshotter, info.snapshot_key), "data")
        for name, body in files.items():
            (top / name).parent.mkdir(parents=True, exist_ok=True)
            (top / name).write_bytes(body)

    def backup(self) -> Files | None:
        path = Path(self.manager.config.data_root, "backups", f"{BOT}.tar.gz")
        if not path.exists():
            return None
        return read_archive(path.read_bytes())


def read_tree(top: Path) -> Files:
    return {
        str(p.relative_to(top)): p.read_bytes()
        for p in sorted(top.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def read_archive(blob: bytes) -> Files:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        out = {}
        for member in tar:
            if member.isfile():
                body = tar.extractfile(member)
                assert body is not None
                out[member.name] = body.read()
        return out


def make_world(root: Path, setup: Callable[[World], None]) -> World:
    root.mkdir(parents=True)
    fake = FakeContainerService(root=root / "fake")
    service = Injector(fake)
    store = SQLiteStore(str(root / "versions.db"))
    store.migrate()
    config = ManagerConfig(data_root=str(root / "data"))
    manager = Manager(service, config, store=store)  # type: ignore[arg-type]
    manager.ip_recovery_delays = (0.0, 0.0)
    world = World(fake, service, manager, root)
    manager.init()
    manager.start(BOT)
    world.write(BASE)
    setup(world)
    return world


# -- the operations --------------------------------------------------------------


def nothing(w: World) -> None:
    """No set-up beyond a running bot with BASE in /data."""


def stopped(w: World) -> None:
    w.manager.stop(BOT)


def versioned(w: World) -> None:
    w.manager.create_version(BOT)
    w.write(LATER)


def preserved(w: World) -> None:
    w.manager.preserve_data(BOT)
    w.write(CHANGED)


@attrs.frozen
class Op:
    """One Manager operation: how to set it up, call it, and what /data may be after."""

    setup: Callable[[World], None]
    call: Callable[[Manager], object]
    allowed: tuple[Files, ...] = (BASE,)
    deletes: bool = False


OPS: dict[str, Op] = {
    "ensure_bot": Op(nothing, lambda m: m.ensure_bot(BOT)),
    "start": Op(stopped, lambda m: m.start(BOT)),
    "start_running": Op(nothing, lambda m: m.start(BOT)),
    "stop": Op(nothing, lambda m: m.stop(BOT)),
    # A new Manager knows no IP yet, so this is the recovery path.
    "container_ip": Op(nothing, lambda m: Manager(m.service, m.config).container_ip(BOT)),
    "list_bots": Op(nothing, lambda m: m.list_bots()),
    "export_data": Op(nothing, lambda m: m.export_data(BOT, io.BytesIO())),
    "import_data": Op(nothing, lambda m: m.import_data(BOT, tgz(IMPORTED)), (BASE, IMPORTED)),
    "preserve_data": Op(nothing, lambda m: m.preserve_data(BOT)),
    "restore_preserved_data": Op(
        preserved, lambda m: m.restore_preserved_data(BOT), (CHANGED, BASE)
    ),
    "create_snapshot": Op(nothing, lambda m: m.create_snapshot(BOT, "named")),
    "create_version": Op(nothing, lambda m: m.create_version(BOT)),
    "rollback_version": Op(versioned, lambda m: m.rollback_version(BOT, 1), (LATER, BASE)),
    "list_bot_snapshot_data": Op(nothing, lambda m: m.list_bot_snapshot_data(BOT)),
    "reconcile": Op(nothing, lambda m: m.reconcile()),
    "delete": Op(nothing, lambda m: m.delete(BOT), deletes=True),
    "delete_preserve": Op(nothing, lambda m: m.delete(BOT, preserve_data=True), deletes=True),
}

FAULTS: dict[str, Callable[[], BaseException]] = {
    "error": lambda: errors.Unavailable("injected fault"),
    "raw": lambda: OSError(5, "injected raw backend failure"),
    "crash": lambda: Crash("injected crash"),
}


def clean_calls(tmp_path: Path, op: Op) -> int:
    """How many backend calls ``op`` makes when nothing fails."""
    world = make_world(tmp_path / "clean", op.setup)
    world.service.count = 0
    op.call(world.manager)
    count = world.service.count
    world.manager.close()
    world.fake.close()
    return count


def call_with_fault(world: World, op: Op, at: int, fault: BaseException) -> BaseException | None:
    """Run ``op`` with the call at ``at`` failing; return what it raised (None: success)."""
    world.service.arm(at, fault)
    try:
        op.call(world.manager)
    except BaseException as exc:
        return exc
    finally:
        world.service.at = None
    return None


def check_raised(raised: BaseException | None, kind: str) -> str | None:
    """Only mcpmanager errors (or the crash itself) may come out of the public API."""
    if raised is None or isinstance(raised, errors.MCPManagerError):
        return None
    if kind == "crash" and isinstance(raised, Crash):
        return None
    return f"raw {type(raised).__name__} escaped: {raised!r}"


def check_versions(world: World) -> str | None:
    """Versions numbered 1..n, no runtime snapshot twice, each on a live snapshot."""
    versions = world.manager.list_versions(BOT)
    numbers = [v.version for v in versions]
    if numbers != list(range(1, len(numbers) + 1)):
        return f"version numbers {numbers} are not 1..n"
    names = [v.runtime_snapshot_name for v in versions]
    if len(set(names)) != len(names):
        return f"a runtime snapshot is recorded twice: {names}"
    live = {s.name for s in world.fake.list_snapshots("overlayfs")}
    missing = [n for n in names if n not in live]
    return f"versions point at missing snapshots {missing}" if missing else None


def check_after(world: World, op: Op) -> str | None:
    """Repair with reconcile() + start(), then check the bot, its data and versions."""
    manager = world.manager
    manager.reconcile()
    data = world.data()
    if op.deletes and data is None:
        backup = world.backup()
        if op.call is OPS["delete_preserve"].call and backup != BASE:
            return f"bot deleted but its backup holds {sorted(backup or {})}"
        return None
    manager.start(BOT)
    if not world.running():
        return "the bot does not run after reconcile() + start()"
    data = world.data()
    if data not in op.allowed:
        return f"/data is {sorted((data or {}).items())[:4]}..., not an allowed state"
    return check_versions(world)


def run_case(tmp_path: Path, name: str, op: Op, at: int, kind: str, retry: bool) -> str | None:
    world = make_world(tmp_path / f"{name}-{at}-{kind}-{int(retry)}", op.setup)
    try:
        raised = call_with_fault(world, op, at, FAULTS[kind]())
        problem = check_raised(raised, kind)
        if problem is None and retry and raised is not None:
            try:
                op.call(world.manager)
            except errors.MCPManagerError:
                pass  # a clear error is allowed if reconcile() then repairs the bot
            except BaseException as exc:
                problem = f"retry raised raw {exc!r}"
        return problem or check_after(world, op)
    except BaseException as exc:
        return f"checking after the fault raised {exc!r}"
    finally:
        world.manager.close()
        world.fake.close()


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_fault_position_is_survived(tmp_path: Path, name: str) -> None:
    op = OPS[name]
    positions = clean_calls(tmp_path, op)
    assert positions > 0
    problems = []
    for at in range(positions):
        for kind in FAULTS:
            for retry in (False, True):
                problem = run_case(tmp_path, name, op, at, kind, retry)
                if problem:
                    mode = "retry" if retry else "repair"
                    problems.append(f"call {at} {kind} ({mode}): {problem}")
    assert not problems, f"{name}: {len(problems)} failures:\n" + "\n".join(problems[:20])


def test_the_injector_really_fails_the_chosen_call(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w", nothing)
    raised = call_with_fault(world, OPS["stop"], 0, errors.Unavailable("boom"))
    assert isinstance(raised, errors.Unavailable)
    assert world.running()  # the stop never reached the fake
    world.manager.close()
    world.fake.close()
