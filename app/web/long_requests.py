"""Which requests may run long, so that a worker does not run them on its event loop.

A whole request runs on its worker's event loop (app/server/worker.py), which serves every
connection of the worker: a request that runs for seconds there stalls them all, new
connections and `/health` included. The worker asks the app, by a request's target (path
and query) and the size of its body, which ones may (``QUICK_REQUESTS``), and hands those
to its threads, where the loop keeps answering the others meanwhile. Measured
(BENCHMARKS.md, "Long requests go to the threads"):

- With a transformer loaded, an explanation (a row a word: 9 s for 5,000 characters on
  version 3, 1.5 s on version 4) or a batch (64 reviews of 1,000 characters: 2.5 s and
  0.5 s). A single review of up to 1 KiB takes 47 ms on version 3, 12 on version 4. The
  n-gram versions answer anything the loop takes within a fraction of a second.
- Any request a transformer answers, however short: one version answers one call at a
  time, so a single review to version 4 on the loop waited there for the explanation a
  thread was running on version 4 (2.4 s; on version 3 the worker went silent until
  Gunicorn killed it).
- Requests that wait on the prediction store (`/feedback`, `/monitoring`): a database
  that stops answering held them, and on the loop every other request of the worker,
  until Gunicorn killed the worker for its silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes

from flask import Flask

QUICK_REQUESTS = "quick_requests"  # the worker's key (app/server/worker.py)
# With a transformer loaded, bodies larger than this go to the threads.
QUICK_BODY_BYTES = 1024


@dataclass
class QuickRequests:
    """Whether a request (its target, its body's size in bytes) is quick: not to one of
    the ``long_paths`` (path endings, whatever the mount prefix), not over
    ``body_limit``, and not one that ``long_pin`` says names a version that runs long."""

    long_paths: tuple[bytes, ...] = ()
    body_limit: int | None = None
    long_pin: Callable[[bytes], bool] | None = None
    # Paths whose requests take their own thread, one at a time (the worker's long lane).
    lane_paths: tuple[bytes, ...] = ()

    def __call__(self, target: bytes, body_bytes: int) -> bool:
        if self.body_limit is not None and body_bytes > self.body_limit:
            return False
        if routed_path(target).endswith(self.long_paths):
            return False
        return self.long_pin is None or not self.long_pin(target)

    def long(self, target: bytes) -> bool:
        """Whether a request goes to the worker's long lane (``lane_paths``)."""
        return bool(self.lane_paths) and routed_path(target).endswith(self.lane_paths)


def routed_path(target: bytes) -> bytes:
    """The path Flask routes a request target by: cut at ``#`` and ``?`` (Gunicorn splits
    off a fragment, which clients should not send but may), then percent-decoded:
    ``/%65xplain#x`` is ``/explain``."""
    return unquote_to_bytes(_path_and_query(target)[0])


def _path_and_query(target: bytes) -> tuple[bytes, bytes]:
    """A target's path and query as sent, without a fragment."""
    path, _, query = target.split(b"#", 1)[0].partition(b"?")
    return path, query


def may_run_long(
    app: Flask,
    paths: tuple[str, ...],
    body_limit: int | None = None,
    long_pin: Callable[[bytes], bool] | None = None,
    own_lane: bool = False,
) -> None:
    """Have the worker run the requests to ``paths``, bodies over ``body_limit`` bytes,
    and the requests ``long_pin`` picks by their target, on its threads; with
    ``own_lane``, the requests to ``paths`` on a thread of their own, one at a time."""
    quick = app.extensions.setdefault(QUICK_REQUESTS, QuickRequests())
    quick.long_paths += tuple(path.encode() for path in paths)
    if own_lane:
        quick.lane_paths += tuple(path.encode() for path in paths)
    if body_limit is not None:
        quick.body_limit = min(body_limit, quick.body_limit or body_limit)
    if long_pin is not None:
        quick.long_pin = long_pin


# A version or label named in the path: /v1/models/m/versions/4:predict,
# /v1/models/m/labels/accurate:predict, /v2/models/m/versions/4/infer.
_PATH_PIN = re.compile(r"/(versions|labels)/([^/:]*)")
# The routes that read ``?version=`` and ``?label=`` (app.web.api.pinned); under /v1/
# and /v2/ a query is ignored, as TF Serving and Triton ignore it.
QUERY_PINNED_PATHS = (b"/classify", b"/explain")


def pins(target: bytes) -> Iterator[tuple[str, str]]:
    """The versions and labels a request target names, as ``("version", "4")`` or
    ``("label", "accurate")``: in its path, or as ``?version=`` and ``?label=`` to a
    route that reads them. A query the route ignores named nothing: ``:predict?version=2``
    with version 3 stable was taken for version 2's and ran on the loop (pipelined, it
    stalled the worker until Gunicorn killed it; an outside probe)."""
    path, query = _path_and_query(target)
    routed = unquote_to_bytes(path)
    for kind, value in _PATH_PIN.findall(routed.decode("utf-8", "replace")):
        yield ("version" if kind == "versions" else "label"), value
    if query and routed.endswith(QUERY_PINNED_PATHS):
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name in ("version", "label"):
                yield name, value
