"""``make bench BENCH_ARGS=--quick`` (a smoke run of every step) never replaces the record:
both parts write their report to reports/, and BENCHMARKS.md and the plot are left alone.
The measurements are replaced by canned results: what is checked is where each part writes."""

from __future__ import annotations

import sys

import pytest

from benchmarks import bench, transformer

RECORD = "# Benchmarks\n\n<!-- bench:start -->\nthe record\n<!-- bench:end -->\n"


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """The committed files and reports/, all in tmp_path; the machines' tools not needed."""
    record, picture = tmp_path / "BENCHMARKS.md", tmp_path / "throughput.png"
    record.write_text(RECORD)
    picture.write_bytes(b"the record's plot")
    for module in (bench, transformer):  # raising=False: before the fix, each had its own
        monkeypatch.setattr(module, "BENCHMARKS_MD", record, raising=False)
    monkeypatch.setattr(bench, "PLOT", picture)
    monkeypatch.setattr(bench, "REPORTS", tmp_path / "reports", raising=False)
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    return record, picture, tmp_path / "reports"


def test_quick_runs_write_to_reports_not_over_the_record(paths, monkeypatch, capsys):
    record, picture, reports = paths
    plotted = []
    monkeypatch.setattr(bench, "run", lambda quick: {"quick": quick})
    monkeypatch.setattr(bench, "targets", lambda results: [])
    monkeypatch.setattr(
        bench, "report", lambda r, command: f"{bench.START}\n{command}\n{bench.END}"
    )
    monkeypatch.setattr(bench, "plot", lambda r, path=bench.PLOT: plotted.append(path))
    monkeypatch.setattr(sys, "argv", ["bench", "--quick"])
    bench.main()

    monkeypatch.setattr(
        transformer,
        "run",
        lambda quick: {
            "in_process": {},
            "loads": {},
            "boot_s": {"version 3": 1.0, "version 4, f32": 1.0},
            "memory_mb": {name + transformer.LONG_BATCHES: 1 for name in transformer.MEMORY_ONLY},
        },
    )
    monkeypatch.setattr(
        transformer,
        "report",
        lambda r, command: f"{transformer.START}\nsecond part\n{transformer.END}\n",
    )
    transformer.main()

    assert record.read_text() == RECORD
    assert picture.read_bytes() == b"the record's plot"
    assert plotted == [reports / "throughput-quick.png"]
    written = (reports / "BENCHMARKS-quick.md").read_text()
    assert "make bench BENCH_ARGS=--quick" in written and "second part" in written
    assert capsys.readouterr().out.count(str(reports / "BENCHMARKS-quick.md")) == 2


def test_only_quick_runs_write_to_git_ignored_reports():
    assert bench.outputs(False) == (bench.BENCHMARKS_MD, bench.PLOT)
    markdown, picture = bench.outputs(True)
    assert markdown.parent == picture.parent == bench.REPORTS
    assert "reports/" in (bench.PROJECT_ROOT / ".gitignore").read_text().splitlines()
