"""``python -m app.spark`` against ``app.batch`` on the same files: real Spark (``local[2]``,
``spark-submit`` and a standalone cluster on 127.0.0.1), the real model, bad rows included.

Needs ``requirements-spark.txt`` and Java 17+: ``make test-spark`` builds that environment and
runs ``pytest -m spark``. ``make test`` deselects the marker (pyproject.toml), and nothing here
imports PySpark or PyArrow at module level, so collecting this file costs nothing there.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROWS = 1_000
# Both write probabilities with 6 decimals, and the same text scored in a batch of another
# size may differ in float32's last bits (seen on an AMX machine): one step of the sixth
# decimal apart, which as floats can be a hair over 1e-6.
TOLERANCE = 1.5e-6
# A folder served in bf16 (version 4): a text's probabilities move by up to 3e-4 with the
# batch it is scored in (measured on 300 dev-set texts, batches of 1, 7 and 64).
BF16_TOLERANCE = 1e-3
PHRASES = [
    f"{a} {b}{c}"
    for a, b, c in itertools.product(
        ["The flight", "Check-in", "The crew on flight 1234", "My bag", "Customer service"],
        ["was wonderful", "was delayed three hours", "left on time", "was rude", "is at 6pm"],
        ["!", ".", " :(", " :)", " - never again.", " #travel"],
    )
]
# Row index → text: what app.batch calls bad, and good texts that are awkward in CSV.
SPECIAL = {
    3: "",
    10: "   ",
    42: "x" * 5001,
    43: "y" * 5000,
    99: 'Great crew, friendly staff, "best" flight ever!',
    150: "Terrible.\nLost my bag,\nand nobody called back.",
    151: "Windows line\r\nendings, quoted",
    200: "  padded on both sides  ",
    333: "Cancelled again. Never flying with them. 😡",
    500: "\t\n",
    777: "Café au lait was perfect, merci beaucoup!",
    999: "",
}
SHORT_ROW, LONG_ROW = 600, 601  # one field missing (padded: bad text); one field too many


def run(module: str, *args: str | Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


def summary(stderr: str) -> tuple[int, int]:
    match = re.search(r"Scored (\d+) rows \((\d+) bad\) in .*: [\d,]+ rows/s", stderr)
    assert match, stderr
    return int(match[1]), int(match[2])


def len_int(name: str) -> int:
    """A version folder's number; other entries (labels.json) sort first."""
    return int(name) if name.isdigit() else -1


def read_parquet(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(folder).to_pylist()


def read_json_parts(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for part in sorted(folder.glob("part-*.json"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]


def assert_same_scores(
    spark_row: dict, batch_row: dict, classes: list[str], tolerance: float = TOLERANCE
) -> None:
    """One row as app.batch wrote it (CSV: strings) and as the Spark job did."""
    assert (spark_row["error"] or None) == (batch_row["error"] or None)
    assert (spark_row["label"] or None) == (batch_row["label"] or None)
    assert (spark_row["version"] or None) == (batch_row["version"] or None)
    for name in ["score", *(f"p_{c}" for c in classes)]:
        if batch_row[name] in ("", None):
            assert spark_row[name] is None
        else:
            assert spark_row[name] == pytest.approx(float(batch_row[name]), abs=tolerance)


@pytest.fixture(scope="module")
def classes() -> list[str]:
    """The classes of the version both commands score with by default."""
    from app.offline.package import model_version_dir

    return json.loads((model_version_dir(None) / "metadata.json").read_text())["classes"]


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory) -> Path:
    """1,000 rows written by Python's csv module, as app.batch's users write them."""
    path = tmp_path_factory.mktemp("csv") / "reviews.csv"
    rng = random.Random(21)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text", "source"])
        for i in range(ROWS):
            text = SPECIAL.get(i, f"{rng.choice(PHRASES)} #{i}")
            if i == SHORT_ROW:
                writer.writerow([i])
            elif i == LONG_ROW:
                writer.writerow([i, text, "web", "extra"])
            else:
                writer.writerow([i, text, rng.choice(["web", "app", "mail"])])
    return path


def test_1000_csv_rows_score_as_app_batch_does(reviews_csv, tmp_path, classes):
    batch_out, spark_out = tmp_path / "batch.csv", tmp_path / "scored.parquet"
    batch = run("app.batch", reviews_csv, batch_out, "--quiet")
    assert batch.returncode == 0, batch.stderr

    # Arrow batches of 100 rows: at least 10 batches, and still one model load per worker.
    small_batches = "--conf spark.sql.execution.arrow.maxRecordsPerBatch=100 pyspark-shell"
    result = run(
        "app.spark",
        reviews_csv,
        spark_out,
        "--master",
        "local[2]",
        env={"PYSPARK_SUBMIT_ARGS": small_batches},
    )

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == summary(batch.stderr)
    loads = re.findall(r"^python worker \d+: model v\d+ loaded", result.stderr, flags=re.M)
    assert 1 <= len(loads) <= 2, result.stderr  # local[2]: two Python workers at most
    assert_readme_example(result.stderr)
    with batch_out.open(newline="", encoding="utf-8") as file:
        expected = {int(row["id"]): row for row in csv.DictReader(file)}
    rows = read_parquet(spark_out)
    added = ["label", "score", *(f"p_{c}" for c in classes), "version", "error"]
    assert list(rows[0]) == ["id", "text", "source", *added]
    got = {int(row["id"]): row for row in rows}
    assert sorted(got) == sorted(expected) == list(range(ROWS))
    for i in range(ROWS):
        assert_same_scores(got[i], expected[i], classes)
    bad = {i for i, row in got.items() if row["error"]}
    assert bad == {3, 10, 42, 500, 999, SHORT_ROW, LONG_ROW}
    assert got[LONG_ROW]["error"] == "The row has 4 fields but the header has 3."
    assert got[150]["text"] == SPECIAL[150] and got[99]["text"] == SPECIAL[99]
    assert not list(tmp_path.glob(".*partial*"))  # the temporary folder was renamed


def assert_readme_example(stderr: str) -> None:
    """The README's example run of this command shows lines of this run: the same model
    version loaded and in the summary, its bad-row lines, the summary's counts (times,
    rates and pids vary)."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"^```\n\$ \.venv-spark/bin/python -m app\.spark reviews\.csv .*?^```", readme, re.M | re.S
    )
    assert block, "the README's app.spark example"
    shown, real = block[0].splitlines()[1:-1], stderr.splitlines()
    loaded = re.compile(r"python worker \d+: model (v\d+) loaded in [\d.]+ s")
    versions = {match[1] for line in real if (match := loaded.fullmatch(line))}
    assert {loaded.fullmatch(line)[1] for line in shown if loaded.fullmatch(line)} == versions
    done = re.compile(
        r"Scored (\d+) rows \((\d+) bad\) in [\d.]+ s: [\d,]+ rows/s with (\S+ v\d+) -> (.+)"
    )
    [summary_line] = [line for line in real if done.fullmatch(line)]
    got, want = done.fullmatch(summary_line).groups(), done.fullmatch(shown[-1]).groups()
    assert (*got[:3], Path(got[3]).name) == want, (summary_line, shown[-1])
    for line in shown:
        if line.startswith("id "):
            assert line in real, line


def test_json_lines_bad_rows_match_app_batch(tmp_path, classes):
    """Every JSON Lines rule of app.batch: non-string, null, missing key, not JSON, blank;
    with the highest model version, picked by --model-version (app.batch: --model-dir);
    from a gzipped file."""
    version = max((p.name for p in (PROJECT_ROOT / "model/sentiment").iterdir()), key=len_int)
    lines = [
        json.dumps({"text": "Thank you, the crew was wonderful!", "meta": {"a": [1]}}),
        json.dumps({"text": 42}),
        json.dumps({"text": None}),
        json.dumps({"body": "no text key"}),
        "{not json",
        "",
        json.dumps(["text", "a list"]),
        json.dumps({"text": ["a", "list"]}),
        json.dumps({"text": "x" * 5001}),
        json.dumps({"text": "Cancelled again. Never flying with them. 😡"}),
        json.dumps({"text": "   "}),
    ]
    lines += [json.dumps({"text": f"{PHRASES[i % len(PHRASES)]} #{i}"}) for i in range(189)]
    source = tmp_path / "reviews.jsonl.gz"  # gzipped, as exports often are: both read it
    source.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    batch_out, spark_out = tmp_path / "batch.jsonl", tmp_path / "scored.jsonl"
    folder = PROJECT_ROOT / "model/sentiment" / version
    batch = run("app.batch", source, batch_out, "--quiet", "--model-dir", folder)
    assert batch.returncode == 0, batch.stderr

    result = run("app.spark", source, spark_out, "--master", "local[2]", "--model-version", version)

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == summary(batch.stderr) == (200, 9)
    assert f"with sentiment v{version} ->" in result.stderr
    expected = [json.loads(line) for line in batch_out.read_text(encoding="utf-8").splitlines()]
    # No id in the input: the job added one that increases with the line's position.
    got = sorted(read_json_parts(spark_out), key=lambda row: row["id"])
    assert len(got) == len(expected) == len(lines)
    from app.serving.predictor import inference_precision, read_model_folder

    bf16 = inference_precision(read_model_folder(folder)) == "bf16"
    tolerance = BF16_TOLERANCE if bf16 else TOLERANCE
    for spark_row, batch_row in zip(got, expected, strict=True):
        assert_same_scores(spark_row, batch_row, classes, tolerance)
    assert got[1]["error"] == "Review text must be a string (got int)."
    assert got[3]["error"] == "No key 'text'."
    assert got[0]["meta"] == {"a": [1]} and got[0]["version"] == version


@pytest.mark.parametrize(
    ("source", "output", "separator", "options"),
    [
        ("reviews.csv", "scored.csv", ";", ["--delimiter", ";"]),  # a spreadsheet's export
        ("reviews.tsv", "scored.tsv", "\t", []),
    ],
    ids=["semicolons", "tabs"],
)
def test_other_separators_score_as_app_batch_does(
    tmp_path, classes, source, output, separator, options
):
    """Cells separated by semicolons (``--delimiter ';'``) or tabs (.tsv), texts holding
    commas, the separator and quotes: the output keeps the separator, rows as app.batch's."""
    rng = random.Random(5)
    texts = [f"{rng.choice(PHRASES)}, {rng.choice(PHRASES)} #{i}" for i in range(60)]
    texts[7] = f'Clean rooms{separator} "friendly" staff, great breakfast.'
    texts[8] = "   "
    path = tmp_path / source
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, delimiter=separator)
        writer.writerow(["id", "text"])
        writer.writerows(enumerate(texts))
    batch_out, spark_out = tmp_path / f"batch{Path(output).suffix}", tmp_path / output
    batch = run("app.batch", path, batch_out, "--quiet", *options)
    assert batch.returncode == 0, batch.stderr

    result = run("app.spark", path, spark_out, "--master", "local[2]", *options)

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == summary(batch.stderr) == (60, 1)
    with batch_out.open(newline="", encoding="utf-8") as file:
        expected = {int(row["id"]): row for row in csv.DictReader(file, delimiter=separator)}
    got = {}
    for part in sorted(spark_out.glob("part-*")):
        with part.open(newline="", encoding="utf-8") as file:
            got.update((int(row["id"]), row) for row in csv.DictReader(file, delimiter=separator))
    assert sorted(got) == sorted(expected) == list(range(60))
    scores = ["score", *(f"p_{c}" for c in classes)]
    for i in range(60):
        assert got[i]["text"] == texts[i]  # Spark's CSV writer trims cells unless told not to
        row = {name: float(got[i][name]) if got[i][name] else None for name in scores}
        assert_same_scores({**got[i], **row}, expected[i], classes)
    assert got[8]["error"] == expected[8]["error"] != ""


def test_columns_named_like_ours_in_another_case_are_kept(tmp_path):
    """Spark matches column names ignoring case: a gold label column named "Label", an
    "ID" column, or a JSON key "TEXT" on some lines stopped the job with exit 2 ("The
    column `label` already exists", "Reference `id` is ambiguous"; an outside probe).
    app.batch keeps each column as the file spells it, and so does the Spark job now."""
    labelled = tmp_path / "gold.csv"
    labelled.write_text("ID,text,Label\n1,great crew,positive\n2,awful delay,negative\n")
    result = run("app.spark", labelled, tmp_path / "gold.parquet", "--master", "local[2]")
    assert result.returncode == 0, result.stderr
    rows = sorted(read_parquet(tmp_path / "gold.parquet"), key=lambda row: row["ID"])
    assert [(r["ID"], r["Label"], r["label"]) for r in rows] == [
        ("1", "positive", "positive"),
        ("2", "negative", "negative"),
    ]
    keys = tmp_path / "keys.jsonl"
    keys.write_text('{"id": 1, "text": "great crew"}\n{"id": 2, "TEXT": "upper key"}\n')
    result = run("app.spark", keys, tmp_path / "keys-out.jsonl", "--master", "local[2]")
    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (2, 1)
    rows = sorted(read_json_parts(tmp_path / "keys-out.jsonl"), key=lambda row: row["id"])
    assert rows[0]["label"] == "positive"
    assert (rows[1]["TEXT"], rows[1]["error"]) == ("upper key", "No key 'text'.")


def test_paths_with_spaces_and_hashes_score_without_a_master(tmp_path):
    """Excel's file names have spaces: a local path was percent-encoded twice ("not
    found"; an OUTPUT written as "my%20scored.jsonl"), and a '#' cut the name. Without
    --master (README: local[*]) the job's workers ran the system's python3 (exit 1): the
    local run's settings held only when --master was given."""
    folder = tmp_path / "in dir"
    folder.mkdir()
    source = folder / "my reviews #1.csv"
    source.write_text("id,text\n1,great crew\n2,\n", encoding="utf-8")
    output = tmp_path / "my scored #1.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "SPARK_LOCAL_IP")}

    result = subprocess.run(
        [sys.executable, "-m", "app.spark", source, output],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (2, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in dir", "my scored #1.jsonl"]
    rows = sorted(read_json_parts(output), key=lambda row: row["id"])
    assert [(row["id"], row["error"] is None) for row in rows] == [("1", True), ("2", False)]


def test_a_failed_job_leaves_no_output(tmp_path):
    """A corrupt part in a folder of Parquet parts: exit 1, no OUTPUT, no partial folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = tmp_path / "reviews"
    parts.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "text": ["fine", "great"]}), parts / "part-0.parquet")
    (parts / "part-1.parquet").write_bytes(b"PAR1" + b"\0" * 64)  # not a Parquet file
    output = tmp_path / "scored.parquet"

    result = run("app.spark", parts, output, "--master", "local[2]")

    assert result.returncode == 1, result.stderr
    assert "Spark job failed" in result.stderr
    assert "part-1.parquet is not a Parquet file" in result.stderr  # the root cause, named
    # Not before it: the failed tasks' Java stack traces, 100 to 300 lines (an outside probe).
    assert "\tat org.apache" not in result.stderr, result.stderr[-2000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["reviews"]


def test_glob_characters_in_names_are_the_names(tmp_path):
    """Hadoop globs the paths Spark reads: "rev[1]{2026}.csv" read the file matching that
    pattern ("rev12026.csv": another file, scored silently) or none ("does not exist"), and
    the finished output "scored[1].jsonl" was read back as a pattern and discarded (an
    outside probe)."""
    source = tmp_path / "rev[1]{2026}.csv"
    source.write_text("id,text\n1,great crew\n2,\n", encoding="utf-8")
    (tmp_path / "rev12026.csv").write_text("id,text\n9,the other file\n", encoding="utf-8")
    output = tmp_path / "scored[1].jsonl"

    result = run("app.spark", source, output, "--master", "local[1]")

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (2, 1)
    rows = sorted(read_json_parts(output), key=lambda row: row["id"])
    assert [(row["id"], row["text"]) for row in rows] == [("1", "great crew"), ("2", None)]


def test_an_output_folder_holding_the_input_is_refused(tmp_path):
    """Publishing replaces OUTPUT: "nest.csv/reviews.csv" scored into "nest.csv" deleted
    the input (an outside probe). Refused up front, as OUTPUT = INPUT is."""
    folder = tmp_path / "nest.csv"
    folder.mkdir()
    (folder / "reviews.csv").write_text("id,text\n1,hello\n", encoding="utf-8")

    result = run("app.spark", folder / "reviews.csv", folder, "--master", "local[1]")

    assert result.returncode == 2, result.stderr
    assert "OUTPUT must not be INPUT or a folder that holds it" in result.stderr
    assert [path.name for path in folder.iterdir()] == ["reviews.csv"]


def test_a_csv_folder_whose_parts_order_the_columns_differently_is_refused(tmp_path):
    """Spark read every part with the first part's column order: a part "text,id" was
    scored on its ids (an outside probe). Each part's header is checked now."""
    parts = tmp_path / "parts.csv"
    parts.mkdir()
    (parts / "part-a.csv").write_text("id,text\n1,great crew\n", encoding="utf-8")
    (parts / "part-b.csv").write_text("text,id\nawful rude staff,2\n", encoding="utf-8")

    result = run("app.spark", parts, tmp_path / "scored.jsonl", "--master", "local[1]")

    assert result.returncode == 2, result.stderr
    [error] = [line for line in result.stderr.splitlines() if "Error" in line]
    assert "is not the first file's" in error and "Header: " in error, error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["parts.csv"]


def test_column_names_with_dots_and_backticks(tmp_path):
    """Spark parses a name given as a string: a JSON key "a.b" failed the job (PySpark's
    mapInArrow selects each column by name), and so did ``--id-column row.id`` when the
    bad rows were shown (an outside probe)."""
    source = tmp_path / "keys.jsonl"
    lines = [
        {"row.id": "r1", "a.b": 1, "x`y": "q", "text": "great crew"},
        {"row.id": "r2", "a.b": 2, "x`y": "z", "text": " "},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    output = tmp_path / "scored.jsonl"

    result = run("app.spark", source, output, "--master", "local[1]", "--id-column", "row.id")

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == (2, 1)
    assert "row.id r2: Review text must not be empty" in result.stderr
    rows = sorted(read_json_parts(output), key=lambda row: row["row.id"])
    assert [(row["row.id"], row["a.b"], row["x`y"]) for row in rows] == [
        ("r1", 1, "q"),
        ("r2", 2, "z"),
    ]
    assert rows[0]["label"] == "positive" and rows[1]["error"]


def test_an_empty_json_lines_file_scores_0_rows_as_app_batch(tmp_path):
    """app.batch scores an empty file (0 rows, exit 0); the job said "no column 'text' in
    the input (none)", exit 2 (an outside probe)."""
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"")
    batch = run("app.batch", source, tmp_path / "batch.jsonl", "--quiet")
    assert batch.returncode == 0, batch.stderr

    result = run("app.spark", source, tmp_path / "scored.jsonl", "--master", "local[1]")

    assert result.returncode == 0, result.stderr
    assert summary(result.stderr) == summary(batch.stderr) == (0, 0)
    assert read_json_parts(tmp_path / "scored.jsonl") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_a_signal_leaves_no_output_and_exits_128_plus_it(tmp_path, signum):
    """SIGTERM left the hidden partial folder (exit 143, no word); Ctrl-C (PySpark's own
    handler) exited 1, with some 330 lines of tracebacks, and left it too (an outside
    probe). As app.batch: the job is cancelled, the partial folder removed, one line."""
    source = tmp_path / "many.csv"
    rng = random.Random(3)
    with source.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["seq", "text"])
        writer.writerows((i, f"{rng.choice(PHRASES)} #{i}") for i in range(50_000))
    folder = tmp_path / "out"
    folder.mkdir()
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.spark",
            source,
            folder / "scored.parquet",
            "--master",
            "local[2]",
        ],
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not list(folder.glob(".scored.parquet.partial-*")) and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert run.poll() is None, run.stderr.read()
    time.sleep(1)
    run.send_signal(signum)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 128 + signum, stderr[-2000:]
    assert f"Stopped by {signal.Signals(signum).name}: OUTPUT not written" in stderr
    assert "Traceback" not in stderr, stderr[-2000:]
    assert list(folder.iterdir()) == []


def child_pids(pid: int) -> list[int]:
    """The processes ``pid``'s threads started (Linux)."""
    pids = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(child) for child in children.read_text().split()]
    return pids


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_spark_starts_stops_the_run_as_later(tmp_path, signum):
    """The handler was installed once Spark had started: a signal while it started gave
    py4j's tracebacks and "Aborted!", exit 1 (SIGINT), or exit 143 without a word
    (SIGTERM; an outside probe). Now the same line and code as during the job."""
    source = tmp_path / "reviews.csv"
    source.write_text("id,text\n1,great crew\n", encoding="utf-8")
    output = tmp_path / "scored.parquet"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.spark", source, output, "--master", "local[1]"],
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (children := child_pids(process.pid)) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert children, process.communicate()[1]  # spark-submit, starting the JVM
    time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signum, stderr[-2000:]
    assert f"Stopped by {signal.Signals(signum).name}: OUTPUT not written" in stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr, stderr[-2000:]
    assert not output.exists()
    deadline = time.monotonic() + 60  # the JVM goes with its Python driver
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, children
        time.sleep(0.5)


def test_signals_ignored_at_start_stay_ignored(tmp_path):
    """A shell script's background job starts with SIGINT ignored, a ``nohup`` run with
    SIGHUP ignored: the job armed both again (and PySpark its SIGINT handler), so such a
    run was stopped (an outside probe). As app.batch: ignored for the whole run."""
    source = tmp_path / "reviews.csv"
    source.write_text("id,text\n1,great crew\n2,awful delay\n", encoding="utf-8")
    output = tmp_path / "scored.parquet"

    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with (tmp_path / "stderr").open("w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.spark", source, output, "--master", "local[1]"],
            cwd=PROJECT_ROOT,
            stderr=stderr,
            preexec_fn=ignore,
        )
        deadline = time.monotonic() + 300
        for signum in itertools.cycle([signal.SIGINT, signal.SIGHUP]):
            if process.poll() is not None:
                break
            assert time.monotonic() < deadline
            process.send_signal(signum)  # at every stage: starting, scoring, publishing
            time.sleep(0.25)
        stderr.seek(0)
        text = stderr.read()

    assert process.returncode == 0, text[-2000:]
    assert "Stopped by" not in text
    assert summary(text) == (2, 0)
    assert len(read_parquet(output)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "out.parquet"], "does not exist"),
        (["reviews.txt", "out.parquet"], "unknown extension '.txt'"),
        (["reviews.csv", "out.xlsx"], "unknown extension '.xlsx'"),
        (["reviews.csv", "out.parquet", "--model-version", "99"], "no model folder"),
        (["reviews.csv", "out.parquet", "--text-column", "body"], "no column 'body'"),
        (
            ["reviews.csv", "out.parquet", "--id-column", "score"],
            "'score' is a column the job writes itself",
        ),
        (["semicolons.csv", "out.parquet"], "separated by ';': add --delimiter ';'"),
        (["reviews.jsonl", "out.parquet", "--delimiter", ";"], "applies to .csv files only"),
        (["reviews.csv", "out.csv", "--delimiter", "ab"], "one character"),
        (["unicode.tsv", "out.parquet"], "is UTF-16 (it starts with a UTF-16 byte-order mark)"),
        (["empty.csv", "out.parquet"], "empty.csv is empty: a CSV file needs a header row"),
        (
            ["repeats.csv", "out.parquet"],
            "repeats.csv: the header repeats column names (text, text, Text; case is ignored)",
        ),
    ],
)
def test_unusable_arguments_exit_2(tmp_path, args, message):
    (tmp_path / "reviews.csv").write_text("id,text\n1,hello\n", encoding="utf-8")
    (tmp_path / "semicolons.csv").write_text("id;text\n1;hello, world\n", encoding="utf-8")
    (tmp_path / "reviews.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    (tmp_path / "unicode.tsv").write_text("id\ttext\n1\thello\n", encoding="utf-16")
    (tmp_path / "reviews.txt").write_text("hello\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_text("\n", encoding="utf-8")
    (tmp_path / "repeats.csv").write_text("text,id,text,Text\nawful,1,2,3\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "app.spark", *args, "--master", "local[1]"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / args[1]).exists()


def test_a_bad_setting_exits_2_before_spark_starts(tmp_path):
    (tmp_path / "reviews.csv").write_text("id,text\n1,hello\n", encoding="utf-8")
    result = run(
        "app.spark", tmp_path / "reviews.csv", tmp_path / "out.parquet", env={"MAX_TEXT_CHARS": "0"}
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: bad setting MAX_TEXT_CHARS='0': allowed is a whole number, 1 to 1000000"
    ]


def test_a_broken_model_exits_1_before_spark_starts(tmp_path, reviews_csv):
    broken = tmp_path / "1"
    shutil.copytree(PROJECT_ROOT / "model/sentiment/1", broken)
    (broken / "model.keras").write_bytes(b"not a model")

    result = run("app.spark", reviews_csv, tmp_path / "out.parquet", env={"MODEL_DIR": str(broken)})

    assert result.returncode == 1, result.stderr
    assert "model failed to load" in result.stderr and "model.keras" in result.stderr
    assert "SparkContext" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def standalone_cluster(tmp_path) -> Iterator[str]:
    """A Spark standalone master and one worker (2 cores) on 127.0.0.1."""
    spark_home = Path(importlib.util.find_spec("pyspark").origin).parent
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),  # spark-class's own search runs the system python3
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
    }
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)],
        ["org.apache.spark.deploy.worker.Worker", "--cores", "2", "--memory", "2g", url],
    ]
    processes: list[subprocess.Popen] = []
    try:
        for number, command in enumerate(commands):
            with (tmp_path / f"daemon-{number}.log").open("w") as log:
                processes.append(
                    subprocess.Popen(
                        [spark_home / "bin" / "spark-class", *command, "--webui-port", "0"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            if number == 0:
                wait_for_port(port, processes[0], tmp_path / "daemon-0.log")
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Spark master did not listen on {port}: {log.read_text()[-2000:]}")


def test_spark_submit_on_a_standalone_cluster(tmp_path, reviews_csv, standalone_cluster, classes):
    """The cluster path: spark-submit with the packaged code; the model as an archive."""
    dist = tmp_path / "dist"
    package = run("app.offline.package", dist)
    assert package.returncode == 0, package.stderr
    output = tmp_path / "scored.jsonl"
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {
        **os.environ,
        # Executors are processes of the worker: they need the project's environment (on a
        # real cluster, a packed one: see the README).
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }

    result = subprocess.run(
        [
            spark_submit,
            "--master",
            standalone_cluster,
            "--conf",
            "spark.ui.enabled=false",
            "--py-files",
            dist / "app.zip",
            PROJECT_ROOT / "app" / "spark.py",
            reviews_csv,
            output,
            "--model-dir",
            PROJECT_ROOT / "model" / "sentiment" / "1",
        ],
        cwd=tmp_path,  # not the checkout: the code comes from app.zip
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )

    assert result.returncode == 0, result.stderr
    # spark-submit's PythonRunner sends the Python driver's stderr to its own stdout.
    assert summary(result.stdout) == (ROWS, 7)
    rows = {row["id"]: row for row in read_json_parts(output)}
    assert len(rows) == ROWS
    assert {row["label"] for row in rows.values() if not row["error"]} <= set(classes)
