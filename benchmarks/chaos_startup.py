"""Start-up and configuration faults against the real Procfile server on 127.0.0.1
(issue 17 items 4, 6, 7, 8), with bounded counts and times.

``SCENARIOS`` is a list of ``(name, function)``: each function runs one fault, returns one
line saying what it measured, and raises ``AssertionError`` when the server misbehaved.
``benchmarks/chaos.py`` (``make chaos``) imports it; alone:

    python -m benchmarks.chaos_startup [NAME ...]  # one line per scenario; exit 1 on a failure

(``--help`` lists the scenarios; NAMEs filter them as in ``benchmarks.chaos``.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from app.config import DEFAULT_MODEL_DIR, EXIT_BAD_SETTING
from benchmarks.chaos import choose
from deploy.dyno import WebProcess, wait_for_workers_started

REVIEW = {"review": "The crew was friendly and the flight left on time."}
BAD_SETTINGS = (
    ("WEB_CONCURRENCY", "0"),
    ("WEB_CONCURRENCY", "abc"),
    ("WEB_CONCURRENCY", "-1"),
    ("GUNICORN_CMD_ARGS", "--threads 0"),
    ("LOG_LEVEL", "verbose"),
)
REFUSE_WITHIN = 20  # seconds: a bad setting stops the master before any model loads
MODEL_LOAD_WITHIN = 90  # seconds: a model folder is loaded (and refused) in a worker


@contextmanager
def server(scratch: Path, **env: str) -> Iterator[WebProcess]:
    process = WebProcess(env, log_path=scratch / f"server-{time.monotonic_ns()}.log")
    try:
        yield process
    finally:
        process.stop()


def log_lines(process: WebProcess) -> list[dict]:
    return [json.loads(x) for x in process.log().splitlines() if x.startswith("{")]


def workers(process: WebProcess) -> list[int]:
    pid = process.process.pid
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def exit_code(process: WebProcess, timeout: float) -> int:
    try:
        return process.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {timeout} s") from None


def bad_settings(scratch: Path) -> str:
    """Item 7: each bad value stops the server with exit 2 and one line naming it."""
    slowest = 0.0
    for name, value in BAD_SETTINGS:
        started = time.monotonic()
        with server(scratch, **{name: value}) as process:
            code = exit_code(process, REFUSE_WITHIN)
            lines = process.log().splitlines()
        slowest = max(slowest, time.monotonic() - started)
        assert code == EXIT_BAD_SETTING, f"{name}={value!r}: exit {code}"
        assert len(lines) == 1 and f"{name}={value!r}" in lines[0], f"{name}: {lines}"
    return (
        f"{len(BAD_SETTINGS)} bad settings refused with exit {EXIT_BAD_SETTING} and one line "
        f"each, the slowest in {slowest:.1f} s"
    )


def reordered_classes(scratch: Path) -> str:
    """Item 6: a metadata.json with its classes in another order is refused at load."""
    folder = shutil.copytree(DEFAULT_MODEL_DIR, scratch / "reordered")
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["classes"] = list(reversed(metadata["classes"]))
    (folder / "metadata.json").write_text(json.dumps(metadata))
    started = time.monotonic()
    with server(scratch, MODEL_DIR=str(folder), WEB_CONCURRENCY="1") as process:
        code = exit_code(process, MODEL_LOAD_WITHIN)
        failed = [x for x in log_lines(process) if x["message"].startswith("model failed")]
    assert code != 0, "the server exited 0"
    assert failed and str(folder) in failed[0]["message"], "no line naming the folder"
    assert "known answer 1 of" in failed[0]["message"], failed[0]["message"]
    return f"reordered classes refused at load: exit {code} in {time.monotonic() - started:.1f} s"


def deleted_metrics_folder(scratch: Path) -> str:
    """Item 4: the metrics folder deleted twice; scrapes, serving and a replaced worker."""
    folder = scratch / "metrics"
    with server(scratch, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(folder)) as process:
        process.wait_ready("/ready", timeout=MODEL_LOAD_WITHIN)
        wait_for_workers_started(process.url, 2, MODEL_LOAD_WITHIN)  # a booting one re-creates it
        shutil.rmtree(folder)
        statuses = [
            requests.get(process.url + "/metrics", timeout=10).status_code for _ in range(4)
        ]
        assert statuses[0] == 503 and set(statuses[1:]) == {200}, statuses
        shutil.rmtree(folder)
        victim = workers(process)[0]
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while time.monotonic() - killed < MODEL_LOAD_WITHIN:
            now = workers(process)
            assert process.process.poll() is None, "the server stopped"
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        process.wait_ready("/ready", timeout=MODEL_LOAD_WITHIN)
        replaced = time.monotonic() - killed
        ok = sum(
            requests.post(process.url + "/classify", json=REVIEW, timeout=10).status_code == 200
            for _ in range(20)
        )
        assert ok == 20, f"{20 - ok} of 20 requests failed"
        scrape = requests.get(process.url + "/metrics", timeout=10)
        if scrape.status_code == 503:  # the surviving worker found the second deletion
            scrape = requests.get(process.url + "/metrics", timeout=10)
        assert scrape.status_code == 200 and folder.is_dir()
        logged = sum("metrics folder was deleted" in x["message"] for x in log_lines(process))
    return (
        f"metrics folder deleted twice: scrapes {statuses}, worker replaced and ready in "
        f"{replaced:.1f} s, 20/20 served, {logged} log lines"
    )


def lone_surrogate(scratch: Path) -> str:
    """Item 8: lone surrogates in keys and texts are 400 invalid_json; workers stay."""
    bodies = (b'{"\\udc80": 1}', b'{"review": "ok", "\\ud800": 2}', b'{"review": "\\udfff"}')
    with server(scratch, WEB_CONCURRENCY="2") as process:
        process.wait_ready("/ready", timeout=MODEL_LOAD_WITHIN)
        before = sorted(workers(process))
        for body in bodies * 10:
            response = requests.post(
                process.url + "/classify",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert response.status_code == 400, (body, response.status_code)
            assert response.json()["error"]["code"] == "invalid_json"
        assert sorted(workers(process)) == before, "a worker was replaced"
    return f"{len(bodies) * 10} bodies with lone surrogates: 400 invalid_json, same workers"


SCENARIOS: list[tuple[str, Callable[[], str]]] = []
for _function in (bad_settings, reordered_classes, deleted_metrics_folder, lone_surrogate):

    def _run(function: Callable[[Path], str] = _function) -> str:
        with tempfile.TemporaryDirectory(prefix="chaos-startup-") as scratch:
            return function(Path(scratch))

    SCENARIOS.append((_function.__name__.replace("_", "-"), _run))


def main(argv: list[str]) -> int:
    failed = 0
    for name, scenario in choose(SCENARIOS, argv, "python -m benchmarks.chaos_startup", __doc__):
        started = time.monotonic()
        try:
            line = scenario()
            print(f"ok   {name}: {line} ({time.monotonic() - started:.0f} s)", flush=True)
        except Exception as error:  # one line per scenario, whatever went wrong
            failed += 1
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"FAIL {name}: {first}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
