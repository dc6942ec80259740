"""What a dyno runs: the Procfile's web command, the environment requirements.txt
alone builds, and the memory of a process tree. Shared by `make heroku-check` and
`make bench`."""

from __future__ import annotations

import re
import socket
import subprocess
import venv
from pathlib import Path

from app.config import PROJECT_ROOT

WORK = PROJECT_ROOT / ".heroku-check"


def procfile_command() -> str:
    """The Procfile's web command, exactly as Heroku runs it."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise RuntimeError("Procfile has no web process")


def build_environment(fresh: bool = True) -> Path:
    """A venv with requirements.txt and nothing else (no dev tools: with scikit-learn or
    matplotlib installed, Keras imports them and a worker grows by ~45 MB). ``fresh``
    rebuilds it, as the buildpack does; otherwise one built from the same
    requirements.txt is reused (make bench)."""
    env_dir = WORK / "venv"
    requirements = (PROJECT_ROOT / "requirements.txt").read_bytes()
    stamp = env_dir / "requirements.txt"
    if not fresh and stamp.exists() and stamp.read_bytes() == requirements:
        return env_dir
    venv.EnvBuilder(clear=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-qq", "-r", PROJECT_ROOT / "requirements.txt"],
        check=True,
    )
    stamp.write_bytes(requirements)
    return env_dir


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def pss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(re.search(r"^Pss:\s+(\d+) kB", text, re.M).group(1))


def pss_mb(pid: int) -> float:
    """Proportional set size of a process and its children (Gunicorn's master and
    workers), in MB: what the dyno's memory counter sees, shared pages split fairly."""
    return sum(pss_kb(p) for p in [pid, *children(pid)]) / 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
