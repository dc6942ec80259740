"""``python -m benchmarks.chaos`` and ``benchmarks.chaos_startup``: ``--help`` lists the
scenarios without running any, and names that match none are a usage error (exit 2)
naming them. The scenarios themselves are ``make chaos``, minutes long: fakes here."""

from __future__ import annotations

import pytest

from benchmarks import chaos, chaos_startup


def fakes(ran: list[str]) -> list[tuple[str, object]]:
    return [(name, lambda name=name: ran.append(name) or "fine") for name in ("one", "two")]


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (chaos, [name for name, _ in chaos.scenarios()]),
        (chaos_startup, [name for name, _ in chaos_startup.SCENARIOS]),
    ],
)
def test_help_lists_every_scenario_and_runs_none(module, names, capsys):
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    listed = capsys.readouterr().out.split("scenarios:\n")[1].splitlines()
    assert [line.strip() for line in listed] == names


@pytest.mark.parametrize("module", [chaos, chaos_startup])
def test_a_filter_that_matches_nothing_is_a_usage_error(module, monkeypatch, capsys):
    ran: list[str] = []
    monkeypatch.setattr(chaos, "scenarios", lambda: fakes(ran))
    monkeypatch.setattr(chaos_startup, "SCENARIOS", fakes(ran))
    with pytest.raises(SystemExit) as exited:
        module.main(["three"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "no scenario matches 'three'" in error and "  one\n  two" in error
    assert ran == []


@pytest.mark.parametrize("module", [chaos, chaos_startup])
def test_names_filter_the_scenarios(module, monkeypatch, capsys):
    ran: list[str] = []
    monkeypatch.setattr(chaos, "scenarios", lambda: fakes(ran))
    monkeypatch.setattr(chaos_startup, "SCENARIOS", fakes(ran))
    assert module.main(["tw"]) == 0
    assert ran == ["two"]
