"""``python -m app.server [Gunicorn options] APP``: the Procfile's web command.

It checks every setting (``app.server.checked_settings``) and then runs Gunicorn's own
command in this same process, which becomes the Gunicorn master. The check must come
first: Gunicorn reads ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS`` when it is imported,
before any config file, and a bad value there ends in a bare traceback. Only the small
config module is imported before Gunicorn: never Flask, NumPy or Keras.
"""

from __future__ import annotations

import collections
import signal
import sys

from app.server import checked_settings

HELP = """python -m app.server: the Procfile's web command, Gunicorn with this project's settings.
Settings come from environment variables (README, Configuration) through gunicorn.conf.py
(the Procfile passes --config gunicorn.conf.py); the defaults Gunicorn lists below are its
own, which that file replaces (bind 0.0.0.0:$PORT, WEB_CONCURRENCY workers, 2 threads...).
"""


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(HELP)  # and Gunicorn's own, whatever the environment holds
    else:
        checked_settings()
    from gunicorn.app import base
    from gunicorn.app.wsgiapp import run

    base.Arbiter = halting_once(base.Arbiter)
    sys.argv[0] = "gunicorn"  # Gunicorn's usage and process title
    sys.exit(run())


def halting_once(arbiter: type) -> type:
    """Gunicorn's master, but one whose halt is not cut short by a second worker that
    failed to boot. A worker that cannot serve exits 3 and the master halts; a worker still
    loading when it does exits 3 too, and Gunicorn, reaping it while it stops the workers,
    raised the same error again out of ``halt()``: two tracebacks and exit 1 instead of
    one line and exit 3 (two runs in three with four workers), and no ``on_exit``.

    Nor does it stop when it cannot fork a worker's replacement for a moment (EAGAIN at
    a pids or process limit, ENOMEM): Gunicorn let that ``OSError`` out of its main loop,
    and the whole server stopped (exit 255) when one worker died on a busy machine. One
    line; the main loop tries again each second, the other workers serving meanwhile."""
    from gunicorn.errors import HaltServer

    class HaltingOnce(arbiter):  # type: ignore[misc, valid-type]
        halting = False
        fork_failing = False

        def spawn_worker(self) -> int | None:
            try:
                pid = super().spawn_worker()
            except OSError as error:  # in the master: the fork (or its worker's tmp file)
                if not self.fork_failing:
                    self.log.error("cannot start a worker now (%s): trying every second", error)
                self.fork_failing = True
                return None
            if self.fork_failing:
                self.fork_failing = False
                self.log.warning("a worker started again after failed starts")
            return pid

        def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
            self.halting = True
            super().halt(reason, exit_status)

        def manage_workers(self) -> None:
            """Gunicorn's, but the workers stopped past ``num_workers`` (TTOU, a reload's
            old ones) are the oldest of those that share a slot, not the oldest of all:
            after a TTIN and a recycled worker, both slot 0's, the oldest was slot 1's only
            worker, and TTOU left that slot's socket with no one to accept (19 of 40 new
            connections hung for good; an outside probe). The debug lines and the backlog
            metric of Gunicorn's are not kept (neither is used here)."""
            if len(self.WORKERS) < self.num_workers:
                self.spawn_workers()
            for pid in workers_to_stop(self.WORKERS, self.num_workers):
                self.kill_worker(pid, signal.SIGTERM)

        def reap_workers(self) -> None:
            try:
                super().reap_workers()
            except HaltServer:
                if not self.halting:
                    raise

    return HaltingOnce


def workers_to_stop(workers: dict, wanted: int) -> list[int]:
    """The pids to stop so that ``wanted`` of ``workers`` ({pid: worker}) stay: oldest
    first among the workers whose slot another one also serves, so that every slot keeps
    a worker while there are enough of them (``listeners.assign_slot`` gives each worker
    a slot)."""
    by_age = sorted(workers.items(), key=lambda item: item[1].age)
    serving = collections.Counter(getattr(worker, "slot", None) for _, worker in by_age)
    stop: list[int] = []
    while len(by_age) - len(stop) > wanted:
        left = [(pid, worker) for pid, worker in by_age if pid not in stop]
        shared = [item for item in left if serving[getattr(item[1], "slot", None)] > 1]
        pid, worker = (shared or left)[0]
        serving[getattr(worker, "slot", None)] -= 1
        stop.append(pid)
    return stop


if __name__ == "__main__":
    main()
