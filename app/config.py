"""Configuration: the one place that reads the environment (gunicorn.conf.py takes the
values ``check_environment`` parsed, never the raw text).

Every setting is one line of ``SETTINGS``: its name, its default and what it allows. They
are checked once, up front (``check_environment``): by ``app.server`` before Gunicorn is
imported, and by ``python -m app.batch`` before it loads a model.
A bad value stops start-up with one line naming the variable, the value and what is
allowed, and exit code 2 (``EXIT_BAD_SETTING``), as Gunicorn does for its own settings.
This module imports nothing heavy: the master must not pay for Flask, NumPy or Keras.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import os
import re
import shlex
import socket
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_BASE = PROJECT_ROOT / "model" / "sentiment"
DEFAULT_MODEL_DIR = MODEL_BASE / "1"
# Exit code of a bad setting: 2, the code of a usage error (argparse, click, Gunicorn's
# own option errors).
EXIT_BAD_SETTING = 2


class SettingError(ValueError):
    """A setting's value is not allowed; the message is the one line to print."""


class Reason(ValueError):
    """Raised by a ``Kind`` that can say more precisely what is wrong than ``allowed``."""


@dataclass(frozen=True)
class Kind:
    """How a setting's text becomes a value: ``parse`` raises ``ValueError`` when the text
    is not allowed, and ``allowed`` says in a few words what is."""

    parse: Callable[[str], Any]
    allowed: str


MAX_WORKERS = 64  # WEB_CONCURRENCY's bound, and --workers' in GUNICORN_CMD_ARGS

# ASCII digits only: int() and float() also take "1_000" and other scripts' digits ("３").
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_NUMBER = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def integer(low: int, high: int | None = None) -> Kind:
    def parse(text: str) -> int:
        if not _INTEGER.fullmatch(text):  # also refuses "1.5" and ""
            raise ValueError(text)
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(text)
        return value

    upper = f" to {high}" if high is not None else " or more"
    return Kind(parse, f"a whole number, {low}{upper}")


def number(low: float, high: float) -> Kind:
    def parse(text: str) -> float:
        if not _NUMBER.fullmatch(text):  # also refuses nan and inf
            raise ValueError(text)
        value = float(text)
        if not low <= value <= high:  # also refuses nan
            raise ValueError(text)
        return value

    return Kind(parse, f"a number from {low:g} to {high:g}")


def choice(*values: str, result: Callable[[str], Any] = str) -> Kind:
    """One of ``values``, case-insensitive; ``result`` maps the lower-case word."""

    def parse(text: str) -> Any:
        word = text.strip().lower()
        if word not in values:
            raise ValueError(text)
        return result(word)

    return Kind(parse, "one of " + ", ".join(values))


def pattern(regex: str, allowed: str) -> Kind:
    compiled = re.compile(regex)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text.strip()):
            raise ValueError(text)
        return text.strip()

    return Kind(parse, allowed)


def _addresses(text: str) -> str:
    for part in (part.strip() for part in text.split(",")):
        if part != "*":
            try:  # strict, as Gunicorn's own validator: 10.0.0.1/8 has host bits set
                ipaddress.ip_network(part)
            except ValueError as error:
                raise Reason(str(error)) from None
    return text


def _gunicorn_arguments(text: str) -> str:
    """Gunicorn's own command-line settings, checked with Gunicorn's parser and validators
    (imported only here: Gunicorn is there whenever this variable matters)."""
    if not text.strip():
        return text
    from gunicorn.config import Config as GunicornConfig

    config = GunicornConfig(prog="gunicorn")
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint), contextlib.redirect_stdout(io.StringIO()):
            parsed = config.parser().parse_args(shlex.split(text))
    except SystemExit as stop:  # argparse's complaint is its last line: "gunicorn: error: ..."
        if stop.code == 0:  # -h, --version: printed their text (to nobody), and exit
            raise Reason("-h and --version print and stop; give settings here") from None
        lines = complaint.getvalue().strip().splitlines() or [""]
        raise Reason(lines[-1].removeprefix("gunicorn: error: ")) from None
    from gunicorn.errors import ConfigError

    given = [n for n, v in vars(parsed).items() if v is not None and n in config.settings]
    for name in given:
        try:
            config.set(name.lower(), getattr(parsed, name))
        except (ValueError, TypeError, ConfigError) as error:  # Gunicorn's own validators
            raise Reason(f"{name}: {error}") from None
    if parsed.args:
        raise Reason(f"unexpected arguments {' '.join(parsed.args)}")
    if min(config.workers, config.threads, config.worker_connections) < 1:  # nothing serves
        raise Reason("--workers, --threads and --worker-connections must be 1 or more")
    if config.workers > MAX_WORKERS:  # as WEB_CONCURRENCY, which it would bypass
        raise Reason(f"--workers: at most {MAX_WORKERS}")
    for name in given:  # what Gunicorn's validators pass and Gunicorn finds out later
        if name in _NOT_HERE and getattr(parsed, name):
            raise Reason(_NOT_HERE[name])
        if name in _GUNICORN_LATER:
            try:
                _GUNICORN_LATER[name](config)
            except (ValueError, RuntimeError) as error:  # RuntimeError: Gunicorn's own
                raise Reason(f"{name}: {error}") from None
    return text


# Gunicorn options this server does not serve with, and why (each was accepted, and then
# failed quietly: found by an operator's probe).
_TLS = "TLS is not served here: end it in a proxy (Heroku's router does) and see FORCE_HTTPS"
_NOT_HERE = {
    # Each worker would bind a socket of its own; the master's, one a slot, stay in the
    # port's SO_REUSEPORT group with nobody accepting: half the connections hung.
    "reuse_port": "--reuse-port: the master holds one SO_REUSEPORT socket per worker slot "
    "already (README, Reliability)",
    "preload_app": "--preload loads the models in the master; they load in each worker",
    "statsd_host": "--statsd-host sends nothing with this server's JSON logger; "
    "metrics are Prometheus's, at /metrics",
    # The Procfile's --config gunicorn.conf.py comes after, and wins.
    "config": "--config is the Procfile's gunicorn.conf.py; give the settings themselves here",
    # The worker reads requests in plain HTTP from its loop: no handshake was ever
    # answered, and a client that connected and left killed the worker.
    "certfile": _TLS,
    "keyfile": _TLS,
    # Found by an outside probe: exit 0 with a detached master serving on (no supervisor,
    # Heroku's included, could stop it); a traceback or exit 3 later; ignored quietly
    # (this server reads its settings before Gunicorn applies --env).
    "daemon": "--daemon detaches the master from whatever runs it (Heroku, a supervisor)",
    "paste": "--paste loads another app; this server serves its own",
    "logger_class": "--logger-class: the server's JSON log lines are its own logger's",
    "raw_env": "--env: set the variables themselves (settings are read before Gunicorn "
    "applies --env, which then changed nothing)",
}


def _ports(config: Any) -> None:
    """--bind: a port past 65535 would be an OverflowError when the master binds; a
    Unix socket, the master's listeners refuse (host:port only); an empty one, or a host
    without a port, Gunicorn reads as port 8000, whatever PORT says. Port 0, as PORT=0,
    is refused: each worker slot's socket got a random port of its own, and only the
    first was logged (an outside probe: N-1 workers that nobody could reach). A host
    that does not resolve or is not this machine's was a bare OS error from the master
    (exit 1, naming neither --bind nor the address): bound here on port 0, a moment."""
    if any(not bind.strip() for bind in config.bind):
        raise ValueError("an empty address (Gunicorn would listen on 0.0.0.0:8000)")
    for bind in config.bind:
        if not _port_given(bind):
            raise ValueError(f"{bind!r} has no port (Gunicorn would listen on port 8000)")
    for address in config.address:  # RuntimeError: a port that is not a number
        if not isinstance(address, tuple):
            raise ValueError(f"{address!r}: only host:port addresses are served")
        if address[1] == 0:
            raise ValueError("port 0: each worker would listen on a random port of its own")
        if not 1 <= address[1] <= 65535:
            raise ValueError(f"port {address[1]} is not 1 to 65535")
        _local_host(*address)


def _port_given(bind: str) -> bool:
    """Whether Gunicorn's ``parse_address`` finds a port in ``bind`` (else it takes
    8000); Unix sockets and file descriptors are refused apart."""
    netloc = bind.strip()
    if netloc.startswith(("unix:", "fd://")):
        return True
    netloc = netloc.removeprefix("tcp://")
    if "[" in netloc and "]" in netloc:
        return "]:" in netloc
    return ":" in netloc


def _local_host(host: str, port: int) -> None:
    """The host resolves to an address of this machine: a socket binds it on port 0
    (any free port: the given one is the master's listeners' to check), in the family
    the listeners will use (``listeners.ListenerGroup``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except socket.gaierror as error:
            raise ValueError(
                f"{host}:{port}: {host!r} does not resolve ({error.strerror})"
            ) from None
        except OSError as error:
            reason = (
                "not an address of this machine"
                if error.errno == errno.EADDRNOTAVAIL
                else error.strerror
            )
            raise ValueError(f"{host}:{port}: cannot listen at {host} ({reason})") from None


def _worker_class(config: Any) -> None:
    """--worker-class: importable (else every worker fails to boot, with a traceback),
    and one that takes the plain sockets the master holds (gevent's failed at boot; sync,
    gthread and uvicorn-worker's take them)."""
    from gunicorn.util import load_class

    uri = config.settings["worker_class"].get()
    try:
        worker = load_class(uri)
    except (RuntimeError, AttributeError):  # the message holds a whole traceback
        raise ValueError(f"cannot import worker class {uri!r}") from None
    from gunicorn.workers.base_async import AsyncWorker

    if issubclass(worker, AsyncWorker):
        raise ValueError(
            f"{uri!r}: Gunicorn's gevent and eventlet workers take only Gunicorn's own "
            "socket objects, not the plain sockets the master holds"
        )


def _writable_folder(path: str) -> None:
    """A folder this process can create files in (tried: access() lies for root)."""
    if not os.path.isdir(path):
        raise ValueError(f"{path!r} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ValueError(f"cannot write in {path!r} ({error.strerror})") from None


def _log_level(config: Any) -> None:
    """--log-level: one of Gunicorn's (another was taken as info, quietly)."""
    from gunicorn.glogging import Logger

    if config.loglevel.lower() not in Logger.LOG_LEVELS:
        raise ValueError(f"{config.loglevel!r} is not one of {', '.join(Logger.LOG_LEVELS)}")


def _file_to_write(path: str | None) -> None:
    """A file Gunicorn will write (``-``: a standard stream): its folder must take it."""
    if path and path != "-":
        _writable_folder(os.path.dirname(os.path.abspath(path)))


def _file_to_read(path: str | None) -> None:
    if path and not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a file")


# Checks of the settings that Gunicorn's validators take as plain text, by setting name.
# Gunicorn found the file ones only when the master started, with lines that named
# neither the option nor GUNICORN_CMD_ARGS (an outside probe).
def _http1_only(config: Any) -> None:
    """The worker reads HTTP/1.1 from its own loop (and Heroku's router speaks it)."""
    if list(config.http_protocols) != ["h1"]:
        raise ValueError("only h1 is served (HTTP/1.1)")


_GUNICORN_LATER: dict[str, Callable[[Any], None]] = {
    "bind": _ports,
    "http_protocols": _http1_only,
    "worker_class": _worker_class,
    "worker_tmp_dir": lambda config: _writable_folder(config.worker_tmp_dir),
    "loglevel": _log_level,
    "pidfile": lambda config: _file_to_write(config.pidfile),
    "errorlog": lambda config: _file_to_write(config.errorlog),
    "accesslog": lambda config: _file_to_write(config.accesslog),
    "logconfig": lambda config: _file_to_read(config.logconfig),
    "logconfig_json": lambda config: _file_to_read(config.logconfig_json),
}


def _metrics_folder(text: str) -> str:
    """A folder the server can write metric files in: one that exists, or that it can
    create (its nearest existing parent is a writable folder). Empty: a new one."""
    text = text.strip()  # as every path here: a padded one made "/x/metrics " beside it
    if not text:
        return text
    path = os.path.abspath(text)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    try:
        _writable_folder(existing)
    except ValueError as error:
        raise Reason(str(error) if existing == path else f"cannot create it: {error}") from None
    return text


def _not_empty(text: str) -> str:
    """A folder's path, trimmed as numbers are (``" 5"`` is 5): a trailing space in
    MODEL_BASE_DIR was refused only by the workers, the space invisible in their line,
    and a leading one made the path relative (an outside probe)."""
    if not text.strip():
        raise ValueError(text)
    return text.strip()


FOLDER = Kind(_not_empty, "a folder's path (not empty)")
OPTIONAL_FOLDER = Kind(str.strip, "a folder's path, or nothing")
METRICS_FOLDER = Kind(_metrics_folder, "nothing (a new folder), or a folder it can write in")
ADDRESSES = Kind(_addresses, "* or a comma list of IP addresses or networks")
GUNICORN_OPTIONS = Kind(
    _gunicorn_arguments,
    "Gunicorn options with valid values (1 to 64 workers, at least 1 thread and worker "
    "connection, host:port binds of this machine with a port from 1 to 65535, HTTP/1.1, "
    "no gevent or eventlet worker class, no ASGI one for the Flask app; not --config, "
    "--preload, --reuse-port, "
    "--statsd-host, --certfile, --keyfile, --daemon, --paste, --logger-class or --env)",
)
_DATABASE_URL = re.compile(r"(postgres|postgresql|postgresql\+psycopg)://\S+|sqlite:///\S+")


def _database_url(text: str) -> str:
    """A URL SQLAlchemy can open, checked here rather than by each worker's engine (which
    failed with a traceback, its message repeating part of the URL). Reasons never
    repeat the value: it may hold a password."""
    text = text.strip()
    if not text:
        return text
    if not _DATABASE_URL.fullmatch(text):
        raise ValueError("scheme")
    if text.startswith("sqlite:"):
        if _in_memory_sqlite(text.removeprefix("sqlite:///")):
            raise Reason("an in-memory SQLite database is one per worker: name a file")
        return text
    try:
        port = urllib.parse.urlsplit(text).port
    except ValueError:
        raise Reason(
            "its host and port do not parse: one host, and a port from 1 to 65535"
        ) from None
    if port == 0:
        raise Reason("its port is 0: give one from 1 to 65535")
    return text


def _in_memory_sqlite(path: str) -> bool:
    """``:memory:``, or SQLite's URI forms of an in-memory (or temporary) database that
    SQLAlchemy passes on with ``uri=true``: ``file::memory:``, ``file:name?mode=memory``,
    the ``memdb`` VFS, an empty ``file:``. Only the literal ``:memory:`` was refused:
    ``sqlite:///file:preds?mode=memory&uri=true`` passed, and each worker's engine
    failed with a traceback (exit 3; an outside probe)."""
    name, _, query = path.partition("?")
    if name in ("", ":memory:") or name.removeprefix("file:") in ("", ":memory:"):
        return True
    parameters = urllib.parse.parse_qs(query.lower())
    return "memory" in parameters.get("mode", []) or "memdb" in parameters.get("vfs", [])


DATABASE_URL = Kind(
    _database_url,
    "nothing (SQLite in the instance folder), postgres://…, postgresql://… or sqlite:///…",
)
# RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
_API_KEY = re.compile(r"[A-Za-z0-9._~+/-]+=*")
API_KEY_CHARS = (16, 256)


def _api_keys(text: str) -> tuple[str, ...]:
    """The accepted API keys; none (an empty text) turns the check off. Several keys let
    clients move to a new one before the old one goes (rotation without a gap)."""
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    low, high = API_KEY_CHARS
    for number, key in enumerate(keys, 1):  # the reason never repeats a key
        if not low <= len(key) <= high:
            raise Reason(f"key {number} has {len(key)} characters")
        if not _API_KEY.fullmatch(key):
            raise Reason(f"key {number} has a character outside A-Z a-z 0-9 - . _ ~ + / =")
    return keys


API_KEYS = Kind(
    _api_keys,
    f"nothing (no keys), or a comma list of keys of {API_KEY_CHARS[0]} to {API_KEY_CHARS[1]} "
    "characters: A-Z a-z 0-9 - . _ ~ + / (and = at the end), e.g. from openssl rand -hex 32",
)
_ORIGIN = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origins(text: str) -> tuple[str, ...]:
    """The origins that may call the API from a browser: none (CORS off), ``*`` (any), or
    each as a browser sends it in ``Origin`` (scheme, host and port; no path). A scheme's
    default port is dropped, as a browser drops it (https://a.example:443 never matched)."""
    origins = tuple(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    if origins == ("*",):
        return origins
    kept = []
    for origin in origins:
        found = _ORIGIN.fullmatch(origin)
        if not found:
            raise Reason(f"{origin!r} is not an origin such as https://app.example.com")
        scheme, host, port = found.groups()
        if port is not None and not 1 <= int(port) <= 65535:
            raise Reason(f"{origin!r}: a port is 1 to 65535")
        if host.startswith("["):
            try:
                ipaddress.IPv6Address(host[1:-1])
            except ValueError:
                raise Reason(f"{origin!r}: {host} is not an IPv6 address") from None
        default = port is None or port == _DEFAULT_PORTS[scheme]
        kept.append(f"{scheme}://{host}" if default else f"{scheme}://{host}:{port}")
    return tuple(kept)


ORIGINS = Kind(
    _origins,
    "nothing (off), *, or a comma list of origins such as https://app.example.com,"
    "http://localhost:3000",
)
BOOLEAN = choice(
    "0", "1", "false", "true", "no", "yes", result=lambda word: word in ("1", "true", "yes")
)
# Version numbers are ASCII digits ([0-9]: \d also takes other scripts' digits).
VERSIONS = pattern(
    r"(?i:all)|\s*[1-9][0-9]*\s*(,\s*[1-9][0-9]*\s*)*", "all, or version numbers: 1,2"
)
_LABEL_PAIR = r"\s*[A-Za-z][A-Za-z0-9_-]{0,63}\s*=\s*[1-9][0-9]*\s*"
_LABEL_PAIRS = pattern(
    rf"({_LABEL_PAIR})(,{_LABEL_PAIR})*|",
    "label=version pairs such as stable=2,canary=1, or nothing",
)


def _label_pairs(text: str) -> str:
    text = _LABEL_PAIRS.parse(text)
    names = [pair.partition("=")[0].strip() for pair in text.split(",") if pair.strip()]
    for name in names:
        if names.count(name) > 1:
            raise Reason(f"label {name!r} given twice")
    return text


LABELS = Kind(_label_pairs, _LABEL_PAIRS.allowed + ", each label once")


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default (as text, parsed like a given value), what
    it allows, and whether only the web server reads it (``app.batch`` ignores those)."""

    name: str
    default: str
    kind: Kind
    server_only: bool = False
    # The value may hold a password (a database URL, API keys): a refusal never repeats it.
    secret: bool = False

    def parse(self, environ: Mapping[str, str]) -> Any:
        text = environ.get(self.name, self.default)
        try:
            return self.kind.parse(text)
        except (ValueError, TypeError) as error:
            reason = f" ({error})" if isinstance(error, Reason) else ""
            shown = "<not shown>" if self.secret else repr(text)
            raise SettingError(
                f"bad setting {self.name}={shown}: allowed is {self.kind.allowed}{reason}"
            ) from None


# Every variable in the README's configuration table, one line each. Adding a setting is
# adding a line here (and to the README table and app.json).
SETTINGS = (
    # The web server (read by gunicorn.conf.py, or by Gunicorn itself).
    Setting("PORT", "8000", integer(1, 65535), server_only=True),
    Setting("WEB_CONCURRENCY", "2", integer(1, MAX_WORKERS), server_only=True),
    # Seconds from a request's first byte to its last (gunicorn.conf.py, the worker).
    Setting("REQUEST_READ_TIMEOUT", "30", number(0.001, 3600), server_only=True),
    # Requests up to this many bytes run on the worker's event loop, not a thread (0: off).
    Setting("INLINE_MAX_BYTES", "131072", integer(0, 1024 * 1024), server_only=True),
    Setting("FORWARDED_ALLOW_IPS", "*", ADDRESSES, server_only=True),
    Setting("ACCESS_LOG", "0", BOOLEAN, server_only=True),
    Setting("PROMETHEUS_MULTIPROC_DIR", "", METRICS_FOLDER, server_only=True),
    # Read by Gunicorn itself, after gunicorn.conf.py; checked with Gunicorn's parser.
    Setting("GUNICORN_CMD_ARGS", "", GUNICORN_OPTIONS, server_only=True),
    # The app (workers and app.batch).
    Setting("LOG_LEVEL", "info", choice("debug", "info", "warning", "error", result=str.upper)),
    # The model's versions: numeric sub-folders of MODEL_BASE_DIR, each holding
    # model.keras (or its own model.xml), preprocessing.json and metadata.json.
    Setting("MODEL_BASE_DIR", str(MODEL_BASE), FOLDER),
    # Version 3 (the transformer) is opt-in: ~15 times version 2's CPU a request, and with
    # two workers it takes a server from ~180 to 345-433 MB (README, Model versions).
    Setting("MODEL_VERSIONS", "1,2", VERSIONS),
    # Empty: MODEL_BASE_DIR/labels.json, else the highest loaded version is stable.
    Setting("MODEL_LABELS", "", LABELS),
    # One version folder served alone (overrides the three settings above).
    Setting("MODEL_DIR", "", OPTIONAL_FOLDER),
    # Who answers requests that name no version.
    Setting("ROUTING", "stable", choice("stable", "canary", "shadow", "bandit")),
    Setting("CANARY_PERCENT", "10", number(0, 100)),
    Setting("SHADOW_PERCENT", "100", number(0, 100)),
    # ROUTING=bandit: the least share of requests (percent) each version keeps.
    Setting("BANDIT_MIN_PERCENT", "5", number(0, 100)),
    # The prediction store: PostgreSQL when set (Heroku Postgres sets it), else SQLite in
    # the instance folder. Predictions (never texts) are recorded unless RECORD_PREDICTIONS=0.
    Setting("DATABASE_URL", "", DATABASE_URL, secret=True),
    Setting("RECORD_PREDICTIONS", "1", BOOLEAN),
    # Set: every route but the health probes and the page's own files needs
    # "Authorization: Bearer <key>" with one of these keys (app.web.auth); monitoring keys
    # open /metrics and /monitoring alone (and close them when set without API_KEYS).
    Setting("API_KEYS", "", API_KEYS, secret=True),
    Setting("MONITORING_API_KEYS", "", API_KEYS, secret=True),
    # Behind a proxy that ends TLS (Heroku's router): plain HTTP is redirected (GET, HEAD)
    # or refused, and HTTPS answers carry HSTS (app.web.https).
    Setting("FORCE_HTTPS", "0", BOOLEAN),
    # Browser apps on these origins may call the API (CORS; app.web.cors). Empty: none.
    Setting("CORS_ORIGINS", "", ORIGINS),
    Setting("PREDICTION_RETENTION_DAYS", "30", number(0.001, 36500)),
    # How long a /feedback naming an answer not found waits for other workers' writers
    # (each writes within about half a second of an answer) before its 404; 0: no wait.
    Setting("FEEDBACK_WAIT_MS", "1000", integer(0, 10000)),
    # Keras backend for serving: openvino (measured fastest and lightest) or tensorflow.
    # Keras reads it from the environment when it is first imported.
    Setting("KERAS_BACKEND", "openvino", choice("openvino", "tensorflow")),
    # CPU threads one inference may use, per worker. 1 keeps workers from fighting over
    # the cores (see gunicorn.conf.py and BENCHMARKS.md).
    Setting("INFERENCE_THREADS", "1", integer(1, 64)),
    # OpenVINO's precision for every loaded version: "model" (each folder's recorded
    # choice: f32, bf16 for version 4), f32 / bf16 for all, or int8 where a folder ships
    # an int8 IR (versions 3 and 4; the others keep their own).
    Setting("INFERENCE_PRECISION", "model", choice("model", "f32", "bf16", "int8")),
    # Dynamic batching (app.serving.batching): requests waiting in a worker's threads
    # share one inference call of up to this many texts (1: off), the first waiting at
    # most DYNAMIC_BATCH_TIMEOUT_MS for the others.
    Setting("DYNAMIC_BATCH_MAX_SIZE", "1", integer(1, 1024)),
    Setting("DYNAMIC_BATCH_TIMEOUT_MS", "2", number(0, 1000)),
    Setting("MAX_BATCH_SIZE", "64", integer(1, 10000)),
    Setting("MAX_TEXT_CHARS", "5000", integer(1, 1_000_000)),
    # Flask reads it itself: 413 before the body is read.
    Setting("MAX_CONTENT_LENGTH", str(1024 * 1024), integer(1, 1024**3)),
)


def check_environment(
    environ: Mapping[str, str] | None = None,
    *,
    server: bool = True,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every setting's value (``server``: also the web server's own); raises
    ``SettingError`` for the first one that is not allowed, in ``SETTINGS`` order.
    ``argv``: the server's command-line arguments (``python -m app.server``'s, after the
    program), whose app the settings must be able to serve."""
    environ = os.environ if environ is None else environ
    values = {
        setting.name: setting.parse(environ)
        for setting in SETTINGS
        if server or not setting.server_only
    }
    if server and argv is not None and values["GUNICORN_CMD_ARGS"].strip():
        reason = _asgi_worker_for_wsgi_app(values["GUNICORN_CMD_ARGS"], argv)
        if reason:
            raise SettingError(
                f"bad setting GUNICORN_CMD_ARGS={values['GUNICORN_CMD_ARGS']!r}: allowed is "
                f"{GUNICORN_OPTIONS.allowed} ({reason})"
            )
    if values["ROUTING"] == "bandit" and not values["RECORD_PREDICTIONS"]:
        # The bandit learns from feedback on recorded predictions: without them it would
        # split the traffic evenly, whatever the stored rewards say, and say "bandit".
        raise SettingError(
            "bad setting ROUTING=bandit: it learns from feedback on recorded predictions, "
            "and RECORD_PREDICTIONS=0 turns recording off"
        )
    return values


# Gunicorn worker classes that call their app as ASGI (uvicorn-worker's, Gunicorn's own
# "asgi"): by the module of the class or of one it derives from.
_ASGI_WORKERS = ("uvicorn.", "uvicorn_worker.", "gunicorn.workers.gasgi")


def _asgi_worker_for_wsgi_app(options: str, argv: Sequence[str]) -> str | None:
    """Why GUNICORN_CMD_ARGS's worker class cannot serve the app that ``argv`` names, or
    None. An ASGI worker (uvicorn-worker's ``UvicornWorker``, for the bench's FastAPI twin,
    ``benchmarks.twin``) with this server's Flask app (the Procfile's ``app:create_app()``)
    started, loaded the models, and answered every request, the probes included, with a
    500 and a traceback, forever (an outside probe)."""
    from gunicorn.config import Config as GunicornConfig
    from gunicorn.util import load_class

    parse = GunicornConfig(prog="gunicorn").parser().parse_args
    try:  # both were parsed before (Gunicorn's own command line: by Gunicorn, later)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            uri = parse(shlex.split(options)).worker_class
            command = parse(list(argv))
    except SystemExit:
        return None
    if uri is None or command.worker_class is not None or not command.args:
        return None  # the file's worker class, or the command line's (which wins)
    try:
        worker = load_class(uri)
    except (RuntimeError, AttributeError):  # refused with its own reason before
        return None
    if not any(cls.__module__.startswith(_ASGI_WORKERS) for cls in worker.__mro__):
        return None
    app = command.args[-1]
    module = app.partition(":")[0]
    if module != "app" and not module.startswith("app."):
        return None  # another app (the twin is ASGI)
    return (
        f"worker_class: {uri!r} calls its app as ASGI, and {app} is this server's Flask "
        "(WSGI) app: every request would be a 500; the ASGI worker is for the bench's "
        "FastAPI twin (benchmarks.twin)"
    )


def _values_or_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """The app's settings for ``Config``: a bad value falls back to its default here, so
    that importing this module never fails; ``check_environment`` is what refuses it."""
    values = {}
    for setting in SETTINGS:
        if setting.server_only:
            continue
        try:
            values[setting.name] = setting.parse(environ)
        except SettingError:
            values[setting.name] = setting.parse({})
    return values


class Config:
    """The app's settings (every ``SETTINGS`` line that is not ``server_only``), as
    attributes: ``Config.MAX_TEXT_CHARS``. Every one is documented in the README.

    Flask reads ``MAX_CONTENT_LENGTH`` itself; the rest are the service's own. Tests
    override attributes through ``create_app(test_config)``.
    """


for _name, _value in _values_or_defaults(os.environ).items():
    setattr(Config, _name, _value)
