"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a cluster made
by ``initdb`` in a temporary folder, started by ``pg_ctl`` on a free loopback port, and
stopped at the end. Never a server that happens to be running.

PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user
and its commands run through ``runuser``. Without the binaries the PostgreSQL tests are
skipped, unless ``REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from deploy.dyno import free_port


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(found[0]).parent if found else None


def missing_postgres(reason: str) -> None:
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(f"{reason} (install Debian's postgresql package)")


class PostgresServer:
    """One throwaway cluster; ``url(name)`` makes a fresh database in it."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            missing_postgres("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="sentiment-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.start()

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.root,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                 "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def pause(self, how: int = signal.SIGSTOP) -> None:
        """Freeze every process of the cluster (``resume`` thaws them): connections are
        still accepted by the kernel, and nothing answers, as from a database host that
        hangs."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in [postmaster, *map(int, children)]:
            os.kill(pid, how)

    def resume(self) -> None:
        self.pause(signal.SIGCONT)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self) -> str:
        """A new empty database, as ``DATABASE_URL`` (Heroku's ``postgres://`` scheme)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # a test stopped it
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
