"""``python -m benchmarks.tail`` says what it can run and what it needs, in one line, and
leaves no temporary folder behind (the experiments themselves need wrk and minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import requests

from app.config import PROJECT_ROOT
from benchmarks import tail
from deploy.dyno import stop_web


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


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["probe", "probe-noop"])
def test_a_probe_experiment_serves_and_its_workers_report(experiment, tmp_path, monkeypatch):
    """The probe's hooks wrap gthread's; the shipped worker serves short requests on its
    loop without gthread's hand-over, which the probe once took for granted (every worker
    died on its first request, and the experiment 'did not start')."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "venv").symlink_to(sys.prefix)
    monkeypatch.setattr(tail, "WORK", tmp_path / "work")
    started = tail.start(experiment, tmp_path)
    try:
        for _ in range(20):
            answer = requests.post(started.url, json=tail.SINGLE, timeout=30)
            assert answer.status_code == 200
        answer = requests.post(started.url, json=tail.BATCH, timeout=30)
        assert answer.status_code == 200
    finally:
        stop_web(started.process)
    folder = tmp_path / f"probe-{experiment}"
    reports = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    assert len(reports) == 2  # one a worker
    assert sum(len(report["handle"]) for report in reports) >= 21


def test_an_unknown_commit_is_a_usage_error():
    result = run_tail("shipped", "at-no-such-commit")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "'no-such-commit' names no commit" in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_an_experiment_at_a_commit_serves_that_commits_tree(tmp_path, monkeypatch):
    """``at-<commit>`` runs "shipped" from the commit's files (an A/B across commits in
    the same rounds), not from this checkout."""
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "venv").symlink_to(sys.prefix)
    monkeypatch.setattr(tail, "WORK", tmp_path / "work")
    started = tail.start("at-HEAD", tmp_path)
    try:
        answer = requests.post(started.url, json=tail.SINGLE, timeout=30)
        assert answer.status_code == 200
        tree = tmp_path / "at-HEAD"
        assert (tree / "app" / "__init__.py").is_file()
        assert os.readlink(f"/proc/{started.process.pid}/cwd") == str(tree)
    finally:
        stop_web(started.process)
