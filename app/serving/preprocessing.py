"""Text → model input. The one module that training and serving both import.

Training (``model/train.py``) and the server (``app/predictor.py``) call the same
``standardize`` / ``tokenize`` / ``TextEncoder``, so the two cannot drift apart
(training/serving skew is the classic bug of this field). Pure Python and NumPy:
no Flask, no Keras, so it is cheap to import and to test.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Placeholder tokens. They start with "xx" so they cannot collide with a real word
# after standardisation (which never produces "xx" + letters from a URL or mention).
URL_TOKEN = "xxurl"
USER_TOKEN = "xxuser"
NUMBER_TOKEN = "xxnum"
SMILE_TOKEN = "xxsmile"
FROWN_TOKEN = "xxfrown"

PAD_ID = 0
OOV_ID = 1
RESERVED_IDS = 2  # ids below this are padding and out-of-vocabulary

# UTF-8 bytes that were decoded as CP1252 or Latin-1 ("â€™" for "’", "Ã©" for "é"):
# a lead byte followed by one to three continuation bytes, as those encodings show them.
_UTF8_AS_CP1252 = re.compile(
    "[\xc2-\xf4][\x80-\xbf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6"
    "\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{1,3}"
)
_C1_CONTROLS = re.compile(r"[\x80-\x9f]")
# Mojibake from a double decoding (e.g. "Õ¢_\x8aÎ_\x86¢" for an apostrophe in the
# corpus): two or more Latin-1 supplement characters in a row, optionally glued by
# underscores. A real accented word ("café", "naïve") has them one at a time.
_MOJIBAKE = re.compile(r"[\xa0-\xff](?:_*[\xa0-\xff])+_?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"(?:https?://|www\.)\S*")  # applied after casefold
_MENTION = re.compile(r"@\w+")
_EMOTICON_START = re.compile(r"[:;=^<]")
# A cheap test for "could there be an emoticon here", before the two exact passes.
_EMOTICON_LIKE = re.compile(r"[:;=][-'^]?[()\[\]dp}{/\\|]|\^_*\^|<3|:'\(")
_SMILE = re.compile(r"(?<!\w)(?:[:;=][-'^]?[)\]dp}]+|\^_*\^|<3+)(?!\w)")  # after casefold
_FROWN = re.compile(r"(?<!\w)(?:[:;=][-'^]?[(\[/\\|{]+|:'\()(?![\w/])")
_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc\u0060\u00b4]")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# Letters (and !?.) repeated for emphasis. Digits are gone by then (numbers become
# NUMBER_TOKEN) and "_" never reaches a token, so \w is as good as "letters" here and
# twice as fast.
_REPEATS = re.compile(r"([\w!?.])\1\1+")
_EMOJI_RANGES = (
    "\U0001f1e6-\U0001f1ff"  # regional indicators (flags)
    "\U0001f300-\U0001faff"  # pictographs, emoticons, transport, symbols
    "\u2600-\u27bf"  # miscellaneous symbols and dingbats
    "\u2b00-\u2bff"  # arrows, stars
    "\u2190-\u21ff"  # arrows
    "\u2300-\u23ff"  # technical (⌚, ⏰)
    "\u2764"
)
_TOKEN = re.compile(
    r"[^\W_]+(?:'[^\W_]+)*"  # words, keeping contractions ("don't") whole
    r"|[!?]"  # punctuation that carries sentiment
    rf"|[{_EMOJI_RANGES}]"  # each emoji is a token of its own
)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as Latin-1/CP1252, and drop what cannot be undone.

    ``"donâ€™t"`` becomes ``"don’t"``; text that is already proper Unicode (``"café"``)
    is left alone because it does not round-trip through the wrong encoding.
    """
    if text.isascii():
        return text
    text = _UTF8_AS_CP1252.sub(_decode_as_utf8, text)
    text = _C1_CONTROLS.sub("", text)
    return _MOJIBAKE.sub(" ", text)


def _decode_as_utf8(match: re.Match[str]) -> str:
    run = match.group()
    for wrong_encoding in ("cp1252", "latin-1"):
        try:
            decoded = run.encode(wrong_encoding).decode("utf-8")
        except UnicodeError:
            continue
        # Accept only what such mojibake stands for in practice (accented Latin,
        # punctuation, symbols, emoji); "Õ¢" decodes "validly" to an Armenian letter.
        if _is_plausible_repair(decoded):
            return decoded
    return run


def _is_plausible_repair(char: str) -> bool:
    return "\u00a0" <= char <= "\u024f" or "\u2000" <= char <= "\u2bff" or char >= "\U0001f000"


def standardize(text: str) -> str:
    """Normalise one raw text into the canonical lower-case form the model was trained on.

    Handles what short informal texts hold: HTML entities, mojibake, URLs, @mentions,
    #hashtags (the word is kept), emoticons, numbers, letters repeated for emphasis
    ("soooo" → "soo"), fancy Unicode forms, control characters and mixed case.
    """
    # The cheap checks in front of some steps keep a typical review at a few µs each.
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", repair_mojibake(text))
    text = _CONTROLS.sub(" ", text).casefold()
    if "http" in text or "www." in text:
        text = _URL.sub(f" {URL_TOKEN} ", text)
    if "@" in text:
        text = _MENTION.sub(f" {USER_TOKEN} ", text)
    if _EMOTICON_START.search(text) and _EMOTICON_LIKE.search(text):
        text = _SMILE.sub(f" {SMILE_TOKEN} ", text)
        text = _FROWN.sub(f" {FROWN_TOKEN} ", text)
    text = _APOSTROPHES.sub("'", text)
    text = _NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    text = text.replace("#", " ")
    return _REPEATS.sub(r"\1\1", text)


def tokenize(text: str) -> list[str]:
    """Standardise ``text`` and split it into word, emoji and ``!``/``?`` tokens."""
    return _TOKEN.findall(standardize(text))


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """Tokens followed by their 2..n-grams, each n-gram joined by a space."""
    features = list(tokens)
    for size in range(2, n + 1):
        features.extend(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
    return features


@dataclass
class TextEncoder:
    """Maps texts to fixed-length rows of vocabulary ids (the model's input).

    A row holds the ids of the text's tokens in order (unknown tokens → ``OOV_ID``),
    then, when ``ngram_size`` > 1, the ids of its n-grams that are in the vocabulary
    (unknown n-grams are dropped: they carry no information), truncated or padded with
    ``PAD_ID`` to ``sequence_length``. A text with no token at all becomes one
    ``OOV_ID``, so that a masked average over the row is always defined.
    """

    vocabulary: list[str]
    sequence_length: int
    ngram_size: int = 1
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = {token: i + RESERVED_IDS for i, token in enumerate(self.vocabulary)}

    @property
    def vocabulary_size(self) -> int:
        """Number of ids, including padding and out-of-vocabulary."""
        return len(self.vocabulary) + RESERVED_IDS

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        *,
        max_vocabulary: int,
        sequence_length: int,
        ngram_size: int = 1,
        min_count: int = 2,
    ) -> TextEncoder:
        """Build the vocabulary from training texts: the most frequent features seen at
        least ``min_count`` times; ties broken alphabetically so a refit is identical."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(ngrams(tokenize(text), ngram_size))
        kept = sorted(
            (item for item in counts.items() if item[1] >= min_count),
            key=lambda item: (-item[1], item[0]),
        )
        vocabulary = [token for token, _ in kept[:max_vocabulary]]
        return cls(vocabulary=vocabulary, sequence_length=sequence_length, ngram_size=ngram_size)

    def encode_ids(self, text: str) -> list[int]:
        """The ids of one text, at most ``sequence_length`` of them, unpadded."""
        tokens = tokenize(text)
        index = self._index
        length = self.sequence_length
        ids = [index.get(token, OOV_ID) for token in tokens[:length]]
        for size in range(2, self.ngram_size + 1):
            for start in range(len(tokens) - size + 1):
                if len(ids) >= length:
                    return ids
                feature_id = index.get(" ".join(tokens[start : start + size]))
                if feature_id is not None:
                    ids.append(feature_id)
        return ids or [OOV_ID]

    def feature_spans(self, tokens: Sequence[str]) -> list[tuple[int, int, int]]:
        """``encode_ids``' ids for these tokens, each with the tokens it stands for:
        ``(id, first, end)``, ``tokens[first:end]``. Explanations use it to leave one token
        out; ``encode_ids`` stays the lean path that serving takes (a test keeps the two
        equal). No ``OOV_ID`` is added for an empty list."""
        index = self._index
        length = self.sequence_length
        spans = [(index.get(token, OOV_ID), i, i + 1) for i, token in enumerate(tokens[:length])]
        for size in range(2, self.ngram_size + 1):
            for start in range(len(tokens) - size + 1):
                if len(spans) >= length:
                    return spans
                feature_id = index.get(" ".join(tokens[start : start + size]))
                if feature_id is not None:
                    spans.append((feature_id, start, start + size))
        return spans

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts into an ``int32`` array of shape ``(len(texts), sequence_length)``."""
        batch = np.zeros((len(texts), self.sequence_length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = self.encode_ids(text)
            batch[row, : len(ids)] = ids
        return batch

    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable description, saved beside the model."""
        return {
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "ngram_size": self.ngram_size,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextEncoder:
        """The inverse of ``to_config``."""
        return cls(
            vocabulary=list(config["vocabulary"]),
            sequence_length=int(config["sequence_length"]),
            ngram_size=int(config.get("ngram_size", 1)),
        )
