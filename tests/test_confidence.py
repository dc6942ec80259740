"""How sure, in words: thresholds from a version's metadata, best evidence first."""

from __future__ import annotations

import json

import pytest

from app.config import DEFAULT_MODEL_DIR, MODEL_BASE
from app.serving.confidence import (
    CLOSE_MARGIN,
    DEFAULT_BANDS,
    FAIRLY_SURE_ACCURACY,
    MAX_RAISE,
    VERY_SURE_ACCURACY,
    confidence_bands,
)

# Version 1's reliability on its validation split (measured: bins of 0.1, share right).
VERSION_1_BINS = [
    {"lower": 0.3, "upper": 0.4, "accuracy": 0.35, "count": 60},
    {"lower": 0.4, "upper": 0.5, "accuracy": 0.483, "count": 441},
    {"lower": 0.5, "upper": 0.6, "accuracy": 0.614, "count": 547},
    {"lower": 0.6, "upper": 0.7, "accuracy": 0.7, "count": 600},
    {"lower": 0.7, "upper": 0.8, "accuracy": 0.818, "count": 648},
    {"lower": 0.8, "upper": 0.9, "accuracy": 0.899, "count": 720},
    {"lower": 0.9, "upper": 1.0, "accuracy": 0.961, "count": 619},
]


def test_version_1_has_no_calibration_data_and_gets_the_defaults():
    metadata = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    assert confidence_bands(metadata) == DEFAULT_BANDS
    assert DEFAULT_BANDS.source == "default"


def test_reliability_bins_give_the_lowest_edges_that_meet_the_targets():
    bands = confidence_bands({"calibration": {"reliability": {"validation": VERSION_1_BINS}}})
    assert bands.source == "reliability"
    # The same thresholds as the defaults, which were measured this way on version 1.
    assert (bands.very_sure, bands.fairly_sure) == (DEFAULT_BANDS.very_sure, 0.7)
    assert bands.very_sure_accuracy >= VERY_SURE_ACCURACY
    assert bands.fairly_sure_accuracy >= FAIRLY_SURE_ACCURACY
    assert "96%" in bands.evidence


def test_bins_given_as_ranges_read_the_same():
    bins = [
        {"bin": [b["lower"], b["upper"]], "accuracy": b["accuracy"], "count": b["count"]}
        for b in VERSION_1_BINS
    ]
    assert confidence_bands({"calibration": {"reliability": bins}}).very_sure == 0.9


def test_calibrated_probabilities_use_the_targets_raised_by_the_error():
    bands = confidence_bands(
        {"calibration": {"method": "temperature", "temperature": 1.4, "ece": {"test": 0.03}}}
    )
    assert bands.source == "calibrated"
    assert bands.very_sure == pytest.approx(VERY_SURE_ACCURACY + 0.03)
    assert bands.fairly_sure == pytest.approx(FAIRLY_SURE_ACCURACY + 0.03)


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_shipped_versions_raise_the_targets_by_their_largest_held_out_error(version):
    """The trainers record ``ece_after`` per evaluation set; the bands use the largest on a
    set calibration was not fitted on (for every shipped version, the team's dev set)."""
    metadata = json.loads((MODEL_BASE / version / "metadata.json").read_text())
    calibration = metadata["calibration"]
    held_out = {
        name: error
        for name, error in calibration["ece_after"].items()
        if name not in calibration["fitted_on"]
    }
    worst = max(held_out.values())
    assert worst > 0.03  # the raise is measured, not 0
    bands = confidence_bands(metadata)
    assert bands.source == "calibrated"
    raised = min(worst, MAX_RAISE)
    assert bands.very_sure == pytest.approx(VERY_SURE_ACCURACY + raised, abs=0.001)
    assert bands.fairly_sure == pytest.approx(FAIRLY_SURE_ACCURACY + raised, abs=0.001)
    assert f"{worst:.3f}" in bands.evidence
    # Raised by the cap only, it does not claim what the error does not support.
    capped = worst > MAX_RAISE
    assert ("may be right less than" in bands.evidence) == capped, bands.evidence
    assert ("is right about" in bands.evidence) == (not capped), bands.evidence


def test_an_error_on_a_set_calibration_was_fitted_on_does_not_count():
    bands = confidence_bands(
        {
            "calibration": {
                "fitted_on": ["tweet_validation"],
                "ece_after": {"tweet_validation": 0.2, "tweet_test": 0.01, "devset": 0.02},
            }
        }
    )
    assert bands.very_sure == pytest.approx(VERY_SURE_ACCURACY + 0.02)
    assert "0.020 on the team's cross-domain reviews" in bands.evidence


@pytest.mark.parametrize(
    "calibration",
    [
        "yes",
        {"reliability": [{"lower": "a", "accuracy": 1, "count": 1}], "ece": "small"},
        {"reliability": [{"lower": 0.9, "accuracy": 0.5, "count": 10}]},  # never 95% right
    ],
)
def test_unusable_calibration_data_falls_back(calibration):
    bands = confidence_bands({"calibration": calibration})
    assert bands.source in ("default", "calibrated")
    assert 0.5 < bands.fairly_sure <= bands.very_sure < 1


@pytest.mark.parametrize(
    ("probabilities", "words"),
    [
        ([0.02, 0.03, 0.95], "very sure"),
        ([0.1, 0.15, 0.75], "fairly sure"),
        ([0.6, 0.1, 0.3], "not sure"),
        ([0.45, 0.1, 0.45], "not sure: the classes are close"),
        (
            [0.0, 0.5 + CLOSE_MARGIN / 2 - 0.01, 0.5 - CLOSE_MARGIN / 2 + 0.01],
            "not sure: the classes are close",
        ),
        ([0.0, 0.5 + CLOSE_MARGIN / 2 + 0.01, 0.5 - CLOSE_MARGIN / 2 - 0.01], "not sure"),
        ([0.0, 0.58, 0.42], "not sure: the classes are close"),  # the margin is 0.2
        ([0.0, 0.62, 0.38], "not sure"),
    ],
)
def test_words(probabilities, words):
    assert DEFAULT_BANDS.words(probabilities) == words
