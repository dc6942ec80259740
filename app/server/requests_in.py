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

_TOKEN_START = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]")


class Progress(enum.Enum):
    COMPLETE = "complete"  # hand it to a thread
    HEADERS = "headers"  # still reading the headers
    BODY = "body"  # headers in, body still arriving
    BODY_EXPECTS_CONTINUE = "continue"  # the same, and the client waits for 100 Continue


def progress(buf: bytes | bytearray, body_limit: int = BODY_LIMIT) -> Progress:
    """How far the request at the start of ``buf`` has arrived. A body announced larger
    than ``body_limit``, or arriving past it, is handed over with its headers (the worker
    passes the app's MAX_CONTENT_LENGTH when lower: the app refuses such a body unread, so
    the client that waits for 100 Continue gets the 413 instead)."""
    start = 0
    while buf.startswith(b"\r\n", start):  # RFC 9112 2.2: ignore empty lines first
        start += 2
    if len(buf) > start and not _TOKEN_START.match(buf, start):
        return Progress.COMPLETE  # not HTTP (TLS, garbage): the parser says 400 at once
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        return Progress.COMPLETE if len(buf) > HEADER_LIMIT else Progress.HEADERS
    length, chunked, expect = _framing(bytes(buf[start:end]))
    body = end + 4
    if chunked:
        done = _chunks(buf, body) is not _Chunks.INCOMPLETE  # broken: the parser says so
    elif length is None:
        return Progress.COMPLETE
    else:
        done = length > body_limit or len(buf) - body >= length
    if done or len(buf) - body > body_limit:
        return Progress.COMPLETE
    return Progress.BODY_EXPECTS_CONTINUE if expect else Progress.BODY


def _framing(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, chunked?, Expect: 100-continue?). A value that does not
    parse gives (None, False, False): complete, the parser refuses it."""
    length, chunked, expect = None, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                return None, False, False
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"expect":
            expect = value == b"100-continue"
    if chunked and length is not None:
        return None, False, False  # both: RFC 9112 6.3 calls it an attack; the parser refuses
    return length, chunked, expect


class _Chunks(enum.Enum):
    INCOMPLETE = "incomplete"  # the last chunk and trailers are still to come
    COMPLETE = "complete"
    BROKEN = "broken"  # not chunked coding: a size that is not hexadecimal, a chunk
    # without its CRLF. Gunicorn refuses it only when the app reads the body.


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")


def _chunks(buf: bytes | bytearray, pos: int) -> _Chunks:
    """How far the chunked body starting at ``pos`` has arrived, or that it is broken."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return _Chunks.INCOMPLETE
        size_text, *extension = bytes(buf[pos:eol]).split(b";", 1)  # as Gunicorn reads it
        if extension:
            if not CHUNK_EXT_RE.fullmatch(b";" + extension[0]):
                return _Chunks.BROKEN
            size_text = size_text.rstrip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            return _Chunks.BROKEN
        size = int(size_text, 16)
        if size == 0:
            trailers = eol + 2
            done = buf.startswith(b"\r\n", trailers) or buf.find(b"\r\n\r\n", trailers) >= 0
            return _Chunks.COMPLETE if done else _Chunks.INCOMPLETE
        end = eol + 2 + size
        if end + 2 > len(buf):
            return _Chunks.INCOMPLETE
        if buf[end : end + 2] != b"\r\n":
            return _Chunks.BROKEN
        pos = end + 2


def whole(buf: bytes | bytearray) -> bool:
    """Whether the request at the start of ``buf`` is all in ``buf``: its headers and
    every byte of the body they announce, so that parsing it (and draining its body)
    never reads the socket. A request that is complete only in ``progress``'s sense
    (handed over at its headers because its body is too large, or not HTTP at all) is
    not whole. Garbled framing counts as whole: the parser refuses it from the headers."""
    return whole_request(buf) is not None


def whole_request(buf: bytes | bytearray) -> tuple[bytes, int] | None:
    """For a request that is ``whole``: its target (the path and the query) and the size
    of its body in bytes (of the chunks' framing too, when chunked); else
    None. Garbled framing gives what it can: the parser refuses such a request anyway."""
    start = 0
    while buf.startswith(b"\r\n", start):
        start += 2
    end = buf.find(b"\r\n\r\n", start)
    if end < 0 or not _TOKEN_START.match(buf, start):
        return None
    head = bytes(buf[start:end])
    length, chunked, _ = _framing(head)
    body = end + 4
    if chunked:
        # Broken chunks are not whole: Gunicorn finds them when the app reads the body,
        # and the answer must then close the connection, as a thread's answer to a
        # request not whole does.
        if _chunks(buf, body) is not _Chunks.COMPLETE:
            return None
        length = len(buf) - body
    elif length is None:
        length = 0
    elif len(buf) - body < length:
        return None
    target = head.split(b"\r\n", 1)[0].split(b" ", 2)[1:2]
    return (target[0] if target else b""), length
