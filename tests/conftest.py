"""Shared fixtures. Tests use the shipped model: it loads in about a second."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app
from deploy.dyno import free_port, start_web, stop_web, wait_for_200

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def app():
    """One app with the real model for the whole run (the model is read-only)."""
    return create_app({"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_app():
    """Build an app with config overrides, for tests that need other limits."""

    def factory(**overrides):
        return create_app({"TESTING": True, **overrides})

    return factory


class Server:
    """A real Gunicorn started from the Procfile's command on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log_file:  # the server keeps its own copy
            self.process = start_web(self.port, VENV_BIN, env, log_file)

    def wait_ready(self, path: str = "/health", timeout: float = 60) -> float:
        """Seconds until ``path`` answers 200; fails if the server exits or times out."""
        seconds = wait_for_200(self.process, "GET", self.url + path, timeout)
        if seconds is None:
            raise AssertionError(f"server exited or not ready in {timeout} s:\n{self.log()}")
        return seconds

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as Heroku sends; the exit code."""
        return stop_web(self.process, timeout)


@pytest.fixture
def start_server(tmp_path) -> Iterator:
    """Start real servers (stopped at the end of the test): ``start_server(**env)``."""
    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(env, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
