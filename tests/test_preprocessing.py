"""The shared text preprocessing: what texts become, and that the encoder is stable."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.serving.preprocessing import (
    CHAR_MARK_ID,
    CHAR_RESERVED_IDS,
    EMOJI_POLARITY,
    LEXICON_TOKENS,
    NEGATED_LEXICON_TOKENS,
    NEGATED_PREFIX,
    NFKC_GROWTH,
    NUMBER_TOKEN,
    OOV_ID,
    PAD_ID,
    RATING_TOKENS,
    RESERVED_IDS,
    SMILE_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    TextEncoder,
    char_words,
    encoder_from_config,
    gloss_emoji,
    gloss_ratings,
    mark_ratings,
    ngrams,
    normalize_characters,
    standardize,
    tokenize,
    tokenize_with_negation,
    word_char_ngrams,
)

MODEL_FOLDERS = Path(__file__).resolve().parent.parent / "model" / "sentiment"


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Check https://t.co/AbC and www.example.com/x", ["check", URL_TOKEN, "and", URL_TOKEN]),
        ("visit www.example.com/x", ["visit", URL_TOKEN]),  # a link without http
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
        # invisible characters from web pages and e-mail do not cut a word in two
        (
            "Wonder\u00adful, excel\u200dlent, horri\u200bble\ufeff",
            ["wonderful", "excellent", "horrible"],
        ),
        ("The café\u00a0was lovely", ["the", "café", "was", "lovely"]),  # a no-break space
        ("I don\u2032t, it\u201bs", ["i", "don't", "it's"]),  # prime marks as apostrophes
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


def fit(**overrides: Any) -> TextEncoder:
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


def test_char_ngrams_mark_the_word_ends() -> None:
    assert word_char_ngrams("ok", 3, 4) == ["<ok", "ok>", "<ok>"]
    assert word_char_ngrams("great", 6, 6) == ["<great", "great>"]
    # Letters only, and a negation-marked token as its plain word.
    assert char_words(["not", f"{NEGATED_PREFIX}good", "!", "don't", "😀", "ok"]) == [
        "not",
        "good",
        "ok",
    ]


def char_encoder(**overrides: Any) -> TextEncoder:
    options = _options() | {"char_ngrams": (3, 4), "char_length": 6, "max_char_vocabulary": 50}
    return TextEncoder.fit(TEXTS, **(options | overrides))


def test_char_segment_follows_the_tokens_and_shares_a_misspelt_words_ngrams() -> None:
    encoder = char_encoder(char_length=40, char_min_count=2)
    assert encoder.width == 8 + 40
    assert encoder.char_vocabulary_size == len(encoder.char_vocabulary) + CHAR_RESERVED_IDS
    # n-grams in at least two texts, most frequent first, ties alphabetically
    assert encoder.char_vocabulary[:3] == ["<i>", "<lo", "<lov"]
    assert "<hat" not in encoder.char_vocabulary  # one text
    row = encoder.encode_batch(["I loove it"])[0]
    assert row[:8].tolist() == encoder.encode_ids("I loove it") + [PAD_ID] * 5
    chars = row[8:][row[8:] != PAD_ID].tolist()
    assert chars == encoder.char_ids(["i", "loove", "it"])
    index = {gram: i + CHAR_RESERVED_IDS for i, gram in enumerate(encoder.char_vocabulary)}
    # "loove" is no token of the vocabulary, but its n-grams "<lo" and "ove" tie it to "love"
    assert chars[0] == CHAR_MARK_ID and {index["<lo"], index["ove"]} <= set(chars)
    assert len(chars) == len(set(chars))  # each n-gram once


def test_char_segment_is_truncated_and_never_empty() -> None:
    encoder = char_encoder(char_length=3)
    batch = encoder.encode_batch(["love love this product", "", "😀 !"])
    assert batch.shape == (3, 8 + 3)
    assert batch[0, 8:].tolist() == encoder.char_ids(["love", "love", "this", "product"])
    assert PAD_ID not in batch[0, 8:]
    for row in batch[1:]:  # no word: the mark alone, so the segment's average is defined
        assert row[8:].tolist() == [CHAR_MARK_ID, PAD_ID, PAD_ID]


def test_char_config_round_trip_and_absent_when_unused() -> None:
    encoder = char_encoder()
    config = json.loads(json.dumps(encoder.to_config()))
    restored = TextEncoder.from_config(config)
    assert restored == encoder
    texts = [*TEXTS, "lovely loving", ""]
    assert (restored.encode_batch(texts) == encoder.encode_batch(texts)).all()
    assert not {"char_ngrams", "char_length", "char_vocabulary"} & set(fit().to_config())


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


# --- Opt-in features of version 2 (negation scope, lexicon tokens) ---------------------

# sha256 of version 1's ids for the tweet test split followed by the benchmark reviews,
# computed with the encoder as it was before the opt-in features existed (commit 8368f34).
V1_IDS_SHA256 = "e6460a4eadf480ca697ea28ef999037d5ec1133171e3ad8885acf4d6a3270b12"


def test_version_1_encodes_exactly_as_before() -> None:
    import hashlib
    from pathlib import Path

    from benchmarks.reviews import REVIEWS
    from model.corpus import load_splits

    folder = Path(__file__).resolve().parent.parent / "model" / "sentiment" / "1"
    config = json.loads((folder / "preprocessing.json").read_text(encoding="utf-8"))
    assert set(config) == {"vocabulary", "sequence_length", "ngram_size"}
    encoder = TextEncoder.from_config(config)
    assert encoder.negation_scope == 0 and encoder.lexicon == {}
    assert encoder.to_config() == config  # no new keys written for version 1
    texts = [example.text for example in load_splits()["test"]] + list(REVIEWS)
    ids = encoder.encode_batch(texts)
    assert hashlib.sha256(ids.tobytes()).hexdigest() == V1_IDS_SHA256


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("not good", ["not", "not_good"]),
        ("not bad but slow", ["not", "not_bad", "but", "slow"]),  # "but" ends it, no comma
        (
            "The food was not bad at all, but slow.",
            ["the", "food", "was", "not", "not_bad", "at", "all", "but", "slow"],
        ),
        (
            "I don't really like it. Great staff",
            ["i", "don't", "really", "not_like", "it", "great", "staff"],
        ),
        ("never again!!", ["never", "not_again", "!", "!"]),
        (
            "wasnt worth the money or the time at all",
            ["wasnt", "not_worth", "the", "not_money", "not_or", "the", "time", "at", "all"],
        ),
        ("no", ["no"]),
        ("good, not", ["good", "not"]),
    ],
)
def test_negation_scope_marks_content_words_up_to_a_boundary(text, tokens) -> None:
    marked, negated = tokenize_with_negation(text, 3)
    assert marked == tokens
    assert negated == [token.startswith(NEGATED_PREFIX) for token in tokens]


def test_negation_scope_keeps_tokenize_otherwise() -> None:
    for text in [*TEXTS, "Check https://t.co/x @bob :) 3.5 stars 😀", "", "a. b, c; d: e"]:
        assert tokenize_with_negation(text, 3)[0] == tokenize(text)


def test_lexicon_tokens_follow_the_tokens_and_flip_in_a_negation_scope() -> None:
    lexicon = {"love": 2, "fine": 1, "hate": -2}
    encoder = fit(negation_scope=3, lexicon=lexicon)
    assert set(LEXICON_TOKENS.values()) <= set(encoder.vocabulary)
    assert set(NEGATED_LEXICON_TOKENS.values()) <= set(encoder.vocabulary)
    _, extras = encoder.features("I love it, but I don't hate it. Fine")
    assert extras == [LEXICON_TOKENS[2], NEGATED_LEXICON_TOKENS[-2], LEXICON_TOKENS[1]]
    index = {token: i + RESERVED_IDS for i, token in enumerate(encoder.vocabulary)}
    ids = encoder.encode_ids("I love this phone")
    # tokens, then lexicon tokens, then the bigrams in the vocabulary
    assert ids == [
        index["i"],
        index["love"],
        index["this"],
        index["phone"],
        index[LEXICON_TOKENS[2]],
        index["i love"],  # "love this" is seen once: not in the vocabulary
        index["this phone"],
    ]


def test_options_round_trip_through_the_config() -> None:
    encoder = fit(negation_scope=2, lexicon={"love": 2, "hate": -2})
    config = json.loads(json.dumps(encoder.to_config()))
    assert config["negation_scope"] == 2 and config["lexicon"] == {"love": 2, "hate": -2}
    restored = TextEncoder.from_config(config)
    assert restored == encoder
    texts = [*TEXTS, "I do not love it", "never hate"]
    assert (restored.encode_batch(texts) == encoder.encode_batch(texts)).all()


def test_windows_cut_a_long_text_at_its_sentence_ends() -> None:
    encoder = dataclasses.replace(fit(), window_tokens=6)
    text = "I love this phone. The battery is great! It broke?\nNever again… ok"
    windows = encoder.windows(text)
    # Sentences are packed while they fit: the last three (after "?", a line break, "…").
    assert windows == ["I love this phone.", "The battery is great!", "It broke? Never again… ok"]
    assert all(len(tokenize(window)) <= 6 for window in windows)
    # Every token once, in reading order.
    assert [t for window in windows for t in tokenize(window)] == tokenize(text)


def test_windows_cut_a_sentence_longer_than_a_window_at_its_spaces() -> None:
    encoder = dataclasses.replace(fit(), window_tokens=4)
    text = "one two three four five six seven, eight nine"
    windows = encoder.windows(text)
    assert all(len(tokenize(window)) <= 4 for window in windows)
    assert [t for window in windows for t in tokenize(window)] == tokenize(text)


def test_encode_windows_gives_a_long_text_a_row_per_window() -> None:
    encoder = dataclasses.replace(fit(), window_tokens=4)  # rows of 8 ids
    short, long = "I love it", "I love this phone. The battery is great. It broke. I hate it."
    rows, owners = encoder.encode_windows([short, long, short])
    windows = encoder.windows(long)
    assert len(windows) > 1
    assert owners == [0, *[1] * len(windows), 2]
    assert rows.tolist() == encoder.encode_batch([short, *windows, short]).tolist()
    # Without window_tokens, or for texts that fit, it is encode_batch.
    plain = fit()
    rows, owners = plain.encode_windows([short, long])
    assert owners == [0, 1] and rows.tolist() == plain.encode_batch([short, long]).tolist()


def test_window_tokens_round_trip_and_absent_when_unused() -> None:
    assert "window_tokens" not in fit().to_config()
    encoder = dataclasses.replace(fit(), window_tokens=32)
    config = json.loads(json.dumps(encoder.to_config()))
    assert config["window_tokens"] == 32
    assert TextEncoder.from_config(config) == encoder


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        # a share of its scale: ≥ 0.85 best, ≥ 0.65 good, ≤ 0.45 poor, ≤ 0.25 worst
        ("Flew on Tuesday. 1/5.", "Flew on Tuesday.  xxratingworst ."),
        ("4.5/5 for the cabins", " xxratingbest  for the cabins"),
        ("Rating: 2/10", "Rating:  xxratingworst "),
        ("7/10", " xxratinggood "),
        ("4 / 10", " xxratingpoor "),
        ("10/10 would fly again", " xxratingbest  would fly again"),
        ("Ten out of ten for the app", " xxratingbest  for the app"),
        ("Honestly 10 Out Of 10", "Honestly  xxratingbest "),  # in any case
        ("Honestly 10 OUT of 10", "Honestly  xxratingbest "),
        ("Two Thumb Down", " xxratingworst "),
        ("1 out of 10, would not buy", " xxratingworst , would not buy"),
        ("9 out of 10 stars", " xxratingbest "),
        ("Five stars.", " xxratingbest ."),
        ("One star. Avoid", " xxratingworst . Avoid"),
        ("zero stars if I could", " xxratingworst  if I could"),
        ("4 stars", " xxratinggood "),
        ("ten stars!", " xxratingbest !"),  # more stars than there are: the top
        ("half a star", " xxratingworst "),
        # star glyphs: out of 5, or out of filled and empty ones
        ("⭐⭐⭐⭐⭐ would buy again", " xxratingbest  would buy again"),
        ("Rating: ★★★★☆", "Rating:  xxratinggood "),
        ("★☆☆☆☆", " xxratingworst "),
        ("⭐️⭐️", " xxratingpoor "),  # with emoji presentation selectors
        ("Gave it 5⭐!", "Gave it  xxratingbest !"),
        ("two ⭐ for the food", " xxratingpoor  for the food"),
        ("ten ⭐⭐⭐⭐⭐⭐⭐⭐⭐⭐", "ten  xxratingbest "),
        # thumbs: one good or poor, two excellent or terrible
        ("Thumbs up.", " xxratinggood ."),
        ("Two thumbs DOWN for the food", " xxratingworst  for the food"),
        ("thumbs upgrade", "thumbs upgrade"),
        # middling ratings stay numbers
        ("3/5", "3/5"),
        ("2.5 out of 5.", "2.5 out of 5."),
        ("Three stars", "Three stars"),
        ("★★★☆☆", "★★★☆☆"),
        ("Flight 2 ★★★", "Flight 2 ★★★"),  # a number before a run of stars counts nothing
        # not ratings: a class of thing, a count, a share, a numbering, a date
        ("a four star hotel", "a four star hotel"),
        ("5-star service", "5-star service"),
        ("a 4⭐ hotel", "a 4⭐ hotel"),
        ("★ Great location ★ Clean rooms", "★ Great location ★ Clean rooms"),  # bullets
        ("4 out of 5 dentists", "4 out of 5 dentists"),
        ("We flew 3 out of 4 legs", "We flew 3 out of 4 legs"),
        ("Mix 1/5 of the sauce", "Mix 1/5 of the sauce"),
        ("Chapter 3/10 covers", "Chapter 3/10 covers"),
        ("expires 4/10", "expires 4/10"),
        ("Boston 2/10 flight 994", "Boston 2/10 flight 994"),
        ("4/30-5/5", "4/30-5/5"),
        ("on 12/10/2024", "on 12/10/2024"),
        ("24/7 support", "24/7 support"),
        ("no rating here", "no rating here"),
    ],
)
def test_mark_ratings(text: str, marked: str) -> None:
    assert mark_ratings(text) == marked


def test_gloss_ratings_names_what_a_rating_means() -> None:
    assert gloss_ratings("Great phone. 1/5") == "Great phone. 1/5 (terrible)"
    assert gloss_ratings("Four stars, 9/10!") == "Four stars (good), 9/10 (excellent)!"
    assert gloss_ratings("7 out of 10") == "7 out of 10 (good)"
    assert gloss_ratings("★☆☆☆☆ Broke.") == "★☆☆☆☆ (terrible) Broke."
    for text in ("3/5", "Add 1/2 cup", "a five star hotel", "no rating"):
        assert gloss_ratings(text) == text


def test_ratings_read_as_lexicon_tokens_never_negated() -> None:
    lexicon = {"love": 2, "awful": -2}
    plain = fit(negation_scope=3, lexicon=lexicon)
    rated = dataclasses.replace(plain, rating_weight=2)
    index = {token: i + RESERVED_IDS for i, token in enumerate(plain.vocabulary)}
    # Without the option a rating is two numbers, whatever its value.
    assert plain.encode_ids("5/5") == plain.encode_ids("1/5")
    # One token, weighing rating_weight ids: its own and copies among the lexicon tokens.
    tokens, extras = rated.features("Arrived Tuesday. 1/5, I love nothing")
    assert tokens[:3] == ["arrived", "tuesday", RATING_TOKENS[-2]]
    assert extras == [LEXICON_TOKENS[2], LEXICON_TOKENS[-2]]
    assert rated.encode_ids("1/5") == [index[LEXICON_TOKENS[-2]]] * 2
    assert rated.encode_ids("five stars") == [index[LEXICON_TOKENS[2]]] * 2
    assert rated.feature_spans("ok 1/5")[1][-2:] == [(index[LEXICON_TOKENS[-2]], 1, 2)] * 2
    # "not even worth one star" is one star, not its opposite.
    assert rated.features("not even worth one star") == (
        ["not", "even", "not_worth", RATING_TOKENS[-2]],
        [LEXICON_TOKENS[-2]],
    )
    # Middling ratings and texts without one encode as before.
    for text in ("3/5", *TEXTS):
        assert rated.encode_ids(text) == plain.encode_ids(text)


def test_ratings_are_read_after_entities_and_unicode_forms() -> None:
    """A rating copied from a web page ("5&nbsp;stars") or typed in full-width forms is
    the same rating, for both kinds of encoder."""
    rated = dataclasses.replace(fit(lexicon={"love": 2}), rating_weight=2)
    pieces = encoder_from_config(
        json.loads((MODEL_FOLDERS / "4" / "preprocessing.json").read_text()), MODEL_FOLDERS / "4"
    )
    for variant in ("5&nbsp;stars", "５ ｓｔａｒｓ", "5\u00a0stars", "5&#47;5", "5／5"):
        plain = "5/5" if "5" in variant[-1:] else "5 stars"
        assert rated.features(f"Great hotel, {variant}") == rated.features(f"Great hotel, {plain}")
        assert pieces.encode_ids(f"Great hotel, {variant}") == pieces.encode_ids(
            f"Great hotel, {plain}"
        )


def test_unicode_forms_cannot_multiply_a_text_s_length() -> None:
    """NFKC spells "\ufdfa" out in 18 characters: a text grows at most NFKC_GROWTH
    times, so a request's cost stays bounded by MAX_TEXT_CHARS."""
    assert len(standardize("\ufdfa" * 100)) <= NFKC_GROWTH * 100
    assert tokenize("ﬁne ½") == ["fine", "xxnum", "xxnum"]  # ordinary growth is kept whole


def test_rating_weight_round_trip_needs_a_lexicon() -> None:
    assert "rating_weight" not in fit().to_config()
    encoder = dataclasses.replace(fit(lexicon={"love": 2}), rating_weight=3)
    config = json.loads(json.dumps(encoder.to_config()))
    assert config["rating_weight"] == 3
    assert TextEncoder.from_config(config) == encoder
    with pytest.raises(ValueError, match="rating_weight and emoji_weight need a lexicon"):
        dataclasses.replace(fit(), rating_weight=3)
    with pytest.raises(ValueError, match="rating_weight and emoji_weight need a lexicon"):
        dataclasses.replace(fit(), emoji_weight=1)


def test_rated_emoji_add_lexicon_tokens_of_their_polarity() -> None:
    lexicon = {"love": 2, "awful": -2}
    plain = fit(negation_scope=3, lexicon=lexicon)
    rated = dataclasses.replace(plain, emoji_weight=2)
    assert EMOJI_POLARITY["😡"] == -2 and EMOJI_POLARITY["👍"] == 1
    # Each rated emoji adds emoji_weight lexicon tokens; its own token stays as it is.
    tokens, extras = rated.features("The food 😡 but I love the staff 👍 🍕")
    assert tokens == ["the", "food", "😡", "but", "i", "love", "the", "staff", "👍", "🍕"]
    assert extras == [LEXICON_TOKENS[2]] + [LEXICON_TOKENS[-2]] * 2 + [LEXICON_TOKENS[1]] * 2
    assert rated.feature_spans("ok 😡")[1][-2:] == [(rated.encode_ids("awful")[-1], 1, 2)] * 2
    # Never negated: "not 😡" is still the emoji's own tone.
    assert rated.features("not 😡")[1] == [LEXICON_TOKENS[-2]] * 2
    # Texts without a rated emoji encode as before; the option round-trips.
    for text in ("🍕 ✈️", "☕ at 9", *TEXTS):
        assert rated.encode_ids(text) == plain.encode_ids(text)
    config = json.loads(json.dumps(rated.to_config()))
    assert config["emoji_weight"] == 2 and TextEncoder.from_config(config) == rated
    assert "emoji_weight" not in plain.to_config()


def test_gloss_emoji() -> None:
    assert gloss_emoji("The sequel 🤦, the soundtrack 😍") == (
        "The sequel 🤦 (poor), the soundtrack 😍 (excellent)"
    )
    for text in ("Pizza 🍕 at 8 ✈️", "no emoji", ""):
        assert gloss_emoji(text) == text


@pytest.mark.parametrize(
    "composed",
    ["cora\u00e7\u00e3o partido", "Gr\u00fc\u00dfe, tolles Hotel", "caf\u00e9 cr\u00e8me"],
)
def test_a_decomposed_spelling_is_read_as_the_composed_one(composed: str) -> None:
    """NFD text (macOS file names, some keyboards) got other tokens than the same words
    composed, in every version: up to 0.69 apart in probability (an outside probe)."""
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert normalize_characters(decomposed) == normalize_characters(composed)
    assert tokenize(decomposed) == tokenize(composed)
