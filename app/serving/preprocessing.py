"""Text → model input. The one module that training and serving both import.

Training (``model/train.py``) and the server (``app/serving/predictor.py``) call the same
``standardize`` / ``tokenize`` / ``TextEncoder``, so the two cannot drift apart
(training/serving skew is the classic bug of this field). Pure Python and NumPy:
no Flask, no Keras, so it is cheap to import and to test.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
# The no-break space is not one of them: "café\u00a0was" is a word and a space.
_MOJIBAKE = re.compile(r"[\xa1-\xff](?:_*[\xa1-\xff])+_?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL = re.compile(r"(?:https?://|www\.)\S*")  # applied after casefold
_MENTION = re.compile(r"@\w+")
_EMOTICON_START = re.compile(r"[:;=^<]")
# A cheap test for "could there be an emoticon here", before the two exact passes.
_EMOTICON_LIKE = re.compile(r"[:;=][-'^]?[()\[\]dp}{/\\|]|\^_*\^|<3|:'\(")
_SMILE = re.compile(r"(?<!\w)(?:[:;=][-'^]?[)\]dp}]+|\^_*\^|<3+)(?!\w)")  # after casefold
_FROWN = re.compile(r"(?<!\w)(?:[:;=][-'^]?[(\[/\\|{]+|:'\()(?![\w/])")
_APOSTROPHES = re.compile(r"[\u2018\u2019\u201b\u2032\u02bc\u0060\u00b4]")
# Invisible formatting characters that NFKC keeps (soft hyphen, zero-width space,
# non-joiner and joiner, direction marks, word joiner, byte order mark): inside a word,
# as text pasted from web pages and e-mail has them, they cut it in two ("wonder\u00adful").
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
# NFKC spells some characters out ("\ufdfa" is 18 characters): a text may grow at most
# this many times over, so that what a request costs stays bounded by MAX_TEXT_CHARS (a
# review of 5,000 "\ufdfa" took 20 times as long as one of 5,000 letters).
NFKC_GROWTH = 2
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
# Where split_windows may cut a long text: after . ! ? or … and the spaces that
# follow, and at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+|\s*\n\s*")
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


def normalize_characters(text: str) -> str:
    """HTML entities decoded, mojibake repaired, Unicode's compatibility forms (NFKC:
    full-width letters, ligatures) made plain and invisible formatting characters
    removed: the first steps of ``standardize`` and ``clean_for_wordpiece``, and the text
    ratings are found in ("5&nbsp;stars", "５ stars")."""
    # The cheap checks in front of each step keep a typical review at a few µs.
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        # Composed first: the mojibake pass reads Latin-1 letters, so "cora\u00e7\u00e3o" and
        # its decomposed spelling "corac\u0327a\u0303o" were two texts (an outside probe).
        composed = unicodedata.normalize("NFC", text)
        normalized = unicodedata.normalize("NFKC", repair_mojibake(composed))
        text = _INVISIBLE.sub("", normalized[: NFKC_GROWTH * len(text)])
    return text


def standardize(text: str, normalized: bool = False) -> str:
    """Normalise one raw text into the canonical lower-case form the model was trained on.

    Handles what short informal texts hold: HTML entities, mojibake, URLs, @mentions,
    #hashtags (the word is kept), emoticons, numbers, letters repeated for emphasis
    ("soooo" → "soo"), fancy Unicode forms, control characters and mixed case.
    ``normalized``: ``normalize_characters`` was applied already (it is not applied twice:
    "&amp;lt;" is "&lt;", not "<").
    """
    if not normalized:
        text = normalize_characters(text)
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


def tokenize(text: str, normalized: bool = False) -> list[str]:
    """Standardise ``text`` and split it into word, emoji and ``!``/``?`` tokens."""
    return _TOKEN.findall(standardize(text, normalized))


def _most_frequent(counts: Counter[str], min_count: int, limit: int) -> list[str]:
    """The features counted at least ``min_count`` times, most frequent first (ties
    alphabetically, so that a refit is identical), at most ``limit`` of them."""
    kept = sorted(
        (item for item in counts.items() if item[1] >= min_count),
        key=lambda item: (-item[1], item[0]),
    )
    return [feature for feature, _ in kept[:limit]]


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    """Tokens followed by their 2..n-grams, each n-gram joined by a space."""
    features = list(tokens)
    for size in range(2, n + 1):
        features.extend(" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1))
    return features


# Negation scope marking (opt-in, see ``TextEncoder.negation_scope``). A negator turns the
# next few content words into marked tokens ("not great" → "not", "not_great"), so that a
# negated word gets its own embedding instead of lending the plain word's tone.
NEGATED_PREFIX = "not_"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEGATORS = _words(
    "not no never none nobody nothing nowhere neither nor cannot without hardly barely "
    "dont doesnt didnt isnt wasnt arent werent cant couldnt wouldnt shouldnt wont "
    "havent hasnt hadnt aint neednt mustnt"
)
# A clause boundary ends the scope: punctuation, or a word that turns the sentence.
_SCOPE_ENDS = frozenset(".,;:!?") | _words("but however although though yet except")
# Words that neither get marked nor use up the scope ("not at all the best" → "not_best").
_SCOPE_SKIPS = _words(
    "a an the at all so too very really that this it its be been is was are were "
    "even quite much any my our your their his her i we you they to of"
)
_TOKEN_OR_BOUNDARY = re.compile(_TOKEN.pattern + r"|[.,;:]")
# Lexicon features (opt-in, see ``TextEncoder.lexicon``): a word's prior polarity
# bucket (-2 … 2, 0 never stored) becomes an extra token; in a negation scope, its own.
LEXICON_TOKENS = {value: f"xxlex{value:+d}" for value in (-2, -1, 1, 2)}
NEGATED_LEXICON_TOKENS = {value: f"xxnotlex{value:+d}" for value in (-2, -1, 1, 2)}


# Ratings (opt-in, see ``TextEncoder.rating_weight``): "4/5", "9 out of 10", "one star" and
# "five stars" are numbers to the tokenizer ("xxnum xxnum"), and numbers read as neutral
# facts. A rating stands for its share of the scale instead: a token of its own that
# the encoder gives the lexicon token of the same polarity's id (``RATING_TOKENS``), so a
# model that has learnt the lexicon's priors reads "1/5" as it reads "awful". A rating in
# the middle of its scale (3/5, 5/10) is left as it is, numbers and all.
RATING_TOKENS = {value: f"xxrating{value:+d}" for value in (-2, -1, 1, 2)}
# Letters only, so that they pass ``standardize`` and ``tokenize`` as one word each.
_RATING_MARKS = {
    value: f"xxrating{name}"
    for value, name in ((-2, "worst"), (-1, "poor"), (1, "good"), (2, "best"))
}
_RATING_BY_MARK = {mark: RATING_TOKENS[value] for value, mark in _RATING_MARKS.items()}
_RATING_VALUES = {token: value for value, token in RATING_TOKENS.items()}
# What a transformer is told a rating means (``gloss_ratings``).
RATING_GLOSSES = {2: "excellent", 1: "good", -1: "poor", -2: "terrible"}
_RATING_MARK = "xxrating"
_NUMBER_WORDS = {
    word: float(value)
    for value, word in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    )
} | {"no": 0.0, "negative": 0.0, "half a": 0.5, "a hundred": 100.0}
_RATING_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
_RATING_SCALES = r"5|10|100|five|ten|a hundred"
# Star glyphs: filled, and empty ones that say the scale ("★★★★☆" is 4 of 5).
_FILLED_STARS = "★⭐"
_EMPTY_STARS = "☆"
_RATING = re.compile(
    # Every rating starts with a digit, a number word's first letter or a star glyph: the
    # lookahead skips the other positions at once (half the time of a text with a "/").
    rf"(?=[\dzotfsenhab{_FILLED_STARS}{_EMPTY_STARS}])"
    r"(?:\b(?:(?P<thumbs_two>two|both|2)\s+)?thumbs?\s+(?P<thumbs>up|down)\b"
    rf"|(?P<glyphs>(?:[{_FILLED_STARS}{_EMPTY_STARS}]\ufe0f?){{2,10}})"
    rf"|\b(?P<glyph_of>\d{{1,2}}(?:\.\d)?|{_RATING_WORD})\s*[{_FILLED_STARS}]\ufe0f?"
    rf"(?!\ufe0f?[{_FILLED_STARS}{_EMPTY_STARS}])"
    rf"|(?<![\w/.,-])(?P<slash>\d{{1,3}}(?:\.\d)?)\s*/\s*(?P<slash_of>5|10|100)(?![\w/]|\.\d|-\d)"
    rf"|\b(?P<out>\d{{1,3}}(?:\.\d)?|{_RATING_WORD})\s+out\s+of\s+(?P<out_of>{_RATING_SCALES})\b"
    r"(?:\s+(?:stars|points))?"
    rf"|\b(?P<stars>\d{{1,2}}(?:\.\d)?|{_RATING_WORD})(?:\s*-\s*|\s+)(?P<star>stars?)\b)",
    re.IGNORECASE,
)
# "Chapter 3/10", "step 2/5", "sizes 2/10", "expires 4/10": a numbering or a date.
_NUMBERING_WORDS = _words(
    "chapter chapters step steps page pages part parts episode episodes day days week "
    "weeks level question item no number size sizes issue volume vol book season round "
    "stage track disc lesson game on by until till since before after from expires due"
)
# "1/5 of the sauce", "1/10 second", "2/10 flight 994": a share or a date.
_NOT_A_RATING_AFTER = _words(
    "of the second seconds minute minutes hour hours mile miles flight cup cups inch inches"
)
# What may follow "9 out of 10" for it to be a rating ("… 10, would buy again"),
# rather than a count ("4 out of 5 dentists").
_AFTER_OUT_OF = _words("and but would for from overall because if though so i it we they")
# The words next to a rating, looked for within a few characters of it: a search over
# the whole text before each match made a 5,000-character word take seconds.
_NEXT_TO = 24
_WORD_BEFORE = re.compile(r"([^\W\d_]+)\W*\Z")
_WORD_AFTER = re.compile(r"\s*([^\W\d_]+)")


def _word_before(match: re.Match[str]) -> str:
    start = match.start()
    found = _WORD_BEFORE.search(match.string[max(0, start - _NEXT_TO) : start])
    return found[1].lower() if found else ""


def _word_after(match: re.Match[str]) -> str:
    end = match.end()
    found = _WORD_AFTER.match(match.string[end : end + _NEXT_TO])
    return found[1].lower() if found else ""


def _counts_a_thing(match: re.Match[str]) -> bool:
    """Whether a word follows the match that makes it a count or a class of thing ("4 out
    of 5 dentists", "a 4⭐ hotel") rather than a rating ("9 out of 10, would buy again")."""
    after = _word_after(match)
    return bool(after) and after not in _AFTER_OUT_OF


def _number(text: str) -> float:
    return _NUMBER_WORDS.get(text.lower()) if not text[0].isdigit() else float(text)  # type: ignore[return-value]


def _rating_value(match: re.Match[str]) -> int:
    """The polarity bucket (-2 … 2) of one ``_RATING`` match, 0 when it is not a rating
    (a numbering, a count, a category such as "a four star hotel") or a middling one."""
    if match["thumbs"]:  # a verdict: one thumb good or poor, two excellent or terrible
        value = 2 if match["thumbs_two"] else 1
        return value if match["thumbs"].lower() == "up" else -value
    if match["glyphs"]:  # "★★★★☆", "⭐⭐⭐⭐⭐": out of 5 unless empty stars say otherwise
        value = sum(glyph in _FILLED_STARS for glyph in match["glyphs"])
        empty = match["glyphs"].count(_EMPTY_STARS)
        scale = float(value + empty) if empty else 5.0
        value = min(value, scale)
    elif match["glyph_of"]:  # "5⭐", "two ⭐" (a number before a run of them is no count)
        if _counts_a_thing(match):
            return 0  # "a 4⭐ hotel": a class of thing, as "a four star hotel"
        value, scale = min(_number(match["glyph_of"]), 5.0), 5.0
    elif match["slash"]:
        value, scale = float(match["slash"]), float(match["slash_of"])
        if _word_before(match) in _NUMBERING_WORDS or _word_after(match) in _NOT_A_RATING_AFTER:
            return 0
    elif match["out"]:
        value, scale = _number(match["out"]), _number(match["out_of"])
        if _counts_a_thing(match):
            return 0
    else:
        value, scale = _number(match["stars"]), 5.0
        if match["star"].lower() == "star" and value > 1:
            return 0  # "a four star hotel", "5-star service": a class of thing
        value = min(value, scale)  # "ten stars!"
    if value > scale:
        return 0
    share = value / scale
    if share >= 0.85:
        return 2
    if share >= 0.65:
        return 1
    if share > 0.45:
        return 0
    return -1 if share > 0.25 else -2


def _rating_tokens(tokens: list[str]) -> list[str]:
    """``tokens`` with each rating mark replaced by its ``RATING_TOKENS`` token, never
    negation-marked: "not even worth one star" is still one star."""
    return [_RATING_BY_MARK.get(token.removeprefix(NEGATED_PREFIX), token) for token in tokens]


def _replace_ratings(text: str, replace: Callable[[str, int], str]) -> str:
    """``text`` with each rating that is not middling replaced by ``replace(rating,
    polarity bucket)``."""
    # A cheap test first (about 0.4 µs a review against 1.7 for a case-blind search):
    # "/", "star", "out of" or "thumb" in any case, a word that holds "tar" ("start"),
    # or in a text that is not ASCII, a star glyph.
    folded = text.lower()
    if not (
        "/" in text
        or "tar" in folded
        or ("out" in folded and "of" in folded)
        or "humb" in folded
        or (not text.isascii() and ("★" in text or "⭐" in text or "☆" in text))
    ):
        return text

    def replaced(match: re.Match[str]) -> str:
        value = _rating_value(match)
        return replace(match[0], value) if value else match[0]

    return _RATING.sub(replaced, text)


def mark_ratings(text: str) -> str:
    """``text`` with each rating that is not middling replaced by a mark that
    ``TextEncoder`` turns into its ``RATING_TOKENS`` token."""
    return _replace_ratings(text, lambda rating, value: f" {_RATING_MARKS[value]} ")


def _gloss(value: int) -> str:
    """What follows a rating or a rated emoji of polarity ``value``: " (terrible)"."""
    return f" ({RATING_GLOSSES[value]})"


def gloss_ratings(text: str) -> str:
    """``text`` with each rating that is not middling followed by the word for it in
    brackets ("1/5 (terrible)"), for a model that reads words (``WordPieceEncoder``)."""
    return _replace_ratings(text, lambda rating, value: rating + _gloss(value))


# Emoji (opt-in, see ``TextEncoder.emoji_weight``): the polarity bucket of the emoji
# whose tone the team agreed on, rated by the team for this project (2026-12-04). Left
# out on purpose: those used both ways (😂 🤣 😭 😅 🔥 🙏 😱 😏 🙃 💀, the stars, which
# reviews also use as a count) and the neutral ones (😐 🤔 ✈ 🍕). Version 2 learnt 45
# emoji from its Reddit comments, most of them as neutral (😍, 👏 and 😁 alone came back
# ``neutral``), and none of the others: "😡" alone was ``neutral`` 0.99.
EMOJI_POLARITY = {
    emoji: value
    for value, emoji_list in (
        (2, "😍 🥰 😻 🤩 ❤ 💖 💗 💓 💞 💕 💘 💝 🥳 🏆 💯"),
        (1, "🙂 😊 ☺ 😀 😃 😄 😁 😆 😎 😇 😘 🤗 😋 🤤 🥹 👍 👌 👏 🙌 💪"),
        (1, "🎉 🎊 🥇 🌟 ♥ 💙 💚 💛 💜 🧡 🤍"),
        (-1, "🙁 ☹ 😕 🫤 😟 😞 😔 😒 🙄 😑 😬 😢 😥 😓 😣 😨 😰 😤 🥱 🤦 🤡 👎 🚫 ❌ 😿"),
        (-2, "😡 😠 🤬 👿 😾 🤮 🤢 💩 😖 😫 😩 💔"),
    )
    for emoji in emoji_list.split()
}
_FIRST_EMOJI = min(EMOJI_POLARITY)  # a text whose every character comes before it has none
_RATED_EMOJI = re.compile(f"[{''.join(sorted(EMOJI_POLARITY))}]")


def _may_hold_rated_emoji(text: str) -> bool:
    """False for most texts at once: ASCII, or every character before the first rated one."""
    return not text.isascii() and max(text) >= _FIRST_EMOJI


def gloss_emoji(text: str) -> str:
    """``text`` with each ``EMOJI_POLARITY`` emoji followed by the word for its bucket
    ("The sequel 🤦 (poor)"), for a model whose vocabulary has no emoji."""
    if not _may_hold_rated_emoji(text):
        return text
    return _RATED_EMOJI.sub(lambda found: found[0] + _gloss(EMOJI_POLARITY[found[0]]), text)


# Character n-grams (opt-in, see ``TextEncoder.char_ngrams``): a row's second segment.
# It starts with CHAR_MARK_ID, so that a text without a known n-gram still has one id to
# average over; the n-grams' ids follow (local to the segment, from CHAR_RESERVED_IDS).
CHAR_MARK_ID = 1
CHAR_RESERVED_IDS = 2
# Words whose n-gram ids a process keeps (about 200 bytes each): words repeat, and slicing
# a word into its n-grams is most of the segment's cost.
CHAR_CACHE_WORDS = 20_000


def word_char_ngrams(word: str, smallest: int, largest: int) -> list[str]:
    """The ``smallest``..``largest``-character n-grams of ``<word>`` (the brackets mark
    its start and end, as fastText marks them), in order, repeats included."""
    marked = f"<{word}>"
    return [
        marked[start : start + size]
        for size in range(smallest, largest + 1)
        for start in range(len(marked) - size + 1)
    ]


def char_words(tokens: Iterable[str]) -> list[str]:
    """The words among ``tokens`` that get character n-grams: letters only (no emoji,
    ``!``, ``?`` or contractions), a negation-marked token as its plain word."""
    prefix = len(NEGATED_PREFIX)
    words = (token[prefix:] if token.startswith(NEGATED_PREFIX) else token for token in tokens)
    return [word for word in words if word.isalpha()]


def is_negator(token: str) -> bool:
    """``not``, ``never``, ``no``… and every ``n't`` contraction (with or without ')."""
    return token in _NEGATORS or token.endswith("n't")


def tokenize_with_negation(
    text: str, scope: int, normalized: bool = False
) -> tuple[list[str], list[bool]]:
    """``tokenize(text)`` with up to ``scope`` content words after each negator marked
    (``NEGATED_PREFIX``), and for each token whether it was in a negation scope."""
    tokens: list[str] = []
    negated: list[bool] = []
    left = 0
    for token in _TOKEN_OR_BOUNDARY.findall(standardize(text, normalized)):
        if token in _SCOPE_ENDS:
            left = 0
            if token in ".,;:":
                continue  # boundaries only: tokenize() never returns them
        elif is_negator(token):
            left = scope
        elif left and token not in _SCOPE_SKIPS:
            left -= 1
            tokens.append(NEGATED_PREFIX + token)
            negated.append(True)
            continue
        tokens.append(token)
        negated.append(False)
    return tokens, negated


def split_windows(text: str, limit: int, count: Callable[[str], int]) -> list[str]:
    """``text`` cut into windows of at most ``limit`` units (``count`` says how many a
    piece of text has: tokens, word pieces): whole sentences packed while they fit (cut
    after . ! ? … and at line breaks), a longer sentence at its spaces, in reading order.
    Both tokenizers split at spaces first, so a sentence's units are its words' units."""
    pieces: list[tuple[str, int]] = []  # (text, units), no piece above the limit
    for sentence in _SENTENCE_END.split(text.strip()):
        size = count(sentence)
        if size <= limit:
            pieces.append((sentence, size))
            continue
        part: list[str] = []
        size = 0
        for word in sentence.split():
            units = count(word)
            if part and size + units > limit:
                pieces.append((" ".join(part), size))
                part, size = [], 0
            part.append(word)
            size += units
        pieces.append((" ".join(part), size))
    windows: list[str] = []
    current: list[str] = []
    size = 0
    for piece, units in pieces:
        if current and size + units > limit:
            windows.append(" ".join(current))
            current, size = [], 0
        current.append(piece)
        size += units
    if current:
        windows.append(" ".join(current))
    return windows or [text]


Row = TypeVar("Row")


def rows_by_window(
    texts: Sequence[str],
    encode: Callable[[str], tuple[Row, bool]],
    windows: Callable[[str], list[str]],
) -> tuple[list[Row], list[int]]:
    """Each text's row (``encode``: the row and whether it holds the whole text), or, for
    a text that does not fit, a row per window (``windows``); and each row's text's index."""
    rows: list[Row] = []
    owners: list[int] = []
    for owner, text in enumerate(texts):
        row, fits = encode(text)
        pieces = [row] if fits else [encode(window)[0] for window in windows(text)]
        rows.extend(pieces)
        owners.extend([owner] * len(pieces))
    return rows, owners


def _add_lexicon_tokens(
    tokens: Sequence[str],
    polarity: dict[str, int],
    copies: int,
    extras: list[str],
    origins: list[int],
) -> None:
    """For each token with a ``polarity`` (a rating, a rated emoji; negation-marked or
    not), ``copies`` lexicon tokens of that polarity in ``extras``, its position in
    ``origins``."""
    for position, token in enumerate(tokens):
        value = polarity.get(token.removeprefix(NEGATED_PREFIX))
        if value:
            extras.extend([LEXICON_TOKENS[value]] * copies)
            origins.extend([position] * copies)


@dataclass
class TextEncoder:
    """Maps texts to fixed-length rows of vocabulary ids (the model's input).

    A row holds the ids of the text's tokens in order (unknown tokens → ``OOV_ID``),
    then, when ``ngram_size`` > 1, the ids of its n-grams that are in the vocabulary
    (unknown n-grams are dropped: they carry no information), truncated or padded with
    ``PAD_ID`` to ``sequence_length``. A text with no token at all becomes one
    ``OOV_ID``, so that a masked average over the row is always defined.

    Two opt-in features (version 2 and later; their defaults encode exactly as version 1
    did): ``negation_scope`` > 0 marks that many content words after a negator
    (``tokenize_with_negation``), and a non-empty ``lexicon`` (word → prior polarity
    bucket, -2 … 2) adds one lexicon token per known word, right after the tokens and
    before the n-grams, so that a long text keeps them.

    A third (version 2's third release): with ``char_length`` > 0 a row has a second
    segment of that many ids after the first ``sequence_length``, the character n-grams
    (``char_ngrams`` = smallest, largest size) of the text's words that are in
    ``char_vocabulary``, each once, in order of appearance, after ``CHAR_MARK_ID``. The
    model pools each segment with its own embeddings; n-grams give a misspelt, inflected
    or unseen word the tone of the words it resembles.

    A fourth (version 2 and later): with ``window_tokens`` > 0 a text too long for one row
    (its tokens and lexicon tokens more than ``sequence_length``: the rest would not be
    read) is cut at its sentence ends into windows of at most that many tokens, one row
    each (``encode_windows``); the model's answer for the text is the mean of its
    windows' (``Predictor.predict_proba``). A text that fits is one row, as before.

    A fifth (with a lexicon): with ``rating_weight`` > 0 a rating that is not middling
    ("1/5", "9 out of 10", "five stars") is one ``RATING_TOKENS`` token (``mark_ratings``)
    that weighs that many ids, each the lexicon token of its polarity: its own, and the
    rest among the lexicon tokens; without it a rating is two numbers.
    """

    vocabulary: list[str]
    sequence_length: int
    ngram_size: int = 1
    negation_scope: int = 0
    lexicon: dict[str, int] = field(default_factory=dict)
    char_ngrams: tuple[int, int] = (0, 0)
    char_length: int = 0
    char_vocabulary: list[str] = field(default_factory=list)
    window_tokens: int = 0
    rating_weight: int = 0
    emoji_weight: int = 0
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    fixed_length = True  # every row is ``width`` ids wide

    def __post_init__(self) -> None:
        check_sizes(
            sequence_length=(self.sequence_length, 1, MAX_SEQUENCE),
            ngram_size=(self.ngram_size, 1, self.sequence_length),
            negation_scope=(self.negation_scope, 0, self.sequence_length),
            char_ngrams=(max(self.char_ngrams), 0, MAX_CHAR_NGRAM),
            char_length=(self.char_length, 0, MAX_SEQUENCE),
            window_tokens=(self.window_tokens, 0, MAX_SEQUENCE),
            rating_weight=(self.rating_weight, 0, self.sequence_length),
            emoji_weight=(self.emoji_weight, 0, self.sequence_length),
        )
        self._index = {token: i + RESERVED_IDS for i, token in enumerate(self.vocabulary)}
        if (self.rating_weight or self.emoji_weight) and not self.lexicon:
            raise ValueError("rating_weight and emoji_weight need a lexicon: read as its tokens")
        if self.rating_weight:
            for value, token in RATING_TOKENS.items():
                self._index[token] = self._index[LEXICON_TOKENS[value]]
        char_index = {gram: i + CHAR_RESERVED_IDS for i, gram in enumerate(self.char_vocabulary)}
        smallest, largest = self.char_ngrams

        @functools.lru_cache(maxsize=CHAR_CACHE_WORDS)
        def word_char_ids(word: str) -> tuple[int, ...]:
            grams = word_char_ngrams(word, smallest, largest)
            return tuple(char_index[gram] for gram in grams if gram in char_index)

        self._word_char_ids = word_char_ids

    @property
    def width(self) -> int:
        """Ids in a row: the token segment, then the character n-gram segment if any."""
        return self.sequence_length + self.char_length

    @property
    def char_vocabulary_size(self) -> int:
        """Ids of the character n-gram segment, including padding and its mark."""
        return len(self.char_vocabulary) + CHAR_RESERVED_IDS

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
        negation_scope: int = 0,
        lexicon: dict[str, int] | None = None,
        char_ngrams: tuple[int, int] = (0, 0),
        char_length: int = 0,
        max_char_vocabulary: int = 0,
        char_min_count: int = 3,
    ) -> TextEncoder:
        """Build the vocabulary from training texts: the most frequent features seen at
        least ``min_count`` times; ties broken alphabetically so a refit is identical.
        The lexicon's tokens are always in the vocabulary when a lexicon is given. With
        ``char_length``, the character n-grams in at least ``char_min_count`` texts, at
        most ``max_char_vocabulary`` of them, chosen the same way."""
        unfitted = cls([], sequence_length, ngram_size, negation_scope, dict(lexicon or {}))
        counts: Counter[str] = Counter()
        char_counts: Counter[str] = Counter()
        smallest, largest = char_ngrams
        for text in texts:
            tokens, extras = unfitted.features(text)
            counts.update(ngrams(tokens, ngram_size))
            counts.update(extras)
            if char_length:
                char_counts.update(
                    {
                        gram
                        for word in char_words(tokens)
                        for gram in word_char_ngrams(word, smallest, largest)
                    }
                )
        vocabulary = _most_frequent(counts, min_count, max_vocabulary)
        if lexicon:
            known = set(vocabulary)
            features = [*LEXICON_TOKENS.values(), *NEGATED_LEXICON_TOKENS.values()]
            vocabulary.extend(token for token in features if token not in known)
        return dataclasses.replace(
            unfitted,
            vocabulary=vocabulary,
            char_ngrams=char_ngrams if char_length else (0, 0),
            char_length=char_length,
            char_vocabulary=_most_frequent(char_counts, char_min_count, max_char_vocabulary),
        )

    def features(self, text: str) -> tuple[list[str], list[str]]:
        """The text's tokens (negation-marked if enabled) and its lexicon tokens."""
        tokens, extras, _ = self._features(text)
        return tokens, extras

    def _features(self, text: str) -> tuple[list[str], list[str], list[int]]:
        """``features``, plus the position of the token each lexicon token comes from."""
        rated = False
        text = normalize_characters(text)
        if self.rating_weight:
            text = mark_ratings(text)
            rated = _RATING_MARK in text
        if not self.negation_scope:
            tokens = tokenize(text, normalized=True)
            negated: Sequence[bool] = ()
        else:
            tokens, negated = tokenize_with_negation(text, self.negation_scope, normalized=True)
        if rated:
            tokens = _rating_tokens(tokens)
        lexicon = self.lexicon
        if not lexicon:
            return tokens, [], []
        extras, origins = [], []
        prefix = len(NEGATED_PREFIX)
        for position, token in enumerate(tokens):
            if negated and negated[position]:
                value = lexicon.get(token[prefix:])
                if value:
                    extras.append(NEGATED_LEXICON_TOKENS[value])
                    origins.append(position)
            else:
                value = lexicon.get(token)
                if value:
                    extras.append(LEXICON_TOKENS[value])
                    origins.append(position)
        if self.emoji_weight and _may_hold_rated_emoji(text):  # never negated, as ratings
            _add_lexicon_tokens(tokens, EMOJI_POLARITY, self.emoji_weight, extras, origins)
        if rated:  # a rating weighs rating_weight ids: its own, then copies among the extras
            _add_lexicon_tokens(tokens, _RATING_VALUES, self.rating_weight - 1, extras, origins)
        return tokens, extras, origins

    def encode_ids(self, text: str) -> list[int]:
        """The ids of one text's token segment, at most ``sequence_length``, unpadded."""
        return self._token_ids(text)[0]

    def _token_ids(self, text: str) -> tuple[list[int], list[str], bool]:
        """``encode_ids(text)``, the tokens it was made from, and whether the row holds
        every token and lexicon token (else ``windows`` cuts the text)."""
        index = self._index
        length = self.sequence_length
        if self.negation_scope or self.lexicon:
            tokens, extras = self.features(text)
            ids = [index.get(token, OOV_ID) for token in tokens[:length]]
            ids.extend(index.get(token, OOV_ID) for token in extras[: length - len(ids)])
            whole = len(tokens) + len(extras) <= length
        else:  # version 1's encoding, kept on its own short path (it is the hot one)
            tokens = tokenize(text)
            ids = [index.get(token, OOV_ID) for token in tokens[:length]]
            whole = len(tokens) <= length
        for size in range(2, self.ngram_size + 1):
            for start in range(len(tokens) - size + 1):
                if len(ids) >= length:
                    return ids, tokens, whole
                feature_id = index.get(" ".join(tokens[start : start + size]))
                if feature_id is not None:
                    ids.append(feature_id)
        return ids or [OOV_ID], tokens, whole

    def windows(self, text: str) -> list[str]:
        """The texts the model reads ``text`` by: ``[text]`` when it fits one row (or
        ``window_tokens`` is 0), else ``text`` cut at its sentence ends into pieces of at
        most ``window_tokens`` tokens (a longer sentence at its spaces), in reading order."""
        if not self.window_tokens or self._token_ids(text)[2]:
            return [text]
        return self._split(text)

    def windows_read(self, text: str) -> tuple[list[str], None]:
        """``windows(text)``, and None: every window is read (as ``WordPieceEncoder``'s)."""
        return self.windows(text), None

    def _split(self, text: str) -> list[str]:
        """``windows(text)`` for a text that does not fit one row."""
        return split_windows(text, self.window_tokens, lambda piece: len(tokenize(piece)))

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """``encode_batch(texts)``, except that with ``window_tokens`` set a text whose
        tokens and lexicon tokens do not fit in one row gets one row per window
        (``windows``). Returns the rows and, for each row, the index of its text."""
        if not self.window_tokens:
            return self.encode_batch(texts), list(range(len(texts)))
        rows, owners = rows_by_window(
            texts, lambda text: (encoded := self._token_ids(text), encoded[2]), self._split
        )
        return self._rows(rows), owners

    def char_ids(self, tokens: Sequence[str]) -> list[int]:
        """The character n-gram segment's ids for ``tokens`` (``features``' tokens),
        unpadded: ``CHAR_MARK_ID``, then each known n-gram once, at most ``char_length``."""
        ids = [CHAR_MARK_ID]
        word_char_ids = self._word_char_ids
        for word in char_words(tokens):
            ids.extend(word_char_ids(word))
        return list(dict.fromkeys(ids))[: self.char_length]

    def feature_spans(self, text: str) -> tuple[list[str], list[tuple[int, int, int]]]:
        """The tokens the model sees, and ``encode_ids``' ids for them, each with the
        tokens it stands for: ``(id, first, end)``, ``tokens[first:end]`` (a lexicon token
        stands for its word). Explanations use it to leave one token out; ``encode_ids``
        stays the lean path that serving takes (a test keeps the two equal). No
        ``OOV_ID`` is added for an empty list."""
        if self.negation_scope or self.lexicon:
            tokens, extras, origins = self._features(text)
        else:
            tokens, extras, origins = tokenize(text), [], []
        index = self._index
        length = self.sequence_length
        spans = [(index.get(token, OOV_ID), i, i + 1) for i, token in enumerate(tokens[:length])]
        for token, origin in list(zip(extras, origins, strict=True))[: length - len(spans)]:
            spans.append((index.get(token, OOV_ID), origin, origin + 1))
        for size in range(2, self.ngram_size + 1):
            for start in range(len(tokens) - size + 1):
                if len(spans) >= length:
                    return tokens, spans
                feature_id = index.get(" ".join(tokens[start : start + size]))
                if feature_id is not None:
                    spans.append((feature_id, start, start + size))
        return tokens, spans

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts into an ``int32`` array of shape ``(len(texts), width)``."""
        return self._rows([self._token_ids(text) for text in texts])

    def _rows(self, encoded: Sequence[tuple[list[int], list[str], bool]]) -> np.ndarray:
        """The model's rows for ``_token_ids`` results: token ids, then character n-grams."""
        batch = np.zeros((len(encoded), self.width), dtype=np.int32)
        start = self.sequence_length
        for row, (ids, tokens, _) in enumerate(encoded):
            batch[row, : len(ids)] = ids
            if self.char_length:
                chars = self.char_ids(tokens)
                batch[row, start : start + len(chars)] = chars
        return batch

    def to_config(self) -> dict[str, Any]:
        """A JSON-serialisable description, saved beside the model."""
        config: dict[str, Any] = {
            "vocabulary": self.vocabulary,
            "sequence_length": self.sequence_length,
            "ngram_size": self.ngram_size,
        }
        # Written only when used, so a version 1 config stays exactly as it was.
        if self.negation_scope:
            config["negation_scope"] = self.negation_scope
        if self.lexicon:
            config["lexicon"] = self.lexicon
        if self.char_length:
            config["char_ngrams"] = list(self.char_ngrams)
            config["char_length"] = self.char_length
            config["char_vocabulary"] = self.char_vocabulary
        if self.window_tokens:
            config["window_tokens"] = self.window_tokens
        if self.rating_weight:
            config["rating_weight"] = self.rating_weight
        if self.emoji_weight:
            config["emoji_weight"] = self.emoji_weight
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextEncoder:
        """The inverse of ``to_config``."""
        return cls(
            vocabulary=list(config["vocabulary"]),
            sequence_length=int(config["sequence_length"]),
            ngram_size=int(config.get("ngram_size", 1)),
            negation_scope=int(config.get("negation_scope", 0)),
            lexicon={str(word): int(value) for word, value in config.get("lexicon", {}).items()},
            char_ngrams=tuple(int(size) for size in config.get("char_ngrams", (0, 0))),  # type: ignore[arg-type]
            char_length=int(config.get("char_length", 0)),
            char_vocabulary=list(config.get("char_vocabulary", [])),
            window_tokens=int(config.get("window_tokens", 0)),
            rating_weight=int(config.get("rating_weight", 0)),
            emoji_weight=int(config.get("emoji_weight", 0)),
        )


# Version 3's tokenizer file, kept in its model folder beside preprocessing.json.
WORDPIECE_FILE = "tokenizer.json"
# A batch's rows are padded to its longest text, rounded up to this many ids: fewer
# distinct input shapes for the runtime, at most 7 padding ids a row.
WORDPIECE_PAD_MULTIPLE = 8


def clean_for_wordpiece(text: str, normalized: bool = False) -> str:
    """``standardize``'s repairs for a model with its own vocabulary: HTML entities,
    mojibake, Unicode forms, invisible and control characters, links and @mentions (a
    placeholder each), letters repeated for emphasis. Case, numbers, emoticons and
    punctuation stay: the WordPiece tokenizer knows them (it lower-cases itself).
    ``normalized``: as in ``standardize``."""
    if not normalized:
        text = normalize_characters(text)
    text = _CONTROLS.sub(" ", text)
    if "http" in text or "www." in text:
        text = re.sub(r"(?:https?://|www\.)\S*", " link ", text, flags=re.IGNORECASE)
    if "@" in text:
        text = _MENTION.sub("@user", text)
    return _REPEATS.sub(r"\1\1", text)


def _gloss_at(glosses: list[tuple[int, int, int]], offset: int) -> int | None:
    """The index of the gloss (``WordPieceEncoder._glosses``) that holds ``offset``."""
    for number, (_, start, end) in enumerate(glosses):
        if start <= offset < end:
            return number
    return None


@functools.cache
def _shared_tokenizer(tokenizer_json: str) -> Any:
    """One ``tokenizers.Tokenizer`` a process for each distinct ``tokenizer.json``:
    versions 3 and 4 ship the same file, and a second copy cost 8 MB a worker (measured).
    Encoding only reads it, so versions scoring on two threads at once may share it."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_str(tokenizer_json)
    except Exception as error:  # the Rust side raises a bare Exception
        raise ValueError(f"not a tokenizers JSON file ({error})") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()  # encode_ids cuts, so that windows see the length
    return tokenizer


@dataclass
class WordPieceEncoder:
    """Maps texts to rows of WordPiece ids for a transformer (version 3): ``[CLS]``, the
    text's sub-word ids, ``[SEP]``, at most ``sequence_length`` ids, then ``PAD_ID``. A
    batch is as wide as its longest row (rounded up to ``WORDPIECE_PAD_MULTIPLE``), not
    ``sequence_length``: a transformer's cost grows with the width, and the model takes
    any. The ``tokenizers`` package reads the model's own ``tokenizer.json`` (no
    TensorFlow; its padding and truncation settings are replaced by this class's).

    With ``window_tokens`` > 0 a text longer than one row is read as ``TextEncoder``
    reads it: cut at its sentence ends into windows of at most that many word pieces,
    one row each, its answer the mean of theirs. A transformer's window costs as much as
    a text of that length, so ``max_windows`` (0: no limit) bounds what one text may
    cost: past it, the first half of the windows and the last are read (a review's
    opening and its verdict), the middle is not.

    With ``rating_glosses`` a rating that is not middling ("1/5", "five stars") is
    followed by the word for it (``gloss_ratings``: "1/5 (terrible)"); without it the
    model reads a rating as its digits' word pieces."""

    tokenizer_json: str
    sequence_length: int = 128
    window_tokens: int = 0
    max_windows: int = 0
    rating_glosses: bool = False
    emoji_glosses: bool = False
    fixed_length = False  # rows are as wide as the batch needs
    char_length = 0  # no character n-gram segment

    def __post_init__(self) -> None:
        self._tokenizer = _shared_tokenizer(self.tokenizer_json)

    @property
    def width(self) -> int:
        """The widest row (a batch's rows are as wide as its longest text needs)."""
        return self.sequence_length

    @property
    def vocabulary_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode_ids(self, text: str) -> list[int]:
        """``[CLS]``, the text's first word pieces, ``[SEP]``: ``sequence_length`` at most."""
        return self._row_and_fit(text)[0]

    def _cut(self, items: list[Any]) -> list[Any]:
        """A whole encoding's ids (or spans) cut to one row: the first ones and ``[SEP]``."""
        if len(items) > self.sequence_length:
            return [*items[: self.sequence_length - 1], items[-1]]
        return items

    def _clean(self, text: str) -> str:
        """The text the tokenizer reads: repaired, its ratings and emoji glossed if asked."""
        text = normalize_characters(text)
        if self.rating_glosses:
            text = gloss_ratings(text)
        if self.emoji_glosses:
            text = gloss_emoji(text)
        return clean_for_wordpiece(text, normalized=True)

    def _pieces(self, text: str) -> int:
        """How many word pieces ``text`` has, without ``[CLS]`` and ``[SEP]``."""
        return len(self._tokenizer.encode(self._clean(text), add_special_tokens=False).ids)

    def windows(self, text: str) -> list[str]:
        """The texts the model reads ``text`` by: ``[text]`` when it fits one row (or
        ``window_tokens`` is 0), else its windows (``split_windows``), at most
        ``max_windows`` of them: the first half and the last, in reading order."""
        return self.windows_read(text)[0]

    def windows_read(self, text: str) -> tuple[list[str], int | None]:
        """``windows(text)``, and how many of them come before the middle it does not
        read (past ``max_windows``), or None when it reads every window."""
        if not self.window_tokens or self._pieces(text) + 2 <= self.sequence_length:
            return [text], None
        return self._windows_read(text)

    def _windows(self, text: str) -> list[str]:
        return self._windows_read(text)[0]

    def _windows_read(self, text: str) -> tuple[list[str], int | None]:
        windows = split_windows(text, self.window_tokens, self._pieces)
        if not self.max_windows or len(windows) <= self.max_windows:
            return windows, None
        head = (self.max_windows + 1) // 2
        return windows[:head] + windows[len(windows) - (self.max_windows - head) :], head

    def encode_windows(self, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """``encode_batch`` of every text's ``windows``, and each row's text's index."""
        if not self.window_tokens:
            return self.encode_batch(texts), list(range(len(texts)))
        rows, owners = rows_by_window(texts, self._row_and_fit, self._windows)
        return self._rows(rows), owners

    def _row_and_fit(self, text: str) -> tuple[list[int], bool]:
        """``encode_ids(text)``, and whether it holds the whole text."""
        ids = self._tokenizer.encode(self._clean(text)).ids
        return self._cut(ids), len(ids) <= self.sequence_length

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """An ``int32`` array ``(len(texts), width)``, width the longest row's length
        rounded up to ``WORDPIECE_PAD_MULTIPLE`` (at most ``sequence_length``)."""
        return self._rows([self.encode_ids(text) for text in texts])

    def _rows(self, rows: list[list[int]]) -> np.ndarray:
        longest = max((len(ids) for ids in rows), default=2)
        step = WORDPIECE_PAD_MULTIPLE
        width = min(-(-longest // step) * step, self.sequence_length)
        batch = np.zeros((len(rows), width), dtype=np.int32)
        for row, ids in enumerate(rows):
            batch[row, : len(ids)] = ids
        return batch

    def words(self, text: str) -> int:
        """How many words ``text`` has, as ``feature_spans`` counts them, uncut."""
        cleaned = self._clean(text)
        encoding = self._tokenizer.encode(cleaned)
        glosses = self._glosses(cleaned)
        return len(
            {
                word
                for word, (start, _) in zip(encoding.word_ids, encoding.offsets, strict=True)
                if word is not None and _gloss_at(glosses, start) is None
            }
        )

    def _glosses(self, cleaned: str) -> list[tuple[int, int, int]]:
        """Where ``_clean`` put a word in ``cleaned`` that the text does not have (a
        rating's or an emoji's gloss): ``(start of what it glosses, start, end)``."""
        found = []
        if self.rating_glosses:
            for match in _RATING.finditer(cleaned):
                value = _rating_value(match)
                gloss = _gloss(value) if value else ""
                if gloss and cleaned.startswith(gloss, match.end()):
                    found.append((match.start(), match.end(), match.end() + len(gloss)))
        if self.emoji_glosses and _may_hold_rated_emoji(cleaned):
            for match in _RATED_EMOJI.finditer(cleaned):
                gloss = _gloss(EMOJI_POLARITY[match[0]])
                if cleaned.startswith(gloss, match.end()):
                    found.append((match.start(), match.end(), match.end() + len(gloss)))
        return found

    def feature_spans(self, text: str) -> tuple[list[str], list[tuple[int, int, int]]]:
        """The words the model sees, and each id with the word it belongs to,
        ``(id, first, end)`` as ``TextEncoder.feature_spans`` gives them; ``[CLS]`` and
        ``[SEP]`` belong to no word (``(id, -1, -1)``: never left out). A gloss's pieces
        ("9/10 (excellent)") are no word of their own: they belong to every word of what
        they gloss, left out with any of them, so that its credit goes to what the
        writer wrote."""
        cleaned = self._clean(text)
        encoding = self._tokenizer.encode(cleaned)
        glosses = self._glosses(cleaned)
        glossed: dict[int, tuple[int, int]] = {}  # a gloss's words: (first, end)
        words: list[str] = []
        spans: list[tuple[int, int, int]] = []
        seen: dict[int, int] = {}
        for token_id, word, (start, end) in self._cut(
            list(zip(encoding.ids, encoding.word_ids, encoding.offsets, strict=True))
        ):
            if word is None:
                spans.append((token_id, -1, -1))
                continue
            gloss = _gloss_at(glosses, start)
            if gloss is not None:
                spans.append((token_id, *glossed.get(gloss, (-1, -1))))
                continue
            if word not in seen:
                seen[word] = len(words)
                words.append("")
            position = seen[word]
            words[position] += cleaned[start:end].lower()
            spans.append((token_id, position, position + 1))
            for number, (glossed_start, gloss_start, _) in enumerate(glosses):
                if glossed_start <= start < gloss_start:
                    first = glossed.get(number, (position, position))[0]
                    glossed[number] = (first, position + 1)
        return words, spans

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "kind": "wordpiece",
            "tokenizer": WORDPIECE_FILE,
            "sequence_length": self.sequence_length,
        }
        if self.window_tokens:
            config["window_tokens"] = self.window_tokens
            config["max_windows"] = self.max_windows
        if self.rating_glosses:
            config["rating_glosses"] = True
        if self.emoji_glosses:
            config["emoji_glosses"] = True
        return config


class TokenizerFileError(ValueError):
    """The tokenizer file a ``preprocessing.json`` names is missing, unreadable or not a
    tokenizer: the message starts with that file's path (not ``preprocessing.json``'s)."""


# Bounds on an encoder's sizes, far above any model's: a preprocessing.json with
# "ngram_size": 1000000000 hung start-up in the known answers' encoding, with no line.
MAX_SEQUENCE = 65_536
MAX_CHAR_NGRAM = 32


def check_sizes(**sizes: tuple[int, int, int]) -> None:
    """``ValueError`` naming the first of ``name=(value, low, high)`` out of its range."""
    for name, (value, low, high) in sizes.items():
        if not low <= value <= high:
            raise ValueError(f"{name} {value} is not {low} to {high}")


def encoder_from_config(config: dict[str, Any], directory: Path) -> TextEncoder | WordPieceEncoder:
    """The encoder a model folder's ``preprocessing.json`` describes: version 3's
    WordPiece tokenizer (its file in ``directory``; ``TokenizerFileError`` when that file
    is at fault) or the n-gram ``TextEncoder``."""
    if config.get("kind") == "wordpiece":
        path = directory / str(config["tokenizer"])
        settings = {
            "sequence_length": int(config["sequence_length"]),
            "window_tokens": int(config.get("window_tokens", 0)),
            "max_windows": int(config.get("max_windows", 0)),
            "rating_glosses": bool(config.get("rating_glosses", False)),
            "emoji_glosses": bool(config.get("emoji_glosses", False)),
        }
        check_sizes(
            sequence_length=(settings["sequence_length"], 1, MAX_SEQUENCE),
            window_tokens=(settings["window_tokens"], 0, settings["sequence_length"]),
            max_windows=(settings["max_windows"], 0, MAX_SEQUENCE),
        )
        try:
            return WordPieceEncoder(path.read_text(encoding="utf-8"), **settings)
        except FileNotFoundError:
            raise TokenizerFileError(f"{path}: file not found") from None
        except OSError as error:
            raise TokenizerFileError(f"{path}: not readable ({error.strerror})") from None
        except ValueError as error:  # not UTF-8, or not a tokenizers JSON file
            raise TokenizerFileError(f"{path}: {error}") from None
    return TextEncoder.from_config(config)
