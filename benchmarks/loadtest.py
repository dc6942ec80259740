"""`make loadtest`: locust, headless and bounded in time, against a local server.

Starts the server from the Procfile's command on a free loopback port, runs
locustfile.py for LOADTEST_TIME (default 60s) with LOADTEST_USERS users, writes CSV and
HTML reports to reports/ (git-ignored), checks that the server still answers /ready,
and exits non-zero if any request failed unexpectedly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from app.config import PROJECT_ROOT
from benchmarks.bench import SERVICE_APP, Server

REPORTS = PROJECT_ROOT / "reports"


def main() -> None:
    run_time = os.environ.get("LOADTEST_TIME", "60s")
    users = os.environ.get("LOADTEST_USERS", "32")
    REPORTS.mkdir(exist_ok=True)
    started = time.time()
    server = Server("service", SERVICE_APP, {}, None)
    try:
        command = [
            str(Path(sys.executable).parent / "locust"),
            "-f", "locustfile.py", "--headless", "--only-summary",
            "--host", server.url,
            "--users", users, "--spawn-rate", users, "--run-time", run_time,
            "--stop-timeout", "10",
            "--csv", str(REPORTS / "locust"), "--html", str(REPORTS / "locust.html"),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=PROJECT_ROOT)
        ready = requests.get(f"{server.url}/ready", timeout=5).status_code
    finally:
        server.stop()
    print(f"locust exit code {result.returncode}; /ready after the run: {ready}")
    # Only reports this run wrote: locust writes none when it refuses its arguments.
    reports = [REPORTS / "locust.html", REPORTS / "locust_stats.csv"]
    if all(path.exists() and path.stat().st_mtime >= started for path in reports):
        print(f"reports: {reports[0]}, {reports[1]}")
    sys.exit(result.returncode or (0 if ready == 200 else 1))


if __name__ == "__main__":
    main()
