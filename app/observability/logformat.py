"""The log format: one JSON object per line, for the app (stdout) and for Gunicorn
(stderr, its ``errorlog = "-"``; its access log, when on, stdout).

No Flask here: gunicorn.conf.py imports this module in the master, which then stays
small (the workers import Flask themselves, after fork).

Every line, newline included, is at most ``MAX_LINE_BYTES`` (4,096, Linux's PIPE_BUF): the
kernel writes such a write to a pipe whole, never spliced with another process's. Longer
lines, which a client made with a long path or User-Agent (each ``%01`` of a 4 KB request
line logged as six bytes, ``\\u0001``: 8,319 bytes), were cut at 4,096 bytes and spliced
with the other worker's when the log drain fell behind: about 600 of 800 lines were not
JSON (an outside probe). Such a line now has its longest fields cut (see
``JsonLineFormatter``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
from gunicorn import glogging
from pythonjsonlogger.orjson import OrjsonFormatter

# The most bytes a line takes with its newline: PIPE_BUF on Linux (POSIX's minimum is 512,
# but Linux, where the server runs, has 4,096).
MAX_LINE_BYTES = 4096
# Fields a long line keeps whole: the formatter's own, short and always there.
UNCUT_FIELDS = frozenset({"level", "logger", "pid", "time"})
# Fields a long line keeps the end of: a trace's last lines name the exception.
END_KEPT_FIELDS = frozenset({"exc_info", "stack_info"})
# What a cut field ends (a trace: starts) with; its length before the cut, in characters,
# is under ``truncated``.
CUT_MARK = "…"
TRUNCATED = "truncated"
_OPTIONS = orjson.OPT_NON_STR_KEYS  # OrjsonFormatter's (its indent option is never set)


def json_formatter() -> logging.Formatter:
    """The formatter of every log line: time, level, logger, message, then extras.

    orjson writes the line in about half the time of the standard library's json, and
    the request log line is on every request's path.
    """
    return JsonLineFormatter(
        "%(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
    )


class JsonLineFormatter(OrjsonFormatter):
    """``OrjsonFormatter`` whose lines fit ``MAX_LINE_BYTES``, checked on the line as
    written, escapes counted (``\\u0001`` is six bytes). An ordinary line, ASCII and under
    4,096 characters, costs a length and ``str.isascii()`` (a flag of the string); a longer
    one has its longest field halved until it fits, whichever field that is (the path,
    the User-Agent, a message quoting a request line): a few dumps, for a line no
    ordinary client makes."""

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        line = orjson.dumps(log_data, default=self.json_default, option=_OPTIONS).decode()
        if len(line) < MAX_LINE_BYTES and (line.isascii() or len(line.encode()) < MAX_LINE_BYTES):
            return line
        return self.shortened(log_data)

    def dumped(self, log_data: dict[str, Any]) -> str:
        # OrjsonFormatter's, without its indent option (never set here): one call fewer.
        return orjson.dumps(log_data, default=self.json_default, option=_OPTIONS).decode()

    def shortened(self, log_data: dict[str, Any]) -> str:
        """The line with its longest field halved, marked ``…``, again until it fits;
        ``truncated`` (before ``time``) gives each cut field's length before the cut. A
        field that is not a string is cut as its JSON text."""
        fields, cut = dict(log_data), {}
        while True:
            line = self.dumped(with_truncated(fields, cut))
            if len(line.encode()) < MAX_LINE_BYTES:
                return line
            key = max(
                (key for key in fields if key not in UNCUT_FIELDS),
                key=lambda key: len(self.dumped(fields[key])),
            )
            value = fields[key]
            text = value if isinstance(value, str) else self.dumped(value)
            if len(text) <= 2 * len(CUT_MARK):  # hundreds of fields, which nothing logs
                kept = {key: fields[key] for key in (*UNCUT_FIELDS, "message") if key in fields}
                return self.dumped(with_truncated(kept, {"fields_left_out": len(fields)}))
            cut.setdefault(key, len(text))
            half = len(text) // 2
            keep_end = key in END_KEPT_FIELDS
            fields[key] = CUT_MARK + text[-half:] if keep_end else text[:half] + CUT_MARK


def with_truncated(fields: dict[str, Any], cut: dict[str, int]) -> dict[str, Any]:
    """``fields`` with ``truncated: cut`` before ``time`` (last, without one), if any."""
    if not cut:
        return fields
    ordered = {key: value for key, value in fields.items() if key != "time"}
    ordered[TRUNCATED] = cut
    if "time" in fields:
        ordered["time"] = fields["time"]
    return ordered


def configure_logging(level: str) -> None:
    """Send the app's logs to stdout as JSON, unless something (pytest, a host app)
    already configured the root logger."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(json_formatter())
        root.addHandler(handler)
        # This process's logging is ours: skip what no line prints, which the logging
        # HOWTO's "Optimization" section lists (the caller's file and line, found by
        # walking the stack on every call, and thread and multiprocessing names).
        logging._srcfile = None
        logging.logThreads = False
        logging.logMultiprocessing = False
    logging.getLogger("app").setLevel(level)


def log_bad_setting(message: str) -> None:
    """The one line that stops start-up on a bad setting (before logging is set up)."""
    configure_logging("INFO")
    logging.getLogger("app.config").critical(message)


class GunicornLogger(glogging.Logger):
    """Gunicorn's logger, writing JSON lines with the same formatter as the app.

    The access log is off unless Gunicorn's ``accesslog`` is set (see gunicorn.conf.py):
    the app's own line per request carries the same fields and more.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(json_formatter())

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            "access",
            extra={
                "request_id": atoms.get("{x-request-id}o", "-"),
                "remote_addr": atoms["h"],
                "method": atoms["m"],
                "path": atoms["U"],
                # Gunicorn's own refusals hand a Response with no status_code (only
                # status): with ACCESS_LOG=1 the AttributeError killed the worker, every
                # connection it held with it (an outside probe).
                "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                "bytes": atoms["B"],
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "user_agent": atoms["a"],
            },
        )
