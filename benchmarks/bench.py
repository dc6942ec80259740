"""`make bench`: the service against its baselines, in one run, on this machine.

Starts each server from the Procfile's command (the app spec swapped for the baselines)
on a free loopback port, drives it with ApacheBench (`ab -k`), and writes the results
between the markers of BENCHMARKS.md, plus a plot in benchmarks/throughput.png.
Ratios are what count: these machines are shared and noisy, so absolute numbers move
from run to run while ratios measured minutes apart hold.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.config import PROJECT_ROOT
from benchmarks.reviews import REVIEWS
from deploy.dyno import WebProcess, build_environment

SERVICE_APP = "app:create_app()"
NOOP_APP = "benchmarks.apps:noop_app()"
TUTORIAL_APP = "benchmarks.apps:tutorial_app()"
# One review of about 340 bytes, the size the figures in shared/FACTS.md used.
SINGLE = {"review": REVIEWS[24][:310]}
BATCH = {"reviews": [REVIEWS[i % len(REVIEWS)] for i in range(64)]}
# Each load runs ROUNDS times, alternating the servers compared; medians are reported.
ROUNDS = 3
BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"
PLOT = PROJECT_ROOT / "benchmarks" / "throughput.png"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass
class AbResult:
    concurrency: int
    requests: int
    rps: float
    failed: int
    non_2xx: int
    p50_ms: float
    p99_ms: float


class Server(WebProcess):
    """A Gunicorn master started from the Procfile's command, with what Heroku's buildpack
    sets on a 512 MB dyno, once it answers a review."""

    def __init__(
        self, app_spec: str, env: dict[str, str] | None = None, bin_dir: Path | None = None
    ):
        super().__init__(
            {"WEB_CONCURRENCY": "2", **(env or {})}, bin_dir=bin_dir, app_spec=app_spec
        )
        self.app_spec = app_spec
        self.served = 0  # requests sent so far (for the memory readings)
        self.boot_s = 0.0

    def start(self) -> Server:
        self.boot_s = self.wait_ready("/classify", 120, "POST", json=SINGLE)
        return self

    @property
    def classify_url(self) -> str:
        return f"{self.url}/classify"


def ab(server: Server, body_file: Path, concurrency: int, count: int) -> AbResult:
    """One ApacheBench run with keep-alive; latency percentiles from its CSV."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as percentiles:
        command = [
            "ab", "-q", "-k", "-s", "30", "-c", str(concurrency), "-n", str(count),
            "-p", str(body_file), "-T", "application/json", "-e", percentiles.name,
            server.classify_url,
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        with open(percentiles.name) as file:
            rows = {int(float(row[0])): float(row[1]) for row in list(csv.reader(file))[1:]}
    server.served += count

    def number(label: str) -> float:
        match = re.search(rf"^{label}:\s+([\d.]+)", output, re.M)
        return float(match.group(1)) if match else 0.0

    return AbResult(
        concurrency=concurrency,
        requests=count,
        rps=number("Requests per second"),
        failed=int(number("Failed requests")),
        non_2xx=int(number("Non-2xx responses")),
        p50_ms=rows[50],
        p99_ms=rows[99],
    )


def in_process_rows_per_s(env: dict[str, str]) -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--json"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOG_LEVEL": "warning", **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def versions() -> str:
    names = ["keras", "openvino", "tensorflow-cpu", "numpy", "flask", "gunicorn"]
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    memory = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
    return (
        f"{os.cpu_count()} vCPU ({model.group(1) if model else platform.machine()}), "
        f"{int(memory.group(1)) / 1024**2:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; ab on the same cores as the server"
    )


def median_of(rows: list[AbResult]) -> AbResult:
    """One row from several runs of the same load: medians, and summed counts."""
    return AbResult(
        concurrency=rows[0].concurrency,
        requests=sum(row.requests for row in rows),
        rps=statistics.median(row.rps for row in rows),
        failed=sum(row.failed for row in rows),
        non_2xx=sum(row.non_2xx for row in rows),
        p50_ms=statistics.median(row.p50_ms for row in rows),
        p99_ms=statistics.median(row.p99_ms for row in rows),
    )


def interleaved(servers: list[Server], body: Path, concurrency: int, count: int) -> list[AbResult]:
    """ROUNDS runs per server, alternating servers, so that a slow spell of the shared
    machine hits both sides of a ratio; the median of each server's runs."""
    runs: list[list[AbResult]] = [[] for _ in servers]
    for _ in range(ROUNDS):
        for index, server in enumerate(servers):
            runs[index].append(ab(server, body, concurrency, count))
    return [median_of(rows) for rows in runs]


def run(quick: bool) -> dict:
    """Every measurement of the report, in one run."""
    scale = 0.2 if quick else 1.0

    def n(count: int) -> int:
        return max(200, int(count * scale))

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    single_file, batch_file = work / "single.json", work / "batch.json"
    single_file.write_text(json.dumps(SINGLE))
    batch_file.write_text(json.dumps(BATCH))
    results: dict = {"started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}

    print("in-process pipeline ...", flush=True)
    results["in_process"] = in_process_rows_per_s({})

    # The service and its no-op baseline run from what Heroku installs (requirements.txt
    # alone); the tutorial and TensorFlow runs need TensorFlow, from the dev environment.
    print("serving environment (requirements.txt only) ...", flush=True)
    serving_bin = build_environment(fresh=False) / "bin"
    print("service and no-op baseline, side by side ...", flush=True)
    service = Server(SERVICE_APP, bin_dir=serving_bin).start()
    results["boot_s"] = service.boot_s
    noop = Server(NOOP_APP, bin_dir=serving_bin).start()
    for server in (service, noop):
        ab(server, single_file, 16, n(2000))  # warm-up
    single, noops = [], []
    for concurrency, count in ((1, 2000), (16, 6000), (32, 8000), (64, 8000)):
        ours, theirs = interleaved([service, noop], single_file, concurrency, n(count))
        single.append(ours)
        noops.append(theirs)
        if concurrency == 16:  # about 20,000 requests served by now
            results["pss_20k_mb"], results["pss_20k_at"] = service.pss_mb(), service.served
    noop.stop()
    batch = [
        median_of([ab(service, batch_file, c, n(500)) for _ in range(ROUNDS)]) for c in (1, 16, 64)
    ]
    ab(service, single_file, 16, max(200, n(100_000) - service.served))  # reach 100k
    results["pss_100k_mb"], results["pss_100k_at"] = service.pss_mb(), service.served
    service.stop()
    results["single"], results["noop"], results["batch"] = single, noops, batch

    print("tutorial baseline (TensorFlow, model.predict per request) ...", flush=True)
    tutorial = Server(TUTORIAL_APP, {"KERAS_BACKEND": "tensorflow"}).start()
    ab(tutorial, single_file, 32, 64)
    results["tutorial"] = ab(tutorial, single_file, 32, n(1000))
    tutorial.stop()

    print("service on the TensorFlow backend ...", flush=True)
    tf_service = Server(SERVICE_APP, {"KERAS_BACKEND": "tensorflow"}).start()
    results["tf_boot_s"] = tf_service.boot_s
    ab(tf_service, single_file, 16, n(2000))
    results["tf_single"] = median_of(
        [ab(tf_service, single_file, 32, n(6000)) for _ in range(ROUNDS)]
    )
    results["tf_pss_mb"] = tf_service.pss_mb()
    tf_service.stop()
    shutil.rmtree(work)
    return results


def at(rows: list[AbResult], concurrency: int) -> AbResult:
    return next(row for row in rows if row.concurrency == concurrency)


def targets(r: dict) -> list[tuple[str, str, str, bool]]:
    """(target, measured, required, met) for each target of the performance issue."""
    single32, noop32 = at(r["single"], 32), at(r["noop"], 32)
    vs_noop = single32.rps / noop32.rps
    best_batch = max(r["batch"], key=lambda row: row.rps)
    batch_rows = best_batch.rps * len(BATCH["reviews"])
    in_process = r["in_process"]["batches"]["64"]["rows_per_s"]
    growth = r["pss_100k_mb"] / r["pss_20k_mb"] - 1
    p99 = at(r["single"], 16).p99_ms
    return [
        (
            "1. single review, c=32, vs no-op Flask (same config)",
            f"{single32.rps:,.0f} vs {noop32.rps:,.0f} req/s = **{vs_noop:.2f}×**",
            "≥ 0.6×",
            vs_noop >= 0.6,
        ),
        (
            "2. single review, c=32, vs tutorial `model.predict` per request",
            f"{single32.rps:,.0f} vs {r['tutorial'].rps:,.1f} req/s = "
            f"**{single32.rps / r['tutorial'].rps:.0f}×**",
            "≥ 40×",
            single32.rps / r["tutorial"].rps >= 40,
        ),
        (
            "3. batches of 64 through HTTP vs in-process pipeline at 64",
            f"{batch_rows:,.0f} rows/s (c={best_batch.concurrency}) vs {in_process:,.0f} rows/s "
            f"= **{batch_rows / in_process:.2f}×**",
            "≥ 0.5×",
            batch_rows / in_process >= 0.5,
        ),
        ("4. p99 latency, single review, c=16", f"**{p99:.0f} ms**", "≤ 10 ms", p99 <= 10),
        (
            f"5a. total PSS after {r['pss_20k_at']:,} requests",
            f"**{r['pss_20k_mb']:.0f} MB**",
            "≤ 350 MB",
            r["pss_20k_mb"] <= 350,
        ),
        (
            f"5b. PSS growth from {r['pss_20k_at']:,} to {r['pss_100k_at']:,} requests",
            f"{r['pss_20k_mb']:.0f} → {r['pss_100k_mb']:.0f} MB = **{growth:+.1%}**",
            "≤ +10%",
            growth <= 0.10,
        ),
        (
            "6. boot: start → first 200 from /classify",
            f"**{r['boot_s']:.1f} s**",
            "≤ 5 s",
            r["boot_s"] <= 5,
        ),
    ]


def table(rows: list[AbResult], per_request: int = 1) -> list[str]:
    unit = "rows/s" if per_request > 1 else "req/s"
    lines = [
        f"| concurrency | requests | {unit} | p50 ms | p99 ms | failed | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.concurrency} | {row.requests:,} | {row.rps * per_request:,.0f} | "
            f"{row.p50_ms:.1f} | {row.p99_ms:.1f} | {row.failed} | {row.non_2xx} |"
        )
    return lines


def report(r: dict, command: str) -> str:
    checks = targets(r)
    inproc = r["in_process"]["batches"]
    tf = r["tf_single"]
    lines = [
        START,
        f"## Latest run: {r['started']}",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        "- Server: the Procfile's command with the shipped `gunicorn.conf.py` "
        "(WEB_CONCURRENCY=2, as on a 512 MB dyno; logs at INFO to /dev/null); "
        f"single body {len(json.dumps(SINGLE))} bytes, batch body 64 reviews.",
        "",
        "### Targets",
        "",
        "| target | measured | required | met |",
        "|---|---|---|---|",
        *[
            f"| {name} | {value} | {need} | {'yes' if ok else '**no**'} |"
            for name, value, need, ok in checks
        ],
        "",
        "### Single review (`POST /classify`, `ab -k`)",
        "",
        *table(r["single"]),
        "",
        "### No-op Flask endpoint, same Gunicorn config",
        "",
        *table(r["noop"]),
        "",
        "### Batches of 64 reviews",
        "",
        *table(r["batch"], per_request=64),
        "",
        "### Baselines and the other backend",
        "",
        "| server | c | req/s | p99 ms | total PSS | boot |",
        "|---|---|---|---|---|---|",
        f"| service, OpenVINO backend (default) | 32 | {at(r['single'], 32).rps:,.0f} | "
        f"{at(r['single'], 32).p99_ms:.1f} | {r['pss_20k_mb']:.0f} MB | {r['boot_s']:.1f} s |",
        f"| service, TensorFlow backend | 32 | {tf.rps:,.0f} | {tf.p99_ms:.1f} | "
        f"{r['tf_pss_mb']:.0f} MB | {r['tf_boot_s']:.1f} s |",
        f"| tutorial: TensorFlow, `model.predict` per request | 32 | {r['tutorial'].rps:,.1f} | "
        f"{r['tutorial'].p99_ms:.0f} | | |",
        "",
        "### In-process pipeline (`python -m benchmarks.inprocess`, one thread)",
        "",
        "| batch | preprocess µs | inference µs | pipeline µs | rows/s |",
        "|---|---|---|---|---|",
        *[
            f"| {size} | {row['preprocess_us']:.0f} | {row['inference_us']:.0f} | "
            f"{row['pipeline_us']:.0f} | {row['rows_per_s']:,.0f} |"
            for size, row in inproc.items()
        ],
        "",
        "![Throughput and p99 latency against concurrency](benchmarks/throughput.png)",
        END,
    ]
    return "\n".join(lines)


def plot(r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    series = [
        ("no-op Flask", r["noop"]),
        ("single review", r["single"]),
        ("batch of 64 reviews", r["batch"]),
    ]
    for name, rows in series:
        xs = [row.concurrency for row in rows]
        left.plot(xs, [row.rps for row in rows], marker="o", label=name)
        right.plot(xs, [row.p99_ms for row in rows], marker="o", label=name)
    left.set(xscale="log", xlabel="concurrency (ab -c)", ylabel="requests/s", title="Throughput")
    right.set(xscale="log", yscale="log", xlabel="concurrency (ab -c)", ylabel="p99 ms")
    right.set_title("p99 latency")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"POST /classify, 2 Gunicorn workers, {r['started']}")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)


def write_report(text: str) -> None:
    current = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else f"{START}\n{END}\n"
    before, rest = current.split(START, 1)
    after = rest.split(END, 1)[1]
    BENCHMARKS_MD.write_text(before + text + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the requests (smoke)")
    args = parser.parse_args()
    if not shutil.which("ab"):
        sys.exit("ab not found: apt-get install apache2-utils")
    started = time.monotonic()
    results = run(args.quick)
    command = "make bench" + (" BENCH_ARGS=--quick" if args.quick else "")
    write_report(report(results, command))
    plot(results)
    # A report, not a gate: the machines are too noisy for a pass/fail on absolute runs.
    print(f"done in {time.monotonic() - started:.0f} s; report in {BENCHMARKS_MD.name}")
    for name, value, need, ok in targets(results):
        print(f"  {'ok ' if ok else 'NO '} {name}: {value.replace('**', '')} (need {need})")


if __name__ == "__main__":
    main()
