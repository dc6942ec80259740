"""``benchmarks/chaos_startup.py`` is importable by the chaos runner: named scenarios,
each a function of no arguments; the README shows what they print (about a minute)."""

import re
import subprocess
import sys

import pytest

from app.config import PROJECT_ROOT
from benchmarks.chaos_startup import SCENARIOS


def test_scenarios_are_named_callables():
    names = [name for name, _ in SCENARIOS]
    assert names == [
        "bad-settings",
        "reordered-classes",
        "deleted-metrics-folder",
        "lone-surrogate",
    ]
    assert all(callable(function) for _, function in SCENARIOS)


@pytest.mark.slow
def test_readme_shows_what_the_scenarios_print():
    """The README's block of ``python -m benchmarks.chaos_startup`` output is what it
    prints now: the same lines, times and the count of log lines aside (they vary)."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```\n(ok   bad-settings: .*?)^```", readme, re.M | re.S)
    assert block, "the README's chaos_startup block"
    shown = block[1].splitlines()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.chaos_startup"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    printed = [line for line in done.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert len(printed) == len(shown), printed
    varying = re.compile(r"\d+\.\d+|\d+(?= log lines)|(?<=\()\d+(?= s\)$)")
    for want, got in zip(shown, printed, strict=True):
        pattern = r"\d+(?:\.\d+)?".join(map(re.escape, varying.split(want)))
        assert re.fullmatch(pattern, got), f"README: {want}\nnow:    {got}"
