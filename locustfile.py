"""Realistic traffic for the sentiment server: `make loadtest` (or `locust -f locustfile.py`).

Mostly single reviews drawn from a varied list, some batches, a client of the Open
Inference Protocol (`/v2/`), a client that sends the true label of its answers back and
reads the labelled answers and the monitoring report, a few invalid requests that must
be refused with 400, and the probes an orchestrator sends. Every response is
checked for its status *and* its body; anything unexpected counts as a failure.
"""

from __future__ import annotations

import collections
import math
import random
import time

from locust import FastHttpUser, between, task

from benchmarks.reviews import REVIEWS

CLASSES = {"negative", "neutral", "positive"}
TRUTH_DELAY = 1.2  # seconds before a client sends an answer's true label
INVALID_BODIES = [
    {"review": ""},
    {"review": "   "},
    {"reviews": []},
    {"review": 42},
    {"review": "fine", "reviews": ["also fine"]},
    {"text": "wrong field name"},
]


def prediction_problem(prediction: dict) -> str | None:
    """Why a prediction is malformed, or None."""
    scores = prediction.get("scores", {})
    if set(scores) != CLASSES:
        return f"classes {sorted(scores)}"
    if not math.isclose(sum(scores.values()), 1.0, abs_tol=1e-4):
        return f"scores sum to {sum(scores.values())}"
    if prediction.get("label") != max(scores, key=scores.get):
        return "label is not the most probable class"
    if prediction.get("score") != scores[prediction["label"]]:
        return "score is not the label's probability"
    return None


class ReviewClient(FastHttpUser):
    """A client application calling the API: bursts of requests with short pauses."""

    wait_time = between(0.01, 0.1)

    @task(20)
    def classify_one(self) -> None:
        with self.client.post(
            "/classify", json={"review": random.choice(REVIEWS)}, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            body = response.json()
            problem = prediction_problem(body) or (None if "model" in body else "no model")
            if problem:
                response.failure(problem)

    @task(3)
    def classify_batch(self) -> None:
        reviews = random.sample(REVIEWS, k=random.randint(2, 20))
        with self.client.post(
            "/classify", json={"reviews": reviews}, catch_response=True, name="/classify [batch]"
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            predictions = response.json().get("predictions", [])
            if len(predictions) != len(reviews):
                response.failure(f"{len(predictions)} predictions for {len(reviews)} reviews")
                return
            for prediction in predictions:
                if problem := prediction_problem(prediction):
                    response.failure(problem)
                    return

    @task(2)
    def infer_open_inference(self) -> None:
        """A client of the Open Inference Protocol (MLServer's, KServe's, Triton's), JSON."""
        reviews = random.sample(REVIEWS, k=random.randint(1, 8))
        tensor = {"name": "review", "shape": [len(reviews)], "datatype": "BYTES"}
        with self.client.post(
            "/v2/models/sentiment/infer",
            json={"inputs": [{**tensor, "data": reviews}]},
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            outputs = {output["name"]: output for output in response.json()["outputs"]}
            rows = outputs["probabilities"]["data"]
            labels = outputs["label"]["data"]
            if len(rows) != 3 * len(reviews) or len(labels) != len(reviews):
                response.failure(f"{len(labels)} labels for {len(reviews)} reviews")
                return
            for index, label in enumerate(labels):
                row = rows[3 * index : 3 * index + 3]
                if not math.isclose(sum(row), 1.0, abs_tol=1e-4) or label not in CLASSES:
                    response.failure(f"row {index}: {row}, {label!r}")
                    return

    def on_start(self) -> None:
        # Answers whose truth this client will send back: (when, request id, predicted).
        self.answered: collections.deque[tuple[float, str, str]] = collections.deque()

    @task(2)
    def classify_then_feedback(self) -> None:
        """A client that learns the truth later (a user's rating, a moderator's call) and
        sends it back by the answer's X-Request-ID, for answers over a second old: a
        record is written within a second of its answer, and until then a worker that
        did not answer it does not find it (README, Feedback)."""
        while self.answered and time.monotonic() - self.answered[0][0] > TRUTH_DELAY:
            _, request_id, predicted = self.answered.popleft()
            self.send_truth(request_id, predicted)
        with self.client.post(
            "/classify",
            json={"review": random.choice(REVIEWS)},
            catch_response=True,
            name="/classify [then feedback]",
        ) as response:
            request_id = response.headers.get("X-Request-ID")
            if response.status_code != 200 or not request_id:
                response.failure(f"status {response.status_code}, request id {request_id!r}")
                return
            self.answered.append((time.monotonic(), request_id, response.json()["label"]))

    def send_truth(self, request_id: str, predicted: str) -> None:
        label = random.choice(sorted(CLASSES))
        body = {"request_id": request_id, "label": label}
        with self.client.post("/feedback", json=body, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            [given] = response.json()["feedback"]
            expected = {
                "request_id": request_id,
                "index": 0,
                "predicted": predicted,
                "label": label,
                "correct": predicted == label,
                "repeated": False,
            }
            if {key: given.get(key) for key in expected} != expected:
                response.failure(f"stored {given}, expected {expected}")

    @task(1)
    def read_feedback_and_monitoring(self) -> None:
        """A data scientist's export of the labelled answers, and a dashboard's report."""
        with self.client.get(
            "/feedback?limit=200", catch_response=True, name="/feedback [read]"
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return
            page = response.json()
            for answer in page["feedback"]:
                if answer["correct"] is not (answer["predicted"] == answer["label"]):
                    response.failure(f"correct does not match its labels: {answer}")
                    return
            if not page["next"].startswith("/feedback?limit=200"):
                response.failure(f"next {page['next']!r}")
        with self.client.get("/monitoring", catch_response=True) as response:
            if response.status_code != 200 or not response.json().get("versions"):
                response.failure(f"status {response.status_code}")

    @task(1)
    def classify_invalid(self) -> None:
        """Bad input must be refused with the documented 400 error, not served or crashed."""
        with self.client.post(
            "/classify",
            json=random.choice(INVALID_BODIES),
            catch_response=True,
            name="/classify [invalid]",
        ) as response:
            error = response.json().get("error", {}) if response.status_code == 400 else {}
            if error.get("code") == "validation_error" and error.get("message"):
                response.success()
            else:
                response.failure(f"expected a 400 validation_error, got {response.status_code}")

    @task(1)
    def probes(self) -> None:
        for path in ("/health", "/ready"):
            with self.client.get(path, catch_response=True) as response:
                if response.status_code != 200 or "status" not in response.json():
                    response.failure(f"{path}: status {response.status_code}")
