"""The evaluation report: ``make evaluate`` (``python -m model.report``).

Scores every shipped version (through ``Predictor``, on the serving backend), VADER and
the TF-IDF + logistic regression baselines on every labelled set the project has, and
writes ``model/sentiment/<v>/evaluation.md`` for each version, with its pictures in
``model/sentiment/<v>/evaluation/``: confusion matrices, per-domain accuracy, calibration
curves and the 20 worst errors on the dev set. Sets: the team's dev set (overall, per
domain, per kind), ratings set (overall, per kind), idioms set and emoji set (overall, per
kind), implicit set (overall), the tweet test split, and the GoEmotions test split when its
folder is there. Nothing is trained on the dev, ratings, idioms, emoji or implicit sets;
the baselines are fitted here, on training data.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.corpus import CLASSES
from model.corpus import load_splits as load_tweet_splits
from model.evaluate import classification_metrics, expected_calibration_error
from model.teamdata import (
    TeamText,
    load_devset,
    load_emoji_set,
    load_idioms_set,
    load_implicit_set,
    load_ratings_set,
)

SENTIMENT_DIR = Path(__file__).resolve().parent / "sentiment"
REPORT_FILE = "evaluation.md"
PICTURES_DIR = "evaluation"
WORST_ERRORS = 20
CALIBRATION_BINS = 10


@dataclass
class LabelledSet:
    name: str
    title: str
    texts: list[str]
    truth: np.ndarray
    rows: list[TeamText] | None = None  # dev set rows (domain, kind)


@dataclass
class System:
    name: str
    # set name → probabilities (None for a rule list without them) and predicted ids
    probabilities: dict[str, np.ndarray | None] = dataclasses.field(default_factory=dict)
    predicted: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def shipped_versions() -> list[str]:
    return sorted(
        (path.name for path in SENTIMENT_DIR.iterdir() if (path / "metadata.json").is_file()),
        key=int,
    )


def labelled_sets(goemotions_dir: Path | None) -> list[LabelledSet]:
    def ids(rows: Sequence[Any]) -> np.ndarray:
        return np.array([CLASSES.index(row.label) for row in rows], dtype=np.int32)

    def team_set(name: str, title: str, rows: list[TeamText]) -> LabelledSet:
        return LabelledSet(name, title, [r.text for r in rows], ids(rows), rows)

    ratings, idioms, emoji = load_ratings_set(), load_idioms_set(), load_emoji_set()
    implicit = load_implicit_set()
    tweets = load_tweet_splits()["test"]
    sets = [
        team_set("devset", "team dev set (720 texts, 12 domains)", load_devset()),
        team_set(
            "ratings", f"team ratings set ({len(ratings)} texts with ratings or numbers)", ratings
        ),
        team_set("idioms", f"team idioms set ({len(idioms)} set phrases and plain facts)", idioms),
        team_set(
            "emoji", f"team emoji set ({len(emoji)} short reviews and facts with emoji)", emoji
        ),
        team_set(
            "implicit",
            f"team implicit set ({len(implicit)} verdicts told as facts, and plain facts)",
            implicit,
        ),
        LabelledSet("tweet_test", "tweet test split", [e.text for e in tweets], ids(tweets)),
    ]
    if goemotions_dir is not None:
        from model.goemotions import load_goemotions

        test = load_goemotions(goemotions_dir)["test"]
        sets.append(
            LabelledSet(
                "goemotions_test", "GoEmotions test (3 classes)", [e.text for e in test], ids(test)
            )
        )
    return sets


def version_system(
    version: str, sets: Sequence[LabelledSet], backend: str, precision: str | None = None
) -> System:
    """``version`` as the server runs it: at its folder's precision, or at ``precision``
    (OpenVINO's ``INFERENCE_PRECISION``; the system is then named after it)."""
    from app.serving.predictor import Predictor

    predictor = Predictor.load(
        SENTIMENT_DIR / version, backend=backend, inference_threads=1, precision=precision
    )
    system = System(f"version {version}" + (f", {precision}" if precision else ""))
    for labelled in sets:
        probabilities = np.concatenate(
            [
                predictor.predict_proba(labelled.texts[start : start + 512])
                for start in range(0, len(labelled.texts), 512)
            ]
        )
        system.probabilities[labelled.name] = probabilities
        system.predicted[labelled.name] = probabilities.argmax(axis=1)
    return system


def vader_system(sets: Sequence[LabelledSet]) -> System:
    """VADER's compound score with its authors' thresholds (±0.05)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    system = System("VADER")
    for labelled in sets:
        compound = np.array([analyzer.polarity_scores(t)["compound"] for t in labelled.texts])
        system.probabilities[labelled.name] = None
        system.predicted[labelled.name] = np.where(
            compound >= 0.05, 2, np.where(compound <= -0.05, 0, 1)
        )
    return system


def tfidf_system(
    name: str, texts: Sequence[str], labels: np.ndarray, weights: np.ndarray | None, sets
) -> System:
    """Version 1's baseline: TF-IDF word 1-2-grams + logistic regression, same tokenizer."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from app.serving.preprocessing import tokenize

    vectorizer = TfidfVectorizer(
        tokenizer=tokenize,
        lowercase=False,
        token_pattern=None,
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
    )
    features = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(max_iter=1000).fit(features, labels, sample_weight=weights)
    system = System(name)
    for labelled in sets:
        probabilities = classifier.predict_proba(vectorizer.transform(labelled.texts))
        system.probabilities[labelled.name] = probabilities
        system.predicted[labelled.name] = probabilities.argmax(axis=1)
    return system


def baseline_systems(sets: Sequence[LabelledSet], goemotions_dir: Path | None) -> list[System]:
    tweets = load_tweet_splits()["train"]
    labels = np.array([CLASSES.index(e.label) for e in tweets])
    systems = [tfidf_system("TF-IDF (tweets)", [e.text for e in tweets], labels, None, sets)]
    if goemotions_dir is not None:
        from model import train_v2

        config = train_v2.TrainingConfigV2()
        data = train_v2.training_set(config, train_v2.load_sources(goemotions_dir))
        systems.append(
            tfidf_system("TF-IDF (v2 data)", data.texts, data.labels, data.weights, sets)
        )
    return systems


def _share(predicted: np.ndarray, label: str) -> float:
    return float(np.mean(predicted == CLASSES.index(label)))


def summary_rows(systems: Sequence[System], labelled: LabelledSet) -> list[str]:
    lines = [
        "| system | accuracy | macro-F1 | ECE | predicted negative "
        "| negative F1 | neutral F1 | positive F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    truth_negative = _share(labelled.truth, "negative")
    for system in systems:
        predicted = system.predicted[labelled.name]
        metrics = classification_metrics(labelled.truth, predicted)
        probabilities = system.probabilities[labelled.name]
        ece = (
            f"{expected_calibration_error(labelled.truth, probabilities):.3f}"
            if probabilities is not None
            else "n/a"
        )
        f1 = [metrics["per_class"][c]["f1"] for c in CLASSES]
        lines.append(
            f"| {system.name} | {metrics['accuracy']:.3f} | **{metrics['macro_f1']:.3f}** | "
            f"{ece} | {_share(predicted, 'negative'):.1%} (true {truth_negative:.1%}) | "
            + " | ".join(f"{value:.3f}" for value in f1)
            + " |"
        )
    return lines


def group_table(systems: Sequence[System], dev: LabelledSet, column: str) -> tuple[list[str], dict]:
    """Accuracy per domain or kind of a team set, one column per system."""
    assert dev.rows is not None
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(dev.rows):
        groups.setdefault(getattr(row, column), []).append(index)
    header = f"| {column} | rows | " + " | ".join(s.name for s in systems) + " |"
    lines = [header, "|---|---|" + "---|" * len(systems)]
    values: dict[str, dict[str, float]] = {}
    for group, indexes in sorted(groups.items()):
        values[group] = {
            s.name: float(np.mean(s.predicted[dev.name][indexes] == dev.truth[indexes]))
            for s in systems
        }
        lines.append(
            f"| {group} | {len(indexes)} | "
            + " | ".join(f"{values[group][s.name]:.2f}" for s in systems)
            + " |"
        )
    return lines, values


def plot_confusion(system: System, sets: Sequence[LabelledSet], path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8))
    for axis, labelled in zip(np.atleast_1d(axes), sets, strict=True):
        matrix = np.array(
            classification_metrics(labelled.truth, system.predicted[labelled.name])[
                "confusion_matrix"
            ]
        )
        shares = matrix / matrix.sum(axis=1, keepdims=True)
        axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i in range(3):
            for j in range(3):
                axis.text(
                    j,
                    i,
                    f"{matrix[i, j]}\n{shares[i, j]:.0%}",
                    ha="center",
                    va="center",
                    color="white" if shares[i, j] > 0.6 else "black",
                    fontsize=8,
                )
        axis.set_xticks(range(3), CLASSES, fontsize=8)
        axis.set_yticks(range(3), CLASSES, fontsize=8)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(labelled.name, fontsize=10)
    figure.suptitle(f"{system.name}: confusion matrices (row = true class)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_groups(values: dict[str, dict[str, float]], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    groups = list(values)
    names = list(next(iter(values.values())))
    width = 0.8 / len(names)
    figure, axis = plt.subplots(figsize=(max(7.0, 0.8 * len(groups)), 3.8))
    for index, name in enumerate(names):
        axis.bar(
            np.arange(len(groups)) + index * width,
            [values[g][name] for g in groups],
            width,
            label=name,
        )
    axis.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, rotation=35, ha="right")
    axis.axhline(0.7, color="grey", linewidth=0.8, linestyle="--")
    axis.set_ylim(0, 1.15)  # room for the legend above the bars
    axis.set_yticks(np.linspace(0, 1, 6))
    axis.set_ylabel("accuracy")
    axis.set_title(title, fontsize=11)
    axis.legend(fontsize=7, ncol=len(names), loc="upper center")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_calibration(systems: Sequence[System], sets: Sequence[LabelledSet], path: Path) -> None:
    """Reliability curves: accuracy against mean confidence per confidence bin."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4.0))
    for axis, labelled in zip(np.atleast_1d(axes), sets, strict=True):
        axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
        for system in systems:
            probabilities = system.probabilities[labelled.name]
            if probabilities is None:
                continue
            confidence = probabilities.max(axis=1)
            correct = probabilities.argmax(axis=1) == labelled.truth
            edges = np.linspace(1 / 3, 1, CALIBRATION_BINS + 1)
            which = np.clip(np.digitize(confidence, edges) - 1, 0, CALIBRATION_BINS - 1)
            xs, ys = [], []
            for index in range(CALIBRATION_BINS):
                members = which == index
                if members.sum() >= 5:
                    xs.append(confidence[members].mean())
                    ys.append(correct[members].mean())
            axis.plot(xs, ys, marker="o", markersize=3, label=system.name)
        axis.set_xlim(0.3, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("confidence (top probability)")
        axis.set_ylabel("accuracy")
        axis.set_title(labelled.name, fontsize=10)
        axis.legend(fontsize=7)
    figure.suptitle("calibration curves (on the diagonal = calibrated)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def worst_errors(system: System, dev: LabelledSet) -> list[str]:
    """The dev-set texts the system gets wrong with the highest confidence."""
    probabilities = system.probabilities[dev.name]
    assert probabilities is not None and dev.rows is not None
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != dev.truth)
    order = wrong[np.argsort(-probabilities[wrong].max(axis=1), kind="stable")][:WORST_ERRORS]
    lines = [
        "| # | text | domain | kind | true | predicted | probability |",
        "|---|---|---|---|---|---|---|",
    ]
    for rank, index in enumerate(order, start=1):
        row = dev.rows[index]
        text = row.text.replace("|", "\\|")
        lines.append(
            f"| {rank} | {text} | {row.domain} | {row.kind} | {row.label} | "
            f"{CLASSES[predicted[index]]} | {probabilities[index].max():.2f} |"
        )
    return lines


def write_report(
    version: str, systems: Sequence[System], sets: Sequence[LabelledSet], backend: str
) -> Path:
    folder = SENTIMENT_DIR / version
    pictures = folder / PICTURES_DIR
    pictures.mkdir(exist_ok=True)
    system = next(s for s in systems if s.name == f"version {version}")
    dev = next(s for s in sets if s.name == "devset")
    lines = [
        f"# Evaluation of `sentiment` version {version}",
        "",
        f"Written by `make evaluate` (`python -m model.report`); every version served through "
        f"`Predictor` on the {backend} backend, as the server runs it; a version named with "
        "`, int8` is its int8 IR, which the server runs under `INFERENCE_PRECISION=int8`. VADER: "
        "`vaderSentiment` compound score, ±0.05 thresholds. TF-IDF baselines: word 1–2-grams + "
        "logistic regression with the model's tokenizer, fitted on the tweet training split, "
        "and on version 2's weighted training mix. ECE: 15 equal-width confidence bins "
        "(n/a: VADER gives no probabilities). The dev set was never trained on.",
        "",
    ]
    for labelled in sets:
        lines += [f"## {labelled.title}", "", *summary_rows(systems, labelled), ""]
    domain_lines, domain_values = group_table(systems, dev, "domain")
    kind_lines, kind_values = group_table(systems, dev, "kind")
    rating_lines, _ = group_table(systems, next(s for s in sets if s.name == "ratings"), "kind")
    emoji_lines, _ = group_table(systems, next(s for s in sets if s.name == "emoji"), "kind")
    plot_confusion(system, sets, pictures / "confusion.png")
    plot_groups(domain_values, "dev set: accuracy per domain", pictures / "domains.png")
    plot_groups(kind_values, "dev set: accuracy per kind", pictures / "kinds.png")
    plot_calibration([s for s in systems if s.probabilities], sets, pictures / "calibration.png")
    lines += [
        "## Dev set per domain (accuracy)",
        "",
        *domain_lines,
        "",
        f"![accuracy per domain]({PICTURES_DIR}/domains.png)",
        "",
        "## Dev set per kind (accuracy)",
        "",
        "`plain` is an ordinary review; the others are the hard kinds.",
        "",
        *kind_lines,
        "",
        f"![accuracy per kind]({PICTURES_DIR}/kinds.png)",
        "",
        "## Ratings set per kind (accuracy)",
        "",
        "`rating_only`: the words say little, the rating decides; `agrees`: words and rating "
        'agree; `hard`: "zero stars if I could"; `not_a_rating`: numbers that are no rating '
        '("1/2 cup", "a 5 star hotel"), all neutral. Written to test ratings, so it also '
        "chose version 2's `rating_weight`: its figures there are optimistic.",
        "",
        *rating_lines,
        "",
        "## Emoji set per kind (accuracy)",
        "",
        '`alone`: the emoji says it ("The sequel 🤦"); `agrees`: words and emoji agree; '
        '`against`: the emoji turns the words ("Lovely view of a brick wall 🙄"); `neutral` '
        "and `question`: facts and questions with emoji that carry no tone. Its emoji are "
        "among those the team rated (`EMOJI_POLARITY`), and it chose version 2's "
        "`emoji_weight`: its figures there are optimistic.",
        "",
        *emoji_lines,
        "",
        f"## Confusion matrices of version {version}",
        "",
        f"![confusion matrices]({PICTURES_DIR}/confusion.png)",
        "",
        "## Calibration",
        "",
        f"![calibration curves]({PICTURES_DIR}/calibration.png)",
        "",
        f"## The {WORST_ERRORS} worst errors of version {version} on the dev set",
        "",
        "Wrong answers, the most confident first.",
        "",
        *worst_errors(system, dev),
        "",
    ]
    path = folder / REPORT_FILE
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="*", help="default: every folder in model/sentiment")
    parser.add_argument("--goemotions", type=Path, help="default: ../shared/data/goemotions")
    parser.add_argument(
        "--without-goemotions",
        action="store_true",
        help="write the reports without GoEmotions' test split and the v2-data baseline",
    )
    parser.add_argument(
        "--backend",
        choices=("openvino", "tensorflow"),
        default=os.environ.get("KERAS_BACKEND", "openvino"),
    )
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    from model.goemotions import DEFAULT_DIR, check_dir

    goemotions_dir: Path | None = (
        None if args.without_goemotions else args.goemotions or DEFAULT_DIR
    )
    if goemotions_dir is not None:
        try:
            check_dir(goemotions_dir)
        except FileNotFoundError as error:  # the committed reports have them: never less
            parser.exit(
                2,
                f"{error}: the reports would lose its test split and the v2-data baseline; "
                "pass --without-goemotions to write them without\n",
            )
    sets = labelled_sets(goemotions_dir)
    versions = shipped_versions()
    systems = [version_system(v, sets, args.backend) for v in versions]
    if args.backend == "openvino":  # the int8 IRs an operator may choose instead
        from app.serving.predictor import ships_int8

        int8 = [v for v in versions if ships_int8(SENTIMENT_DIR / v)]
        systems += [version_system(v, sets, args.backend, "int8") for v in int8]
    systems += [vader_system(sets), *baseline_systems(sets, goemotions_dir)]
    for version in args.versions or versions:
        print(f"wrote {write_report(version, systems, sets, args.backend)}")


if __name__ == "__main__":
    main()
