"""Gunicorn's gthread worker, except that a thread gets a connection only once a whole
request (headers and body) has arrived.

Gunicorn's own gthread worker hands every new connection to a thread, which then reads
the request with blocking calls: a client sending one byte a second, or connecting and
sending nothing, holds one of the two threads for as long as it likes, and a handful of
them stop the server. Here the worker's event loop reads every connection without
blocking, as nginx does in front of an app server, and submits it to the thread pool
with its request already in memory; the thread parses it with Gunicorn's parser as
before and never waits for the network. The loop also closes connections without
blocking (Gunicorn's graceful close waits up to 2 s in the loop), answers ``408`` when
a request does not arrive within ``read_timeout``, and on shutdown accepts what is
already queued on its listening socket before closing it, so no connection that
reached the server is reset.

A request that is whole in memory and at most ``inline_max_bytes`` long (every single
review and batch of 64; INLINE_MAX_BYTES) is not handed to a thread at all: the loop
runs it itself, as uvicorn does, and sends the response without blocking (what the
client's socket buffer does not take, the loop sends when it can). Each hand-over to a
thread and back costs ~60 futex calls and ~3 thread switches, and can wait up to 5 ms
for the GIL: that was our tail (BENCHMARKS.md, "Tail latency"). Anything else (a body
that is not in memory, a request the parser will refuse, a larger body) still goes to
the thread pool as in gthread, and so do the requests the app says may run long
(``QUICK_REQUESTS``: those that wait on the database; with a transformer loaded, its
explanations and larger bodies), so that the loop keeps serving the others meanwhile."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import os
import re
import resource
import selectors
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import orjson
import uuid_utils
from gunicorn import util
from gunicorn.arbiter import Arbiter
from gunicorn.http.body import LengthReader
from gunicorn.http.errors import (
    ConfigurationProblem,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.http.message import TOKEN_RE
from gunicorn.workers.gthread import (
    DEFAULT_WORKER_DATA_TIMEOUT,
    STOP_KEEPALIVE_LINGER,
    TConn,
    ThreadWorker,
)

from app.server import listeners
from app.server.requests_in import (
    BODY_LIMIT,
    HEADER_LIMIT,
    INLINE_CHUNKS,
    Progress,
    Scan,
    progress,
    whole_request,
)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# How much of a body a thread reads from the socket to keep its connection, beyond what
# the loop holds in memory (Gunicorn's own cap, gunicorn.http.parser._DRAIN_MAX_BYTES).
DRAIN_FROM_SOCKET = 64 * 1024
# How long a closing connection may keep sending before we stop reading it (Gunicorn's
# close_graceful uses the same 2 s and 64 KiB, blocking; here the loop does it).
CLOSE_LINGER = 2.0
CLOSE_DRAIN_BYTES = 64 * 1024
# Most connections accepted a wake-up of the listening socket (asyncio's default backlog).
ACCEPT_BATCH = 100
# Descriptors a worker asks for beyond its connections when it raises its open-file
# limit (_raise_file_limit); about 25 are open once its app has loaded (the listening
# sockets, pipes, log, model, metrics and database files).
FD_RESERVE = 128
# Descriptors kept free beyond those open once the app has loaded, for what a request may
# open (the database, a new metrics file): a worker holds at most its open-file limit
# less both in connections, else accept() fails with EMFILE first (the worker used to die).
FD_MARGIN = 32
# How long a worker stops accepting after accept() failed for want of descriptors or
# memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), having closed an idle connection: a
# listening socket it cannot accept from stays readable and would spin the loop
# (nginx waits 500 ms, its accept_mutex_delay).
ACCEPT_PAUSE = 0.1
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# Most idle connections a worker closes at once to make room (_evict_idle).
EVICT_BATCH = 32
# At most one connection closed to spread the load per this many seconds: a closed one
# counts until its client's reconnection lands, and closing more meanwhile overshoots.
SHED_INTERVAL = 0.05
# The app's extension (app/web/long_requests.py) that says whether a whole request is
# quick enough for the loop: a function of its target (path and query) and its body's
# size in bytes.
QUICK_REQUESTS = "quick_requests"


# At most this many bytes of requests still arriving, or waiting for a thread, are held by
# a worker. Each may hold its whole body (1 MiB + 64 KiB, requests_in.BODY_LIMIT) until
# its last byte, and then until a thread takes it: 300 connections that sent all of one
# but that byte grew a server by 355 MB in 0.2 s, 300 that sent all of it by 457 MB in
# 1 s. Past the budget, a connection whose request has passed LARGE_REQUEST bytes and is
# still arriving is answered 503 and closed; requests of up to 16 KiB are never refused.
# Every request still arriving counts, small ones too: 1,900 connections that each sent
# 64,999 bytes of a body, when those under 64 KiB were not counted, grew two workers by
# 125 MB (an outside probe).
BUFFER_BUDGET = 32 * 1024 * 1024
LARGE_REQUEST = 16 * 1024

# A turn of the loop (the requests that arrived in one poll) serves requests over
# LARGE_REQUEST on the loop for this long; later ones in the turn go to the threads, so
# that the loop polls again soon (new connections, /health, the master's heartbeat).
# Run back to back, 40 small gzipped batches (1.5 s each) or 100 batches of 128 KiB kept
# the loop from the heartbeat until Gunicorn killed both workers, and /health waited
# 30 s (an outside probe). Smaller requests, quick on any model the loop serves, stay.
INLINE_ROUND_SECONDS = 0.2
# A request that waited this long for a thread is first checked for its client: one that
# closed the connection meanwhile (its own timeout, a router's) is not computed for
# nobody. Of 64 clients sending version 3 its largest batches at once, 52 gave up after
# 45 s, and the threads computed their requests 90 s more while /monitoring and
# /feedback waited behind them (an outside probe). As nginx does, a client that closed
# its side after sending (a half-close) counts as gone.
ABANDONED_AFTER = 1.0


def _raise_file_limit(wanted: int) -> float:
    """Raise this process's soft open-file limit to ``wanted``, up to the hard limit (as
    Go's runtime and the JVM raise theirs, and nginx's ``worker_rlimit_nofile``); the
    soft limit then (infinity as a float)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    return float("inf") if soft == resource.RLIM_INFINITY else soft


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
    except OSError:  # not Linux
        return FD_RESERVE // 2


# Counts an answer of the worker's own (status, code) in the app's metrics, once the
# worker has loaded the app (load_wsgi); the master never answers.
_count_answer: Callable[[str, str], None] | None = None


# CORS_ORIGINS and the headers a browser app may read, once the worker has loaded the
# app (load_wsgi): the worker's own answers grant them too (_with_cors).
_cors: tuple[tuple[str, ...], str] | None = None
_ORIGIN = re.compile(rb"\r\norigin:[ \t]*([^\r\n]*?)[ \t]*\r\n", re.IGNORECASE)


def _with_cors(answer: bytes, request: bytes) -> bytes:
    """``answer`` (of the worker's own) with the CORS headers that the app would have
    added for the request's Origin (app/web/cors.py): without them a browser app on a
    listed origin saw a network error, not the 408 or 503 and its Retry-After (an
    outside probe's finding). Only the request's head is searched, and only when CORS
    is on."""
    if _cors is None:
        return answer
    origins, exposed = _cors
    end = request.find(b"\r\n\r\n")
    found = _ORIGIN.search(request if end < 0 else request[: end + 2])
    origin = found[1].decode("latin-1") if found else None
    if origin is None or ("*" not in origins and origin not in origins):
        return answer
    granted = "*" if "*" in origins else origin
    headers = f"Access-Control-Allow-Origin: {granted}\r\nVary: Origin\r\n"
    headers += f"Access-Control-Expose-Headers: {exposed}\r\n"
    return answer.replace(b"\r\n", b"\r\n" + headers.encode("latin-1"), 1)


def _error_response(status: bytes, code: str, message: str, headers: bytes = b"") -> bytes:
    """An answer of the worker's own, before the app has the request: the API's error
    shape and the headers of every API answer, a new request id among them (the
    request's own was not read). Counted in ``sentiment_http_worker_answers_total``."""
    if _count_answer is not None:
        _count_answer(status.split(b" ", 1)[0].decode(), code)
    body = orjson.dumps({"error": {"code": code, "message": message, "details": {}}})
    return (
        b"HTTP/1.1 %s\r\nDate: %s\r\nContent-Type: application/json\r\n%sConnection: close\r\n"
        b"X-Request-ID: %s\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        b"Content-Length: %d\r\n\r\n%s"
        % (
            status,
            util.http_date().encode(),  # RFC 9110 6.6.1: an origin server with a clock
            headers,
            uuid_utils.uuid7().hex.encode(),
            len(body),
            body,
        )
    )


# What the loop answers itself, where Gunicorn's parser would hold a thread waiting for
# more (a thread reads its socket without a time limit): one byte that cannot begin a
# request, headers that never end, a line ended by a bare LF (Gunicorn's chunk reader
# waits for CRLF), a chunked body that is mostly framing.
_REFUSALS = {
    Progress.NOT_HTTP: (
        b"400 Bad Request",
        "bad_request",
        "the request does not begin with a method: not HTTP/1.1 (TLS to a plain HTTP port?)",
    ),
    Progress.HEADERS_TOO_LARGE: (
        b"431 Request Header Fields Too Large",
        "request_header_fields_too_large",
        f"the request line and headers take over {HEADER_LIMIT} bytes",
    ),
    Progress.BARE_LF: (
        b"400 Bad Request",
        "bad_request",
        "a line of the request ends in LF alone, not CRLF (RFC 9112, 2.2)",
    ),
    Progress.FRAMING_TOO_LARGE: (
        b"413 Payload Too Large",
        "payload_too_large",
        "the chunked body has too many chunks for its size, or framing over twice its limit",
    ),
}


def _timeout_response(seconds: float) -> bytes:
    message = f"the request did not arrive within {seconds:g} s"
    return _error_response(b"408 Request Timeout", "request_timeout", message)


def _busy_response() -> bytes:
    return _error_response(
        b"503 Service Unavailable",
        "server_busy",
        "too many large requests are arriving at once; send it again later",
        b"Retry-After: 1\r\n",
    )


# Gunicorn wraps some of its parser's messages in a second title of their own: "Invalid
# HTTP Version 'Invalid HTTP Version: (2, 0)'". The message is the inner one.
_WRAPPED = re.compile(r"^Invalid (?:Request Line|Method|HTTP Version) '(Invalid .*)'$", re.S)


def _write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``, in the API's JSON error shape instead of an HTML
    page: Gunicorn's own refusals of what its parser will not read (a request line over
    4,094 bytes, 414 ``uri_too_long``; a header over its limits, 431; broken HTTP, 400
    ``bad_request``; a transfer coding other than chunked, 501 ``not_implemented``). The
    code is the reason phrase in the API's spelling."""
    if status_int == 501:  # Gunicorn's 501 keeps its 400's phrase, "Bad Request"
        reason = "Not Implemented"
    code = "internal_error" if status_int == 500 else reason.lower().replace(" ", "_")
    message = _WRAPPED.sub(r"\1", mesg) or "the server could not handle the request"
    util.write_nonblock(sock, _error_response(f"{status_int} {reason}".encode(), code, message))


class _UnshownHeader(InvalidHeader):
    """A header line refused whole, said without its text, in the answer and the log."""

    def __str__(self) -> str:
        return (
            f"Invalid HTTP header line of {len(self.hdr)} characters (not shown: it may hold a key)"
        )


class _MissingHost(InvalidHeader):
    def __str__(self) -> str:
        return "an HTTP/1.1 request needs a Host header (RFC 9112, 3.2)"


def _read_fields(req) -> bool:
    """The request's fields in one pass: whether its Connection header lists ``close``
    (RFC 9110 7.6.1: a list, perhaps over several lines; Gunicorn reads only its first
    line, whole: ``keep-alive, close`` kept the connection open, against RFC 9112 9.6).

    It also refuses what RFC 9112 refuses and Gunicorn's parser lets through:
    an HTTP/1.1 request without Host (3.2: 400), and a transfer coding other than
    chunked (6.1: 501; Gunicorn took ``gzip, chunked`` and gave the app the coded bytes as
    the body, undecoded). An ``Upgrade`` header is ignored (RFC 9110 7.8 allows it; no
    route speaks another protocol): Werkzeug's router answered a WebSocket upgrade on any
    route with 400."""
    close = host = upgrade = False
    for name, value in req.headers:
        if name == "CONNECTION":
            close = close or "close" in (t.strip(" \t").lower() for t in value.split(","))
        elif name == "HOST":
            host = True
        elif name == "UPGRADE":
            upgrade = True
        elif name == "TRANSFER-ENCODING" and any(
            t.strip(" \t").lower() != "chunked" for t in value.split(",")
        ):
            raise UnsupportedTransferCoding(value)
    if not host and req.version >= (1, 1):
        raise _MissingHost("HOST", req=req)
    if upgrade:
        req.headers = [(name, value) for name, value in req.headers if name != "UPGRADE"]
    return close


def _sent_more(req, conn: TConn) -> bool:
    """Whether the client has sent more behind this request (pipelining): closing after
    its answer would leave that unanswered, and a client may not resend a POST on its own
    (RFC 9112, 9.3.1). What the parser holds past the request's headers is its body and
    anything behind it; a chunked body's end is not known here: count it as more."""
    held = conn.parser.unreader.buf
    held.seek(0, os.SEEK_END)
    body = req.body.reader
    return not isinstance(body, LengthReader) or held.tell() > body.length


class _Outbox:
    """Stands in for the client's socket while a request runs on the loop: keeps what
    Gunicorn writes (status line and headers, then the body) so that the loop sends it
    all in one non-blocking ``sendmsg``, without joining it into one more copy. Closing
    and half-closing are left to the loop, after the response has gone."""

    __slots__ = ("chunks", "sock")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.chunks: list = []

    def sendall(self, data) -> None:
        self.chunks.append(data)

    def send(self, data) -> int:
        self.chunks.append(data)
        return len(data)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        file.seek(offset)
        data = file.read(count) if count else file.read()
        self.chunks.append(data)
        return len(data)

    def setblocking(self, _flag) -> None:
        pass

    def settimeout(self, _value) -> None:
        pass

    def shutdown(self, _how) -> None:
        pass

    def close(self) -> None:
        pass

    def recv(self, *_args) -> bytes:
        return b""  # gunicorn.util.close_graceful's drain: the loop does it later

    def __getattr__(self, name):
        return getattr(self.sock, name)


# glibc gives each thread that allocates its own heap (arena) and keeps what is freed
# there for it. After batches of every size and length to version 4 on the two threads,
# two workers held 52 MB more than with the same batches on the loop (510 against 458 MB
# in int8, twice each); malloc_trim after each request on a thread gives it back (462
# MB), for 0.01-0.5 ms of the thread, without the GIL (ctypes). (app.serving.predictor's
# _release_free_memory does the same once after loading; app.server may not import it.)
try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc: nothing to give back
    _malloc_trim = None


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client has closed its connection (or reset it): nothing is left to
    read and no more will come."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _send_some(sock: socket.socket, chunks: list) -> list | None:
    """Send what the socket takes now; return what is left ([] when all went), or None
    when the connection is broken."""
    if len(chunks) > 64:  # sendmsg takes at most IOV_MAX (1024) buffers
        chunks = [b"".join(chunks)]
    try:
        sent = sock.sendmsg(chunks)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        return None
    while chunks and sent >= len(chunks[0]):
        sent -= len(chunks[0])
        chunks.pop(0)
    if chunks and sent:
        chunks[0] = memoryview(chunks[0])[sent:]
    return chunks


class BufferingWorker(ThreadWorker):
    """gthread with request buffering in the event loop (see the module's docstring)."""

    #: Seconds from a request's first byte to its last; set by gunicorn.conf.py
    #: (REQUEST_READ_TIMEOUT). Heroku's router gives up on a request after 30 s anyway.
    read_timeout: float = 30.0
    # How often the loop checks that the metrics folder is the one this worker writes in,
    # and how long after the first slot's worker each other slot's leaves (below).
    metrics_check_seconds: float = 5.0
    metrics_stagger_seconds: float = 10.0
    #: Requests up to this many bytes (request line, headers and body) that are whole in
    #: memory run on the loop itself instead of a thread; 0: every request goes to a
    #: thread, as in gthread. Set by gunicorn.conf.py (INLINE_MAX_BYTES).
    inline_max_bytes: int = 0

    _quick = None
    # The app's MAX_CONTENT_LENGTH (None: no limit). A body announced (or arriving)
    # larger than _body_limit goes to a thread with its headers, unread.
    _max_content: int | None = None
    _body_limit = BODY_LIMIT
    _file_limit: float = float("inf")  # the soft open-file limit (init_process)

    def init_process(self) -> None:
        util.write_error = _write_error  # in this worker's process only, after the fork
        self._file_limit = _raise_file_limit(self.worker_connections + FD_RESERVE)
        super().init_process()

    def get_thread_pool(self):
        """Gunicorn's pool, with every thread started now, at boot: a thread the pool
        could not start mid-request (``RuntimeError: can't start new thread``, under a
        process limit such as ``ulimit -u``) killed the worker with every connection it
        held (an outside probe). Threads that cannot start leave a smaller pool, said in
        one warning line; none at all stops the server with one line."""
        pool = super().get_thread_pool()
        wanted, failure = self.cfg.threads, None
        # CPython's ThreadPoolExecutor (3.11, runtime.txt): _adjust_thread_count starts
        # one thread while none is idle and fewer than _max_workers run (in _threads); a
        # cap of those started means none is started later.
        try:
            for _ in range(wanted):
                pool._adjust_thread_count()
        except RuntimeError as error:
            failure = error
        started = len(pool._threads)
        pool._max_workers = started
        if failure is not None:
            if started == 0:
                self.log.critical(
                    "no thread of the worker could start (%s): raise the process limit "
                    "(ulimit -u) or lower --threads",
                    failure,
                )
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            self.log.warning(
                "%s of the worker's %s threads could start (%s): raise the process limit "
                "(ulimit -u) or lower --threads",
                started,
                wanted,
                failure,
            )
        # Explanations, each many model calls, run on a thread of their own (LONG_LANE):
        # two of them held both threads, and a transformer's single reviews, /feedback
        # and /monitoring waited 8-14 s behind them (an outside probe). A lane that cannot
        # start leaves them on the pool, as before.
        try:
            self._long_lane = ThreadPoolExecutor(1, thread_name_prefix="long-lane")
            self._long_lane._adjust_thread_count()
        except RuntimeError:
            self._long_lane = None
        return pool

    def _fit_connections_to_files(self) -> None:
        """Hold no more connections than the open-file limit leaves room for, once the
        app has loaded; with no room at all, stop the server with one line (exit 3): it
        would otherwise look healthy and hang every request (``ulimit -n 20``)."""
        from app.observability.metrics import critical_once

        kept = _open_descriptors() + FD_MARGIN
        room = self._file_limit - kept
        if room < 1:
            critical_once(
                self.log,
                "the open-file limit (%s, ulimit -n) leaves no room for connections: "
                "raise it to at least %s, or %s for worker_connections",
                self._file_limit,
                kept + 1,
                self.worker_connections + FD_RESERVE,
            )
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if room < self.worker_connections:
            self.log.warning(
                "the open-file limit (%s) leaves room for %s connections a worker, "
                "not worker_connections (%s)",
                self._file_limit,
                int(room),
                self.worker_connections,
            )
            self.worker_connections = int(room)

    def _check_metrics_folder(self, identity: tuple[int, int] | None) -> float:
        """Leave (gracefully; the master starts a replacement) once the metrics folder is
        no longer the one this worker opened its sample files in: deleted, or deleted and
        made again. prometheus_client keeps writing to the open files, so everything the
        worker counted since would never reach /metrics, and alerts would go quiet. The
        workers leave one slot at a time, so that the others serve meanwhile. When to
        check next."""
        from app.observability.metrics import MULTIPROC_DIR_ENV, folder_identity

        now = time.monotonic()
        if folder_identity() == identity:
            return now + self.metrics_check_seconds
        if self._leave_at is None:
            self._leave_at = now + self.metrics_stagger_seconds * getattr(self, "slot", 0)
            self.log.warning(
                "metrics folder replaced: this worker restarts so that its samples are seen",
                extra={"folder": os.environ.get(MULTIPROC_DIR_ENV), "worker_pid": self.pid},
            )
        if now >= self._leave_at:
            self.alive = False
        return now + 1.0

    def load_wsgi(self) -> None:
        """Load the app. A failure the app has already logged as its one CRITICAL line
        (``already_logged``: a model that cannot be served, app.web.models) exits with
        Gunicorn's worker-boot-error code, 3, after which the master stops, without
        Gunicorn's traceback and the message printed twice more. Anything else is
        Gunicorn's to report."""
        try:
            super().load_wsgi()
        except Exception as error:
            if getattr(error, "already_logged", False):
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
                from app.observability.metrics import critical_once

                critical_once(
                    self.log,
                    "too many open files to load the app (the open-file limit is %s, "
                    "ulimit -n): %s",
                    self._file_limit,
                    error,
                )
                sys.exit(Arbiter.WORKER_BOOT_ERROR)
            raise
        self._max_content = getattr(self.wsgi, "config", {}).get("MAX_CONTENT_LENGTH")
        if self._max_content is not None:
            self._body_limit = min(BODY_LIMIT, self._max_content)
        metrics = getattr(self.wsgi, "extensions", {}).get("metrics")  # app/web/metrics.py
        if metrics is not None:

            def count(status: str, code: str) -> None:
                metrics.child(metrics.worker_answers, status, code).inc()

            global _count_answer
            _count_answer = count
        global _cors
        _cors = getattr(self.wsgi, "extensions", {}).get("cors")  # app/web/cors.py

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Connections the loop watches, oldest first: reading a request, or closing.
        self.watched: dict[TConn, None] = {}
        self._next_expiry = 0.0
        # Connections whose whole request is in memory, to run on the loop in turn (a
        # queue, not recursion: a pipelined request is found while finishing the last).
        self._ready: collections.deque[TConn] = collections.deque()
        self._running_inline = False
        # Connections handed to a thread and not finished: each holds its request until
        # the thread takes it (counted in BUFFER_BUDGET with those still arriving).
        self._on_threads: dict[TConn, None] = {}
        # Bytes of the requests still arriving (watched): added as they are read, made
        # exact again by _expire twice a second, and before a connection is refused.
        self._arriving = 0
        self._inline_until = 0.0  # this turn of the loop (INLINE_ROUND_SECONDS)
        self._long_lane: ThreadPoolExecutor | None = None  # get_thread_pool starts it
        # When this worker leaves because the metrics folder was replaced (None: not so).
        self._leave_at: float | None = None

    # --- reading requests in the loop ------------------------------------------------

    def accept(self, listener) -> None:
        """Every connection queued on ``listener``, up to ACCEPT_BATCH and the worker's
        room, as asyncio's loop (100 a wake-up) and nginx's ``multi_accept`` do. One a
        wake-up, as gthread accepts, left a burst of new connections waiting a loop
        round each behind the requests in progress: the 32nd of wrk's connections to
        version 3 waited 2 s for its first answer (BENCHMARKS.md)."""
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                client, address = listener.accept()
            except OSError as error:
                if error.errno == errno.ECONNABORTED:
                    continue
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                if error.errno in _OUT_OF_DESCRIPTORS:
                    self._out_of_descriptors(error)
                    return
                raise
            self.nr_conns += 1
            self._read_request(TConn(self.cfg, client, address, listener.getsockname()))

    def _out_of_descriptors(self, error: OSError) -> None:
        """accept() failed for want of descriptors or memory (the file limit also counts
        what the process opens besides connections; ENFILE is the whole machine's): close
        idle connections (_evict_idle) and stop accepting for ACCEPT_PAUSE, instead of
        dying with every connection this worker holds."""
        now = time.monotonic()
        self._accept_paused_until = now + ACCEPT_PAUSE  # the loop stops accepting
        self._evict_idle()
        if now >= self._next_descriptor_warning:  # at most one line a minute
            self._next_descriptor_warning = now + 60
            self.log.warning(
                "accept() failed (%s) holding %s connections: idle ones are closed",
                errno.errorcode.get(error.errno, error.errno),
                self.nr_conns,
            )

    def _read_request(self, conn: TConn, data: bytes = b"", kept_alive: bool = False) -> None:
        """Watch ``conn`` until a whole request has arrived (``data``: bytes of it read
        already), then hand it to a thread. A new connection gets ``read_timeout`` for its
        first request, a kept-alive one ``keepalive`` until the next (as nginx's
        client_header_timeout and keepalive_timeout)."""
        now = time.monotonic()
        conn.buf = bytearray(data)
        conn.scan = Scan()
        conn.sent_continue = False
        conn.closing = False
        conn.outbox = None  # the rest of a response the client has not taken yet
        if data and self._maybe_hand_over(conn):
            return
        conn.deadline = now + (self.cfg.keepalive if kept_alive and not data else self.read_timeout)
        if not data and not self.alive:
            conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        if conn.sock.gettimeout() != 0.0:  # setblocking is a system call even when idle
            conn.sock.setblocking(False)
        self.watched[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if conn.closing:
            conn.drained += len(data)
            if not data or conn.drained > CLOSE_DRAIN_BYTES:
                self._forget(conn)
            return
        if not data:  # the client went away
            self._forget(conn)
            return
        if not conn.buf:
            conn.deadline = time.monotonic() + self.read_timeout
        conn.buf += data
        self._arriving += len(data)
        if self._maybe_hand_over(conn, watched=True) or len(conn.buf) <= LARGE_REQUEST:
            return
        waiting = sum(len(other.buf) for other in self._on_threads)
        if self._arriving + waiting > BUFFER_BUDGET:
            self._arriving = sum(len(other.buf) for other in self.watched)  # exact again
            if self._arriving + waiting > BUFFER_BUDGET:
                self._close(conn, _busy_response())

    def _maybe_hand_over(self, conn: TConn, watched: bool = False) -> bool:
        state = progress(conn.buf, self._body_limit, conn.scan)
        refusal = _REFUSALS.get(state)
        if refusal is not None:  # the parser would wait on a thread for what never comes
            self._close(conn, _error_response(*refusal))
            return True
        if state is Progress.COMPLETE:
            if watched:
                self.poller.unregister(conn.sock)
                del self.watched[conn]
            conn.data_ready = True  # gthread's handle() must not wait for data again
            self.enqueue_req(conn)
            return True
        if state is Progress.BODY_EXPECTS_CONTINUE and not conn.sent_continue:
            conn.sent_continue = True
            with contextlib.suppress(OSError):
                conn.sock.send(CONTINUE)  # 25 bytes into an empty send buffer
        return False

    def enqueue_req(self, conn: TConn) -> None:
        """Run a short, whole request on the loop; hand anything else to a thread."""
        if not self._runs_inline(conn) or (
            len(conn.buf) > LARGE_REQUEST and time.monotonic() > self._inline_until
        ):
            self._to_thread(conn)
            return
        self._ready.append(conn)
        if self._running_inline:
            return
        self._running_inline = True
        try:
            while self._ready:
                self._serve_inline(self._ready.popleft())
        finally:
            self._running_inline = False

    def _to_thread(self, conn: TConn) -> None:
        conn.queued_at = time.monotonic()
        self._on_threads[conn] = None
        lane = self._long_lane
        if lane is None or self._quick is None or not self._quick.long(conn.scan.target):
            super().enqueue_req(conn)
            return
        done = lane.submit(self.handle, conn)  # as gthread's enqueue_req, on the lane
        done.add_done_callback(
            lambda future: self.method_queue.defer(self.finish_request, conn, future)
        )

    def _runs_inline(self, conn: TConn) -> bool:
        """Whether a request is short, whole in memory, and one the app expects to answer
        quickly: the loop serves every connection of this worker, so a request that runs
        for seconds there stalls them all, new connections and ``/health`` included (as a
        body of thousands of chunks did: Gunicorn's reader costs chunks × size)."""
        buf = conn.buf
        if len(buf) > self.inline_max_bytes or conn.scan.count > INLINE_CHUNKS or conn.scan.coded:
            return False
        request = whole_request(buf, conn.scan)
        return request is not None and (self._quick is None or self._quick(*request))

    def _serve_inline(self, conn: TConn) -> None:
        """gthread's handle() on the loop: the parser reads only the bytes in memory,
        the response goes to an _Outbox, and the loop sends it without blocking."""
        if not conn.initialized:
            conn.init()
        real = conn.sock
        if real.gettimeout() != 0.0:  # never wait on the client here, whatever happens
            real.setblocking(False)
        conn.sock = outbox = _Outbox(real)
        try:
            keep_alive = bool(self.handle(conn))  # catches what the app raises
        finally:
            conn.sock = real
            left = _send_some(real, outbox.chunks)
            if left is None:
                self.nr_conns -= 1
                conn.close()
        if left is None:
            return
        if left:  # the client's socket buffer is full: send the rest when it can take it
            conn.outbox, conn.keep_alive = left, keep_alive
            conn.deadline = time.monotonic() + self.read_timeout
            self.watched[conn] = None
            self.poller.register(real, selectors.EVENT_WRITE, partial(self._on_writable, conn))
            return
        self._after_response(conn, keep_alive)

    def _on_writable(self, conn: TConn, _sock) -> None:
        left = _send_some(conn.sock, conn.outbox)
        if left is None:
            self._forget(conn)
        elif not left:
            self.poller.unregister(conn.sock)
            del self.watched[conn]
            conn.outbox = None
            self._after_response(conn, conn.keep_alive)
        else:
            conn.outbox = left

    def handle(self, conn: TConn):
        """Give the parser the bytes the loop read, then serve as gthread; in a thread,
        give the thread's free heap back to the OS afterwards (``_malloc_trim``)."""
        on_thread = not isinstance(conn.sock, _Outbox)
        waited = time.monotonic() - conn.queued_at if on_thread else 0.0
        if waited > ABANDONED_AFTER and _client_gone(conn.sock):
            self.log.info(
                "a client closed its connection after %.1f s waiting for a thread: "
                "its request was not served",
                waited,
            )
            return False  # closed by finish_request, as any answer that ends with close
        trim = _malloc_trim is not None and on_thread
        if not conn.initialized:
            conn.sock.setblocking(True)
            conn.init()
        if on_thread:  # what _keepalive_after and handle_request need to know
            conn.held = len(conn.buf) if whole_request(conn.buf, conn.scan) else None
        conn.parser.unreader.unread(bytes(conn.buf))
        conn.buf = bytearray()
        try:
            return super().handle(conn)
        finally:
            if trim:
                _malloc_trim(0)

    def _keepalive_after(self, conn: TConn, keepalive):
        """Drain what the app left of the body, as gthread does. On the loop the body is
        in memory: without gthread's socket timeout, whose settimeout() pair is two system
        calls a request. On a thread, a whole request's body is in memory too, and is
        drained whole: gthread stops at 64 KiB and closes, and the answer has said
        keep-alive (a 401, 404 or 415 to a batch of long reviews: the client's next
        request on the connection failed). A request not whole has been told to close."""
        if not keepalive:
            return False
        try:
            if not isinstance(conn.sock, _Outbox):
                deadline = time.monotonic() + DEFAULT_WORKER_DATA_TIMEOUT
                most = DRAIN_FROM_SOCKET + (conn.held or 0)
                return bool(conn.parser.finish_body(deadline=deadline, max_bytes=most))
            return bool(conn.parser.finish_body())
        except (BlockingIOError, InterruptedError):  # not in memory after all: close
            return False
        except ParseException:  # framing broken past what the app read: close, say no more
            return False

    def handle_request(self, req, conn):
        if conn.sent_continue:  # the loop has answered the Expect already
            req._expected_100_continue = False
        on_thread = not isinstance(conn.sock, _Outbox)
        if on_thread and conn.held is not None:
            # Its body is in memory: the thread only writes to the socket. A client that
            # has not taken the whole answer within read_timeout seconds (sendall's timeout
            # is for the whole answer, kilobytes on a thread) now frees the thread, where
            # gthread's sendall waited for good: six clients that pipelined requests and
            # never read held every thread (an outside probe).
            conn.sock.settimeout(self.read_timeout)
        if on_thread and conn.held is None:
            # Handed over before its body was all in memory: if the app does not read
            # the rest (a 413 for a body over MAX_CONTENT_LENGTH, a 401, a 404), Gunicorn
            # drains at most 64 KiB of it and closes. Say so ("Connection: close"), or a
            # client that trusted "keep-alive" sends its next request into a closed socket.
            req.must_close = True
            if self._refused_unread(req):  # no 100 Continue for a body refused unread
                req._expected_100_continue = False
        if _read_fields(req):  # asks to close
            req.must_close = True
        if req.version > (1, 1):  # RFC 9110 2.5: answer in the highest version we speak
            req.version = (1, 1)
        if not req.path:  # absolute-form with no path ("GET http://x"): RFC 9110 4.2.3
            req.path = "/"
        if self._holds_more() and not _sent_more(req, conn):
            req.must_close = True  # "Connection: close": the client's next one is spread anew
            metrics = getattr(self.wsgi, "extensions", {}).get("metrics")  # app/web/metrics.py
            if metrics is not None:
                metrics.connections_evened.inc()
        try:
            return super().handle_request(req, conn)
        except TimeoutError:  # the answer was not taken (above): close, one line
            self.log.warning(
                "a client did not take its answer within %g s: connection closed",
                self.read_timeout,
            )
            return False

    def _refused_unread(self, req) -> bool:
        """Whether the request's body is larger than the app takes (Flask's
        ``MAX_CONTENT_LENGTH``): the app refuses it unread."""
        limit = self._max_content
        length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), None)
        return limit is not None and length is not None and length.isdigit() and int(length) > limit

    def handle_error(self, req, client, addr, exc) -> None:
        # Gunicorn names a header it refuses by its name, an upper-case token once read;
        # anything else there is the client's whole line, which may hold a key
        # ("Authorization Bearer ..." without its colon).
        if isinstance(exc, InvalidHeader | InvalidHeaderName):
            name = str(exc.hdr)
            if not (TOKEN_RE.fullmatch(name) and name == name.upper()):
                exc = _UnshownHeader(exc.hdr, req=getattr(exc, "req", None))
        elif isinstance(exc, ConfigurationProblem):
            # Gunicorn's only one: a SCRIPT_NAME (a header, trusted from FORWARDED_ALLOW_IPS,
            # "*" by default, or the environment) that does not begin the path. The
            # client's request, not the server's setup: it was a 500 with the exception's
            # text, and with ACCESS_LOG=1 the worker died logging it (an outside probe).
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            with contextlib.suppress(OSError):
                _write_error(
                    client,
                    400,
                    "Bad Request",
                    "the path does not begin with SCRIPT_NAME, the prefix a proxy mounts "
                    "this server at: send the path under it, or no SCRIPT_NAME header",
                )
            return
        elif isinstance(exc, InvalidHTTPVersion) and isinstance(exc.version, tuple):
            # A well-formed version we do not speak (HTTP/2.0, HTTP/0.9): RFC 9110
            # 15.6.6's 505, where Gunicorn says 400 as to a garbled one.
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            major, minor = exc.version
            with contextlib.suppress(OSError):
                _write_error(
                    client,
                    505,
                    "HTTP Version Not Supported",
                    f"HTTP/{major}.{minor} is not supported here: send HTTP/1.1 or HTTP/1.0",
                )
            return
        super().handle_error(req, client, addr, exc)

    # --- spreading connections over the workers (listeners.SlotConnections) ---------

    _serving_in = None  # the slots' shared counts (listeners.SlotConnections), once serving
    _next_shed = 0.0
    _accept_paused_until = 0.0  # after accept() ran out of descriptors (ACCEPT_PAUSE)
    _next_descriptor_warning = 0.0

    @property
    def nr_conns(self) -> int:
        return self._nr_conns

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._nr_conns = value
        if self._serving_in is not None:
            self._serving_in.counts[self.slot] = value

    def _holds_more(self) -> bool:
        """Whether this worker holds clearly more connections than another serving
        worker: at least 4, and more than the fewest another slot holds by 2 and by a
        fifth of its own. A request waits for the ones ahead of it in its worker: with 12
        and 4 of wrk's 16 connections the p99 at c=16 was 14.2-14.8 ms, with 8 and 8
        10.4 ms (BENCHMARKS.md)."""
        mine = self._nr_conns
        if self._serving_in is None or mine < 4:
            return False
        now = time.monotonic()
        if now < self._next_shed:
            return False
        fewest = self._serving_in.fewest_elsewhere(self.slot)
        if fewest is None or mine - fewest < max(2, mine // 5):
            return False
        self._next_shed = now + SHED_INTERVAL
        return True

    def finish_request(self, conn: TConn, fs) -> None:
        """In the loop, when a thread is done: wait for the next request or close."""
        self._on_threads.pop(conn, None)
        try:
            keep_alive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            self.nr_conns -= 1
            conn.close()
            return
        self._after_response(conn, keep_alive)

    def _after_response(self, conn: TConn, keep_alive: bool) -> None:
        if keep_alive:
            # A body drain can read ahead into the next (pipelined) request.
            self._read_request(conn, conn.parser.unreader.take_buffered(), kept_alive=True)
        else:
            self._close(conn)

    # --- closing and timeouts --------------------------------------------------------

    def _close(self, conn: TConn, last_words: bytes = b"") -> None:
        """Close without blocking the loop: send FIN, then read and drop what the client
        still sends, so that the kernel does not answer it with a reset (RFC 9112 9.6)."""
        try:
            conn.sock.setblocking(False)
            if last_words:
                conn.sock.send(_with_cors(last_words, conn.buf))
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:  # reset by the client: unwatched too, or the next connection
            self._forget(conn)  # given its descriptor could not be registered (KeyError)
            return
        conn.closing, conn.drained = True, 0
        conn.buf = bytearray()  # what arrived of a request it will never answer
        conn.deadline = time.monotonic() + CLOSE_LINGER
        if conn not in self.watched:
            self.watched[conn] = None
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _forget(self, conn: TConn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.watched.pop(conn, None)
        self.nr_conns -= 1
        conn.close()

    def _expire(self, force: bool = False) -> None:
        """Time out what has waited too long (at most twice a second: it scans all)."""
        now = time.monotonic()
        if not force and now < self._next_expiry:
            return
        self._next_expiry = now + 0.5
        expired, self._arriving = [], 0  # the bytes arriving, counted exactly in the scan
        for conn in self.watched:
            self._arriving += len(conn.buf)
            if conn.deadline <= now:
                expired.append(conn)
        for conn in expired:
            if conn.closing or conn.outbox is not None:  # gone, or not reading its response
                self._forget(conn)
            elif conn.buf:  # part of a request, too slowly
                self._close(conn, _timeout_response(self.read_timeout))
            else:  # idle: a FIN, which clients take as "reconnect and send again"
                self._close(conn)

    def _evict_idle(self) -> None:
        """At worker_connections, close idle connections (no request begun, no response
        pending) to make room for new ones, the longest-idle first: an eighth of them, 1
        to EVICT_BATCH, as nginx drains its reusable connections. At once, not lingering
        as _close does: an idle one has nothing unread, and lingering it kept its place
        and descriptor 2 s, so a worker at its limit took in about one connection a
        second while hundreds queued (a fresh request waited over 60 s)."""
        idle = [c for c in self.watched if not c.closing and not c.buf and c.outbox is None]
        for conn in idle[: max(1, min(EVICT_BATCH, len(idle) // 8))]:
            self._forget(conn)

    # --- the loop --------------------------------------------------------------------

    def run(self) -> None:
        self.poller.register(
            self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks
        )
        self._fit_connections_to_files()
        self.set_accept_enabled(True)
        # Set by the master's pre_fork (gunicorn.conf.py); its count is compared from now.
        self._serving_in = getattr(self, "slot_connections", None)
        # The app's judgement of which requests are quick (target, body size), where it
        # serves some that are not (app/web/long_requests.py); else None.
        self._quick = getattr(self.wsgi, "extensions", {}).get(QUICK_REQUESTS)
        self.nr_conns = self._nr_conns
        # After the fork: the master does not import prometheus_client, the worker's app has.
        from app.observability.metrics import folder_identity

        metrics_folder = folder_identity()
        check_metrics_at = time.monotonic() + self.metrics_check_seconds
        while self.alive:
            self.notify()
            now = time.monotonic()
            self._inline_until = now + INLINE_ROUND_SECONDS
            if now >= check_metrics_at:
                check_metrics_at = self._check_metrics_folder(metrics_folder)
            if self.nr_conns >= self.worker_connections:
                self._evict_idle()
            paused = self._accept_paused_until - now
            can_accept = self.nr_conns < self.worker_connections and paused <= 0
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=min(0.5, paused) if paused > 0 else 0.5)
            if not self.is_parent_alive():
                break
            self._expire()

        if self._serving_in is not None:  # leaving: the others no longer compare with it
            self._serving_in.counts[self.slot] = listeners.NOT_SERVING
            self._serving_in = None
        self._stop_listening()
        # Idle connections get STOP_KEEPALIVE_LINGER for a request already on its way;
        # requests being read and served get the graceful timeout.
        linger = time.monotonic() + STOP_KEEPALIVE_LINGER
        for conn in self.watched:
            if not conn.closing and not conn.buf and conn.outbox is None:
                conn.deadline = min(conn.deadline, linger)
        graceful = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < graceful:
            self.notify()
            self.wait_for_and_dispatch_events(timeout=0.1)
            self._expire(force=True)

        for conn in list(self.watched):
            self._forget(conn)
        self.tpool.shutdown(wait=False)
        if self._long_lane is not None:
            self._long_lane.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()

    def _stop_listening(self) -> None:
        """Accept every connection already queued on our sockets, then close them. The
        master holds the same sockets (app.server.listeners): during a recycle or a
        reload the next worker takes over the queue; on shutdown the master has closed
        its copies first, so the kernel refuses new connections from here on."""
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.setblocking(False)
            for _ in range(self.worker_connections):
                try:
                    client, address = listener.accept()
                except OSError:
                    break
                self.nr_conns += 1
                self._read_request(TConn(self.cfg, client, address, listener.getsockname()))
            listener.close()
