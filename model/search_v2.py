"""The choices behind ``TrainingConfigV2``: the dev set and the tweet validation split.

    python -m model.search_v2 [--only NAME ...] [--goemotions DIR] [--output FILE.jsonl]

Each candidate changes a few fields of version 2's configuration; one seed each (the
three-seed spread of the shipped configuration, recorded in its metadata, is about ±0.008
dev macro-F1). Scored uncalibrated except for the temperature fitted as training fits it.
The dev set is used to choose, never to train; the tweet test split is never touched here.
Takes about a minute per candidate on 2 idle cores. The results are in the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.train import use_tensorflow_backend

CANDIDATES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "GoEmotions weight 1": {"goemotions_weight": 1.0},
    "GoEmotions weight 0.4": {"goemotions_weight": 0.4},
    "no GoEmotions": {"goemotions_weight": 0.0},
    "team reviews x8": {"team_weight": 8.0},
    "lexicon and topic words at 0.5": {"lexicon_weight": 0.5, "topic_weight": 0.5},
    "no lexicon words": {"lexicon_weight": 0.0},
    "no topic words": {"topic_weight": 0.0},
    "no negation scope": {"negation_scope": 0},
    "no lexicon tokens": {"lexicon_features": False},
    "embeddings 48 + 96, vocabulary 25k": {
        "embedding_dim": 48,
        "max_embedding_dim": 96,
        "max_vocabulary": 25_000,
    },
    "vocabulary 40k": {"max_vocabulary": 40_000},
    "no character n-grams (second release)": {"char_length": 0},
    "character n-grams: 20k": {"max_char_vocabulary": 20_000},
    "2 epochs": {"epochs": 2},
    "4 epochs": {"epochs": 4},
    "lr 1e-3": {"learning_rate": 1e-3},
    "dropout 0.2": {"dropout": 0.2},
    "balanced class weights": {"class_weight_power": 1.0},
    "no label smoothing": {"label_smoothing": 0.0},
    "written labels unsmoothed": {"written_label_smoothing": 0.0},
    "no label smoothing anywhere": {"written_label_smoothing": 0.0, "label_smoothing": 0.0},
    "written labels unsmoothed, crowd 0.05": {
        "written_label_smoothing": 0.0,
        "label_smoothing": 0.05,
    },
    "tweet class weights ^0.5": {"tweet_class_weight_power": 0.5},
    "calibration: every set weighs the same": {"calibration_team_weight": 1.0},
    "calibration: team reviews weigh 8": {"calibration_team_weight": 8.0},
    # The tweets weigh 1; weighing them k times more = the other sources divided by k.
    "tweets weigh 2": {
        "goemotions_weight": 0.1,
        "team_weight": 2.0,
        "lexicon_weight": 0.5,
        "topic_weight": 0.5,
    },
}


def evaluate_candidate(name: str, changes: dict[str, Any], sources: Any) -> dict[str, Any]:
    from model import train_v2

    started = time.perf_counter()
    config = dataclasses.replace(train_v2.TrainingConfigV2(), **changes)
    data = train_v2.training_set(config, sources)
    encoder = train_v2.fit_encoder(data.texts, config, sources.lexicon)
    model, temperature, _ = train_v2.train_and_calibrate(config, sources, data, encoder)
    sets = train_v2.evaluation_sets(sources)
    result: dict[str, Any] = {"name": name, "changes": changes, "temperature": temperature}
    for set_name in ("devset", "tweet_validation", "team_validation", "goemotions_validation"):
        texts, truth = sets[set_name]
        probabilities = model.predict_on_batch(encoder.encode_batch(texts))
        metrics = train_v2.scores(truth, probabilities)
        result[set_name] = {key: metrics[key] for key in ("macro_f1", "ece")}
        if set_name == "devset":
            breakdown = train_v2.devset_breakdown(sources.devset, probabilities)
            result[set_name]["worst_domain_macro_f1"] = min(
                group["macro_f1"] for group in breakdown["domain"].values()
            )
            result[set_name]["predicted_negative_share"] = metrics["predicted_share"]["negative"]
    result["seconds"] = round(time.perf_counter() - started)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--goemotions", type=Path, help="default: ../shared/data/goemotions")
    parser.add_argument("--output", type=Path, help="also append JSON lines to this file")
    args = parser.parse_args(argv)

    use_tensorflow_backend()
    from model import train_v2
    from model.goemotions import DEFAULT_DIR, check_dir

    sources = train_v2.load_sources(check_dir(args.goemotions or DEFAULT_DIR))
    for name, changes in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        line = json.dumps(evaluate_candidate(name, changes, sources))
        print(line, flush=True)
        if args.output is not None:
            with args.output.open("a", encoding="utf-8") as file:
                file.write(line + "\n")


if __name__ == "__main__":
    main()
