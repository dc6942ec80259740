"""`make heroku-check`: rehearse what Heroku does with this repo, and check its limits.

1. Build a fresh virtual environment from requirements.txt alone, as the buildpack does.
2. Run bin/post_compile from it, as the buildpack does after installing: the OpenVINO
   exports of every model version go into the slug (.openvino/), and what a dyno never
   loads from OpenVINO's wheel (other devices' plugins, other formats' readers) goes.
3. Estimate the slug: a gzip tarball of that site-packages plus the repo files that
   .slugignore keeps and the exports (target ≤ 200 MB; Heroku warns above 300 MB,
   refuses above 500 MB).
4. Run the Procfile's web command exactly as written, from that environment only, with
   PORT, WEB_CONCURRENCY=2 (what the buildpack sets on a 512 MB dyno) and an empty
   temporary folder (a dyno boots on a fresh filesystem): /ready within 60 s (R10), a
   classification, memory (`deploy.dyno.memory_mb`) ≤ 350 MB with one model version and
   70 MB more per other version, after some traffic (prediction recording on, the
   default) and the largest requests the API takes (64 reviews of 5,000 characters, and
   the explanation of one, to both workers).
5. The logs are JSON lines and carry the router's X-Request-ID.
6. SIGTERM, as Heroku sends on restart: a clean exit (0) within the 30 s grace period.
7. The README's accuracy pick, versions 2 and 4 (in the folder's bf16 and in int8), after
   batches of every size and length to version 4 from several connections: memory within
   the 512 MB dyno. Each new shape of call grows a transformer's worker (oneDNN's kernels).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pathspec
import requests

from app.config import PROJECT_ROOT, Config
from app.serving.predictor import PREBUILT_DIR
from deploy.dyno import WORK, WebProcess, build_environment, wait_for_200

SLUG_LIMIT_MB, BIND_LIMIT_S, STOP_LIMIT_S = 200, 60, 30
# Memory on a 512 MB dyno: 350 MB with one model version, 70 MB more for each other
# version loaded (the versions issue's budget: 420 MB with two), prediction recording on.
# Measured 2026-12-03 with two versions: 412-450 MB while each worker imported Keras,
# 237 MB since OpenVINO workers serve the exported IR without it (app.serving.predictor).
MEMORY_ONE_VERSION_MB, MEMORY_PER_EXTRA_VERSION_MB = 350, 70
ROUTER_REQUEST_ID = "heroku-router-0a1b2c3d-4e5f-6789-abcd-ef0123456789"
DYNO_MB = 512


def slug_files() -> list[Path]:
    """The repo's tracked files that .slugignore does not drop."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    ignore = (PROJECT_ROOT / ".slugignore").read_text().splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(ignore)
    return [PROJECT_ROOT / name for name in tracked if not spec.match_file(name)]


def prebuilt_files() -> list[Path]:
    """The exports bin/post_compile wrote (they ship in the slug)."""
    return [path for path in PREBUILT_DIR.rglob("*") if path.is_file()]


def slug_size_mb(env_dir: Path, files: list[Path]) -> float:
    """Compressed size of site-packages plus the app's files, as a gzip tarball."""
    site_packages = next((env_dir / "lib").glob("python3*/site-packages"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(site_packages, arcname="site-packages")
        for path in files:
            tar.add(path, arcname=str(path.relative_to(PROJECT_ROOT)))
    return len(buffer.getvalue()) / 1e6


def post_compile(env_dir: Path) -> float:
    """Run ``bin/post_compile`` as the buildpack does (the slug's Python first on the
    PATH), from scratch; the seconds it took. It fails the check if it fails."""
    shutil.rmtree(PREBUILT_DIR, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(
        [str(PROJECT_ROOT / "bin" / "post_compile")],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"},
        check=True,
    )
    return time.monotonic() - started


def rehearse(env_dir: Path) -> dict:
    """Run the web process as a dyno would (an empty temporary folder: a dyno's
    filesystem starts fresh at every boot); return its measurements."""
    fresh_tmp = Path(tempfile.mkdtemp(prefix="dyno-tmp-"))
    try:
        return _rehearse(env_dir, fresh_tmp)
    finally:
        shutil.rmtree(fresh_tmp, ignore_errors=True)


def _rehearse(env_dir: Path, fresh_tmp: Path) -> dict:
    log_path = WORK / "web.log"
    # Only the slug's environment: its bin first on the PATH.
    web = WebProcess(
        {"WEB_CONCURRENCY": "2", "DYNO": "web.1", "TMPDIR": str(fresh_tmp)},
        log_path=log_path,
        bin_dir=env_dir / "bin",
    )
    base = web.url
    ready_s = wait_for_200(web.process, "GET", base + "/ready", BIND_LIMIT_S)
    results: dict = {"ready_s": ready_s}
    if ready_s is None:
        web.stop(timeout=5)
        results["log"] = log_path.read_text(errors="replace")
        return results

    response = requests.post(
        base + "/classify",
        json={"review": "The crew was lovely and we landed early!"},
        headers={"X-Request-ID": ROUTER_REQUEST_ID},
        timeout=10,
    )
    results["classify"] = (response.status_code, response.json().get("label"))
    results["versions"] = len(requests.get(base + "/ready", timeout=10).json()["versions"])
    with requests.Session() as session:
        for index in range(2000):
            session.post(base + "/classify", json={"review": f"review {index}: fine"}, timeout=10)
            if index % 10 == 0:
                session.post(base + "/classify", json={"reviews": ["good", "bad"] * 32})
    # On new connections, so that both workers answer some. Scored in one call, such a
    # batch's 2,000-odd rows of windows grew each worker by 240 MB for good
    # (predictor.CALL_ROWS).
    largest = largest_reviews()
    for _ in range(4):
        requests.post(base + "/classify", json={"reviews": largest}, timeout=60).raise_for_status()
        requests.post(base + "/explain", json={"review": largest[0]}, timeout=60).raise_for_status()
    results["memory_mb"] = web.memory_mb()

    stop_started = time.monotonic()
    results["exit_code"] = web.stop(STOP_LIMIT_S)
    stopped = results["exit_code"] is not None
    results["stop_s"] = time.monotonic() - stop_started if stopped else None

    lines = log_path.read_text(errors="replace").splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            results.setdefault("non_json", []).append(line)
    results["log_lines"] = len(lines)
    results["request_id_logged"] = any(
        entry.get("request_id") == ROUTER_REQUEST_ID and entry.get("path") == "/classify"
        for entry in parsed
    )
    return results


def largest_reviews() -> list[str]:
    """As many reviews as a request may hold, each as long as one may be, of varied words."""
    rng = random.Random(7)
    words = ("the", "staff", "room", "food", "was", "not", "very", "good", "bad", "and", "never")
    words += ("again", "lovely", "cold", "late", "quiet", "broken", "clean", "rude", "kind")
    return [
        " ".join(rng.choices(words, k=Config.MAX_TEXT_CHARS // 3))[: Config.MAX_TEXT_CHARS]
        for _ in range(Config.MAX_BATCH_SIZE)
    ]


def accuracy_pick_memory(env_dir: Path, precision: str) -> float | None:
    """Memory of the web process with versions 2 and 4 at ``precision`` after 240 batches
    of 1-64 random reviews of 1-120 words to version 4, eight connections at a time (so
    both workers answer); None if it never became ready."""
    env = {"WEB_CONCURRENCY": "2", "MODEL_VERSIONS": "2,4", "MODEL_LABELS": "stable=2"}
    web = WebProcess({**env, "INFERENCE_PRECISION": precision}, bin_dir=env_dir / "bin")
    try:
        if wait_for_200(web.process, "GET", web.url + "/ready", BIND_LIMIT_S) is None:
            return None
        words = ("the", "staff", "room", "food", "was", "not", "very", "good", "bad", "and")

        def send(seed: int) -> None:
            rng = random.Random(seed)
            with requests.Session() as session:
                for _ in range(30):
                    reviews = [
                        " ".join(rng.choices(words, k=rng.randint(1, 120)))
                        for _ in range(rng.randint(1, 64))
                    ]
                    answer = session.post(
                        web.url + "/classify?version=4", json={"reviews": reviews}
                    )
                    answer.raise_for_status()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(8)))
        return web.memory_mb()
    finally:
        web.stop()


def main() -> None:
    WORK.mkdir(exist_ok=True)
    print("1. building a fresh environment from requirements.txt ...", flush=True)
    env_dir = build_environment()
    print("2. bin/post_compile, as the buildpack runs it ...", flush=True)
    compile_s = post_compile(env_dir)
    print("3. estimating the slug ...", flush=True)
    slug_mb = slug_size_mb(env_dir, slug_files() + prebuilt_files())
    print("4. running the Procfile's web command, with an empty /tmp ...", flush=True)
    r = rehearse(env_dir)
    memory_limit_mb = MEMORY_ONE_VERSION_MB + MEMORY_PER_EXTRA_VERSION_MB * (
        r.get("versions", 1) - 1
    )
    print("5. versions 2 and 4, after batches of every shape to version 4 ...", flush=True)
    picks = {precision: accuracy_pick_memory(env_dir, precision) for precision in ("model", "int8")}

    checks = [
        (f"bin/post_compile in {compile_s:.1f} s", True, "exit 0"),
        (f"slug estimate {slug_mb:.0f} MB", slug_mb <= SLUG_LIMIT_MB, f"≤ {SLUG_LIMIT_MB} MB"),
        (
            f"/ready after {r['ready_s']:.1f} s" if r["ready_s"] else "/ready never answered",
            r["ready_s"] is not None,
            f"≤ {BIND_LIMIT_S} s (R10)",
        ),
    ]
    if r["ready_s"] is not None:
        checks += [
            (f"classification {r['classify']}", r["classify"][0] == 200, "200 with a label"),
            (
                f"memory {r['memory_mb']:.0f} MB with {r['versions']} model versions",
                r["memory_mb"] <= memory_limit_mb,
                f"≤ {memory_limit_mb} MB",
            ),
            (
                f"{r['log_lines']} log lines, {len(r.get('non_json', []))} not JSON",
                not r.get("non_json"),
                "all JSON",
            ),
            ("router's X-Request-ID in the request log", r["request_id_logged"], "present"),
            (
                f"SIGTERM: exit code {r['exit_code']} after {r['stop_s']:.1f} s"
                if r["stop_s"] is not None
                else "SIGTERM: still running",
                r["exit_code"] == 0,
                f"0 within {STOP_LIMIT_S} s",
            ),
        ]
    else:
        print(r["log"])
    for precision, memory in picks.items():
        checks.append(
            (
                f"versions 2 and 4 ({precision} precision): "
                + ("never ready" if memory is None else f"memory {memory:.0f} MB"),
                memory is not None and memory <= DYNO_MB,
                f"≤ {DYNO_MB} MB",
            )
        )
    print()
    for text, ok, need in checks:
        print(f"  {'ok ' if ok else 'NO '} {text} (need {need})")
    for line in r.get("non_json", [])[:5]:
        print(f"      not JSON: {line[:120]}")
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
