"""What a dyno runs: the Procfile's web command (started, awaited and stopped as Heroku
does), the environment requirements.txt alone builds, and the memory of a process tree.
Shared by `make heroku-check`, `make bench` and the tests that start real servers."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import IO

import numpy as np
import requests

from app.config import PROJECT_ROOT
from app.observability.metrics import children, family_pss_bytes

WORK = PROJECT_ROOT / ".heroku-check"


def procfile_command() -> str:
    """The Procfile's web command, exactly as Heroku runs it."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise RuntimeError("Procfile has no web process")


def start_web(
    port: int,
    bin_dir: Path,
    env: dict[str, str] | None = None,
    output: IO[bytes] | int = subprocess.DEVNULL,
    app_spec: str | None = None,
    open_files: tuple[int, int] | None = None,
) -> subprocess.Popen:
    """Run the Procfile's web command as Heroku does: through bash, with ``PORT`` set and
    ``bin_dir`` (a virtualenv's) first on PATH, stdout and stderr to ``output``. It is
    exec'd, so the process is Gunicorn itself, leading its own process group.
    ``app_spec`` swaps the app for another (the benchmarks' baselines); ``open_files``
    sets its (soft, hard) open-file limit, as ``ulimit -n`` would."""
    command = procfile_command()
    if app_spec:
        command = command.replace('"app:create_app()"', f'"{app_spec}"')
    return subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",  # as Heroku's Python buildpack sets it
            **(env or {}),
        },
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=open_files and (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, open_files)),
    )


def wait_for_200(
    process: subprocess.Popen, method: str, url: str, timeout: float, **kwargs: object
) -> float | None:
    """Seconds until ``method url`` answers 200, or None if the process exits first or
    ``timeout`` passes. Connection errors and read timeouts mean "not yet": the socket
    listens (each worker binds its own) before the model has loaded."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and process.poll() is None:
        try:
            if requests.request(method, url, timeout=2, **kwargs).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return None


def wait_for_workers_started(url: str, count: int, timeout: float = 60) -> None:
    """Until ``count`` workers of the server at ``url`` have loaded their models (their
    start-up counter on /metrics); a worker still booting does things of its own (it
    re-creates the metrics folder, for one), so a test of a running server waits for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = requests.get(url + "/metrics", timeout=10).text
        started = re.search(r"^sentiment_worker_starts_total (\S+)$", text, re.M)
        if started and float(started[1]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} workers not started in {timeout} s")


def stop_web(process: subprocess.Popen, timeout: float = 30) -> int | None:
    """SIGTERM to the whole process group, as Heroku stops a dyno; its exit code, or
    None if it was still running after ``timeout`` and had to be killed."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


class WebProcess:
    """One real web process (the Procfile's command) on a free loopback port: the harness
    behind the tests, ``make bench``, ``make loadtest`` and ``make heroku-check``.

    ``bin_dir`` is the virtualenv whose Gunicorn runs (this one by default); its output
    goes to ``log_path`` when given. ``app_spec`` swaps the app (benchmark baselines).
    """

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        log_path: Path | None = None,
        bin_dir: Path | None = None,
        app_spec: str | None = None,
        port: int | None = None,
        open_files: tuple[int, int] | None = None,
    ):
        env = dict(env or {})
        self.store: Path | None = None
        if "DATABASE_URL" not in env:
            # Its own empty prediction store, as a dyno's fresh filesystem gives it. Servers
            # sharing make serve's (instance/, kept between runs) wrote into one growing
            # file that each worker's periodic summary scanned (a 436 MB database and a
            # 459 MB WAL after a few bench runs; every idle worker at ~13% CPU).
            self.store = Path(tempfile.mkdtemp(prefix="web-store-"))
            env["DATABASE_URL"] = f"sqlite:///{self.store / 'predictions.sqlite3'}"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.started = time.monotonic()
        bin_dir = bin_dir or Path(sys.executable).parent
        if log_path is None:
            self.process = start_web(
                self.port, bin_dir, env, app_spec=app_spec, open_files=open_files
            )
        else:
            with log_path.open("wb") as log_file:  # the server keeps its own copy
                self.process = start_web(self.port, bin_dir, env, log_file, app_spec, open_files)

    def wait_ready(
        self, path: str = "/health", timeout: float = 60, method: str = "GET", **kwargs: object
    ) -> float:
        """Seconds until ``method path`` answers 200; raises if the server exits first or
        does not answer within ``timeout``."""
        seconds = wait_for_200(self.process, method, self.url + path, timeout, **kwargs)
        if seconds is None:
            raise RuntimeError(f"server exited or not ready in {timeout} s:\n{self.log()}")
        return seconds

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def memory_mb(self) -> float:
        return memory_mb(self.process.pid)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as Heroku sends; the exit code (None if it had to be killed)."""
        try:
            return stop_web(self.process, timeout)
        finally:
            if self.store is not None:
                shutil.rmtree(self.store, ignore_errors=True)


def build_environment(fresh: bool = True, extra: tuple[str, ...] = (), name: str = "venv") -> Path:
    """A venv with requirements.txt and nothing else (no dev tools: with scikit-learn or
    matplotlib installed, Keras imports them and a worker grows by ~45 MB). ``fresh``
    rebuilds it, as the buildpack does; otherwise one built from the same
    requirements.txt is reused (make bench).

    ``extra`` requirement lines (``name==version``) go into a venv of their own, ``name``
    (the bench's FastAPI twin), so that the project's stays requirements.txt-only."""
    if extra and name == "venv":
        raise ValueError("extra packages need a venv of their own name")
    env_dir = WORK / name
    requirements = (PROJECT_ROOT / "requirements.txt").read_bytes()
    requirements += "".join(f"{line}\n" for line in extra).encode()
    stamp = env_dir / "requirements.txt"
    if not fresh and stamp.exists() and stamp.read_bytes() == requirements:
        return env_dir
    venv.EnvBuilder(clear=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-qq", "-r", PROJECT_ROOT / "requirements.txt", *extra],
        check=True,
    )
    stamp.write_bytes(requirements)
    return env_dir


PAGE = os.sysconf("SC_PAGE_SIZE")
FRAME = (1 << 55) - 1  # a pagemap entry's page frame number; bit 63: present


def memory_mb(pid: int) -> float:
    """What a dyno's memory counter charges for a process and its children (Gunicorn's
    master and workers), in MB: the physical pages they map, each counted once, shared or
    not. Summed PSS splits a shared page among every process that maps it, the other
    servers of a benchmark run included, and so read 60–80 MB low for a server measured
    beside others from the same environment (measured); this count does not move with
    them. Page frame numbers need root (CAP_SYS_ADMIN); without, summed PSS."""
    frames = []
    for process in [pid, *children(pid)]:
        with (
            open(f"/proc/{process}/maps") as maps,
            open(f"/proc/{process}/pagemap", "rb") as pagemap,
        ):
            for line in maps:
                if line.rstrip().endswith("[vsyscall]"):
                    continue
                start, end = (int(bound, 16) for bound in line.split(maxsplit=1)[0].split("-"))
                pagemap.seek(start // PAGE * 8)
                entries = np.frombuffer(pagemap.read((end - start) // PAGE * 8), dtype="<u8")
                frames.append(entries[entries >> 63 == 1] & FRAME)
    found = np.unique(np.concatenate(frames))
    if not found.any():  # frame numbers hidden: not root
        return family_pss_bytes(pid) / 2**20
    return found.size * PAGE / 2**20


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
