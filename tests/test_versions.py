"""Several model versions at once: labels, pinning, canary and shadow routing, TF Serving's
version and label routes, and refusals at start-up. Two real versions: the shipped one and
a copy of it numbered 2 (same weights, different identity)."""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import create_app
from app.serving.routing import key_bucket

# Each app loads two versions: these are feature tests, not part of the quick loop.
pytestmark = pytest.mark.slow

REVIEW = "The staff were friendly and the room was spotless."


@pytest.fixture(scope="module")
def base_dir(two_versions):
    return two_versions


def two_version_app(base_dir, **config):
    return create_app({"TESTING": True, "MODEL_BASE_DIR": str(base_dir), **config})


@pytest.fixture(scope="module")
def client(base_dir):
    return two_version_app(base_dir, MODEL_LABELS="stable=1,canary=2").test_client()


def answered_by(response) -> str:
    """The version that answered a Flask test response or a requests response."""
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert response.status_code == 200, body
    return body["model"]["version"]


def test_every_version_loads_and_stable_answers_by_default(client):
    assert client.get("/ready").get_json()["versions"] == ["1", "2"]
    assert answered_by(client.post("/classify", json={"review": REVIEW})) == "1"
    info = client.get("/model").get_json()
    assert info["version"] == "1"
    assert [(v["version"], v["labels"]) for v in info["versions"]] == [
        ("1", ["stable"]),
        ("2", ["canary"]),
    ]
    assert info["routing"]["policy"] == "stable"


@pytest.mark.parametrize(
    ("query", "version"),
    [("version=1", "1"), ("version=2", "2"), ("label=canary", "2"), ("label=stable", "1")],
)
def test_pinned_versions_and_labels(client, query, version):
    assert answered_by(client.post(f"/classify?{query}", json={"review": REVIEW})) == version


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("version=3", "version '3'"),
        ("version=abc", "version 'abc'"),
        ("version=\uff11", "version '\uff11'"),  # a fullwidth 1: int() takes it
        ("version=0_1", "version '0_1'"),  # so does this
        ("version=", "version ''"),
        ("label=fast", "label 'fast'"),
    ],
)
def test_unknown_version_or_label_is_404(client, query, named):
    response = client.post(f"/classify?{query}", json={"reviews": [REVIEW]})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert (error["code"], error["message"]) == ("model_not_found", f"No {named} is served.")


@pytest.mark.parametrize(
    ("route", "query", "details"),
    [
        ("/classify", "versoin=1", {"versoin": ["Unknown field."]}),
        ("/classify", "version=1&version=2", {"version": ["Given more than once."]}),
        ("/explain", "label=canary&label=stable", {"label": ["Given more than once."]}),
        ("/explain", "version=1&lang=en", {"lang": ["Unknown field."]}),
    ],
)
def test_other_query_parameters_are_refused(client, route, query, details):
    """Not answered by the routed version as if the caller had pinned one."""
    response = client.post(f"{route}?{query}", json={"review": REVIEW})
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "validation_error",
        "message": "The query parameters are not valid.",
        "details": details,
    }


def test_version_and_label_together_must_agree(client):
    agreeing = client.post("/classify?version=2&label=canary", json={"review": REVIEW})
    assert answered_by(agreeing) == "2"
    response = client.post("/classify?version=1&label=canary", json={"review": REVIEW})
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "Label 'canary' names version 2."


def test_without_labels_the_highest_version_is_stable(base_dir):
    client = two_version_app(base_dir).test_client()
    assert answered_by(client.post("/classify", json={"review": REVIEW})) == "2"


def test_model_versions_selects_what_loads(base_dir):
    client = two_version_app(base_dir, MODEL_VERSIONS="1").test_client()
    assert client.get("/ready").get_json()["versions"] == ["1"]


def test_tf_serving_lists_every_version_and_follows_labels(client):
    status = client.get("/v1/models/sentiment").get_json()["model_version_status"]
    assert [entry["version"] for entry in status] == ["1", "2"]
    one = client.get("/v1/models/sentiment/labels/canary").get_json()["model_version_status"]
    assert [entry["version"] for entry in one] == ["2"]
    metadata = client.get("/v1/models/sentiment/labels/canary/metadata").get_json()
    assert metadata["model_spec"]["version"] == "2"
    by_label = client.post(
        "/v1/models/sentiment/labels/canary:predict", json={"instances": [REVIEW]}
    )
    by_version = client.post(
        "/v1/models/sentiment/versions/2:predict", json={"instances": [REVIEW]}
    )
    assert by_label.get_json() == by_version.get_json()


def test_tf_serving_unknown_label_and_version(client):
    # TF Serving: an unknown label is INVALID_ARGUMENT (400), an unknown version NOT_FOUND.
    label = client.post("/v1/models/sentiment/labels/nope:predict", json={"instances": ["a"]})
    assert label.status_code == 400
    assert label.get_json() == {"error": "Unrecognized servable version label: nope"}
    version = client.get("/v1/models/sentiment/versions/3")
    assert version.status_code == 404
    assert version.get_json()["error"] == "Could not find version 3 of model sentiment"
    predict = client.post("/v1/models/sentiment/versions/3:predict", json={"instances": ["a"]})
    assert "Specific(sentiment, 3)" in predict.get_json()["error"]


def test_canary_hash_is_stable_and_spread():
    buckets = [key_bucket(f"user-{index}") for index in range(20_000)]
    assert all(0 <= bucket < 100 for bucket in buckets)
    share = sum(bucket < 10 for bucket in buckets) / len(buckets)
    assert abs(share - 0.10) < 0.01
    assert key_bucket("user-1") == key_bucket("user-1")


def test_shadow_failures_never_reach_the_client(base_dir):
    app = two_version_app(base_dir, MODEL_LABELS="stable=1,canary=2", ROUTING="shadow")
    models = app.extensions["models"]
    candidate = models.registry.labelled("canary")
    client = app.test_client()
    expected = client.post("/classify?version=1", json={"review": REVIEW}).get_json()

    def broken(texts):
        raise RuntimeError("candidate is broken")

    candidate.classify = broken  # an instance attribute: this app's candidate only
    body = client.post("/classify", json={"review": REVIEW}).get_json()
    models.shadow.join()
    assert body == expected
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'sentiment_shadow_dropped_total{version="2"} 1.0' in metrics


def shadow_app_with_a_held_candidate(base_dir):
    """An app shadowing version 2 whose candidate, once scoring (``scoring`` set), waits
    for ``go_on``; an instance attribute: this app's candidate only."""
    app = two_version_app(base_dir, MODEL_LABELS="stable=1,canary=2", ROUTING="shadow")
    candidate = app.extensions["models"].registry.labelled("canary")
    scoring, go_on = threading.Event(), threading.Event()
    real = candidate.classify

    def held(texts):
        scoring.set()
        go_on.wait(30)
        return real(texts)

    candidate.classify = held
    return app, scoring, go_on


def test_the_shadow_queue_is_bounded_in_characters_too(base_dir):
    """The queue held 256 requests a worker whatever their size: 262 batches of 51 long
    reviews waited for a transformer (35 minutes of its work, 290 MB), nothing dropped.
    Now also at most SHADOW_MAX_CHARS characters wait; past them requests are dropped."""
    from app.serving.routing import SHADOW_MAX_CHARS

    app, scoring, go_on = shadow_app_with_a_held_candidate(base_dir)
    models, client = app.extensions["models"], app.test_client()
    batch = {"reviews": [("Lovely staff, awful food. " * 200)[:5000]] * 64}  # 320,000
    per_batch = 64 * 5000
    for number in range(5):
        assert client.post("/classify", json=batch).status_code == 200
        if number == 0:
            assert scoring.wait(10)  # the first is being scored: it still counts
    go_on.set()
    models.shadow.join()
    kept = SHADOW_MAX_CHARS // per_batch
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'sentiment_shadow_dropped_total{{version="2"}} {5 - kept:.1f}' in metrics
    compared = re.findall(r"^sentiment_shadow_comparisons_total\{.*?\} (\S+)$", metrics, re.M)
    assert sum(map(float, compared)) == kept * 64


def test_the_shadow_queue_is_bounded_in_requests(base_dir):
    """At most SHADOW_MAX_PENDING requests wait, however short (README: 256)."""
    from app.serving.routing import SHADOW_MAX_PENDING

    app, scoring, go_on = shadow_app_with_a_held_candidate(base_dir)
    models, client = app.extensions["models"], app.test_client()
    assert client.post("/classify", json={"review": REVIEW}).status_code == 200
    assert scoring.wait(10)  # the first is being scored: it no longer waits
    for _ in range(SHADOW_MAX_PENDING + 2):
        assert client.post("/classify", json={"review": REVIEW}).status_code == 200
    go_on.set()
    models.shadow.join()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'sentiment_shadow_dropped_total{version="2"} 2.0' in metrics
    compared = re.findall(r"^sentiment_shadow_comparisons_total\{.*?\} (\S+)$", metrics, re.M)
    assert sum(map(float, compared)) == 1 + SHADOW_MAX_PENDING


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL_LABELS": "stable=3"}, "stable=3 names a version that is not loaded"),
        ({"MODEL_VERSIONS": "1,7"}, "MODEL_VERSIONS=1,7: no folder"),
        ({"ROUTING": "canary"}, "ROUTING=canary needs a 'canary' label"),
        ({"ROUTING": "bandwagon"}, "ROUTING=bandwagon: use one of"),
        # The candidate alone: the highest version was made stable too, and took it all.
        (
            {"MODEL_LABELS": "canary=2", "ROUTING": "canary"},
            r"MODEL_LABELS: canary=2 and no stable label, so the highest loaded version, 2, "
            r"would be stable too: name the stable version as well \(e.g. stable=1,canary=2\)",
        ),
        # str.isdigit() takes "²", which int() refuses: a traceback.
        ({"MODEL_VERSIONS": "1,²"}, "MODEL_VERSIONS=1,²: use 'all' or version numbers"),
        ({"MODEL_LABELS": "stable=²"}, "MODEL_LABELS=stable=²: use label=version pairs"),
    ],
)
def test_bad_version_settings_stop_start_up(base_dir, env, message):
    from app.serving.predictor import ModelBundleError

    with pytest.raises(ModelBundleError, match=message):
        two_version_app(base_dir, **env)


def test_a_version_folder_with_leading_zeros_is_named_and_a_blank_model_dir_is_unset(tmp_path):
    """A folder '02' was skipped without a word (MODEL_VERSIONS=1,2 said "no folder 2"),
    and MODEL_DIR=" " was a folder named " " (an outside probe). Other names ('latest',
    a link many set beside the versions) are still skipped."""
    from app.serving.predictor import ModelBundleError
    from app.serving.registry import VersionSelection

    for name in ("1", "3", "latest"):
        (tmp_path / name).mkdir()
    settings = {"MODEL_BASE_DIR": tmp_path, "MODEL_VERSIONS": "all", "MODEL_LABELS": ""}
    selection = VersionSelection.from_config({**settings, "MODEL_DIR": " "})
    assert selection.folders() == {"1": tmp_path / "1", "3": tmp_path / "3"}

    (tmp_path / "02").mkdir()
    for versions in ("all", "1,2"):
        chosen = VersionSelection.from_config(
            {**settings, "MODEL_VERSIONS": versions, "MODEL_DIR": ""}
        )
        with pytest.raises(ModelBundleError, match="folder '02' is no version name: name it 2"):
            chosen.folders()


def test_the_batch_tools_default_version_is_the_servers_stable_one(tmp_path):
    """app.batch and Spark score with the version the server answers with by default:
    the stable label, else the highest version (README, Model versions)."""
    from app.serving.registry import VersionSelection

    for name in ("1", "2", "10"):
        (tmp_path / name).mkdir()
    for labels, expected in (("", "10"), ("stable=2", "2")):
        selection = VersionSelection(tmp_path, labels=labels)
        assert selection.default_folder() == tmp_path / expected


def test_a_label_from_labels_json_is_blamed_on_that_file_not_on_model_labels(tmp_path):
    """The shipped labels.json says stable=2: with MODEL_VERSIONS=1 the refusal named
    MODEL_LABELS, which was not set."""
    from app.config import MODEL_BASE
    from app.serving.predictor import ModelBundleError

    with pytest.raises(ModelBundleError) as refused:
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
                "MODEL_BASE_DIR": str(MODEL_BASE),
                "MODEL_VERSIONS": "1",
                "MODEL_LABELS": "",
            }
        )
    assert str(refused.value) == (
        f"{MODEL_BASE / 'labels.json'}: stable=2 names a version that is not loaded "
        "(loaded: 1); MODEL_LABELS overrides it"
    )


def test_labels_json_refusals_name_it_and_an_empty_one_means_no_labels(base_dir, tmp_path):
    """A labels.json that is ``{}`` means no labels (the highest version is stable); one
    that does not parse is named, not MODEL_LABELS, which was not set."""
    from app.serving.predictor import ModelBundleError

    base = shutil.copytree(base_dir, tmp_path / "base")
    (base / "²").mkdir()  # a folder no version can be: ignored, as "06" is
    (base / "labels.json").write_text("{}")
    app = two_version_app(base, MODEL_LABELS="")
    assert app.test_client().get("/ready").get_json()["versions"] == ["1", "2"]
    assert answered_by(app.test_client().post("/classify", json={"review": REVIEW})) == "2"

    (base / "labels.json").write_text('{"stable": "two"}')
    with pytest.raises(ModelBundleError) as refused:
        two_version_app(base, MODEL_LABELS="")
    assert str(refused.value) == (
        f"{base / 'labels.json'} (stable=two): use label=version pairs such as stable=2,canary=1"
    )
    # From an outside probe: each of these started, as if the file said nothing or said
    # more (a "canary" label from one value), or was a traceback.
    labels = base / "labels.json"
    for damage, problem in [
        (lambda: labels.write_text('{"stable": "1,canary=2"}'), "expected label names"),
        (lambda: labels.write_text('{"stable": 1}'), "expected label names"),
        (lambda: labels.write_text('{"stable": ' + "[" * 100_000 + "]" * 100_000 + "}"), "deep"),
        (lambda: labels.unlink() or labels.mkdir(), "not a regular file"),
        (lambda: labels.rmdir() or labels.symlink_to(base / "nowhere"), "not readable JSON"),
    ]:
        damage()
        with pytest.raises(ModelBundleError) as refused:
            two_version_app(base, MODEL_LABELS="")
        assert str(labels) in str(refused.value) and problem in str(refused.value)


def test_versions_of_different_models_are_refused_naming_each_folder(base_dir, tmp_path):
    import json

    from app.serving.predictor import ModelBundleError

    base = shutil.copytree(base_dir, tmp_path / "base")
    metadata = json.loads((base / "2" / "metadata.json").read_text())
    (base / "2" / "metadata.json").write_text(json.dumps({**metadata, "name": "mine"}))
    with pytest.raises(ModelBundleError) as refused:
        two_version_app(base, MODEL_LABELS="")
    assert str(refused.value) == (
        f"the versions name different models: {base / '1' / 'metadata.json'} says 'sentiment', "
        f"{base / '2' / 'metadata.json'} says 'mine'"
    )


def test_model_dir_overrides_model_labels(base_dir):
    """README: MODEL_DIR "overrides the three above"; a rollout's leftover MODEL_LABELS
    naming other versions stopped a folder served alone."""
    app = two_version_app(base_dir, MODEL_DIR=str(base_dir / "2"), MODEL_LABELS="stable=2,canary=3")
    assert app.test_client().get("/ready").get_json()["versions"] == ["2"]


# --- A real Gunicorn with two versions -------------------------------------------------


@pytest.fixture(scope="module")
def canary_server(base_dir, tmp_path_factory):
    from deploy.dyno import WebProcess

    server = WebProcess(
        {
            "MODEL_BASE_DIR": str(base_dir),
            "MODEL_LABELS": "stable=1,canary=2",
            "ROUTING": "canary",
            "CANARY_PERCENT": "10",
        },
        log_path=tmp_path_factory.mktemp("canary") / "server.log",
    )
    server.wait_ready("/ready")
    yield server
    server.stop()


def classify_with_key(server, key: str | None) -> str:
    headers = {"X-Routing-Key": key} if key else {}
    response = requests.post(
        f"{server.url}/classify", json={"review": REVIEW}, headers=headers, timeout=10
    )
    return answered_by(response)


def test_canary_share_and_stickiness_on_a_real_server(canary_server):
    keys = [f"customer-{index}" for index in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda key: classify_with_key(canary_server, key), keys))
        again = list(pool.map(lambda key: classify_with_key(canary_server, key), keys[:300]))
    share = Counter(first)["2"] / len(keys)
    assert abs(share - 0.10) <= 0.03, share
    assert again == first[:300]  # the same key, the same version, whichever worker answers
    pinned = requests.post(
        f"{canary_server.url}/classify?version=2", json={"review": REVIEW}, timeout=10
    )
    assert answered_by(pinned) == "2"


def test_a_broken_version_folder_stops_the_server(base_dir, tmp_path, start_server):
    broken = tmp_path / "base"
    shutil.copytree(base_dir, broken, ignore=shutil.ignore_patterns("SHA256SUMS"))
    (broken / "2" / "model.keras").write_bytes(b"not a model")
    server = start_server(MODEL_BASE_DIR=str(broken))
    assert server.process.wait(timeout=60) != 0
    assert "model.keras: cannot be loaded as a Keras model" in server.log()


@pytest.mark.slow
def test_a_worker_stops_cleanly_while_its_shadow_scores_a_transformer(tmp_path):
    """SIGHUP, then SIGTERM, under load with version 4 shadowing version 2: each worker
    stops its shadow scorer's thread after the call in progress. Left inside OpenVINO's
    call as the interpreter shut down, it aborted the worker ("terminate called without
    an active exception", SIGABRT; 4 stops of 4 under load before, measured), and still
    did after a batch of long reviews, one call of 10-16 s (2 reloads of 5, a probe)."""
    from deploy.dyno import WebProcess

    server = WebProcess(
        {"MODEL_VERSIONS": "2,4", "MODEL_LABELS": "stable=2,canary=4", "ROUTING": "shadow"},
        log_path=tmp_path / "server.log",
    )
    long_batch = {"reviews": [("The crew was lovely but the food was awful. " * 120)[:5000]] * 64}
    try:
        server.wait_ready("/ready", 120)
        sending = threading.Event()
        sending.set()

        def send(body: dict) -> None:
            with requests.Session() as session:
                while sending.is_set():
                    try:
                        session.post(f"{server.url}/classify", json=body, timeout=30)
                    except requests.RequestException:  # the server has stopped
                        return

        senders = [threading.Thread(target=send, args=({"review": REVIEW},)) for _ in range(4)]
        senders += [threading.Thread(target=send, args=(long_batch,)) for _ in range(2)]
        for sender in senders:
            sender.start()
        time.sleep(3)  # the shadow's queue fills: version 4 scores slower than 2 answers
        server.process.send_signal(signal.SIGHUP)
        time.sleep(8)  # the old workers stop (at most 5 s for their shadows) and new start
        server.wait_ready("/ready", 120)
    finally:
        code = server.stop()
        sending.clear()
    for sender in senders:
        sender.join()
    log = server.log()
    assert code == 0, log[-2000:]
    assert "terminate called" not in log and "SIGABRT" not in log, log[-2000:]
