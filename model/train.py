"""Rebuild the shipped model from the corpus: ``make model`` (``python -m model.train``).

Fits the shared ``TextEncoder`` on the training split, trains a small Keras model with
fixed seeds, trains the TF-IDF + logistic regression baseline on the same split, scores
both on validation and test, and writes ``model/sentiment/1/`` (``model.keras``,
``preprocessing.json``, ``metadata.json``). The test split is used for the final report
only: every choice was made on validation (see ``model/search.py`` and the model card).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.serving.predictor import (
    METADATA_FILE,
    MODEL_FILE,
    PREPROCESSING_FILE,
    write_checksums,
)
from app.serving.preprocessing import TextEncoder, tokenize
from model import known_answers
from model.corpus import (
    CLASSES,
    CORPUS_FILE,
    PACKAGE,
    PACKAGE_VERSION,
    SPLITS,
    Example,
    corpus_path,
    file_sha256,
    load_splits,
)
from model.evaluate import DEFAULT_MODEL_DIR, classification_metrics

MODEL_NAME = "sentiment"
MODEL_VERSION = "1"
# Known answers (model/known_answers.py) are kept when the model gets them right with at
# least this confidence (version 1, trained on tweets, is less sure of neutral texts).
KNOWN_ANSWER_CONFIDENCE = 0.7
# The serving code's names for the three files; a replacement model provides all three.
ARTIFACT_FILES = (MODEL_FILE, PREPROCESSING_FILE, METADATA_FILE)


@dataclass(frozen=True)
class TrainingConfig:
    """Every hyper-parameter of the shipped model (chosen on validation, see search.py)."""

    seed: int = 1337
    # Encoder: tokens, then their bigrams that are in the vocabulary (fastText-style).
    max_vocabulary: int = 20_000
    min_count: int = 2
    ngram_size: int = 2
    sequence_length: int = 64
    # Network: Embedding -> [average pool (masked), max pool] -> dropout -> softmax.
    embedding_dim: int = 32
    max_embedding_dim: int = 64  # 0: average pooling only
    dropout: float = 0.3
    # Class weight = (n / (k * count)) ** power: 0 none, 1 fully balanced.
    class_weight_power: float = 0.5
    label_smoothing: float = 0.1
    learning_rate: float = 2e-3
    batch_size: int = 64
    epochs: int = 2


def use_tensorflow_backend() -> None:
    """Training runs on TensorFlow: choose it before Keras is first imported, quietly."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"Keras was already imported with {keras.backend.backend()!r}")


def fit_encoder(texts: Sequence[str], config: TrainingConfig) -> TextEncoder:
    """The encoder exactly as training fits it (the parity test refits it this way)."""
    return TextEncoder.fit(
        texts,
        max_vocabulary=config.max_vocabulary,
        sequence_length=config.sequence_length,
        ngram_size=config.ngram_size,
        min_count=config.min_count,
    )


def label_ids(examples: Sequence[Example]) -> np.ndarray:
    return np.array([CLASSES.index(example.label) for example in examples], dtype=np.int32)


def class_weights(labels: np.ndarray, power: float) -> dict[int, float]:
    """Inverse-frequency weights softened by ``power`` (the minority class is ``positive``)."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    weights = (len(labels) / (len(CLASSES) * counts)) ** power
    return {i: float(weight) for i, weight in enumerate(weights)}


def build_model(config: TrainingConfig, vocabulary_size: int) -> Any:
    """The network: one int32 input of token ids, one softmax output over ``CLASSES``."""
    import keras

    token_ids = keras.Input(shape=(config.sequence_length,), dtype="int32", name="token_ids")
    # Two views of the same ids. The average (masked, so padding does not dilute a short
    # text) carries the overall tone; the max keeps one strong cue ("love", "worst") from
    # being averaged away in a longer text. The max has its own unmasked table because
    # GlobalMaxPooling1D does not support masks (Keras warns when it is given one).
    averaged = keras.layers.Embedding(
        vocabulary_size, config.embedding_dim, mask_zero=True, name="average_embedding"
    )(token_ids)
    pooled = keras.layers.GlobalAveragePooling1D()(averaged)
    if config.max_embedding_dim:
        maximised = keras.layers.Embedding(
            vocabulary_size, config.max_embedding_dim, name="max_embedding"
        )(token_ids)
        maximum = keras.layers.GlobalMaxPooling1D()(maximised)
        pooled = keras.layers.Concatenate()([pooled, maximum])
    x = keras.layers.Dropout(config.dropout)(pooled)
    probabilities = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    model = keras.Model(token_ids, probabilities, name=MODEL_NAME)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        # Smoothing: the corpus' labels are crowd-sourced and noisy (see the model card).
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    return model


def train_model(
    config: TrainingConfig, encoder: TextEncoder, train: Sequence[Example], verbose: int = 0
) -> Any:
    """Train the network on the encoded training split, seeds fixed."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    # Deterministic kernels, so that a rerun of `make model` gives the same weights;
    # measured: no cost here (two epochs take ~10 s with or without).
    tf.config.experimental.enable_op_determinism()
    labels = label_ids(train)
    model = build_model(config, encoder.vocabulary_size)
    model.fit(
        encoder.encode_batch([example.text for example in train]),
        keras.utils.to_categorical(labels, len(CLASSES)),
        batch_size=config.batch_size,
        epochs=config.epochs,
        class_weight=class_weights(labels, config.class_weight_power),
        shuffle=True,
        verbose=verbose,
    )
    return model


def baseline_predictions(
    train: Sequence[Example], evaluated: dict[str, Sequence[Example]]
) -> dict[str, np.ndarray]:
    """TF-IDF word 1-2-grams (min_df 2, sublinear tf) + logistic regression, on the same
    split and the same tokenizer as the model, so only the learner differs."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        tokenizer=tokenize,
        lowercase=False,
        token_pattern=None,
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
    )
    features = vectorizer.fit_transform([example.text for example in train])
    classifier = LogisticRegression(max_iter=1000).fit(features, label_ids(train))
    return {
        name: classifier.predict(vectorizer.transform([example.text for example in examples]))
        for name, examples in evaluated.items()
    }


def save_artifact(directory: Path, model: Any, encoder: TextEncoder) -> None:
    """Write the model and its encoder config (``metadata.json`` comes once it is scored)."""
    import keras

    # An uncompiled model over the same layers: the file then holds no optimizer state
    # (Adam's two moments would triple its size), only what inference needs.
    keras.Model(model.inputs, model.outputs, name=model.name).save(directory / MODEL_FILE)
    with (directory / PREPROCESSING_FILE).open("w", encoding="utf-8") as file:
        json.dump(encoder.to_config(), file, ensure_ascii=False)
        file.write("\n")


def replace_artifact(staging: Path, target: Path) -> None:
    """Make ``target`` hold exactly the staged files."""
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    for name in ARTIFACT_FILES:
        shutil.copyfile(staging / name, target / name)


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    with (directory / METADATA_FILE).open("w", encoding="utf-8") as file:
        json.dump(metadata, file, indent=2, ensure_ascii=False)
        file.write("\n")


def library_versions() -> dict[str, str]:
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
    }


def saved_model_predictions(
    directory: Path, evaluated: dict[str, Sequence[Example]]
) -> dict[str, np.ndarray]:
    """Predicted class ids from the artifact as written to disk, re-loaded the way the
    server loads it (TensorFlow backend), so the recorded metrics are the served model's."""
    import keras

    model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
    with (directory / PREPROCESSING_FILE).open(encoding="utf-8") as file:
        encoder = TextEncoder.from_config(json.load(file))
    return {
        name: np.asarray(
            model.predict_on_batch(encoder.encode_batch([e.text for e in examples]))
        ).argmax(axis=1)
        for name, examples in evaluated.items()
    }


def known_answer_probabilities(directory: Path) -> np.ndarray:
    """The saved artifact's probabilities for every known-answer candidate, in order."""
    import keras

    model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
    with (directory / PREPROCESSING_FILE).open(encoding="utf-8") as file:
        encoder = TextEncoder.from_config(json.load(file))
    texts = [text for text, _ in known_answers.CANDIDATES]
    return np.asarray(model.predict_on_batch(encoder.encode_batch(texts)))


def summary_table(metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A short text table of accuracy and macro-F1 per system and split."""
    lines = [f"{'':10} {'split':12} {'accuracy':>9} {'macro-F1':>9}"]
    for system, by_split in metrics.items():
        for split, values in by_split.items():
            lines.append(
                f"{system:10} {split:12} {values['accuracy']:9.4f} {values['macro_f1']:9.4f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retrain a shipped sentiment model version.")
    parser.add_argument("--version", choices=("1", "2", "3", "4"), default="1")
    parser.add_argument("--output", type=Path, help="default: model/sentiment/<version>")
    parser.add_argument("--verbose", action="store_true", help="show Keras progress (v1)")
    parser.add_argument(
        "--goemotions",
        type=Path,
        help="GoEmotions folder for versions 2 to 4 (default: ../shared/data/goemotions)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds for version 2's spread")
    parser.add_argument(
        "--package-only",
        action="store_true",
        help="versions 3 and 4: export the trained model.keras to the folder's OpenVINO IR again",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.package_only:
        if args.version not in ("3", "4"):
            parser.exit(2, "model.train: --package-only is for versions 3 and 4\n")
        use_tensorflow_backend()
        from model import train_v3

        output = args.output or train_v3.MODEL_BASE / args.version
        serving = train_v3.repackage(output)["serving"]
        write_checksums(output)
        print(f"packaged {output / 'model.xml'}: {serving}")
        return
    if args.version in ("2", "3", "4"):
        from model.goemotions import DEFAULT_DIR, check_dir

        # Checked before TensorFlow loads: a missing folder fails in a second.
        try:
            goemotions_dir = check_dir(args.goemotions or DEFAULT_DIR)
        except FileNotFoundError as error:
            parser.exit(2, f"model.train: {error}\n")
    use_tensorflow_backend()
    if args.version == "2":
        from model import train_v2

        output = args.output or train_v2.DEFAULT_OUTPUT
        metadata = train_v2.run(output, goemotions_dir, args.seeds)
        write_checksums(output)
        train_v2.print_summary(metadata)
        print(f"wrote {output} in {time.perf_counter() - started:.0f} s")
        return
    if args.version in ("3", "4"):
        from model import train_v3

        output = args.output or train_v3.MODEL_BASE / args.version
        metadata = train_v3.run(output, goemotions_dir, args.version)
        write_checksums(output)
        train_v3.print_summary(metadata)
        print(f"wrote {output} in {time.perf_counter() - started:.0f} s")
        return
    args.output = args.output or DEFAULT_MODEL_DIR
    config = TrainingConfig()
    path = corpus_path()
    splits = load_splits(path)
    evaluated = {name: splits[name] for name in ("validation", "test")}
    print({name: len(examples) for name, examples in splits.items()}, file=sys.stderr)

    encoder = fit_encoder([example.text for example in splits["train"]], config)
    model = train_model(config, encoder, splits["train"], verbose=int(args.verbose) * 2)
    truth = {name: label_ids(examples) for name, examples in evaluated.items()}

    # Written to a scratch folder first: a failed run leaves the shipped artifact intact.
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        save_artifact(staging, model, encoder)
        predictions = {
            "model": saved_model_predictions(staging, evaluated),
            "baseline": baseline_predictions(splits["train"], evaluated),
        }
        metrics = {
            system: {
                name: classification_metrics(truth[name], predicted[name]) for name in evaluated
            }
            for system, predicted in predictions.items()
        }
        write_metadata(
            staging,
            {
                "name": MODEL_NAME,
                "version": MODEL_VERSION,
                "classes": list(CLASSES),
                "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "corpus": {
                    "package": f"{PACKAGE}=={PACKAGE_VERSION}",
                    "file": CORPUS_FILE,
                    "sha256": file_sha256(path),
                },
                "split": {name: len(splits[name]) for name in SPLITS},
                "metrics": metrics,
                "training": {
                    **dataclasses.asdict(config),
                    "vocabulary_size": encoder.vocabulary_size,
                    "parameters": int(model.count_params()),
                },
                "libraries": library_versions(),
                # Checked by the server at load: a reordered class list is refused.
                "known_answers": known_answers.choose(
                    known_answer_probabilities(staging), CLASSES, KNOWN_ANSWER_CONFIDENCE
                ),
            },
        )
        replace_artifact(staging, args.output)
    write_checksums(args.output)

    print(summary_table(metrics))
    test = metrics["model"]["test"]["macro_f1"], metrics["baseline"]["test"]["macro_f1"]
    print(f"test macro-F1: model {test[0]:.4f} vs baseline {test[1]:.4f}")
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
