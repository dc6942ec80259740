"""Where the tail latency comes from: short A/B experiments on Gunicorn's settings.

``python -m benchmarks.tail [--rounds 3] [--seconds 3] [--loads ...] [EXPERIMENT ...]``
starts one server per experiment (the shipped ``gunicorn.conf.py``, then a few lines that
change one thing: see EXPERIMENTS), sends each the same loads at c=16 in alternating
rounds, and prints median req/s, p50, p99 and server CPU per request; experiments named
``probe*`` also print what happened inside each worker (hand-over times, GC, connections).
``--syscalls`` counts system calls and thread switches per request instead (strace):
counts that a busy machine does not move. Used for BENCHMARKS.md's "Tail latency"
section; `make bench` is the record, this is the microscope. Needs the environments
`make bench` builds in .heroku-check/ (and venv-gevent for the gevent experiment).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from app.config import PROJECT_ROOT
from benchmarks.bench import BATCH, NOOP_APP, SERVICE_APP, SINGLE, TWIN_APP, TWIN_ENV
from benchmarks.drivers import LoadResult, ab, cpu_seconds, median_of, wrk, wrk_script
from benchmarks.reviews import rotating_reviews
from benchmarks.transformer import BATCHING_ENV
from deploy.dyno import WORK, children, free_port, stop_web, wait_for_200

# A worker whose graceful close does not wait for the client: gthread's finish_request
# runs on the worker's main thread and, for a connection it closes, half-closes it and
# waits (up to 2 s) for the client's FIN before it polls or accepts again.
QUICK_CLOSE = """
def experiment_post_fork(server, worker):
    import socket
    from gunicorn import util
    from gunicorn.workers import gthread

    def close(self, graceful=False):
        # Linger only when the client sent bytes nobody read (RFC 9112 section 9.6:
        # closing then would reset the connection); otherwise a plain close sends FIN.
        if graceful:
            try:
                pending = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pending = b""
            except OSError:
                pending = b""
            if pending:
                util.close_graceful(self.sock)
                return
        util.close(self.sock)

    gthread.TConn.close = close
"""

# Timestamps around gthread's hand-overs, per worker, written when the worker exits:
# dispatch (main thread submits a readable connection → a pool thread starts on it; only
# for requests handed to a thread, not those the shipped worker serves on its loop),
# handle (the pool thread's whole request), back (the pool thread is done → the main
# thread has run finish_request and polls the connection again), close (a graceful close
# on the main thread), GC pauses, and the connections each worker served.
PROBE = """
def experiment_post_fork(server, worker):
    import gc, json, os, time
    from gunicorn import util
    from gunicorn.workers import gthread

    clock = time.perf_counter
    stats = {"dispatch": [], "handle": [], "back": [], "close": [], "gc": [], "conns": 0,
             "gc0": 0, "gc1": 0, "gc2": 0}
    cls = gthread.ThreadWorker
    enqueue, handle, finish, conn_init = (
        cls.enqueue_req, cls.handle, cls.finish_request, gthread.TConn.__init__)
    close_graceful = util.close_graceful

    def enqueue_req(self, conn):
        conn.probe_submitted = clock()
        enqueue(self, conn)

    def timed_handle(self, conn):
        started = clock()
        submitted = conn.__dict__.pop("probe_submitted", None)  # None: served on the loop
        if submitted is not None:
            stats["dispatch"].append(started - submitted)
        try:
            return handle(self, conn)
        finally:
            conn.probe_done = clock()
            stats["handle"].append(conn.probe_done - started)

    def finish_request(self, conn, fs):
        stats["back"].append(clock() - conn.probe_done)
        finish(self, conn, fs)

    def timed_close(sock, *args, **kwargs):
        started = clock()
        try:
            return close_graceful(sock, *args, **kwargs)
        finally:
            stats["close"].append(clock() - started)

    def counted_init(self, *args, **kwargs):
        stats["conns"] += 1
        conn_init(self, *args, **kwargs)

    gc_started = [0.0]

    def on_gc(phase, info):
        if not stats["handle"]:  # loading the model, before the first request
            return
        if phase == "start":
            gc_started[0] = clock()
            stats[f"gc{info['generation']}"] += 1
        else:
            stats["gc"].append(clock() - gc_started[0])

    cls.enqueue_req, cls.handle, cls.finish_request = enqueue_req, timed_handle, finish_request
    gthread.TConn.__init__ = counted_init
    util.close_graceful = timed_close
    gc.callbacks.append(on_gc)
    worker.probe_stats = stats
"""

# Both probes: each worker writes what it saw to PROBE_DIR/<pid>.json when it exits.
PROBE_EXIT = """
def experiment_worker_exit(server, worker):
    import json, os
    stats = getattr(worker, "probe_stats", None)
    if stats is not None:
        path = os.path.join(os.environ["PROBE_DIR"], f"{worker.pid}.json")
        with open(path, "w") as file:
            json.dump(stats, file)
"""
PROBE += PROBE_EXIT

# Garbage collections in each worker once the app has loaded (PROBE's GC part, which
# waits for gthread's hand-overs that the shipped worker no longer makes).
GC_PROBE = (
    """
def experiment_post_worker_init(worker):
    import gc, time
    clock = time.perf_counter
    stats = {"gc": [], "gc0": 0, "gc1": 0, "gc2": 0}
    started = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            started[0] = clock()
            stats[f"gc{info['generation']}"] += 1
        else:
            stats["gc"].append(clock() - started[0])

    gc.callbacks.append(on_gc)
    worker.probe_stats = stats
"""
    + PROBE_EXIT
)

# gthread without its thread pool: the main thread runs each request itself, as soon as
# its connection is readable, then polls again (one thread per worker, like the twin's
# event loop; no hand-over to a pool thread and back, so no wait for the GIL in between).
# A prototype: a new connection that sends nothing holds the worker for up to 5 s.
INLINE = """
def experiment_post_fork(server, worker):
    from concurrent import futures
    from gunicorn.workers import gthread

    def enqueue_req(self, conn):
        done = futures.Future()
        try:
            done.set_result(self.handle(conn))
        except BaseException as error:
            done.set_exception(error)
        self.finish_request(conn, done)

    gthread.ThreadWorker.enqueue_req = enqueue_req
"""

# An experiment's hooks are named experiment_<hook> and run after the shipped config's
# own hook of that name (gc.freeze() after loading, and whatever else it does).
CHAIN_HOOKS = """
def _chained(shipped, extra, arity):
    def both(*args):
        if shipped is not None:
            shipped(*args)
        extra(*args)

    # Gunicorn checks how many arguments a hook takes: one signature per hook.
    def worker_hook(worker):
        both(worker)

    def server_hook(server, worker):
        both(server, worker)

    return worker_hook if arity == 1 else server_hook


for _name, _arity in {"post_fork": 2, "post_worker_init": 1, "worker_exit": 2}.items():
    if globals().get("experiment_" + _name) is not None:
        globals()[_name] = _chained(globals().get(_name), globals()["experiment_" + _name], _arity)
"""

# cProfile of each worker's main thread (where requests run with INLINE_MAX_BYTES),
# written to PROBE_DIR/profile-<pid>.out when the worker exits; read with pstats.
PROFILE = """
def experiment_post_worker_init(worker):  # after the app has loaded: requests only
    import cProfile, os
    worker.profile = cProfile.Profile()
    worker.profile.enable()


def experiment_worker_exit(server, worker):
    import os
    worker.profile.disable()
    worker.profile.dump_stats(os.path.join(os.environ["PROBE_DIR"], f"profile-{worker.pid}.out"))
"""


def _writer(call: str) -> tuple[str, str, dict]:
    """An experiment that runs ``call`` on the prediction recorder's thread (``{tid}``:
    its Linux thread id) once the worker has loaded the app."""
    return (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n    import os, threading\n"
        "    for thread in threading.enumerate():\n"
        "        if thread.name == 'prediction-recorder':\n"
        f"            {call.format(tid='thread.native_id')}",
        {},
    )


def _flush(seconds: float) -> tuple[str, str, dict]:
    return (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n"
        f"    import app.feedback.recorder as recorder\n    recorder.FLUSH_SECONDS = {seconds}",
        {},
    )


VERSION_4 = {"MODEL_VERSIONS": "4", "MODEL_LABELS": "stable=4"}
ALL_INLINE = (
    'def experiment_post_worker_init(worker):\n    worker.wsgi.extensions.pop("quick_requests")'
)
NO_SPREAD = (
    "def experiment_post_worker_init(worker):\n    type(worker)._holds_more = lambda self: False"
)

EXPERIMENTS = {
    "shipped": (SERVICE_APP, "", {}),
    "gthread": (SERVICE_APP, 'worker_class = "gthread"', {}),  # Gunicorn's own worker
    "noop-gthread": (NOOP_APP, 'worker_class = "gthread"', {}),
    "no-inline": (SERVICE_APP, "", {"INLINE_MAX_BYTES": "0"}),
    "all-inline": (SERVICE_APP, ALL_INLINE, {}),  # /feedback and /monitoring on the loop too
    "inline-4k": (SERVICE_APP, "", {"INLINE_MAX_BYTES": "4096"}),  # batches go to threads
    "no-recording": (SERVICE_APP, "", {"RECORD_PREDICTIONS": "0"}),
    "no-inline-no-recording": (
        SERVICE_APP,
        "",
        {"INLINE_MAX_BYTES": "0", "RECORD_PREDICTIONS": "0"},
    ),
    "noop-no-inline": (NOOP_APP, "", {"INLINE_MAX_BYTES": "0"}),
    "twin": (TWIN_APP, "", TWIN_ENV),
    "noop": (NOOP_APP, "", {}),
    "threads-1": (SERVICE_APP, "threads = 1", {}),
    "threads-4": (SERVICE_APP, "threads = 4", {}),
    "gc-off": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n    gc.disable()",
        {},
    ),
    "switch-1ms": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n    import sys\n"
        "    sys.setswitchinterval(0.001)",
        {},
    ),
    "switch-0.2ms": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n    import sys\n"
        "    sys.setswitchinterval(0.0002)",
        {},
    ),
    # Metric samples added up in the process, never written to the shared files: the
    # most a deferred write could save.
    "metrics-unwritten": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n    from prometheus_client import values\n"
        "    def inc(self, amount):\n        self._value += amount\n"
        "    values.ValueClass.inc = inc",
        {},
    ),
    # The recorder writes every N seconds instead of every 0.5.
    "flush-50ms": _flush(0.05),
    "flush-2s": _flush(2.0),
    # Random request ids, as the server made them before version 7 UUIDs (and as Heroku's
    # router sends them): each record's index entry lands on a random page.
    "random-ids": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n"
        "    import uuid, app.web.request_log as log\n    made = log.request_id_from\n"
        "    log.request_id_from = lambda value: made(value) if value else uuid.uuid4().hex",
        {},
    ),
    # Recording on, but nothing queued: the writer thread idles (what recording costs
    # beyond the records themselves).
    "submit-off": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n"
        "    import app.feedback.recorder as recorder\n"
        "    recorder.PredictionRecorder.submit = lambda *args: None",
        {},
    ),
    # The recorder's thread at a lower scheduling priority (Linux: a thread is a task).
    "writer-nice-10": _writer("os.setpriority(os.PRIO_PROCESS, {tid}, 10)"),
    "writer-nice-19": _writer("os.setpriority(os.PRIO_PROCESS, {tid}, 19)"),
    # SCHED_BATCH: a woken writer does not preempt the thread running requests.
    "writer-batch": _writer("os.sched_setscheduler({tid}, os.SCHED_BATCH, os.sched_param(0))"),
    "writer-idle": _writer("os.sched_setscheduler({tid}, os.SCHED_IDLE, os.sched_param(0))"),
    # One connection accepted a wake-up of the listening socket, as gthread does.
    "accept-one": (
        SERVICE_APP,
        "def experiment_post_worker_init(worker):\n"
        "    import app.server.worker as loop\n    loop.ACCEPT_BATCH = 1",
        {},
    ),
    # No connection closed to even out the workers' counts (listeners.SlotConnections).
    "no-spread": (SERVICE_APP, NO_SPREAD, {}),
    # The same two for version 4 alone (the transformer, in its folder's bf16).
    "version-4": (SERVICE_APP, "", VERSION_4),
    "version-4-no-spread": (SERVICE_APP, NO_SPREAD, VERSION_4),
    # Every whole request on the loop, as before the app could send long ones to a thread.
    "version-4-all-inline": (SERVICE_APP, ALL_INLINE, VERSION_4),
    # Version 4 with the transformer bench's dynamic batching (there for version 3 only).
    "version-4-batching": (SERVICE_APP, "", {**VERSION_4, **BATCHING_ENV}),
    "no-reuse-port": (SERVICE_APP, "reuse_port = False", {}),
    "quick-close": (SERVICE_APP, QUICK_CLOSE, {}),
    "noop-quick-close": (NOOP_APP, QUICK_CLOSE, {}),
    "log-off": (SERVICE_APP, "", {"LOG_LEVEL": "warning"}),
    "inline": (SERVICE_APP, INLINE + "\nthreads = 1", {}),
    "noop-inline": (NOOP_APP, INLINE + "\nthreads = 1", {}),
    "probe": (SERVICE_APP, PROBE, {}),
    "profile": (SERVICE_APP, PROFILE, {}),
    "gc-probe": (SERVICE_APP, GC_PROBE, {}),
    "gc-probe-no-recording": (SERVICE_APP, GC_PROBE, {"RECORD_PREDICTIONS": "0"}),
    "probe-threads-1": (SERVICE_APP, PROBE + "\nthreads = 1", {}),
    "probe-noop": (NOOP_APP, PROBE, {}),
    "probe-switch-1ms": (
        SERVICE_APP,
        PROBE + "\ndef experiment_post_worker_init(worker):\n    import sys\n"
        "    sys.setswitchinterval(0.001)",
        {},
    ),
    # gevent's worker: one thread per worker, kept-alive connections as greenlets (gevent
    # is not in requirements.txt: the experiment runs from .heroku-check/venv-gevent, built
    # by deploy.dyno.build_environment(False, ("gevent==26.9.0",), "venv-gevent")).
    "gevent": (SERVICE_APP, 'worker_class = "gevent"', {}),
}


# What builds each environment an experiment runs from (in .heroku-check/).
BUILT_BY = {
    "venv": "`make bench` (or `make heroku-check`)",
    "venv-twin": "`make bench`",
    "venv-gevent": "python -c 'from deploy.dyno import build_environment; "
    'build_environment(False, ("gevent==26.9.0",), "venv-gevent")\'',
}


def environment_of(name: str) -> str:
    """The .heroku-check/ environment experiment ``name`` runs its Gunicorn from."""
    if name.startswith("gevent"):
        return "venv-gevent"
    return "venv-twin" if _spec(name)[0] == TWIN_APP else "venv"


def _spec(name: str) -> tuple[str, str, dict]:
    """EXPERIMENTS[name]; ``at-<commit>`` is "shipped" as of that commit (an A/B across
    commits in the same rounds: the code, config and model folders of its tree, this
    checkout's environment)."""
    return EXPERIMENTS["shipped" if name.startswith("at-") else name]


def _is_commit(revision: str) -> bool:
    found = subprocess.run(
        [
            "git",
            "-C",
            str(PROJECT_ROOT),
            "rev-parse",
            "--verify",
            "--quiet",
            f"{revision}^{{commit}}",
        ],
        capture_output=True,
    )
    return found.returncode == 0


def _tree_of(name: str, work: Path) -> Path:
    """The project tree experiment ``name`` runs in: this checkout, or for ``at-<commit>``
    that commit's files (``git archive``) under ``work``."""
    if not name.startswith("at-"):
        return PROJECT_ROOT
    tree = work / name
    tree.mkdir()
    command = ["git", "-C", str(PROJECT_ROOT), "archive", name[3:]]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as archive:
        subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {name[3:]} failed")
    return tree


@dataclass
class Experiment:
    name: str
    process: subprocess.Popen
    url: str


def start(name: str, work: Path) -> Experiment:
    """Gunicorn with the shipped config, then the experiment's lines, in its own group."""
    app_spec, lines, env = _spec(name)
    tree = _tree_of(name, work)
    config = work / f"{name}.conf.py"
    shipped = tree / "gunicorn.conf.py"
    config.write_text(
        f"exec(compile(open({str(shipped)!r}).read(), 'gunicorn.conf.py', 'exec'))\n"
        f"{lines}\n{CHAIN_HOOKS}"
    )
    probes = work / f"probe-{name}"
    probes.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [WORK / environment_of(name) / "bin" / "gunicorn", "--config", str(config), app_spec],
        cwd=tree,
        env={
            **os.environ,
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "PROBE_DIR": str(probes),
            # Its own empty prediction store, not the shared one of make serve.
            "DATABASE_URL": f"sqlite:///{work / name}.sqlite3",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/classify"
    if wait_for_200(process, "POST", url, 120, json=SINGLE) is None:
        stop_web(process)
        raise RuntimeError(f"{name} did not start")
    return Experiment(name, process, url)


def measure(experiment: Experiment, load: str, seconds: float, scripts: dict, body: Path):
    before = cpu_seconds(experiment.process.pid)
    tool, connection = load.split("-", 1)
    keepalive = connection == "keepalive"
    if tool == "wrk":
        result = wrk(experiment.url, scripts[keepalive], 16, seconds, keepalive)
    else:
        per_second = 2000 if body.name == "single.json" else 150
        result = ab(experiment.url, body, 16, int(per_second * seconds), keepalive)
    result.cpu_us = (cpu_seconds(experiment.process.pid) - before) / result.requests * 1e6
    return result


def main() -> None:
    names = textwrap.fill(" ".join(EXPERIMENTS), 88, break_on_hyphens=False)
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"experiments (see EXPERIMENTS in benchmarks/tail.py):\n{names}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "experiments",
        nargs="*",
        default=["shipped", "twin", "noop"],
        metavar="EXPERIMENT",
        help="one or more of the experiments below, or at-<commit>: shipped as of that "
        "commit (default: shipped twin noop)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument(
        "--loads", default="wrk-keepalive,wrk-close,ab-keepalive,ab-close", help="c=16 each"
    )
    parser.add_argument(
        "--batch", action="store_true", help="send batches of 64 (bench.BATCH) instead"
    )
    parser.add_argument(
        "--syscalls",
        action="store_true",
        help="instead: system calls and thread switches per request (strace), per experiment",
    )
    args = parser.parse_args()
    unknown = [n for n in args.experiments if n not in EXPERIMENTS and not n.startswith("at-")]
    if unknown:  # not argparse's choices: it rejects a default list for nargs="*" (3.11)
        parser.error(f"unknown experiment {' '.join(unknown)}; see --help for the names")
    for name in args.experiments:
        if name.startswith("at-") and not _is_commit(name[3:]):
            parser.error(f"{name}: {name[3:]!r} names no commit of {PROJECT_ROOT}")
    for name in args.experiments:
        gunicorn = WORK / environment_of(name) / "bin" / "gunicorn"
        if not gunicorn.exists():
            sys.exit(f"{gunicorn} not found: {BUILT_BY[environment_of(name)]} builds it")
    with tempfile.TemporaryDirectory(prefix="tail-") as work:
        compare(args, Path(work))


def compare(args: argparse.Namespace, work: Path) -> None:
    """Start every experiment, measure each load in alternating rounds, print the table."""
    texts = rotating_reviews()
    bodies = [json.dumps({"review": text}) for text in texts]
    if args.batch:  # 30 different orders of the same 64 reviews
        bodies = [
            json.dumps({"reviews": [texts[(start + i) % len(texts)] for i in range(64)]})
            for start in range(0, 30 * 64, 64)
        ]
    scripts = {
        True: wrk_script(bodies, work / "ka.lua"),
        False: wrk_script(bodies, work / "close.lua", keepalive=False),
    }
    body = work / ("batch.json" if args.batch else "single.json")
    body.write_text(json.dumps(BATCH if args.batch else SINGLE))
    started: list[Experiment] = []
    try:
        for name in args.experiments:
            started.append(start(name, work))
        for experiment in started:
            measure(experiment, "wrk-keepalive", 1, scripts, body)  # warm-up
        if args.syscalls:
            for load in args.loads.split(","):
                print(f"\n{load}, c=16: per request (one worker's threads traced)")
                for experiment in started:
                    print(f"{experiment.name:<18}{syscalls(experiment, load, scripts, body)}")
            return
        for load in args.loads.split(","):
            runs: dict[str, list[LoadResult]] = {e.name: [] for e in started}
            for _ in range(args.rounds):
                for experiment in started:
                    runs[experiment.name].append(
                        measure(experiment, load, args.seconds, scripts, body)
                    )
                    time.sleep(0.5)
            print(f"\n{load}, c=16, medians of {args.rounds}")
            print(
                f"{'experiment':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'p99/p50':>8}"
                f"{'CPU µs':>8}{'errors':>7}  req/s per round"
            )
            for name, rows in runs.items():
                row = median_of(rows)
                print(
                    f"{name:<18}{row.rps:>8,.0f}{row.p50_ms:>8.1f}{row.p99_ms:>8.1f}"
                    f"{row.p99_ms / row.p50_ms:>8.2f}{row.cpu_us:>8.0f}"
                    f"{row.failed + row.non_2xx:>7}  {', '.join(f'{x:.0f}' for x in row.runs)}",
                    flush=True,
                )
    finally:
        for experiment in started:
            stop_web(experiment.process)
    for experiment in started:
        print_probes(experiment.name, work / f"probe-{experiment.name}")


def switches(pid: int) -> int:
    """Context switches (voluntary and not) of every thread of ``pid`` so far."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                total += int(line.split()[-1])
    return total


def syscalls(experiment: Experiment, load: str, scripts: dict, body: Path) -> str:
    """Thread switches per request (a plain run), then system calls per request by name
    (both workers traced with strace, which slows them: the counts are the point)."""
    workers = children(experiment.process.pid)
    before = sum(switches(worker) for worker in workers)
    plain = measure(experiment, load, 2, scripts, body)
    switched = (sum(switches(worker) for worker in workers) - before) / plain.requests
    output = body.parent / f"{experiment.name}-{load}.strace"  # the run's own folder
    attach = [f"-p{worker}" for worker in workers]
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(output), *attach], stderr=subprocess.DEVNULL
    )
    time.sleep(1)
    traced = measure(experiment, load, 3, scripts, body)
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    counts = {}
    for line in output.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0].replace(".", "").isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    served = traced.requests
    top = sorted(counts.items(), key=lambda item: -item[1])[:9]
    return (
        f"{sum(counts.values()) / served:5.1f} syscalls, {switched:4.1f} thread switches  ("
        + ", ".join(f"{name} {count / served:.1f}" for name, count in top)
        + ")"
    )


def print_probes(name: str, folder: Path) -> None:
    """What the probe saw in each worker (ms), if the experiment had it."""
    for path in sorted(folder.glob("*.json")):
        stats = json.loads(path.read_text())
        parts = [f"GC by generation {stats['gc0']}/{stats['gc1']}/{stats['gc2']}"]
        if "conns" in stats:
            parts.insert(0, f"{stats['conns']} connections")
        for key in ("dispatch", "handle", "back", "close", "gc"):
            values = sorted(stats.get(key, ()))
            if not values:
                continue
            p50, p99 = values[len(values) // 2], values[int(len(values) * 0.99)]
            parts.append(
                f"{key} n={len(values)} p50 {p50 * 1e3:.2f} p99 {p99 * 1e3:.2f} "
                f"max {values[-1] * 1e3:.1f} sum {sum(values):.2f} s"
            )
        print(f"probe {name} worker {path.stem}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
