"""A real PostgreSQL server for the storage tests (``postgres_server``): the Debian ``postgresql``
binaries (``/usr/lib/postgresql/<version>/bin``, installed by ``.ci/run`` when missing) started on
127.0.0.1 and a free port with a private data folder, stopped after the session.

``initdb`` and ``postgres`` refuse to run as root: as root the fixture runs them as the
``postgres`` user (``runuser -u postgres --``) in a folder that user owns. Tests skip with the
reason only when no server can be started (no binaries, no ``postgres`` user, start failure).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``url(db)`` is a SQLAlchemy URL of database ``db`` (created by
    :meth:`create_database`)."""

    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        """``postgresql+psycopg://user@host:port/database`` (trust authentication, no password)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropped first if it exists); return its URL."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL server for the session (see the module docstring)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = bins[-1] if bins else shutil.which("initdb")
    if not initdb:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = Path(initdb).parent
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="volsuite-pg-"))
    if os.geteuid() == 0:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=300, cwd=folder
        )

    done = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N")
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    opts = f"-p {port} -h 127.0.0.1 -k {folder} -F -c max_connections=200"
    done = run(
        str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w",
        "start",
    )  # fmt: skip
    if done.returncode != 0:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {(log or done.stderr).strip().splitlines()[-1:]}")
    try:
        yield PostgresServer("127.0.0.1", port, "postgres")
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
