"""Is a request complete in this buffer? Enough HTTP/1.1 framing (RFC 9112) to decide
when to hand a connection to a thread; Gunicorn's parser does the real parsing and
refuses what is malformed, so anything odd here is "hand it over now"."""

from __future__ import annotations

import enum
import re

from gunicorn.http.body import CHUNK_EXT_RE

# Without a blank line after this much, the request is malformed (Gunicorn's limits: a
# 4094-byte request line, 100 fields of 8190 bytes) or hostile: the parser answers it.
HEADER_LIMIT = 64 * 1024
# Bodies up to this size are read whole before a thread sees them; a larger one is handed
# over at its headers, and the app refuses it (MAX_CONTENT_LENGTH, 1 MiB by default, 413)
# without reading it.
BODY_LIMIT = 1024 * 1024 + 64 * 1024

# Gunicorn's chunked reader copies what is left of the body at each chunk, so its CPU
# grows with chunks × size (300,000 one-byte chunks: 24 s on a thread; 21,000 in 129 KB
# on the loop: 0.15 s; an outside probe). A body whose chunks × bytes on the wire pass
# CHUNK_WORK_LIMIT is refused (413): 1,024 chunks of the largest body read whole, or
# 17,000 in 64 KB (a client that writes a token a chunk); one of more than INLINE_CHUNKS
# chunks never runs on the loop.
INLINE_CHUNKS = 1024
CHUNK_WORK_LIMIT = 1024 * BODY_LIMIT
_TOKEN_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]")


class Progress(enum.Enum):
    COMPLETE = "complete"  # hand it to a thread
    HEADERS = "headers"  # still reading the headers
    BODY = "body"  # headers in, body still arriving
    BODY_EXPECTS_CONTINUE = "continue"  # the same, and the client waits for 100 Continue
    # Refused by the loop itself: the parser would wait for more on a thread, holding it.
    NOT_HTTP = "not http"  # the first byte cannot begin a method (TLS, garbage): 400
    HEADERS_TOO_LARGE = "headers too large"  # no blank line within HEADER_LIMIT: 431
    BARE_LF = "bare lf"  # a line ends in LF alone before the request is whole: 400
    FRAMING_TOO_LARGE = "framing too large"  # chunked: chunks × size, or framing: 413


class _Chunks(enum.Enum):
    INCOMPLETE = "incomplete"  # the last chunk and trailers are still to come
    COMPLETE = "complete"
    BROKEN = "broken"  # not chunked coding: a size that is not hexadecimal, a chunk
    # without its CRLF. Gunicorn refuses it only when the app reads the body.
    BARE_LF = "bare lf"  # a size line or trailer that ends in LF alone: Gunicorn waits


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")
_BARE_LF = re.compile(rb"(?<!\r)\n")
# A Content-Encoding other than identity: what the body inflates to (up to the app's
# limit) is not known from its size on the wire.
_CODED = re.compile(rb"\r\ncontent-encoding:(?![ \t]*identity[ \t]*(?:\r|$))", re.IGNORECASE)


class Scan:
    """What ``progress`` learnt of the request arriving on one connection, so that each
    read looks only at the bytes it added: looking again from the start each time cost
    quadratic CPU in the loop, which every connection of the worker waits on (a chunked
    body of one-byte chunks, 18 reads: 2.6 s; an outside probe)."""

    __slots__ = (
        "at",
        "body",
        "chunk",
        "chunked",
        "coded",
        "complete",
        "count",
        "data",
        "expect",
        "length",
        "pending",
        "resume",
        "searched",
        "size",
        "start",
        "target",
        "trailers",
    )

    def __init__(self) -> None:
        self.start: int | None = None  # where the request line begins
        self.searched = 0  # the end of the headers is not before this
        self.body: int | None = None  # where the body begins, once the headers are in
        self.length: int | None = None
        self.chunked = self.expect = False
        self.coded = False  # a compressed body (Content-Encoding): its cost is unknown
        # Chunked: where the next chunk's size line begins, the data of the chunks
        # before it, the data arrived of the chunk not whole, the trailers' start once the
        # last chunk is in, and where the line end awaited is not before; the size and
        # data's start of a chunk whose line is read (size 0: none).
        self.chunk = self.data = self.pending = self.resume = 0
        self.trailers: int | None = None
        self.size = self.at = 0
        self.count = 0  # chunks with data so far
        self.complete = False  # chunked: the last chunk and the trailers are in
        self.target = b""  # the path and the query, once the headers are in

    def chunks(self, buf: bytes | bytearray) -> _Chunks:
        """How far the chunked body has arrived, or that it is broken."""
        while self.trailers is None:
            if self.size:  # its size line read, its data arriving
                end = self.at + self.size
                if end + 2 > len(buf):
                    self.pending = min(self.size, len(buf) - self.at)
                    return _Chunks.INCOMPLETE
                if buf[end : end + 2] != b"\r\n":
                    return _Chunks.BROKEN
                self.chunk = self.resume = end + 2
                self.data, self.pending, self.size = self.data + self.size, 0, 0
                continue
            pos = self.chunk
            eol = buf.find(b"\r\n", max(pos, self.resume))
            if eol < 0:
                bare = _BARE_LF.search(buf, max(pos, self.resume - 1))
                self.resume = max(pos, len(buf) - 1)
                return _Chunks.BARE_LF if bare else _Chunks.INCOMPLETE
            size_text, *extension = bytes(buf[pos:eol]).split(b";", 1)  # as Gunicorn reads
            if extension:
                if not CHUNK_EXT_RE.fullmatch(b";" + extension[0]):
                    return _Chunks.BROKEN
                size_text = size_text.rstrip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                return _Chunks.BROKEN
            size = int(size_text, 16)
            if size == 0:
                self.trailers = self.resume = eol + 2
                break
            self.size, self.at = size, eol + 2  # its line is read once, not on each read
            self.count += 1
        trailers = self.trailers
        if buf.startswith(b"\r\n", trailers) or buf.find(b"\r\n\r\n", self.resume) >= 0:
            self.complete = True
            return _Chunks.COMPLETE
        if _BARE_LF.search(buf, max(trailers, self.resume - 1)):
            return _Chunks.BARE_LF
        self.resume = max(trailers, len(buf) - 3)
        return _Chunks.INCOMPLETE


def whole(buf: bytes | bytearray) -> bool:
    """Whether the request at the start of ``buf`` is all in ``buf``: its headers and
    every byte of the body they announce, so that parsing it (and draining its body)
    never reads the socket. A request that is complete only in ``progress``'s sense
    (handed over at its headers because its body is too large, or not HTTP at all) is
    not whole. Garbled framing counts as whole: the parser refuses it from the headers."""
    return whole_request(buf) is not None


def whole_request(buf: bytes | bytearray, scan: Scan | None = None) -> tuple[bytes, int] | None:
    """For a request that is ``whole``: its target (the path and the query) and the size
    of its body in bytes (of the chunks' framing too, when chunked); else None. ``scan``:
    what ``progress`` learnt of ``buf`` (the worker's, which read it as it arrived), else
    it is read now. Garbled framing gives what it can: the parser refuses such a request
    anyway; broken chunks are not whole (Gunicorn finds them when the app reads the body,
    and the answer must then close the connection, as a thread's to a request not whole)."""
    if scan is None:
        progress(buf, scan=(scan := Scan()))
    if scan.body is None:
        return None
    if scan.chunked:
        return (scan.target, len(buf) - scan.body) if scan.complete else None
    length = scan.length or 0
    return (scan.target, length) if len(buf) - scan.body >= length else None


def progress(
    buf: bytes | bytearray, body_limit: int = BODY_LIMIT, scan: Scan | None = None
) -> Progress:
    """How far the request at the start of ``buf`` has arrived (``scan``: what the last
    call learnt of the same request, ``buf`` having only grown since). A body announced
    larger than ``body_limit``, or with more chunk data than that, is handed over with
    what has arrived (the worker passes the app's MAX_CONTENT_LENGTH when lower: the app
    refuses such a body, from memory, so the client that waits for 100 Continue gets the
    413 instead)."""
    scan = scan or Scan()
    if scan.body is None:
        state = _headers(buf, scan)
        if state is not None:
            return state
    body = scan.body
    if scan.chunked:
        state = scan.chunks(buf)
        if state is _Chunks.BARE_LF:
            return Progress.BARE_LF
        wire = len(buf) - body
        if scan.count * wire > CHUNK_WORK_LIMIT or wire > 2 * body_limit + HEADER_LIMIT:
            return Progress.FRAMING_TOO_LARGE
        if state is not _Chunks.INCOMPLETE or scan.data + scan.pending > body_limit:
            return Progress.COMPLETE  # broken: the parser says so; too much: the app 413
    elif scan.length is None or scan.length > body_limit or len(buf) - body >= scan.length:
        return Progress.COMPLETE
    return Progress.BODY_EXPECTS_CONTINUE if scan.expect else Progress.BODY


def _headers(buf: bytes | bytearray, scan: Scan) -> Progress | None:
    """Find the end of the headers (``scan.body``) and read the framing; None once
    found and the body is to be looked at, else how far the request has come."""
    if scan.start is None:
        # RFC 9112 2.2: ignore at least one empty line first; as Gunicorn's parser, one
        # (megabytes of them were looked through again on each read).
        start = 2 if buf.startswith(b"\r\n") else 0
        if len(buf) <= start or buf[start:] == b"\r":
            return Progress.HEADERS
        if not _TOKEN_START.match(buf, start):
            return Progress.NOT_HTTP
        scan.start = scan.searched = start
    start = scan.start
    end = buf.find(b"\r\n\r\n", scan.searched)
    if end < 0:
        if _BARE_LF.search(buf, max(start, scan.searched - 1)):
            return Progress.BARE_LF
        if len(buf) - start > HEADER_LIMIT:
            # The parser refuses a request line over its limit at once (414), but reads
            # on to the end of the headers before it judges their size.
            has_line = buf.find(b"\r\n", start) >= 0
            return Progress.HEADERS_TOO_LARGE if has_line else Progress.COMPLETE
        scan.searched = max(start, len(buf) - 3)
        return Progress.HEADERS
    if end - start > HEADER_LIMIT:  # however it arrived (it was 200 in one piece)
        return Progress.HEADERS_TOO_LARGE
    head = bytes(buf[start:end])
    scan.length, scan.chunked, scan.expect = _framing(head)
    scan.coded = _CODED.search(head) is not None
    target = head.split(b"\r\n", 1)[0].split(b" ", 2)[1:2]
    scan.target = target[0] if target else b""
    scan.body = scan.chunk = scan.resume = end + 4
    return None


def _framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, chunked?, Expect: 100-continue?). A value that does not
    parse gives (None, False, False): complete, the parser refuses it. An HTTP/1.0
    client is never sent 100 Continue (RFC 9110 10.1.1)."""
    length, chunked, expect = None, False, False
    lines = head.split(b"\r\n")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                return None, False, False
            length = int(value)
        elif name == b"transfer-encoding":
            if any(coding.strip(b" \t") != b"chunked" for coding in value.split(b",")):
                return None, False, False  # complete: a 501 from the head (worker.py)
            chunked = True
        elif name == b"expect":
            expect = value == b"100-continue" and lines[0].endswith(b" HTTP/1.1")
    if chunked and length is not None:
        return None, False, False  # both: RFC 9112 6.3 calls it an attack; the parser refuses
    return length, chunked, expect
