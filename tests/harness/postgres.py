"""Harness for a real postgres, started and stopped by the tests (see tests/harness/common.py).

``postgres_conninfo`` (session scope) runs a throwaway PostgreSQL cluster:
``initdb`` + ``pg_ctl start`` as the ``postgres`` user (PostgreSQL refuses to
run as root) in a ``tempfile.mkdtemp`` directory owned by that user, on a free
port of 127.0.0.1 with its unix socket in the same directory, fsync off. TCP
logins need a random password; the yielded conninfo carries it. At the end the
cluster is stopped (``-m immediate``) and the directory removed.

``postgres_schema`` (function scope) gives each test a fresh schema name and
drops that schema afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.common import require_root, unavailable

PG_USER = "postgres"
DATABASE = "mcpmanager_test"
START_ATTEMPTS = 3


def find_pg_bin() -> str | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb, or the PATH's."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


@dataclass
class PostgresCluster:
    """A running throwaway cluster; ``conninfo`` reaches database ``mcpmanager_test``."""

    bin_dir: str
    base: str
    port: int
    password: str
    user: pwd.struct_passwd

    @property
    def data_dir(self) -> str:
        """PGDATA of the cluster."""
        return os.path.join(self.base, "data")

    def conninfo(self, dbname: str = DATABASE) -> str:
        """A libpq connection string over TCP to ``dbname``."""
        return (
            f"host=127.0.0.1 port={self.port} user={PG_USER} "
            f"password={self.password} dbname={dbname} connect_timeout=5"
        )

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program from ``bin_dir`` as the postgres user.

        The user switch is done by ``runuser``, not by subprocess's ``user=``:
        that would force a plain fork() of this multi-threaded (gRPC) process,
        and such a child can crash before it execs.
        """
        return subprocess.run(
            [
                RUNUSER,
                "-u",
                self.user.pw_name,
                "--",
                os.path.join(self.bin_dir, args[0]),
                *args[1:],
            ],
            cwd=self.base,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": self.base},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def init(self) -> None:
        """initdb with trust on the socket and scram-sha-256 over TCP."""
        pwfile = os.path.join(self.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        done = self.run(
            "initdb", "-D", self.data_dir, "-U", PG_USER, "--pwfile", pwfile,
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        os.unlink(pwfile)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def start(self) -> bool:
        """Configure port and sockets, then start and wait; False if the start failed."""
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "60",
            "shared_buffers": "32MB",
        }
        with open(os.path.join(self.data_dir, "postgresql.auto.conf"), "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        log = os.path.join(self.base, "server.log")
        done = self.run("pg_ctl", "-D", self.data_dir, "-l", log, "-w", "-t", "60", "start")
        return done.returncode == 0

    def create_database(self) -> None:
        """Create the test database through the unix socket."""
        done = self.run(
            "psql", "-h", self.base, "-p", str(self.port), "-U", PG_USER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE DATABASE {DATABASE}",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"CREATE DATABASE failed (exit {done.returncode}): {done.stderr}{done.stdout}\n"
                f"{self.log_tail()}"
            )

    def stop(self) -> None:
        """Stop the server immediately; kill the postmaster if pg_ctl cannot."""
        if not os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            return
        done = self.run("pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop")
        if done.returncode != 0:
            self._kill_postmaster()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server log, for error messages."""
        try:
            with open(os.path.join(self.base, "server.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _kill_postmaster(self) -> None:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def start_cluster() -> PostgresCluster:
    """Create and start a cluster, retrying on a new port if another process took it."""
    require_root()
    bin_dir = find_pg_bin()
    if bin_dir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    try:
        user = pwd.getpwnam(PG_USER)
    except KeyError:
        unavailable(f"no {PG_USER!r} system user to run PostgreSQL as")
    base = tempfile.mkdtemp(prefix="mcpmanager-pg-")
    os.chown(base, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(bin_dir, base, free_port(), secrets.token_hex(16), user)
    try:
        cluster.init()
        for _ in range(START_ATTEMPTS):
            if cluster.start():
                cluster.create_database()
                return cluster
            cluster.port = free_port()
        raise RuntimeError(f"PostgreSQL did not start:\n{cluster.log_tail()}")
    except BaseException:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running throwaway PostgreSQL cluster for the whole session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_conninfo(postgres_cluster: PostgresCluster) -> str:
    """A libpq conninfo for a scratch database on the session's cluster."""
    return postgres_cluster.conninfo()


@pytest.fixture
def postgres_schema(postgres_conninfo: str) -> Iterator[str]:
    """A schema name unique to this test; the schema is dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
