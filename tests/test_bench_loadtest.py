"""``make loadtest`` points at its reports only when this run wrote them: a locust that
refused its arguments (a bad LOADTEST_TIME: exit 2) leaves the last run's files there.
Locust and the server are replaced by fakes: what is checked is what gets printed."""

from __future__ import annotations

import os
import subprocess

import pytest

from benchmarks import loadtest


class FakeServer:
    url = "http://127.0.0.1:9"

    def __init__(self, *args):
        pass

    def stop(self):
        pass


class Ready:
    status_code = 200


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """Last run's reports in reports/, a server that answers /ready."""
    for name in ("locust.html", "locust_stats.csv"):
        (tmp_path / name).write_text("the last run")
        stamp = (tmp_path / name).stat().st_mtime - 3600
        os.utime(tmp_path / name, (stamp, stamp))
    monkeypatch.setattr(loadtest, "REPORTS", tmp_path)
    monkeypatch.setattr(loadtest, "Server", FakeServer)
    monkeypatch.setattr(loadtest.requests, "get", lambda *args, **kwargs: Ready())
    return tmp_path


def locust(code: int, writes: bool):
    def run(command, **kwargs):
        if writes:
            for name in ("locust.html", "locust_stats.csv"):
                (loadtest.REPORTS / name).write_text("this run")
        return subprocess.CompletedProcess(command, code)

    return run


def test_a_refused_run_does_not_point_at_the_last_runs_reports(reports, monkeypatch, capsys):
    monkeypatch.setenv("LOADTEST_TIME", "sixty")
    monkeypatch.setattr(loadtest.subprocess, "run", locust(2, writes=False))
    with pytest.raises(SystemExit) as exited:
        loadtest.main()
    assert exited.value.code == 2
    assert "reports:" not in capsys.readouterr().out


def test_a_run_points_at_the_reports_it_wrote(reports, monkeypatch, capsys):
    monkeypatch.setattr(loadtest.subprocess, "run", locust(0, writes=True))
    with pytest.raises(SystemExit) as exited:
        loadtest.main()
    assert exited.value.code == 0
    assert f"reports: {reports / 'locust.html'}" in capsys.readouterr().out
