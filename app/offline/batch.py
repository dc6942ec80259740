"""Offline batch scoring: ``python -m app.batch INPUT OUTPUT`` scores a CSV or JSON Lines
file with the server's model and preprocessing (``Predictor``), streaming it in batches.

The format follows the extension (``.csv``, its cells separated by ``--delimiter``,
default a comma; ``.tsv``, by tabs; ``.jsonl`` or ``.ndjson``; each may end in ``.gz``,
read and written gzipped) and the output has the input's format and separator. Every input row
is written, in order, with these columns (keys) added: ``label``, ``score``, ``p_<class>``
for each class, ``version`` (the model version that scored the row) and ``error``. An
input column with one of those names is replaced (a warning says so).
``app.offline.spark`` adds the same columns with the same functions.

A bad row (text missing, empty or longer than ``MAX_TEXT_CHARS``; bytes that are not UTF-8;
in CSV a record ``csv`` cannot read, e.g. a cell over 64 MiB; in JSON Lines also a line
that is not a JSON object, or text that is not a string) does not stop the run: it is
reported on stderr with its line number, counted in the summary, and written in its place
with an empty label, scores and version and the reason in ``error`` (in CSV empty cells, in
JSON Lines ``null``). Good rows have an empty ``error`` (``null`` in JSON Lines). Line numbers are
1-based and count the CSV header; a CSV record with a quoted newline is reported at the
line where it starts. Blank lines are skipped in CSV (as Python's ``csv.DictReader`` does
between rows, and Spark before the header too) but are bad rows in JSON Lines, so output
line N always answers input line N there.

Input bytes are never altered: bytes that are not UTF-8 make their row bad, and a CSV
row's cells are written back byte for byte (Python's ``surrogateescape``). CSV lines end in
LF, CRLF or a bare CR (old Mac exports), as ``csv`` reads a file opened with ``newline=""``;
a CSV output has the input's line ending (from the header line); JSON Lines output has LF.

Exit status: 0 when the file was scored (even with bad rows); 2 for unusable arguments (no
such file, unknown extension, no such text column) or settings; 1 when the model cannot be
loaded (labels the server refuses to start with included); 65 (``EX_DATAERR``) when INPUT
cannot be read (a read error), a CSV INPUT is empty, its header cannot be read or it ends
inside a quoted field (cut short), or a gzipped INPUT is not valid gzip or is cut short; 74
(``EX_IOERR`` of sysexits.h) when OUTPUT cannot be written (an unwritable folder, a full
disk). The output is written to ``OUTPUT.partial-PID`` and renamed when complete; a run
that fails or is stopped (SIGHUP, SIGINT, SIGTERM: exit 129, 130, 143; a signal ignored
when the run starts, as ``nohup`` ignores SIGHUP, stays ignored) removes it. A stderr
that cannot be written (its reader gone, a full disk) does not stop the run.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import gzip
import io
import itertools
import json
import math
import os
import re
import signal
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click
import numpy as np

from app.config import EXIT_BAD_SETTING, Config, SettingError, check_environment
from app.offline.package import model_version_dir
from app.serving.predictor import PRECISIONS, ModelBundleError, Predictor
from app.serving.texts import lone_surrogate, review_text_problem

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Separators a header is tried with when the text column is not in it: the usual ones of
# spreadsheet exports (a semicolon where the comma is the decimal mark).
OTHER_DELIMITERS = (";", "\t", "|")
# csv's error (with strict=True) when the file ends inside a quoted field.
CSV_END_IN_QUOTES = "unexpected end of data"
# A line no decoded input holds (surrogateescape makes only U+DC80-U+DCFF), read after the
# file's last line by the usual (non-strict) reader: that reader returns a quoted field left
# open at the end of the file, where the strict one raises; it reads this line only then.
END_OF_FILE = "\ud800"
BLANK_LINES = ("\n", "\r\n", "\r")
GZIP = ".gz"  # after a format's extension: the file is gzipped
# Python's default (128 KiB) would make one huge cell a fatal csv.Error; a text that long
# is only a bad row ("too long"), so allow fields up to 64 MiB.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
# Bytes that are not UTF-8 are read as lone surrogates U+DC80-U+DCFF ("surrogateescape"),
# which write back as the same bytes: nothing is replaced, and the row can be told bad.
ENCODING_ERRORS = "surrogateescape"
# Byte-order marks of the encodings whose line breaks are not the byte 0x0A (Excel's
# "Unicode Text" is UTF-16): longest first, as UTF-32's LE mark begins with UTF-16's.
WIDE_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
UTF8_BOM = "\ufeff"
# JSON Lines records read before scoring: when none has the text key, it is a typo.
LOOK_AHEAD_RECORDS = 1000
# sysexits.h: "an error occurred while doing I/O on some file" (here: writing OUTPUT).
EXIT_OUTPUT_ERROR = 74
# sysexits.h: "the input data was incorrect in some way" (here: a gzipped INPUT that is not).
EXIT_INPUT_ERROR = 65


class OutputNotWritable(Exception):
    """OUTPUT (its ``.partial-PID`` file) could not be created or written; removed again."""


class InputNotReadable(Exception):
    """INPUT cannot be read (a read error), or holds no data to score: a gzipped INPUT
    that is not valid gzip or is cut short, a CSV INPUT that is empty, cut short inside a
    quoted field or has a header that cannot name the columns, a UTF-16 or UTF-32 file."""


@dataclass
class Row:
    """One input record: where it starts, what it held, and its text or why it is bad."""

    line: int
    data: Any  # list[str] for CSV, dict[str, Any] for JSON Lines
    text: str | None = None
    error: str | None = None
    # JSON Lines: its strings hold lone surrogates from escapes ("\ud800"), which UTF-8
    # cannot write: they are written back as escapes.
    escaped: bool = False
    # JSON Lines: the line holds bytes that are not UTF-8 (read as U+DC80-U+DCFF), which
    # are written back as those bytes.
    raw_bytes: bool = False


@dataclass
class Summary:
    """What a run did; ``rows_per_second`` counts every row written, bad ones included."""

    rows: int = 0
    bad_rows: int = 0
    seconds: float = 0.0
    bad_lines: list[int] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def gzipped(path: Path) -> bool:
    return path.suffix.lower() == GZIP


def file_format(path: Path) -> str:
    """``"csv"``, ``"tsv"`` or ``"jsonl"`` from the file's extension (before ``.gz``), else a usage
    error."""
    suffix = Path(path.stem).suffix if gzipped(path) else path.suffix
    try:
        return FORMATS[suffix.lower()]
    except KeyError:
        known = ", ".join(FORMATS)
        raise click.UsageError(
            f"{path}: unknown extension {''.join(path.suffixes)!r} (use {known}, each "
            f"optionally with {GZIP})"
        ) from None


def wide_encoding(start: bytes) -> str | None:
    """What to tell of a file that starts with ``start``, if it is UTF-16 or UTF-32."""
    name = next((name for bom, name in WIDE_BOMS.items() if start.startswith(bom)), None)
    if name is None:
        return None
    return (
        f"is {name} (it starts with a {name} byte-order mark): convert it to UTF-8 first, "
        f"e.g. iconv -f {name} -t UTF-8 (Excel: save as CSV UTF-8)"
    )


def read_lines(
    binary: IO[bytes],
    progress: Any,
    stored_at: Callable[[], int],
    path: Path,
    universal: bool = False,
) -> Iterator[str]:
    """Decoded lines (line endings kept, as ``csv`` wants), advancing ``progress`` by the
    bytes of the file as stored (``stored_at``: how far it has been read, gzipped or not).

    JSON Lines end at ``\\n`` only: reading bytes keeps the count exact and cheap, and
    splitting UTF-8 at ``\\n`` is safe because that byte never occurs inside a multi-byte
    character. A CSV file (``universal``) is split at ``\\r``, ``\\n`` and ``\\r\\n`` alike,
    as ``csv`` reads a file opened with ``newline=""``: old Mac exports end lines with a bare
    CR. A UTF-16 or UTF-32 file (by its byte-order mark) raises ``InputNotReadable``: every
    row of it would be garbage. So does a read error (a failing disk): an outside probe
    found it blamed on OUTPUT ("cannot write …: Input/output error", exit 74), or a
    traceback when the first read failed.
    """
    lines: Iterator[str]
    if universal:
        lines = io.TextIOWrapper(binary, encoding="utf-8", errors=ENCODING_ERRORS, newline="")
    else:
        lines = (raw.decode("utf-8", errors=ENCODING_ERRORS) for raw in binary)
    first = True
    done = 0
    while True:
        try:
            line = next(lines, None)
        except OSError as error:  # BadGzipFile too (gzip_lines gives the same message)
            raise InputNotReadable(f"cannot read {path}: {error.strerror or error}") from None
        if line is None:
            return
        position = stored_at()
        progress.update(position - done)
        done = position
        if first:
            if wide := wide_encoding(line[:4].encode("utf-8", errors=ENCODING_ERRORS)):
                raise InputNotReadable(f"{path} {wide}")
            first = False
        yield line


def gzip_lines(lines: Iterator[str], path: Path) -> Iterator[str]:
    """``lines`` of a gzipped file, a broken one raising ``InputNotReadable``."""
    try:
        yield from lines
    except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
        raise InputNotReadable(f"cannot read {path}: {error}") from None


class CSVFormat:
    """Reads CSV records and writes them back with the prediction columns appended."""

    def __init__(
        self,
        lines: Iterator[str],
        text_column: str,
        max_text_chars: int,
        delimiter: str = ",",
        name: object = "INPUT",
    ):
        csv.field_size_limit(CSV_FIELD_LIMIT)
        first = next(lines, "")
        # Blank lines before the header are skipped, as Spark does (and csv between rows),
        # and counted in the line numbers.
        self.blank_lines = 0
        while first in BLANK_LINES:
            first, self.blank_lines = next(lines, ""), self.blank_lines + 1
        if not first:
            raise InputNotReadable(f"{name} is empty: a CSV file needs a header row")
        # Written back with the input's line ending (LF stays LF: csv's default is CRLF;
        # an old Mac file's bare CR stays CR) and separator.
        self.newline = next((end for end in ("\r\n", "\r") if first.endswith(end)), "\n")
        self.delimiter = delimiter
        self.specials = re.compile(f'["\\r\\n{re.escape(delimiter)}]')  # for quoted_at_end
        # strict: a quote left open at the end of the file is an error ("unexpected end of
        # data"), not every remaining line merged into one cell. What else strict refuses,
        # the usual reading takes (rows()), so ``taken`` keeps the current record's lines.
        self.name = name
        self.taken: list[str] = []
        self.source = self._tapped(itertools.chain([first], lines))
        self.reader = csv.reader(self.source, delimiter=delimiter, strict=True)
        self.lines_read_aside = 0  # by _reread, past the strict reader's count
        try:
            self.header = next(self.reader)
        except csv.Error as error:
            raise InputNotReadable(
                f"{name}: cannot read the header on line {self.blank_lines + 1} ({error})"
            ) from None
        if repeated := repeated_names(self.header):
            raise InputNotReadable(f"{name}: {repeated}")
        if text_column not in self.header:
            raise click.BadParameter(
                f"no column {text_column!r} in the header ({', '.join(self.header)})"
                + separator_hint(first, text_column, delimiter),
                param_hint="'--text-column'",
            )
        self.text_index = self.header.index(text_column)
        self.max_text_chars = max_text_chars

    def _tapped(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self.taken.append(line)
            yield line

    def input_columns(self) -> list[str]:
        return self.header

    def rows(self) -> Iterator[Row]:
        reader, width = self.reader, len(self.header)
        start = self.line_number()
        while True:
            self.taken.clear()
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                if str(error) == CSV_END_IN_QUOTES:
                    raise self._cut_short(start) from None
                try:
                    record = self._reread()
                except csv.Error as error:
                    if str(error) == CSV_END_IN_QUOTES:  # found by the re-reading
                        raise self._cut_short(start) from None
                    yield Row(start, [], error=f"Unreadable CSV record ({error}).")
                    start = self.line_number()
                    continue
            line, start = start, self.line_number()
            if not record:  # a blank line
                continue
            if len(record) > width:
                yield Row(line, record, error=too_many_fields(len(record), width))
                continue
            record += [""] * (width - len(record))
            undecodable = not_utf8(record, self.header)
            if undecodable:
                yield Row(line, record, error=undecodable)
                continue
            text = record[self.text_index]
            yield Row(line, record, text=text, error=review_text_problem(text, self.max_text_chars))

    def _cut_short(self, line: int) -> InputNotReadable:
        return InputNotReadable(
            f"{self.name}: the quoted field opened on line {line} is not closed by the end "
            "of the file (is the file cut short?)"
        )

    def _reread(self) -> list[str]:
        """The record the strict reader refused, read as csv (and pandas) usually read it:
        '1,"great" flight' is great flight. The strict reader drops the rest of the line
        and goes on inside any quoted field left open, so the re-reading starts from the
        record's first line and takes the lines after it that the record still holds;
        re-reading only the lines taken cut the review at its first line break and made
        a row of each line after it. A record even that cannot read (a cell over 64 MiB)
        raises ``csv.Error``, after skipping the rest of its quoted field.

        A quoted field still open at the end of the file raises ``csv.Error`` with the
        strict reader's message, as the strict reading does: the usual reading returned
        it, the rest of the file in its last cell, so one stray character after a closing
        quote ('"great"x') turned the cut-short check off (an outside probe: exit 0, the
        rows after it lost)."""
        taken = list(self.taken)
        lines = itertools.chain(taken, self.source, [END_OF_FILE])
        again = csv.reader(lines, delimiter=self.delimiter)
        try:
            record = next(again, [])
        except csv.Error:
            self._skip_quoted_field()
            raise
        finally:
            self.lines_read_aside += max(again.line_num - len(taken), 0)
        if any(END_OF_FILE in cell for cell in record):
            raise csv.Error(CSV_END_IN_QUOTES)
        return record

    def _skip_quoted_field(self) -> None:
        """Skip the rest of the record being read (its lines so far in ``taken``): the
        lines to the end of its quoted field, if one is open at the end of them. The
        quotes are followed as csv reads them (``quoted_at_end``): counting them all made
        a literal quote in an unquoted field ('5" screen') open a field to the end of the
        file, and every row after it was lost (an outside probe)."""
        quoted = False
        for line in self.taken:
            quoted = quoted_at_end(line, self.specials, self.delimiter, quoted)
        while quoted:
            line = next(self.source, None)
            if line is None:
                raise csv.Error(CSV_END_IN_QUOTES)
            self.lines_read_aside += 1
            quoted = quoted_at_end(line, self.specials, self.delimiter, quoted)

    def line_number(self) -> int:
        """The line the reader's next record starts on."""
        return self.blank_lines + self.reader.line_num + self.lines_read_aside + 1

    def writer(self, output: IO[str], added: list[str]) -> CSVWriter:
        return CSVWriter(output, self.header, added, self.newline, self.delimiter)


def quoted_at_end(line: str, specials: re.Pattern[str], delimiter: str, quoted: bool) -> bool:
    """Whether csv's usual (non-strict) reading is inside a quoted field at the end of
    ``line``, given whether it was at the line's start (``quoted``; a record's first line
    starts outside). As csv reads: a quote opens a quoted field only at a field's start
    (elsewhere it is a literal quote); inside one, a doubled quote is a literal quote and
    a single one closes it; characters after the closing quote go on as an unquoted
    field; the delimiter and a line break end an unquoted field (a line break, the
    record). Only the quotes, delimiters and line breaks are visited (``specials``
    finds them), not every character of a 64 MiB line."""
    field_start = 0  # where the current field starts, when outside quotes
    closed = -2  # where the quote that closed the last quoted field stands (none yet)
    for match in specials.finditer(line):
        char, at = match.group(), match.start()
        if quoted:
            if char == '"':
                quoted, closed = False, at
            continue
        if at == closed + 1:  # right after a closing quote
            if char == '"':  # a doubled quote: a literal one, still quoted
                quoted = True
                continue
        elif at == field_start and char == '"':
            quoted = True
            continue
        if char == delimiter:
            field_start = at + 1
        elif char in "\r\n":
            return False  # the record ends with the line
    return quoted


def checked_delimiter(delimiter: str, csv_file: bool) -> str:
    """``--delimiter`` as a character (``'\\t'``, as typed in a shell, is a tab), or a usage
    error: not one character, a quote or a line break, or given where no .csv file is read
    or written (``csv_file``)."""
    if delimiter == "\\t":
        delimiter = "\t"
    if delimiter != "," and not csv_file:
        raise click.BadParameter("applies to .csv files only", param_hint="'--delimiter'")
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise click.BadParameter(
            "one character, not a quote or a line break", param_hint="'--delimiter'"
        )
    return delimiter


def separator_hint(header_line: str, text_column: str, delimiter: str) -> str:
    """Why the text column may be missing: the header has it when split at another usual
    separator (a spreadsheet's export with semicolons, a tab-separated file)."""
    for other in OTHER_DELIMITERS:
        if other != delimiter and text_column in next(csv.reader([header_line], delimiter=other)):
            if other == "\t":
                return (
                    "; the header is separated by tabs: add --delimiter '\\t' or name the file .tsv"
                )
            return f"; the header is separated by '{other}': add --delimiter '{other}'"
    return ""


def repeated_names(header: Sequence[str | None]) -> str | None:
    """Why a CSV header cannot name the output's columns: names that repeat, compared
    ignoring case as Spark compares them (empty names aside: Spark numbers them), or None.
    Both commands refuse such a header rather than each picking its own column."""
    count = collections.Counter(name.lower() for name in header if name)
    repeated = [name for name in header if name and count[name.lower()] > 1]
    if not repeated:
        return None
    return (
        f"the header repeats column names ({', '.join(repeated)}; case is ignored): "
        "give each column a name of its own"
    )


def not_utf8(values: Sequence[str], names: Sequence[str] | None = None) -> str | None:
    """Why a row read with ``surrogateescape`` holds bytes that are not UTF-8 (the first
    such byte, and its CSV column), or None if it holds none."""
    for index, value in enumerate(values):
        for character in value:
            if "\udc80" <= character <= "\udcff":
                where = f" in column {names[index]!r}" if names and index < len(names) else ""
                return f"Not valid UTF-8 (byte 0x{ord(character) - 0xDC00:02X}{where})."
    return None


def too_many_fields(fields: int, width: int) -> str:
    """The error of a CSV record longer than the header (shorter ones are padded)."""
    return f"The row has {fields} fields but the header has {width}."


class CSVWriter:
    def __init__(
        self, output: IO[str], header: list[str], added: list[str], newline: str, delimiter: str
    ):
        self.keep = [i for i, name in enumerate(header) if name not in added]
        self.width = len(header)
        self.empty_cells = len(added) - 1  # all but "error"
        self.writer = csv.writer(output, lineterminator=newline, delimiter=delimiter)
        # csv quotes a cell for the line break characters of its own line ending only: a
        # cell holding LF in a CR file (Alt+Enter in Excel for Mac), or a bare CR in an LF
        # file, went out unquoted and broke its row in two. Such rows are written with
        # every cell quoted.
        self.quoted = csv.writer(
            output, lineterminator=newline, delimiter=delimiter, quoting=csv.QUOTE_ALL
        )
        self.writerow([header[i] for i in self.keep] + added)

    def writerow(self, cells: list[str]) -> None:
        breaks = any("\r" in cell or "\n" in cell for cell in cells)
        (self.quoted if breaks else self.writer).writerow(cells)

    def write(self, row: Row, prediction: Prediction | None) -> None:
        data = (row.data + [""] * self.width)[: self.width]
        kept = [data[i] for i in self.keep]
        if prediction is None:
            self.writerow(kept + [""] * self.empty_cells + [row.error])
            return
        scores = [f"{p:.6f}" for p in prediction.probabilities]
        self.writerow(
            [*kept, prediction.label, f"{prediction.score:.6f}", *scores, prediction.version, ""]
        )


class JSONLinesFormat:
    """Reads one JSON object a line and writes it back with the prediction keys added."""

    def __init__(self, lines: Iterator[str], text_column: str, max_text_chars: int):
        self.text_column = text_column
        self.max_text_chars = max_text_chars
        self.ahead: list[str] = []
        self._check_text_key(lines)
        self.lines = itertools.chain(self.ahead, lines)

    def _check_text_key(self, lines: Iterator[str]) -> None:
        """A typo in ``--text-column``: none of the first ``LOOK_AHEAD_RECORDS`` records
        has the key; stop before scoring. One record without it is only a bad row (JSON
        writers leave out null fields), wherever it stands. Reads (into ``ahead``) only
        up to the first record that has the key."""
        objects = []
        for line in itertools.islice(lines, LOOK_AHEAD_RECORDS):
            self.ahead.append(line)
            with contextlib.suppress(ValueError):  # a bad row, reported in its place
                record = read_json(line)
                if isinstance(record, dict):
                    if self.text_column in record:
                        return
                    objects.append(record)
        if objects:
            keys = ", ".join(objects[0]) or "none"
            count = len(objects)
            where = "the first record" if count == 1 else f"any of the first {count:,}"
            raise click.BadParameter(
                f"no key {self.text_column!r} in {where} (the first one's keys: {keys})",
                param_hint="'--text-column'",
            )

    def input_columns(self) -> list[str]:
        return []  # keys can differ from row to row: the writer warns

    def rows(self) -> Iterator[Row]:
        for number, line in enumerate(self.lines, start=1):
            yield self._row(number, line)

    def _row(self, number: int, line: str) -> Row:
        return json_line_row(number, line, self.text_column, self.max_text_chars)

    def writer(self, output: IO[str], added: list[str]) -> JSONLinesWriter:
        return JSONLinesWriter(output, added)


def json_line_row(number: int, line: str, text_column: str, max_text_chars: int) -> Row:
    """One JSON Lines record: its object and text, or why it cannot be scored."""
    if not line.strip():
        return Row(number, {}, error="Blank line: expected a JSON object.")
    undecodable = not_utf8([line])
    try:
        record = read_json(line)
    except ValueError as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        return Row(number, {}, error=undecodable or f"Not valid JSON ({reason}).")
    if not isinstance(record, dict):
        got = type(record).__name__
        return Row(number, {}, error=undecodable or f"Expected a JSON object, got {got}.")
    # A readable object keeps its keys, so that the row can be joined back (an outside
    # probe): bytes that are not UTF-8 go back as they came (surrogateescape), escapes
    # of lone surrogates as escapes.
    lone = escaped_lone_surrogate(line, record, undecodable is not None)
    if undecodable or lone is not None:
        error = undecodable or f"Not text: a string holds a lone surrogate ({lone})."
        return Row(
            number, record, error=error, escaped=lone is not None, raw_bytes=bool(undecodable)
        )
    text = record.get(text_column)
    if text is None and text_column not in record:
        return Row(number, record, error=f"No key {text_column!r}.")
    return Row(number, record, text=text, error=review_text_problem(text, max_text_chars))


def escaped_lone_surrogate(line: str, record: Any, raw_bytes: bool) -> str | None:
    """The first lone surrogate an escape in ``line`` made in ``record`` (as that escape),
    or None. Only escapes make one; but the line's bytes that are not UTF-8 (``raw_bytes``)
    are lone surrogates too once read, and were taken for escapes: such a line with any
    ``\\u`` escape was written all escaped, its bytes as the text ``\\udce9`` (an outside
    probe). The line is then read again with U+FFFD for those bytes."""
    if "\\u" not in line:
        return None
    if raw_bytes:
        record = read_json(RAW_BYTES.sub("\ufffd", line))
    return lone_surrogate(record)


# Bytes that are not UTF-8, as surrogateescape reads them; and the surrogates it cannot
# write back, as an escape's lone surrogate may be.
RAW_BYTES = re.compile("[\udc80-\udcff]")
NOT_RAW_BYTES = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def read_json(line: str) -> Any:
    """``json.loads``, refusing (``ValueError``) what no JSON can write back, and
    nesting deeper than Python's json reads (a ``RecursionError`` stopped the run)."""
    try:
        return json.loads(
            line, parse_constant=not_json, parse_float=finite_number, parse_int=finite_integer
        )
    except RecursionError:
        raise ValueError("nested deeper than can be read") from None


def finite_integer(text: str) -> int:
    """A JSON integer, refusing one beyond a double's range (JSON readers read numbers
    as doubles: jq turned a 400-digit one into 1.7976931348623157e+308)."""
    digits = len(text) - text.startswith("-")
    if digits >= DOUBLE_DIGITS and (digits > DOUBLE_DIGITS or abs(int(text)) > LARGEST_DOUBLE):
        raise ValueError(f"the number {text[:20]}… is beyond a double's range")
    return int(text)


# The largest double, about 1.8e308, as an integer, and its count of digits.
LARGEST_DOUBLE = int(sys.float_info.max)
DOUBLE_DIGITS = len(str(LARGEST_DOUBLE))


def not_json(name: str) -> Any:
    """``json.loads`` takes NaN, Infinity and -Infinity, which JSON has not: refuse them."""
    raise ValueError(f"{name} is not a JSON value")


def finite_number(text: str) -> float:
    """A JSON number as a float, refusing one too large for it (1e400 would be infinity,
    which JSON cannot write back)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text} is beyond a double's range")
    return number


class JSONLinesWriter:
    def __init__(self, output: IO[str], added: list[str]):
        self.output = output
        self.added = added
        self.replaced: set[str] = set()

    def write(self, row: Row, prediction: Prediction | None) -> None:
        if replaced := [key for key in row.data if key in self.added and key not in self.replaced]:
            self.replaced.update(replaced)
            warn(
                f"warning: input keys {', '.join(replaced)} are replaced in the output (first "
                f"on line {row.line})"
            )
        record = {key: value for key, value in row.data.items() if key not in self.added}
        if prediction is None:
            record.update(dict.fromkeys(self.added))
            record["error"] = row.error
        else:
            record.update(zip(self.added, prediction.values(), strict=True))
        # Bytes that are not UTF-8 go back as they came (ensure_ascii made each the text
        # "\udce9", and every other character an escape: an outside probe); lone
        # surrogates from escapes go back as escapes. A line with both keeps its bytes and
        # escapes the surrogates that cannot be bytes; an escape of one that can ("\udce9")
        # is then written as that byte: the two cannot be told apart once read.
        text = json.dumps(record, ensure_ascii=row.escaped and not row.raw_bytes, allow_nan=False)
        if row.escaped and row.raw_bytes:
            text = NOT_RAW_BYTES.sub(lambda match: f"\\u{ord(match[0]):04x}", text)
        self.output.write(text + "\n")


def output_columns(classes: list[str]) -> list[str]:
    """What scoring adds to every row, in order (``Prediction.values()`` fills them)."""
    return ["label", "score", *(f"p_{name}" for name in classes), "version", "error"]


@dataclass(frozen=True)
class Prediction:
    """What the output says about one good row; probabilities rounded to 6 decimals."""

    label: str
    probabilities: list[float]  # in the model's class order
    version: str

    @property
    def score(self) -> float:
        return max(self.probabilities)

    def values(self) -> list[Any]:
        """The row's values for ``output_columns``, in order (``error`` is None)."""
        return [self.label, self.score, *self.probabilities, self.version, None]


def predict_texts(predictor: Predictor, texts: Sequence[str]) -> list[Prediction]:
    """One ``Prediction`` per text, in order, from one model call (texts must be good)."""
    if not texts:
        return []
    probabilities = predictor.predict_proba(texts)
    best = np.argmax(probabilities, axis=1).tolist()
    classes, version = predictor.bundle.classes, predictor.bundle.version
    return [
        Prediction(classes[top], [round(p, 6) for p in row], version)
        for top, row in zip(best, probabilities.tolist(), strict=True)
    ]


def summary_line(summary: Summary, predictor: Predictor, output: object) -> str:
    """The last line of a run, the same for ``app.batch`` and ``app.spark``."""
    bundle = predictor.bundle
    return (
        f"Scored {summary.rows} rows ({summary.bad_rows} bad) in {summary.seconds:.1f} s: "
        f"{summary.rows_per_second:,.0f} rows/s with {bundle.name} v{bundle.version} -> {output}"
    )


def score_file(
    input_path: Path,
    output_path: Path,
    predictor: Predictor,
    *,
    text_column: str = "text",
    delimiter: str = ",",
    batch_size: int = 256,
    max_text_chars: int = Config.MAX_TEXT_CHARS,
    show_progress: bool = True,
) -> Summary:
    """Score ``input_path`` into ``output_path`` (same format) with a loaded predictor;
    ``delimiter`` separates a ``.csv`` file's cells (a ``.tsv`` file's are tabs).

    Bad rows are reported on stderr as they are met; the summary counts them. Only one
    batch of rows is in memory at a time.
    """
    kind = file_format(input_path)
    if file_format(output_path) != kind:
        raise click.UsageError(f"OUTPUT must be a {kind} file like INPUT ({output_path})")
    added = output_columns(predictor.bundle.classes)
    summary = Summary()
    started = time.perf_counter()
    # Its own name per run: two runs writing the same OUTPUT wrote into one file (one
    # announced the other's rows). The last run to finish now leaves its whole file.
    partial = partial_path(output_path, os.getpid())

    with (
        input_path.open("rb") as stored,
        gzip.GzipFile(fileobj=stored) if gzipped(input_path) else stored as binary,
        click.progressbar(
            length=input_path.stat().st_size,
            label=f"Scoring {input_path.name}",
            file=ProgressStream(),
            hidden=not show_progress,
        ) as progress,
    ):
        # A named pipe (bash's <(zcat …)) cannot tell its position: tell raised ESPIPE.
        stored_at = stored.tell if stored.seekable() else lambda: 0
        lines = read_lines(binary, progress, stored_at, input_path, kind in ("csv", "tsv"))
        if gzipped(input_path):
            lines = gzip_lines(lines, input_path)
        # A UTF-8 byte-order mark (Excel's "CSV UTF-8") is taken off the first line and
        # written back at the start of a CSV output: without it Excel reads the file as
        # its ANSI code page and garbles every accent and emoji.
        first_line = next(lines, None)
        bom = first_line is not None and first_line.startswith(UTF8_BOM)
        if first_line is not None:
            lines = itertools.chain([first_line.removeprefix(UTF8_BOM)], lines)
        source: CSVFormat | JSONLinesFormat
        if kind in ("csv", "tsv"):
            separator = "\t" if kind == "tsv" else delimiter
            source = CSVFormat(lines, text_column, max_text_chars, separator, input_path)
        else:
            source = JSONLinesFormat(lines, text_column, max_text_chars)
        replaced = [name for name in source.input_columns() if name in added]
        if replaced:
            warn(f"warning: input columns {', '.join(replaced)} are replaced in the output")
        try:
            with (
                open(partial, "wb") as stored_output,
                text_output(stored_output, output_path) as output,
            ):
                if bom and kind != "jsonl":
                    output.write(UTF8_BOM)
                writer = source.writer(output, added)
                batch: list[Row] = []
                for row in source.rows():
                    batch.append(row)
                    if len(batch) >= batch_size:
                        _score_batch(batch, predictor, writer, summary)
                        batch = []
                _score_batch(batch, predictor, writer, summary)
            os.replace(partial, output_path)
        except OSError as error:  # writing: read errors are InputNotReadable (read_lines)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise OutputNotWritable(
                f"cannot write {output_path}: {error.strerror or error}"
            ) from None
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
    summary.seconds = time.perf_counter() - started
    return summary


def text_output(stored: IO[bytes], output_path: Path) -> IO[str]:
    """OUTPUT's text stream over ``stored`` (its partial file), gzipped for a ``.gz``
    OUTPUT. The gzip header names OUTPUT, not the partial file: ``gunzip -N`` and 7-Zip
    restored ``scored.csv.gz.partial-PID``, the leftover the run never leaves (an outside
    probe)."""
    binary = stored
    if gzipped(output_path):
        binary = gzip.GzipFile(output_path.name, "wb", fileobj=stored)
    return io.TextIOWrapper(binary, encoding="utf-8", errors=ENCODING_ERRORS, newline="")


def partial_path(output_path: Path, pid: int) -> Path:
    """``OUTPUT.partial-PID``, OUTPUT's name cut where the two would pass the folder's
    longest name (255 bytes on most file systems): an OUTPUT of 249 bytes or more could
    not be written at all."""
    suffix = f".partial-{pid}"
    try:
        longest = os.pathconf(output_path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):  # the folder is missing: writing fails and says so
        longest = 255
    name = output_path.name
    while len(os.fsencode(name + suffix)) > longest:
        name = name[:-1]
    return output_path.with_name(name + suffix)


def _score_batch(
    batch: list[Row],
    predictor: Predictor,
    writer: CSVWriter | JSONLinesWriter,
    summary: Summary,
) -> None:
    """Predict the batch's good rows in one call, then write every row in order."""
    predictions = iter(predict_texts(predictor, [row.text for row in batch if row.error is None]))
    for row in batch:
        summary.rows += 1
        if row.error is not None:
            summary.bad_rows += 1
            summary.bad_lines.append(row.line)
            warn(f"line {row.line}: {row.error}")
            writer.write(row, None)
            continue
        writer.write(row, next(predictions))


def warn(message: str) -> None:
    """A line on stderr. A reader that has gone (``2>&1 | head -3``) does not stop the
    run: the rest goes to /dev/null, as Python's documentation advises, rather than a
    BrokenPipeError blamed on OUTPUT. Nor does a stderr that cannot take it (``2>/dev/full``)."""
    try:
        click.echo(message, err=True)
    except OSError:
        stderr_to_devnull()


def stderr_to_devnull() -> None:
    """stderr's file descriptor onto /dev/null, once writing to it has failed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stderr.fileno())
    os.close(devnull)


class ProgressStream:
    """stderr for the progress bar, whose writes cannot stop the run: its label, written
    when the bar starts, was the one unprotected write, and a stderr gone (``2>&1 | true``:
    click's exit 1 on EPIPE) or full (``2>/dev/full``: a traceback nobody saw) stopped the
    run with exit 1 and no OUTPUT (an outside probe). As ``warn`` does, a failed write
    sends stderr to /dev/null and the run goes on."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except OSError:
            stderr_to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except OSError:
            stderr_to_devnull()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def chosen_model_dir(model_version: str | None, model_dir: Path | None) -> Path:
    """The folder ``--model-version`` or ``--model-dir`` names, else the one the server
    answers with by default; a usage error when it is not there (naming the versions that
    are) or when both are given."""
    if model_dir is not None and model_version is not None:
        raise click.UsageError("give --model-version or --model-dir, not both")
    if model_dir is not None:
        return model_dir
    try:
        model_dir = model_version_dir(model_version)
    except ModelBundleError as error:
        raise click.ClickException(f"model failed to load: {error}") from None
    if not model_dir.is_dir() and model_version is None:  # MODEL_DIR, not an option
        raise click.UsageError(
            f"MODEL_DIR={Config.MODEL_DIR}: not a folder (a relative path is read from the "
            f"current folder, {Path.cwd()})"
        )
    if not model_dir.is_dir():
        base = Path(Config.MODEL_BASE_DIR)
        found = base.iterdir() if base.is_dir() else []
        available = ", ".join(sorted(p.name for p in found if p.name.isdigit())) or "none"
        raise click.BadParameter(
            f"no model folder {model_dir} (versions in {base}: {available})",
            param_hint="'--model-version'",
        )
    return model_dir


# SIGHUP: the terminal or ssh session closed (it left OUTPUT.partial-PID behind).
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say_stopped(signum: int) -> None:
    """The one line a run stopped by a signal leaves on stderr (app.batch, app.spark)."""
    # os.write, not print: the signal may come while the run is writing to stderr.
    with contextlib.suppress(OSError):
        os.write(2, f"Stopped by {signal.Signals(signum).name}: OUTPUT not written\n".encode())


def stop_on_signals() -> list[int]:
    """SIGINT (Ctrl-C), SIGTERM (``timeout``, Slurm, Kubernetes) and SIGHUP stop the run with
    128 + the signal's number, as a shell reports it, after ``score_file`` has removed the
    unfinished output: SIGTERM used to leave it half-written, and Ctrl-C exited 1 (click's
    "Aborted!"), the code of a model that cannot be loaded. Returns the signals it handles.

    A signal ignored when the run starts stays ignored, as Python leaves an ignored SIGINT:
    ``nohup`` ignores SIGHUP so that a run outlives its ssh session, and a shell script's
    background job has SIGINT ignored; both runs were stopped (an outside probe)."""

    def stop(signum: int, _frame: object) -> None:
        say_stopped(signum)
        raise SystemExit(128 + signum)

    handled = [signum for signum in STOPPING_SIGNALS if signal.getsignal(signum) != signal.SIG_IGN]
    for signum in handled:
        signal.signal(signum, stop)
    return handled


def exit_on_bad_setting() -> None:
    """Check the settings a scoring command reads, up front, as the server does: a bad
    one is one line naming it, and exit code 2."""
    try:
        check_environment(server=False)
    except SettingError as error:
        warn(f"Error: {error}")
        sys.exit(EXIT_BAD_SETTING)


@click.command(name="score")
@click.argument(
    "input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.argument("output_path", metavar="OUTPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--text-column",
    default="text",
    show_default=True,
    help="CSV column (or JSON Lines key) holding the text to classify.",
)
@click.option(
    "--delimiter",
    default=",",
    show_default=True,
    help="What separates a .csv file's cells: one character, such as ';', or '\\t' for a tab "
    "(a .tsv file's are tabs). The output keeps it.",
)
@click.option(
    "--batch-size",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows sent to the model at a time.",
)
@click.option(
    "--model-version",
    default=None,
    help="A version folder of MODEL_BASE_DIR, such as 4 [default: the version the server "
    "answers with by default, from MODEL_DIR, MODEL_BASE_DIR and MODEL_LABELS].",
)
@click.option(
    "--model-dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A model version folder anywhere, instead of --model-version.",
)
@click.option(
    "--threads",
    default=Config.INFERENCE_THREADS,
    show_default=True,
    type=click.IntRange(min=1),
    help="CPU threads for inference.",
)
@click.option(
    "--precision",
    default=Config.INFERENCE_PRECISION,
    show_default=True,
    type=click.Choice(["model", *PRECISIONS]),
    help="OpenVINO's precision, as INFERENCE_PRECISION for the server: model (the folder's "
    "own), f32, bf16, or int8 (where the folder ships an int8 model).",
)
@click.option(
    "--max-text-chars",
    default=Config.MAX_TEXT_CHARS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longer texts are bad rows, as in the API.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def score_command(
    input_path: Path,
    output_path: Path,
    text_column: str,
    delimiter: str,
    batch_size: int,
    model_version: str | None,
    model_dir: Path | None,
    threads: int,
    precision: str,
    max_text_chars: int,
    quiet: bool,
) -> None:
    """Score a CSV, TSV or JSON Lines file INPUT into OUTPUT (same format) with the served model.

    Adds label, score, p_<class>, version and error to every row; bad rows are reported with their
    line numbers and written with an empty label. Prints rows/s to stderr at the end.
    """
    handled = stop_on_signals()
    exit_on_bad_setting()
    if input_path.resolve() == output_path.resolve():
        raise click.UsageError("OUTPUT must not be INPUT")
    kind = file_format(input_path)
    if file_format(output_path) != kind:
        raise click.UsageError("OUTPUT must have the same format (extension) as INPUT")
    delimiter = checked_delimiter(delimiter, kind == "csv")
    if not output_path.parent.is_dir():
        raise click.UsageError(f"OUTPUT's folder does not exist: {output_path.parent}")
    model_dir = chosen_model_dir(model_version, model_dir)
    try:
        predictor = Predictor.load(
            model_dir, backend=Config.KERAS_BACKEND, inference_threads=threads, precision=precision
        )
    except ModelBundleError as error:
        raise click.ClickException(f"model failed to load: {error}") from None
    try:
        summary = score_file(
            input_path,
            output_path,
            predictor,
            text_column=text_column,
            delimiter=delimiter,
            batch_size=batch_size,
            max_text_chars=max_text_chars,
            show_progress=not quiet,
        )
    except OutputNotWritable as error:
        warn(f"Error: {error}")
        sys.exit(EXIT_OUTPUT_ERROR)
    except InputNotReadable as error:
        warn(f"Error: {error}")
        sys.exit(EXIT_INPUT_ERROR)
    # OUTPUT is in place: a signal now no longer says it was not written (one ignored
    # from the start stays ignored).
    for signum in handled:
        after = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, after)
    warn(summary_line(summary, predictor, output_path))


if __name__ == "__main__":
    score_command()
