"""``POST /explain`` and the occlusion behind it (``app.serving.explain``): the tokens are
the ones the model sees, the ids left out are exactly a token's, and removing the word an
explanation ranks first moves the score the way the explanation says."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from app.config import PROJECT_ROOT
from app.serving.explain import explain, occluded_rows
from app.serving.preprocessing import NEGATED_PREFIX, OOV_ID, PAD_ID, tokenize

REVIEWS = [
    "Lost my bag again and nobody at the desk would help. Never flying with them again.",
    "Thanks for the upgrade, best flight I've had all year :)",
    "Google is testing self driving cars in Austin this summer.",
    "The crew was lovely and we landed early. Thank you!",
    "Two hours on the tarmac and no food. Never again.",
]
LONG = " ".join(["the flight was late and the crew was rude"] * 10)


@pytest.fixture(scope="module")
def predictor(app):
    return app.extensions["models"].registry.stable


@pytest.mark.parametrize(
    "text", [*REVIEWS, LONG, "", "!!!", "rt @united xxurl", "great great great", "ok"]
)
def test_feature_spans_are_the_ids_the_server_encodes(predictor, text):
    encoder = predictor.bundle.encoder
    tokens, spans = encoder.feature_spans(text)
    assert ([feature for feature, _, _ in spans] or [OOV_ID]) == encoder.encode_ids(text)
    for feature, first, end in spans:
        assert 0 <= first < end <= len(tokens)
        name = encoder.vocabulary[feature - 2] if feature != OOV_ID else None
        # An n-gram or token names its tokens; a lexicon token stands for one word.
        assert feature == OOV_ID or name == " ".join(tokens[first:end]) or end == first + 1


def test_each_row_leaves_out_one_token_and_its_ngrams(predictor):
    encoder = predictor.bundle.encoder
    text = REVIEWS[0]
    tokens, rows = occluded_rows(predictor, text)
    assert rows.shape == (len(tokens) + 1, encoder.width)
    assert rows[0].tolist() == encoder.encode_batch([text])[0].tolist()
    _, spans = encoder.feature_spans(text)
    length = encoder.sequence_length
    assert encoder.char_length  # the default version reads character n-grams too
    for i in range(len(tokens)):
        kept = [feature for feature, first, end in spans if not first <= i < end]
        token_part, char_part = rows[i + 1][:length], rows[i + 1][length:]
        assert token_part[token_part != PAD_ID].tolist() == kept
        assert len(kept) < len(spans)
        # The word's character n-grams go too, unless another word has them as well.
        others = [token for j, token in enumerate(tokens) if j != i]
        assert char_part[char_part != PAD_ID].tolist() == encoder.char_ids(others)


def test_contributions_are_the_differences_the_model_gives(predictor):
    text = REVIEWS[1]
    result = explain(predictor, text)
    full = predictor.predict_proba([text])[0]
    np.testing.assert_allclose(result.probabilities, full, atol=1e-5)
    tokens, rows = occluded_rows(predictor, text)
    without = predictor.predict_ids(rows)[1:]
    for i, item in enumerate(result.tokens):
        expected = full - without[i]
        got = [item.contributions[name] for name in result.classes]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [item.token for item in result.tokens] == tokens
    assert result.label == predictor.classify([text]).labels[0]


def test_a_long_text_is_explained_window_by_window_as_it_is_scored(predictor):
    """Version 2 reads a text longer than a row by windows: every token is explained, the
    answer is /classify's, and a token's contribution is its window's difference over
    the number of windows."""
    encoder = predictor.bundle.encoder
    windows = encoder.windows(LONG)
    assert len(tokenize(LONG)) > encoder.sequence_length and len(windows) > 1
    result = explain(predictor, LONG)
    assert [item.token for item in result.tokens] == tokenize(LONG)
    assert result.unseen_tokens == 0
    np.testing.assert_allclose(result.probabilities, predictor.predict_proba([LONG])[0], atol=1e-5)
    first = windows[0]
    first_tokens, rows = occluded_rows(predictor, first)
    scored = predictor.predict_ids(rows)
    for i in range(len(first_tokens)):
        got = [result.tokens[i].contributions[name] for name in result.classes]
        np.testing.assert_allclose(got, (scored[0] - scored[i + 1]) / len(windows), atol=1e-5)


def test_a_version_without_windows_explains_the_tokens_it_reads(app):
    predictor = app.extensions["models"].registry.version("1")
    assert not predictor.bundle.encoder.window_tokens
    result = explain(predictor, LONG)
    length = predictor.bundle.encoder.sequence_length
    assert len(result.tokens) == length
    assert result.unseen_tokens == len(tokenize(LONG)) - length
    assert result.unseen_at == length  # past the input length: at the end


def test_a_text_without_tokens_has_no_contributions(predictor):
    result = explain(predictor, "... ,,,")
    assert result.tokens == [] and result.unseen_tokens == 0 and result.unseen_at is None
    np.testing.assert_allclose(sum(result.probabilities), 1, atol=1e-5)


def without_token(text: str, token: str) -> str:
    """The text as the model reads it, with every occurrence of ``token``'s word taken out
    (a negation-marked token stands for its word)."""
    word = token.removeprefix(NEGATED_PREFIX)
    return " ".join(t for t in tokenize(text) if t != word)


@pytest.mark.parametrize("review", REVIEWS)
def test_removing_the_top_word_changes_the_score_as_stated(client, review):
    body = client.post("/explain", json={"review": review}).get_json()
    label = body["label"]
    ranked = sorted(body["tokens"], key=lambda item: item["contributions"][label])
    top, bottom = ranked[-1], ranked[0]
    assert top["contributions"][label] > 0  # some word pushed toward the answer

    def score(text: str) -> float:
        response = client.post("/classify", json={"review": text})
        return response.get_json()["scores"][label]

    as_read = score(" ".join(tokenize(review)))
    assert as_read == pytest.approx(body["score"], abs=1e-5)
    # Without the word that pushed toward the label most, the label's score falls.
    assert score(without_token(review, top["token"])) < as_read
    # Without the word that pushed against it most (if any did), it rises.
    if bottom["contributions"][label] < 0:
        assert score(without_token(review, bottom["token"])) > as_read


def test_explain_answers_like_classify(client):
    review = REVIEWS[3]
    body = client.post("/explain", json={"review": review}).get_json()
    answer = client.post("/classify", json={"review": review}).get_json()
    assert body["label"] == answer["label"]
    assert body["model"] == answer["model"]
    assert body["method"] == "occlusion"
    assert body["scores"] == pytest.approx(answer["scores"], abs=1e-5)
    for item in body["tokens"]:
        assert set(item["contributions"]) == set(answer["scores"])


@pytest.mark.parametrize(
    ("query", "body", "status", "code"),
    [
        ("", {"review": "  "}, 400, "validation_error"),
        ("", {}, 400, "validation_error"),
        ("", {"review": "ok", "reviews": ["ok"]}, 400, "validation_error"),
        ("", {"review": 5}, 400, "validation_error"),
        ("", {"review": "x" * 5001}, 400, "validation_error"),
        ("?version=9", {"review": "ok"}, 404, "model_not_found"),
        ("?label=nope", {"review": "ok"}, 404, "model_not_found"),
        ("?version=9&label=stable", {"review": "ok"}, 404, "model_not_found"),
    ],
)
def test_bad_requests_get_the_documented_errors(client, query, body, status, code):
    response = client.post(f"/explain{query}", json=body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_pinned_version_answers(client):
    body = client.post("/explain?version=1", json={"review": "great"}).get_json()
    assert body["model"]["version"] == "1"


def test_readme_example_is_what_the_server_answers(client):
    """README's ``POST /explain`` example, rounded to two decimals, is the live answer."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("### `POST /explain`") :]
    review = re.search(r"-d '(\{.*?\})'", section).group(1)
    shown = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    answer = client.post("/explain", json=json.loads(review)).get_json()
    assert shown["label"] == answer["label"] and shown["model"] == answer["model"]
    assert shown["scores"] == pytest.approx(answer["scores"], abs=0.006)
    assert [t["token"] for t in shown["tokens"]] == [t["token"] for t in answer["tokens"]]
    for documented, live in zip(shown["tokens"], answer["tokens"], strict=True):
        assert documented["contributions"] == pytest.approx(live["contributions"], abs=0.006)
    assert {k: shown[k] for k in ("unseen_tokens", "unseen_at", "method")} == {
        k: answer[k] for k in ("unseen_tokens", "unseen_at", "method")
    }
