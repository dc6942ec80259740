"""Spark ``local[2]`` against ``app.batch`` (1 and 2 inference threads) on the same CSV.

``.venv-spark/bin/python -m benchmarks.spark [--rows 1000000]`` (after ``make test-spark``
has built that environment). Each command runs once, one after the other, as a
subprocess; for each the script reports the command's own summary (rows/s over reading,
scoring and writing), the wall time including start-up, and, sampled from /proc every
0.2 s over the whole process tree (the JVM and Spark's Python workers included), the CPU
seconds (each process's last sample: up to 0.2 s of a process's last moments is missed)
and the peak of the summed RSS. It then checks the Spark output against ``app.batch``'s
(labels, probabilities) and prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.config import PROJECT_ROOT
from benchmarks.reviews import REVIEWS

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    name: str
    command: str
    rows_per_second: float
    job_seconds: float
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mb: float


def sample_tree(root: int, cpu: dict[int, float]) -> int:
    """Summed RSS in bytes of ``root`` and every descendant; records each one's CPU seconds."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm") as file:
                total += int(file.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as file:
                    pending.extend(int(child) for child in file.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def measure(name: str, command: list[str]) -> Run:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, sample_tree(process.pid, cpu))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"{name} failed ({process.returncode}):\n{stderr[-3000:]}")
    match = re.search(r"Scored \d+ rows .* in ([\d.]+) s: ([\d,]+) rows/s", stdout + stderr)
    if not match:
        sys.exit(f"{name}: no summary line:\n{stderr[-3000:]}")
    shown = " ".join(part.replace(str(PROJECT_ROOT) + "/", "") for part in command[1:])
    return Run(
        name,
        f"python {shown}",
        float(match[2].replace(",", "")),
        float(match[1]),
        wall,
        sum(cpu.values()),
        peak / 1e6,
    )


def write_input(path: Path, rows: int) -> None:
    rng = random.Random(1)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, f"{rng.choice(REVIEWS)} #{i}" if i % 10_000 else ""])


def compare(batch_csv: Path, spark_parquet: Path) -> tuple[int, float, int]:
    """Label mismatches, the largest probability difference, and rows compared."""
    import pyarrow.parquet as pq

    table = pq.read_table(spark_parquet).to_pydict()
    columns = [name for name in table if name.startswith("p_")]
    spark = {
        int(table["id"][i]): (table["label"][i], [table[c][i] for c in columns])
        for i in range(len(table["id"]))
    }
    mismatches, largest = 0, 0.0
    with batch_csv.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            label, probabilities = spark[int(row["id"])]
            if (row["label"] or None) != label:
                mismatches += 1
            if row["label"]:
                pairs = zip(columns, probabilities, strict=True)
                largest = max(largest, *(abs(float(row[c]) - p) for c, p in pairs))
    return mismatches, largest, len(spark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        source = work / "reviews.csv"
        write_input(source, args.rows)
        print(f"input: {args.rows:,} rows, {source.stat().st_size / 1e6:.0f} MB", flush=True)
        load_before = os.getloadavg()
        batch = [python, "-m", "app.batch", str(source)]
        runs = [
            measure("app.batch, 1 thread", [*batch, str(work / "b1.csv"), "--quiet"]),
            measure(
                "app.batch, 2 threads",
                [*batch, str(work / "b2.csv"), "--quiet", "--threads", "2"],
            ),
            measure(
                "app.spark, local[2]",
                [
                    python,
                    "-m",
                    "app.spark",
                    str(source),
                    str(work / "s.parquet"),
                    "--master",
                    "local[2]",
                ],
            ),
        ]
        load_after = os.getloadavg()
        mismatches, largest, compared = compare(work / "b1.csv", work / "s.parquet")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = runs[0]
    now = dt.datetime.now(dt.UTC)
    print(f"\n{now:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}\n")
    print("| run | rows/s (job) | vs 1 thread | wall s (with start-up) | CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run.name} | {run.rows_per_second:,.0f} | "
            f"{run.rows_per_second / base.rows_per_second:.2f}× | {run.wall_seconds:.1f} | "
            f"{run.cpu_seconds:.1f} | {run.peak_rss_mb:,.0f} |"
        )
    print(
        f"\nSpark vs app.batch on {compared:,} rows: {mismatches} label mismatches, "
        f"largest probability difference {largest:.1e}"
    )
    for run in runs:
        print(f"- {run.name}: `{run.command}`")


if __name__ == "__main__":
    main()
