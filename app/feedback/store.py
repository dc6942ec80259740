"""The prediction store: every recorded prediction, the true labels given as feedback, and
the bandit's arms, in SQLite (the embedded default) or PostgreSQL, through SQLAlchemy Core.

The schema lives here and only here (``create_all`` makes it; no migration tool until a
second place needs it). Review texts are never stored: a row says which request and batch
position it answers, which version answered, its label and score, and when.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import functools
import itertools
import logging
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger(__name__)

REQUEST_ID_MAX = 200  # X-Request-ID: at most 200 characters (Heroku's router)
# Seconds a statement may take on PostgreSQL, and to connect: a slow database costs the
# background writer this long at most, never a request to /classify.
STATEMENT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 3
# The most characters of the driver's message a log line quotes (``_reason``).
DRIVER_MESSAGE_MAX = 300
# Counting the records of a database made before prediction_counts existed, once.
BACKFILL_MS = 600_000
# Connections per worker: the background writer's, and that of the /feedback or
# /monitoring request whose turn it is (app/web/feedback.py, one at a time), with one to
# spare. README: workers × this ≤ the plan's limit.
POOL_SIZE = 3
DELETE_CHUNK = 5000
WAL_CHECKPOINT_PAGES = 10_000  # SQLite: pages of 4 kB
WRITES = "prediction_store_writes"  # execution option: a transaction that will write

metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("request_id", String(REQUEST_ID_MAX), nullable=False),
    Column("item", Integer, nullable=False),  # position in the request's batch, from 0
    Column("version", String(32), nullable=False),
    Column("label", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("created_at", Float, nullable=False),  # Unix seconds
    Column("true_label", String(64)),  # the feedback; NULL until given
    Column("feedback_at", Float),
    UniqueConstraint("request_id", "item", name="predictions_request_item"),
    # Retention and the last hour's and day's mixes; every index costs each insert a page.
    Index("predictions_created", "created_at"),
)
# The few rows with feedback, partial indexes of them alone: an insert (no feedback yet)
# never touches them, only a /feedback that stores a label. /monitoring's accuracy and F1
# read them without a full scan, and GET /feedback its pages in the order the labels
# came, of every version or of one, without sorting every label.
_with_feedback = predictions.c.true_label.is_not(None)


def _labelled_index(name: str, *columns: Any) -> Index:
    """An index of the rows that have feedback only (partial on both databases)."""
    return Index(name, *columns, sqlite_where=_with_feedback, postgresql_where=_with_feedback)


_columns = predictions.c
feedback_in_order = _labelled_index("predictions_feedback_order", _columns.feedback_at, _columns.id)
feedback_by_version = _labelled_index(
    "predictions_feedback_by_version", _columns.version, _columns.feedback_at, _columns.id
)
# The confusion over every labelled answer (GET /monitoring, and the gauges every 30 s in
# each worker) is read from this index alone: 18 ms for 8,907 labelled answers among
# 257,019 on SQLite by feedback_by_version and a sort, 1.9 ms this way (an outside soak).
feedback_confusion = _labelled_index(
    "predictions_feedback_confusion", _columns.version, _columns.label, _columns.true_label
)
FEEDBACK_INDEXES = (feedback_in_order, feedback_by_version, feedback_confusion)
CONFUSION = (
    select(_columns.version, _columns.label, _columns.true_label, func.count())
    .where(_with_feedback)
    .group_by(_columns.version, _columns.label, _columns.true_label)
)
# PostgreSQL's advisory lock that feedback transactions take in turn (a number of our own).
FEEDBACK_LOCK = 0x5E47_F33D
# What a store made before them has instead: the labelled rows by version alone.
OLD_FEEDBACK_INDEX = "predictions_feedback"

# The confidence histogram's upper bucket edges, as the model folders' references and the
# sentiment_prediction_confidence histogram have them (then one bucket above the last).
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)

# What GET /monitoring and the gauges read instead of scanning the predictions: how many
# answers each minute had, per version, label and confidence bucket, written in the same
# transaction as the predictions they count (a few dozen rows a minute, against a row per
# answer: the last day's summary took 0.74 s of CPU at a million records, every 30 s in
# every worker). Deleted with the predictions by retention, by whole minutes.
prediction_counts = Table(
    "prediction_counts",
    metadata,
    Column("minute", Integer, primary_key=True),  # Unix minute: created_at // 60
    Column("version", String(32), primary_key=True),
    Column("label", String(64), primary_key=True),
    # The index of the first of CONFIDENCE_BUCKETS ≥ the score (len: above the last). The
    # counts are kept per bucket: changing the edges changes what stored counts mean.
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
)
_COUNT_KEY = ("minute", "version", "label", "bucket")
# The sum of each version's prediction_counts, kept with them: /monitoring's totals
# without summing 30 days of minutes (up to 80,000 rows a day, 0.85 s at 30 days).
prediction_totals = Table(
    "prediction_totals",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("count", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
)

# The bandit's state (Seldon Core keeps its routers' in Redis): rewards per version,
# updated in the same transaction as the feedback that earns them.
bandit_arms = Table(
    "bandit_arms",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("successes", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0),
)


class StoreConfigError(ValueError):
    """A setting of the store is unusable (the message names it, never the password)."""


class StoreUnavailable(Exception):
    """The database could not be reached or refused the statement."""


class UnknownPrediction(LookupError):
    """No recorded prediction has this request id and batch position."""


class ConflictingFeedback(Exception):
    """The prediction already has a different true label."""


class LabelNotAClass(Exception):
    """The label is not one of the classes of the version that answered: (item, version,
    its classes)."""


class PredictionRecord(NamedTuple):
    """One answered text, as recorded (no text). A tuple in the order of
    ``RECORD_COLUMNS``: the writer hands it to the driver as it is."""

    request_id: str
    item: int
    version: str
    label: str
    score: float
    created_at: float


RECORD_COLUMNS = PredictionRecord._fields
_RECORD_KEY = operator.itemgetter(0, 1)  # request_id, item
_COLUMN_LIST = ", ".join(RECORD_COLUMNS)
# The writer's statements, run on the driver's cursor: a batch costs the driver's work per
# row, not SQLAlchemy's compilation and parameter processing.
# SQLite: many rows a statement. sqlite3's executemany lets go of the GIL around each row's
# step, and each row then waits for it to come back from the busy request threads (up to
# the 5 ms switch interval). Measured against a thread running Python non-stop: 200 rows
# a second at 70-100 µs of CPU each, against 2,000 a second at 28 µs with 200 rows a
# statement (alone: 16 and 19 µs).
SQLITE_ROWS_PER_INSERT = 200  # 1,200 parameters (SQLite allows 32,766)


@functools.lru_cache(maxsize=SQLITE_ROWS_PER_INSERT)
def _sqlite_insert(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO predictions ({_COLUMN_LIST}) VALUES {values} "
        "ON CONFLICT (request_id, item) DO NOTHING"
    )


def sqlite_insert(cursor: Any, rows: Sequence[PredictionRecord]) -> None:
    """Insert ``rows`` on a sqlite3 cursor, in order, SQLITE_ROWS_PER_INSERT a statement."""
    for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
        chunk = rows[start : start + SQLITE_ROWS_PER_INSERT]
        cursor.execute(_sqlite_insert(len(chunk)), list(itertools.chain.from_iterable(chunk)))


def count_key(record: Sequence[Any]) -> tuple[int, str, str, int]:
    """The ``prediction_counts`` row a record (or a row in its column order) adds 1 to,
    as ``_counts_of`` makes it in SQL."""
    _, _, version, label, score, created_at = record
    return (int(created_at // 60), version, label, bisect.bisect_left(CONFIDENCE_BUCKETS, score))


def _counts_of(dialect: str, where: Any = None) -> Any:
    """``prediction_counts`` rows made from the predictions that ``where`` selects, added
    to those already there (one statement)."""
    c = predictions.c
    seconds = c.created_at / 60
    minute = cast(func.floor(seconds) if dialect == "postgresql" else seconds, Integer)
    bucket = case(
        *[(c.score <= edge, index) for index, edge in enumerate(CONFIDENCE_BUCKETS)],
        else_=len(CONFIDENCE_BUCKETS),
    )
    # Always a WHERE: without one, SQLite would read the ON CONFLICT below as part of the
    # SELECT (its UPSERT documentation says so).
    rows = select(minute, c.version, c.label, bucket, func.count()).where(
        true() if where is None else where
    )
    statement = _insert(dialect, prediction_counts).from_select(
        [*_COUNT_KEY, "count"], rows.group_by(minute, c.version, c.label, bucket)
    )
    return statement.on_conflict_do_update(
        index_elements=list(_COUNT_KEY),
        set_={"count": prediction_counts.c.count + statement.excluded["count"]},
    )


def _totals_of(dialect: str, table: Table, where: Any = None) -> Any:
    """``prediction_totals`` rows made from ``table`` (the predictions, or the per-minute
    counts) where ``where`` holds, added to those already there."""
    counted = func.count() if table is predictions else func.sum(table.c.count)
    rows = select(table.c.version, counted).where(true() if where is None else where)
    statement = _insert(dialect, prediction_totals).from_select(
        ["version", "count"], rows.group_by(table.c.version)
    )
    return statement.on_conflict_do_update(
        index_elements=["version"],
        set_={"count": prediction_totals.c.count + statement.excluded["count"]},
    )


POSTGRESQL_INSERT = (
    f"INSERT INTO predictions ({_COLUMN_LIST}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (request_id, item) DO NOTHING"
)
POSTGRESQL_INSERT_RETURNING = POSTGRESQL_INSERT + f" RETURNING {_COLUMN_LIST}"
POSTGRESQL_COPY = f"COPY predictions ({_COLUMN_LIST}) FROM STDIN"
_COUNT_KEY_LIST = ", ".join(_COUNT_KEY)
POSTGRESQL_ADD_COUNTS = (
    f"INSERT INTO prediction_counts ({_COUNT_KEY_LIST}, count) VALUES (%s, %s, %s, %s, %s) "
    f"ON CONFLICT ({_COUNT_KEY_LIST}) "
    "DO UPDATE SET count = prediction_counts.count + EXCLUDED.count"
)
POSTGRESQL_ADD_TOTALS = (
    "INSERT INTO prediction_totals (version, count) VALUES (%s, %s) "
    "ON CONFLICT (version) DO UPDATE SET count = prediction_totals.count + EXCLUDED.count"
)


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    item: int
    label: str


@dataclass(frozen=True)
class FeedbackResult:
    request_id: str
    item: int
    version: str
    predicted: str
    label: str
    correct: bool
    new: bool  # False: the same label was given before (an idempotent repeat)


class LabelledAnswer(NamedTuple):
    """A recorded answer with its true label (``GET /feedback``)."""

    request_id: str
    item: int
    version: str
    predicted: str
    score: float
    label: str  # the true one
    predicted_at: float  # Unix seconds
    feedback_at: float
    row: int  # the row's id: (feedback_at, row) orders the answers

    @property
    def position(self) -> tuple[float, int]:
        """Where a page that ends with this answer stops (``labelled_answers``' ``after``)."""
        return self.feedback_at, self.row


def engine_url(database_url: str, instance_dir: Path) -> str:
    """The SQLAlchemy URL for ``DATABASE_URL``: empty → a SQLite file in the instance
    folder; Heroku's ``postgres://`` and plain ``postgresql://`` → psycopg 3."""
    if not database_url:
        return f"sqlite:///{instance_dir / 'predictions.sqlite3'}"
    for scheme in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url.removeprefix(scheme)
    if database_url.startswith("sqlite:///"):
        return database_url
    scheme = database_url.partition("://")[0] if "://" in database_url else "no scheme"
    raise StoreConfigError(
        f"DATABASE_URL: use postgres://, postgresql:// or sqlite:/// (got {scheme[:20]})"
    )


def make_engine(url: str) -> Engine:
    """An engine with the pool and timeouts above; SQLite in WAL mode (readers never wait
    for the writer; several Gunicorn workers write the same file)."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:  # a file where a folder should be, a read-only disk
                raise StoreConfigError(
                    f"DATABASE_URL: cannot make the folder of the SQLite file {path} "
                    f"({error.strerror})"
                ) from None
        engine = create_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=CONNECT_TIMEOUT_S,
            connect_args={"timeout": STATEMENT_TIMEOUT_MS / 1000, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def sqlite_pragmas(connection: Any, _record: Any) -> None:
            # SQLAlchemy, not the driver, starts transactions (below).
            connection.isolation_level = None
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every 40 MB of WAL rather than 4 MB: the request id's index is
            # random, so a write dirties about a page per record, and a longer WAL copies
            # each page back to the database file once for many writes (-30% of the
            # writer's CPU with 200,000 records).
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def sqlite_begin(connection: Any) -> None:
            # A transaction that reads, then writes, takes the write lock first: in WAL
            # mode a reader that later writes after another worker's commit fails at once
            # (SQLITE_BUSY_SNAPSHOT), while waiting for the lock is what busy_timeout does.
            immediate = connection.get_execution_options().get(WRITES)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=CONNECT_TIMEOUT_S,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            "application_name": "sentiment-server",
        },
    )


def _insert(dialect: str, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT (imported here: a SQLite server never loads
    the PostgreSQL dialect)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


class PredictionStore:
    """Reads and writes the tables above; every failure of the database is a
    ``StoreUnavailable`` (the caller decides: drop records, or answer 503)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.writer = engine.execution_options(**{WRITES: True})
        self.dialect = engine.dialect.name
        # What the driver raises when the writer uses its cursor directly.
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._schema_ready = False
        # The SQLite file, and which file it was when the schema was made (device, inode).
        database = engine.url.database if self.dialect == "sqlite" else None
        self._file = Path(database) if database and database != ":memory:" else None
        self._file_identity: tuple[int, int] | None = None
        if self.dialect == "sqlite":
            new_rows = predictions.c.id > bindparam("after")
            self._count_new = (
                _counts_of(self.dialect, new_rows),
                _totals_of(self.dialect, predictions, new_rows),
            )

    @classmethod
    def from_url(cls, url: str) -> PredictionStore:
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def ensure_schema(self) -> None:
        """Create the tables once (several workers may race: the loser finds them made)."""
        if self._schema_ready:
            return
        try:
            try:
                self._create_schema()
            except SQLAlchemyError as error:
                if isinstance(error, DBAPIError) and error.statement is None:
                    raise  # no connection (no statement ran): not a race, no second wait
                # Another worker created them between our check and our CREATE.
                self._create_schema()
        except SQLAlchemyError as error:
            raise StoreUnavailable(self._reason(error)) from error
        self._schema_ready = True
        self._file_identity = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        if self._file is None:
            return None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _failed(self, error: Exception) -> StoreUnavailable:
        """What a failed statement raises. A table gone (dropped while serving, as
        ``heroku pg:reset`` drops them) makes the next use create the schema again:
        recording stopped until a restart, every record counted dropped (an outside
        probe)."""
        orig = getattr(error, "orig", error)
        if getattr(orig, "sqlstate", None) == "42P01" or "no such table" in str(orig):
            self._schema_ready = False
        return StoreUnavailable(self._reason(error))

    def _reason(self, error: Exception) -> str:
        """Why the database failed, for the log: the exception's class and the first line
        of the driver's own message (SQLite's "database or disk is full", "attempt to
        write a readonly database", "database is locked": a full disk was logged as
        "OperationalError" alone, like a locked or corrupt file; an outside probe).
        Never SQLAlchemy's text, which quotes the statement and its parameters, nor the
        lines a PostgreSQL error adds (``DETAIL`` quotes a row's values); the password,
        should a message quote it, is masked."""
        name = error.__class__.__name__
        if isinstance(error, DBAPIError):
            driver = error.orig
        elif isinstance(error, self._driver_error):
            driver = error
        else:
            return name
        first = str(driver).strip().partition("\n")[0].strip()
        password = self.engine.url.password
        if password:
            first = first.replace(str(password), "***")
        if len(first) > DRIVER_MESSAGE_MAX:
            first = first[:DRIVER_MESSAGE_MAX] + "…"
        return f"{name}: {first}" if first else name

    def reopen_if_replaced(self) -> bool:
        """Whether the SQLite file was deleted or replaced since the schema was made; if
        so, the connections to the old one are closed, and the next write makes the new
        file and its tables. Without this the workers went on writing into the deleted
        file, which their connections held open: every record lost, none counted."""
        if self._file_identity is None or self._identity() == self._file_identity:
            return False
        self.engine.dispose()
        self._schema_ready = False
        self._file_identity = None
        if self._file is not None:  # its folder may have gone with it (instance/ deleted)
            with contextlib.suppress(OSError):
                self._file.parent.mkdir(parents=True, exist_ok=True)
        return True

    def _create_schema(self) -> None:
        """The missing tables, in one transaction; the counts added to a store that
        already has predictions (made before they existed) count those first, and the
        labelled answers' indexes replace the one it had (create_all adds no index to a
        table that exists)."""
        with self.writer.begin() as connection:
            tables = inspect(connection)
            counted, totalled = (
                tables.has_table(t.name) for t in (prediction_counts, prediction_totals)
            )
            missing = []
            if tables.has_table(predictions.name):
                names = {index["name"] for index in tables.get_indexes(predictions.name)}
                missing = [index for index in FEEDBACK_INDEXES if index.name not in names]
            metadata.create_all(connection)
            if self.dialect == "postgresql" and (missing or not counted):
                # Once: each reads the whole table, which may take minutes.
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = {BACKFILL_MS}")
            for index in missing:
                index.create(connection)
            if missing:
                connection.exec_driver_sql(f"DROP INDEX IF EXISTS {OLD_FEEDBACK_INDEX}")
            if not counted:
                connection.execute(_counts_of(self.dialect))
            if not totalled:
                connection.execute(_totals_of(self.dialect, prediction_counts))

    def record(self, records: Sequence[PredictionRecord]) -> None:
        """Insert predictions in one transaction; a (request id, position) already
        recorded (a client that resends its X-Request-ID) keeps the answer recorded first.

        On PostgreSQL the batch goes in by ``COPY`` (a few µs of client CPU a row, against
        ~10 for a prepared INSERT); a batch that repeats a recorded request id fails the
        COPY's unique index and is inserted again row by row, skipping the repeats."""
        if not records:
            return
        self.ensure_schema()
        try:
            if self.dialect == "postgresql":
                self._record_postgresql(records)
            else:
                # In request-id order, the inserts walk the id's index from one end to
                # the other instead of jumping around it: -15% CPU a record. (A stable
                # sort on the key alone: of two answers with one id, the first is kept.)
                rows = sorted(records, key=_RECORD_KEY)
                with self.writer.begin() as connection:
                    cursor = connection.connection.cursor()
                    # The writer holds the lock: the new rows are those after the last id
                    # (a repeated request id adds none), and they are counted in SQL.
                    [last] = cursor.execute("SELECT max(id) FROM predictions").fetchone()
                    sqlite_insert(cursor, rows)
                    cursor.close()
                    for statement in self._count_new:
                        connection.execute(statement, {"after": last or 0})
        except (SQLAlchemyError, self._driver_error) as error:
            raise self._failed(error) from error

    def _record_postgresql(self, records: Sequence[PredictionRecord]) -> None:
        from psycopg.errors import UniqueViolation

        with self.engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            try:
                try:
                    with driver.cursor() as cursor:
                        with cursor.copy(POSTGRESQL_COPY) as copy:
                            for record in records:
                                copy.write_row(record)
                        self._add_counts_postgresql(cursor, records)
                    driver.commit()
                    return
                except UniqueViolation:
                    driver.rollback()
                with driver.cursor() as cursor:
                    cursor.executemany(POSTGRESQL_INSERT_RETURNING, records, returning=True)
                    inserted = []
                    for _ in cursor.results():
                        inserted.extend(cursor.fetchall())
                    self._add_counts_postgresql(cursor, inserted)
                driver.commit()
            except self._driver_error:
                # SQLAlchemy did not see this error: close the connection rather than
                # hand a broken one back to the pool.
                connection.invalidate()
                raise

    @staticmethod
    def _add_counts_postgresql(cursor: Any, records: Iterable[PredictionRecord]) -> None:
        """Add ``records`` to ``prediction_counts``, in key order: two workers adding to
        the same rows lock them in the same order and never deadlock."""
        counts = collections.Counter(map(count_key, records))
        cursor.executemany(POSTGRESQL_ADD_COUNTS, [(*key, n) for key, n in sorted(counts.items())])
        totals: collections.Counter[str] = collections.Counter()
        for (_, version, _, _), n in counts.items():
            totals[version] += n
        cursor.executemany(POSTGRESQL_ADD_TOTALS, sorted(totals.items()))

    def give_feedback(
        self,
        items: Sequence[FeedbackItem],
        now: float,
        classes: Mapping[str, Sequence[str]] | None = None,
    ) -> list[FeedbackResult]:
        """Store true labels, all or none: ``UnknownPrediction``, ``ConflictingFeedback``
        or ``LabelNotAClass`` (a label the answering version has not, by ``classes``:
        version → its classes; a version not in it takes any) leave the database as it
        was. Repeating the same label is accepted and changes nothing."""
        self.ensure_schema()
        results: list[FeedbackResult] = []
        try:
            with self.writer.begin() as connection:
                now = self._label_time(connection, now)
                for given in items:
                    where = and_(
                        predictions.c.request_id == given.request_id,
                        predictions.c.item == given.item,
                    )
                    row = connection.execute(
                        select(
                            predictions.c.version, predictions.c.label, predictions.c.true_label
                        ).where(where)
                    ).first()
                    if row is None:
                        raise UnknownPrediction(given)
                    known = (classes or {}).get(row.version)
                    if known is not None and given.label not in known:
                        raise LabelNotAClass(given, row.version, list(known))
                    if row.true_label is None:
                        # Only the first writer wins when two arrive at once; PostgreSQL
                        # makes the second wait, then finds the label set (rowcount 0).
                        updated = connection.execute(
                            update(predictions)
                            .where(where, predictions.c.true_label.is_(None))
                            .values(true_label=given.label, feedback_at=now)
                        )
                        if updated.rowcount != 1:
                            row = connection.execute(
                                select(
                                    predictions.c.version,
                                    predictions.c.label,
                                    predictions.c.true_label,
                                ).where(where)
                            ).one()
                    if row.true_label is not None:
                        if row.true_label != given.label:
                            raise ConflictingFeedback(given)
                        results.append(self._result(given, row, new=False))
                        continue
                    correct = row.label == given.label
                    self._reward(connection, row.version, correct)
                    results.append(self._result(given, row, new=True))
        except SQLAlchemyError as error:
            raise self._failed(error) from error
        return results

    def _label_time(self, connection: Any, now: float) -> float:
        """The time this transaction's labels get: ``now``, or just after the latest label
        stored if that is later (another worker's clock, or a transaction that read the
        clock first and waited for the lock). The transaction holds the writers' lock
        until it commits (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so labels
        become visible in the order of their times, and a ``GET /feedback`` reader whose
        ``next`` starts past the last label it saw never passes one still being written."""
        if self.dialect == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(FEEDBACK_LOCK)))
        latest = connection.execute(
            select(func.max(predictions.c.feedback_at)).where(_with_feedback)
        ).scalar()
        return now if latest is None or now > latest else math.nextafter(latest, math.inf)

    @staticmethod
    def _result(given: FeedbackItem, row: Any, new: bool) -> FeedbackResult:
        return FeedbackResult(
            given.request_id, given.item, row.version, row.label, given.label,
            row.label == given.label, new,
        )  # fmt: skip

    def _reward(self, connection: Any, version: str, correct: bool) -> None:
        column = "successes" if correct else "failures"
        statement = _insert(self.dialect, bandit_arms).values(
            version=version, successes=int(correct), failures=int(not correct)
        )
        statement = statement.on_conflict_do_update(
            index_elements=["version"],
            set_={column: getattr(bandit_arms.c, column) + 1},
        )
        connection.execute(statement)

    @staticmethod
    def _forget_rewards(connection: Any, deleted: Sequence[Any]) -> None:
        """Take the feedback among ``deleted`` predictions out of the bandit's rewards."""
        forgotten: collections.Counter[tuple[str, bool]] = collections.Counter(
            (row.version, row.label == row.true_label)
            for row in deleted
            if row.true_label is not None
        )
        arms = bandit_arms.c
        for (version, correct), count in sorted(forgotten.items()):
            column = arms.successes if correct else arms.failures
            connection.execute(
                update(bandit_arms)
                .where(arms.version == version)
                .values({column.name: case((column > count, column - count), else_=0)})
            )

    def arms(self) -> dict[str, tuple[int, int]]:
        """Version → (successes, failures) of feedback so far."""
        self.ensure_schema()
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(select(bandit_arms)).all()
        except SQLAlchemyError as error:
            raise self._failed(error) from error
        return {row.version: (row.successes, row.failures) for row in rows}

    def delete_older_than(self, cutoff: float, chunks: int | None = None) -> int:
        """Delete predictions made before ``cutoff`` (Unix seconds), in chunks of
        DELETE_CHUNK so that no transaction holds the table long, at most ``chunks`` of
        them (None: all); the number deleted. The bandit's rewards lose the feedback
        deleted with them, in the same transaction: the bandit learns from the feedback
        ``/monitoring`` still counts, not from every answer ever labelled."""
        self.ensure_schema()
        deleted = 0
        c = predictions.c
        try:
            for _ in itertools.repeat(None) if chunks is None else range(chunks):
                with self.writer.begin() as connection:
                    oldest = (
                        select(c.id)
                        .where(c.created_at < cutoff)
                        .limit(DELETE_CHUNK)
                        .scalar_subquery()
                    )
                    rows = connection.execute(
                        delete(predictions)
                        .where(c.id.in_(oldest))
                        .returning(c.version, c.label, c.true_label)
                    ).all()
                    self._forget_rewards(connection, rows)
                count = len(rows)
                deleted += count
                if count < DELETE_CHUNK:
                    break
            # The counts of the minutes wholly before the cutoff, and their sums from the
            # totals (what a DELETE returns is what this worker deleted: two workers never
            # subtract the same minutes).
            counts = prediction_counts.c
            with self.writer.begin() as connection:
                expired: collections.Counter[str] = collections.Counter()
                for version, count in connection.execute(
                    delete(prediction_counts)
                    .where(counts.minute < int(cutoff // 60))
                    .returning(counts.version, counts.count)
                ):
                    expired[version] += count
                for version, count in sorted(expired.items()):
                    connection.execute(
                        update(prediction_totals)
                        .where(prediction_totals.c.version == version)
                        .values(count=prediction_totals.c.count - count)
                    )
            return deleted
        except SQLAlchemyError as error:
            raise self._failed(error) from error

    def summary(self, now: float) -> StoreSummary:
        """Everything ``GET /monitoring`` reports: the totals, the last day's per-minute
        counts, and the predictions that have feedback (an index finds them)."""
        self.ensure_schema()
        counts = prediction_counts.c
        # Whole minutes: the last hour is the 60 minutes up to now, this one included.
        hour, day = int(now // 60) - 59, int(now // 60) - 1439
        try:
            with self.engine.connect() as connection:
                totals = connection.execute(select(prediction_totals)).all()
                confusion = connection.execute(CONFUSION).all()
                last_day = connection.execute(
                    select(
                        counts.version,
                        counts.label,
                        counts.bucket,
                        func.sum(case((counts.minute >= hour, counts.count), else_=0)),
                        func.sum(counts.count),
                    )
                    .where(counts.minute >= day)
                    .group_by(counts.version, counts.label, counts.bucket)
                ).all()
        except SQLAlchemyError as error:
            raise self._failed(error) from error
        summary = StoreSummary()
        for version, count in totals:
            if count:
                summary.predictions[version] = count
        for version, label, true_label, count in confusion:
            summary.confusion.setdefault(version, {})[(label, true_label)] = count
            summary.feedback[version] = summary.feedback.get(version, 0) + count
        for version, label, bucket, in_hour, in_day in last_day:
            hour_mix = summary.last_hour.setdefault(version, {})
            hour_mix[label] = hour_mix.get(label, 0) + int(in_hour or 0)
            day_mix = summary.last_day.setdefault(version, {})
            day_mix[label] = day_mix.get(label, 0) + int(in_day)
            histogram = summary.confidence.setdefault(version, [0] * (len(CONFIDENCE_BUCKETS) + 1))
            histogram[bucket] += int(in_day)
        return summary

    def labelled_answers(
        self,
        limit: int,
        after: tuple[float, int] | None = None,
        since: float | None = None,
        version: str | None = None,
        correct: bool | None = None,
    ) -> tuple[list[LabelledAnswer], bool]:
        """Up to ``limit`` answers that have a true label, in the order the labels came
        (``FEEDBACK_INDEXES``), past the ``after`` position (an answer's ``position``),
        where the label came at ``since`` or later, from ``version``, right or wrong
        (None: all); and whether more follow."""
        self.ensure_schema()
        c = predictions.c
        query = select(
            c.request_id, c.item, c.version, c.label, c.score, c.true_label, c.created_at,
            c.feedback_at, c.id,
        ).where(_with_feedback)  # fmt: skip
        if after is not None:
            query = query.where(tuple_(c.feedback_at, c.id) > tuple_(*after))
        if since is not None:
            query = query.where(c.feedback_at >= since)
        if version is not None:
            query = query.where(c.version == version)
        if correct is not None:
            query = query.where((c.label == c.true_label) if correct else (c.label != c.true_label))
        query = query.order_by(c.feedback_at, c.id).limit(limit + 1)
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as error:
            raise self._failed(error) from error
        return [LabelledAnswer(*row) for row in rows[:limit]], len(rows) > limit

    def scan_for(self, texts: Iterable[str]) -> list[str]:
        """Every text of ``texts`` found in any column of any table (the privacy test)."""
        found = []
        wanted = list(texts)
        with self.engine.connect() as connection:
            for table in metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    values = " ".join(str(value) for value in row)
                    found.extend(text for text in wanted if text in values)
        return found


@dataclass
class StoreSummary:
    """Counts per version, as the store holds them (``app.feedback.quality`` turns them
    into rates and scores)."""

    predictions: dict[str, int] = field(default_factory=dict)
    feedback: dict[str, int] = field(default_factory=dict)
    # (predicted, true) → count, over the predictions that have feedback
    confusion: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    last_hour: dict[str, dict[str, int]] = field(default_factory=dict)
    last_day: dict[str, dict[str, int]] = field(default_factory=dict)
    # counts per confidence bucket over the last day (the buckets, then the overflow)
    confidence: dict[str, list[int]] = field(default_factory=dict)
