"""`make bench`'s second part: versions 3 and 4 (the transformers) against version 2
(n-grams), and dynamic batching on and off. Writes its own section of BENCHMARKS.md
(with ``--quick``, of reports/BENCHMARKS-quick.md: a smoke run never replaces the record).

In process (one thread, as a worker runs it): the median time of one call on a 16-token
text at batch 1, and per text at batch 16, of each transformer at each precision the IR
can be compiled with. Through HTTP (the Procfile's command, requirements.txt alone, two
workers): version 2 alone, version 3 alone, version 3 with dynamic batching (8 threads a
worker, requests on threads rather than the event loop, batches of up to 16, 2 ms wait),
version 3 compiled in bf16 (``INFERENCE_PRECISION=bf16``) and bf16 with dynamic batching,
version 3 in int8 (its IR with 8-bit weights),
version 4 alone in f32, in bf16 and in int8 (its int8 IR), single reviews in rotation
(wrk) at c=16 and c=32, rounds alternating between the servers; boot time and memory
of each, and of every version (with two workers and with one) and of each transformer
beside version 2 (each in int8 too, and every version in int8), after batches of every
size and length to the transformers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from app.config import MODEL_BASE, PROJECT_ROOT
from app.serving.predictor import ships_int8
from benchmarks.bench import Bench, Load, Server, machine, outputs
from benchmarks.drivers import wrk, wrk_script
from benchmarks.reviews import rotating_reviews
from deploy.dyno import build_environment

START, END = "<!-- bench-v3:start -->", "<!-- bench-v3:end -->"
LOADS = [Load("wrk", 16, 5), Load("wrk", 32, 5)]
LONG_BATCHES = ", then batches of every size and length to the transformers"
# The last servers started, measured for memory only: their settings, and the transformers
# they load (traffic goes to those and to version 2).
MEMORY_ONLY = {
    "every version": ({"MODEL_VERSIONS": "all", "MODEL_LABELS": "stable=2"}, ("3", "4")),
    "every version, one worker": (
        {"MODEL_VERSIONS": "all", "MODEL_LABELS": "stable=2", "WEB_CONCURRENCY": "1"},
        ("3", "4"),
    ),
    "every version, int8": (
        {"MODEL_VERSIONS": "all", "MODEL_LABELS": "stable=2", "INFERENCE_PRECISION": "int8"},
        ("3", "4"),
    ),
    "versions 2 and 3": ({"MODEL_VERSIONS": "2,3", "MODEL_LABELS": "stable=2"}, ("3",)),
    "versions 2 and 3, int8": (
        {"MODEL_VERSIONS": "2,3", "MODEL_LABELS": "stable=2", "INFERENCE_PRECISION": "int8"},
        ("3",),
    ),
    "versions 2 and 4": ({"MODEL_VERSIONS": "2,4", "MODEL_LABELS": "stable=2"}, ("4",)),
    "versions 2 and 4, int8": (
        {"MODEL_VERSIONS": "2,4", "MODEL_LABELS": "stable=2", "INFERENCE_PRECISION": "int8"},
        ("4",),
    ),
}
BATCHING_ENV = {
    "DYNAMIC_BATCH_MAX_SIZE": "16",
    "DYNAMIC_BATCH_TIMEOUT_MS": "2",
    "INLINE_MAX_BYTES": "0",
    "GUNICORN_CMD_ARGS": "--threads 8",
}

_IN_PROCESS = """
import json, statistics, sys, time
import numpy as np
from app.serving.predictor import Predictor
predictor = Predictor.load(sys.argv[1], "openvino", 1)
encoder, infer = predictor.bundle.encoder, predictor._infer
# 16 ids: [CLS], 14 word pieces, [SEP].
text = "the room was clean and the staff were friendly but the breakfast was cold"
ids = encoder.encode_batch([text])
assert ids.shape == (1, 16) and (ids != 0).all(), ids
def median_ms(batch, repeat):
    for _ in range(5):
        infer(batch)
    times = []
    for _ in range(repeat):
        started = time.perf_counter(); infer(batch); times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000
print(json.dumps({
    "batch1_ms": median_ms(ids, 300),
    "batch16_ms_per_text": median_ms(np.repeat(ids, 16, axis=0), 60) / 16,
}))
"""


TRANSFORMERS = ("3", "4")


def precisions(version: str) -> tuple[str, ...]:
    """What ``version``'s folder can be compiled at: int8 where it ships an int8 IR."""
    return ("f32", "bf16", "int8") if ships_int8(MODEL_BASE / version) else ("f32", "bf16")


def in_process(version: str, precision: str, python: Path, work: Path) -> dict[str, float]:
    """``version`` compiled at ``precision`` (a copy of its folder saying so)."""
    shipped = MODEL_BASE / version
    folder = work / f"v{version}-{precision}"
    folder.mkdir()
    for path in shipped.iterdir():
        if path.name != "metadata.json":
            (folder / path.name).symlink_to(path)
    metadata = json.loads((shipped / "metadata.json").read_text())
    metadata["serving"] = {**metadata.get("serving", {}), "inference_precision": precision}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    output = subprocess.run(
        [python, "-c", _IN_PROCESS, str(folder)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-v3-"))
    bench = Bench(work, quick)
    results: dict = {"started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    serving_bin = build_environment(fresh=False) / "bin"
    print("versions 3 and 4 in process ...", flush=True)
    results["in_process"] = {
        f"version {version}, {precision}": in_process(
            version, precision, serving_bin / "python", work
        )
        for version in TRANSFORMERS
        for precision in precisions(version)
    }
    servers: list[Server] = []
    try:
        for name, env in (
            ("version 2", {"MODEL_VERSIONS": "2", "MODEL_LABELS": "stable=2"}),
            ("version 3", {"MODEL_VERSIONS": "3", "MODEL_LABELS": "stable=3"}),
            (
                "version 3, dynamic batching",
                {"MODEL_VERSIONS": "3", "MODEL_LABELS": "stable=3", **BATCHING_ENV},
            ),
            (
                "version 3, bf16",
                {"MODEL_VERSIONS": "3", "MODEL_LABELS": "stable=3", "INFERENCE_PRECISION": "bf16"},
            ),
            (
                "version 3, int8",
                {"MODEL_VERSIONS": "3", "MODEL_LABELS": "stable=3", "INFERENCE_PRECISION": "int8"},
            ),
            (
                "version 3, bf16, dynamic batching",
                {
                    "MODEL_VERSIONS": "3",
                    "MODEL_LABELS": "stable=3",
                    "INFERENCE_PRECISION": "bf16",
                    **BATCHING_ENV,
                },
            ),
            *(
                (
                    f"version 4, {precision}",
                    {
                        "MODEL_VERSIONS": "4",
                        "MODEL_LABELS": "stable=4",
                        "INFERENCE_PRECISION": precision,
                    },
                )
                for precision in precisions("4")
            ),
            # For memory only (MEMORY_ONLY): every version, and each transformer beside
            # version 2, as the README suggests loading them.
            *((name, env) for name, (env, _) in MEMORY_ONLY.items()),
        ):
            print(f"starting {name} ...", flush=True)
            servers.append(Server(name, "app:create_app()", env, serving_bin))
        compared, loaded = servers[: -len(MEMORY_ONLY)], servers[-len(MEMORY_ONLY) :]
        for server in compared:
            bench.run(server, Load("wrk", 16, 1))
        results["boot_s"] = {server.name: server.boot_s for server in servers}
        results["loads"] = {}
        for load in LOADS:
            print(f"  {load.label} ...", flush=True)
            results["loads"][load.label] = bench.interleaved(compared, load)
        # Memory after traffic: single reviews to version 2 (stable) and to each loaded
        # transformer, each as long as one round of the others.
        load = Load("wrk", 16, 5)
        script = bench.scripts[("single", True)]
        results["memory_load"] = {}
        for server in loaded:
            results["memory_load"][server.name] = bench.run(server, load)
            for version in MEMORY_ONLY[server.name][1]:
                url = f"{server.url}/classify?version={version}"
                wrk(url, script, 16, bench.amount(load), True)
        results["memory_mb"] = {server.name: server.memory_mb() for server in servers}
        # The worst case for memory: the transformer's widest calls (batches of the 64
        # longest texts: 512 word pieces a call) and its most shapes (batches of 1-64
        # texts of every length: oneDNN keeps kernels for each shape), at c=4.
        reviews = rotating_reviews()
        longest = sorted(reviews, key=len)[-64:]
        batches = [json.dumps({"reviews": longest[i:] + longest[:i]}) for i in range(0, 64, 8)]
        rng = random.Random(0)
        for size in range(1, 65):
            batches.append(json.dumps({"reviews": rng.sample(reviews, size)}))
        long_script = wrk_script(batches, work / "long.lua")
        for server in loaded:
            for version in MEMORY_ONLY[server.name][1]:
                url = f"{server.url}/classify?version={version}"
                wrk(url, long_script, 4, 2 * bench.amount(load), True)
            results["memory_mb"][f"{server.name}{LONG_BATCHES}"] = server.memory_mb()
    finally:
        for server in servers:
            server.stop()
    shutil.rmtree(work)
    return results


def report(r: dict, command: str) -> str:
    lines = [
        START,
        "## Versions 3 and 4 (the transformers) against version 2, and dynamic batching",
        "",
        f"`{command}` (its second part, `benchmarks/transformer.py`), {r['started']}, "
        f"{machine()}. Servers: the Procfile's command from requirements.txt alone, two "
        "workers; memory as the first part counts it (each physical page once). Dynamic "
        "batching: " + ", ".join(f"`{key}={value}`" for key, value in BATCHING_ENV.items()) + ".",
        "",
        "In process, one thread, the model call alone (median):",
        "",
        "| version, precision | 16 tokens, batch 1 | per text, batch 16 |",
        "|---|---|---|",
    ]
    for name, row in r["in_process"].items():
        lines.append(
            f"| {name} | {row['batch1_ms']:.2f} ms | {row['batch16_ms_per_text']:.2f} ms |"
        )
    lines += [
        "",
        "Through HTTP, single reviews in rotation (wrk, keep-alive), medians of the rounds:",
        "",
        "| load | server | req/s | vs version 2 | p50 | p99 | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, rows in r["loads"].items():
        base = rows["version 2"].rps
        for name, row in rows.items():
            lines.append(
                f"| {label} | {name} | {row.rps:.0f} | {row.rps / base:.2f}× | "
                f"{row.p50_ms:.1f} ms | {row.p99_ms:.1f} ms | {row.failed + row.non_2xx} |"
            )
    lines += [
        "",
        "Boot and memory; the servers below the first table's also answered version 2's "
        "single reviews (wrk, c=16, one round) before their memory was read:",
        "",
        "| server | boot (to the first answer) | memory, master and workers | version 2, c=16 |",
        "|---|---|---|---|",
    ]
    for name, boot in r["boot_s"].items():
        row = r["memory_load"].get(name)
        served = f"{row.rps:.0f} req/s, p99 {row.p99_ms:.1f} ms" if row else "–"
        lines.append(f"| {name} | {boot:.1f} s | {r['memory_mb'][name]:.0f} MB | {served} |")
    for name in MEMORY_ONLY:
        memory = r["memory_mb"][name + LONG_BATCHES]
        lines.append(f"| {name}{LONG_BATCHES} | – | {memory:.0f} MB | – |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_report(text: str, path: Path) -> None:
    current = path.read_text() if path.exists() else ""
    if START not in current:
        current += f"\n{START}\n{END}\n"
    before, rest = current.split(START, 1)
    path.parent.mkdir(exist_ok=True)
    path.write_text(before + text + rest.split(END, 1)[1].lstrip("\n"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, short loads")
    args = parser.parse_args()
    started = time.monotonic()
    results = run(args.quick)
    command = "make bench" + (" BENCH_ARGS=--quick" if args.quick else "")
    markdown = outputs(args.quick)[0]
    write_report(report(results, command), markdown)
    print(f"done in {time.monotonic() - started:.0f} s; report in {markdown}")
    for name, row in results["in_process"].items():
        print(f"  16 tokens, batch 1, {name}: {row['batch1_ms']:.2f} ms (target 2 ms)")
    for label, rows in results["loads"].items():
        for name in [name for name in rows if name != "version 2" and "batching" not in name]:
            ratio = rows[name].rps / rows["version 2"].rps
            print(f"  {label}: {name} / version 2 {ratio:.2f}, p99 {rows[name].p99_ms:.1f} ms")
    for name in ("version 3", "version 4, f32"):
        print(f"  boot, {name}: {results['boot_s'][name]:.1f} s (target 10 s)")
    for name in MEMORY_ONLY:
        memory = results["memory_mb"][name + LONG_BATCHES]
        print(f"  {name}{LONG_BATCHES}: {memory:.0f} MB (dyno 512 MB)")


if __name__ == "__main__":
    main()
