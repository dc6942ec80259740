"""The bench's FastAPI twin answers exactly as the service does: the comparison in
BENCHMARKS.md is between two servers of the same API on the same model."""

from __future__ import annotations

import warnings

import pytest

from benchmarks.reviews import REVIEWS
from benchmarks.twin import twin_app

with warnings.catch_warnings():
    # Starlette 1.10 asks for httpx2 under its test client; httpx (installed) works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

# A second copy of the model in this process: kept out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def twin():
    with TestClient(twin_app()) as client:
        yield client


@pytest.mark.parametrize(
    "body",
    [{"review": REVIEWS[0]}, {"review": REVIEWS[24]}, {"reviews": REVIEWS[:5]}],
    ids=["short", "long", "batch"],
)
def test_twin_answers_with_the_services_json(client, twin, body):
    ours = client.post("/classify", json=body)
    theirs = twin.post("/classify", json=body)
    assert (ours.status_code, theirs.status_code) == (200, 200)
    assert theirs.json() == ours.get_json()


@pytest.mark.parametrize(
    "body",
    [{"review": "  "}, {"reviews": []}, {"review": "a", "reviews": ["b"]}, {"text": "a"}],
    ids=["blank", "empty-batch", "both", "wrong-field"],
)
def test_twin_refuses_what_the_service_refuses(client, twin, body):
    assert client.post("/classify", json=body).status_code == 400
    assert twin.post("/classify", json=body).status_code == 422
