"""Shared fixtures. Tests use the shipped model: it loads in about a second."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app
from app.config import DEFAULT_MODEL_DIR
from deploy.dyno import WebProcess


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """One app with the real model for the whole run (the model is read-only); its
    prediction store is a SQLite file of its own."""
    database = tmp_path_factory.mktemp("store") / "predictions.sqlite3"
    return create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{database}"})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_app(tmp_path):
    """Build an app with config overrides, for tests that need other limits (each with
    its own prediction store unless told otherwise; closed at the end of the test)."""
    apps = []

    def factory(**overrides):
        database = f"sqlite:///{tmp_path / 'predictions.sqlite3'}"
        app = create_app({"TESTING": True, "DATABASE_URL": database, **overrides})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        if "feedback" in app.extensions:
            app.extensions["feedback"].close()


@pytest.fixture(scope="session")
def two_versions(tmp_path_factory) -> Path:
    """A model base folder with versions 1 and 2: version 1's files twice, the copy
    numbered 2 (two real versions whose answers are known to be equal)."""
    base = tmp_path_factory.mktemp("versions")
    shutil.copytree(DEFAULT_MODEL_DIR, base / "1")
    shutil.copytree(DEFAULT_MODEL_DIR, base / "2")
    metadata = json.loads((base / "2" / "metadata.json").read_text())
    metadata["version"] = "2"
    (base / "2" / "metadata.json").write_text(json.dumps(metadata))
    return base


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    """Start real servers (stopped at the end of the test): ``start_server(**env)``."""
    servers: list[WebProcess] = []

    def start(**env: str) -> WebProcess:
        # Each server records its answers in a store of its own unless told otherwise.
        database = f"sqlite:///{tmp_path / f'predictions-{len(servers)}.sqlite3'}"
        env = {"DATABASE_URL": database, **env}
        server = WebProcess(env, log_path=tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole run (tests/postgres_harness.py), or a skip."""
    from postgres_harness import PostgresServer

    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request, tmp_path) -> str:
    """A fresh prediction store: a SQLite file, then a PostgreSQL database (a real server
    started for the run: slow, so `make test-fast` runs the SQLite half)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.sqlite3'}"
    return request.getfixturevalue("postgres_server").url()


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB tmpfs (needs root), unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    target = tmp_path / "disk"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", target], check=True)
    yield target
    subprocess.run(["umount", "-l", target], check=False)
