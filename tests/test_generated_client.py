"""A client generated from the live OpenAPI document (openapi-python-client) is typed and
works against a real server: one review and one batch through ``POST /classify``, and a
batch through TF Serving's ``:predict``, texts plain and in base64."""

from __future__ import annotations

import base64
import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import requests

from deploy.dyno import WebProcess

pytestmark = pytest.mark.slow

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "sentiment_client"
POSITIVE = "Thank you so much, the crew was wonderful and the flight was perfect!"
NEGATIVE = "Worst airline ever. Lost my bag, rude staff, three hours late. Never again."


@contextmanager
def generated_client(server: WebProcess, tmp_path: Path) -> Iterator[ModuleType]:
    """Generate a client package from the server's own document and import it (yields it)."""
    document = tmp_path / "openapi.json"
    document.write_bytes(requests.get(server.url + "/openapi.json", timeout=10).content)
    result = subprocess.run(
        [
            str(GENERATOR), "generate", "--path", str(document), "--meta", "none",
            "--output-path", str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # The generator formats its output with ruff, found on PATH.
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output, output  # nothing of the document was skipped
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_is_typed_and_works(start_server, tmp_path, app):
    server = start_server()
    server.wait_ready("/ready")
    bundle = app.extensions["models"].registry.stable.bundle
    with generated_client(server, tmp_path) as package:
        classify = importlib.import_module(f"{PACKAGE}.api.classify.classify")
        predict = importlib.import_module(f"{PACKAGE}.api.tensorflow_serving.tf_predict")
        models = importlib.import_module(f"{PACKAGE}.models")
        # Typed request models, one per body shape (not ``Any``).
        body = inspect.signature(classify.sync).parameters["body"].annotation
        assert "ClassifyOneRequest" in str(body) and "ClassifyBatchRequest" in str(body)
        body = inspect.signature(predict.sync).parameters["body"].annotation
        assert "TFPredictRowRequest" in str(body) and "TFPredictColumnRequest" in str(body)
        with package.Client(base_url=server.url, raise_on_unexpected_status=True) as client:
            check_classify(client, classify, models, bundle.classes)
            check_predict(client, predict, models, bundle.name)


def check_classify(client, classify, models, classes: list[str]) -> None:
    one = classify.sync(client=client, body=models.ClassifyOneRequest(review=POSITIVE))
    assert isinstance(one, models.ClassifyResponse)
    assert one.label == "positive" and set(one.scores.to_dict()) == set(classes)

    batch = classify.sync(
        client=client, body=models.ClassifyBatchRequest(reviews=[POSITIVE, NEGATIVE])
    )
    assert isinstance(batch, models.ClassifyBatchResponse)
    assert [p.label for p in batch.predictions] == ["positive", "negative"]

    blank = classify.sync(client=client, body=models.ClassifyOneRequest(review="  "))
    assert isinstance(blank, models.Error) and blank.error.code == "validation_error"


def check_predict(client, predict, models, name: str) -> None:
    encoded = base64.b64encode(NEGATIVE.encode()).decode()

    rows = predict.sync(
        name,
        client=client,
        body=models.TFPredictRowRequest(instances=[POSITIVE, models.TFBase64Text(b64=encoded)]),
    )
    assert isinstance(rows, models.TFPredictRowResponse) and len(rows.predictions) == 2
    columns = predict.sync(
        name,
        client=client,
        body=models.TFPredictColumnRequest(
            inputs=models.TFNamedInputs(review=[POSITIVE, NEGATIVE])
        ),
    )
    assert isinstance(columns, models.TFPredictColumnResponse)
    assert columns.outputs == rows.predictions
