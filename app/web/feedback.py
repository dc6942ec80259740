"""Feedback and monitoring: ``POST /feedback`` (the true label of an earlier answer) and
``GET /monitoring`` (per version: predictions, feedback, live accuracy with its interval and
macro-F1, the confusion matrix, the comparison with the stable version, label mixes,
drift), and the wiring of the prediction store (``app.feedback``) into the worker:
the background recorder, the bandit's rewards and the quality gauges.

Follows Seldon Core's feedback API where the issue is silent: the caller names the
answer by its request id (Seldon: the response's ``meta.puid``), the reward is 1 for a
correct answer and 0 otherwise, and a multi-armed-bandit router learns from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, request, url_for
from marshmallow import Schema, ValidationError

from app.feedback import quality
from app.feedback.recorder import PredictionRecorder
from app.feedback.store import (
    DELETE_CHUNK,
    ConflictingFeedback,
    FeedbackItem,
    FeedbackResult,
    LabelNotAClass,
    PredictionStore,
    StoreConfigError,
    StoreUnavailable,
    UnknownPrediction,
    engine_url,
)
from app.observability.metrics import ServiceMetrics, critical_once
from app.serving.registry import ascii_digits
from app.web.errors import APIError, ValidationFailed
from app.web.long_requests import may_run_long
from app.web.models import ServedModels
from app.web.schemas import (
    BatchLength,
    FeedbackQuerySchema,
    feedback_item_schema,
    repeated_parameters,
)

bp = Blueprint("feedback", __name__)
log = logging.getLogger(__name__)
FEEDBACK_QUERY = FeedbackQuerySchema()

FEEDBACK = "feedback"
# At most this long, a /feedback naming an unknown answer waits for this worker's queue.
FEEDBACK_FLUSH_SECONDS = 1.0
# Then, for the other workers' (and dynos') writers, which write an answer within about
# FLUSH_SECONDS of it: FEEDBACK_WAIT_MS, looking again every FEEDBACK_LOOK_SECONDS.
FEEDBACK_LOOK_SECONDS = 0.1
FEEDBACK_SCHEMA = "feedback_schema"
# How often each worker re-reads the bandit's rewards and recomputes the quality gauges.
BANDIT_REFRESH_SECONDS = 2.0
GAUGES_REFRESH_SECONDS = 30.0
# How often a worker checks that its SQLite file is still the one it writes (a stat).
FILE_CHECK_SECONDS = 5.0
# How long a request waits for its turn on the database (``Feedback.turn``), else 503.
DATABASE_TURN_SECONDS = 0.25
# Retention runs hourly, or every tenth of the retention when that is shorter (a retention
# of minutes, for privacy, kept records up to an hour past it).
RETENTION_EVERY_SECONDS = 3600.0


class PredictionNotFound(APIError):
    status = 404
    code = "prediction_not_found"
    message = "No recorded prediction has this request id and index."


class PredictionPending(APIError):
    status = 503
    code = "prediction_pending"
    message = (
        "No recorded prediction has this request id and index yet, and its record may "
        "still be on its way (the database is behind, or this worker already waits for "
        "another's to be written); retry in a second."
    )
    headers = (("Retry-After", "1"),)


class AnswerPending(UnknownPrediction):
    """Not found, and not waited for: another request of the worker was waiting."""


class FeedbackConflict(APIError):
    status = 409
    code = "feedback_conflict"
    message = "This prediction already has a different true label."


# What the store (or the wait) says about an item, and the answer that names it.
ITEM_ERRORS = {
    AnswerPending: PredictionPending,
    UnknownPrediction: PredictionNotFound,
    ConflictingFeedback: FeedbackConflict,
}


class DatabaseUnavailable(APIError):
    status = 503
    code = "database_unavailable"
    message = "The prediction store cannot be reached; try again later."


class Feedback:
    """This worker's store, recorder and feedback schema."""

    def __init__(self, app: Flask, models: ServedModels, metrics: ServiceMetrics):
        config = app.config
        self.models = models
        self.metrics = metrics
        # Each loaded version's classes: "neutral" for a two-class version's answer was
        # stored, and counted wrong in a confusion matrix that had no row for it.
        self.classes = {v: p.bundle.classes for v, p in models.registry.versions.items()}
        self.retention_days = config["PREDICTION_RETENTION_DAYS"]
        self.wait_seconds = config["FEEDBACK_WAIT_MS"] / 1000
        if not self.retention_days > 0:
            raise StoreConfigError(
                f"PREDICTION_RETENTION_DAYS={self.retention_days}: use a number of days above 0"
            )
        self.store = PredictionStore.from_url(
            engine_url(config["DATABASE_URL"], Path(app.instance_path))
        )
        periodic: list[tuple[float, Any]] = [
            (FILE_CHECK_SECONDS, self.reopen_if_replaced),
            (GAUGES_REFRESH_SECONDS, self.refresh_gauges),
            (min(RETENTION_EVERY_SECONDS, self.retention_days * 86400 / 10), self.delete_expired),
        ]
        if models.router.bandit is not None:
            periodic.insert(0, (BANDIT_REFRESH_SECONDS, self.refresh_bandit))
        self._expired = 0  # records deleted by the retention pass in progress
        self.recorder = PredictionRecorder(
            self.store,
            lambda reason, count: metrics.child(metrics.records_dropped, reason).inc(count),
            periodic,
        )
        self._turn = threading.Lock()
        # One request of this worker at a time waits for the other writers (a thread
        # each, and the worker has two); the others get a 503 to retry (AnswerPending).
        self._waiting = threading.Lock()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """A request's turn on the database: one request of this worker at a time, each
        waiting at most DATABASE_TURN_SECONDS for it, else ``StoreUnavailable``. A
        database that stops answering then holds one of the worker's two threads, never
        both, and the other keeps serving what needs a thread (larger bodies; with a
        transformer, explanations). Such a request takes milliseconds (README: a page of
        `GET /feedback` 0.3-8 ms, `/monitoring` 2-7 ms with a million records)."""
        if not self._turn.acquire(timeout=DATABASE_TURN_SECONDS):
            raise StoreUnavailable("another request of this worker is waiting on the database")
        try:
            yield
        finally:
            self._turn.release()

    def close(self) -> None:
        """Write what the recorder holds, stop it and close the connections."""
        self.recorder.stop()
        self.store.close()

    def give_feedback(self, items: list[FeedbackItem]) -> list[FeedbackResult]:
        """Store true labels (``PredictionStore.give_feedback``), each look on the database
        in this worker's turn. An answer not found may still wait in a queue, since a
        record is written up to FLUSH_SECONDS after its answer: this worker's queue is
        written and the items looked up again; then, for another worker's or another
        dyno's queue (behind a router, feedback seldom reaches the worker that answered),
        again every FEEDBACK_LOOK_SECONDS for FEEDBACK_WAIT_MS, outside the turn. One
        request of the worker waits at a time; another not found meanwhile raises
        ``AnswerPending`` (a 503 to retry), since it cannot tell yet."""
        try:
            return self._look(items)
        except UnknownPrediction as error:
            if not self.recorder.flush(timeout=FEEDBACK_FLUSH_SECONDS):
                # This worker's writer is behind (a slow or locked database): the answer
                # may wait in its queue. Not a 404, which tells the client it never was.
                raise AnswerPending(*error.args) from None
        waits = self.wait_seconds > 0 and self._waiting.acquire(blocking=False)
        deadline = time.monotonic() + (self.wait_seconds if waits else 0)
        try:
            while True:
                try:
                    return self._look(items)
                except UnknownPrediction as error:
                    if time.monotonic() >= deadline:
                        if self.wait_seconds and not waits:
                            raise AnswerPending(*error.args) from None
                        raise
                time.sleep(FEEDBACK_LOOK_SECONDS)
        finally:
            if waits:
                self._waiting.release()

    def _look(self, items: list[FeedbackItem]) -> list[FeedbackResult]:
        with self.turn():
            return self.store.give_feedback(items, time.time(), self.classes)

    def refresh_bandit(self) -> None:
        bandit = self.models.router.bandit
        if bandit is not None:
            bandit.update(self.store.arms())
            for version, share in bandit.expected_shares().items():
                self.metrics.child(self.metrics.bandit_share, version).set(share)

    def refresh_gauges(self) -> None:
        """``/monitoring``'s figures as gauges. A figure that has no value now (no feedback
        in the retention, no prediction in the last day) is NaN, not the last value it had:
        an alert on a stale drift would fire until the worker restarts."""
        stable = self.models.registry.stable.bundle.version
        for entry in self.report()["versions"]:
            version = entry["version"]
            self.metrics.child(self.metrics.live_accuracy, version).set(known(entry["accuracy"]))
            if version != stable:  # the stable version has no difference to itself
                against = entry["against_stable"] or {}
                low, high = against.get("interval", (None, None))
                bounds = {"estimate": against.get("accuracy_difference"), "low": low, "high": high}
                for bound, value in bounds.items():
                    metric = self.metrics.accuracy_against_stable
                    self.metrics.child(metric, version, bound).set(known(value))
            for signal in ("label_mix", "confidence"):
                value = entry["drift"][f"{signal}_psi"]
                self.metrics.child(self.metrics.drift_psi, version, signal).set(known(value))

    def reopen_if_replaced(self) -> None:
        if self.store.reopen_if_replaced():
            log.error(
                "the SQLite file of DATABASE_URL was deleted or replaced while serving: "
                "recording goes on in a new file; the records written since are lost"
            )

    def delete_expired(self) -> bool:
        """One chunk of the expired records a round of the writer, between its writes:
        all at once held the writer for seconds (600,000 records: 10 s), answers were
        written that late and feedback on them was told 404 (an outside probe). True
        while more are left (the writer runs it again next round)."""
        cutoff = time.time() - self.retention_days * 86400
        deleted = self.store.delete_older_than(cutoff, chunks=1)
        self._expired += deleted
        if deleted == DELETE_CHUNK:
            return True
        if self._expired:
            log.info("deleted expired prediction records", extra={"deleted": self._expired})
            self._expired = 0
        return False

    def report(self) -> dict[str, Any]:
        """What ``GET /monitoring`` answers."""
        summary = self.store.summary(time.time())
        bandit = self.models.router.bandit
        shares = bandit.expected_shares() if bandit is not None else {}
        stable = self.models.registry.stable.bundle.version
        versions = []
        for version, predictor in self.models.registry.versions.items():
            bundle = predictor.bundle
            entry = quality.version_report(version, bundle.classes, bundle.metadata, summary)
            entry["against_stable"] = None
            if version != stable:
                entry["against_stable"] = quality.against_stable(
                    summary.confusion.get(version, {}), stable, summary.confusion.get(stable, {})
                )
            share = shares.get(version)
            entry["bandit_share"] = None if share is None else round(share, 4)
            versions.append(entry)
        return {
            "database": self.store.dialect,
            "retention_days": self.retention_days,
            "routing": self.models.router.policy,
            "versions": versions,
        }


def init_app(app: Flask) -> None:
    """Open the store and start this worker's recorder (after the models have loaded).
    The database is not touched here: a dead one must not stop the server from starting."""
    models = served_models_of(app)
    classes = sorted({c for p in models.registry.versions.values() for c in p.bundle.classes})
    app.extensions[FEEDBACK_SCHEMA] = feedback_item_schema(classes)
    if app.config["RECORD_PREDICTIONS"]:
        try:
            feedback = Feedback(app, models, app.extensions["metrics"])
        except StoreConfigError as error:
            critical_once(log, "prediction store not usable: %s", error)
            error.already_logged = True  # the worker exits 3 on it, without a traceback
            raise
        models.recorder = feedback.recorder
        app.extensions[FEEDBACK] = feedback
        may_run_long(app, ("/feedback", "/monitoring"))  # they wait on the database
    app.register_blueprint(bp)


def close(app: Any) -> None:
    """Write the answers still queued and close the store (a worker that stops). ``app``
    is whatever the worker served: a benchmark's other app has no store."""
    feedback = getattr(app, "extensions", {}).get(FEEDBACK)
    if feedback is not None:
        feedback.close()


def known(value: float | None) -> float:
    """A gauge's value: NaN for none (Prometheus' "no value"; ``max`` skips it)."""
    return math.nan if value is None else value


def served_models_of(app: Flask) -> ServedModels:
    return app.extensions["models"]


def current_feedback() -> Feedback:
    feedback = current_app.extensions.get(FEEDBACK)
    if feedback is None:
        raise DatabaseUnavailable("Predictions are not recorded here (RECORD_PREDICTIONS=0).")
    return feedback


def load_items(schema: Schema, payload: Any, max_items: int) -> list[FeedbackItem]:
    """An object, or a list of 1 to ``max_items`` objects, each checked by ``schema``."""
    try:
        if isinstance(payload, list):
            BatchLength(
                min=1,
                max=max_items,
                error="Send between {min} and {max} feedback items (got {length}).",
            )(payload)
            loaded = schema.load(payload, many=True)
        else:
            loaded = [schema.load(payload)]
    except ValidationError as error:
        raise ValidationFailed(details=error.normalized_messages()) from None
    return [FeedbackItem(d["request_id"], d["index"], d["label"]) for d in loaded]


@bp.post("/feedback")
def feedback() -> dict[str, Any]:
    """Store true labels for earlier answers (all or none)."""
    items = load_items(
        current_app.extensions[FEEDBACK_SCHEMA],
        request.get_json(),
        current_app.config["MAX_BATCH_SIZE"],
    )
    store = current_feedback()
    try:
        results = store.give_feedback(items)
    except (UnknownPrediction, ConflictingFeedback) as error:
        item = error.args[0]
        details = {"request_id": item.request_id, "index": item.item}
        raise ITEM_ERRORS[type(error)](details=details) from None
    except LabelNotAClass as error:
        item, version, classes = error.args
        message = f"Version {version} answers {' or '.join(classes)}, not {item.label}."
        details = {"request_id": item.request_id, "index": item.item, "label": [message]}
        raise ValidationFailed(details=details) from None
    except StoreUnavailable as error:
        log.warning("feedback refused: the database is unavailable (%s)", error)
        raise DatabaseUnavailable() from None
    metrics = store.metrics
    for result in results:
        if result.new:
            correct = "true" if result.correct else "false"
            metrics.child(metrics.feedback, result.version, correct).inc()
    return {
        "feedback": [
            {
                "request_id": r.request_id,
                "index": r.item,
                "version": r.version,
                "predicted": r.predicted,
                "label": r.label,
                "correct": r.correct,
                "repeated": not r.new,
            }
            for r in results
        ]
    }


@bp.get("/feedback")
def labelled_answers() -> dict[str, Any]:
    """The answers that have a true label, in the order the labels came, a page at a time:
    what a data scientist joins with the texts it holds (by request id) to find the errors
    and to retrain."""
    args = request.args
    errors = repeated_parameters(args)
    try:
        query = FEEDBACK_QUERY.load(args)
    except ValidationError as error:
        errors = error.normalized_messages() | errors
    if errors:
        raise ValidationFailed("The query parameters are not valid.", errors)
    after = None
    if "after" in query:
        seconds, _, row = query["after"].partition("_")
        after = (float(seconds), int(row))
    feedback = current_feedback()
    try:
        with feedback.turn():
            answers, more = feedback.store.labelled_answers(
                query["limit"],
                after,
                query["since"].timestamp() if "since" in query else None,
                version_named(query["version"]) if "version" in query else None,
                query.get("correct"),
            )
    except StoreUnavailable:
        raise DatabaseUnavailable() from None
    arguments = request.args.to_dict()
    if answers:
        seconds, row = answers[-1].position
        arguments["after"] = f"{seconds!r}_{row}"
    return {
        "feedback": [
            {
                "request_id": a.request_id,
                "index": a.item,
                "version": a.version,
                "predicted": a.predicted,
                "score": a.score,
                "label": a.label,
                "correct": a.predicted == a.label,
                "predicted_at": utc(a.predicted_at),
                "feedback_at": utc(a.feedback_at),
            }
            for a in answers
        ],
        "more": more,
        "next": url_for(".labelled_answers", **arguments),
    }


def version_named(text: str) -> str:
    """The version ``?version=`` names, read as the scoring routes read it
    (``ModelRegistry.version``, with its check): ASCII digits, "01" is 1. The filter
    compared the text as given, and ``?version=01`` exported nothing of the answers
    ``/classify?version=01`` had given, recorded as "1" (an outside probe). A text no
    version has (" 1", "３", "v1") is kept: it finds nothing, as the OpenAPI schema's
    string parameter lets it."""
    return str(int(text)) if ascii_digits(text) else text


def utc(seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC, to the millisecond: ``2026-12-05T16:51:02.123Z``."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@bp.get("/monitoring")
def monitoring() -> dict[str, Any]:
    """Per version: predictions, feedback, live accuracy and macro-F1, label mixes, drift."""
    feedback = current_feedback()
    try:
        with feedback.turn():
            return feedback.report()
    except StoreUnavailable:
        raise DatabaseUnavailable() from None
