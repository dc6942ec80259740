"""Prometheus metrics, correct under several Gunicorn workers.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by gunicorn.conf.py before any
worker starts: every worker writes its samples to files there and ``GET /metrics``
merges them, whichever worker answers. Without it (tests, ``python app.py``) the app's
own registry is exposed. No Flask here: ``app.web.metrics`` counts requests and serves
``GET /metrics``; metrics are created per app and kept in ``app.extensions``.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import glob
import logging
import os
import re
import struct
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPMethod
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict
from prometheus_client.registry import Collector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


class _ReservingMmapedDict(MmapedDict):
    """prometheus_client's (0.26) sample file, with the disk space of each write
    reserved first. It extends its files without reserving them and writes through a
    memory map: on a full disk the first write into a new page was a SIGBUS, which
    killed the worker, and every replacement as it booted (85 boots in 58 s; any
    client chose when, with a request that made a new series, such as a 405; an outside
    probe). Here such a write is an ``OSError`` (ENOSPC) before anything is written."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        if not read_mode:
            with open(filename, "a+b") as file:
                if os.fstat(file.fileno()).st_size == 0:
                    os.posix_fallocate(file.fileno(), 0, 8)  # the header, written next
                    file.truncate(_INITIAL_MMAP_SIZE)  # as MmapedDict would, sparse
        super().__init__(filename, read_mode)

    def _init_value(self, key: str) -> None:
        encoded = len(key.encode("utf-8")) + 4  # as MmapedDict lays an entry out:
        entry = encoded + 8 - encoded % 8 + 16  # its key padded, then two doubles
        os.posix_fallocate(self._f.fileno(), self._used, entry)
        super()._init_value(key)


_FileValue = values.ValueClass
_memory_only_noted = False


def _value_in_file_or_memory(*args: Any, **kwargs: Any) -> Any:
    """A sample in this worker's file, or, when the file cannot take it (a full disk),
    in memory only, with one line a worker: the worker serves on, and the series is
    missing from /metrics until the worker is replaced (recycled, restarted)."""
    global _memory_only_noted
    try:
        return _FileValue(*args, **kwargs)
    except FileNotFoundError:  # the folder was deleted: ServiceMetrics.child makes it again
        raise
    except OSError as error:
        if not _memory_only_noted:
            _memory_only_noted = True
            log.error(
                "metrics folder cannot take new samples: series first used from now on are "
                "left out of /metrics until this worker is replaced; serving goes on",
                extra={"folder": os.environ.get(MULTIPROC_DIR_ENV), "error": str(error)},
            )
        return values.MutexValue(*args, **kwargs)


if _FileValue is not values.MutexValue:  # multiprocess mode (Gunicorn's workers)
    values.MmapedDict = _ReservingMmapedDict
    values.ValueClass = _value_in_file_or_memory


class MetricsUnavailable(Exception):
    """The samples cannot be read now (the folder was deleted, a file is damaged)."""


def ensure_multiproc_dir() -> bool:
    """Re-create the workers' metrics folder if it was deleted while the server ran (a
    tmp cleaner, an operator): serving and worker start-up must never depend on it.
    Whichever process notices first re-creates it and logs the one line; True then."""
    folder = os.environ.get(MULTIPROC_DIR_ENV)
    if not folder or os.path.isdir(folder):
        return False
    try:
        os.makedirs(folder)  # its parent too: the workers that replace themselves need it
    except FileExistsError:  # another worker was first
        return False
    log.error(
        "metrics folder was deleted: re-created; running workers restart to write in it",
        extra={"folder": folder},
    )
    return True


# A scrape reads the folder's files under a shared lock; folding dead workers' files
# takes it exclusively, so that no scrape sees a sample twice or not at all.
LOCK_FILE = ".fold.lock"
_WORKER_FILE = re.compile(r"(counter|histogram)_(\d+)\.db")


SERVER_LOCK_FILE = ".server.lock"


class FolderInUse(Exception):
    """Another running server writes its metrics in the folder."""


def claim_folder(folder: str) -> Any:
    """In the master at start-up: the folder for this server alone, held (an open file
    with an exclusive lock, released when the master exits, however it exits) before the
    master empties it. A second server given the same folder emptied it under the first,
    whose workers went on writing into deleted files: its /metrics went back to the
    second one's counts, with no line (an outside probe)."""
    lock = open(os.path.join(folder, SERVER_LOCK_FILE), "a+")  # noqa: SIM115 (held)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise FolderInUse(
            f"bad setting {MULTIPROC_DIR_ENV}={folder!r}: another running server (pid "
            f"{holder}) writes its metrics there; give each server a folder of its own"
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


@contextlib.contextmanager
def _folder_lock(folder: str, operation: int) -> Iterator[None]:
    with open(os.path.join(folder, LOCK_FILE), "a") as lock:
        fcntl.flock(lock, operation)  # released when the file closes
        yield


def fold_dead_workers(folder: str, logger: Any = log) -> int:
    """In the master, when a worker has exited: add the counters and histograms of
    workers that are gone (no such process) to the folder's
    ``counter_dead.db`` and ``histogram_dead.db``, and remove their files. Each
    recycled worker left two files behind, and every scrape read them all: 168 files
    after 80 recycles took a scrape from ~18 to ~130 ms, on a worker's loop, without
    end (prometheus_client keeps them). Gauges are live-only, removed by
    ``mark_process_dead``. Skipped, for the next worker's exit, while a scrape reads
    (the master must not wait on a worker: it is what stops a hung one). How many
    files were folded. ``logger``: the master's (Gunicorn's ``server.log``)."""
    dead: dict[str, list[str]] = defaultdict(list)
    for name in os.listdir(folder):
        match = _WORKER_FILE.fullmatch(name)
        if match and not _alive(int(match[2])):
            dead[match[1]].append(os.path.join(folder, name))
    if not dead:
        return 0
    for _ in range(5):
        try:
            with _folder_lock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB):
                for kind, paths in dead.items():
                    archive = os.path.join(folder, f"{kind}_dead.db")
                    totals = _samples_in(archive, logger)
                    for path in paths:
                        for key, value in _samples_in(path, logger).items():
                            totals[key] = totals.get(key, 0.0) + value
                    _write_samples(archive, totals)  # whole, or not at all
                    for path in paths:
                        os.remove(path)
                return sum(len(paths) for paths in dead.values())
        except BlockingIOError:  # a scrape is reading
            time.sleep(0.01)
    return 0


def _samples_in(path: str, logger: Any) -> dict[str, float]:
    """The samples of a sample file. A damaged one reads as none, with one line: this
    runs in the master, which must not stop over it (a damaged ``counter_dead.db``
    stopped it at every worker's exit)."""
    if not _has_samples(path):
        return {}
    try:
        return {key: value for key, value, _, _ in MmapedDict.read_all_values_from_file(path)}
    except (struct.error, RuntimeError, ValueError) as error:
        logger.error(
            "a metrics file is damaged: its samples are dropped",
            extra={"file": path, "error": str(error)},
        )
        return {}


def _write_samples(path: str, samples: dict[str, float]) -> None:
    """Replace ``path`` with a sample file holding ``samples``, each entry's space reserved
    before it is written (``_ReservingMmapedDict``): prometheus_client's own file was a
    SIGBUS on a full disk, which killed the master; here it is an ``OSError`` (ENOSPC),
    and the old file stays as it was."""
    new = f"{path}.new"
    try:
        open(new, "wb").close()  # empty: a failed earlier fold's is not added to
        archive = _ReservingMmapedDict(new)
        try:
            for key, value in samples.items():
                archive.write_value(key, value, 0.0)
        finally:
            archive.close()
        os.replace(new, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(new)
        raise


def _has_samples(path: str) -> bool:
    """False for a sample file that is gone, or that prometheus_client has created but
    not sized yet: it is empty for a moment (for good if its worker was killed then),
    holds nothing, and reading it raised ``struct.error`` (prometheus/client_python#1199,
    open): a 500 from /metrics, and the master stopped."""
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:
        return False


class _WorkerSamples(Collector):
    """``MultiProcessCollector`` for the folder's files that hold something."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Any:
        files = filter(_has_samples, glob.glob(os.path.join(self.folder, "*.db")))
        return multiprocess.MultiProcessCollector.merge(files, accumulate=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process, or no pid at all
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def critical_once(logger: logging.Logger, message: str, *args: object) -> None:
    """A worker's boot failure (a model or store it cannot use), at CRITICAL, once a
    server: every worker fails alike, and each logged it (two lines with two workers,
    where the house rule is one). The worker that makes the master's mark in the metrics
    folder logs; without the folder (no Gunicorn), always."""
    folder = os.environ.get(MULTIPROC_DIR_ENV)
    if folder:
        mark = os.path.join(folder, f".boot-failure-{os.getppid()}")  # the master's
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        except OSError:  # no folder to mark in: log
            pass
    logger.critical(message, *args)


def folder_identity() -> tuple[int, int] | None:
    """The workers' metrics folder's (device, inode): another one once it is made again
    (a worker's open sample files are then in the deleted one); None when it is gone or
    unset."""
    try:
        found = os.stat(os.environ[MULTIPROC_DIR_ENV])
    except (KeyError, OSError):
        return None
    return found.st_dev, found.st_ino


# Request latency: from well under a millisecond (one review) to the router's 30 s limit.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30)
# Inference: from 50 µs (one review, version 2) to seconds (a batch of long reviews on a
# transformer: 64 of 128 word pieces take 1.3 s on version 3 in f32).
INFERENCE_BUCKETS = (
    *(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25),
    *(1, 2.5, 10),
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Top-class probability: with 3 classes it is at least 1/3. A shift of this distribution
# over time is a cheap drift signal (inputs unlike the training data).
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Gunicorn accepts any upper-case token as a method: others share one series, so that
# invented methods cannot blow up the cardinality (as "unmatched" does for paths).
HTTP_METHODS = frozenset(HTTPMethod.__members__)


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (a Gunicorn master's workers); none where the kernel
    does not list them."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def pss_bytes(pid: int) -> int:
    """A process's proportional set size (its private pages, and its share of each page
    it shares with others)."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def family_pss_bytes(pid: int) -> int:
    """The proportional set size of ``pid`` and the processes it started, together: a page
    they share counts once in all. A process that exited meanwhile counts nothing."""
    total = 0
    for process in [pid, *children(pid)]:
        try:
            total += pss_bytes(process)
        except OSError:
            continue
    return total


class ServerMemory(Collector):
    """``sentiment_server_memory_bytes``, read when scraped: the proportional set size of
    the Gunicorn master and all its workers (of this process alone outside Gunicorn). A
    page they share counts once in all, so on a dyno, where the server is all that runs,
    it is what the dyno's memory counter shows. The transformers grow with the shapes of
    call clients cause (bounded: README, Limits). About 4 ms a scrape for three processes
    (measured), none on the request path."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if os.environ.get(MULTIPROC_DIR_ENV):  # a Gunicorn worker: the master's family
            total = family_pss_bytes(os.getppid())
        else:
            total = pss_bytes(os.getpid())
        yield GaugeMetricFamily(
            "sentiment_server_memory_bytes",
            "Proportional set size of the Gunicorn master and its workers, read when scraped.",
            value=total,
        )


@dataclass
class ServiceMetrics:
    """The service's metrics, bound to one registry.

    Counts come from the histograms' ``_count`` series, as in OpenTelemetry's HTTP
    metrics: requests by route, method and status from the request-duration histogram,
    predictions by label from the confidence histogram. Each sample written costs a
    lock and a write to a shared file under Gunicorn, several times a request.
    """

    registry: CollectorRegistry
    request_latency: Histogram
    inference_latency: Histogram
    batch_size: Histogram
    confidence: Histogram
    model_requests: Counter
    model_info: Gauge
    model_label: Gauge
    training_label_share: Gauge
    shadow_comparisons: Counter
    shadow_latency: Histogram
    shadow_dropped: Counter
    worker_starts: Counter
    connections_evened: Counter
    worker_answers: Counter
    records_dropped: Counter
    feedback: Counter
    live_accuracy: Gauge
    accuracy_against_stable: Gauge
    drift_psi: Gauge
    bandit_share: Gauge
    _children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict, repr=False)

    def child(self, metric: Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels()`` checks its arguments and
        takes a lock on every call, and this runs several times per request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            try:
                found = metric.labels(*labels)
            except FileNotFoundError:  # the folder of this process's sample files is gone
                ensure_multiproc_dir()
                found = metric.labels(*labels)
            self._children[key] = found
        return found

    @classmethod
    def create(cls) -> ServiceMetrics:
        # Each worker creates its metrics at start: a folder deleted since the master
        # made it is re-created here, so that a new worker can always boot.
        ensure_multiproc_dir()
        registry = CollectorRegistry()
        registry.register(ServerMemory())
        return cls(
            registry=registry,
            request_latency=Histogram(
                "sentiment_http_request_duration_seconds",
                "Time spent in the app per request, by route template, method and status.",
                ["route", "method", "status"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            inference_latency=Histogram(
                "sentiment_inference_duration_seconds",
                "Preprocessing and model inference time per batch, by model version.",
                ["version"],
                buckets=INFERENCE_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "sentiment_batch_size",
                "Texts per request (a batch's reviews; dynamic batching and calls of at most "
                "512 word pieces may score them in other calls), by model version.",
                ["version"],
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            confidence=Histogram(
                "sentiment_prediction_confidence",
                "Probability of the predicted label, by version and label (a drift signal).",
                ["version", "label"],
                buckets=CONFIDENCE_BUCKETS,
                registry=registry,
            ),
            model_requests=Counter(
                "sentiment_model_requests",
                "Requests to a model version by outcome (ok, or error: the model raised).",
                ["version", "outcome"],
                registry=registry,
            ),
            model_info=Gauge(
                "sentiment_model_info",
                "The model this server runs (value 1), one series per live model, with the "
                "precision it computes in (f32, bf16 or int8).",
                ["name", "version", "backend", "precision"],
                multiprocess_mode="livemax",
                registry=registry,
            ),
            model_label=Gauge(
                "sentiment_model_label",
                "Which version each label (stable, canary, ...) points at (value 1).",
                ["label", "version"],
                multiprocess_mode="livemax",
                registry=registry,
            ),
            training_label_share=Gauge(
                "sentiment_training_label_share",
                "Each class's share of a version's training data: the label-mix reference.",
                ["version", "label"],
                multiprocess_mode="livemax",
                registry=registry,
            ),
            shadow_comparisons=Counter(
                "sentiment_shadow_comparisons",
                "Texts scored by the shadow candidate, by whether it agreed with stable.",
                ["stable_version", "candidate_version", "agreement"],
                registry=registry,
            ),
            shadow_latency=Histogram(
                "sentiment_shadow_inference_duration_seconds",
                "The shadow candidate's inference time per batch.",
                ["version"],
                buckets=INFERENCE_BUCKETS,
                registry=registry,
            ),
            shadow_dropped=Counter(
                "sentiment_shadow_dropped",
                "Shadow work dropped: the queue was full or the candidate raised.",
                ["version"],
                registry=registry,
            ),
            worker_starts=Counter(
                "sentiment_worker_starts",
                "Workers that finished loading their models (restarts show as increases).",
                registry=registry,
            ),
            connections_evened=Counter(
                "sentiment_connections_evened",
                "Kept-alive connections a worker closed after a response because it held "
                "clearly more than another worker (app/server/listeners.py).",
                registry=registry,
            ),
            worker_answers=Counter(
                "sentiment_http_worker_answers",
                "Answers the worker gave before the app had the request (app/server/worker.py): "
                "408 request_timeout, 503 server_busy, and what Gunicorn's parser refused "
                "(400, 414, 431), by status and code.",
                ["status", "code"],
                registry=registry,
            ),
            records_dropped=Counter(
                "sentiment_prediction_records_dropped",
                "Prediction records not stored: the queue was full or the database failed.",
                ["reason"],
                registry=registry,
            ),
            feedback=Counter(
                "sentiment_feedback",
                "True labels received (POST /feedback), by version and whether it was right.",
                ["version", "correct"],
                registry=registry,
            ),
            # The gauges below are computed from the shared database by every worker's
            # background thread: all workers agree, the most recent value is the one.
            live_accuracy=Gauge(
                "sentiment_live_accuracy",
                "Share of the predictions with feedback that were right, per version.",
                ["version"],
                multiprocess_mode="livemostrecent",
                registry=registry,
            ),
            accuracy_against_stable=Gauge(
                "sentiment_live_accuracy_against_stable",
                "A version's live accuracy minus the stable version's (GET /monitoring's "
                "against_stable): the estimate and its 95% interval's low and high bounds.",
                ["version", "bound"],
                multiprocess_mode="livemostrecent",
                registry=registry,
            ),
            drift_psi=Gauge(
                "sentiment_drift_psi",
                "Population stability index over the last day against the version's test-set "
                "reference: of the label mix or of the confidence histogram.",
                ["version", "signal"],
                multiprocess_mode="livemostrecent",
                registry=registry,
            ),
            bandit_share=Gauge(
                "sentiment_bandit_share",
                "ROUTING=bandit: the share of requests each version gets now.",
                ["version"],
                multiprocess_mode="livemostrecent",
                registry=registry,
            ),
        )

    def observe_inference(
        self, version: str, seconds: float, labels: Sequence[str], top: Sequence[float]
    ) -> None:
        """Record one inference call: its time, batch size, labels and confidences."""
        self.child(self.inference_latency, version).observe(seconds)
        self.child(self.batch_size, version).observe(len(labels))
        self.child(self.model_requests, version, "ok").inc()
        by_label: dict[str, list[float]] = defaultdict(list)
        for label, probability in zip(labels, top, strict=True):
            by_label[label].append(probability)
        for label, probabilities in by_label.items():
            observe_all(self.child(self.confidence, version, label), probabilities)

    def observe_shadow(
        self, stable: str, candidate: str, agreed: Sequence[bool], seconds: float
    ) -> None:
        """Record the shadow candidate's verdicts against stable's, and its time."""
        self.child(self.shadow_latency, candidate).observe(seconds)
        agreeing = sum(agreed)
        if agreeing:
            self.child(self.shadow_comparisons, stable, candidate, "agree").inc(agreeing)
        if len(agreed) - agreeing:
            self.child(self.shadow_comparisons, stable, candidate, "disagree").inc(
                len(agreed) - agreeing
            )

    def exposition(self) -> bytes:
        """The text format: merged across workers under Gunicorn, else this app's.

        Raises ``MetricsUnavailable`` (logged once, one line) when the workers' folder was
        deleted, after re-creating it: the next scrape has the samples written since by
        new workers; the running ones restart within seconds (``BufferingWorker``), as
        what they write goes to the deleted files.
        """
        folder = os.environ.get(MULTIPROC_DIR_ENV)
        if not folder:
            return generate_latest(self.registry)
        if ensure_multiproc_dir():  # logged there
            raise MetricsUnavailable(f"{folder} was deleted")
        try:
            with _folder_lock(folder, fcntl.LOCK_SH):  # not while the master folds
                registry = CollectorRegistry()
                registry.register(_WorkerSamples(folder))
                registry.register(ServerMemory())
                return generate_latest(registry)
        except (OSError, ValueError, KeyError, struct.error, RuntimeError) as error:  # damaged
            log.error(
                "metrics cannot be read: %s", error.__class__.__name__, extra={"folder": folder}
            )
            raise MetricsUnavailable(str(error)) from None


def observe_all(histogram: Any, amounts: Sequence[float]) -> None:
    """``histogram.observe(x)`` for each of ``amounts`` (a labelled child), with one write
    to each bucket that gets any, instead of two writes per amount: a batch of 64
    predictions made 128 sample-file writes (each checking the pid) for the confidence
    histogram alone. Uses the fields ``Histogram.observe`` uses in prometheus-client
    0.26.0 (pinned; tests/test_metrics.py checks that both give the same samples)."""
    if len(amounts) == 1:
        histogram.observe(amounts[0])
        return
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    counts: dict[int, int] = defaultdict(int)
    for amount in amounts:  # observe(): the first bucket whose bound is >= the amount
        if amount == amount:  # observe() puts a NaN in no bucket
            counts[bisect.bisect_left(bounds, amount)] += 1
    histogram._sum.inc(sum(amounts))
    for index, count in counts.items():
        histogram._buckets[index].inc(count)
