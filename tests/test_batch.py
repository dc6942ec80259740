"""``python -m app.batch``: a real subprocess with the real model, checked against the API."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.config import MODEL_BASE, PROJECT_ROOT
from model.corpus import CLASSES

pytestmark = pytest.mark.slow

OPENERS = [
    "The flight",
    "Our trip to Denver",
    "Check-in at the airport",
    "The crew on flight 1234",
    "My bag",
    "The connection in Chicago",
    "Customer service",
    "The new app",
]
MIDDLES = [
    "was absolutely wonderful",
    "was delayed three hours",
    "left on time",
    "got cancelled with no notice",
    "was fine, nothing special",
    "was rude and unhelpful",
    "made my day, thank you",
    "is scheduled for 6pm",
]
CLOSERS = ["!", ".", "...", " :(", " :)", " - never again.", " #travel", " @airline"]
PHRASES = [f"{a} {b}{c}" for a, b, c in itertools.product(OPENERS, MIDDLES, CLOSERS)]
ROWS = 100_000
SAMPLE = 64  # the API's MAX_BATCH_SIZE: one request checks the whole sample
TOO_LONG = "x" * 5001


def run_batch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.batch", *map(str, args), "--quiet"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def reported_lines(stderr: str) -> list[int]:
    return [int(number) for number in re.findall(r"^line (\d+): ", stderr, flags=re.M)]


def api_labels(client, texts: list[str]) -> list[str]:
    response = client.post("/classify", json={"reviews": texts})
    assert response.status_code == 200, response.get_json()
    return [prediction["label"] for prediction in response.get_json()["predictions"]]


def test_100k_row_csv_matches_the_api(tmp_path, client, app):
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    bad = {17: "", 4242: "   ", 50_000: TOO_LONG, 99_999: ""}  # row index → text
    texts = [bad.get(i, f"{PHRASES[i % len(PHRASES)]} #{i}") for i in range(ROWS)]
    with source.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text"])
        writer.writerows([i, text] for i, text in enumerate(texts))

    result = run_batch(source, scored, "--batch-size", "256")

    assert result.returncode == 0, result.stderr
    # Header is line 1 and every record is one line: row i is on line i + 2.
    assert reported_lines(result.stderr) == [i + 2 for i in sorted(bad)]
    match = re.search(r"Scored (\d+) rows \((\d+) bad\) in .*: ([\d,]+) rows/s", result.stderr)
    assert match, result.stderr
    assert (int(match[1]), int(match[2])) == (ROWS, len(bad))
    print(f"\nbatch scoring: {match[0]}")  # shown with pytest -s; the report quotes it

    with scored.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    bundle = app.extensions["models"].registry.stable.bundle
    classes = bundle.classes
    added = ["label", "score", *(f"p_{c}" for c in classes), "version", "error"]
    assert list(rows[0]) == ["id", "text", *added]
    assert [int(row["id"]) for row in rows] == list(range(ROWS))  # all rows, in order
    for i in bad:
        assert rows[i]["label"] == rows[i]["score"] == rows[i]["version"] == ""
        assert rows[i]["error"]
    assert "at most 5000 characters" in rows[50_000]["error"]
    good = [i for i in range(ROWS) if i not in bad]
    assert all(rows[i]["error"] == "" and rows[i]["label"] in classes for i in good)
    assert {rows[i]["version"] for i in good} == {bundle.version}

    sample = sorted(random.Random(7).sample(good, SAMPLE))
    assert [rows[i]["label"] for i in sample] == api_labels(client, [texts[i] for i in sample])
    for i in sample[:5]:
        scores = [float(rows[i][f"p_{c}"]) for c in classes]
        assert float(rows[i]["score"]) == max(scores)
        assert sum(scores) == pytest.approx(1, abs=1e-4)


def test_csv_with_quoted_commas_and_newlines(tmp_path, client):
    source, scored = tmp_path / "quoted.csv", tmp_path / "out.csv"
    records = [
        ["a", 'Great crew, friendly staff, "best" flight ever!', "x"],
        ["b", "Terrible.\nLost my bag,\nand nobody called back.", "y"],
        ["c", "", "z"],
        ["d", "On time, as usual.", "w"],
    ]
    with source.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["id", "review", "note"], *records])
    with source.open("a", encoding="utf-8") as file:
        file.write("\ne,too,many,fields\n")  # a blank line (skipped), then a bad row

    result = run_batch(source, scored, "--text-column", "review")

    assert result.returncode == 0, result.stderr
    # c starts on line 6 (b spans lines 3-5); the blank line is 8; e is on line 9.
    assert reported_lines(result.stderr) == [6, 9]
    assert "Scored 5 rows (2 bad)" in result.stderr
    with scored.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["id"] for row in rows] == ["a", "b", "c", "d", "e"]
    assert [row["review"] for row in rows[:4]] == [record[1] for record in records]
    assert rows[4]["error"] == "The row has 4 fields but the header has 3."
    good = [records[0][1], records[1][1], records[3][1]]
    assert [rows[i]["label"] for i in (0, 1, 3)] == api_labels(client, good)


def test_json_lines_keeps_keys_and_reports_bad_lines(tmp_path, client):
    source, scored = tmp_path / "reviews.jsonl", tmp_path / "scored.ndjson"
    lines = [
        json.dumps({"id": 1, "body": "Thank you, the crew was wonderful!", "meta": {"a": [1]}}),
        json.dumps({"id": 2, "body": 42}),  # not a string
        "{not json",
        "",  # blank
        json.dumps(["body", "a list"]),  # not an object
        json.dumps({"id": 6}),  # no key
        json.dumps({"id": 7, "body": "Cancelled again. Never flying with them. 😡"}),
        json.dumps({"id": 8, "body": TOO_LONG}),
        json.dumps({"id": 9, "body": TOO_LONG[:-1]}),  # MAX_TEXT_CHARS exactly, as the API
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_batch(source, scored, "--text-column", "body")

    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [2, 3, 4, 5, 6, 8]
    out = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    assert len(out) == len(lines)  # output line N answers input line N
    assert out[0]["meta"] == {"a": [1]} and out[0]["error"] is None
    assert [out[0]["label"], out[6]["label"]] == api_labels(
        client, [json.loads(lines[0])["body"], json.loads(lines[6])["body"]]
    )
    for index in (1, 2, 3, 4, 5, 7):
        assert out[index]["label"] is None and out[index]["score"] is None
        assert out[index]["error"]
    assert out[1]["body"] == 42 and out[5]["id"] == 6  # input kept
    assert out[8]["error"] is None and out[8]["label"] in {"negative", "neutral", "positive"}
    assert out[2]["error"].startswith("Not valid JSON")


def test_a_damaged_openvino_ir_is_one_line_naming_it(tmp_path):
    """A truncated int8 weights file was OpenVINO's 34-line traceback."""
    from test_predictor import ir_folder

    folder = ir_folder(tmp_path)
    (folder / "model-int8.bin").write_bytes((folder / "model-int8.bin").read_bytes()[:1000])
    source = tmp_path / "reviews.csv"
    source.write_text("text\nlovely crew\n", encoding="utf-8")
    result = run_batch(source, tmp_path / "out.csv", "--model-dir", folder, "--precision", "int8")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: model failed to load: {folder / 'model-int8.xml'}: OpenVINO cannot read it "
        "with model-int8.bin (Incorrect weights in bin file!)"
    ]
    assert not (tmp_path / "out.csv").exists()


def test_precision_int8_scores_with_the_folders_int8_model(tmp_path):
    """``--precision`` (default: INFERENCE_PRECISION) as the server takes it: version 4's
    int8 model gives the in-process int8 answers, not its bf16 ones. The folder is named
    once by ``--model-version`` and once by ``--model-dir``."""
    from app.serving.predictor import Predictor

    folder = MODEL_BASE / "4"
    texts = [f"{phrase} #{i}" for i, phrase in enumerate(PHRASES[::7])]
    source = tmp_path / "reviews.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    scored = {}
    for precision, named in (
        ("model", ["--model-version", "4"]),
        ("int8", ["--model-dir", folder]),
    ):
        output = tmp_path / f"{precision}.jsonl"
        result = run_batch(source, output, *named, "--precision", precision)
        assert result.returncode == 0, result.stderr
        rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        assert {row["version"] for row in rows} == {"4"}
        scored[precision] = np.array([[row[f"p_{c}"] for c in CLASSES] for row in rows])
    expected = Predictor.load(folder, precision="int8").predict_proba(texts)
    # bf16's answers move by up to 3e-4 with the batch (model card); int8's far more.
    np.testing.assert_allclose(scored["int8"], expected, atol=1e-3)
    assert np.abs(scored["int8"] - scored["model"]).max() > 0.01


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("missing.csv", None, [], "does not exist"),
        ("reviews.txt", "text\nhello\n", [], "unknown extension"),
        ("reviews.txt.gz", "text\nhello\n", [], "unknown extension '.txt.gz'"),
        ("reviews.csv", "id,body\n1,hello\n", [], "no column 'text'"),
        ("reviews.jsonl", '{"body": "hello"}\n', [], "no key 'text'"),
        ("reviews.csv", "text\nhello\n", ["--batch-size", "0"], "--batch-size"),
        ("reviews.jsonl", '{"text": "hi"}\n', ["--model-dir", "/nonexistent"], "--model-dir"),
        ("reviews.jsonl", '{"text": "hi"}\n', ["--model-version", "99"], "no model folder"),
        (
            "reviews.jsonl",
            '{"text": "hi"}\n',
            ["--model-version", "1", "--model-dir", "."],
            "not both",
        ),
        ("reviews.csv", "text;id\nhello;1\n", [], "separated by ';': add --delimiter ';'"),
        ("reviews.csv", "id|text\n1|hello\n", [], "separated by '|': add --delimiter '|'"),
        ("reviews.csv", "id\ttext\n1\thello\n", [], "add --delimiter '\\t' or name the file .tsv"),
        ("reviews.jsonl", '{"text": "hi"}\n', ["--delimiter", ";"], "applies to .csv files only"),
        ("reviews.csv", "text\nhello\n", ["--delimiter", ";;"], "one character"),
    ],
)
def test_unusable_arguments_exit_non_zero(tmp_path, name, content, args, message):
    source = tmp_path / name
    if content is not None:
        source.write_text(content, encoding="utf-8")
    output = tmp_path / ("out" + (source.suffix if source.suffix != ".txt" else ".csv"))

    result = run_batch(source, output, *args)

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not output.exists()


def test_bytes_that_are_not_utf8_make_bad_rows_and_are_copied_unchanged(tmp_path):
    """Issue 17 item 9: never replaced silently by U+FFFD; LF input gives LF output."""
    source, scored = tmp_path / "latin1.csv", tmp_path / "out.csv"
    source.write_bytes(
        b"id,text,note\n1,caf\xe9 was lovely,x\n2,great crew,\xff\xfe\n3,Lost my bag.,ok\n"
    )

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    assert "line 2: Not valid UTF-8 (byte 0xE9 in column 'text')." in result.stderr
    assert "line 3: Not valid UTF-8 (byte 0xFF in column 'note')." in result.stderr
    assert "Scored 3 rows (2 bad)" in result.stderr
    out = scored.read_bytes()
    assert b"\r\n" not in out and b"\xef\xbf\xbd" not in out  # LF kept, no U+FFFD
    lines = out.split(b"\n")
    assert lines[1].startswith(b"1,caf\xe9 was lovely,x,,") and lines[1].endswith(b"'text').")
    assert lines[2].startswith(b"2,great crew,\xff\xfe,,")
    assert lines[3].startswith(b"3,Lost my bag.,ok,negative,")


@pytest.mark.parametrize(
    ("name", "args", "separator"),
    [
        ("semicolons.csv", ["--delimiter", ";"], ";"),
        ("tabs.tsv", [], "\t"),
        ("tabs.csv", ["--delimiter", "\\t"], "\t"),  # '\t' as typed in a shell: a tab
    ],
)
def test_other_separators_are_read_and_kept(tmp_path, client, name, args, separator):
    """Spreadsheets export CSV with semicolons where the comma is the decimal mark, and
    tab-separated files are common: both read, and written back with their separator."""
    source, scored = tmp_path / name, tmp_path / ("out" + Path(name).suffix)
    records = [["1", "Great crew; friendly staff", "4,5"], ["2", "Lost my bag, again", "1,0"]]
    with source.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file, delimiter=separator).writerows([["id", "text", "stars"], *records])

    result = run_batch(source, scored, *args)

    assert result.returncode == 0, result.stderr
    with scored.open(newline="", encoding="utf-8") as file:
        header, *rows = csv.reader(file, delimiter=separator)
    assert header[:4] == ["id", "text", "stars", "label"]
    assert [row[:3] for row in rows] == records
    assert [row[3] for row in rows] == api_labels(client, [r[1] for r in records])


def test_crlf_csv_input_gives_crlf_output(tmp_path):
    source, scored = tmp_path / "windows.csv", tmp_path / "out.csv"
    source.write_bytes(b"text\r\nLovely crew\r\nLost my bag\r\n")
    assert run_batch(source, scored).returncode == 0
    assert scored.read_bytes().count(b"\r\n") == 3


def test_json_lines_that_are_not_utf8_or_not_text_are_bad_rows(tmp_path):
    """Each keeps its keys, so that it can be joined back (they were dropped: an outside
    probe), its bytes as they came and its lone surrogate as the escape it was."""
    source, scored = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(
        b'{"id": 1, "text": "caf\xe9"}\n{"id": 2, "text": "odd \\udc80 \\ud800"}\n'
        b'{"id": 3, "text": "Lovely crew"}\n'
    )

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [1, 2]
    lines = scored.read_bytes().splitlines()
    assert lines[0].startswith(b'{"id": 1, "text": "caf\xe9", "label": null')
    assert lines[1].startswith(b'{"id": 2, "text": "odd \\udc80 \\ud800", "label": null')
    out = [json.loads(line.decode("utf-8", "surrogateescape")) for line in lines]
    assert out[0]["error"] == "Not valid UTF-8 (byte 0xE9)."
    assert out[1]["error"] == "Not text: a string holds a lone surrogate (\\udc80)."
    assert out[2]["label"] == "positive" and out[2]["id"] == 3


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 16 KiB tmpfs (needs root), mounted read-write or read-only."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(*options: str) -> Path:
        target = tmp_path / f"fs{len(mounted)}"
        target.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(["size=16k", *options]), "tmpfs", target],
            check=True,
        )
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", target], check=False)


@pytest.mark.parametrize(
    ("options", "reason"),
    [((), "No space left on device"), (("ro",), "Read-only file system")],
    ids=["full-disk", "read-only-folder"],
)
def test_an_output_that_cannot_be_written_is_one_line_and_exit_74(
    tmp_path, tiny_filesystem, options, reason
):
    """Issue 17 item 10: not a traceback with exit 1 (the model's code), no .partial left."""
    source = tmp_path / "big.csv"
    source.write_text(
        "text\n" + "".join(f"The crew was lovely on flight {i}\n" for i in range(3000))
    )
    folder = tiny_filesystem(*options)
    output = folder / "out.csv"

    result = run_batch(source, output)

    assert result.returncode == 74, result.stderr
    assert result.stderr.strip().splitlines() == [f"Error: cannot write {output}: {reason}"]
    assert list(folder.iterdir()) == []  # neither OUTPUT nor OUTPUT.partial


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl"])
def test_gzipped_files_are_read_and_written_as_the_plain_ones(tmp_path, name):
    """``reviews.csv.gz`` in, ``.gz`` or plain out: the same rows as the plain file gives."""
    texts = ["Lovely crew, thank you!", "Lost my bag again.", "Boarding at gate 14.", "😡"]
    if name.endswith(".csv"):
        plain = "text,id\n" + "".join(f'"{text}",{i}\n' for i, text in enumerate(texts))
    else:
        plain = "".join(json.dumps({"text": text, "id": i}) + "\n" for i, text in enumerate(texts))
    source = tmp_path / name
    source.write_text(plain, encoding="utf-8")
    zipped = tmp_path / f"{name}.gz"
    zipped.write_bytes(gzip.compress(plain.encode("utf-8")))
    suffix = source.suffix

    expected = tmp_path / f"expected{suffix}"
    assert run_batch(source, expected).returncode == 0
    for output in (tmp_path / f"out{suffix}.gz", tmp_path / f"out{suffix}"):
        result = run_batch(zipped, output)
        assert result.returncode == 0, result.stderr
        written = output.read_bytes()
        if output.suffix == ".gz":
            written = gzip.decompress(written)
        assert written == expected.read_bytes()


@pytest.mark.parametrize(
    ("name", "encoding", "named"),
    [
        ("unicode.tsv", "utf-16-le", "UTF-16"),
        ("wide.csv", "utf-32-le", "UTF-32"),
        ("big.jsonl", "utf-16-be", "UTF-16"),
    ],
)
def test_a_utf16_or_utf32_input_is_refused_with_the_conversion(tmp_path, name, encoding, named):
    """Excel's "Unicode Text" export is UTF-16 with a byte-order mark: one line naming the
    encoding and the conversion, exit 65, no OUTPUT; not "no column 'text'" in garbage."""
    rows = {
        ".tsv": "id\ttext\n1\tGreat hotel, lovely staff\n",
        ".csv": "id,text\n1,Great hotel\n",
        ".jsonl": '{"text": "Great hotel"}\n',
    }
    source = tmp_path / name
    source.write_bytes(("\ufeff" + rows[source.suffix]).encode(encoding))
    result = run_batch(source, tmp_path / f"out{source.suffix}")
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {source} is {named} (it starts with a {named} byte-order mark): convert it "
        f"to UTF-8 first, e.g. iconv -f {named} -t UTF-8 (Excel: save as CSV UTF-8)"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]


def test_a_broken_gzipped_input_is_one_line_and_exit_65(tmp_path):
    """Not a traceback, and not blamed on OUTPUT; no .partial left."""
    rows = "text\n" + "".join(f"The crew was lovely on flight {i}\n" for i in range(3000))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(rows.encode())[:-100])
    not_gzip = tmp_path / "plain.csv.gz"
    not_gzip.write_text(rows)
    for source in (cut, not_gzip):
        output = tmp_path / "out.csv"
        result = run_batch(source, output)
        assert result.returncode == 65, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: cannot read {source}: ")
        assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.csv.gz", "plain.csv.gz"]


def test_a_csv_with_bare_cr_line_endings_is_scored_like_its_lf_copy(tmp_path):
    """Excel for Mac's "CSV (Macintosh)" ends lines with a bare CR: scored as the LF file
    is (as Spark reads it), written back with CR, not a csv.Error traceback. A stray CR in
    an LF file is a line break too (csv's newline="" reading): its cells are kept."""
    lf, cr = tmp_path / "lf.csv", tmp_path / "mac.csv"
    lf.write_bytes(b"id,text\n1,great flight\n2,awful\n")
    cr.write_bytes(lf.read_bytes().replace(b"\n", b"\r"))
    assert run_batch(lf, tmp_path / "lf_out.csv").returncode == 0

    result = run_batch(cr, tmp_path / "cr_out.csv")

    assert result.returncode == 0, result.stderr
    assert "Scored 2 rows (0 bad)" in result.stderr
    expected = (tmp_path / "lf_out.csv").read_bytes().replace(b"\n", b"\r")
    assert (tmp_path / "cr_out.csv").read_bytes() == expected

    stray = tmp_path / "stray.csv"
    stray.write_bytes(b"id,text\n1,great\r2,awful\n3,ok\n")
    result = run_batch(stray, tmp_path / "stray_out.csv")
    assert result.returncode == 0, result.stderr
    assert "Scored 3 rows (0 bad)" in result.stderr
    with (tmp_path / "stray_out.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(row["id"], row["text"], row["error"]) for row in rows] == [
        ("1", "great", ""),
        ("2", "awful", ""),
        ("3", "ok", ""),
    ]


def test_an_empty_csv_is_one_line_and_exit_65_and_blank_lines_before_the_header_are_skipped(
    tmp_path,
):
    """An empty file (or only blank lines) has no header to find the text column in: a data
    error, not "no column 'text' in the header ()". Blank lines before the header are
    skipped, as Spark skips them, and counted in the line numbers."""
    for content in (b"", b"\n\r\n"):
        empty = tmp_path / "empty.csv"
        empty.write_bytes(content)
        result = run_batch(empty, tmp_path / "out.csv")
        assert result.returncode == 65, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"Error: {empty} is empty: a CSV file needs a header row"
        ]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.csv"]

    source, scored = tmp_path / "blank_first.csv", tmp_path / "scored.csv"
    source.write_bytes(b"\n\nid,text\n1,great flight\n2,\n")
    result = run_batch(source, scored)
    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [5]
    with scored.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(row["id"], row["text"], bool(row["label"])) for row in rows] == [
        ("1", "great flight", True),
        ("2", "", False),
    ]
    assert scored.read_bytes().startswith(b"id,text,label,")


def test_a_quote_left_open_at_the_end_is_one_line_and_exit_65(tmp_path):
    """A truncated file's open quote swallowed every remaining row into one text, scored
    as 1 row with exit 0; now refused, naming the line the quote opened on. A quoted field
    with more after its closing quote, which strict reading refuses too, is still read as
    csv and pandas read it ('"great" flight' is 'great flight'), not lost."""
    source, output = tmp_path / "cut.csv", tmp_path / "out.csv"
    source.write_bytes(b'id,text\n1,fine\n2,"great flight\n3,awful\n4,ok\n')
    result = run_batch(source, output)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {source}: the quoted field opened on line 3 is not closed by the end of "
        "the file (is the file cut short?)"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.csv"]

    source.write_bytes(b'"id,text\n1,fine\n')
    result = run_batch(source, output)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {source}: cannot read the header on line 1 (unexpected end of data)"
    ]

    source.write_bytes(b'id,text\n1,"great" flight\n2,"Lost\nmy" bag\n3,fine\n')
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    assert "Scored 3 rows (0 bad)" in result.stderr
    with output.open(newline="") as scored:
        rows = [(row["id"], row["text"], row["error"]) for row in csv.DictReader(scored)]
    assert rows == [("1", "great flight", ""), ("2", "Lost\nmy bag", ""), ("3", "fine", "")]


def test_nan_infinity_and_numbers_beyond_a_double_are_bad_json_lines(tmp_path):
    """Python's json reads NaN, Infinity and 1e400 (as inf) and wrote them back as NaN and
    Infinity, which are not JSON: every output line must parse as standard JSON."""
    source, scored = tmp_path / "odd.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        '{"text": "great", "big": 1e400}\n{"text": "great", "x": NaN}\n'
        '{"text": "great", "x": -Infinity}\n{"text": "Lovely crew", "n": 1.5}\n'
        f'{{"text": "great", "n": 1{"0" * 400}}}\n'
        f'{{"text": "great", "n": {"9" * 309}}}\n'
        f'{{"text": "Lovely crew", "n": -{int(sys.float_info.max)}}}\n',
        encoding="utf-8",
    )

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [1, 2, 3, 5, 6]

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} written")

    lines = scored.read_text(encoding="utf-8").splitlines()
    out = [json.loads(line, parse_constant=refuse) for line in lines]
    assert [row["error"] for row in out[:3]] == [
        "Not valid JSON (the number 1e400 is beyond a double's range).",
        "Not valid JSON (NaN is not a JSON value).",
        "Not valid JSON (-Infinity is not a JSON value).",
    ]
    assert out[3]["n"] == 1.5 and out[3]["label"] == "positive" and out[3]["error"] is None
    # Integers too (jq read a 401-digit one as 1.7976931348623157e+308): the largest
    # double, as an integer, is kept.
    assert [row["error"] for row in out[4:6]] == [
        "Not valid JSON (the number 10000000000000000000… is beyond a double's range).",
        "Not valid JSON (the number 99999999999999999999… is beyond a double's range).",
    ]
    assert out[6]["n"] == -int(sys.float_info.max) and out[6]["error"] is None


def test_a_record_strict_reading_refuses_is_reread_whole_not_split_into_rows(tmp_path):
    """After its error the strict reader drops the rest of the line and goes on inside a
    quoted field left open: the review was cut at its first line break (scored positive
    on "The food was great") and each line after it became a made-up row. A cell over
    64 MiB that spans lines made rows of its lines, or a wrong "not closed" exit 65."""
    source, output = tmp_path / "odd.csv", tmp_path / "out.csv"
    source.write_bytes(
        b'id,note,text\n1,"ok" then,"The food was great\nbut the service was awful '
        b'and rude"\n2,x,fine\n3,"a" b,"Lovely\n\nstay"\n4,y,awful\n'
    )
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    assert "Scored 4 rows (0 bad)" in result.stderr
    with output.open(newline="") as scored:
        rows = [(row["id"], row["text"], row["label"]) for row in csv.DictReader(scored)]
    with source.open(newline="") as plain:  # as Python's csv (and pandas) read it
        expected = [(row["id"], row["text"]) for row in csv.DictReader(plain)]
    assert [row[:2] for row in rows] == expected and len(rows) == 4
    assert rows[0][2] == "negative" and rows[2][2] == "positive"

    huge = "a" * (64 * 1024 * 1024 + 10)
    with gzip.open(tmp_path / "huge.csv.gz", "wt", newline="") as file:
        file.write(f'id,text\n0,ok start\n1,"{huge}\n9,good day\n10,awful night"\n2,fine\n')
    result = run_batch(tmp_path / "huge.csv.gz", output)
    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [3]
    with output.open(newline="") as scored:
        rows = [(row["id"], row["text"]) for row in csv.DictReader(scored)]
    assert rows == [("0", "ok start"), ("", ""), ("2", "fine")]


def test_a_named_pipe_is_read_as_a_file(tmp_path):
    """A named pipe (``mkfifo``; bash's ``<(…)`` is one) cannot tell its position, which
    the progress bar asked for: a traceback and exit 1."""
    pipe, output = tmp_path / "reviews.csv", tmp_path / "out.csv"
    os.mkfifo(pipe)
    writer = subprocess.Popen(["sh", "-c", f"printf 'text\\nLovely crew\\n' > {pipe}"])
    result = run_batch(pipe, output)
    writer.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    with output.open(newline="") as scored:
        assert [row["label"] for row in csv.DictReader(scored)] == ["positive"]


def test_json_nested_deeper_than_can_be_read_is_a_bad_row(tmp_path):
    """A RecursionError stopped the run (exit 1 and a traceback), where it met the line,
    or while looking ahead for the text key."""
    deep = "[" * 100_000 + "]" * 100_000
    source, output = tmp_path / "deep.jsonl", tmp_path / "out.jsonl"
    source.write_text(f'{{"x": {deep}}}\n{{"text": "Lovely crew"}}\n', encoding="utf-8")
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.splitlines()[0] == "line 1: Not valid JSON (nested deeper than can be read)."
    )
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["label"] for row in rows] == [None, "positive"]


def test_a_csv_header_that_repeats_a_name_is_one_line_and_exit_65(tmp_path):
    """app.spark cannot score such a file (Spark renames text, text, Text to text0, text2,
    Text3): both refuse it, naming the repeats, rather than each picking a column. Empty
    names (trailing separators of a spreadsheet export) are not repeats."""
    source, output = tmp_path / "dup.csv", tmp_path / "out.csv"
    source.write_text("text,id,text,Text\nawful,1,second,third\n", encoding="utf-8")
    result = run_batch(source, output)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {source}: the header repeats column names (text, text, Text; case is "
        "ignored): give each column a name of its own"
    ]
    assert not output.exists()

    source.write_text("id,text,,\n1,great flight,,\n", encoding="utf-8")
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    assert "Scored 1 rows (0 bad)" in result.stderr


@pytest.mark.parametrize(
    ("ending", "break_in_cell"),
    [(b"\r", "Loved it.\nWould fly again"), (b"\n", "Loved it.\rWould fly again")],
    ids=["lf-in-a-cr-file", "cr-in-an-lf-file"],
)
def test_a_cell_with_the_other_line_break_is_quoted_in_the_output(tmp_path, ending, break_in_cell):
    """csv quotes a cell for its own line ending's characters only: an LF in a cell of a
    Mac CR file (Excel's Alt+Enter) went out unquoted and split its row in two."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    quoted = '"' + break_in_cell + '"'
    source.write_bytes(ending.join([b"id,text", f"1,{quoted}".encode(), b"2,awful", b""]))

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    with scored.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [(row["id"], row["text"], row["error"]) for row in rows] == [
        ("1", break_in_cell, ""),
        ("2", "awful", ""),
    ]
    assert scored.read_bytes().endswith(b"," + ending)  # the input's line ending kept


def test_a_utf8_byte_order_mark_is_written_back_to_a_csv_output(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, and Excel reads a CSV without one
    as its ANSI code page: the output keeps it (a JSON Lines output never has one)."""
    source, scored = tmp_path / "excel.csv", tmp_path / "scored.csv"
    source.write_bytes("\ufeffid;text\r\n1;Très bien 👍\r\n".encode())

    result = run_batch(source, scored, "--delimiter", ";")

    assert result.returncode == 0, result.stderr
    assert scored.read_bytes().startswith("\ufeffid;text;label".encode())
    assert "Très bien 👍" in scored.read_text(encoding="utf-8-sig")
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes('\ufeff{"text": "great crew"}\n'.encode())
    assert run_batch(lines, tmp_path / "out.jsonl").returncode == 0
    assert json.loads((tmp_path / "out.jsonl").read_bytes())["error"] is None


def test_json_lines_a_first_record_without_the_key_is_a_bad_row_and_kept_keys_warn(tmp_path):
    """JSON writers leave out null fields: a first record without the text key is one bad
    row, as anywhere else (it stopped the run), and a typo is still refused when none of
    the first records has the key. An input key the output replaces (a gold ``label``)
    is said once, as for CSV."""
    source, scored = tmp_path / "reviews.jsonl", tmp_path / "scored.jsonl"
    records = [{"id": 1}, {"id": 2, "text": "great crew", "label": "positive"}, {"id": 3}]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [1, 3]
    assert result.stderr.count("are replaced in the output") == 1
    assert "input keys label are replaced in the output (first on line 2)" in result.stderr
    out = [json.loads(line) for line in scored.read_text(encoding="utf-8").splitlines()]
    assert [row["error"] for row in out] == ["No key 'text'.", None, "No key 'text'."]

    result = run_batch(source, scored, "--text-column", "txt")
    assert result.returncode == 2
    message = "no key 'txt' in any of the first 3 (the first one's keys: id)"
    assert f"Error: Invalid value for '--text-column': {message}" in result.stderr  # README


def test_a_reader_of_stderr_that_goes_does_not_stop_the_run(tmp_path):
    """``2>&1 | head -3``: the warnings' reader leaves after three lines; the run goes on
    and writes OUTPUT (it used to exit 1, 'cannot write OUTPUT: Broken pipe')."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    source.write_text("text\n" + "\n".join(['""'] * 2000 + ["great crew"]) + "\n")
    command = (
        f"{sys.executable} -m app.batch {source} {scored} --quiet 2>&1 | head -3; "
        'exit "${PIPESTATUS[0]}"'
    )

    result = subprocess.run(
        ["bash", "-c", command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stdout
    assert len(result.stdout.splitlines()) == 3
    with scored.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2001 and rows[-1]["label"]


@pytest.mark.parametrize("signum", [2, 15, 1], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_run_stopped_by_a_signal_leaves_no_output_and_exits_128_plus_it(tmp_path, signum):
    """SIGTERM (``timeout``, Slurm, Kubernetes) left a half-written partial file and
    Ctrl-C exited 1, the code of a model that cannot be loaded; SIGHUP (a closed ssh
    session) left the partial file too. The partial file is the
    run's own (``OUTPUT.partial-PID``: two runs to one OUTPUT wrote into one file)."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    with source.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["text"], *([PHRASES[i % len(PHRASES)]] for i in range(ROWS))])
    run = subprocess.Popen(
        [sys.executable, "-m", "app.batch", source, scored, "--quiet", "--batch-size", "64"],
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / f"scored.csv.partial-{run.pid}"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size) and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    run.send_signal(signum)

    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signum, stderr
    name = {2: "SIGINT", 15: "SIGTERM", 1: "SIGHUP"}[signum]
    assert f"Stopped by {name}: OUTPUT not written" in stderr and "Aborted" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reviews.csv"]


def test_a_model_dir_setting_that_is_no_folder_is_named_not_an_option(tmp_path):
    """MODEL_DIR pointing nowhere (relative, from another folder) blamed --model-version,
    an option that was not given."""
    source = tmp_path / "reviews.csv"
    source.write_text("text\ngreat crew\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "app.batch", source, tmp_path / "out.csv", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MODEL_DIR": "model/sentiment/1"},
    )
    assert result.returncode == 2, result.stderr
    assert (
        "Error: MODEL_DIR=model/sentiment/1: not a folder (a relative path is read from the "
        f"current folder, {tmp_path})"
    ) in result.stderr
    assert "--model-version" not in result.stderr


def test_json_lines_read_ahead_only_to_the_first_record_with_the_key():
    """The check for a typo'd text key reads records until one has it, not always 1,000:
    wide records (pages of HTML) are held a batch at a time."""
    from app.offline.batch import JSONLinesFormat

    lines = iter([json.dumps({"id": 1}), json.dumps({"text": "great"}), *(["{}"] * 5000)])
    JSONLinesFormat(lines, "text", 5000)
    assert len(list(lines)) == 5000


def test_spark_reads_a_file_uri_s_path_whole_and_finds_a_configured_master(tmp_path, monkeypatch):
    """app.spark: a '#' is part of a local name; file://localhost/ is local; without
    --master, a master from spark-defaults.conf or PYSPARK_SUBMIT_ARGS is kept (an edge
    node's YARN), else local[*]."""
    from app.offline.spark import configured_master, path_part

    assert path_part("reviews #1.csv") == "reviews #1.csv"
    assert path_part("file:///data/reviews #1.csv") == "/data/reviews #1.csv"
    assert path_part("FILE://localhost/data/r.csv") == "/data/r.csv"
    assert path_part("s3a://bucket/reviews.csv") == "/reviews.csv"
    for name in ("PYSPARK_GATEWAY_PORT", "PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR", "SPARK_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert not configured_master()
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--master yarn pyspark-shell")
    assert configured_master()
    monkeypatch.delenv("PYSPARK_SUBMIT_ARGS")
    (tmp_path / "spark-defaults.conf").write_text("spark.master  yarn\n", encoding="utf-8")
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert configured_master()


def test_an_output_name_of_the_longest_length_is_written(tmp_path):
    """OUTPUT's partial file is ``OUTPUT.partial-PID``: with an OUTPUT name of 249 bytes
    or more that passed the folder's 255 and the run failed (exit 74, "File name too
    long"). Its name is cut now; OUTPUT keeps its own."""
    source = tmp_path / "reviews.csv"
    source.write_text("text\nLovely crew\n")
    output = tmp_path / ("é" * 125 + ".csv")  # 254 bytes
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    with output.open(newline="") as scored:
        assert [row["label"] for row in csv.DictReader(scored)] == ["positive"]
    assert sorted(tmp_path.iterdir()) == sorted([source, output])


def test_a_stray_character_after_a_quote_does_not_hide_a_file_cut_short(tmp_path):
    """The strict reader refuses '"great"x' and the record is read again as csv usually
    reads it, which returns a quoted field left open at the end of the file, the rest of
    the file in it: rows 2 and 3 went into row 1's note, exit 0 (an outside probe). Now
    the file is refused as the same file without the x is."""
    source, output = tmp_path / "cut.csv", tmp_path / "out.csv"
    for record in (b'1,"great"x,"open', b'1,great,"open'):
        source.write_bytes(b"id,text,note\n" + record + b"\n2,good,d\n3,bad,f\n")
        result = run_batch(source, output)
        assert result.returncode == 65, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"Error: {source}: the quoted field opened on line 2 is not closed by the end of "
            "the file (is the file cut short?)"
        ]
        assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.csv"]


def test_a_cell_over_the_limit_with_a_quote_in_an_unquoted_field_is_one_bad_row(tmp_path):
    """Skipping an unreadable record counted every quote on its lines: the literal quote
    of '5" screen' (not a quoted field: csv takes a quote there as it is) made the count
    odd, and every row after it was skipped, exit 0 (an outside probe). A quoted field over
    the limit that the file ends inside is a file cut short, as a shorter one is."""
    huge = "x" * (65 * 1024 * 1024)
    source, output = tmp_path / "huge.csv.gz", tmp_path / "out.csv"
    with gzip.open(source, "wt", newline="") as file:
        file.write(f'id,text\n1,5" screen {huge}\n2,good\n3,"a ""b"" c",x\n4,12" pizza "ok"\n')
    result = run_batch(source, output)
    assert result.returncode == 0, result.stderr
    assert reported_lines(result.stderr) == [2, 4]
    with output.open(newline="") as scored:
        rows = [(row["id"], row["text"], bool(row["label"])) for row in csv.DictReader(scored)]
    assert rows == [
        ("", "", False),
        ("2", "good", True),
        ("3", 'a "b" c', False),  # three fields: a bad row, read as csv reads it
        ("4", '12" pizza "ok"', True),
    ]

    with gzip.open(source, "wt", newline="") as file:
        file.write(f'id,text\n1,"{huge}\n2,good\n')
    result = run_batch(source, output)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {source}: the quoted field opened on line 2 is not closed by the end of "
        "the file (is the file cut short?)"
    ]


def test_signals_ignored_when_the_run_starts_stay_ignored(tmp_path):
    """``nohup`` ignores SIGHUP so that a run outlives its ssh session, and a shell
    script's background job has SIGINT ignored: the run armed both again and was stopped
    (exit 129, 130; an outside probe). It ignores them, as Python leaves an ignored SIGINT,
    and writes OUTPUT; SIGTERM, not ignored, still stops it."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    with source.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([["text"], *([PHRASES[i % len(PHRASES)]] for i in range(ROWS))])
    command = [sys.executable, "-m", "app.batch", source, scored, "--quiet", "--batch-size", "64"]
    run = subprocess.Popen(
        ["sh", "-c", 'trap "" HUP INT; exec "$0" "$@"', *map(str, command)],  # as nohup does
        cwd=PROJECT_ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / f"scored.csv.partial-{run.pid}"  # exec keeps the shell's pid
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size) and run.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)

    run.send_signal(1)
    run.send_signal(2)

    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert "Stopped" not in stderr and f"Scored {ROWS} rows (0 bad)" in stderr
    with scored.open(newline="", encoding="utf-8") as file:
        assert sum(1 for _ in csv.DictReader(file)) == ROWS


def test_json_lines_bytes_that_are_not_utf8_go_back_as_they_came_beside_escapes(tmp_path):
    """A line with a byte that is not UTF-8 and any \\u escape was written all escaped:
    the byte as the text \\udce9 (a lone surrogate escape, which app.batch itself calls
    "Not text"), and valid UTF-8 elsewhere as escapes (an outside probe). A line with a
    lone surrogate escape too keeps the byte as it came and that escape as an escape."""
    source, scored = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(
        b'{"id": 1, "text": "caf\xe9 \\u00e9", "note": "na\xc3\xafve"}\n'
        b'{"id": 2, "text": "caf\xe9 \\ud800 na\xc3\xafve"}\n'
    )

    result = run_batch(source, scored)

    assert result.returncode == 0, result.stderr
    assert "line 1: Not valid UTF-8 (byte 0xE9)." in result.stderr
    assert "line 2: Not valid UTF-8 (byte 0xE9)." in result.stderr
    lines = scored.read_bytes().splitlines()
    assert lines[0].startswith(
        b'{"id": 1, "text": "caf\xe9 \xc3\xa9", "note": "na\xc3\xafve", "label": null'
    )
    assert lines[1].startswith(b'{"id": 2, "text": "caf\xe9 \\ud800 na\xc3\xafve", "label": null')


@pytest.mark.parametrize("stderr", ["full", "pipe"], ids=["dev-full", "reader-gone"])
def test_a_stderr_that_cannot_be_written_does_not_stop_the_run(tmp_path, stderr):
    """The progress bar's label was the one stderr write that could stop the run: with
    ``2>/dev/full`` or ``2>&1 | true`` it exited 1 (the model's code) and wrote no OUTPUT
    (an outside probe). As for the warnings, the run goes on."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv"
    source.write_text("text\nLovely crew\n\n", encoding="utf-8")
    if stderr == "full":
        target = os.open("/dev/full", os.O_WRONLY)
    else:
        reader, target = os.pipe()
        os.close(reader)  # writes fail with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "app.batch", source, scored],  # not --quiet: the bar
            cwd=PROJECT_ROOT,
            stderr=target,
            timeout=300,
        )
    finally:
        os.close(target)
    assert result.returncode == 0
    with scored.open(newline="", encoding="utf-8") as file:
        assert [row["label"] for row in csv.DictReader(file)] == ["positive"]


EIO_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
ssize_t read(int fd, void *buf, size_t n) {
    static ssize_t (*real_read)(int, void *, size_t);
    if (!real_read) real_read = dlsym(RTLD_NEXT, "read");
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    const char *name = getenv("EIO_NAME");
    if (len > 0 && name) {
        path[len] = 0;
        if (strcmp(path, name) == 0 && lseek(fd, 0, SEEK_CUR) >= atol(getenv("EIO_AFTER"))) {
            errno = EIO;
            return -1;
        }
    }
    return real_read(fd, buf, n);
}
"""


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.jsonl"])
def test_an_input_that_cannot_be_read_is_one_line_naming_it_and_exit_65(tmp_path, name):
    """A read error (a failing disk) in the middle of INPUT was blamed on OUTPUT ("cannot
    write …: Input/output error", exit 74), and one on the first read was a traceback,
    exit 1 (an outside probe). /proc/self/mem fails its first read (EIO); the middle of
    a file fails through a read() that fails past 64 KiB (LD_PRELOAD), where a C compiler
    is at hand to build it."""
    output = tmp_path / f"out{Path(name).suffix}"
    memory = tmp_path / name
    memory.symlink_to("/proc/self/mem")
    result = run_batch(memory, output)
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot read {memory}: Input/output error"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]

    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        pytest.skip("no C compiler to build the read() that fails")
    (tmp_path / "eio.c").write_text(EIO_SHIM)
    shim = tmp_path / "eio.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", shim, tmp_path / "eio.c", "-ldl"], check=True
    )
    source = tmp_path / "disk" / name
    source.parent.mkdir()
    texts = [f"The crew was lovely on flight {i}" for i in range(10_000)]
    if name.endswith(".csv"):
        source.write_text("text\n" + "".join(f"{text}\n" for text in texts))
    else:
        source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    result = subprocess.run(
        [sys.executable, "-m", "app.batch", source, output, "--quiet"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "LD_PRELOAD": str(shim),
            "EIO_NAME": str(source.resolve()),
            "EIO_AFTER": "65536",
        },
    )
    assert result.returncode == 65, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot read {source}: Input/output error"
    ]
    assert sorted(path.name for path in source.parent.iterdir()) == [name]
    assert not output.exists()


def test_labels_naming_a_version_that_is_not_loaded_are_refused(tmp_path):
    """The server refuses to start with ``MODEL_LABELS=stable=4`` when version 4 is not
    loaded; app.batch scored with the highest loaded version instead, v2, saying so only
    in the version column (an outside probe). It refuses as the server does, by the
    server's rule (``registry.check_labels``), with one line and the exit code of a model
    that cannot be loaded; a label naming a loaded version picks it."""
    source, output = tmp_path / "reviews.csv", tmp_path / "out.csv"
    source.write_text("text\nLovely crew\n", encoding="utf-8")

    def run(labels: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.batch", source, output, "--quiet"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "MODEL_VERSIONS": "1,2", "MODEL_LABELS": labels, "MODEL_DIR": ""},
        )

    for version in ("4", "9"):
        result = run(f"stable={version}")
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"Error: model failed to load: MODEL_LABELS: stable={version} names a version "
            "that is not loaded "
            "(loaded: 1, 2)"
        ]
        assert not output.exists()

    result = run("stable=1")
    assert result.returncode == 0, result.stderr
    with output.open(newline="", encoding="utf-8") as file:
        assert [row["version"] for row in csv.DictReader(file)] == ["1"]


def test_a_gzipped_output_names_itself_in_its_gzip_header(tmp_path):
    """The gzip header held the partial file's name (FNAME), which ``gunzip -N`` and 7-Zip
    restore: a file named ``scored.csv.gz.partial-PID``, the leftover the run never leaves
    (an outside probe). It holds OUTPUT's name, as gzip writes it (without .gz)."""
    source, scored = tmp_path / "reviews.csv", tmp_path / "scored.csv.gz"
    source.write_text("text\nLovely crew\n", encoding="utf-8")
    assert run_batch(source, scored).returncode == 0
    header = scored.read_bytes()
    assert header[3] & 0x08  # FNAME: a name follows the 10-byte header
    assert header[10 : header.index(b"\0", 10)] == b"scored.csv"
    assert gzip.decompress(header).startswith(b"text,label,")
