"""``benchmarks/chaos_startup.py`` is importable by the chaos runner: named scenarios,
each a function of no arguments (running them is ``make chaos``, minutes long)."""

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
