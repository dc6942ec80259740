"""Issue 19's budget in one run: single-review throughput with prediction recording on
against off (``ab -k -c 32``, rounds alternating between the two servers), and p99 at
c=16 with recording on. ``python -m benchmarks.recording [--rounds N]``.

Both servers are the Procfile's command with two workers; the one that records writes to
a fresh SQLite file (the default store, empty as on a first deploy) unless ``DATABASE_URL``
is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.bench import SERVICE_APP, SINGLE, Bench, Load, Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    bench = Bench(work, quick=False)
    (work / "single.json").write_text(json.dumps(SINGLE))
    servers = []
    try:
        database = os.environ.get("DATABASE_URL") or f"sqlite:///{work / 'predictions.sqlite3'}"
        servers.append(Server("recording on", SERVICE_APP, {"DATABASE_URL": database}, None))
        servers.append(Server("recording off", SERVICE_APP, {"RECORD_PREDICTIONS": "0"}, None))
        for server in servers:  # warm-up
            bench.run(server, Load("ab", 16, 2000))
        rps: dict[str, list[float]] = {server.name: [] for server in servers}
        p99: dict[str, list[float]] = {server.name: [] for server in servers}
        cpu: dict[str, list[float]] = {server.name: [] for server in servers}
        failed = 0
        for number in range(args.rounds):
            # Who goes first alternates too: a slow spell then hits both sides alike.
            ordered = servers if number % 2 == 0 else servers[::-1]
            for server in ordered:
                result = bench.run(server, Load("ab", 32, args.requests))
                rps[server.name].append(result.rps)
                cpu[server.name].append(result.cpu_us)
                failed += result.failed + result.non_2xx
            for server in ordered:
                result = bench.run(server, Load("ab", 16, args.requests // 2))
                p99[server.name].append(result.p99_ms)
                failed += result.failed + result.non_2xx
        on, off = (statistics.median(rps[s.name]) for s in servers)
        ratios = [a / b for a, b in zip(rps["recording on"], rps["recording off"], strict=True)]
        print(f"ab -k -c 32 -n {args.requests}, {args.rounds} alternating rounds")
        for server in servers:
            print(f"  {server.name}: {rps[server.name]} req/s, p99 c=16 {p99[server.name]} ms")
        print(f"median req/s: on {on:.0f}, off {off:.0f}, ratio {on / off:.3f}")
        print(f"per-round ratios: {[round(r, 3) for r in ratios]}, "
              f"median {statistics.median(ratios):.3f}")  # fmt: skip
        cpu_on, cpu_off = (statistics.median(cpu[s.name]) for s in servers)
        print(f"server CPU per request (median): on {cpu_on:.0f} µs, off {cpu_off:.0f} µs, "
              f"ratio {cpu_on / cpu_off:.3f}")  # fmt: skip
        print(f"p99 at c=16 (median): on {statistics.median(p99['recording on']):.1f} ms, "
              f"off {statistics.median(p99['recording off']):.1f} ms")  # fmt: skip
        print(f"failed or non-2xx: {failed}")
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
