"""Without a libpq, the package, the fake and SQLiteStore work; PostgresStore names the fix.

Each case runs a fresh interpreter whose ``sitecustomize`` takes libpq away the
way a bare host lacks it, so psycopg itself fails its import:

- ``no-libpq``: psycopg's bundled-libpq wheel (``psycopg_binary``) and its C
  build are not importable and ``ctypes`` finds no ``libpq``; psycopg raises its
  own "no pq wrapper available" after trying every implementation.
- ``broken-psycopg``: any ``import psycopg`` raises ImportError (an install
  that cannot load at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SITECUSTOMIZE = {
    "no-libpq": """
        import ctypes.util
        import importlib.abc
        import sys

        _find = ctypes.util.find_library
        ctypes.util.find_library = lambda name: None if name == "pq" else _find(name)

        class _NoPqWrappers(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("psycopg_binary", "psycopg_c"):
                    raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
                return None

        sys.meta_path.insert(0, _NoPqWrappers())
    """,
    "broken-psycopg": """
        import importlib.abc
        import sys

        class _NoPsycopg(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("psycopg", "psycopg_pool"):
                    raise ImportError("no pq wrapper available (simulated by the test)")
                return None

        sys.meta_path.insert(0, _NoPsycopg())
    """,
}

# Runs in the child: everything a SQLite user needs, then a PostgresStore.
CHILD = """
import sys
import tempfile

import mcpmanager
from mcpmanager import FakeContainerService, Manager, ManagerConfig
from mcpmanager.errors import FailedPrecondition
from mcpmanager.store import PostgresStore, SQLiteStore

with tempfile.TemporaryDirectory() as root:
    fake = FakeContainerService(root=f"{root}/fake")
    store = SQLiteStore(f"{root}/versions.db")
    manager = Manager(fake, ManagerConfig(data_root=f"{root}/data"), store=store)
    try:
        manager.init()
        manager.start("alice")
        assert manager.create_version("alice").version == 1
        assert [v.version for v in manager.list_versions("alice")] == [1]
    finally:
        manager.close()
        fake.close()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool"))
assert not loaded, loaded
try:
    PostgresStore("host=127.0.0.1 dbname=nothing")
except FailedPrecondition as exc:
    assert isinstance(exc.__cause__, ImportError), repr(exc.__cause__)
    print("REFUSED:", exc)
else:
    sys.exit("PostgresStore was made without a libpq")
"""


@pytest.mark.parametrize("case", sorted(SITECUSTOMIZE))
def test_sqlite_works_and_postgres_names_the_fix(case: str, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE[case]))
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_IMPL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(repo)])
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    refused = done.stdout.split("REFUSED:", 1)[1]
    assert "pip install 'mcpmanager[binary]'" in refused
    assert "system libpq" in refused
    assert "no pq wrapper available" in refused


def test_the_simulation_really_breaks_psycopg(tmp_path: Path) -> None:
    """Guard for the test above: under ``no-libpq`` psycopg itself must fail to import."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE["no-libpq"]))
    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_IMPL"}
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "import psycopg"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "ImportError: no pq wrapper available" in done.stderr
