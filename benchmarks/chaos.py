"""``make chaos``: every chaos scenario against the real server, one line each.

``python -m benchmarks.chaos [NAME ...]`` runs the scenarios of benchmarks.chaos_traffic
(sockets, workers, signals, the port) and, when it exists, benchmarks.chaos_startup
(settings and the model at start), or only those whose name contains one of the NAMEs
(``--help`` lists the names; NAMEs that match none are an error, exit 2).
Each prints ``ok``/``FAILED``, its name and its figure (failed requests, p99, exit code,
seconds to exit); the exit code is 1 if any failed. Counts and times are bounded: about
4 minutes in all on a 2-core machine."""

from __future__ import annotations

import argparse
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


def choose(found: list[tuple[str, object]], argv: list[str], prog: str, doc: str) -> list:
    """The scenarios of ``found`` that the command line ``argv`` names (all by default);
    ``--help`` lists every name, NAMEs that match none exit 2 with the list."""
    listing = "\n".join(f"  {name}" for name, _ in found)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc.splitlines()[0],
        epilog=f"scenarios:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="run only the scenarios whose name contains one of these (default: all)",
    )
    names = parser.parse_args(argv).names
    chosen = [(n, f) for n, f in found if not names or any(a in n for a in names)]
    if not chosen:
        parser.error(f"no scenario matches {' '.join(names)!r}; the scenarios:\n{listing}")
    return chosen


def main(argv: list[str]) -> int:
    chosen = choose(scenarios(), argv, "python -m benchmarks.chaos", __doc__)
    # The slow-client scenario holds ~800 sockets open in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
