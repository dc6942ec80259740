"""Prometheus metrics, in one process and merged across real Gunicorn workers."""

from __future__ import annotations

import gzip
import json
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the Prometheus text format."""
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def total(parsed: dict, metric: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in parsed.items()
        if sample == metric and set(labels.items()) <= set(sample_labels)
    )


def test_metrics_count_requests_predictions_and_batches(make_app):
    app = make_app()
    client = app.test_client()
    answer = client.post("/classify", json={"reviews": ["great", "awful", "ok"]}).get_json()
    client.post("/classify", json={"review": ""})
    client.get("/does-not-exist")
    client.open("/classify", method="BREW")
    client.open("/classify", method="SPIN")
    client.delete("/model")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    parsed = samples(response.get_data(as_text=True))
    requests_total = "sentiment_http_request_duration_seconds_count"
    assert total(parsed, requests_total, route="/classify", method="POST", status="200") == 1
    assert total(parsed, requests_total, route="/classify", status="400") == 1
    # Unknown paths share one series: a scan cannot blow up the metric's cardinality.
    assert total(parsed, requests_total, route="unmatched", status="404") == 1
    # So do invented methods; a method a route does not take counts under that route.
    assert total(parsed, requests_total, route="/classify", method="other", status="405") == 2
    assert total(parsed, requests_total, route="/model", method="DELETE", status="405") == 1
    assert total(parsed, requests_total, route="unmatched", status="405") == 0
    # Predictions by label are the confidence histogram's counts.
    predicted = Counter(prediction["label"] for prediction in answer["predictions"])
    for label in app.extensions["models"].registry.stable.bundle.classes:
        counted = total(parsed, "sentiment_prediction_confidence_count", label=label)
        assert counted == predicted[label]
    assert total(parsed, "sentiment_batch_size_count") == 1
    assert total(parsed, "sentiment_batch_size_sum") == 3
    assert total(parsed, "sentiment_inference_duration_seconds_count") == 1
    bundle = app.extensions["models"].registry.stable.bundle
    # The outcome the README, the dashboard and the alert rules name.
    model_requests = "sentiment_model_requests_total"
    assert total(parsed, model_requests, version=bundle.version, outcome="ok") == 1
    assert total(parsed, model_requests, version=bundle.version, outcome="error") == 0
    info = total(
        parsed, "sentiment_model_info", name=bundle.name, version=bundle.version, precision="f32"
    )
    assert info == 1


def test_metrics_are_gzipped_for_a_scraper_that_accepts_it(make_app):
    """Prometheus sends "Accept-Encoding: gzip" on every scrape; the exposition is
    text that gzip shrinks about tenfold."""
    client = make_app().test_client()
    client.post("/classify", json={"review": "great"})
    plain = client.get("/metrics")
    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"] and "Accept-Encoding" in plain.vary
    text = gzip.decompress(zipped.get_data()).decode()
    assert len(zipped.get_data()) * 5 < len(text)
    # The same series as the plain answer (one more /metrics request counted between)
    assert samples(text).keys() >= samples(plain.get_data(as_text=True)).keys()
    assert (
        total(samples(text), "sentiment_http_request_duration_seconds_count", route="/classify")
        == 1
    )
    refused = client.get("/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


@pytest.mark.slow
def test_metrics_add_up_across_gunicorn_workers(start_server, app):
    server = start_server(WEB_CONCURRENCY="2")
    server.wait_ready()

    def classify(index: int) -> int:
        body = {"reviews": [f"review number {index}", "love it"]}
        return requests.post(server.url + "/classify", json=body, timeout=10).status_code

    def serving_pids() -> set[int]:
        lines = map(json.loads, server.log().splitlines())
        return {line["pid"] for line in lines if line.get("path") == "/classify"}

    # Rounds of concurrent requests until both workers have taken some (the kernel
    # decides which worker accepts a connection).
    sent = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        while len(serving_pids()) < 2 and sent < 2000:
            assert set(pool.map(classify, range(sent, sent + 100))) == {200}
            sent += 100
    assert len(serving_pids()) == 2
    scrapes = [samples(requests.get(server.url + "/metrics", timeout=10).text) for _ in range(6)]
    server.stop()
    requests_total = "sentiment_http_request_duration_seconds_count"
    for parsed in scrapes:  # whichever worker answers the scrape, the totals are global
        assert total(parsed, requests_total, route="/classify") == sent
        assert total(parsed, "sentiment_prediction_confidence_count") == 2 * sent
        assert total(parsed, "sentiment_batch_size_sum") == 2 * sent
        # One series per loaded version, each 1: livemax across the two workers.
        versions = app.extensions["models"].registry.versions
        assert total(parsed, "sentiment_model_info") == len(versions)


def test_observe_all_gives_the_samples_of_one_observe_per_amount():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from app.observability.metrics import CONFIDENCE_BUCKETS, observe_all

    amounts = [0.5, 0.55, 0.9, 0.97, 0.97, 1.0, 0.34, 0.999, 0.75, float("nan")]
    one_by_one, all_at_once = CollectorRegistry(), CollectorRegistry()
    made = [
        Histogram("c", "x", ["label"], buckets=CONFIDENCE_BUCKETS, registry=registry)
        for registry in (one_by_one, all_at_once)
    ]
    for amount in amounts:
        made[0].labels("positive").observe(amount)
    observe_all(made[1].labels("positive"), amounts)
    observe_all(made[1].labels("negative"), [0.8])
    made[0].labels("negative").observe(0.8)
    text = [generate_latest(registry).decode() for registry in (one_by_one, all_at_once)]
    drop_created = [[ln for ln in t.splitlines() if "_created" not in ln] for t in text]
    assert drop_created[0] == drop_created[1]
    assert 'c_bucket{label="positive",le="+Inf"} 9.0' in text[1]


@pytest.mark.slow
def test_the_workers_own_answers_are_counted(start_server):
    """A 408, a 503 server_busy or a request Gunicorn's parser refuses (400, 414, 431) is
    answered by the worker before the app has it: none was counted anywhere, so the
    error-rate alert never saw an overloaded server's 503s (an outside probe)."""
    server = start_server(WEB_CONCURRENCY="1", REQUEST_READ_TIMEOUT="1")
    server.wait_ready()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sent = [
        b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # 414
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # 431
        b"GARBAGE\r\n\r\n",  # 400
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",  # 408 after 1 s
    ]
    statuses = []
    for request in sent:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            statuses.append(int(sock.recv(4096).split(b" ", 2)[1]))
    assert statuses == [414, 431, 400, 408]
    parsed = samples(requests.get(server.url + "/metrics", timeout=10).text)
    answers = "sentiment_http_worker_answers_total"
    counted = [total(parsed, answers, status=str(status)) for status in statuses]
    assert counted == [1, 1, 1, 1], counted
    assert total(parsed, answers, status="503", code="server_busy") == 0  # there, at 0
