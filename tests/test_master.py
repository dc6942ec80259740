"""The Gunicorn master outlives what happens around it (found by an outside probe).

Gunicorn runs the config hooks and the fork of each replacement worker in its main loop,
where an uncaught exception (or a signal) stops the whole server, however healthy the
other workers are. Each test here stopped it before its fix, with a real server."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from test_metrics_folder import classify_count_in, log_lines, workers

from deploy.dyno import WebProcess, wait_for_workers_started

pytestmark = pytest.mark.slow

REVIEW = {"review": "The crew was friendly and the flight left on time."}
PIDS_CGROUPS = Path("/sys/fs/cgroup/pids")


def replaced(server, dead: int, timeout: float = 60) -> bool:
    """Whether the master, still running, has two workers again, ``dead`` not among them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        now = workers(server)
        if len(now) == 2 and dead not in now:
            return True
        time.sleep(0.2)
    return False


def classify_count(server) -> float:
    scrape = requests.get(server.url + "/metrics", timeout=10)
    assert scrape.status_code == 200, scrape.text
    return classify_count_in(scrape.text)


def serving(start_server, folder: Path, classified: int = 0):
    """A server of two started workers writing metrics in ``folder``, after
    ``classified`` answered reviews."""
    server = start_server(WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(folder))
    server.wait_ready("/ready")
    wait_for_workers_started(server.url, 2)
    for _ in range(classified):
        assert requests.post(server.url + "/classify", json=REVIEW, timeout=10).ok
    return server


def test_a_failed_fork_of_a_replacement_is_tried_again(start_server, tmp_path):
    """EAGAIN from fork() (a pids limit reached; here a real pids cgroup around the
    master) left Gunicorn's main loop and stopped the server (exit 255) when one worker
    died. The master logs one line, the other worker serves, and the replacement starts
    once forks work again."""
    if os.geteuid() != 0 or not os.access(PIDS_CGROUPS, os.W_OK):
        pytest.skip("a pids cgroup needs root and cgroup v1's pids controller")
    server = start_server(WEB_CONCURRENCY="2")
    server.wait_ready("/ready")
    wait_for_workers_started(server.url, 2)
    group = PIDS_CGROUPS / f"sentiment-test-{os.getpid()}-{server.port}"
    group.mkdir()
    try:
        (group / "cgroup.procs").write_text(str(server.process.pid))  # the master alone
        (group / "pids.max").write_text((group / "pids.current").read_text())
        fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        first, second = workers(server)
        os.kill(first, signal.SIGKILL)
        with ThreadPoolExecutor(6) as pool:
            # The dead worker's slot keeps its listening socket: the kernel gives it its
            # share of the new connections, which wait there for the replacement.
            answers = [
                pool.submit(requests.post, server.url + "/classify", json=REVIEW, timeout=60)
                for _ in range(6)
            ]
            time.sleep(4)  # a few rounds of the main loop, each trying to fork
            assert server.process.poll() is None, server.log()[-2000:]
            assert workers(server) == [second]
            assert len(os.listdir(f"/proc/{server.process.pid}/fd")) <= fds  # nothing leaks
            (group / "pids.max").write_text("max")
            assert replaced(server, first), server.log()[-2000:]
            assert [answer.result().status_code for answer in answers] == [200] * 6
        wait_for_workers_started(server.url, 3)
    finally:
        (group / "pids.max").write_text("max")
        server.stop()
        group.rmdir()
    failed = [line for line in log_lines(server) if "cannot start a worker now" in line["message"]]
    assert len(failed) == 1 and "Resource temporarily unavailable" in failed[0]["message"]
    assert any("started again after failed starts" in line["message"] for line in log_lines(server))


def test_a_full_metrics_disk_does_not_kill_the_master(small_disk, start_server):
    """prometheus_client extends its sample files without reserving the space, then
    writes through a memory map: on a full disk the master, folding a dead worker's
    samples, got SIGBUS and the server was gone (exit -7). Now the fold reserves the
    space first, fails with a line, and is done at a later exit once there is room; the
    dead worker's counts are kept meanwhile."""
    folder = small_disk / "metrics"
    server = serving(start_server, folder, classified=6)
    assert classify_count(server) == 6
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    assert shutil.disk_usage(small_disk).free < 64 * 1024

    first = workers(server)[0]
    os.kill(first, signal.SIGKILL)
    time.sleep(3)  # its replacement cannot write samples either: it fails, and is replaced
    assert server.process.poll() is None, server.log()[-2000:]
    failed = [line for line in log_lines(server) if "cannot be folded" in line["message"]]
    assert failed and "No space left on device" in failed[0]["message"]

    filler.unlink()
    assert replaced(server, first), server.log()[-2000:]
    server.wait_ready("/ready", timeout=60)
    assert classify_count(server) == 6  # the dead worker's counts, folded or not yet


def test_a_full_metrics_disk_leaves_the_workers_serving(small_disk, start_server):
    """A worker's first sample of a new series (a 405, a 404, a 400 it had not answered
    yet) wrote into a page of its sample file that the full disk could not give: SIGBUS,
    and every replacement died the same way as it booted (an outside probe). Now the
    sample is kept in memory, with one line a worker, and the workers serve on; the
    series they had written go on counting in /metrics."""
    folder = small_disk / "metrics"
    server = serving(start_server, folder, classified=4)
    before = set(workers(server))
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
    assert shutil.disk_usage(small_disk).free < 4096
    for _ in range(6):  # a new connection each: both workers
        assert requests.patch(server.url + "/health", timeout=10).status_code == 405
        assert requests.get(server.url + "/nope", timeout=10).status_code == 404
        empty = requests.post(server.url + "/classify", json={"review": ""}, timeout=10)
        assert empty.status_code == 400
        assert requests.post(server.url + "/classify", json=REVIEW, timeout=10).ok
    assert requests.get(server.url + "/ready", timeout=10).status_code == 200
    assert classify_count(server) == 10
    assert set(workers(server)) == before, server.log()[-2000:]
    noted = [line for line in log_lines(server) if "cannot take new samples" in line["message"]]
    assert 1 <= len(noted) <= 2, noted  # once a worker
    assert "No space left on device" in noted[0]["error"] and noted[0]["folder"] == str(folder)


def test_damaged_totals_and_an_odd_file_name_do_not_stop_the_master(start_server, tmp_path):
    """The master folds a dead worker's files into ``counter_dead.db``: a damaged one
    raised ``struct.error``, and a file named for no possible pid ``OverflowError``, out
    of its main loop. The damaged totals are dropped with one line and written anew."""
    folder = tmp_path / "metrics"
    server = serving(start_server, folder, classified=4)
    (folder / "counter_dead.db").write_bytes(struct.pack("ii", 1000, 0))  # says 1,000 bytes
    (folder / "counter_99999999999.db").write_bytes(b"")

    first = workers(server)[0]
    os.kill(first, signal.SIGKILL)
    assert replaced(server, first), server.log()[-2000:]
    assert not (folder / "counter_99999999999.db").exists()
    (damaged,) = [line for line in log_lines(server) if "is damaged" in line["message"]]
    assert damaged["file"] == str(folder / "counter_dead.db")
    server.wait_ready("/ready", timeout=60)
    assert classify_count(server) == 4  # the dead worker's counts are in the new totals


def test_a_deleted_parent_of_the_metrics_folder_is_made_again(start_server, tmp_path):
    """A cleaner removed the metrics folder's parent: a replacement worker, unable to
    make the folder, exited 3, which stops the whole server."""
    folder = tmp_path / "parent" / "metrics"
    server = serving(start_server, folder)
    shutil.rmtree(folder.parent)
    first = workers(server)[0]
    os.kill(first, signal.SIGKILL)
    assert replaced(server, first), server.log()[-2000:]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.process.poll() is None:
        if folder.is_dir():  # made by the replacement as it boots
            break
        time.sleep(0.2)
    time.sleep(3)  # it boots on (it exited 3 here, which stops the server)
    assert server.process.poll() is None, server.log()[-2000:]
    assert folder.is_dir()
    server.wait_ready("/ready", timeout=60)
    assert requests.post(server.url + "/classify", json=REVIEW, timeout=10).ok


def test_a_second_server_given_a_running_ones_metrics_folder_is_refused(start_server, tmp_path):
    """On another port, a second server with the same metrics folder emptied it under the
    first, whose workers went on writing into deleted files: its /metrics went back to the
    second one's counts, with no line (an outside probe). It is a bad setting now."""
    folder = tmp_path / "metrics"
    server = serving(start_server, folder, classified=3)
    second = WebProcess(
        {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        log_path=tmp_path / "second.log",
    )
    try:
        assert second.process.wait(timeout=60) == 2
    finally:
        second.stop()
    (refusal,) = [line for line in second.log().splitlines() if "PROMETHEUS_MULTIPROC_DIR" in line]
    assert f"another running server (pid {server.process.pid})" in refusal
    assert classify_count(server) == 3
    assert requests.post(server.url + "/classify", json=REVIEW, timeout=10).ok
    assert classify_count(server) == 4
    assert server.stop() == 0
    again = start_server(PROMETHEUS_MULTIPROC_DIR=str(folder))  # free once it has stopped
    again.wait_ready("/ready")


def test_a_second_server_on_the_same_address_leaves_the_first_ones_metrics(start_server, tmp_path):
    """A second server started by mistake with the same address and metrics folder
    emptied the folder before it found the address taken: the first one's counts were
    gone from /metrics."""
    folder = tmp_path / "metrics"
    server = start_server(WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(folder))
    server.wait_ready("/ready")
    for _ in range(3):
        assert requests.post(server.url + "/classify", json=REVIEW, timeout=10).ok
    assert classify_count(server) == 3
    second = WebProcess(
        {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        log_path=tmp_path / "second.log",
        port=server.port,
    )
    try:
        assert second.process.wait(timeout=60) == 1
    finally:
        second.stop()
    assert "in use" in second.log()
    assert classify_count(server) == 3
