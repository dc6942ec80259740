"""Dynamic batching, as TensorFlow Serving's batching scheduler does it: requests that wait
for the model in one worker's threads are merged into one inference call of at most
``max_batch_size`` rows, the first of them waiting at most ``timeout`` seconds for others.

It pays where a batch is much cheaper per text than a call alone. On two cores
(``BENCHMARKS.md``, second part) that is version 3 in bf16: a text costs a third of a
lone call's time in a batch of 16, and batching raised its req/s by 14–16% at c=16 and
c=32. In f32 a batch saves a quarter, and batching bought neither throughput nor a lower
p99. With no concurrency the wait is pure latency, and a bag-of-n-grams model, whose call
costs tens of microseconds, gains nothing (issue 4 measured it). Off
unless ``DYNAMIC_BATCH_MAX_SIZE`` > 1.

No thread of its own: the first request to find the model idle leads. It waits (releasing
the lock) until the batch is full or its timeout passes, takes the rows queued so far,
runs the call outside the lock, hands each request its rows and wakes them. Rows of
different widths (a transformer's rows are as wide as their text) are padded with 0, the
padding id, to the widest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class _Waiting:
    ids: np.ndarray
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class DynamicBatcher:
    """``batcher(ids)`` returns ``infer(ids)``'s rows, computed in a shared call."""

    def __init__(
        self, infer: Callable[[np.ndarray], np.ndarray], max_batch_size: int, timeout: float
    ):
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.timeout = timeout
        self._condition = threading.Condition()
        self._queue: list[_Waiting] = []
        self._running = False
        self.calls = 0  # inference calls made (for tests and benchmarks)

    def _queued_rows(self) -> int:
        return sum(len(item.ids) for item in self._queue)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        if len(ids) >= self.max_batch_size:  # a full batch already: no one to wait for
            with self._condition:
                while self._running:
                    self._condition.wait()
                self._running = True
            return self._run_alone(ids)
        item = _Waiting(ids)
        with self._condition:
            self._queue.append(item)
            self._condition.notify_all()  # a leader waiting to fill its batch counts again
            while not item.done:
                if self._running:
                    self._condition.wait()
                    continue
                self._running = True
                deadline = time.monotonic() + self.timeout
                while self._queued_rows() < self.max_batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._condition.wait(left)
                batch, rows = [], 0
                while self._queue and rows + len(self._queue[0].ids) <= self.max_batch_size:
                    rows += len(self._queue[0].ids)
                    batch.append(self._queue.pop(0))
                if not batch:  # the first is alone wider than a batch
                    batch.append(self._queue.pop(0))
                self._condition.release()
                try:
                    self._run_batch(batch)
                finally:
                    self._condition.acquire()
                    self._running = False
                    self._condition.notify_all()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _run_alone(self, ids: np.ndarray) -> np.ndarray:
        try:
            self.calls += 1
            return self._infer(ids)
        finally:
            with self._condition:
                self._running = False
                self._condition.notify_all()

    def _run_batch(self, batch: list[_Waiting]) -> None:
        """One call for every waiting request's rows; each gets its slice (or the error)."""
        width = max(item.ids.shape[1] for item in batch)
        merged = np.zeros((sum(len(item.ids) for item in batch), width), dtype=np.int32)
        start = 0
        for item in batch:
            merged[start : start + len(item.ids), : item.ids.shape[1]] = item.ids
            start += len(item.ids)
        try:
            self.calls += 1
            probabilities = self._infer(merged)
        except BaseException as error:  # every waiting request fails as a lone one would
            for item in batch:
                item.error, item.done = error, True
            return
        start = 0
        for item in batch:
            item.result = probabilities[start : start + len(item.ids)]
            item.done = True
            start += len(item.ids)
