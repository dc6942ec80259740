"""`make bench`: the service against the servers users would pick instead, in one run.

Starts every server from the Procfile's command (the app spec swapped for the others) on
a free loopback port: the service as shipped with this turn's features on (two model
versions loaded, the request log line, the metrics), the same service with one feature
off at a time, a no-op Flask app (the HTTP stack's ceiling) and the FastAPI twin
(`benchmarks/twin.py`: FastAPI on Gunicorn + UvicornWorker, the same Predictor). Each load
runs against them in alternating rounds; medians go between the markers of BENCHMARKS.md
with the targets of issue 22, plus a plot in benchmarks/throughput.png. A smoke run
(`--quick`) writes reports/BENCHMARKS-quick.md and its plot instead: it never replaces the
record.

Two load generators: `ab` sends one body again and again (comparable with every earlier
report), `wrk` with a Lua script sends 900 different reviews in rotation (what a cache
keyed on the text could not flatter). Ratios are what count: these machines are shared and
noisy, so absolute numbers move from run to run while ratios measured minutes apart hold.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from app.config import MODEL_BASE, PROJECT_ROOT
from app.serving.registry import VersionSelection
from benchmarks.drivers import (
    API_KEY,
    AUTHORIZATION,
    LoadResult,
    ab,
    cpu_seconds,
    median_of,
    wrk,
    wrk_script,
)
from benchmarks.reviews import REVIEWS, rotating_batches, rotating_reviews
from deploy.dyno import WebProcess, build_environment
from deploy.heroku_check import post_compile, prebuilt_files, slug_files, slug_size_mb

SERVICE_APP = "app:create_app()"
NOOP_APP = "benchmarks.apps:noop_app()"
TUTORIAL_APP = "benchmarks.apps:tutorial_app()"
WITHOUT_METRICS_APP = "benchmarks.apps:without_metrics_app()"
TWIN_APP = "benchmarks.twin:twin_app()"
# The twin runs the shipped gunicorn.conf.py (two workers, SO_REUSEPORT, keep-alive,
# gc.freeze after load) with Uvicorn's worker class, which GUNICORN_CMD_ARGS overrides.
TWIN_ENV = {"GUNICORN_CMD_ARGS": "--worker-class uvicorn_worker.UvicornWorker"}
# Its packages: pinned in requirements-dev.txt, installed next to requirements.txt in an
# environment of their own (uvloop and httptools: what `uvicorn[standard]` adds for speed).
TWIN_PACKAGES = ("fastapi", "uvicorn", "uvicorn-worker", "uvloop", "httptools")

# One review of about 340 bytes, the size the figures in shared/FACTS.md used (ab).
SINGLE = {"review": REVIEWS[24][:310]}
BATCH = {"reviews": [REVIEWS[i % len(REVIEWS)] for i in range(64)]}
BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"
PLOT = PROJECT_ROOT / "benchmarks" / "throughput.png"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
REPORTS = PROJECT_ROOT / "reports"  # git-ignored


def outputs(quick: bool) -> tuple[Path, Path]:
    """Where a run writes its report and its plot: a smoke run's figures (one round, a
    fifth of the requests) are no record, so they go to reports/, not over the committed
    BENCHMARKS.md and throughput.png."""
    if quick:
        return REPORTS / "BENCHMARKS-quick.md", REPORTS / "throughput-quick.png"
    return BENCHMARKS_MD, PLOT


def feature_variants(stable_version: str) -> list[Variant]:
    """This turn's features, each in a server of its own (everything else as shipped): on
    by default ones switched off, opt-in ones (the rollout modes) switched on. A feature's
    cost is the difference between its two servers, measured in the same rounds. A feature
    that comes with a setting is one more line here."""
    other = "1" if stable_version == "2" else "2"
    labels = f"stable={stable_version},canary={other}"
    return [
        Variant("request log line", env={"LOG_LEVEL": "warning"}),
        Variant("metrics", app_spec=WITHOUT_METRICS_APP),
        Variant("second model version (one loaded)", env={"MODEL_VERSIONS": stable_version}),
        Variant("prediction recording", env={"RECORD_PREDICTIONS": "0"}),
        # Not a feature but a default to keep checking: requests on the worker's event
        # loop against gthread's hand-over to a thread (issue 22; BENCHMARKS.md).
        Variant("requests on the event loop", env={"INLINE_MAX_BYTES": "0"}),
        Variant(
            f"canary routing ({labels}, 10%)",
            env={"ROUTING": "canary", "MODEL_LABELS": labels},
            switched_on=True,
        ),
        Variant(
            f"shadow scoring ({labels}, 100%)",
            env={"ROUTING": "shadow", "MODEL_LABELS": labels},
            switched_on=True,
        ),
        # Every load sends this key (benchmarks.drivers); only this server checks it.
        Variant("API keys", env={"API_KEYS": API_KEY}, switched_on=True),
    ]


@dataclass
class Variant:
    """A server to start: its app, its environment beyond the shared one."""

    name: str
    app_spec: str = SERVICE_APP
    env: dict[str, str] = field(default_factory=dict)
    # False: the shipped server has the feature and this one has not; True: the reverse.
    switched_on: bool = False


@dataclass(frozen=True)
class Load:
    """One load: ab (``amount`` requests, one body) or wrk (``amount`` seconds, rotating
    bodies), single reviews or batches of 64, with or without keep-alive."""

    tool: str
    concurrency: int
    amount: float
    keepalive: bool = True
    body: str = "single"

    @property
    def label(self) -> str:
        connection = "keep-alive" if self.keepalive else "no keep-alive"
        bodies = "one body" if self.tool == "ab" else "rotating bodies"
        return f"{self.tool}, {bodies}, {connection}, c={self.concurrency}"


class Server(WebProcess):
    """A Gunicorn master started from the Procfile's command, with what Heroku's buildpack
    sets on a 512 MB dyno, once it answers a review."""

    def __init__(self, name: str, app_spec: str, env: dict[str, str], bin_dir: Path | None):
        super().__init__({"WEB_CONCURRENCY": "2", **env}, bin_dir=bin_dir, app_spec=app_spec)
        self.name = name
        self.served = 0  # requests answered so far (for the memory readings)
        try:
            self.boot_s = self.wait_ready(
                "/classify", 120, "POST", json=SINGLE, headers={"Authorization": AUTHORIZATION}
            )
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{name} ({app_spec}) did not start; run it by hand") from None

    @property
    def classify_url(self) -> str:
        return f"{self.url}/classify"


class Bench:
    """The run's servers, load files and scale."""

    def __init__(self, work: Path, quick: bool):
        self.quick = quick
        self.rounds = 1 if quick else 3
        # p99 at c=16 gets more rounds: SO_REUSEPORT hashes each kept-alive connection to
        # a worker once per run, and the busier worker sets the p99 (splits of 5:11 are
        # common), for the twin as for us; the median of 5 runs is less at its mercy.
        self.tail_rounds = 1 if quick else 5
        self.scale = 0.2 if quick else 1.0
        self.files = {"single": work / "single.json", "batch": work / "batch.json"}
        self.files["single"].write_text(json.dumps(SINGLE))
        self.files["batch"].write_text(json.dumps(BATCH))
        single = [json.dumps({"review": text}) for text in rotating_reviews()]
        batches = [json.dumps({"reviews": texts}) for texts in rotating_batches(64)]
        self.scripts = {
            ("single", True): wrk_script(single, work / "single.lua"),
            ("single", False): wrk_script(single, work / "single-close.lua", keepalive=False),
            ("batch", True): wrk_script(batches, work / "batch.lua"),
        }

    def amount(self, load: Load) -> float:
        if load.tool == "wrk":
            return 1.0 if self.quick else load.amount
        return max(200, int(load.amount * self.scale))

    def run(self, server: Server, load: Load) -> LoadResult:
        """One run of ``load`` against ``server``, with the server's CPU per request."""
        before = cpu_seconds(server.process.pid)
        try:
            if load.tool == "ab":
                file = self.files[load.body]
                count = int(self.amount(load))
                result = ab(server.classify_url, file, load.concurrency, count, load.keepalive)
            else:
                script = self.scripts[(load.body, load.keepalive)]
                seconds = self.amount(load)
                result = wrk(server.classify_url, script, load.concurrency, seconds, load.keepalive)
        except subprocess.CalledProcessError as error:
            # Which server, and the tool's own words (ab exited 104, "connection reset by
            # peer", once at 2026-12-06 12:41, and the traceback named neither).
            said = (error.stderr or error.stdout or "").strip().splitlines()[-3:]
            raise RuntimeError(
                f"{load.label} against {server.name}: {load.tool} exited {error.returncode}: "
                + " / ".join(said)
            ) from error
        spent = cpu_seconds(server.process.pid) - before
        result.cpu_us = spent / max(result.requests, 1) * 1e6
        server.served += result.requests
        return result

    def interleaved(self, servers: list[Server], load: Load) -> dict[str, LoadResult]:
        """``rounds`` runs per server, alternating servers, so that a slow spell of the
        shared machine hits every side of a ratio; the median of each server's runs."""
        runs: dict[str, list[LoadResult]] = {server.name: [] for server in servers}
        rounds = (
            self.tail_rounds if load.concurrency == 16 and load.body == "single" else self.rounds
        )
        for _ in range(rounds):
            for server in servers:
                runs[server.name].append(self.run(server, load))
        return {name: median_of(rows) for name, rows in runs.items()}

    def top_up(self, servers: list[Server], requests: int) -> None:
        """Bring every server to about ``requests`` (scaled) answered, or to the most any
        of them has answered: memory is compared at equal counts."""
        target = max(requests * self.scale, *(server.served for server in servers))
        for server in servers:
            missing = (target - server.served) / self.scale
            if missing > 0:
                self.run(server, Load("ab", 16, missing))


# What every server of the comparison gets, in this order (ab's counts, wrk's seconds).
SWEEP = [Load("ab", 1, 2000), Load("ab", 16, 6000), Load("ab", 32, 8000), Load("ab", 64, 8000)]
TAIL = [
    Load("ab", 16, 4000, keepalive=False),
    Load("wrk", 16, 3),
    Load("wrk", 16, 3, keepalive=False),
    Load("wrk", 32, 3),
]
BATCHES = [Load("ab", 16, 600, body="batch"), Load("wrk", 16, 3, body="batch")]
BATCH_SWEEP = [Load("ab", 1, 600, body="batch"), Load("ab", 64, 600, body="batch")]
FEATURE_LOADS = [Load("ab", 32, 8000), Load("wrk", 32, 3)]


def pinned(names: tuple[str, ...]) -> tuple[str, ...]:
    """``name==version`` for each of ``names``, as requirements-dev.txt pins them."""
    lines = (PROJECT_ROOT / "requirements-dev.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if "==" in line and "#" not in line)
    return tuple(f"{name}=={pins[name].strip()}" for name in names)


def model_versions(work: Path) -> tuple[dict[str, str], str, str]:
    """Settings that load two versions of the n-gram family, the stable version's number,
    and where they come from: model/sentiment's versions 1 and 2 when both exist, else
    version 1 and a copy of it as version 2 in a temporary base folder. The copy's
    archive gets one extra member, so that it is a different file (the OpenVINO export
    is keyed by the file's hash) and its weights are not shared with version 1's.

    Labels are set explicitly (stable only: labels.json's choice when it is one of the
    two, else version 2), so that a label for another version (a canary on version 3,
    the transformer, which has targets of its own) cannot stop the servers."""
    if (MODEL_BASE / "2").is_dir():
        base = MODEL_BASE
        source = "model/sentiment versions 1 and 2"
    else:
        base = work / "models"
        shutil.copytree(MODEL_BASE / "1", base / "1")
        (base / "2").mkdir(parents=True)
        shutil.copy(MODEL_BASE / "1" / "preprocessing.json", base / "2")
        metadata = json.loads((MODEL_BASE / "1" / "metadata.json").read_text())
        (base / "2" / "metadata.json").write_text(json.dumps({**metadata, "version": "2"}))
        with (
            zipfile.ZipFile(MODEL_BASE / "1" / "model.keras") as original,
            zipfile.ZipFile(base / "2" / "model.keras", "w") as copy,
        ):
            for member in original.infolist():
                copy.writestr(member, original.read(member))
            copy.writestr("bench-copy.txt", "version 1, copied as version 2 by make bench\n")
        source = "model/sentiment/1 and a copy of it as version 2 (model/sentiment/2 absent)"
    stable = VersionSelection(MODEL_BASE).label_map().get("stable")
    stable = stable if stable in ("1", "2") else "2"
    env = {"MODEL_BASE_DIR": str(base), "MODEL_VERSIONS": "1,2", "MODEL_LABELS": f"stable={stable}"}
    return env, stable, source


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


def run(quick: bool) -> dict:
    """Every measurement of the report, in one run."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    bench = Bench(work, quick)
    models, stable, source = model_versions(work)
    results: dict = {
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "rounds": f"{bench.rounds} (p99 at c=16: {bench.tail_rounds})",
        "models": source,
        "stable": stable,
        "texts": len(rotating_reviews()),
    }

    print("in-process pipeline ...", flush=True)
    results["in_process"] = in_process_rows_per_s(models)

    # The service and its no-op baseline run from what Heroku installs (requirements.txt
    # alone), the twin from that plus its own packages; the tutorial and TensorFlow runs
    # need TensorFlow, from the dev environment.
    print("serving environments (requirements.txt only; + the twin's packages) ...", flush=True)
    serving_env = build_environment(fresh=False)
    serving_bin = serving_env / "bin"
    twin_bin = build_environment(False, pinned(TWIN_PACKAGES), "venv-twin") / "bin"
    print("bin/post_compile and the slug estimate ...", flush=True)
    post_compile(serving_env)  # the build's exports, as a deploy makes them
    results["slug_mb"] = slug_size_mb(serving_env, slug_files() + prebuilt_files())

    variants = feature_variants(stable)
    print("starting the servers ...", flush=True)
    started: list[Server] = []
    try:
        for name, app_spec, env, bin_dir in [
            ("service", SERVICE_APP, models, serving_bin),
            ("twin", TWIN_APP, {**models, **TWIN_ENV}, twin_bin),
            ("noop", NOOP_APP, models, serving_bin),
            *[(v.name, v.app_spec, {**models, **v.env}, serving_bin) for v in variants],
        ]:
            started.append(Server(name, app_spec, env, bin_dir))
        service, twin, noop, *features = started
        one_version = next(
            server
            for server, variant in zip(features, variants, strict=True)
            if "MODEL_VERSIONS" in variant.env
        )
        results["boot_s"], results["boot_one_s"] = service.boot_s, one_version.boot_s
        compared = [service, twin, noop]
        for server in started:  # warm-up
            bench.run(server, Load("ab", 16, 2000))
            bench.run(server, Load("wrk", 16, 1))
        sweep, tail, batches = {}, {}, {}
        for table, loads in ((sweep, SWEEP), (tail, TAIL)):
            for load in loads:
                print(f"  {load.label} ...", flush=True)
                table[load] = bench.interleaved(
                    started if load in FEATURE_LOADS else compared, load
                )
        for load in BATCHES:
            print(f"  batches of 64: {load.label} ...", flush=True)
            batches[load] = bench.interleaved([service, twin], load)
        for load in BATCH_SWEEP:
            batches[load] = bench.interleaved([service], load)

        bench.top_up([service, one_version, twin], 26_000)
        results["memory"] = {
            server.name: (server.memory_mb(), server.served) for server in (service, one_version)
        }
        results["memory_twin"] = (twin.memory_mb(), twin.served)
        if not quick:
            bench.top_up([service], 100_000)
            results["memory_100k"] = (service.memory_mb(), service.served)
    finally:
        for server in started:
            server.stop()
    results["sweep"], results["tail"], results["batches"] = sweep, tail, batches
    results["features"] = [(variant.name, variant.switched_on) for variant in variants]
    results["one_version"] = one_version.name

    if not quick:
        print("tutorial baseline (TensorFlow, model.predict per request) ...", flush=True)
        tutorial = Server("tutorial", TUTORIAL_APP, {"KERAS_BACKEND": "tensorflow"}, None)
        try:
            bench.run(tutorial, Load("ab", 32, 64))
            results["tutorial"] = bench.run(tutorial, Load("ab", 32, 1000))
        finally:
            tutorial.stop()
        print("service on the TensorFlow backend ...", flush=True)
        tf_env = {**models, "KERAS_BACKEND": "tensorflow"}
        tf_service = Server("tensorflow", SERVICE_APP, tf_env, None)
        try:
            results["tf_boot_s"] = tf_service.boot_s
            bench.run(tf_service, Load("ab", 16, 2000))
            results["tf"] = bench.interleaved([tf_service], Load("ab", 32, 6000))["tensorflow"]
            results["tf_memory_mb"] = tf_service.memory_mb()
        finally:
            tf_service.stop()
    shutil.rmtree(work)
    return results


# --- The report ---------------------------------------------------------------------


def versions() -> str:
    names = [
        "keras", "openvino", "tensorflow-cpu", "numpy", "flask", "gunicorn",
        "fastapi", "uvicorn", "uvicorn-worker", "uvloop", "httptools",
    ]  # fmt: skip
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    for command, pattern in ((["ab", "-V"], r"Version (\S+)"), (["wrk", "-v"], r"wrk (\S+)")):
        with contextlib.suppress(OSError):
            output = subprocess.run(command, capture_output=True, text=True).stdout
            match = re.search(pattern, output)
            found.append(f"{command[0]} {match.group(1) if match else '?'}")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    memory = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} vCPU ({model.group(1) if model else platform.machine()}), "
        f"{int(memory.group(1)) / 1024**2:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}; load generators on the same cores as the servers; "
        f"load average {load:.1f} at the end"
    )


def single(r: dict, load: Load, server: str) -> LoadResult:
    table = r["sweep"] if load in r["sweep"] else r["tail"]
    return table[load][server]


AB32, WRK32 = Load("ab", 32, 8000), Load("wrk", 32, 3)
AB16, WRK16 = Load("ab", 16, 6000), Load("wrk", 16, 3)
AB16_CLOSE, WRK16_CLOSE = Load("ab", 16, 4000, False), Load("wrk", 16, 3, False)


def ratio_cell(r: dict, loads: list[Load], other: str) -> tuple[str, list[float]]:
    parts, ratios = [], []
    for load in loads:
        ours, theirs = single(r, load, "service"), single(r, load, other)
        ratio = ours.rps / theirs.rps
        ratios.append(ratio)
        bodies = "rotating" if load.tool == "wrk" else "one body"
        parts.append(
            f"{load.tool} ({bodies}): {ours.rps:,.0f} vs {theirs.rps:,.0f} = **{ratio:.2f}×**"
        )
    return "; ".join(parts), ratios


def p99_cell(r: dict, loads: list[Load]) -> tuple[str, list[tuple[float, float]]]:
    parts, pairs = [], []
    for load in loads:
        ours, theirs = single(r, load, "service"), single(r, load, "twin")
        pairs.append((ours.p99_ms, theirs.p99_ms))
        parts.append(f"{load.tool}: **{ours.p99_ms:.1f}** vs {theirs.p99_ms:.1f} ms")
    return "; ".join(parts), pairs


def batch_rows(r: dict) -> dict[Load, LoadResult]:
    return {load: r["batches"][load]["service"] for load in BATCHES}


def feature_costs(r: dict) -> list[tuple[str, float, float]]:
    """(feature, switched on in its own server, µs of server CPU per request, req/s
    change) from the wrk c=32 runs: always the server with the feature against the one
    without it."""
    shipped = r["tail"][WRK32]["service"]
    rows = []
    for name, switched_on in r["features"]:
        other = r["tail"][WRK32][name]
        on, off = (other, shipped) if switched_on else (shipped, other)
        rows.append((name, switched_on, on.cpu_us - off.cpu_us, on.rps / off.rps - 1))
    return rows


def targets(r: dict) -> list[tuple[str, str, str, bool]]:
    """(target, measured, required, met) for targets 1–6 of issue 22."""
    vs_twin, twin_ratios = ratio_cell(r, [WRK32, AB32], "twin")
    vs_noop, noop_ratios = ratio_cell(r, [WRK32, AB32], "noop")
    keep, keep_pairs = p99_cell(r, [WRK16, AB16])
    close, close_pairs = p99_cell(r, [WRK16_CLOSE, AB16_CLOSE])
    in_process = r["in_process"]["batches"]["64"]["rows_per_s"]
    batch_parts, batch_ratios = [], []
    for load, row in batch_rows(r).items():
        rows_s = row.rps * 64
        batch_ratios.append(rows_s / in_process)
        bodies = "rotating" if load.tool == "wrk" else "one body"
        batch_parts.append(
            f"{load.tool} ({bodies}): {rows_s:,.0f} = **{rows_s / in_process:.2f}×**"
        )
    two, _ = r["memory"]["service"]
    one, _ = r["memory"][r["one_version"]]
    costs = ", ".join(
        f"{name}: {cpu:+.0f} µs ({change:+.0%} req/s)" for name, _, cpu, change in feature_costs(r)
    )
    return [
        (
            "1a. single review, c=32, keep-alive, vs the FastAPI twin",
            vs_twin,
            "≥ 1.25× (both tools)",
            min(twin_ratios) >= 1.25,
        ),
        (
            "1b. the same, vs the no-op Flask app (same Gunicorn config)",
            vs_noop,
            "≥ 0.6× (both tools)",
            min(noop_ratios) >= 0.6,
        ),
        (
            "2a. p99, single review, c=16, keep-alive: ours vs the twin's",
            keep,
            "≤ the twin's and ≤ 10 ms",
            all(ours <= theirs and ours <= 10 for ours, theirs in keep_pairs),
        ),
        (
            "2b. p99, c=16, a new connection per request (wrk: `Connection: close`; ab: no -k)",
            close,
            "≤ the twin's",
            all(ours <= theirs for ours, theirs in close_pairs),
        ),
        (
            f"3. batches of 64 (c=16), rows/s vs the in-process pipeline ({in_process:,.0f})",
            "; ".join(batch_parts),
            "≥ 0.9× (both tools)",
            min(batch_ratios) >= 0.9,
        ),
        (
            f"4a. memory, one version, after {r['memory'][r['one_version']][1]:,} requests",
            f"**{one:.0f} MB**",
            "≤ 350 MB",
            one <= 350,
        ),
        (
            f"4b. memory, two versions, after {r['memory']['service'][1]:,} requests",
            f"**{two:.0f} MB**",
            "≤ 420 MB",
            two <= 420,
        ),
        (
            "4c. boot: start → first 200 from /classify (two versions)",
            f"**{r['boot_s']:.1f} s** (one version: {r['boot_one_s']:.1f} s)",
            "≤ 5 s",
            r["boot_s"] <= 5,
        ),
        (
            "4d. slug estimate (`deploy/heroku_check.py`)",
            f"**{r['slug_mb']:.0f} MB**",
            "≤ 200 MB",
            r["slug_mb"] <= 200,
        ),
        (
            "5. every figure with the features on; each one's cost, on vs off in this run",
            f"server CPU per request (wrk, c=32): {costs}",
            "stated",
            True,
        ),
        (
            "6. rotating review texts",
            f"wrk: {r['texts']} different texts in rotation (batches: 30 orders); ab: one body",
            "both reported",
            True,
        ),
    ]


def result_rows(named: list[tuple[str, LoadResult]], per_request: int = 1) -> list[str]:
    unit, cpu = ("rows/s", "CPU µs/row") if per_request > 1 else ("req/s", "CPU µs/req")
    lines = [
        f"| server | load | requests | {unit} | p50 ms | p99 ms | {cpu} | failed | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in named:
        bodies = "one body" if row.tool == "ab" else "rotating"
        connection = "keep-alive" if row.keepalive else "new connections"
        lines.append(
            f"| {name} | {row.tool}, {bodies}, {connection}, c={row.concurrency} | "
            f"{row.requests:,} | {row.rps * per_request:,.0f} | {row.p50_ms:.1f} | "
            f"{row.p99_ms:.1f} | {row.cpu_us / per_request:,.0f} | {row.failed} | {row.non_2xx} |"
        )
    return lines


NAMES = {"service": "**service**", "twin": "FastAPI twin", "noop": "no-op Flask"}


def report(r: dict, command: str) -> str:
    markdown, picture = outputs(r["quick"])
    picture = Path(os.path.relpath(picture, markdown.parent)).as_posix()
    checks = targets(r)
    inproc = r["in_process"]["batches"]
    shipped32 = r["tail"][WRK32]["service"]
    feature_lines = [
        "| server | req/s (wrk, c=32) | CPU µs/req | cost of the feature, µs/req | "
        "req/s (ab, c=32) | CPU µs/req (ab) |",
        "|---|---|---|---|---|---|",
        f"| service as shipped (all on) | {shipped32.rps:,.0f} | {shipped32.cpu_us:.0f} | | "
        f"{r['sweep'][AB32]['service'].rps:,.0f} | {r['sweep'][AB32]['service'].cpu_us:.0f} |",
    ]
    for name, switched_on, cost, _ in feature_costs(r):
        wrk_row, ab_row = r["tail"][WRK32][name], r["sweep"][AB32][name]
        which = "with" if switched_on else "without"
        feature_lines.append(
            f"| {which} the {name} | {wrk_row.rps:,.0f} | {wrk_row.cpu_us:.0f} | "
            f"**{cost:+.0f}** | {ab_row.rps:,.0f} | {ab_row.cpu_us:.0f} |"
        )
    side = [
        (NAMES[name], table[load][name])
        for table, loads in ((r["sweep"], SWEEP), (r["tail"], TAIL))
        for load in loads
        for name in ("service", "twin", "noop")
    ]
    batch = [
        (NAMES[name], rows[name])
        for rows in r["batches"].values()
        for name in ("service", "twin")
        if name in rows
    ]
    memory = [
        "| server | memory | after requests | boot |",
        "|---|---|---|---|",
        f"| service, two versions | {r['memory']['service'][0]:.0f} MB | "
        f"{r['memory']['service'][1]:,} | {r['boot_s']:.1f} s |",
        f"| service, one version | {r['memory'][r['one_version']][0]:.0f} MB | "
        f"{r['memory'][r['one_version']][1]:,} | {r['boot_one_s']:.1f} s |",
        f"| FastAPI twin, one version | {r['memory_twin'][0]:.0f} MB | {r['memory_twin'][1]:,} | |",
    ]
    if "memory_100k" in r:
        growth = r["memory_100k"][0] / r["memory"]["service"][0] - 1
        memory.append(
            f"| service, two versions, later | {r['memory_100k'][0]:.0f} MB "
            f"({growth:+.1%}) | {r['memory_100k'][1]:,} | |"
        )
    baselines = []
    if "tf" in r:
        ours = r["sweep"][AB32]["service"]
        baselines = [
            "### Baselines and the other backend (ab, one body, keep-alive, c=32)",
            "",
            "| server | req/s | p99 ms | memory | boot |",
            "|---|---|---|---|---|",
            f"| service, OpenVINO backend (default) | {ours.rps:,.0f} | {ours.p99_ms:.1f} | "
            f"{r['memory']['service'][0]:.0f} MB | {r['boot_s']:.1f} s |",
            f"| service, TensorFlow backend | {r['tf'].rps:,.0f} | {r['tf'].p99_ms:.1f} | "
            f"{r['tf_memory_mb']:.0f} MB | {r['tf_boot_s']:.1f} s |",
            f"| tutorial: TensorFlow, `model.predict` per request | {r['tutorial'].rps:,.1f} | "
            f"{r['tutorial'].p99_ms:.0f} | | |",
            "",
            f"The service serves {ours.rps / r['tutorial'].rps:.0f}× the tutorial pattern "
            "(issue 4's target: ≥ 40×).",
            "",
        ]
    lines = [
        START,
        f"## Latest run: {r['started']}",
        "",
        f"- Command: `{command}`"
        + (
            " (a smoke run: one round, a fifth of the requests, 1 s wrk runs)" if r["quick"] else ""
        ),
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        "- Servers: the Procfile's command with the shipped `gunicorn.conf.py` "
        "(WEB_CONCURRENCY=2, as on a 512 MB dyno; logs at INFO to /dev/null). "
        f"Models: {r['models']}; stable = version {r['stable']}. The FastAPI twin "
        "(`benchmarks/twin.py`) serves the stable version with the same Predictor through "
        "Gunicorn + UvicornWorker (uvloop, httptools), same config file.",
        f"- Bodies: ab sends one review of {len(json.dumps(SINGLE))} bytes (batches: 64 "
        f"reviews); wrk sends {r['texts']} different reviews in rotation (batches: 30 "
        f"orders of the 64). Medians of {r['rounds']} alternating rounds; CPU is the server's "
        "(master + workers) per request. Memory: the physical pages the master and workers "
        "map, each counted once, as the dyno's memory counter charges them (`deploy.dyno."
        "memory_mb`; summed PSS read 60–80 MB lower with the run's other servers up).",
        "",
        "### Targets (issue 22)",
        "",
        "| target | measured (ours vs theirs) | required | met |",
        "|---|---|---|---|",
        *[
            f"| {name} | {value} | {need} | {'yes' if ok else '**no**'} |"
            for name, value, need, ok in checks
        ],
        "",
        "### What each feature costs (on vs off, same rounds)",
        "",
        *feature_lines,
        "",
        "### Single review: the service, the FastAPI twin and the no-op ceiling",
        "",
        *result_rows(side),
        "",
        "### Batches of 64 reviews",
        "",
        *result_rows(batch, per_request=64),
        "",
        "### Memory and boot",
        "",
        *memory,
        "",
        *baselines,
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
        f"![Throughput and p99 latency against concurrency]({picture})",
        END,
    ]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("service", "twin", "noop"):
        rows = [r["sweep"][load][name] for load in SWEEP]
        xs = [row.concurrency for row in rows]
        label = {"service": "service (Flask)", "twin": "FastAPI twin", "noop": "no-op Flask"}
        left.plot(xs, [row.rps for row in rows], marker="o", label=label[name])
        right.plot(xs, [row.p99_ms for row in rows], marker="o", label=label[name])
    left.set(xscale="log", xlabel="concurrency (ab -k -c)", ylabel="requests/s")
    left.set_title("Throughput, single review")
    right.set(xscale="log", yscale="log", xlabel="concurrency (ab -k -c)", ylabel="p99 ms")
    right.set_title("p99 latency")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"POST /classify, 2 Gunicorn workers each, {r['started']}")
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=110)


def write_report(text: str, path: Path) -> None:
    current = path.read_text() if path.exists() else f"{START}\n{END}\n"
    before, rest = current.split(START, 1)
    after = rest.split(END, 1)[1]
    path.parent.mkdir(exist_ok=True)
    path.write_text(before + text + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one round, a fifth of the requests (a smoke run)"
    )
    args = parser.parse_args()
    for tool, package in (("ab", "apache2-utils"), ("wrk", "wrk")):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install {package}")
    started = time.monotonic()
    results = run(args.quick)
    command = "make bench" + (" BENCH_ARGS=--quick" if args.quick else "")
    markdown, picture = outputs(args.quick)
    write_report(report(results, command), markdown)
    plot(results, picture)
    # A report, not a gate: the machines are too noisy for a pass/fail on absolute runs.
    print(f"done in {time.monotonic() - started:.0f} s; report in {markdown}")
    for name, value, need, ok in targets(results):
        print(f"  {'ok ' if ok else 'NO '} {name}: {value.replace('**', '')} (need {need})")


if __name__ == "__main__":
    main()
