"""Gunicorn settings for the web process. The Procfile runs ``python -m app.server
--config gunicorn.conf.py``: every setting is checked, then Gunicorn runs in-process.
Every value can be overridden by the environment variable named beside it, read as
app.config checked and parsed it (never the raw text); the defaults are the ones measured
in BENCHMARKS.md."""

import gc
import os
import shutil
import sys

from app.observability.logformat import GunicornLogger
from app.server import checked_settings, default_metrics_folder, listeners
from app.server.worker import BufferingWorker

# The settings as app.config parses them, checked once in this process (app.server did it
# before Gunicorn started; under a bare `gunicorn -c gunicorn.conf.py` this checks them).
# Raw os.environ text would disagree with the check: " 5" passes it, and "true " must turn
# the access log on.
settings = checked_settings()

# --- Where to listen ----------------------------------------------------------------
# Heroku (and most platforms) hand the port in $PORT and route to every interface.
bind = f"0.0.0.0:{settings['PORT']}"
# Each worker accepts from its own SO_REUSEPORT socket and the kernel spreads new
# connections over them. With one shared socket, whichever worker wakes first accepts,
# and kept-alive connections stay where they landed: runs of `ab -k -c 32` ended with
# all 32 on one worker in 1 of 6 runs, at half the throughput with a core 40% idle
# (measured, BENCHMARKS.md). Spread by the kernel, the split stayed within 10:22.
# The master makes and holds these sockets (on_starting, app/server/listeners.py), not
# Gunicorn's reuse_port, which has each worker bind its own after fork: then a new
# worker joins the group before its model has loaded, the queue of an exiting one is
# reset (13,907 of 20,000 requests failed with recycling), and a second server on the
# same port joins silently. Held by the master, a replacement worker inherits its
# slot's socket and queue, and a port someone else listens on stops the start.
reuse_port = False

# --- Workers ------------------------------------------------------------------------
# Every setting below can be overridden without a deploy through GUNICORN_CMD_ARGS,
# Gunicorn's own mechanism (e.g. `heroku config:set GUNICORN_CMD_ARGS="--threads 4"`),
# which takes precedence over this file.
# One process per core: the buildpack sets WEB_CONCURRENCY=2 on a 512 MB dyno, and two
# workers with the OpenVINO backend fit there with room to spare.
workers = settings["WEB_CONCURRENCY"]
# Threads let a worker keep connections alive (sync workers close after each request)
# and overlap network I/O with the short, lock-guarded inference. The work is CPU-bound
# Python, so more threads only queue for the GIL: 2 gave the same throughput as 4 or
# sync workers and the lowest p99 (BENCHMARKS.md, tuning).
# Gunicorn's gthread gives a thread to every new connection, which then waits for the
# request as long as the client likes: 4-8 slow or silent clients held both threads of
# both workers (issue 17). This subclass of gthread reads each request whole in the
# worker's event loop (as nginx does in front of an app server) and only then hands it
# to a thread; see README, Reliability. A request must arrive within
# REQUEST_READ_TIMEOUT seconds of its first byte (default 30: Heroku's router gives up
# after 30 s too), or gets 408.
worker_class = "app.server.worker.BufferingWorker"
threads = 2
BufferingWorker.read_timeout = settings["REQUEST_READ_TIMEOUT"]
# Since issue 22, a request that is whole in memory and at most INLINE_MAX_BYTES long
# (default 128 KiB: every single review and batch of 64) runs on the worker's event loop
# itself, as uvicorn runs its handlers: the hand-over to a thread and back cost ~67 futex
# calls and ~5 thread switches a request and could wait up to 5 ms for the GIL, our p99
# (strace: 95 -> 22 system calls a request; wrk c=16 1.24x req/s, p99 15 -> 10 ms;
# BENCHMARKS.md, "Requests on the event loop"). The response is sent without blocking:
# a client that does not read cannot stall the loop (it is dropped after
# REQUEST_READ_TIMEOUT). The 2 threads now serve only the rest (a body not in memory,
# what the parser refuses, larger bodies, and what the app says may run long:
# app/web/long_requests.py). 0: every request to a thread, as before.
BufferingWorker.inline_max_bytes = settings["INLINE_MAX_BYTES"]
# Never preload: the model (and TensorFlow or OpenVINO) must start in each worker after
# fork; TensorFlow loaded in the master hangs every worker (measured).
preload_app = False

# --- Timeouts -----------------------------------------------------------------------
# For gthread workers this is the heartbeat: a worker whose main loop has not told the
# master it is alive for this long is killed and replaced. A request stuck in one of its
# threads does not stop the heartbeat; Heroku's router gives up on it at 30 s (H12).
timeout = 25
# On SIGTERM, let requests in flight finish within Heroku's 30 s shutdown window.
graceful_timeout = 20
# Seconds an idle kept-alive connection stays open. Heroku's Router 2.0 keeps its
# connections to the dyno alive and closes them after 90 s idle (Dev Center, "HTTP
# Routing", keepalives); Heroku's reference app sets 100 s so that the router, not the
# server, always closes first (closing first races with the router's next request).
keepalive = 100
# Recycle workers now and then, staggered, so that slow leaks cannot build up.
max_requests = 100000
max_requests_jitter = 10000

# --- Behind a proxy -------------------------------------------------------------------
# Heroku's router is the only peer and sets X-Forwarded-*; trust it for scheme and client.
forwarded_allow_ips = settings["FORWARDED_ALLOW_IPS"]
# The worker heartbeat file: in memory, so a slow disk cannot make workers look dead.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# --- Logging --------------------------------------------------------------------------
# JSON lines like the app's, on stderr (the access log on stdout). The app logs one line
# per request itself, so Gunicorn's access log (JSON too, with the request id) is off
# unless ACCESS_LOG=1.
logger_class = GunicornLogger
loglevel = settings["LOG_LEVEL"].lower()
errorlog = "-"
accesslog = "-" if settings["ACCESS_LOG"] else None

# --- Metrics --------------------------------------------------------------------------
# Workers write Prometheus samples to files in this folder and /metrics merges them.
# prometheus_client reads the variable when a worker imports it, so set it here, in the
# master, before any worker starts; by default a fresh folder per server, which the
# server removes when it stops (on_exit).
if not settings["PROMETHEUS_MULTIPROC_DIR"].strip():
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = default_metrics_folder()


def on_starting(server):
    """Listen: one SO_REUSEPORT socket per worker slot, held here in the master
    (Gunicorn skips its own sockets when LISTENERS is set). If anything listens on the
    address already, stop now with one line, rather than share the port or respawn
    workers that cannot bind. Then start from empty metric files: samples of an earlier
    run would be counted again."""
    try:
        server.LISTENERS = listeners.open_groups(
            server.cfg.address, server.cfg.workers, server.cfg.backlog
        )
        server.SLOT_CONNECTIONS = listeners.SlotConnections(server.cfg.workers)
    except (listeners.AddressInUse, OSError, ValueError) as error:
        server.log.error("%s", error)
        on_exit(server)
        sys.exit(1)
    # Only now, when the address was free: a second server started by mistake with the
    # same folder emptied a running one's files before it found the port taken.
    from app.config import EXIT_BAD_SETTING
    from app.observability.metrics import FolderInUse, claim_folder

    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    try:
        server.METRICS_FOLDER_CLAIM = claim_folder(folder)
    except FolderInUse as error:
        server.log.critical("%s", error)
        sys.exit(EXIT_BAD_SETTING)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def on_exit(server):
    """Remove the metrics folder the server made for itself (never an operator's)."""
    if not settings["PROMETHEUS_MULTIPROC_DIR"].strip():
        shutil.rmtree(default_metrics_folder(), ignore_errors=True)


def pre_fork(server, worker):
    """Give the new worker its slot's sockets (the slot a dead worker left free) and the
    slots' connection counts."""
    listeners.assign_slot(server.LISTENERS, server.WORKERS.values(), worker)
    worker.slot_connections = server.SLOT_CONNECTIONS


def post_fork(server, worker):
    listeners.close_other_slots(server.LISTENERS, worker)
    server.METRICS_FOLDER_CLAIM.close()  # the master's to hold, not a worker's


def post_worker_init(worker):
    """The worker has loaded the app and its model: move every object it holds into
    the permanent generation, so that a full garbage collection no longer scans the
    ~120k objects of Keras and OpenVINO. Measured: one full collection every ~40k
    requests, a 67 ms pause before and 0.1 ms after."""
    gc.freeze()


def worker_exit(server, worker):
    """In a worker that stops (SIGTERM from a deploy or a restart, the master's recycling):
    write the prediction records still queued, up to 5 s, and stop the shadow scorer's
    thread after its call in progress, before it exits (a worker whose app never loaded
    has neither)."""
    if hasattr(worker, "wsgi"):
        from app.web import feedback, models

        feedback.close(worker.wsgi)
        models.close(worker.wsgi)


def pre_exec(server):
    """USR2 (Gunicorn's binary upgrade), in the forked new master before it executes
    again: not supported (it ran 'python gunicorn', which is no file, and a new master
    could not listen where this one holds the slots' sockets). One line; this master
    serves on."""
    server.log.error("USR2 ignored: binary upgrades are not supported; restart instead")
    os._exit(1)


def nworkers_changed(server, new_value, old_value):
    """TTOU (one worker fewer) below the slots' count would leave a slot's socket, which
    this master holds, with no worker: the kernel still gives it its share of the new
    connections, and they wait unanswered (6-9 of 20 requests timed out). Refused, with
    a line; TTIN adds a worker that shares a slot, and TTOU takes such workers back."""
    slots = len(server.LISTENERS[0].sockets) if server.LISTENERS else 0
    if old_value is not None and new_value < slots <= old_value:
        server._num_workers = old_value  # the property's setter would call this again
        server.log.warning(
            "TTOU refused: %d workers serve the %d listening slots; "
            "to run fewer, restart with WEB_CONCURRENCY",
            old_value,
            slots,
        )


def child_exit(server, worker):
    """Drop a dead worker's connection count, so that no one balances against it, and
    its live gauges (model info), so it no longer counts; fold its counters and
    histograms into the folder's totals of dead workers (``fold_dead_workers``).
    Nothing here may stop the master: Gunicorn runs this hook in its main loop, where
    an exception stopped the server (a read-only metrics folder, a damaged totals
    file); one line instead, and the next worker's exit folds what is left."""
    from prometheus_client import multiprocess

    from app.observability.metrics import fold_dead_workers

    if getattr(worker, "slot", None) is not None:
        server.SLOT_CONNECTIONS.counts[worker.slot] = listeners.NOT_SERVING
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        multiprocess.mark_process_dead(worker.pid, folder)
        fold_dead_workers(folder, server.log)
    except FileNotFoundError:  # the folder was deleted: the workers restart
        pass
    except Exception as error:
        server.log.error(
            "a dead worker's metrics cannot be folded: %s: %s", error.__class__.__name__, error
        )


# --- Control socket -------------------------------------------------------------------
# Gunicorn's runtime control socket sits at one fixed path per user, so two servers on
# one machine (tests, benchmarks, a dyno's one-off) would fight over it; nothing uses it.
control_socket_disable = True
