"""Score a shipped model on one split of the corpus, through the serving code path.

    python -m model.evaluate --split test [--backend openvino] [--probabilities out.npy]

prints the metrics as JSON. The model is loaded by ``app.serving.predictor.Predictor``, exactly
as the server loads it, so these numbers are the served model's. The backend is fixed
per process when Keras is imported: compare backends by running this twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.corpus import CLASSES, SPLITS, load_splits

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "sentiment" / "1"
_BATCH_SIZE = 512
ECE_BINS = 15


def classification_metrics(
    true_ids: np.ndarray, predicted_ids: np.ndarray, classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows = true class, columns = predicted class, both in ``classes`` order)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        true_ids, predicted_ids, labels=labels, zero_division=0
    )
    return {
        "accuracy": round(float(accuracy_score(true_ids, predicted_ids)), 4),
        "macro_f1": round(
            float(f1_score(true_ids, predicted_ids, labels=labels, average="macro")), 4
        ),
        "per_class": {
            name: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(true_ids, predicted_ids, labels=labels).tolist(),
    }


def expected_calibration_error(
    true_ids: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the gap between confidence (top probability) and accuracy, averaged over
    ``bins`` equal-width confidence bins weighted by how many rows fall in each."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(true_ids)
    # Bin i holds confidences in (i/bins, (i+1)/bins]; 1/3 is the lowest possible.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return round(float(total / len(confidence)), 4)


def served_probabilities(
    texts: Sequence[str], model_dir: Path = DEFAULT_MODEL_DIR, backend: str = "tensorflow"
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities for ``texts`` from the model as the server runs it, and the
    class names in output order."""
    from app.serving.predictor import Predictor

    predictor = Predictor.load(model_dir, backend=backend, inference_threads=os.cpu_count() or 1)
    batches = [
        predictor.predict_proba(list(texts[start : start + _BATCH_SIZE]))
        for start in range(0, len(texts), _BATCH_SIZE)
    ]
    return np.concatenate(batches), predictor.bundle.classes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "openvino"),
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)",
    )
    parser.add_argument("--probabilities", type=Path, help="also save them to this .npy file")
    args = parser.parse_args(argv)

    examples = load_splits()[args.split]
    probabilities, classes = served_probabilities(
        [example.text for example in examples], args.model_dir, args.backend
    )
    if args.probabilities is not None:
        np.save(args.probabilities, probabilities)
    true_ids = np.array([classes.index(example.label) for example in examples])
    report = {
        "split": args.split,
        "backend": args.backend,
        **classification_metrics(true_ids, probabilities.argmax(axis=1), classes),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
