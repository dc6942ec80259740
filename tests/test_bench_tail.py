"""``python -m benchmarks.tail`` says what it can run and what it needs, in one line, and
leaves no temporary folder behind (the experiments themselves need wrk and minutes)."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from app.config import PROJECT_ROOT
from benchmarks import tail


def run_tail(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.tail", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_every_experiment():
    result = run_tail("--help")
    assert result.returncode == 0
    assert set(tail.EXPERIMENTS) <= set(result.stdout.split())


def test_an_unknown_experiment_is_a_usage_error():
    result = run_tail("shipped", "no-such-experiment")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown experiment no-such-experiment" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("experiment", ["shipped", "twin"])
def test_a_missing_environment_is_one_line_saying_what_builds_it(experiment, tmp_path, monkeypatch):
    """A fresh clone, before `make bench`: no .heroku-check/venv (nor venv-twin)."""
    monkeypatch.setattr(tail, "WORK", tmp_path / ".heroku-check")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["tail", experiment])
    with pytest.raises(SystemExit) as exited:
        tail.main()
    message = str(exited.value.code)
    assert "bin/gunicorn not found" in message and "make bench" in message
    assert "\n" not in message
    assert not list(tmp_path.glob("tail-*"))
