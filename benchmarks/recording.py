"""Issue 19's budget in one run: single-review throughput with prediction recording on
against off, with ``ab -k -c 32`` (one body) and ``wrk -c 32`` (rotating texts), rounds
alternating between the two servers, the server CPU per request of each, and p99 at c=16
with recording on. ``python -m benchmarks.recording [--rounds N]``.

Both servers are the Procfile's command with two workers; the one that records writes to
a fresh SQLite file (the default store, empty as on a first deploy) unless ``DATABASE_URL``
is set; ``--prefill N`` first puts N records in it (the cost of an insert grows with the
table).

``--router-ids``: every wrk request carries a new random ``X-Request-ID``, as behind
Heroku's router (ab sends none: the server makes its own, time-ordered); with
``--in-process``, the records get random ids instead of the server's.

``--in-process`` measures the CPU of one record instead, without servers or load: the
request's part (``submit``), the writer thread's whole part, and the writer's steps one by
one (building the rows, the insert, the commit), into the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from app.feedback.store import PredictionRecord, PredictionStore, engine_url
from app.web.request_log import request_id_from
from benchmarks.bench import SERVICE_APP, Bench, Load, Server
from benchmarks.drivers import wrk_script
from benchmarks.reviews import rotating_reviews
from deploy.dyno import build_environment

ON, OFF = "recording on", "recording off"


def prefill(database_url: str, count: int, router_ids: bool) -> None:
    """``count`` records, with random request ids (as Heroku's router makes them) or the
    server's."""
    store = PredictionStore.from_url(engine_url(database_url, Path()))
    now = time.time()
    for start in range(0, count, 10_000):
        store.record(
            [
                PredictionRecord(request_id, 0, "1", "positive", 0.9, now)
                for request_id, *_ in answers(min(10_000, count - start), router_ids)
            ]
        )
    if store.dialect == "sqlite":  # else the server's writer would copy the WAL back
        with store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds ``thread`` has used so far (Linux)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def answers(count: int, router_ids: bool) -> list[tuple[str, str, list[str], list[float], float]]:
    """``count`` single-review answers as ``/classify`` submits them, with the ids the
    server makes (time-ordered) or random ones (``router_ids``, as Heroku's router)."""
    now = time.time()
    make = (lambda: uuid.uuid4().hex) if router_ids else (lambda: request_id_from(None))
    return [(make(), "1", ["positive"], [0.93], now) for _ in range(count)]


def in_process(database_url: str, records: int, batch: int, rate: float, router_ids: bool) -> None:
    """µs of CPU per record: the request's part, the writer's, and the writer's steps."""
    from app.feedback.recorder import PredictionRecorder, to_records
    from app.feedback.store import POSTGRESQL_COPY, sqlite_insert

    store = PredictionStore.from_url(engine_url(database_url, Path()))
    store.ensure_schema()
    dropped: list[int] = []
    recorder = PredictionRecorder(store, lambda _reason, count: dropped.append(count),
                                  max_pending=records + 1)  # fmt: skip
    queued = answers(records, router_ids)
    writer_before = thread_cpu(recorder._thread)
    spent = 0.0
    begun = time.monotonic()
    # At ``rate`` answers a second, in bursts of 10 ms: the writer's batches are the size
    # a worker that busy makes.
    burst = max(1, int(rate / 100))
    for start in range(0, records, burst):
        clock = time.thread_time()
        for request_id, version, labels, scores, _at in queued[start : start + burst]:
            recorder.submit(request_id, version, labels, scores)
        spent += time.thread_time() - clock
        time.sleep(max(0.0, begun + (start + burst) / rate - time.monotonic()))
    submit_us = spent / records * 1e6
    assert recorder.flush(timeout=600)
    writer_us = (thread_cpu(recorder._thread) - writer_before) / records * 1e6
    recorder.stop()
    steps: dict[str, list[float]] = {"rows": [], "insert": [], "commit": []}
    for _ in range(max(1, records // batch // 2)):
        queued = answers(batch, router_ids)
        clock = time.thread_time()
        rows, _markers = to_records(queued)
        built = time.thread_time()
        steps["rows"].append(built - clock)
        with store.engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            clock = time.thread_time()
            if store.dialect == "postgresql":
                with driver.cursor() as cursor, cursor.copy(POSTGRESQL_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                driver.execute("BEGIN IMMEDIATE")
                sqlite_insert(driver.cursor(), rows)
            inserted = time.thread_time()
            driver.commit()
            steps["insert"].append(inserted - clock)
            steps["commit"].append(time.thread_time() - inserted)
    store.close()
    per_record = {step: statistics.median(times) / batch * 1e6 for step, times in steps.items()}
    print(f"{database_url.split(':')[0]}, {records} records at {rate:g}/s after the prefill, "
          f"{len(dropped)} drops; CPU µs per record:")  # fmt: skip
    print(f"  request path (submit): {submit_us:.2f}")
    print(f"  writer thread, all of it: {writer_us:.1f}")
    print(f"  writer's steps, batches of {batch}: rows {per_record['rows']:.2f}, insert "
          f"{per_record['insert']:.1f}, commit {per_record['commit']:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8000, help="per ab run")
    parser.add_argument("--seconds", type=float, default=4, help="per wrk run")
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--router-ids", action="store_true")
    parser.add_argument("--in-process", type=int, metavar="RECORDS", default=0)
    parser.add_argument("--batch", type=int, default=500, help="rows a write (--in-process)")
    parser.add_argument("--rate", type=float, default=1000, help="answers/s (--in-process)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    database = os.environ.get("DATABASE_URL") or f"sqlite:///{work / 'predictions.sqlite3'}"
    try:
        if args.prefill:
            prefill(database, args.prefill, args.router_ids)
        if args.in_process:
            in_process(database, args.in_process, args.batch, args.rate, args.router_ids)
        else:
            compare(work, database, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the SQLite file: 100 MB with a prefill


def compare(work: Path, database: str, args: argparse.Namespace) -> None:
    """The two servers in alternating rounds (the module docstring)."""
    bench = Bench(work, quick=False)
    if args.router_ids:
        single = [json.dumps({"review": text}) for text in rotating_reviews()]
        bench.scripts["single", True] = wrk_script(single, work / "ids.lua", router_ids=True)
    loads = [Load("ab", 32, args.requests), Load("wrk", 32, args.seconds)]
    tails = [Load("ab", 16, args.requests // 2), Load("wrk", 16, args.seconds)]
    serving_bin = build_environment(fresh=False) / "bin"  # requirements.txt only
    servers: list[Server] = []
    try:
        servers.append(Server(ON, SERVICE_APP, {"DATABASE_URL": database}, serving_bin))
        servers.append(Server(OFF, SERVICE_APP, {"RECORD_PREDICTIONS": "0"}, serving_bin))
        for server in servers:  # warm-up
            bench.run(server, Load("ab", 16, 2000))
        rps: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        p99: dict[tuple[str, str], list[float]] = {}
        failed = 0
        for number in range(args.rounds):
            # Who goes first alternates too: a slow spell then hits both sides alike.
            ordered = servers if number % 2 == 0 else servers[::-1]
            for load in loads:
                for server in ordered:
                    result = bench.run(server, load)
                    rps.setdefault((load.tool, server.name), []).append(result.rps)
                    cpu.setdefault((load.tool, server.name), []).append(result.cpu_us)
                    failed += result.failed + result.non_2xx
            for tail in tails:
                for server in ordered:
                    result = bench.run(server, tail)
                    p99.setdefault((tail.tool, server.name), []).append(result.p99_ms)
                    failed += result.failed + result.non_2xx
        ids = "random in wrk (as a router sends)" if args.router_ids else "made by the server"
        print(f"{args.rounds} alternating rounds: ab -k -c 32 -n {args.requests} (one body), "
              f"wrk -c 32 -d {args.seconds:g}s (rotating texts); database {database.split(':')[0]}"
              f", prefilled {args.prefill}; request ids {ids}")  # fmt: skip
        for load in loads:
            on, off = rps[(load.tool, ON)], rps[(load.tool, OFF)]
            ratios = [a / b for a, b in zip(on, off, strict=True)]
            cpu_on, cpu_off = (statistics.median(cpu[(load.tool, s)]) for s in (ON, OFF))
            print(f"{load.tool}: req/s on {[round(r) for r in on]}, off {[round(r) for r in off]}")
            print(f"  per-round ratios {[round(r, 3) for r in ratios]}, "
                  f"median {statistics.median(ratios):.3f}; ratio of medians "
                  f"{statistics.median(on) / statistics.median(off):.3f}")  # fmt: skip
            print(f"  server CPU per request (median): on {cpu_on:.0f} µs, off {cpu_off:.0f} µs"
                  f", +{cpu_on - cpu_off:.0f} µs")  # fmt: skip
        for tail in tails:
            on, off = p99[(tail.tool, ON)], p99[(tail.tool, OFF)]
            print(f"p99 at c=16, {tail.tool}: on {[round(p, 1) for p in on]}, off "
                  f"{[round(p, 1) for p in off]}; medians {statistics.median(on):.1f} and "
                  f"{statistics.median(off):.1f} ms")  # fmt: skip
        print(f"failed or non-2xx: {failed}")
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
