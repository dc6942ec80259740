"""Which requests may run long, so that a worker does not run them on its event loop.

A whole request runs on its worker's event loop (app/server/worker.py), which serves every
connection of the worker: a request that runs for seconds there stalls them all, new
connections and `/health` included. The worker asks the app, by a request's path and the
size of its body, which ones may (``QUICK_REQUESTS``), and hands those to its threads,
where the loop keeps answering the others meanwhile. Measured (BENCHMARKS.md, "Long
requests go to the threads"):

- With a transformer loaded, an explanation (a row a word: 9 s for 5,000 characters on
  version 3, 1.5 s on version 4) or a batch (64 reviews of 1,000 characters: 2.5 s and
  0.5 s). A single review of up to 1 KiB takes 47 ms on version 3, 12 on version 4. The
  n-gram versions answer anything the loop takes within a fraction of a second.
- Requests that wait on the prediction store (`/feedback`, `/monitoring`): a database
  that stops answering held them, and on the loop every other request of the worker,
  until Gunicorn killed the worker for its silence.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

QUICK_REQUESTS = "quick_requests"  # the worker's key (app/server/worker.py)
# With a transformer loaded, bodies larger than this go to the threads.
QUICK_BODY_BYTES = 1024


@dataclass
class QuickRequests:
    """Whether a request (its path, its body's size in bytes) is quick: not one of the
    ``long_paths`` (path endings, whatever the mount prefix) nor over ``body_limit``."""

    long_paths: tuple[bytes, ...] = ()
    body_limit: int | None = None

    def __call__(self, path: bytes, body_bytes: int) -> bool:
        if self.body_limit is not None and body_bytes > self.body_limit:
            return False
        return not path.endswith(self.long_paths)


def may_run_long(app: Flask, paths: tuple[str, ...], body_limit: int | None = None) -> None:
    """Have the worker run the requests to ``paths``, and bodies over ``body_limit``
    bytes, on its threads."""
    quick = app.extensions.setdefault(QUICK_REQUESTS, QuickRequests())
    quick.long_paths += tuple(path.encode() for path in paths)
    if body_limit is not None:
        quick.body_limit = min(body_limit, quick.body_limit or body_limit)
