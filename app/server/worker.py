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
reached the server is reset."""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from functools import partial

import orjson
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from app.server.requests_in import Progress, progress

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# How long a closing connection may keep sending before we stop reading it (Gunicorn's
# close_graceful uses the same 2 s and 64 KiB, blocking; here the loop does it).
CLOSE_LINGER = 2.0
CLOSE_DRAIN_BYTES = 64 * 1024


def _timeout_response(seconds: float) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"the request did not arrive within {seconds:g} s",
                "details": {},
            }
        }
    )
    return (
        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


class BufferingWorker(ThreadWorker):
    """gthread with request buffering in the event loop (see the module's docstring)."""

    #: Seconds from a request's first byte to its last; set by gunicorn.conf.py
    #: (REQUEST_READ_TIMEOUT). Heroku's router gives up on a request after 30 s anyway.
    read_timeout: float = 30.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Connections the loop watches, oldest first: reading a request, or closing.
        self.watched: dict[TConn, None] = {}
        self._next_expiry = 0.0

    # --- reading requests in the loop ------------------------------------------------

    def accept(self, listener) -> None:
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        self._read_request(TConn(self.cfg, client, address, listener.getsockname()))

    def _read_request(self, conn: TConn, data: bytes = b"", kept_alive: bool = False) -> None:
        """Watch ``conn`` until a whole request has arrived (``data``: bytes of it read
        already), then hand it to a thread. A new connection gets ``read_timeout`` for its
        first request, a kept-alive one ``keepalive`` until the next (as nginx's
        client_header_timeout and keepalive_timeout)."""
        now = time.monotonic()
        conn.buf = bytearray(data)
        conn.sent_continue = False
        conn.closing = False
        if data and self._maybe_hand_over(conn):
            return
        conn.deadline = now + (self.cfg.keepalive if kept_alive and not data else self.read_timeout)
        if not data and not self.alive:
            conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
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
        self._maybe_hand_over(conn, watched=True)

    def _maybe_hand_over(self, conn: TConn, watched: bool = False) -> bool:
        state = progress(conn.buf)
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

    def handle(self, conn: TConn):
        """In a thread: give the parser the bytes the loop read, then serve as gthread."""
        if not conn.initialized:
            conn.sock.setblocking(True)
            conn.init()
        conn.parser.unreader.unread(bytes(conn.buf))
        conn.buf = bytearray()
        return super().handle(conn)

    def handle_request(self, req, conn):
        if conn.sent_continue:  # the loop has answered the Expect already
            req._expected_100_continue = False
        return super().handle_request(req, conn)

    def finish_request(self, conn: TConn, fs) -> None:
        """In the loop, when a thread is done: wait for the next request or close."""
        try:
            keep_alive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            self.nr_conns -= 1
            conn.close()
            return
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
                conn.sock.send(last_words)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        conn.closing, conn.drained = True, 0
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
        for conn in [c for c in self.watched if c.deadline <= now]:
            if conn.closing:
                self._forget(conn)
            elif conn.buf:  # part of a request, too slowly
                self._close(conn, _timeout_response(self.read_timeout))
            else:  # idle: a FIN, which clients take as "reconnect and send again"
                self._close(conn)

    def _evict_idle(self) -> None:
        """At worker_connections, close the longest-idle connection to make room for a
        new one (nginx does the same with kept-alive connections)."""
        for conn in self.watched:
            if not conn.closing and not conn.buf:
                self._close(conn)
                return

    # --- the loop --------------------------------------------------------------------

    def run(self) -> None:
        self.poller.register(
            self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks
        )
        self.set_accept_enabled(True)
        while self.alive:
            self.notify()
            if self.nr_conns >= self.worker_connections:
                self._evict_idle()
            can_accept = self.nr_conns < self.worker_connections
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=0.5)
            if not self.is_parent_alive():
                break
            self._expire()

        self._stop_listening()
        # Idle connections get STOP_KEEPALIVE_LINGER for a request already on its way;
        # requests being read and served get the graceful timeout.
        linger = time.monotonic() + STOP_KEEPALIVE_LINGER
        for conn in self.watched:
            if not conn.closing and not conn.buf:
                conn.deadline = min(conn.deadline, linger)
        graceful = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < graceful:
            self.notify()
            self.wait_for_and_dispatch_events(timeout=0.1)
            self._expire(force=True)

        for conn in list(self.watched):
            self._forget(conn)
        self.tpool.shutdown(wait=False)
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
