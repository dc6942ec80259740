"""The shared text preprocessing: what texts become, and that the encoder is stable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.serving.preprocessing import (
    NUMBER_TOKEN,
    OOV_ID,
    PAD_ID,
    RESERVED_IDS,
    SMILE_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    TextEncoder,
    ngrams,
    standardize,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Check https://t.co/AbC and www.example.com/x", ["check", URL_TOKEN, "and", URL_TOKEN]),
        ("@Bob_1 thanks", [USER_TOKEN, "thanks"]),
        ("#LoveIt #sxsw", ["loveit", "sxsw"]),
        ("great 😀😀", ["great", "😀", "😀"]),
        ("Tom &amp; Jerry &#39;rock&#39;", ["tom", "jerry", "rock"]),
        ("&lt;3 it", [SMILE_TOKEN, "it"]),
        ("soooooo goooood!!!!", ["soo", "good", "!", "!"]),
        ("HeLLo WoRLD", ["hello", "world"]),
        ("Привет мир 日本語", ["привет", "мир", "日本語"]),
        ("donâ€™t", ["don't"]),  # UTF-8 read as CP1252
        ("cafÃ© time", ["café", "time"]),  # UTF-8 read as Latin-1
        ("café naïve", ["café", "naïve"]),  # proper Unicode is left alone
        ("I Õ¢_\x8aÎ_\x86¢m fine", ["i", "m", "fine"]),  # double-decoded junk is dropped
        ("a\x00b\x07c\x1bd\x7fe", ["a", "b", "c", "d", "e"]),
        ("ｆｕｌｌ width", ["full", "width"]),
        ("3.5 stars, 100 times", [NUMBER_TOKEN, "stars", NUMBER_TOKEN, "times"]),
        ("it's   ok?", ["it's", "ok", "?"]),
        ("", []),
        (" \t\n ", []),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_standardize_is_lower_case_and_keeps_plain_text() -> None:
    assert standardize("Good MORNING") == "good morning"


def test_ngrams_appends_bigrams_after_tokens() -> None:
    assert ngrams(["a", "b", "c"], 2) == ["a", "b", "c", "a b", "b c"]
    assert ngrams(["a", "b"], 1) == ["a", "b"]


TEXTS = [
    "I love this phone",
    "I hate this phone",
    "love love love it",
    "this is fine",
    "I love it",
]


def fit(**overrides: int) -> TextEncoder:
    options = {"max_vocabulary": 100, "sequence_length": 8, "ngram_size": 2, "min_count": 2}
    return TextEncoder.fit(TEXTS, **(options | overrides))


def test_fit_is_deterministic_and_orders_by_frequency_then_alphabet() -> None:
    encoder = fit()
    assert encoder.vocabulary == fit().vocabulary
    assert encoder.vocabulary == TextEncoder.fit(reversed(TEXTS), **_options()).vocabulary
    # "love" 5 times; "i", "this" 3; then count-2 features alphabetically.
    assert encoder.vocabulary[:3] == ["love", "i", "this"]
    assert encoder.vocabulary[3:] == sorted(encoder.vocabulary[3:])
    assert "i love" in encoder.vocabulary and "hate" not in encoder.vocabulary


def _options() -> dict[str, int]:
    return {"max_vocabulary": 100, "sequence_length": 8, "ngram_size": 2, "min_count": 2}


def test_max_vocabulary_keeps_the_most_frequent() -> None:
    assert fit(max_vocabulary=2).vocabulary == ["love", "i"]
    assert fit(max_vocabulary=2).vocabulary_size == 2 + RESERVED_IDS


def test_encode_ids_tokens_then_known_ngrams() -> None:
    encoder = fit()
    index = {token: i + RESERVED_IDS for i, token in enumerate(encoder.vocabulary)}
    ids = encoder.encode_ids("I love spam")
    # tokens in order (unknown → OOV), then only the bigrams in the vocabulary
    assert ids == [index["i"], index["love"], OOV_ID, index["i love"]]


def test_text_without_tokens_is_one_oov_id() -> None:
    encoder = fit()
    for text in ("", "   ", "\x00\x01", "&amp;", "Õ¢_\x8aÎ"):
        assert encoder.encode_ids(text) == [OOV_ID]
        row = encoder.encode_batch([text])[0]
        assert row[0] == OOV_ID and (row[1:] == PAD_ID).all()


def test_encode_batch_pads_and_truncates_to_sequence_length() -> None:
    encoder = fit(sequence_length=4)
    batch = encoder.encode_batch(["love", "I love this love love love love"])
    assert batch.dtype == np.int32 and batch.shape == (2, 4)
    love = encoder.vocabulary.index("love") + RESERVED_IDS
    assert batch[0].tolist() == [love, PAD_ID, PAD_ID, PAD_ID]
    assert PAD_ID not in batch[1]  # truncated: the first four tokens
    assert batch[1].tolist() == encoder.encode_ids("I love this love")[:4]
    assert encoder.encode_batch([]).shape == (0, 4)


def test_config_round_trip_through_json() -> None:
    encoder = fit()
    config = json.loads(json.dumps(encoder.to_config(), ensure_ascii=False))
    restored = TextEncoder.from_config(config)
    assert restored == encoder
    texts = [*TEXTS, "unknown words 😀", ""]
    assert (restored.encode_batch(texts) == encoder.encode_batch(texts)).all()


def test_from_config_defaults_to_unigrams() -> None:
    encoder = TextEncoder.from_config({"vocabulary": ["a"], "sequence_length": 3})
    assert encoder.ngram_size == 1
    assert encoder.encode_batch(["a b a"]).tolist() == [[2, OOV_ID, 2]]
