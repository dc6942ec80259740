"""``make chaos``: every chaos scenario against the real server, one line each.

``python -m benchmarks.chaos [NAME ...]`` runs the scenarios of benchmarks.chaos_traffic
(sockets, workers, signals, the port) and, when it exists, benchmarks.chaos_startup
(settings and the model at start), or only those whose name contains one of the NAMEs.
Each prints ``ok``/``FAILED``, its name and its figure (failed requests, p99, exit code,
seconds to exit); the exit code is 1 if any failed. Counts and times are bounded: about
4 minutes in all on a 2-core machine."""

from __future__ import annotations

import importlib
import resource
import sys
import time
import traceback


def scenarios() -> list[tuple[str, object]]:
    found = list(importlib.import_module("benchmarks.chaos_traffic").SCENARIOS)
    try:
        found += importlib.import_module("benchmarks.chaos_startup").SCENARIOS
    except ModuleNotFoundError as error:
        if error.name != "benchmarks.chaos_startup":
            raise
    return found


def main(argv: list[str]) -> int:
    # The slow-client scenario holds ~800 sockets open in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    chosen = [(n, f) for n, f in scenarios() if not argv or any(a in n for a in argv)]
    failed = 0
    for name, scenario in chosen:
        started = time.monotonic()
        try:
            line, status = scenario(), "ok"
        except AssertionError as error:
            line, status = str(error), "FAILED"
        except Exception:
            line, status = traceback.format_exc(limit=3).strip().replace("\n", " | "), "FAILED"
        failed += status != "ok"
        print(f"{status:6} {name}: {line} [{time.monotonic() - started:.0f} s]", flush=True)
    print(f"{len(chosen) - failed} of {len(chosen)} chaos scenarios passed", flush=True)
    return 1 if failed or not chosen else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
