"""Chaos scenarios around requests: hostile sockets, worker replacement, signals and
ports (issue 17 items 1, 2, 3 and 5). Each starts the real server (the Procfile's
command, deploy.dyno.WebProcess) on 127.0.0.1, runs bounded traffic and returns one
line with its figure, or raises AssertionError saying what broke. ``benchmarks.chaos``
runs them; tests/test_reliability.py runs each with shorter counts."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

from deploy.dyno import WebProcess, children

REVIEW = {"review": "The crew was friendly and the flight left on time."}
HEAVY = {"reviews": [("Lovely flight, terrible food, long delay. " * 120)[:5000]] * 64}
RECYCLING = "--max-requests 300 --max-requests-jitter 50"


@contextmanager
def server(folder: Path, **env: str) -> Iterator[WebProcess]:
    """A ready server (``/ready`` answers 200), stopped on the way out."""
    web = WebProcess(env, log_path=folder / f"server-{time.monotonic_ns()}.log")
    try:
        web.wait_ready("/ready", timeout=90)
        every_worker_ready(web)
        yield web
    finally:
        web.stop()


def every_worker_ready(web: WebProcess, timeout: float = 90) -> None:
    """Until 16 new connections in a row get ``/ready`` within 0.5 s: the kernel hashes
    each to one worker's socket at random, so both workers have loaded their model (one
    still loading would leave its share of connections waiting)."""
    started, in_a_row = time.monotonic(), 0
    while in_a_row < 16:
        assert time.monotonic() - started < timeout, "workers not ready"
        try:
            in_a_row = in_a_row + 1 if requests.get(f"{web.url}/ready", timeout=0.5).ok else 0
        except requests.RequestException:
            in_a_row = 0


class Tally:
    """A normal client's /classify requests, one every 10 ms, while the server is under
    stress: each one's latency and whether it failed."""

    def __init__(self, url: str):
        self.url = f"{url}/classify"
        self.latencies: list[float] = []
        self.failures = 0

    def send(self, post=requests.post) -> None:
        sent = time.perf_counter()
        try:
            ok = post(self.url, json=REVIEW, timeout=5).status_code == 200
        except requests.RequestException:
            ok = False
        self.latencies.append(time.perf_counter() - sent)
        self.failures += not ok
        time.sleep(0.01)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    def __str__(self) -> str:
        return (
            f"{self.failures} of {len(self.latencies)} /classify failed, p99 {self.p99_ms():.1f} ms"
        )


def ab(web: WebProcess, folder: Path, count: int, *, during=None, at: float = 1.5) -> dict:
    """``ab -r -k -c 32 -n count`` of one review; ``during(web)`` is called ``at`` seconds
    in. Complete, failed and non-2xx counts, and the seconds it took."""
    body = folder / "one.json"
    body.write_text(json.dumps(REVIEW))
    command = ["ab", "-q", "-r", "-k", "-s", "30", "-c", "32", "-n", str(count),
               "-p", str(body), "-T", "application/json", f"{web.url}/classify"]  # fmt: skip
    started = time.monotonic()
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if during is not None:
        time.sleep(at)
        assert run.poll() is None, "ab finished before the event: raise the count"
        during(web)
    output, _ = run.communicate(timeout=300)

    def number(label: str) -> int:
        match = re.search(rf"^{label}:\s+(\d+)", output, re.M)
        return int(match.group(1)) if match else 0

    return {
        "complete": number("Complete requests"),
        "failed": number("Failed requests"),
        "non_2xx": number("Non-2xx responses"),
        "seconds": time.monotonic() - started,
        "output": output,
    }


def request_lines(web: WebProcess) -> Iterator[dict]:
    """The app's request log lines (one JSON object per request)."""
    for line in web.log().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("message") == "request":
            yield record


def served_by(web: WebProcess) -> Counter:
    """Requests per worker pid, from the app's request log lines."""
    return Counter(record["pid"] for record in request_lines(web))


# --- item 1: slow and idle clients ------------------------------------------------------


def hostile_sockets(port: int, slow_headers: int, slow_bodies: int, idle: int) -> Iterator:
    """Open the hostile sockets; a generator so that the caller holds them while it runs.
    Slow ones then get one more byte a second from ``trickle``."""
    sockets = []
    for index in range(slow_headers + slow_bodies + idle):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if index < slow_headers:
            sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\n")
        elif index < slow_headers + slow_bodies:
            sock.sendall(
                b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
        sockets.append(sock)
    return sockets


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One byte a second on each slow socket (a header line or the body, never done)."""
    while not stop.wait(1.0):
        for sock in sockets:
            with suppress(OSError):
                sock.send(b"a")


def slow_and_idle_clients(
    seconds: float = 30,
    slow_headers: int = 128,
    slow_bodies: int = 128,
    idle: int = 500,
    p99_limit_ms: float = 100,
) -> str:
    """A normal client among slow and idle ones: 0 failures, p99 within ``p99_limit_ms``
    (issue 17's 100 ms in `make chaos`; the pytest run allows more, since timing belongs
    to the benchmarks and CI machines are shared: before the fix, requests timed out)."""
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        opened = hostile_sockets(web.port, slow_headers, slow_bodies, idle)
        slow = opened[: slow_headers + slow_bodies]
        stop = threading.Event()
        sender = threading.Thread(target=trickle, args=(slow, stop))
        sender.start()
        tally = Tally(web.url)
        session = requests.Session()
        try:
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                # Alternate a kept-alive connection and a new one: both must get through.
                tally.send(session.post if len(tally.latencies) % 2 else requests.post)
        finally:
            stop.set()
            sender.join()
            for sock in opened:
                sock.close()
        line = (
            f"{slow_headers} slow-header + {slow_bodies} slow-body + {idle} idle sockets held, "
            f"{seconds:g} s: {tally}"
        )
        assert tally.failures == 0 and tally.p99_ms() <= p99_limit_ms, line
        return line


def clients_that_do_not_read(clients: int = 8, pipelined: int = 200, timeout: float = 2) -> str:
    """Clients that pipeline requests for a 41 KB document and never read the answers:
    requests run on the worker's event loop (INLINE_MAX_BYTES), so a response the
    client's socket does not take must wait in the loop, not block it. Others keep being
    served, and each stuck connection is dropped REQUEST_READ_TIMEOUT after its last
    progress."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(Path(tmp), REQUEST_READ_TIMEOUT=str(timeout)) as web,
    ):
        stuck = []
        for _ in range(clients):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", web.port))
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * pipelined)
            stuck.append(sock)
        tally = Tally(web.url)
        try:
            started = time.monotonic()
            while time.monotonic() - started < timeout + 2:
                tally.send()
            dropped = 0
            for sock in stuck:  # by now the server has closed them: read to the end
                sock.settimeout(5)
                with suppress(OSError):
                    while sock.recv(1 << 20):
                        pass
                    dropped += 1
        finally:
            for sock in stuck:
                sock.close()
        line = (
            f"{clients} clients with {pipelined} pipelined requests each, never reading: "
            f"{tally}; {dropped} of {clients} stuck connections closed by the server"
        )
        assert tally.failures == 0 and tally.p99_ms() <= 1000 and dropped == clients, line
        return line


def read_timeout_answers_408(timeout: float = 2) -> str:
    """A request that does not arrive within REQUEST_READ_TIMEOUT gets 408 and a close."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(Path(tmp), REQUEST_READ_TIMEOUT=str(timeout)) as web,
    ):
        with socket.create_connection(("127.0.0.1", web.port), timeout=timeout + 5) as sock:
            sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            started = time.monotonic()
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            waited = time.monotonic() - started
        line = f"stalled body answered {reply[:12]!r} after {waited:.1f} s (timeout {timeout:g} s)"
        assert reply.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in reply, line
        assert b"\r\nConnection: close\r\n" in reply, reply
        assert timeout - 0.1 <= waited <= timeout + 1.5, line
        return line


# --- item 2: worker replacement and the spread of connections ---------------------------


def recycling_under_load(count: int = 3000) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        server(Path(tmp), GUNICORN_CMD_ARGS=RECYCLING) as web,
    ):
        result = ab(web, Path(tmp), count)
        recycled = len(served_by(web))
    line = (
        f"--max-requests 300, ab -r -k -c 32 -n {count}: {result['failed']} failed, "
        f"{result['non_2xx']} non-2xx, {recycled - 2} workers replaced, {result['seconds']:.1f} s"
    )
    assert result["complete"] == count and result["failed"] == result["non_2xx"] == 0, line
    assert recycled - 2 >= count // 400, f"{line}: too few recycles to prove anything"
    return line


def _signal_master(sig: int):
    return lambda web: os.kill(web.process.pid, sig)


def _kill_a_worker(web: WebProcess) -> None:
    os.kill(children(web.process.pid)[0], signal.SIGKILL)


def reload_under_load(count: int = 8000) -> str:
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        before = set(children(web.process.pid))
        result = ab(web, Path(tmp), count, during=_signal_master(signal.SIGHUP))
        after = set(children(web.process.pid))
    line = f"ab -r -k -c 32 -n {count}: {result['failed']} failed, all workers replaced"
    assert before and not before & after, f"{line}: the workers were not replaced"
    assert result["complete"] == count and result["failed"] == result["non_2xx"] == 0, line
    return line


def kill_9_under_load(count: int = 8000) -> str:
    """The requests in flight in the killed worker die with it (its connections close,
    as with any server); nothing else may fail: not the connections queued on its
    socket (the master holds it, the replacement serves them), not the other worker's.
    ab counts each lost request up to three times (a reset is a receive error, a poll
    error and a short length), so the bound is three per connection of its 32; the
    killed worker holds about half of them."""
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        result = ab(web, Path(tmp), count, during=_kill_a_worker)
        workers = len(children(web.process.pid))
        after = [requests.post(f"{web.url}/classify", json=REVIEW, timeout=5) for _ in range(50)]
    breakdown = re.search(r"\(Connect.*\)", result["output"])
    line = (
        f"ab -r -k -c 32 -n {count}: {result['failed']} failed "
        f"{breakdown.group(0) if breakdown else ''}, then 50 of 50 answered"
    )
    assert workers == 2, f"{line}: {workers} workers after"
    assert all(r.status_code == 200 for r in after), f"{line}: not all answered after"
    assert result["complete"] == count and result["non_2xx"] == 0, line
    assert result["failed"] <= 3 * 32, line
    return line


def keepalive_spread(runs: int = 3, count: int = 6000) -> str:
    """How ``ab -k -c 32``'s kept-alive connections sit on the two workers, run by run:
    the smaller worker's share of the connections they hold, sampled every 20 ms over
    the second half of each run (the first half is for the evening-out). The kernel
    hashes the 32 to the workers' sockets (13 and 19 or worse in 5 runs of 10 with the
    evening-out turned off); a worker holding clearly more closes one after a response
    now and then (listeners.SlotConnections), which leaves at worst 15 and 17, and 14
    while one reconnects. The smaller worker's share of the requests says little: the
    two workers share two cores with ab, and a worker with fewer connections answers each
    sooner (42-50% with the evening-out turned off; 39% once in CI with it on)."""
    medians = []
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        for _ in range(runs):
            samples: list[tuple[float, float]] = []
            done = threading.Event()
            sampler = threading.Thread(target=_sample_spread, args=(web, samples, done))
            sampler.start()
            try:
                result = ab(web, Path(tmp), count)
            finally:
                done.set()
                sampler.join()
            assert result["complete"] == count and result["failed"] == 0, result["output"]
            assert samples, "no sample with both workers holding ab's connections"
            middle = (samples[0][0] + samples[-1][0]) / 2
            settled = sorted(share for at, share in samples if at >= middle)
            medians.append(settled[len(settled) // 2])
    line = (
        f"ab -k -c 32 -n {count}, the smaller worker's median share of the connections "
        f"in the second half of each of {runs} runs: "
        + ", ".join(f"{share:.0%}" for share in medians)
    )
    assert min(medians) >= 14 / 32, line
    return line


def _sample_spread(web: WebProcess, samples: list, done: threading.Event) -> None:
    """Every 20 ms until ``done``: the time and the smaller worker's share of the
    connections, when both hold about all of ab's 32 (not at its start or end)."""
    while not done.wait(0.02):
        held = connections_by_worker(web)
        if len(held) == 2 and sum(held.values()) >= 28:
            samples.append((time.monotonic(), min(held.values()) / sum(held.values())))


def connections_by_worker(web: WebProcess) -> Counter:
    """The established TCP connections on the server's port that each worker holds: the
    sockets among its open files (/proc/PID/fd) that /proc/net/tcp lists as established
    (state 01) on that local port."""
    port = f":{int(web.url.rsplit(':', 1)[1]):04X}"
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[1].endswith(port) and fields[3] == "01":
                    established.add(fields[9])
    held = Counter()
    for pid in children(web.process.pid):
        with suppress(FileNotFoundError, ProcessLookupError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(FileNotFoundError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in established:
                        held[pid] += 1
    return held


def _workers_of(web: WebProcess, ids: list[str]) -> list[int]:
    """The pid of the worker that answered each request id, from the request log lines."""
    time.sleep(0.3)  # the last request lines
    pids = {record["request_id"]: record["pid"] for record in request_lines(web)}
    return [pids[request_id] for request_id in ids]


class _Client:
    """Requests on kept-alive connections (``http.client`` reconnects one the server
    closed), counting the answers and those that closed their connection."""

    def __init__(self):
        self.answered = self.closed = 0

    def classify(self, connection: http.client.HTTPConnection) -> str:
        """POST one review on ``connection``; the answer's request id."""
        connection.request(
            "POST", "/classify", json.dumps(REVIEW), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        self.answered += 1
        self.closed += response.getheader("Connection", "").lower() == "close"
        return response.getheader("X-Request-ID")


def uneven_connections_even_out(heavy: int = 10, light: int = 2, seconds: float = 2) -> str:
    """Kept-alive connections that landed unevenly (``heavy`` on one worker, ``light`` on
    the other, picked from 48 the kernel spread) are evened out: the busier worker closes
    one after a response ("Connection: close") now and then, and the client's new
    connection is spread again (listeners.SlotConnections). One client sends requests on
    them in turn; none may fail, and the workers count each close in
    ``sentiment_connections_evened_total``."""
    client = _Client()
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        busy, kept = _uneven(web, client, heavy, light)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for connection in kept:
                client.classify(connection)
        held = Counter(_workers_of(web, [client.classify(connection) for connection in kept]))
        for connection in kept:
            connection.close()
        metrics = requests.get(f"{web.url}/metrics", timeout=5).text
        counted = re.search(r"^sentiment_connections_evened_total (\S+)$", metrics, re.M)
    line = (
        f"{heavy} and {light} kept-alive connections: {held[busy]} and "
        f"{len(kept) - held[busy]} after {seconds:g} s; {client.closed} of {client.answered} "
        f"answers closed their connection, sentiment_connections_evened_total "
        f"{counted.group(1) if counted else None}"
    )
    assert abs(2 * held[busy] - len(kept)) <= 2, line
    assert client.closed > 0 and counted and float(counted.group(1)) == client.closed, line
    return line


def _uneven(web: WebProcess, client: _Client, heavy: int, light: int) -> tuple[int, list]:
    """``heavy`` kept-alive connections on one worker (its pid) and ``light`` on the
    other, picked from 48 the kernel spread; the others closed."""
    host, port = web.url.removeprefix("http://").split(":")
    opened = [http.client.HTTPConnection(host, int(port), timeout=5) for _ in range(48)]
    first = [client.classify(connection) for connection in opened]
    by_worker: dict[int, list] = {}
    for connection, pid in zip(opened, _workers_of(web, first), strict=True):
        if connection.sock is not None:  # not closed by its answer: still on that worker
            by_worker.setdefault(pid, []).append(connection)
    (busy, many), (_, few) = sorted(by_worker.items(), key=lambda item: -len(item[1]))
    assert len(many) >= heavy and len(few) >= light, f"spread {len(many)}/{len(few)}"
    kept = many[:heavy] + few[:light]
    for connection in opened:
        if connection not in kept:
            connection.close()
    return busy, kept


def pipelined_requests_are_not_cut(heavy: int = 10, light: int = 2, seconds: float = 2) -> str:
    """As ``uneven_connections_even_out``, with two requests pipelined on each connection
    at a time: a worker evens out its connections only after an answer with nothing sent
    behind it. A close after the first would leave the second sent and never answered,
    and a client may not resend a POST on its own (RFC 9112, 9.3.1); an outside probe
    saw 34 of 150 pipelining connections cut so."""
    client = _Client()
    pair = _classify_request() * 2
    answers = cut = closed = 0
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        _, kept = _uneven(web, client, heavy, light)
        sockets = [connection.sock for connection in kept]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for index, sock in enumerate(sockets):
                sock.sendall(pair)
                reader = sock.makefile("rb")
                for position in range(2):
                    status, headers = _read_response(reader)
                    assert status == 200, status
                    answers += 1
                    if headers.get("connection", "").lower() == "close":
                        cut += position == 0
                        closed += 1
                        sock.close()
                        sock = sockets[index] = socket.create_connection(
                            ("127.0.0.1", web.port), timeout=5
                        )
                        break
                reader.close()
        for sock in sockets:
            sock.close()
    line = (
        f"{heavy} and {light} kept-alive connections, two requests pipelined at a time, "
        f"{seconds:g} s: {answers} answered, {closed} connections closed to even out, "
        f"{cut} of them with a request unanswered"
    )
    assert cut == 0 and closed > 0, line
    return line


def _read_response(reader) -> tuple[int, dict[str, str]]:
    """One response from ``reader`` (a socket's file): its status and headers (names in
    lower case); its body (Content-Length) read and left."""
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    reader.read(int(headers.get("content-length", 0)))
    return status, headers


def _classify_request() -> bytes:
    body = json.dumps(REVIEW).encode()
    return (
        b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


# --- item 3: SIGTERM under load ---------------------------------------------------------


def sigterm_under_load(clients: int = 6, seconds: float = 2) -> str:
    """New connections with batches of 64 long reviews; SIGTERM to the master. Every
    request sent before the signal must be answered; exit 0 within the graceful timeout."""
    outcomes: list[tuple[float, float, bool]] = []
    stop = threading.Event()

    def client(url: str) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                ok = requests.post(url, json=HEAVY, timeout=25).status_code == 200
            except requests.RequestException:
                ok = False
            outcomes.append((sent, time.monotonic(), ok))
            if not ok:
                time.sleep(0.01)

    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as web:
        threads = [
            threading.Thread(target=client, args=(f"{web.url}/classify",)) for _ in range(clients)
        ]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        signalled = time.monotonic()
        web.process.send_signal(signal.SIGTERM)
        code = web.process.wait(timeout=30)
        took = time.monotonic() - signalled
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    in_flight = [o for o in outcomes if o[0] < signalled - 0.02 and o[1] > signalled]
    lost = [o for o in outcomes if o[0] < signalled - 0.02 and not o[2]]
    line = (
        f"{len(in_flight)} requests in flight, {len(lost)} of those sent "
        f"before it failed, exit {code} after {took:.1f} s"
    )
    assert in_flight, f"{line}: nothing was in flight, the run proves nothing"
    assert not lost and code == 0 and took < 20, line
    return line


# --- item 5: the port -------------------------------------------------------------------


def _start_expecting_failure(folder: Path, port: int) -> tuple[int | None, float, str]:
    """Start a server on ``port``; its exit code (None: still running after 10 s), the
    seconds it took and its log."""
    web = WebProcess(port=port, log_path=folder / f"refused-{time.monotonic_ns()}.log")
    try:
        code = web.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - web.started
    web.stop()
    return code, took, web.log()


def _error_lines(log: str) -> list[str]:
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    return [x["message"] for x in lines if x["level"] in ("ERROR", "CRITICAL")]


def second_server_on_the_port() -> str:
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as first:
        listening = [x for x in first.log().splitlines() if "Listening at" in x]
        assert listening and f"http://0.0.0.0:{first.port} " in listening[0], listening
        code, took, log = _start_expecting_failure(Path(tmp), first.port)
        errors = _error_lines(log)
        pids = set(children(first.process.pid))
        served = [requests.post(f"{first.url}/classify", json=REVIEW, timeout=5) for _ in range(50)]
        assert all(r.status_code == 200 for r in served), "the first server stopped serving"
        assert set(served_by(first)) <= pids | {first.process.pid}
    line = f"exit {code} after {took:.1f} s, the first served 50 of 50: {errors[:1]}"
    assert code not in (None, 0) and took < 10, line
    assert len(errors) == 1 and f":{first.port}" in errors[0], line
    return line


def port_held_by_another_program() -> str:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(8)
        port = other.getsockname()[1]
        code, took, log = _start_expecting_failure(Path(tmp), port)
        errors = _error_lines(log)
        boots = log.count("Booting worker")
    line = f"exit {code} after {took:.1f} s, {boots} worker boots: {errors[:1]}"
    assert code not in (None, 0) and took < 10 and boots == 0, line
    assert len(errors) == 1 and f":{port}" in errors[0], line
    return line


SCENARIOS = [
    ("slow and idle clients", slow_and_idle_clients),
    ("clients that do not read", clients_that_do_not_read),
    ("request read timeout", read_timeout_answers_408),
    ("worker recycling under load", recycling_under_load),
    ("kill -HUP under load", reload_under_load),
    ("kill -9 of a worker under load", kill_9_under_load),
    ("keep-alive spread", keepalive_spread),
    ("uneven keep-alive connections even out", uneven_connections_even_out),
    ("pipelined requests are not cut", pipelined_requests_are_not_cut),
    ("SIGTERM under load", sigterm_under_load),
    ("second server on the port", second_server_on_the_port),
    ("port held by another program", port_held_by_another_program),
]
