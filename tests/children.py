"""A Python child for the model tests: Keras reads its backend once, at import, and is
never imported in the pytest process, so whatever needs Keras runs in one of these."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_python(args: list[str], backend: str, timeout: float = 120) -> str:
    """``python <args>`` from the project root with ``KERAS_BACKEND=backend``; its
    standard output (the test fails with the end of its standard error otherwise)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout
