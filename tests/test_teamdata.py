"""The team-written data in model/data/: well-formed, and the dev set never trained on."""

from __future__ import annotations

from collections import Counter

import pytest

from model.corpus import CLASSES
from model.teamdata import (
    DEVSET_FILE,
    EMOJI_FILE,
    IDIOMS_FILE,
    IMPLICIT_FILE,
    IMPLICIT_REVIEWS_FILE,
    RATINGS_FILE,
    REVIEWS_FILE,
    TeamText,
    drop_near_duplicates,
    load_devset,
    load_emoji_set,
    load_idioms_set,
    load_implicit_set,
    load_ratings_set,
    load_team_reviews,
    near_duplicate,
    normalise,
    read_team_file,
)

KINDS = {
    "plain",
    "negation",
    "contrast",
    "sarcasm",
    "slang",
    "short",
    "factual_neutral",
    "question",
}


@pytest.fixture(scope="module")
def devset() -> list[TeamText]:
    return load_devset()


@pytest.fixture(scope="module")
def reviews() -> list[TeamText]:
    return read_team_file(REVIEWS_FILE)


def test_devset_is_balanced_across_twelve_domains(devset: list[TeamText]) -> None:
    assert len(devset) >= 720
    domains = Counter(row.domain for row in devset)
    assert len(domains) >= 12
    for domain in domains:
        labels = Counter(row.label for row in devset if row.domain == domain)
        assert labels == {label: 20 for label in CLASSES}, domain
    kinds = Counter(row.kind for row in devset)
    assert set(kinds) <= KINDS
    assert sum(count for kind, count in kinds.items() if kind != "plain") >= 0.15 * len(devset)


@pytest.fixture(scope="module")
def ratings() -> list[TeamText]:
    return load_ratings_set()


def test_ratings_set_is_balanced_across_the_dev_set_domains(ratings, devset) -> None:
    assert len(ratings) == 180
    domains = Counter(row.domain for row in ratings)
    assert set(domains) == {row.domain for row in devset}
    for domain in domains:
        labels = Counter(row.label for row in ratings if row.domain == domain)
        assert labels == {label: 5 for label in CLASSES}, domain
    assert Counter(row.kind for row in ratings) == {
        "rating_only": 84,
        "agrees": 60,
        "not_a_rating": 24,
        "hard": 12,
    }
    assert {row.label for row in ratings if row.kind == "not_a_rating"} == {"neutral"}


@pytest.fixture(scope="module")
def idioms() -> list[TeamText]:
    return load_idioms_set()


def test_idioms_set_is_balanced(idioms) -> None:
    assert Counter(row.label for row in idioms) == {label: 30 for label in CLASSES}
    assert {row.kind for row in idioms if row.label != "neutral"} == {"idiom"}
    assert {row.kind for row in idioms if row.label == "neutral"} <= KINDS


@pytest.fixture(scope="module")
def emoji() -> list[TeamText]:
    return load_emoji_set()


def test_emoji_set_is_balanced_and_every_text_holds_an_emoji(emoji) -> None:
    assert Counter(row.label for row in emoji) == {label: 30 for label in CLASSES}
    assert {row.kind for row in emoji} == {"alone", "agrees", "against", "neutral", "question"}
    assert all(max(row.text) >= "\u2190" for row in emoji)


@pytest.fixture(scope="module")
def implicit() -> list[TeamText]:
    return load_implicit_set()


def test_implicit_set_is_balanced_and_spans_the_dev_domains(implicit, devset) -> None:
    assert Counter(row.label for row in implicit) == {label: 30 for label in CLASSES}
    assert {row.kind for row in implicit if row.label != "neutral"} == {"implicit"}
    assert {row.kind for row in implicit if row.label == "neutral"} <= KINDS
    assert {row.domain for row in implicit} == {row.domain for row in devset}


def test_texts_are_unique_within_each_file(
    devset, reviews, ratings, idioms, emoji, implicit
) -> None:
    for rows in (devset, reviews, ratings, idioms, emoji, implicit):
        keys = [normalise(row.text) or row.text for row in rows]  # "😡" normalises to ""
        assert all(keys) and len(set(keys)) == len(keys)


def test_training_reviews_never_repeat_a_devset_text(devset, reviews) -> None:
    dev_keys = {normalise(row.text) for row in devset}
    assert not [row.text for row in reviews if normalise(row.text) in dev_keys]
    kept, dropped = drop_near_duplicates(reviews, [row.text for row in devset])
    assert dropped == [] and kept == reviews


def test_training_reviews_never_nearly_repeat_a_held_out_set_text(
    reviews, ratings, idioms, emoji, implicit
) -> None:
    held_out = [row.text for row in (*ratings, *idioms, *emoji, *implicit)]
    kept, dropped = drop_near_duplicates(reviews, held_out)
    assert dropped == [] and kept == reviews


def test_unused_implicit_reviews_could_join_training_as_they_are(
    devset, reviews, ratings, idioms, emoji, implicit
) -> None:
    candidates = read_team_file(IMPLICIT_REVIEWS_FILE)
    assert Counter(row.label for row in candidates) == {
        "negative": 107,
        "neutral": 102,
        "positive": 109,
    }
    others = [row.text for row in (*devset, *reviews, *ratings, *idioms, *emoji, *implicit)]
    kept, dropped = drop_near_duplicates(candidates, others)
    assert dropped == [] and kept == candidates


def test_near_duplicate_catches_small_rewordings() -> None:
    dev = ["Zip broke the second time I used it.", "Love it."]
    assert near_duplicate("zip broke the second time i wore it", dev) == dev[0]
    assert near_duplicate("LOVE IT!!!", dev) == dev[1]
    assert near_duplicate("The zip is metal and the lining is cotton.", dev) is None


def test_reviews_split_into_train_and_calibration_rows(reviews) -> None:
    splits = load_team_reviews()
    assert len(splits["train"]) + len(splits["validation"]) == len(reviews)
    assert 0.05 * len(reviews) < len(splits["validation"]) < 0.15 * len(reviews)
    assert {row.label for row in splits["validation"]} == set(CLASSES)
    assert load_team_reviews() == splits


def test_files_are_where_training_reads_them() -> None:
    assert DEVSET_FILE.parent == REVIEWS_FILE.parent == RATINGS_FILE.parent
    assert RATINGS_FILE.parent == IDIOMS_FILE.parent == EMOJI_FILE.parent == IMPLICIT_FILE.parent
    assert (DEVSET_FILE.parent / "README.md").is_file()
