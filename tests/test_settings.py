"""Settings are checked once, up front (issue 17 item 7): a bad value is one line naming
the variable, the value and what is allowed, and exit code 2, for the web server (in
Gunicorn's master, before any worker forks) and for ``python -m app.batch``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_predictor import ir_folder

from app.config import (
    DEFAULT_MODEL_DIR,
    EXIT_BAD_SETTING,
    MODEL_BASE,
    PROJECT_ROOT,
    SETTINGS,
    Config,
    SettingError,
    check_environment,
)

# Gunicorn options that its parser takes and that stopped the server later, with a
# traceback (its validators raise ConfigError) or in the workers, after the models loaded.
GUNICORN_FOUND_LATER = [
    ("GUNICORN_CMD_ARGS", "--user nosuchuser"),
    ("GUNICORN_CMD_ARGS", "--group nosuchgroup"),
    ("GUNICORN_CMD_ARGS", "--chdir /nonexistent"),
    ("GUNICORN_CMD_ARGS", "--bind 127.0.0.1:99999"),
    ("GUNICORN_CMD_ARGS", "--worker-class nope"),
    ("GUNICORN_CMD_ARGS", "--worker-tmp-dir /nonexistent"),
    ("GUNICORN_CMD_ARGS", "--certfile /nonexistent.pem"),
    ("GUNICORN_CMD_ARGS", f"--certfile {PROJECT_ROOT / 'README.md'}"),  # not PEM
    ("GUNICORN_CMD_ARGS", "--keyfile /nonexistent.pem"),
    # Accepted, then quietly wrong: half the connections hung (--reuse-port), the models
    # in the master (--preload), nothing sent (--statsd-host), no TLS handshake answered
    # (--certfile), or exit 1 after Gunicorn's first line (a Unix socket).
    ("GUNICORN_CMD_ARGS", "--reuse-port"),
    ("GUNICORN_CMD_ARGS", "--preload"),
    ("GUNICORN_CMD_ARGS", "--statsd-host 127.0.0.1:8125"),
    ("GUNICORN_CMD_ARGS", "--bind unix:/tmp/x.sock"),
    ("GUNICORN_CMD_ARGS", "--config /tmp/other.conf.py"),  # the Procfile's --config wins
    # Found by an outside probe: every request timed out (--worker-connections 0), exit 0
    # with a detached master left serving (--daemon), tracebacks (--paste, --logger-class,
    # --worker-class gevent), settings quietly ignored (--env).
    ("GUNICORN_CMD_ARGS", "--worker-connections 0"),
    ("GUNICORN_CMD_ARGS", "--daemon"),
    ("GUNICORN_CMD_ARGS", "--paste /nonexistent.ini"),
    ("GUNICORN_CMD_ARGS", "--logger-class nonexist.Mod"),
    ("GUNICORN_CMD_ARGS", "--worker-class gevent"),
    ("GUNICORN_CMD_ARGS", "--env MAX_BATCH_SIZE=1"),
    # Gunicorn's own line, later, naming neither the option nor the variable; or quietly
    # taken as info (--log-level).
    ("GUNICORN_CMD_ARGS", "--pid /nonexistent/x.pid"),
    ("GUNICORN_CMD_ARGS", "--error-logfile /nonexistent/x.log"),
    ("GUNICORN_CMD_ARGS", "--access-logfile /nonexistent/x.log"),
    ("GUNICORN_CMD_ARGS", "--log-config /nonexistent"),
    ("GUNICORN_CMD_ARGS", "--log-config-json /nonexistent"),
    ("GUNICORN_CMD_ARGS", "--log-level nonsense"),
    # Found by an outside probe: each worker slot on a random port of its own, one logged
    # (port 0); Gunicorn's 8000 whatever PORT said (no port); a bare OS error and exit 1,
    # naming neither --bind nor the address (a name that does not resolve, an address
    # not on this machine).
    ("GUNICORN_CMD_ARGS", "--bind 127.0.0.1:0"),
    ("GUNICORN_CMD_ARGS", "--bind 127.0.0.1"),
    ("GUNICORN_CMD_ARGS", "--bind nosuchhost.invalid:18250"),
    ("GUNICORN_CMD_ARGS", "--bind 192.0.2.1:18250"),
]
BAD = [
    ("WEB_CONCURRENCY", "0"),
    ("WEB_CONCURRENCY", "abc"),
    ("WEB_CONCURRENCY", "-1"),
    ("GUNICORN_CMD_ARGS", "--threads 0"),
    ("GUNICORN_CMD_ARGS", "--workers 0"),
    ("GUNICORN_CMD_ARGS", "--threads abc"),
    ("GUNICORN_CMD_ARGS", "--no-such-option"),
    # From an outside probe: usage or a version on stdout and a reason of "()"; Gunicorn
    # on 0.0.0.0:8000 whatever PORT said; WEB_CONCURRENCY's bound bypassed; exit 1 with a
    # plain line (and the metrics folder left behind).
    ("GUNICORN_CMD_ARGS", "-h"),
    ("GUNICORN_CMD_ARGS", "--version"),
    ("GUNICORN_CMD_ARGS", "--bind ''"),
    ("GUNICORN_CMD_ARGS", "--workers 1000"),
    ("GUNICORN_CMD_ARGS", "--http-protocols h2"),
    *GUNICORN_FOUND_LATER,
    ("LOG_LEVEL", "verbose"),
    ("PORT", "http"),
    ("REQUEST_READ_TIMEOUT", "soon"),
    ("REQUEST_READ_TIMEOUT", "0"),
    ("INLINE_MAX_BYTES", "-1"),
    ("INLINE_MAX_BYTES", "64k"),
    ("FORWARDED_ALLOW_IPS", "my-proxy"),
    ("FORWARDED_ALLOW_IPS", "10.0.0.1/8"),  # host bits set: Gunicorn refuses it
    ("ACCESS_LOG", "maybe"),
    ("MODEL_VERSIONS", "1,two"),
    ("MODEL_BASE_DIR", ""),  # was "MODEL_VERSIONS=1,2: no folder 1", from each worker
    ("MODEL_LABELS", "stable"),
    ("ROUTING", "random"),
    ("BANDIT_MIN_PERCENT", "200"),
    ("RECORD_PREDICTIONS", "maybe"),
    ("PREDICTION_RETENTION_DAYS", "0"),
    ("FEEDBACK_WAIT_MS", "-1"),
    ("CANARY_PERCENT", "150"),
    ("SHADOW_PERCENT", "nan"),
    ("KERAS_BACKEND", "jax"),
    ("INFERENCE_THREADS", "0"),
    ("MAX_BATCH_SIZE", "1.5"),
    ("MAX_TEXT_CHARS", ""),
    ("MAX_CONTENT_LENGTH", "1MB"),
    ("CORS_ORIGINS", "app.example.com"),
    ("CORS_ORIGINS", "https://app.example.com/page"),
    ("CORS_ORIGINS", "*, https://app.example.com"),
    ("CORS_ORIGINS", "http://localhost:0"),  # ports 0 and 99999 were taken, and never matched
    ("CORS_ORIGINS", "http://localhost:99999"),
    ("CORS_ORIGINS", "http://[::g]:3000"),
    # ASCII digits: int() and float() took other scripts' digits and underscores.
    ("WEB_CONCURRENCY", "３"),
    ("PORT", "٨٠٠٠"),
    ("MAX_BATCH_SIZE", "1_0"),
    ("DYNAMIC_BATCH_TIMEOUT_MS", "2_0"),
]


def test_the_defaults_are_allowed_and_are_what_config_holds():
    values = check_environment({})
    for name, value in values.items():
        if hasattr(Config, name):
            assert getattr(Config, name) == value, name
    assert values["LOG_LEVEL"] == "INFO" and values["WEB_CONCURRENCY"] == 2


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_one_line_naming_the_variable_the_value_and_what_is_allowed(name, value):
    with pytest.raises(SettingError) as caught:
        check_environment({name: value})
    message = str(caught.value)
    assert "\n" not in message
    assert f"{name}={value!r}" in message and "allowed is " in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "DEBUG"),
        ("GUNICORN_CMD_ARGS", "--threads 4 --max-requests 0"),
        (
            "GUNICORN_CMD_ARGS",
            "--bind 127.0.0.1:8000 --bind 127.0.0.1:8001 --worker-class gthread",
        ),
        ("GUNICORN_CMD_ARGS", "--worker-class sync"),
        ("GUNICORN_CMD_ARGS", "--worker-class uvicorn_worker.UvicornWorker"),  # make bench's twin
        ("GUNICORN_CMD_ARGS", "--log-level WARNING --access-logfile - --pid /tmp/x.pid"),
        ("GUNICORN_CMD_ARGS", "--worker-tmp-dir /tmp"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 127.0.0.1"),
        ("MODEL_LABELS", "stable=2,canary=1"),
        ("MODEL_VERSIONS", "ALL"),
        ("ACCESS_LOG", "true"),
        ("ROUTING", "bandit"),
        ("DATABASE_URL", "postgres://user:secret@db.example:5432/name"),
        ("DATABASE_URL", "sqlite:////tmp/predictions.sqlite3"),
        ("DATABASE_URL", "postgres://user:secret@[::1]:5432/name?sslmode=require"),
        ("REQUEST_READ_TIMEOUT", " 1e1 "),
        ("DYNAMIC_BATCH_TIMEOUT_MS", ".5"),
        ("CORS_ORIGINS", "*"),
        ("CORS_ORIGINS", "https://app.example.com, http://localhost:3000/"),
    ],
)
def test_good_values_pass(name, value):
    check_environment({name: value})


def test_a_label_given_twice_is_refused():
    with pytest.raises(SettingError) as caught:
        check_environment({"MODEL_LABELS": "stable=1,stable=2"})
    message = str(caught.value)
    assert message.startswith("bad setting MODEL_LABELS='stable=1,stable=2': allowed is ")
    assert "label 'stable' given twice" in message


def test_the_bandit_without_recorded_predictions_is_refused():
    """It learns from feedback on recorded predictions: with RECORD_PREDICTIONS=0 it split
    the traffic evenly whatever the stored rewards said (a probe), under "bandit"."""
    with pytest.raises(SettingError) as caught:
        check_environment({"ROUTING": "bandit", "RECORD_PREDICTIONS": "0"})
    assert str(caught.value).startswith("bad setting ROUTING=bandit: ")
    assert "RECORD_PREDICTIONS=0" in str(caught.value)
    check_environment({"ROUTING": "bandit"})
    check_environment({"ROUTING": "canary", "RECORD_PREDICTIONS": "0"})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://user:s3cr3t@db.example/name", ""),
        # These passed, then every worker's engine failed with a traceback naming no
        # setting (exit 3), its message repeating a part of the URL.
        ("postgres://user:s3cr3t@db.example:s3cr3t/name", "its host and port do not parse"),
        ("postgres://user:s3cr3t@[::1/name", "its host and port do not parse"),
        ("postgres://user:s3cr3t@h1:5432,h2:5433/name", "one host"),
        ("postgres://user:s3cr3t@db.example:0/name", "its port is 0"),
        ("sqlite:///:memory:", "one per worker"),
        # SQLite's URI forms of the same (an outside probe: passed, then exit 3 with a
        # traceback from each worker's engine).
        ("sqlite:///file:s3cr3t?mode=memory&uri=true", "one per worker"),
        ("sqlite:///file::memory:?cache=shared&uri=true", "one per worker"),
        ("sqlite:///file:s3cr3t?vfs=memdb&uri=true", "one per worker"),
    ],
)
def test_a_bad_database_url_is_refused_without_repeating_its_password(url, reason):
    with pytest.raises(SettingError) as caught:
        check_environment({"DATABASE_URL": url})
    message = str(caught.value)
    assert message.startswith("bad setting DATABASE_URL=<not shown>: allowed is ")
    assert "s3cr3t" not in message and reason in message


def test_a_sqlite_file_given_as_a_uri_passes():
    check_environment({"DATABASE_URL": "sqlite:///file:/tmp/predictions.sqlite3?uri=true"})


@pytest.mark.parametrize(
    ("bind", "reason"),
    [
        ("127.0.0.1:0", "bind: port 0: each worker would listen on a random port of its own"),
        ("127.0.0.1", "bind: '127.0.0.1' has no port (Gunicorn would listen on port 8000)"),
        ("[::1]", "bind: '[::1]' has no port"),
        ("nosuchhost.invalid:18250", "bind: nosuchhost.invalid:18250: 'nosuchhost.invalid' "),
        ("192.0.2.1:18250", "bind: 192.0.2.1:18250: cannot listen at 192.0.2.1 (not an address"),
    ],
)
def test_a_bind_that_cannot_serve_at_the_address_given_names_it(bind, reason):
    """From an outside probe. Port 0 is refused as PORT=0 is: each worker slot's socket
    got a random port of its own and only the first was logged (with WEB_CONCURRENCY=2,
    one worker that nobody could reach). A host without a port listened on Gunicorn's
    8000, whatever PORT said, as an empty --bind did. A name that does not resolve, or
    an address not on this machine, was a bare OS error from the master ("[Errno 99]
    Cannot assign requested address") and exit 1."""
    with pytest.raises(SettingError) as caught:
        check_environment({"GUNICORN_CMD_ARGS": f"--bind {bind}"})
    assert str(caught.value).startswith(f"bad setting GUNICORN_CMD_ARGS='--bind {bind}': ")
    assert reason in str(caught.value)


def test_a_bind_of_this_machine_passes():
    for bind in ("127.0.0.1:18250", "localhost:18250", "0.0.0.0:18250", ":18250"):
        check_environment({"GUNICORN_CMD_ARGS": f"--bind {bind}"})


PROCFILE_ARGV = ["--config", "gunicorn.conf.py", "app:create_app()"]
UVICORN = "--worker-class uvicorn_worker.UvicornWorker"


def test_an_asgi_worker_class_is_refused_for_the_flask_app_and_kept_for_the_twin():
    """An outside probe: under the Procfile's command, UvicornWorker started, loaded the
    models and answered every request (the probes too) with a 500 and a traceback,
    forever; it calls the app as ASGI, and the Flask app is WSGI. The bench's FastAPI
    twin (``make bench``: the same command with ``benchmarks.twin:twin_app()``) needs it."""
    for options in (UVICORN, "--worker-class asgi"):
        with pytest.raises(SettingError) as caught:
            check_environment({"GUNICORN_CMD_ARGS": options}, argv=PROCFILE_ARGV)
        message = str(caught.value)
        assert message.startswith(f"bad setting GUNICORN_CMD_ARGS={options!r}: allowed is ")
        assert "calls its app as ASGI, and app:create_app() is this server's Flask" in message
    twin = ["--config", "gunicorn.conf.py", "benchmarks.twin:twin_app()"]
    check_environment({"GUNICORN_CMD_ARGS": UVICORN}, argv=twin)
    check_environment({"GUNICORN_CMD_ARGS": "--worker-class gthread"}, argv=PROCFILE_ARGV)


@pytest.mark.slow
def test_the_procfile_server_refuses_an_asgi_worker_class_with_exit_2(start_server):
    assert_refused(start_server(GUNICORN_CMD_ARGS=UVICORN), "GUNICORN_CMD_ARGS", UVICORN)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("nosuchhost.invalid", "'nosuchhost.invalid' does not resolve"),
        ("192.0.2.1", "Cannot assign requested address"),
    ],
)
def test_the_masters_listeners_name_an_address_they_cannot_listen_at(host, reason):
    """Behind the check (an address that changed since, a bare ``gunicorn -c``): the
    master's line was the bare OS error (an outside probe); it names the address now."""
    from app.server import listeners

    with pytest.raises(OSError) as caught:
        listeners.open_groups([(host, 18250)], 2, 16)
    assert str(caught.value).startswith(f"cannot listen at {host}:18250: ")
    assert reason in str(caught.value)


def test_the_masters_listeners_put_every_slot_on_one_port_when_given_port_0():
    """Behind the check: each slot's socket had a random port of its own, and only the
    first was logged (an outside probe)."""
    from app.server import listeners

    (group,) = listeners.open_groups([("127.0.0.1", 0)], 3, 16)
    try:
        ports = {sock.getsockname()[1] for sock in group.sockets}
        assert ports == {group.address[1]} and group.address[1] != 0
    finally:
        group.close()


def test_padded_folder_settings_are_trimmed(tmp_path):
    """As numbers are (" 5" is 5) and MODEL_DIR was: an outside probe found
    MODEL_BASE_DIR='<folder> ' refused only by the workers (exit 3, the space invisible
    in their line), and a padded PROMETHEUS_MULTIPROC_DIR made and used a second folder
    whose name ended in a space; a leading space made either path relative."""
    values = check_environment(
        {
            "MODEL_BASE_DIR": f" {MODEL_BASE}\n",
            "MODEL_DIR": f"\t{DEFAULT_MODEL_DIR} ",
            "PROMETHEUS_MULTIPROC_DIR": f" {tmp_path / 'metrics'} ",
        }
    )
    assert values["MODEL_BASE_DIR"] == str(MODEL_BASE)
    assert values["MODEL_DIR"] == str(DEFAULT_MODEL_DIR)
    assert values["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    assert check_environment({"MODEL_DIR": "  "})["MODEL_DIR"] == ""


@pytest.mark.slow
def test_the_procfile_server_serves_with_padded_folders_and_one_metrics_folder(
    start_server, tmp_path
):
    """The workers load the models from the trimmed MODEL_BASE_DIR, and write their
    metrics in the trimmed folder, not in one beside it whose name ends in a space."""
    folder = tmp_path / "metrics"
    server = start_server(
        MODEL_BASE_DIR=f"{MODEL_BASE} ",
        PROMETHEUS_MULTIPROC_DIR=f"{folder} ",
        WEB_CONCURRENCY="1",
    )
    server.wait_ready("/ready")
    assert not Path(f"{folder} ").exists(), server.log()
    assert any(name.endswith(".db") for name in os.listdir(folder)), server.log()


def test_an_origin_is_kept_as_a_browser_sends_it():
    """A browser leaves out its scheme's default port: https://app.example.com:443 was
    taken and never matched a request's Origin."""
    text = "https://app.example.com:443, http://localhost:80, http://[::1]:3000, http://a:8080"
    origins = check_environment({"CORS_ORIGINS": text})["CORS_ORIGINS"]
    assert origins == (
        "https://app.example.com",
        "http://localhost",
        "http://[::1]:3000",
        "http://a:8080",
    )


def test_batch_skips_the_web_servers_own_settings():
    check_environment({"WEB_CONCURRENCY": "0"}, server=False)
    with pytest.raises(SettingError):
        check_environment({"MAX_TEXT_CHARS": "0"}, server=False)


def test_every_setting_is_in_the_readme_table_with_its_default():
    """The table's default is the one the code applies (a changed default that the table
    kept, such as Gunicorn's own FORWARDED_ALLOW_IPS, would go unseen otherwise); an
    unset setting's cell says in words what happens."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    for setting in SETTINGS:
        row = re.search(rf"^\| `{setting.name}` \| ([^|]*) \|", readme, re.M)
        assert row, setting.name
        default = setting.default
        if default.startswith(str(PROJECT_ROOT)):
            default = str(Path(default).relative_to(PROJECT_ROOT))
        if default:
            assert row[1] == f"`{default}`", setting.name
        else:
            assert not re.fullmatch(r"`[^`]*`", row[1]), setting.name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "abc"),
        ("WEB_CONCURRENCY", "-1"),
        ("GUNICORN_CMD_ARGS", "--threads 0"),
        ("LOG_LEVEL", "verbose"),
        ("FORWARDED_ALLOW_IPS", "my-proxy"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1/8"),
        ("MODEL_BASE_DIR", ""),
        *GUNICORN_FOUND_LATER,
    ],
)
def test_the_procfile_server_refuses_a_bad_setting_with_exit_2(start_server, name, value):
    """In the master, before any worker (or model) starts: well under 20 s, one line."""
    assert_refused(start_server(**{name: value}), name, value)


def assert_refused(server, name: str, value: str) -> str:
    """The server stopped within 20 s with exit 2 and one CRITICAL line naming the
    setting, its value and what is allowed; that line's message."""
    try:
        code = server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}={value!r}: still running after 20 s:\n{server.log()}")
    assert code == EXIT_BAD_SETTING, server.log()
    lines = server.log().splitlines()
    assert len(lines) == 1, lines
    line = json.loads(lines[0])
    assert line["level"] == "CRITICAL" and f"{name}={value!r}" in line["message"]
    assert "allowed is" in line["message"]
    return line["message"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only filesystem (a tmpfs mounted ro: chmod does not stop root)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    target = tmp_path / "read-only"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", target], check=True)
    yield target
    subprocess.run(["umount", target], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["a file", "under a file", "read-only", "under read-only"])
def test_a_metrics_folder_the_server_cannot_write_is_refused_up_front(
    start_server, tmp_path, request, where
):
    """It was a FileExistsError or NotADirectoryError traceback from the master (exit 1),
    or, read-only, every worker failing in prometheus_client (exit 3)."""
    (tmp_path / "file").write_text("not a folder")
    folder = {
        "a file": lambda: tmp_path / "file",
        "under a file": lambda: tmp_path / "file" / "metrics",
        "read-only": lambda: request.getfixturevalue("read_only_folder"),
        "under read-only": lambda: request.getfixturevalue("read_only_folder") / "metrics",
    }[where]()
    server = start_server(PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert_refused(server, "PROMETHEUS_MULTIPROC_DIR", str(folder))


def test_a_metrics_folder_that_can_be_created_passes_and_is_not_created_by_the_check(tmp_path):
    check_environment({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "new" / "metrics")})
    assert not (tmp_path / "new").exists()


def test_batch_refuses_a_bad_setting_with_exit_2(tmp_path):
    (tmp_path / "in.csv").write_text("text\nlovely\n")
    done = subprocess.run(
        [sys.executable, "-m", "app.batch", "in.csv", "out.csv", "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "LOG_LEVEL": "verbose", "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_BAD_SETTING
    assert done.stderr.strip().splitlines() == [
        "Error: bad setting LOG_LEVEL='verbose': allowed is one of debug, info, warning, error"
    ]
    assert not (tmp_path / "out.csv").exists()


# --- Refusals only a worker (or app.batch) can make, when it loads the model -----------


@pytest.fixture
def without_tensorflow(tmp_path) -> str:
    """A PYTHONPATH under which ``import tensorflow`` fails as when it is not installed
    (requirements.txt has no TensorFlow): a sitecustomize that blocks the module."""
    folder = tmp_path / "no-tensorflow"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None\n")
    return os.pathsep.join([str(folder), str(PROJECT_ROOT)])


@pytest.mark.slow
def test_batch_refuses_the_tensorflow_backend_without_tensorflow_in_one_line(
    tmp_path, without_tensorflow
):
    (tmp_path / "in.csv").write_text("text\nlovely\n")
    done = subprocess.run(
        [sys.executable, "-m", "app.batch", "in.csv", "out.csv", "--quiet"],
        cwd=tmp_path,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": without_tensorflow},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: model failed to load: KERAS_BACKEND=tensorflow: ")
    assert "install tensorflow-cpu" in lines[0]


@pytest.mark.slow
def test_workers_that_cannot_serve_together_still_end_in_exit_3_without_a_traceback(
    start_server,
):
    """Four workers fail to serve at about the same time: Gunicorn halted for the first and
    raised again out of its halt for the next (two tracebacks, exit 1, in two runs of
    three). Three runs, each one exit 3 and the master's lines, no traceback."""
    for _ in range(3):
        server = start_server(WEB_CONCURRENCY="4", MODEL_VERSIONS="1", MODEL_LABELS="")
        assert server.process.wait(timeout=60) == 3
        log = server.log()
        assert "Traceback" not in log, log
        assert "Reason: Worker failed to boot." in log


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    [
        "corrupt metadata.json",
        "truncated model.bin",
        "no tensorflow",
        "labels.json",
        "sqlite folder",
    ],
)
def test_a_model_the_worker_cannot_serve_is_one_critical_line_and_exit_3(
    start_server, tmp_path, request, fault
):
    """The worker logs one CRITICAL line naming the file or the setting and exits 3;
    Gunicorn's "Exception in worker process" traceback and the message repeated twice
    more (a bare line on stderr among them) are gone. The master's own lines about the
    exit (Worker failed to boot) stay."""
    if fault == "corrupt metadata.json":
        folder = shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "9")
        (folder / "metadata.json").write_text('{"name": broken')
        env = {"MODEL_DIR": str(folder)}
        named = f"{folder / 'metadata.json'}: not readable JSON"
    elif fault == "truncated model.bin":  # OpenVINO's error was a traceback and bare lines
        folder = ir_folder(tmp_path)
        (folder / "model.bin").write_bytes((folder / "model.bin").read_bytes()[:1000])
        env = {"MODEL_DIR": str(folder)}
        named = f"{folder / 'model.xml'}: OpenVINO cannot read it with model.bin"
    elif fault == "no tensorflow":
        env = {
            "KERAS_BACKEND": "tensorflow",
            "PYTHONPATH": request.getfixturevalue("without_tensorflow"),
        }
        named = "KERAS_BACKEND=tensorflow: TensorFlow cannot be imported"
    elif fault == "labels.json":  # MODEL_VERSIONS=1 and the shipped labels.json's stable=2
        env = {"MODEL_VERSIONS": "1", "MODEL_LABELS": ""}
        named = f"{MODEL_BASE / 'labels.json'}: stable=2 names a version that is not loaded"
    else:  # a plain file where the SQLite file's folder should be
        (tmp_path / "a-file").write_text("")
        env = {"DATABASE_URL": f"sqlite:///{tmp_path}/a-file/predictions.sqlite3"}
        named = "prediction store not usable: DATABASE_URL: cannot make the folder"
    server = start_server(WEB_CONCURRENCY="2", **env)  # each worker logged it: two lines
    assert server.process.wait(timeout=60) == 3
    log = server.log()
    assert "Traceback" not in log and "Exception in worker process" not in log, log
    lines = [json.loads(line) for line in log.splitlines()]  # every line JSON
    critical = [line["message"] for line in lines if line["level"] == "CRITICAL"]
    assert len(critical) == 1 and named in critical[0], critical
