"""The load generators of `make bench`: ApacheBench (one body, sent again and again) and
wrk with a Lua script (a rotating set of different bodies), each with or without
keep-alive, and the CPU the server spent on a run.

ab's figures are comparable with every earlier report; wrk's are the ones a cache keyed
on the text could not flatter (issue 22, target 6). Both run on the same cores as the
server, single-threaded, so both servers of a ratio share the same handicap.
"""

from __future__ import annotations

import csv
import json
import os
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from deploy.dyno import children

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Every request carries an API key, so that a server with API_KEYS set is measured under
# the same load as the others (a server without keys ignores the header: +1 µs a request).
API_KEY = "bench-key-0123456789abcdef"
AUTHORIZATION = f"Bearer {API_KEY}"


@dataclass
class LoadResult:
    """One run of one load generator against one server."""

    tool: str  # "ab" (fixed body) or "wrk" (rotating bodies)
    keepalive: bool
    concurrency: int
    requests: int
    rps: float
    failed: int  # connection, read and write errors, timeouts, wrong lengths (ab)
    non_2xx: int
    p50_ms: float
    p99_ms: float
    # Server CPU (master and workers, user + system) per request, µs; 0 when not read.
    cpu_us: float = 0.0
    runs: list[float] = field(default_factory=list)  # each run's req/s, for the spread


def median_of(rows: list[LoadResult]) -> LoadResult:
    """One row from several runs of the same load: medians, and summed counts."""
    first = rows[0]
    return LoadResult(
        tool=first.tool,
        keepalive=first.keepalive,
        concurrency=first.concurrency,
        requests=sum(row.requests for row in rows),
        rps=statistics.median(row.rps for row in rows),
        failed=sum(row.failed for row in rows),
        non_2xx=sum(row.non_2xx for row in rows),
        p50_ms=statistics.median(row.p50_ms for row in rows),
        p99_ms=statistics.median(row.p99_ms for row in rows),
        cpu_us=statistics.median(row.cpu_us for row in rows),
        runs=[row.rps for row in rows],
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (Gunicorn's master and workers)."""
    total = 0
    for process in [pid, *children(pid)]:
        try:
            stat = Path(f"/proc/{process}/stat").read_text()
        except FileNotFoundError:  # a worker that exited meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def ab(url: str, body: Path, concurrency: int, count: int, keepalive: bool = True) -> LoadResult:
    """One ApacheBench run; latency percentiles from its CSV. Without keep-alive, ab
    opens a connection per request (HTTP/1.0, the server closes after the response)."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as percentiles:
        command = [
            "ab", "-q", *(["-k"] if keepalive else []), "-s", "30",
            "-c", str(concurrency), "-n", str(count),
            "-p", str(body), "-T", "application/json", "-H", f"Authorization: {AUTHORIZATION}",
            "-e", percentiles.name, url,
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        with open(percentiles.name) as file:
            rows = {int(float(row[0])): float(row[1]) for row in list(csv.reader(file))[1:]}

    def number(label: str) -> float:
        match = re.search(rf"^{label}:\s+([\d.]+)", output, re.M)
        return float(match.group(1)) if match else 0.0

    return LoadResult(
        tool="ab",
        keepalive=keepalive,
        concurrency=concurrency,
        requests=int(number("Complete requests")),
        rps=number("Requests per second"),
        failed=int(number("Failed requests")),
        non_2xx=int(number("Non-2xx responses")),
        p50_ms=rows[50],
        p99_ms=rows[99],
    )


# wrk calls request() for every request; each of its threads has its own Lua state and
# so its own position in the rotation. done() prints one JSON line that wrk() parses.
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"
{close}
{seed}
local bodies = {{
{bodies}
}}
local position = 0

request = function()
  position = position % #bodies + 1
  {set_id}
  return wrk.format(nil, nil, nil, bodies[position])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "seconds": %.6f, "errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99)))
end
"""


ROUTER_ID = (
    'wrk.headers["X-Request-ID"] = string.format("%08x%08x%08x%08x", math.random(0, 2^32 - 1), '
    "math.random(0, 2^32 - 1), math.random(0, 2^32 - 1), math.random(0, 2^32 - 1))"
)


def wrk_script(
    bodies: list[str], path: Path, keepalive: bool = True, router_ids: bool = False
) -> Path:
    """A Lua script for wrk that POSTs ``bodies`` (JSON texts) in rotation; with
    ``router_ids`` each request carries a new random ``X-Request-ID``, as Heroku's router
    sends (32 hex digits here, where the router sends a UUID v4)."""
    quoted = []
    for body in bodies:
        level = 0
        while f"]{'=' * level}]" in body:
            level += 1
        quoted.append(f"  [{'=' * level}[{body}]{'=' * level}],")
    close = "" if keepalive else 'wrk.headers["Connection"] = "close"'
    script = WRK_SCRIPT.format(
        close=close,
        authorization=AUTHORIZATION,
        seed="math.randomseed(os.time())" if router_ids else "",
        set_id=ROUTER_ID if router_ids else "",
        bodies="\n".join(quoted),
    )
    path.write_text(script)
    return path


def wrk(url: str, script: Path, concurrency: int, seconds: float, keepalive: bool) -> LoadResult:
    """One wrk run of ``seconds`` (whole: wrk takes no fractions) with one thread (as ab
    has) and ``concurrency`` connections.
    ``keepalive`` only labels the result: the script decides (``Connection: close``)."""
    command = [
        "wrk", "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "30s", "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    return LoadResult(
        tool="wrk",
        keepalive=keepalive,
        concurrency=concurrency,
        requests=summary["requests"],
        rps=summary["requests"] / summary["seconds"],
        failed=summary["errors"],
        non_2xx=summary["non_2xx"],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )
