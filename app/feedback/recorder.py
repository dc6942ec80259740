"""Recording predictions off the request path: a bounded queue per worker, written to the
store in batches by one background thread, which also keeps the bandit's view of the arms
fresh, refreshes the quality gauges and deletes records past their retention.

A request only puts one tuple per answer in the queue (its request id, version, labels,
scores and the time: no object built, no formatting; about 0.2 µs); the writer turns it
into rows. When the queue is full, or the database fails a write, records are dropped and
reported to ``on_drop``: a slow or dead database never delays or fails a request. Writing
resumes by itself once the database answers again.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence

from app.feedback.store import PredictionRecord, PredictionStore, StoreUnavailable

log = logging.getLogger(__name__)

# Answers waiting per worker (a batch request is one): about 5 s of a busy worker's single
# reviews.
MAX_PENDING = 10_000
# Most answers per write, and the pause between writes: fewer, larger transactions (a
# write's fixed cost, about 0.2 ms, spread over more rows). A prediction can be given
# feedback once written, so at most about FLUSH_SECONDS after its answer.
MAX_BATCH = 5_000
FLUSH_SECONDS = 0.5
# After a failed write, wait this long before the next try (records meanwhile are dropped).
RETRY_SECONDS = 1.0
# A worker that stops (a deploy, a restart) writes its queue first, waiting at most this
# long: inside Gunicorn's graceful timeout and Heroku's 30 s after SIGTERM.
STOP_SECONDS = 5.0

DropObserver = Callable[[str, int], None]  # (reason, count)
# What a request queues: request id, version, labels, scores, Unix time.
Answer = tuple[str, str, Sequence[str], Sequence[float], float]
# (every N seconds, task); a task that returns True has more to do: it runs again on the
# writer's next round, after the next write (retention, a chunk a round).
Periodic = tuple[float, Callable[[], bool | None]]


class PredictionRecorder:
    """One background writer per worker (see the module docstring)."""

    def __init__(
        self,
        store: PredictionStore,
        on_drop: DropObserver,
        periodic: Sequence[Periodic] = (),
        max_pending: int = MAX_PENDING,
    ):
        self.store = store
        self._on_drop = on_drop
        # Each task runs on the writer's first round, then every N seconds: its last run
        # starts at minus infinity, not 0 (the monotonic clock counts from the machine's
        # boot, so on a machine up for less than N seconds 0 would skip the first round).
        self._periodic = [[every, task, -math.inf] for every, task in periodic]
        self._pending: queue.SimpleQueue[Answer | threading.Event] = queue.SimpleQueue()
        self._max_pending = max_pending
        # SimpleQueue (no lock held across put and get, C-implemented) has no bound: the
        # bound is checked on its size in submit().
        self._stop = threading.Event()
        # Set by flush() and stop(): the writer skips the rest of its pause between writes.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-recorder", daemon=True)
        self._thread.start()

    def submit(
        self, request_id: str, version: str, labels: Sequence[str], scores: Sequence[float]
    ) -> None:
        """Queue one answer (its records are built by the writer); drops them (counted)
        when the queue is full. ``labels`` and ``scores`` must not change afterwards."""
        if self._pending.qsize() >= self._max_pending:
            self._on_drop("queue_full", len(labels))
            return
        self._pending.put((request_id, version, labels, scores, time.time()))

    def flush(self, timeout: float = 10) -> bool:
        """Wait until everything queued so far is written or dropped (tests, shutdown):
        a marker goes through the queue behind it."""
        marker = threading.Event()
        self._pending.put(marker)
        self._wake.set()
        return marker.wait(timeout)

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Write what is queued (waiting up to ``timeout``), then stop the writer."""
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._pending.put(threading.Event())  # wakes _take()
        self._thread.join(timeout=5)

    def _take(self) -> tuple[list[PredictionRecord], list[threading.Event]]:
        """The next batch's records, waiting up to FLUSH_SECONDS for its first answer; and
        the flush markers met on the way (set once the batch is handled)."""
        try:
            entries = [self._pending.get(timeout=FLUSH_SECONDS)]
        except queue.Empty:
            return [], []
        get = self._pending.get_nowait
        try:
            while len(entries) < MAX_BATCH:
                entries.append(get())
        except queue.Empty:
            pass
        return to_records(entries)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            batch, markers = self._take()
            failed = bool(batch) and not self._write(batch)
            for marker in markers:
                marker.set()
            if failed:
                self._stop.wait(RETRY_SECONDS)
                continue
            self._run_periodic()
            # Fewer, larger transactions: at most one write per FLUSH_SECONDS, unless a
            # flush or the stop is waiting.
            self._wake.wait(max(0.0, FLUSH_SECONDS - (time.monotonic() - started)))
            self._wake.clear()

    def _write(self, batch: list[PredictionRecord]) -> bool:
        """Write ``batch``, trying twice (another worker's schema creation or lock, a
        connection the database closed); else drop it (counted). True when written."""
        for attempt in (1, 2):
            try:
                self.store.record(batch)
                return True
            except StoreUnavailable as error:
                if attempt == 1 and not self._stop.wait(RETRY_SECONDS / 2):
                    continue
                self._on_drop("database_error", len(batch))
                log.warning(
                    "prediction records dropped: the database failed (%s)",
                    error,
                    extra={"dropped": len(batch)},
                )
            except Exception:  # a bug must not kill the writer
                log.exception("prediction recorder failed")
                self._on_drop("database_error", len(batch))
            return False
        return False

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for entry in self._periodic:
            every, task, last = entry
            if now - last < every:
                continue
            entry[2] = now
            try:
                if task():
                    entry[2] = -math.inf
            except StoreUnavailable as error:
                log.warning("background database task failed (%s)", error)
            except Exception:
                log.exception("background database task failed")


def to_records(
    entries: Sequence[Answer | threading.Event],
) -> tuple[list[PredictionRecord], list[threading.Event]]:
    """The rows of the queued answers, and the flush markers among them."""
    batch: list[PredictionRecord] = []
    markers: list[threading.Event] = []
    record = PredictionRecord
    for entry in entries:
        if isinstance(entry, threading.Event):
            markers.append(entry)
            continue
        request_id, version, labels, scores, at = entry
        if len(labels) == 1:  # a single review: most answers
            batch.append(record(request_id, 0, version, labels[0], scores[0], at))
            continue
        for item, (label, score) in enumerate(zip(labels, scores, strict=True)):
            batch.append(record(request_id, item, version, label, score, at))
    return batch, markers
