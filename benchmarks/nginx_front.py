"""Issue 17's last gap, measured: nginx inside the dyno in front of the server (Heroku's
pattern for servers that need a proxy), retrying a request whose worker was killed.

``python -m benchmarks.nginx_front [--rounds N]`` (needs Debian's nginx; not part of
``make bench`` or CI) starts the Procfile's server from the requirements.txt-only
environment, and nginx on another port passing every request to it over kept-alive
connections, with ``proxy_next_upstream error timeout non_idempotent`` (the server listed
three times, so that a request gets up to three tries). Then, direct against through nginx:

- throughput and p99: ``ab -k`` of one review at c=32 and c=16, rounds alternating;
- ``kill -9`` of a worker under ``ab -r -k -c 32 -n 8000`` (benchmarks.chaos_traffic.ab);
- Heroku's shutdown: SIGTERM to *every* process of the dyno at once, nginx's included
  ("This signal is sent to all processes in the dyno": Heroku's dyno documentation), with
  six clients sending; the requests sent before the signal that failed.

It prints one markdown table, kept in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import requests

from benchmarks import drivers
from benchmarks.chaos_traffic import REVIEW, ab, every_worker_ready
from deploy.dyno import WebProcess, build_environment, children, free_port

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    client_max_body_size 2m;
    client_body_buffer_size 1m;
    upstream app {{
        server 127.0.0.1:{upstream} max_fails=0;
        server 127.0.0.1:{upstream} max_fails=0;
        server 127.0.0.1:{upstream} max_fails=0;
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        keepalive_requests 100000;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout non_idempotent;
        }}
    }}
}}
"""


class Dyno:
    """The server, and with ``front`` nginx before it; ``url`` is where clients go."""

    def __init__(self, folder: Path, bin_dir: Path, front: bool):
        log = folder / f"server-{time.monotonic_ns()}.log"  # two dynos run at once
        self.web = WebProcess(log_path=log, bin_dir=bin_dir)
        self.web.wait_ready("/ready", timeout=90)
        every_worker_ready(self.web)
        self.nginx = None
        self.url = self.web.url
        if front:
            port = free_port()
            nginx_folder = Path(tempfile.mkdtemp(prefix="nginx-", dir=folder))
            conf = nginx_folder / "nginx.conf"
            text = NGINX_CONF.format(folder=nginx_folder, upstream=self.web.port, port=port)
            conf.write_text(text)
            self.nginx = subprocess.Popen(["nginx", "-c", str(conf)], start_new_session=True)
            self.url = f"http://127.0.0.1:{port}"
            every_worker_ready(SimpleNamespace(url=self.url))

    def pids(self) -> list[int]:
        """Every process of the dyno, as Heroku's SIGTERM reaches them."""
        roots = [self.web.process.pid] + ([self.nginx.pid] if self.nginx else [])
        return roots + [child for root in roots for child in children(root)]

    def close(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            self.nginx.wait(timeout=30)
        self.web.stop()


def heroku_shutdown(dyno: Dyno, clients: int = 6, seconds: float = 2) -> tuple[int, int]:
    """SIGTERM to every process at once under load: (requests sent before it, failed)."""
    outcomes: list[tuple[float, bool]] = []
    stop = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                ok = session.post(f"{dyno.url}/classify", json=REVIEW, timeout=10).ok
            except requests.RequestException:
                ok = False
                time.sleep(0.01)
            outcomes.append((sent, ok))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    signalled = time.monotonic()
    for pid in dyno.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    before = [ok for sent, ok in outcomes if sent < signalled - 0.002]
    return len(before), before.count(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    assert shutil.which("nginx") and shutil.which("ab"), "needs nginx and ab (Debian packages)"
    bin_dir = build_environment(fresh=False) / "bin"
    setups = {"direct": False, "nginx in front": True}
    rows: dict[str, dict[str, list]] = {name: {"kill": [], "term": []} for name in setups}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        body = folder / "one.json"
        body.write_text(json.dumps(REVIEW))
        # Throughput, rounds alternating between two dynos that both stay up.
        dynos = {name: Dyno(folder, bin_dir, front) for name, front in setups.items()}
        try:
            for _ in range(args.rounds):
                for name, dyno in dynos.items():
                    for c in (32, 16):
                        result = drivers.ab(f"{dyno.url}/classify", body, c, args.requests)
                        rows[name].setdefault(f"c{c}", []).append(result)
        finally:
            for dyno in dynos.values():
                dyno.close()
        # kill -9 and Heroku's shutdown, each on a fresh dyno.
        for name, front in setups.items():
            for _ in range(2):
                dyno = Dyno(folder, bin_dir, front)
                try:
                    target = SimpleNamespace(url=dyno.url, process=dyno.web.process)
                    killed = ab(target, folder, 8000, during=lambda w: os.kill(
                        children(w.process.pid)[0], signal.SIGKILL))  # fmt: skip
                    rows[name]["kill"].append(int(killed["failed"]))
                finally:
                    dyno.close()
                dyno = Dyno(folder, bin_dir, front)
                try:
                    rows[name]["term"].append(heroku_shutdown(dyno))
                finally:
                    dyno.close()

    def median(name: str, key: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in rows[name][key])

    base = {c: median("direct", f"c{c}", "rps") for c in (32, 16)}
    print("| setup | req/s, ab -k c=32 (ratio) | req/s, c=16 | p99 ms, c=16 | kill -9 of a worker "
          "(ab -r -k -c 32 -n 8000): failed | SIGTERM to every process: failed of those sent "
          "before |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in rows:
        rps32, rps16 = median(name, "c32", "rps"), median(name, "c16", "rps")
        print(
            f"| {name} | {rps32:,.0f} ({rps32 / base[32]:.2f}) | {rps16:,.0f} "
            f"({rps16 / base[16]:.2f}) | {median(name, 'c16', 'p99_ms'):.0f} | "
            + ", ".join(str(n) for n in rows[name]["kill"])
            + " | "
            + ", ".join(f"{failed} of {sent:,}" for sent, failed in rows[name]["term"])
            + " |"
        )


if __name__ == "__main__":
    main()
