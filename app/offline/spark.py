"""Offline scoring on Spark: ``python -m app.spark INPUT OUTPUT`` scores a CSV (any
separator: ``--delimiter``), TSV, JSON Lines or Parquet input with the server's model and
writes Parquet, CSV, TSV or JSON Lines, on ``local[*]``, under ``spark-submit`` or on a
cluster.

The output is ``app.batch``'s, row for row: every input column plus ``label``, ``score``,
``p_<class>``, ``version`` and ``error``, computed by the same functions
(``app.offline.batch``: bad-row rules, predictions, rounding). Part files are unordered, so
the output keeps an id column (``--id-column``), added when the input has none. The model
and its preprocessing load once per Python worker (``worker_predictor``), not per batch.

PySpark is imported inside functions only: the server and ``app.batch`` never load it, and
``requirements-spark.txt`` (with Java 17+) is needed only to run this.

Bytes that are not UTF-8 are the one bad-row rule ``app.batch`` has and this job has not:
Spark's readers decode them to U+FFFD themselves, before any Python code sees the row.

Exit status, as ``app.batch``: 0 when the input was scored (even with bad rows), 2 for
unusable arguments (no such input, unknown extension, no such column or model version)
or settings, and for inputs ``app.batch`` refuses with 65 (UTF-16, an empty CSV, a CSV
header that repeats a name), 1 when the model cannot be loaded or Spark or the job fails.
The output is written to a hidden folder beside OUTPUT and renamed when complete, so a
failed run leaves no OUTPUT.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click

from app.config import Config
from app.offline.batch import (
    FORMATS,
    STOPPING_SIGNALS,
    Summary,
    checked_delimiter,
    chosen_model_dir,
    exit_on_bad_setting,
    gzipped,
    json_line_row,
    output_columns,
    predict_texts,
    repeated_names,
    say_stopped,
    separator_hint,
    summary_line,
    too_many_fields,
    warn,
    wide_encoding,
)
from app.offline.package import (
    code_zip,
    model_archive,
    model_archive_name,
)
from app.serving.predictor import ModelBundleError, Predictor
from app.serving.texts import review_text_problem

# By extension; a folder without a known extension is a folder of Parquet parts. A .tsv
# file is a CSV file separated by tabs (csv_separator).
INPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
}
OUTPUT_FORMATS = INPUT_FORMATS
# Columns the job adds for itself and drops before writing.
CORRUPT_COLUMN = "_sentiment_corrupt_record"  # CSV: the raw text of a malformed record
LINE_COLUMN = "_sentiment_json_line"  # JSON Lines: the raw line, checked as app.batch does
# Good rows go to the model this many at a time, as app.batch's default --batch-size.
ROWS_PER_MODEL_CALL = 256
BAD_ROWS_SHOWN = 10
CSV_OPTIONS = {
    "header": "true",
    # Python's csv module (and app.batch) doubles quotes inside quoted fields.
    "escape": '"',
    # Quoted newlines (reviews have them). It makes a CSV file one task: see repartition.
    "multiLine": "true",
    # Every file's header is checked against the columns (the first file's): a folder whose
    # parts ordered their columns differently was scored on the wrong column, silently.
    "enforceSchema": "false",
}

# Spark's CSV writer trims every cell's leading and trailing spaces by default; app.batch
# writes the texts as they came.
CSV_WRITE_OPTIONS = {
    "header": "true",
    "escape": '"',
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
}


@dataclass(frozen=True)
class ScoringPlan:
    """What every Python worker needs to score a batch; pickled once with the function."""

    input_format: str  # "csv", "json" or "parquet"
    separator: str  # CSV only
    text_column: str
    csv_width: int  # the header's columns (CSV only)
    max_text_chars: int
    model_archive: str  # the archive's name in SparkFiles
    backend: str
    inference_threads: int
    precision: str  # INFERENCE_PRECISION
    dropped: tuple[str, ...]  # columns the job adds for itself
    # The input's column names, in order: the batches' own are positional (mapInArrow).
    columns: tuple[str, ...] = ()


@functools.cache
def worker_predictor(model_dir: str, backend: str, threads: int, precision: str) -> Predictor:
    """The model, loaded once per Python worker: Spark reuses its workers between tasks
    (``spark.python.worker.reuse``, on by default), so this cache lives as long as one."""
    started = time.perf_counter()
    predictor = Predictor.load(
        model_dir, backend=backend, inference_threads=threads, precision=precision
    )
    # Executors' stderr goes to their logs (a local master's to the console): one line per
    # worker shows how often the model loads.
    print(
        f"python worker {os.getpid()}: model v{predictor.bundle.version} loaded in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    return predictor


def text_and_error(plan: ScoringPlan, value: Any, raw: str | None) -> tuple[Any, str | None]:
    """The row's text and why it cannot be scored (None if it can), by app.batch's rules."""
    if plan.input_format == "json":
        line = (raw or "").removeprefix("\ufeff")
        row = json_line_row(0, line, plan.text_column, plan.max_text_chars)
        return row.text, row.error
    if plan.input_format == "csv":
        if raw is not None:  # Spark flags records whose field count differs from the header's
            fields = len(next(csv.reader(io.StringIO(raw), delimiter=plan.separator), []))
            if fields > plan.csv_width:
                return None, too_many_fields(fields, plan.csv_width)
        value = "" if value is None else value  # Spark reads an empty CSV field as null
    return value, review_text_problem(value, plan.max_text_chars)


def score_batch(batch: Any, plan: ScoringPlan, predictor: Predictor) -> Any:
    """One Arrow record batch in, the same rows out with the prediction columns added."""
    import pyarrow as pa

    size = batch.num_rows
    names = list(plan.columns) or batch.schema.names
    values = batch.column(names.index(plan.text_column)).to_pylist()
    raw_name = {"csv": CORRUPT_COLUMN, "json": LINE_COLUMN}.get(plan.input_format)
    raws = batch.column(names.index(raw_name)).to_pylist() if raw_name else [None] * size
    checked = [text_and_error(plan, value, raw) for value, raw in zip(values, raws, strict=True)]
    good = [i for i, (_, error) in enumerate(checked) if error is None]

    classes = predictor.bundle.classes
    added = output_columns(classes)
    columns: list[list[Any]] = [[None] * size for _ in added]
    columns[-1] = [error for _, error in checked]
    for start in range(0, len(good), ROWS_PER_MODEL_CALL):
        rows = good[start : start + ROWS_PER_MODEL_CALL]
        for i, prediction in zip(
            rows, predict_texts(predictor, [checked[i][0] for i in rows]), strict=True
        ):
            for column, value in zip(columns, prediction.values(), strict=True):
                column[i] = value
    types = [pa.string(), *[pa.float64()] * (1 + len(classes)), pa.string(), pa.string()]
    kept = [name for name in names if name not in plan.dropped]
    arrays = [batch.column(names.index(name)) for name in kept]
    arrays += [pa.array(column, type=kind) for column, kind in zip(columns, types, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, names=kept + added)


def score_partition(plan: ScoringPlan) -> Any:
    """The function ``mapInArrow`` runs in each Python worker."""

    def score(batches: Iterator[Any]) -> Iterator[Any]:
        from pyspark import SparkFiles

        model_dir = SparkFiles.get(plan.model_archive)
        predictor = worker_predictor(
            model_dir, plan.backend, plan.inference_threads, plan.precision
        )
        for batch in batches:
            yield score_batch(batch, plan, predictor)

    return score


def extension(path: str) -> str:
    """``path``'s extension in lower case; a text format's (app.batch's) before ``.gz``:
    Spark reads "reviews.csv.gz" gzipped, one task a file."""
    name = Path(path_part(path).rstrip("/"))
    if gzipped(name) and Path(name.stem).suffix.lower() in FORMATS:
        name = Path(name.stem)
    return name.suffix.lower()


def csv_separator(path: str, delimiter: str) -> str:
    """What separates a CSV path's cells: tabs in a .tsv file, else ``--delimiter``."""
    return "\t" if extension(path) == ".tsv" else delimiter


def data_format(path: str, formats: dict[str, str], what: str) -> str:
    suffix = extension(path) if what == "INPUT" else Path(path_part(path)).suffix.lower()
    if suffix in formats:
        return formats[suffix]
    if what == "INPUT" and not suffix:
        return "parquet"
    known = ", ".join(formats)
    raise click.UsageError(f"{what} {path}: unknown extension {suffix!r} (use {known})")


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def path_part(path: str) -> str:
    """A URI's path; a plain path or a ``file:`` URI whole, as Hadoop reads them: their
    ``#`` is a character of the name ("reviews#1.csv" read as "reviews" plus a fragment
    was "does not exist")."""
    parsed = urlparse(path)
    if parsed.scheme == "file":  # file:/x, file:///x, file://localhost/x (any case)
        local = re.fullmatch(r"file:(?://(?:localhost)?(?=/))?(.*)", path, re.IGNORECASE)
        return local[1] if local else parsed.path
    return parsed.path if parsed.scheme else path


def literal(path: str) -> str:
    """``path`` for Spark's readers, which glob it (Hadoop's syntax): "rev[1].csv" read
    "rev1.csv", and "reviews{2026}.csv" did not exist. Backslashes make every character
    itself again."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", path)


def quoted(name: str) -> str:
    """A column's name for Spark's ``select``, ``col`` and ``where``, which would read a dot
    as a struct's field ("row.id") and backticks as quotes."""
    return "`" + name.replace("`", "``") + "`"


def local_uri(path: str) -> str:
    """An absolute ``file:`` URI for a local path, so that every process reads the same file.
    Not percent-encoded: Hadoop's ``Path`` encodes what it is given, so "my reviews.csv"
    became "my%2520reviews.csv" (not found; an OUTPUT written under a %20 name)."""
    return f"file://{Path(path_part(path)).resolve()}" if is_local(path) else path


@dataclass
class Job:
    """One run: the session, where the rows come from and go, and their key columns."""

    spark: Any
    input_path: str
    output_path: str
    text_column: str
    id_column: str
    delimiter: str  # --delimiter: a .csv file's separator
    partial: str | None = None  # where the output is written before it is published


def configured_master() -> bool:
    """Whether Spark has a master without ``--master``: spark-submit's (it starts this
    process with its gateway's port), ``PYSPARK_SUBMIT_ARGS``' or spark-defaults.conf's
    (an edge node's YARN)."""
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        return True
    if "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        return True
    home = os.environ.get("SPARK_HOME")
    folder = os.environ.get("SPARK_CONF_DIR") or (home and os.path.join(home, "conf"))
    if not folder:
        return False
    defaults = os.path.join(folder, "spark-defaults.conf")
    with contextlib.suppress(OSError), open(defaults, encoding="utf-8") as lines:
        return any(line.split()[:1] == ["spark.master"] for line in lines)
    return False


@contextlib.contextmanager
def handlers_kept() -> Iterator[None]:
    """Keep the handlers of STOPPING_SIGNALS as they are: PySpark's SparkContext installs
    its own for SIGINT (KeyboardInterrupt: click's "Aborted!", exit 1), over ``Stopping``'s
    and over an ignored SIGINT (a script's background job was stopped by it)."""
    install = signal.signal

    def kept(signum: int, handler: Any) -> Any:
        if signum in STOPPING_SIGNALS:
            return signal.getsignal(signum)
        return install(signum, handler)

    signal.signal = kept  # type: ignore[assignment]
    try:
        yield
    finally:
        signal.signal = install


def start_spark(master: str | None) -> Any:
    """A Spark session; for a local master, its Python workers run this interpreter."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("sentiment-scoring")
    if master is None and not configured_master():
        # No master given anywhere: the one Spark would pick, made explicit so that a
        # local run's settings below hold (without them the workers ran the system's
        # python3, and the UI listened on every interface).
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        # The workers of a local master start `python3` unless told otherwise, and the
        # system Python lacks the project's packages. Spark reads these variables itself;
        # a local run listens on the loopback interface only.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.ui.enabled", "false")
    # Column names as the file spells them: Spark matches them ignoring case, and an
    # input column "Label" (a gold label), "ID" or a JSON key "TEXT" beside "text" stopped
    # the job ("already exists", "ambiguous"), where app.batch keeps each column.
    builder = builder.config("spark.sql.caseSensitive", "true")
    with handlers_kept():
        spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    # FATAL, not ERROR: a failed task's error is logged with its Java stack trace (100 to
    # 300 lines, and again by each stage it fails) before the run's one "Error:" line,
    # which names its root cause (short_reason).
    spark.sparkContext.setLogLevel("FATAL")
    return spark


def read_input(job: Job, input_format: str, separator: str) -> tuple[Any, int]:
    """The input as a DataFrame with the job's raw-record column, and the CSV width."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    spark, path = job.spark, job.input_path
    # A local INPUT is the file named (check_arguments found it); another may be a pattern.
    source = literal(path) if is_local(path) else path
    if input_format == "parquet":
        return spark.read.parquet(source), 0
    if input_format == "csv":
        csv_options = {**CSV_OPTIONS, "sep": separator}
        # Reading the header with multiLine, Spark globs the files it found once more
        # ("reviews{2026}.csv" matched nothing, "rev[1].csv" read "rev1.csv"): for such a
        # name it is read line by line (a header with a quoted newline is then refused).
        header_options = {**csv_options, "multiLine": "false"} if source != path else csv_options
        header = spark.read.options(**header_options).csv(source).schema  # names, all strings
        if not header.fields:
            raise click.BadParameter(
                f"{path} is empty: a CSV file needs a header row", param_hint="'INPUT'"
            )
        # Spark renames repeated names (text, Text: text0, Text1); app.batch refuses them.
        names = spark.read.options(**{**header_options, "header": "false"}).csv(source).first()
        if repeated := repeated_names(list(names or [])):
            raise click.BadParameter(f"{path}: {repeated}", param_hint="'INPUT'")
        if not all(names or []):
            # A nameless column is "_c1" to Spark, which then finds the header "wrong".
            csv_options["enforceSchema"] = "true"
        schema = StructType([*header.fields, StructField(CORRUPT_COLUMN, StringType())])
        options = {**csv_options, "columnNameOfCorruptRecord": CORRUPT_COLUMN}
        return spark.read.options(**options).schema(schema).csv(source), len(header.fields)
    # JSON Lines: Spark infers the columns, but would turn 42 into "42" in a string column
    # and skip blank lines; the raw line goes to Python, which checks it as app.batch does.
    inferred = spark.read.json(source).schema
    fields = [field for field in inferred.fields if field.name != "_corrupt_record"]
    if not fields:  # an empty file, or blank lines only: app.batch scores it (0 rows, or bad)
        fields = [StructField(job.text_column, StringType())]
    parsed = F.from_json(F.col("value"), StructType(fields))
    lines = spark.read.text(source)
    frame = lines.select(parsed.alias("record"), F.col("value").alias(LINE_COLUMN))
    return frame.select(*[F.col("record")[f.name].alias(f.name) for f in fields], LINE_COLUMN), 0


def write_output(frame: Any, path: str, output_format: str, separator: str) -> None:
    writer = frame.write.mode("errorifexists")
    if output_format == "csv":
        writer.options(**CSV_WRITE_OPTIONS, sep=separator).csv(path)
    elif output_format == "json":
        writer.option("ignoreNullFields", "false").json(path)
    else:
        writer.parquet(path)


def read_output(spark: Any, path: str, output_format: str, schema: Any, separator: str) -> Any:
    reader, path = spark.read.schema(schema), literal(path)  # "out[1].parquet" as named
    if output_format == "csv":
        return reader.options(**CSV_OPTIONS, sep=separator).csv(path)
    if output_format == "json":
        return reader.json(path)
    return reader.parquet(path)


def hadoop_fs(spark: Any, path: str) -> tuple[Any, Any]:
    """Hadoop's file system for ``path`` (local, HDFS, S3A, ...) and the path as Hadoop's."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return hadoop_path.getFileSystem(conf), hadoop_path


def partial_path(output: str) -> str:
    """A hidden folder beside OUTPUT: readers of that folder skip names starting with '.'."""
    head, _, name = output.rstrip("/").rpartition("/")
    return f"{head}/.{name}.partial-{uuid.uuid4().hex[:12]}"


def publish(spark: Any, partial: str, output: str) -> bool:
    """Move the complete output into place, replacing an older OUTPUT; True if replaced."""
    fs, target = hadoop_fs(spark, output)
    _, source = hadoop_fs(spark, partial)
    replaced = bool(fs.exists(target))
    old = hadoop_fs(spark, partial + ".old")[1]
    if replaced and not fs.rename(target, old):
        raise click.ClickException(f"could not move the old {output} aside")
    if not fs.rename(source, target):
        raise click.ClickException(f"could not rename {partial} to {output}")
    if replaced:
        fs.delete(old, True)
    return replaced


def remove(spark: Any, path: str) -> None:
    """Delete ``path`` through Hadoop; a local one directly when the JVM is gone (Ctrl-C
    in a terminal stops it too, and the partial folder stayed)."""
    try:
        fs, target = hadoop_fs(spark, path)
        fs.delete(target, True)
    except Exception:
        if not path.startswith("file:"):
            raise
        shutil.rmtree(path_part(path), ignore_errors=True)


def gateway_started() -> bool:
    """Whether PySpark has started its JVM and connected to it (no import: a signal handler
    may run inside PySpark's first import)."""
    context = getattr(sys.modules.get("pyspark"), "SparkContext", None)
    return getattr(context, "_gateway", None) is not None


class Stopping:
    """SIGINT, SIGTERM and SIGHUP cancel the run's Spark jobs; the job's call then fails,
    its clean-up removes the partial output, and the run stops with 128 + the signal's
    number (``exit_code``), as ``app.batch`` does. SIGTERM left the partial folder, and
    Ctrl-C (PySpark's own handler) exited 1 with some 330 lines of tracebacks and left it
    too. The jobs are cancelled from a thread of its own: a Spark call in the handler
    would read py4j's socket inside the call it interrupts (a reentrant read).

    Installed when the run starts: before Spark has started (``started``) a signal stops
    the run with the same line and code (it gave py4j's tracebacks and "Aborted!", exit
    1, or a silent 143): at once, or once Spark's JVM is up (``starting``). A signal
    ignored when the run starts stays ignored, as in ``app.batch`` (``nohup``'s SIGHUP, a
    script's background job's SIGINT): ``handlers_kept`` keeps PySpark from installing its
    SIGINT handler over it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._spark: Any = None
        self._starting = False
        for signum in STOPPING_SIGNALS:
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, self._stop)

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Around ``start_spark``: a signal before Spark's JVM reports for duty stops the
        run once it has (a second or two). Stopped sooner, PySpark removed the folder the
        JVM reports its port in, and the JVM, finding it gone, ran on forever."""
        self._starting = True
        try:
            yield
        finally:
            self._starting = False
        if self.exit_code is not None:
            raise SystemExit(self.exit_code)

    def started(self, spark: Any) -> None:
        """From now on a signal cancels ``spark``'s jobs."""
        self._spark = spark

    def _stop(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        say_stopped(signum)
        # The cancelled calls: py4j logs some on its own logger, some on the root logger.
        logging.disable(logging.CRITICAL)
        if self._spark is None:  # loading the model or starting Spark: nothing to clean up
            if self._starting and not gateway_started():
                return  # starting() raises it
            # A started JVM ends with its Python process (PythonGatewayServer reads stdin).
            raise SystemExit(self.exit_code)
        threading.Thread(target=self._cancel, name="cancel-spark-jobs", daemon=True).start()

    def _cancel(self) -> None:
        with contextlib.suppress(Exception):  # the JVM may have stopped too (Ctrl-C)
            self._spark.sparkContext.setLogLevel("OFF")  # the cancelled tasks' errors
            while True:  # until spark.stop(): a signal between two jobs cancelled neither
                self._spark.sparkContext.cancelAllJobs()
                time.sleep(0.5)

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


def ship_code_and_model(spark: Any, model_dir: Path, staging: Path) -> str:
    """Send the project's code (unless spark-submit already did) and the model folder to
    every executor; returns the model archive's name in SparkFiles."""
    package_dir = Path(__file__).resolve().parents[1]
    if package_dir.is_dir():  # a checkout; from --py-files app.zip it is inside the zip
        spark.sparkContext.addPyFile(str(code_zip(staging)))
    spark.sparkContext.addArchive(str(model_archive(model_dir, staging)))
    return model_archive_name(model_dir)


def score_with_spark(
    job: Job,
    predictor: Predictor,
    model_dir: Path,
    max_text_chars: int,
    staging: Path,
    stopping: Stopping | None = None,
) -> Summary:
    """Read, score and write; the summary counts what the written output holds."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    spark = job.spark
    input_format = data_format(job.input_path, INPUT_FORMATS, "INPUT")
    output_format = data_format(job.output_path, OUTPUT_FORMATS, "OUTPUT")
    archive = ship_code_and_model(spark, model_dir, staging)
    started = time.perf_counter()

    separator = csv_separator(job.input_path, job.delimiter)
    frame, csv_width = read_input(job, input_format, separator)
    columns = [name for name in frame.columns if name not in (CORRUPT_COLUMN, LINE_COLUMN)]
    if job.text_column not in columns:
        hint = ""
        if input_format == "csv":
            hint = separator_hint(separator.join(columns), job.text_column, separator)
        raise click.BadParameter(
            f"no column {job.text_column!r} in the input ({', '.join(columns) or 'none'}){hint}",
            param_hint="'--text-column'",
        )
    classes = predictor.bundle.classes
    added = output_columns(classes)
    replaced = [name for name in columns if name in added]
    if replaced:
        warn(f"warning: input columns {', '.join(replaced)} are replaced in the output")
        frame = frame.drop(*replaced)
    if job.id_column not in frame.columns:
        # Unique, and increasing with the position in a file (not consecutive across
        # partitions): part files are unordered, so every row needs a key.
        frame = frame.select(F.monotonically_increasing_id().alias(job.id_column), "*")
    parallelism = spark.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() < parallelism:
        # A CSV file read with multiLine is one task; spread the scoring over every core.
        frame = frame.repartition(parallelism)

    dropped = (CORRUPT_COLUMN, LINE_COLUMN)
    plan = ScoringPlan(
        input_format=input_format,
        separator=separator,
        text_column=job.text_column,
        csv_width=csv_width,
        max_text_chars=max_text_chars,
        model_archive=archive,
        backend=predictor.backend,
        inference_threads=Config.INFERENCE_THREADS,
        precision=Config.INFERENCE_PRECISION,
        dropped=dropped,
        columns=tuple(frame.columns),
    )
    # label, score, p_<class>..., version, error
    kinds = [StringType(), *[DoubleType()] * (1 + len(classes)), StringType(), StringType()]
    schema = StructType(
        [field for field in frame.schema.fields if field.name not in dropped]
        + [StructField(name, kind) for name, kind in zip(added, kinds, strict=True)]
    )
    # Positional names going in: PySpark's mapInArrow selects every column by its name as
    # an expression, and a dot in one ("row.id", a JSON key "a.b") failed to resolve.
    positional = frame.toDF(*(f"_sentiment_{i}" for i in range(len(frame.columns))))
    scored = positional.mapInArrow(score_partition(plan), schema)

    partial = job.partial = partial_path(job.output_path)
    output_separator = csv_separator(job.output_path, job.delimiter)
    try:
        write_output(scored, partial, output_format, output_separator)
        seconds = time.perf_counter() - started
        written = read_output(spark, partial, output_format, schema, output_separator)
        counts = written.agg(F.count(F.lit(1)), F.count("error")).first()
        summary = Summary(rows=counts[0], bad_rows=counts[1], seconds=seconds)
        if summary.bad_rows:
            examples = written.where(F.col("error").isNotNull())
            examples = examples.select(quoted(job.id_column), "error")
            for row in examples.limit(BAD_ROWS_SHOWN).collect():
                warn(f"{job.id_column} {row[0]}: {row[1]}")
            if summary.bad_rows > BAD_ROWS_SHOWN:
                warn(f"... and {summary.bad_rows - BAD_ROWS_SHOWN} more: see the error column")
        if stopping is not None and stopping.exit_code is not None:  # between two jobs
            raise SystemExit(stopping.exit_code)
        if publish(spark, partial, job.output_path):
            warn(f"warning: replaced the previous {job.output_path}")
    except BaseException:
        remove(spark, partial)
        raise
    return summary


def first_bytes(path: Path) -> bytes:
    """The first 4 bytes of a text file, gunzipped where it is; none of a broken file (the
    job then says why)."""
    try:
        with gzip.open(path) if gzipped(path) else path.open("rb") as file:
            return file.read(4)
    except (OSError, EOFError):
        return b""


def check_arguments(input_path: str, output_path: str, delimiter: str) -> str:
    """Fail fast, before Spark starts, on what can be checked locally; ``--delimiter`` as a
    character."""
    data_format(input_path, INPUT_FORMATS, "INPUT")
    data_format(output_path, OUTPUT_FORMATS, "OUTPUT")
    delimiter = checked_delimiter(
        delimiter, ".csv" in (extension(input_path), extension(output_path))
    )
    if is_local(input_path):
        local = Path(path_part(input_path))
        if not local.exists():
            raise click.BadParameter(f"{input_path} does not exist", param_hint="'INPUT'")
        text_file = local.is_file() and extension(input_path) != ".parquet"
        if text_file and (wide := wide_encoding(first_bytes(local))):
            raise click.BadParameter(f"{input_path} {wide}", param_hint="'INPUT'")
    if is_local(output_path):
        output = Path(path_part(output_path))
        if not output.resolve().parent.is_dir():
            raise click.UsageError(f"OUTPUT's folder does not exist: {output.parent}")
        if is_local(input_path):
            source = Path(path_part(input_path)).resolve()
            if output.resolve() in (source, *source.parents):  # publishing deletes OUTPUT
                raise click.UsageError("OUTPUT must not be INPUT or a folder that holds it")
    return delimiter


def short_reason(error: BaseException) -> str:
    """One line from a (often very long) Spark error: for a JVM error, its root cause."""
    text = str(error)
    java = getattr(error, "java_exception", None)  # py4j's Py4JJavaError
    if java is not None:
        while java.getCause() is not None:
            java = java.getCause()
        text = str(java.toString())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:500]


def header_mismatch(error: BaseException) -> str | None:
    """What Spark's CSV reader says when a file's header is not the first file's (the
    ``enforceSchema`` check), on one line; None for another error."""
    java = getattr(error, "java_exception", None)
    while java is not None and java.getCause() is not None:
        java = java.getCause()
    first, *rest = (str(java.getMessage()) if java is not None else "").splitlines() or [""]
    if not first.startswith(("CSV header does not conform", "Number of column in CSV header")):
        return None
    lines = [line.strip() for line in rest if line.strip()]
    files = [line.removeprefix("CSV file: ") for line in lines if line.startswith("CSV file: ")]
    details = "; ".join(line for line in lines if not line.startswith("CSV file: "))
    name = files[0].rsplit("/", 1)[-1] if files else "a file"
    return f"the header of {name} is not the first file's ({details})"


@click.command(name="spark")
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@click.option(
    "--master",
    default=None,
    help="Spark master, e.g. local[2] or spark://host:7077 "
    "[default: spark-submit's --master, else local[*]].",
)
@click.option(
    "--model-version",
    default=None,
    help="A version folder of MODEL_BASE_DIR [default: the version the server answers with "
    "by default (MODEL_DIR, else the stable label), as app.batch].",
)
@click.option(
    "--model-dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A model version folder, instead of --model-version (e.g. under spark-submit, "
    "where the code runs from app.zip).",
)
@click.option(
    "--text-column",
    default="text",
    show_default=True,
    help="Column (JSON key) holding the text to classify.",
)
@click.option(
    "--delimiter",
    default=",",
    show_default=True,
    help="What separates the cells of a .csv INPUT and OUTPUT: one character, such as ';', "
    "or '\\t' for a tab (a .tsv file's are tabs).",
)
@click.option(
    "--id-column",
    default="id",
    show_default=True,
    help="Column that identifies a row; added (unique, increasing) when the input has none.",
)
@click.option(
    "--max-text-chars",
    default=Config.MAX_TEXT_CHARS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longer texts are bad rows, as in the API.",
)
def spark_command(
    input_path: str,
    output_path: str,
    master: str | None,
    model_version: str | None,
    model_dir: Path | None,
    text_column: str,
    delimiter: str,
    id_column: str,
    max_text_chars: int,
) -> None:
    """Score INPUT (CSV, TSV, JSON Lines or Parquet, by extension; a folder of parts too) into
    OUTPUT (a folder of Parquet, CSV, TSV or JSON Lines parts, by extension) on Spark.

    Adds label, score, p_<class>, version and error to every row, as app.batch does; bad
    rows are written with the reason in error. Prints rows/s to stderr at the end.
    """
    stopping = Stopping()
    exit_on_bad_setting()
    delimiter = check_arguments(input_path, output_path, delimiter)
    model_dir = chosen_model_dir(model_version, model_dir)
    try:  # on the driver first: a broken model stops the run before Spark starts
        predictor = Predictor.load(
            model_dir,
            backend=Config.KERAS_BACKEND,
            inference_threads=Config.INFERENCE_THREADS,
            precision=Config.INFERENCE_PRECISION,
        )
    except ModelBundleError as error:
        raise click.ClickException(f"model failed to load: {error}") from None
    if id_column in output_columns(predictor.bundle.classes):
        raise click.BadParameter(
            f"{id_column!r} is a column the job writes itself", param_hint="'--id-column'"
        )

    try:
        with stopping.starting():
            spark = start_spark(master)
    except Exception as error:  # no Java, a bad master URL, ...
        raise click.ClickException(f"Spark did not start: {short_reason(error)}") from None
    stopping.started(spark)
    job = Job(
        spark, local_uri(input_path), local_uri(output_path), text_column, id_column, delimiter
    )
    try:
        with tempfile.TemporaryDirectory(prefix="sentiment-spark-") as staging:
            summary = score_with_spark(
                job, predictor, model_dir, max_text_chars, Path(staging), stopping
            )
    except Exception as error:
        if stopping.exit_code is not None:  # the cancelled job's error: not the reason
            raise SystemExit(stopping.exit_code) from None
        if isinstance(error, click.ClickException):
            raise
        from pyspark.errors import AnalysisException

        if isinstance(error, AnalysisException):  # e.g. no such path, unreadable schema
            raise click.UsageError(short_reason(error)) from None
        if mismatch := header_mismatch(error):
            raise click.BadParameter(f"{input_path}: {mismatch}", param_hint="'INPUT'") from None
        raise click.ClickException(f"Spark job failed: {short_reason(error)}") from None
    finally:
        # Ctrl-C in a terminal signals the JVM too, which may be gone: its error ("Connection
        # refused", a traceback, exit 1) is not the reason the run stopped.
        with contextlib.suppress(Exception) if stopping.exit_code else contextlib.nullcontext():
            spark.stop()
        if job.partial and is_local(job.partial):
            # A task still writing when its job was cancelled (a signal) or failed could
            # make the partial folder again after its removal (once in a run of
            # `make test-spark`); with the executors stopped, nothing writes any more.
            shutil.rmtree(path_part(job.partial), ignore_errors=True)
    warn(summary_line(summary, predictor, output_path))
