"""Every example output in the README is what the shipped server gives today.

The README's ``curl`` examples are parsed and sent to the app with its default settings
(the model ``make serve`` serves); each shown output must match the real answer, numbers
being the real ones rounded to the digits shown. The batch example runs the real
``python -m app.batch`` on the input the README shows. When the model changes, these
tests say which README line to update and with what.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any

import pytest

from app.config import PROJECT_ROOT
from app.observability.logformat import json_formatter

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def blocks() -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(README)]


def curl_examples() -> list[tuple[str, str]]:
    """(curl command, the output the README shows for it): an output is a ``# {...}``
    comment after the command (same line or the next), or the ```json block right after."""
    found = []
    fenced = blocks()
    for index, (language, text) in enumerate(fenced):
        if language != "sh":
            continue
        lines = text.replace("\\\n", " ").splitlines()
        for number, line in enumerate(lines):
            if not line.startswith("curl ") or "localhost" not in line:
                continue
            command, _, comment = line.partition("   # ")
            following = lines[number + 1] if number + 1 < len(lines) else ""
            if comment.startswith("{"):
                found.append((command, comment.split("}: ")[0] + ("}" if "}: " in comment else "")))
            elif following.startswith("# {"):
                found.append((command, following.removeprefix("# ")))
            elif (
                number == len(lines) - 1
                and index + 1 < len(fenced)
                and fenced[index + 1][0] == "json"
            ):
                found.append((command, fenced[index + 1][1].strip()))
    return found


def request_of(command: str) -> tuple[str, str, dict[str, str], bytes | None]:
    """Method, path, headers and body of a ``curl`` command line."""
    words = shlex.split(command.split("  # ")[0])[1:]
    method, headers, body, path = "GET", {}, None, ""
    while words:
        word = words.pop(0)
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(": ")
            headers[name] = value
        elif word == "-d":
            body = words.pop(0).encode()
            method = "POST" if method == "GET" else method
        elif word.startswith("localhost:"):
            path = "/" + word.split("/", 1)[1]
    return method, path, headers, body


def decimals(text: str) -> int:
    """The decimal places a number is shown to: 2 for 0.95, 6 for 2.6e-05."""
    mantissa, _, exponent = text.lower().partition("e")
    shown = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return shown - int(exponent or 0)


def mismatch(shown: Any, actual: Any, where: str = "$", tolerance: float = 0.0) -> str | None:
    """Where ``shown`` is not ``actual`` (numbers: ``actual`` rounded as shown, give or
    take ``tolerance``), or None."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict) or list(shown) != list(actual):
            return f"{where}: shown {list(shown)}, the server gives {actual!r}"
        for key in shown:
            found = mismatch(shown[key], actual[key], f"{where}.{key}", tolerance)
            if found:
                return found
        return None
    if isinstance(shown, list):
        if not isinstance(actual, list) or len(shown) != len(actual):
            return f"{where}: {shown!r} != {actual!r}"
        for index, (a, b) in enumerate(zip(shown, actual, strict=True)):
            found = mismatch(a, b, f"{where}[{index}]", tolerance)
            if found:
                return found
        return None
    if isinstance(shown, Number) and not isinstance(shown, bool):
        digits = decimals(shown.text)
        if (
            not isinstance(actual, int | float)
            or abs(round(actual, digits) - round(shown.value, digits)) > tolerance + 1e-9
        ):
            return f"{where}: shown {shown.text}, the server gives {actual!r}"
        return None
    if isinstance(shown, str) and isinstance(actual, str) and _RUN_DEPENDENT.search(shown):
        shown, actual = (_RUN_DEPENDENT.sub("<time>", text) for text in (shown, actual))
    return None if shown == actual else f"{where}: shown {shown!r}, the server gives {actual!r}"


# What differs on every run, so a shown one is checked for its form only: a time (ISO
# 8601, to the millisecond, UTC), and the seconds in a next link's position.
_RUN_DEPENDENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|(?<=after=)\d+(\.\d+)?(?=_)")


class Number:
    """A number as the README writes it: its value and its digits."""

    def __init__(self, text: str):
        self.text, self.value = text, float(text)


def parse_shown(text: str) -> Any:
    return json.loads(text, parse_float=Number, parse_int=Number)


# Feedback needs answers recorded first: tests/test_feedback.py runs that section in order.
STATEFUL = ("/feedback", "/monitoring")
# Versions 3 and 4 are opt-in: each one's example (the request names it thus) runs
# against the settings the README gives for it.
# The most an example's probability moved where a bf16 folder computed in f32 (measured).
BF16_DIFFERENCE = 0.01
OPT_IN = {
    "label=accurate": {"MODEL_VERSIONS": "2,3", "MODEL_LABELS": "stable=2,accurate=3"},
    "version=4": {"MODEL_VERSIONS": "2,4"},
}
# API keys: the section's examples run against a server with a key.
KEYED = "### API keys"
EXAMPLES = [
    (command, shown)
    for command, shown in curl_examples()
    if not request_of(command)[1].startswith(STATEFUL)
    and not any(marker in command for marker in OPT_IN)
    and "Authorization" not in command
    and "api_key_required" not in shown
]


def section_commands(heading: str) -> list[tuple[str, str | None]]:
    """Every ``curl`` command of one README section, in order, with the ```json output
    shown right after its block (or None)."""
    start = README.index(heading)
    end = README.index("\n### ", start + len(heading))
    fenced = [(m.group(1), m.group(2)) for m in FENCE.finditer(README, start, end)]
    found = []
    for index, (language, text) in enumerate(fenced):
        if language != "sh":
            continue
        commands = [
            line for line in text.replace("\\\n", " ").splitlines() if line.startswith("curl ")
        ]
        for number, command in enumerate(commands):
            last = number == len(commands) - 1
            following = fenced[index + 1] if index + 1 < len(fenced) else ("", "")
            shown = following[1].strip() if last and following[0] == "json" else None
            found.append((command, shown))
    return found


def test_the_readme_has_examples_to_check():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=[c[:70] for c, _ in EXAMPLES])
def test_curl_example_output(client, command, shown):
    method, path, headers, body = request_of(command)
    response = client.open(path, method=method, headers=headers, data=body)
    actual = response.get_json()
    problem = mismatch(parse_shown(shown), actual)
    assert problem is None, f"README: {command}\n{problem}\nnow: {json.dumps(actual)}"


@pytest.mark.parametrize("marker", OPT_IN)
def test_opt_in_version_example_under_the_settings_shown(make_app, marker):
    [(command, shown)] = [(c, s) for c, s in curl_examples() if marker in c]
    [settings] = [
        line
        for language, text in blocks()
        if marker in text
        for line in text.splitlines()
        if "make serve" in line
    ]
    expected = " ".join(f"{name}={value}" for name, value in OPT_IN[marker].items())
    assert settings == f"{expected} make serve"
    app = make_app(**OPT_IN[marker])
    client = app.test_client()
    method, path, headers, body = request_of(command)
    actual = client.open(path, method=method, headers=headers, data=body).get_json()
    # The README shows what the folder's own precision computes. Version 4's is bf16, which
    # a CPU without it (an AMD EPYC without AVX-512) replaces by f32: 0.944 against 0.95.
    answering = app.extensions["models"].registry.version(actual["model"]["version"])
    own = answering.bundle.metadata.get("serving", {}).get("inference_precision", "f32")
    tolerance = 0.0 if answering.precision == own else BF16_DIFFERENCE
    problem = mismatch(parse_shown(shown), actual, tolerance=tolerance)
    assert problem is None, f"README: {command}\n{problem}\nnow: {json.dumps(actual)}"
    # The sentence right after the example: "Version 2 reads that review as negative."
    after = README[README.index(shown) + len(shown) :]
    sentence = after.split("\n\n")[1]
    assert sentence.startswith("Version 2 reads that review as negative.")
    if marker == "version=4" and tolerance:  # "a CPU without bf16 ... answers 0.94 (...)"
        said = re.search(r"answers ([\d.]+) \(negative ([\d.]+), neutral ([\d.]+)\)", sentence)
        got = [actual["score"], actual["scores"]["negative"], actual["scores"]["neutral"]]
        assert [float(x) for x in said.groups()] == [round(x, 2) for x in got], (sentence, got)
    stable = client.open(
        path.replace(marker, "version=2"), method=method, headers=headers, data=body
    ).get_json()
    assert stable["label"] == "negative", stable


def test_api_key_examples_with_the_key_shown(make_app):
    start = README.index(KEYED)
    assert "API_KEYS=$API_KEY make serve" in README[start:]
    key = "0123456789abcdef" * 4  # what `openssl rand -hex 32` prints
    client = make_app(API_KEYS=(key,)).test_client()
    examples = section_commands(KEYED)
    assert len(examples) == 2 and all(shown for _, shown in examples)
    for command, shown in examples:
        method, path, headers, body = request_of(command)
        headers = {name: value.replace("$API_KEY", key) for name, value in headers.items()}
        actual = client.open(path, method=method, headers=headers, data=body).get_json()
        problem = mismatch(parse_shown(shown), actual)
        assert problem is None, f"README: {command}\n{problem}\nnow: {json.dumps(actual)}"


@pytest.mark.slow
def test_batch_example(tmp_path):
    [example] = [text for language, text in blocks() if "python -m app.batch reviews" in text]
    [input_block] = [text for language, text in blocks() if text.startswith("$ cat reviews.jsonl")]
    (tmp_path / "reviews.jsonl").write_text(input_block.split("\n", 1)[1], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "app.batch", "reviews.jsonl", "scored.jsonl"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    shown = example.splitlines()
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    summary = re.compile(r"Scored (\d+) rows \((\d+) bad\) in [\d.]+ s: [\d,]+ rows/s with (.+)")
    expected_lines = shown[1 : shown.index("$ head -1 scored.jsonl")]
    assert len(stderr) == len(expected_lines), result.stderr
    for got, want in zip(stderr, expected_lines, strict=True):
        if want.startswith("Scored "):
            assert summary.fullmatch(got).groups() == summary.fullmatch(want).groups(), got
        else:
            assert got == want
    first = (tmp_path / "scored.jsonl").read_text(encoding="utf-8").splitlines()[0]
    problem = mismatch(parse_shown(shown[-1]), json.loads(first))
    assert problem is None, f"README batch example\n{problem}\nnow: {first}"


def test_request_log_example_is_a_real_line(client, caplog):
    """The README's request line has the keys of a real one, in its order, with values of
    the same types and the same values where they do not change from one request to the
    next, written as the formatter writes it (compact)."""
    [line] = [
        text.strip()
        for language, text in blocks()
        if language == "json" and '"logger":"app.request"' in text
    ]
    with caplog.at_level("INFO", logger="app.request"):
        client.post("/classify", json={"review": "great crew"})
    real = json.loads(json_formatter().format(caplog.records[-1]))
    shown = json.loads(line)
    assert list(shown) == list(real), f"README: {list(shown)}\nreal: {list(real)}"
    assert line == json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    changing = {"pid", "request_id", "duration_ms", "time"}
    for key, value in real.items():
        assert type(shown[key]) is type(value), key
        assert key in changing or shown[key] == value, (key, shown[key], value)
