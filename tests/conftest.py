"""Shared fixtures. Tests use the shipped model: it loads in about a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app
from app.config import PROJECT_ROOT
from deploy.dyno import free_port, procfile_command

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
        log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            f"exec {procfile_command()}",  # the process is Gunicorn itself, not a shell
            shell=True,
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                "PORT": str(self.port),
                "PYTHONUNBUFFERED": "1",  # as Heroku's Python buildpack sets it
                **env,
            },
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()  # the server holds its own copy

    def wait_ready(self, path: str = "/health", timeout: float = 60) -> float:
        """Seconds until ``path`` answers 200; fails if the server exits or times out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:  # listening, but no worker is ready yet
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Heroku sends; the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)


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
