"""The bench's FastAPI twin answers exactly as the service does: the comparison in
BENCHMARKS.md is between two real servers of the same API on the same model."""

from __future__ import annotations

import pytest
import requests

from benchmarks.bench import TWIN_APP, TWIN_ENV
from benchmarks.reviews import REVIEWS
from deploy.dyno import WebProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The service and the twin, one worker each, as `make bench` starts them."""
    logs = tmp_path_factory.mktemp("twin")
    started = [
        WebProcess({"WEB_CONCURRENCY": "1"}, log_path=logs / "service.log"),
        WebProcess(
            {"WEB_CONCURRENCY": "1", **TWIN_ENV}, log_path=logs / "twin.log", app_spec=TWIN_APP
        ),
    ]
    try:
        for server in started:
            server.wait_ready("/classify", 120, "POST", json={"review": "fine"})
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize(
    "body",
    [{"review": REVIEWS[0]}, {"review": REVIEWS[24]}, {"reviews": REVIEWS[:5]}],
    ids=["short", "long", "batch"],
)
def test_twin_answers_with_the_services_json(servers, body):
    ours, theirs = (
        requests.post(f"{server.url}/classify", json=body, timeout=10) for server in servers
    )
    assert (ours.status_code, theirs.status_code) == (200, 200)
    assert theirs.json() == ours.json()


@pytest.mark.parametrize(
    "body",
    [{"review": "  "}, {"reviews": []}, {"review": "a", "reviews": ["b"]}, {"text": "a"}],
    ids=["blank", "empty-batch", "both", "wrong-field"],
)
def test_twin_refuses_what_the_service_refuses(servers, body):
    statuses = [
        requests.post(f"{server.url}/classify", json=body, timeout=10).status_code
        for server in servers
    ]
    assert statuses == [400, 422]  # FastAPI's own status for a body that fails validation
