"""The hyper-parameter search behind ``TrainingConfig``: validation split only.

    python -m model.search [--seeds 3] [--output reports/search.jsonl]

Each candidate changes a few fields of the shipped ``TrainingConfig`` and is trained with
several seeds (seed-to-seed spread is up to ±0.007 macro-F1, as large as most effects),
then scored on validation. The test split is never touched here. Takes ~12 minutes on
2 cores; its results are summarised in the model card (``model/README.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.corpus import load_splits
from model.evaluate import classification_metrics
from model.train import (
    TrainingConfig,
    fit_encoder,
    label_ids,
    train_model,
    use_tensorflow_backend,
)

# Each candidate: a name and the fields it changes from the shipped configuration.
CANDIDATES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "no class weights": {"class_weight_power": 0.0},
    "balanced class weights": {"class_weight_power": 1.0},
    "no label smoothing": {"label_smoothing": 0.0},
    "label smoothing 0.2": {"label_smoothing": 0.2},
    "dropout 0.5": {"dropout": 0.5},
    "3 epochs": {"epochs": 3},
    "lr 1e-3, 4 epochs": {"learning_rate": 1e-3, "epochs": 4},
    "vocabulary 10k": {"max_vocabulary": 10_000},
    "vocabulary 25k": {"max_vocabulary": 25_000},
    "sequence length 40": {"sequence_length": 40},
    "sequence length 96": {"sequence_length": 96},
    "unigrams only": {"ngram_size": 1, "sequence_length": 40},
    "up to trigrams": {"ngram_size": 3, "sequence_length": 96},
    "average pooling only": {"max_embedding_dim": 0},
    "embeddings 64 + 32": {"embedding_dim": 64, "max_embedding_dim": 32},
    "batch 128": {"batch_size": 128},
}


def evaluate_candidate(
    name: str, changes: dict[str, Any], seeds: int, splits: dict[str, Any]
) -> dict[str, Any]:
    """Train ``seeds`` models of one candidate and score each on validation."""
    started = time.perf_counter()
    config = dataclasses.replace(TrainingConfig(), **changes)
    encoder = fit_encoder([example.text for example in splits["train"]], config)
    validation_ids = encoder.encode_batch([example.text for example in splits["validation"]])
    truth = label_ids(splits["validation"])
    scores = []
    for offset in range(seeds):
        seeded = dataclasses.replace(config, seed=config.seed + offset)
        model = train_model(seeded, encoder, splits["train"])
        predicted = np.asarray(model.predict_on_batch(validation_ids)).argmax(axis=1)
        scores.append(classification_metrics(truth, predicted))
    f1s = [score["macro_f1"] for score in scores]
    return {
        "name": name,
        "changes": changes,
        "macro_f1_mean": round(statistics.mean(f1s), 4),
        "macro_f1_min": min(f1s),
        "macro_f1_max": max(f1s),
        "accuracy_mean": round(statistics.mean(score["accuracy"] for score in scores), 4),
        "positive_f1_mean": round(
            statistics.mean(score["per_class"]["positive"]["f1"] for score in scores), 4
        ),
        "seconds": round(time.perf_counter() - started),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Search hyper-parameters on validation.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--output", type=Path, help="also append JSON lines to this file")
    args = parser.parse_args(argv)

    use_tensorflow_backend()
    splits = load_splits()
    for name, changes in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        result = evaluate_candidate(name, changes, args.seeds, splits)
        line = json.dumps(result)
        print(line, flush=True)
        if args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with args.output.open("a", encoding="utf-8") as file:
                file.write(line + "\n")


if __name__ == "__main__":
    main()
