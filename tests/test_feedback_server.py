"""Issue 19 against real Gunicorn servers: records from every worker reach one database,
feedback works whichever worker answers, and a PostgreSQL that stops under load costs
records (counted), never a /classify."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from test_reliability import Load

pytestmark = pytest.mark.slow

REVIEWS = ["Secret-ish review: the crew on 4411 was lovely", "Lost bag on 4411, awful"]
BIG_BATCH = {"reviews": [("The crew on 4411 was lovely, the food awful. " * 50)[:2100]] * 64}


def wait_for_predictions(url: str, count: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    report = {}
    while time.monotonic() < deadline:
        response = requests.get(f"{url}/monitoring", timeout=5)
        if response.status_code == 200:
            report = response.json()
            if sum(v["predictions"] for v in report["versions"]) >= count:
                return report
        time.sleep(0.2)
    raise AssertionError(f"not {count} predictions in {timeout} s: {report}")


def dropped(url: str, reason: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    found = re.search(
        rf'^sentiment_prediction_records_dropped_total{{reason="{reason}"}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_two_workers_record_into_one_sqlite_file_and_take_feedback(start_server, tmp_path):
    database = tmp_path / "shared.sqlite3"
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=f"sqlite:///{database}")
    server.wait_ready()
    session = requests.Session()
    ids = []
    for number in range(120):
        request_id = f"server-test-{number:020d}"
        body = {"reviews": REVIEWS} if number % 2 else {"review": REVIEWS[0]}
        # New connections, so that both workers answer (each has its own socket).
        response = requests.post(f"{server.url}/classify", json=body,
                                 headers={"X-Request-ID": request_id}, timeout=5)  # fmt: skip
        assert response.status_code == 200
        ids.append((request_id, len(response.json().get("predictions", [0]))))
    report = wait_for_predictions(server.url, 180)
    assert sum(v["predictions"] for v in report["versions"]) == 180
    for request_id, size in ids:
        items = [{"request_id": request_id, "index": i, "label": "positive"} for i in range(size)]
        response = session.post(f"{server.url}/feedback", json=items, timeout=5)
        assert response.status_code == 200, response.text
    report = requests.get(f"{server.url}/monitoring", timeout=5).json()
    assert sum(v["feedback"] for v in report["versions"]) == 180
    # The texts are nowhere in the files (the database, its WAL and shared memory).
    for path in Path(tmp_path).glob("shared.sqlite3*"):
        data = path.read_bytes()
        assert b"Secret-ish" not in data and b"awful" not in data, path
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    assert re.search(r'sentiment_feedback_total\{correct="true",version="2"\} \d', text)
    assert dropped(server.url, "database_error") == dropped(server.url, "queue_full") == 0


def test_feedback_right_after_its_answer_finds_it_on_any_worker(start_server, tmp_path):
    """A worker writes its answers up to half a second after them. Feedback sent at once,
    on a new connection (as through a router), reaches the other worker about half the
    time: it answered 404 until the other worker had written. Now it waits for that."""
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=f"sqlite:///{tmp_path / 'db'}")
    server.wait_ready()
    session = requests.Session()  # one worker answers: the feedback goes to either
    statuses = []
    for _ in range(20):
        answer = session.post(f"{server.url}/classify", json={"review": REVIEWS[0]}, timeout=5)
        body = {"request_id": answer.headers["X-Request-ID"], "label": "positive"}
        statuses.append(requests.post(f"{server.url}/feedback", json=body, timeout=5).status_code)
    assert statuses == [200] * 20
    # Eight clients at once: a worker waits for one of them at a time (a thread each); the
    # others hear to retry, and find theirs when they do.
    pending: list[dict] = []

    def client() -> None:
        with requests.Session() as kept:
            for _ in range(5):
                answer = kept.post(f"{server.url}/classify", json={"review": REVIEWS[0]}, timeout=5)
                body = {"request_id": answer.headers["X-Request-ID"], "label": "positive"}
                given = requests.post(f"{server.url}/feedback", json=body, timeout=5)
                if given.status_code == 503:
                    assert given.headers["Retry-After"] == "1"
                    assert given.json()["error"]["code"] == "prediction_pending"
                    pending.append(body)
                else:
                    assert given.status_code == 200, given.text

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    time.sleep(1)
    for body in pending:
        assert requests.post(f"{server.url}/feedback", json=body, timeout=5).status_code == 200
    # An answer that does not exist is still a 404, after the wait.
    body = {"request_id": "never-answered-000000001", "label": "positive"}
    started = time.monotonic()
    answer = requests.post(f"{server.url}/feedback", json=body, timeout=5)
    assert answer.status_code == 404 and time.monotonic() - started < 3


def test_postgresql_stopped_under_load(start_server, postgres_server):
    """Stop PostgreSQL while 4 clients classify: 0 failed requests, records dropped and
    counted, and recording resumes once it is back."""
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=postgres_server.url())
    server.wait_ready()
    url = f"{server.url}/classify"
    with Load(url, {"review": REVIEWS[0]}, threads=4) as load:
        time.sleep(3)
        postgres_server.stop()
        stopped_at = time.monotonic()
        time.sleep(4)
        for route in ("/monitoring", "/feedback"):
            answer = requests.get(f"{server.url}{route}", timeout=5)
            assert answer.status_code == 503, route
            assert answer.json()["error"]["code"] == "database_unavailable", route
        postgres_server.start()
        time.sleep(3)
    outcomes = load.outcomes
    assert len(outcomes) > 100
    failed = [o for o in outcomes if not o[2]]
    assert failed == [], f"{len(failed)} of {len(outcomes)} failed"
    during = [o for o in outcomes if stopped_at <= o[0] <= stopped_at + 4]
    assert during and max(done - sent for sent, done, _ in during) < 1.0
    assert dropped(server.url, "database_error") > 0
    # Recording resumes: a new answer is recorded and takes feedback.
    request_id = "after-restart-000000000001"
    response = requests.post(
        url, json={"review": REVIEWS[1]}, headers={"X-Request-ID": request_id}, timeout=5
    )
    assert response.status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = {"request_id": request_id, "label": "negative"}
        given = requests.post(f"{server.url}/feedback", json=body, timeout=5)
        if given.status_code == 200:
            break
        time.sleep(0.3)
    assert given.status_code == 200, given.text
    # The labelled answer reads back from the database that came back.
    [read] = requests.get(f"{server.url}/feedback", timeout=5).json()["feedback"]
    assert (read["request_id"], read["label"]) == (request_id, "negative")


def test_a_postgresql_that_stops_answering_delays_no_classify(start_server, postgres_server):
    """A database that takes connections and never answers (its processes paused) held
    each /feedback and /monitoring, and while they ran on a worker's event loop every
    other request of that worker, until Gunicorn killed both workers for their silence
    (26 s). They run on the threads now, one a worker at a time: single reviews keep
    their milliseconds, a batch too large for the loop still finds a free thread, and
    the requests for the database answer 503 or, once it is back, as usual."""
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=postgres_server.url())
    server.wait_ready()
    assert requests.get(f"{server.url}/monitoring", timeout=5).status_code == 200
    statuses: list[int] = []

    def wait_on_the_database(number: int) -> None:
        if number % 2:
            body = {"request_id": f"never-answered-{number:011d}", "label": "positive"}
            answer = requests.post(f"{server.url}/feedback", json=body, timeout=60)
        else:
            answer = requests.get(f"{server.url}/monitoring", timeout=60)
        statuses.append(answer.status_code)

    waiting = [threading.Thread(target=wait_on_the_database, args=(n,)) for n in range(6)]
    postgres_server.pause()
    try:
        for thread in waiting:
            thread.start()
        time.sleep(0.5)
        url = f"{server.url}/classify"
        with Load(url, {"review": REVIEWS[0]}, threads=4, keep_alive=False) as load:
            time.sleep(2)
            for _ in range(4):  # 135 kB, over INLINE_MAX_BYTES: for a thread of either worker
                sent = time.monotonic()
                answer = requests.post(url, json=BIG_BATCH, timeout=30)
                assert answer.status_code == 200 and time.monotonic() - sent < 2
            time.sleep(6)
    finally:
        postgres_server.resume()
    for thread in waiting:
        thread.join(timeout=60)
    outcomes = load.outcomes
    slowest = max(done - sent for sent, done, _ in outcomes)
    assert len(outcomes) > 100 and all(ok for _, _, ok in outcomes), len(outcomes)
    assert slowest < 1.0, f"slowest /classify {slowest:.2f} s"
    assert len(statuses) == 6 and set(statuses) <= {200, 404, 503}, statuses
    assert 503 in statuses, statuses
    assert "WORKER TIMEOUT" not in server.log()


def test_a_stopping_worker_writes_the_records_still_queued(start_server, tmp_path):
    """SIGTERM (a deploy, a restart) right after a burst of answers: each worker writes
    what its queue still holds before it exits, so no answer goes unrecorded."""
    database = tmp_path / "stopping.sqlite3"
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=f"sqlite:///{database}")
    server.wait_ready()
    wait_for_predictions(server.url, 0)  # the schema exists before the burst
    answered = 0
    for _ in range(60):  # a connection each, closed: both workers answer, none lingers
        response = requests.post(f"{server.url}/classify", json={"review": REVIEWS[0]}, timeout=5)
        answered += response.status_code == 200
    assert answered == 60
    server.process.send_signal(signal.SIGTERM)  # as Heroku stops a dyno
    assert server.process.wait(30) == 0
    with sqlite3.connect(database) as connection:
        [recorded] = connection.execute("SELECT count(*) FROM predictions").fetchone()
    assert recorded == answered, (recorded, answered)


@pytest.mark.parametrize("deleted", ["file", "folder"])
def test_a_sqlite_file_deleted_while_serving_is_made_anew(start_server, tmp_path, deleted):
    """Deleting the SQLite file (and its -wal, -shm) while serving: the workers went on
    writing into the deleted file their connections held open, with no line in the log
    and nothing counted dropped, and /monitoring reported answers that were in no file.
    Now each worker sees it within FILE_CHECK_SECONDS, says so in one line, and records
    into a new file, in a new folder if its folder went too (``instance/`` deleted: it
    said so and recorded nothing until a restart, an outside probe)."""
    database = tmp_path / "db" / "deleted.sqlite3"
    server = start_server(WEB_CONCURRENCY="2", DATABASE_URL=f"sqlite:///{database}")
    server.wait_ready()

    def answer(count: int) -> None:
        for _ in range(count):  # new connections: both workers answer
            response = requests.post(
                f"{server.url}/classify", json={"review": REVIEWS[0]}, timeout=5
            )
            assert response.status_code == 200

    answer(20)
    wait_for_predictions(server.url, 20)
    if deleted == "folder":
        shutil.rmtree(database.parent)
    for path in database.parent.glob("deleted.sqlite3*"):
        path.unlink()
    time.sleep(6)  # FILE_CHECK_SECONDS, and a margin
    answer(20)
    report = wait_for_predictions(server.url, 20)
    assert sum(v["predictions"] for v in report["versions"]) == 20  # those after the deletion
    with sqlite3.connect(database) as connection:
        [(count,)] = connection.execute("SELECT count(*) FROM predictions").fetchall()
    assert count == 20
    lines = server.log_path.read_text().count("was deleted or replaced while serving")
    assert lines == 2  # once a worker


def test_a_full_database_disk_is_logged_as_sqlite_names_it(start_server, small_disk):
    """An outside probe: with the SQLite file on a full disk every answer was served and
    its records counted dropped, as they should be, but the log said only "the database
    failed (OperationalError)", as for a locked or a corrupt file. The lines now quote
    SQLite's reason, and so does the line of a feedback refused meanwhile (503)."""
    server = start_server(
        WEB_CONCURRENCY="1", DATABASE_URL=f"sqlite:///{small_disk / 'db.sqlite3'}"
    )
    server.wait_ready()
    session = requests.Session()
    before = "before-the-disk-filled-0001"
    response = session.post(f"{server.url}/classify", json={"review": REVIEWS[0]},
                            headers={"X-Request-ID": before}, timeout=5)  # fmt: skip
    assert response.status_code == 200
    wait_for_predictions(server.url, 1)
    subprocess.run(["dd", "if=/dev/zero", f"of={small_disk / 'filler'}", "bs=4k"],
                   capture_output=True)  # fmt: skip
    assert shutil.disk_usage(small_disk).free < 4096
    for _ in range(40):
        response = session.post(f"{server.url}/classify", json={"reviews": REVIEWS * 32}, timeout=5)
        assert response.status_code == 200
    deadline = time.monotonic() + 10
    while dropped(server.url, "database_error") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dropped(server.url, "database_error") > 0
    given = session.post(f"{server.url}/feedback", timeout=5,
                         json={"request_id": before, "label": "positive"})  # fmt: skip
    assert given.status_code == 503, given.text
    assert server.stop() == 0

    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    reason = "(OperationalError: database or disk is full)"
    recorder = [x for x in lines if x["message"].startswith("prediction records dropped")]
    assert recorder and {x["message"] for x in recorder} == {
        f"prediction records dropped: the database failed {reason}"
    }
    refused = [x["message"] for x in lines if x["message"].startswith("feedback refused")]
    assert refused == [f"feedback refused: the database is unavailable {reason}"]
