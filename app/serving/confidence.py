"""How sure a model version is, in words: thresholds on the top probability that a version's
own held-out evidence supports.

The page says "very sure", "fairly sure" or "not sure" for an answer. The words promise a
rate of right answers, so the thresholds come from the version's metadata, best evidence
first:

1. ``calibration.reliability``: bins of (confidence range, share right) measured on held-out
   texts. "Very sure" starts at the lowest bin edge from which the answers at or above it
   were right at least ``VERY_SURE_ACCURACY`` of the time, "fairly sure" likewise for
   ``FAIRLY_SURE_ACCURACY``; the page quotes the measured rates.
2. ``calibration`` without bins (e.g. temperature scaling with its expected calibration
   error): probabilities mean what they say, so a calibrated answer at ``p`` or above is
   right about ``p`` of the time or more. The thresholds are the target rates themselves,
   raised by the error the metadata reports (``ece_after``: the largest over the sets
   calibration was not fitted on; at most ``MAX_RAISE``).
3. Neither (version 1): ``DEFAULT_BANDS``, measured on version 1's validation split (3,635
   texts; its ECE there is 0.046): answers at 0.9 or above were right 96.1% of the time,
   at 0.7 or above 89.2%, and those with the top two classes within 0.2 of each other
   51% (a coin toss between two classes).

Whatever the source, an answer whose top two classes are within ``CLOSE_MARGIN`` reads
"not sure: the classes are close".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

VERY_SURE_ACCURACY = 0.95
FAIRLY_SURE_ACCURACY = 0.85
CLOSE_MARGIN = 0.2
HELD_OUT_SPLITS = ("validation", "test")
# The most the targets are raised by a calibration error: "very sure" stays below 1.
MAX_RAISE = 0.04


@dataclass(frozen=True)
class ConfidenceBands:
    """Thresholds on the top probability, and where they come from."""

    very_sure: float  # top probability at or above: "very sure"
    fairly_sure: float  # at or above (and below very_sure): "fairly sure"; below: "not sure"
    close_margin: float  # top two classes closer than this: "not sure: the classes are close"
    source: str  # "reliability", "calibrated" or "default"
    evidence: str  # one sentence for people: what the thresholds rest on
    # Measured share of right answers at or above each threshold, when the metadata has it.
    very_sure_accuracy: float | None = None
    fairly_sure_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def words(self, probabilities: list[float]) -> str:
        """``"very sure"``, ``"fairly sure"``, ``"not sure"`` or
        ``"not sure: the classes are close"`` for one answer."""
        ranked = [*sorted(probabilities, reverse=True), 0.0]
        top, second = ranked[0], ranked[1]
        if top - second < self.close_margin:
            return "not sure: the classes are close"
        if top >= self.very_sure:
            return "very sure"
        if top >= self.fairly_sure:
            return "fairly sure"
        return "not sure"


DEFAULT_BANDS = ConfidenceBands(
    very_sure=0.9,
    fairly_sure=0.7,
    close_margin=CLOSE_MARGIN,
    source="default",
    evidence=(
        "This version's metadata has no calibration data; the thresholds were measured on "
        "version 1's validation texts (answers at 90% or more were right 96% of the time, "
        "at 70% or more 89%)."
    ),
)


def confidence_bands(metadata: Mapping[str, Any]) -> ConfidenceBands:
    """The bands one version's ``metadata.json`` supports (see the module docstring)."""
    calibration = metadata.get("calibration")
    if not isinstance(calibration, Mapping):
        return DEFAULT_BANDS
    bins = _reliability_bins(calibration.get("reliability"))
    if bins:
        bands = _bands_from_reliability(bins)
        if bands is not None:
            return bands
    worst = _worst_held_out_error(calibration)
    if worst is None:
        measured = _held_out_value(calibration.get("ece"))
        if measured is None:
            measured = _held_out_value(calibration.get("expected_calibration_error"))
        measured, where = measured or 0.0, "held-out texts"
    else:
        measured, where = worst
    error = min(max(measured, 0.0), MAX_RAISE)
    very, fairly = VERY_SURE_ACCURACY + error, FAIRLY_SURE_ACCURACY + error
    said = f"expected calibration error {measured:.3f} on {where}"
    if measured > MAX_RAISE:  # the raise is capped: the sentence below would not follow
        evidence = (
            f"This version's probabilities are calibrated, not closely ({said}); the bands "
            f"are raised by {MAX_RAISE:.2f} at most, so an answer at {_percent(very)} or more may "
            f"be right less than {VERY_SURE_ACCURACY:.0%} of the time."
        )
    else:
        evidence = (
            f"This version's probabilities are calibrated ({said}), so an answer at "
            f"{_percent(very)} or more is right about {VERY_SURE_ACCURACY:.0%} of the time or more."
        )
    return ConfidenceBands(
        very_sure=round(very, 3),
        fairly_sure=round(fairly, 3),
        close_margin=CLOSE_MARGIN,
        source="calibrated",
        evidence=evidence,
    )


def _percent(share: float) -> str:
    """A band's bound as precise as it is: 0.987 is 98.7% (it was "99%", above it)."""
    return f"{share * 100:.1f}".removesuffix(".0") + "%"


# What the trainers' evaluation sets are, for people.
SET_NAMES = {
    "devset": "the team's cross-domain reviews",
    "tweet_test": "the tweet test split",
    "goemotions_test": "GoEmotions' test split",
}


def _worst_held_out_error(calibration: Mapping[str, Any]) -> tuple[float, str] | None:
    """The largest ``ece_after`` (the error the trainers record per evaluation set, after
    calibrating) among the sets calibration was not fitted on, and which set it is: "right
    about p of the time" has to hold on the texts it is least true of."""
    errors = calibration.get("ece_after")
    if not isinstance(errors, Mapping):
        return None
    fitted = calibration.get("fitted_on", [])
    held_out = {
        name: value
        for name, value in errors.items()
        if name not in fitted and isinstance(value, int | float) and math.isfinite(value)
    }
    if not held_out:
        return None
    name = max(held_out, key=held_out.__getitem__)
    return float(held_out[name]), SET_NAMES.get(name, name)


def _held_out_value(value: Any) -> float | None:
    """A number, or the validation (else test) entry of a per-split mapping."""
    if isinstance(value, Mapping):
        for split in HELD_OUT_SPLITS:
            if split in value:
                return _held_out_value(value[split])
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _reliability_bins(value: Any) -> list[tuple[float, float, int]]:
    """(lower edge, share right, count) per bin, from a list of bins or a per-split
    mapping of lists; bins as ``{"lower"|"bin": [lo, hi], "accuracy", "count"}``."""
    if isinstance(value, Mapping):
        for split in HELD_OUT_SPLITS:
            if split in value:
                return _reliability_bins(value[split])
        return []
    if not isinstance(value, list):
        return []
    bins = []
    for item in value:
        if not isinstance(item, Mapping):
            return []
        lower = item.get("lower", (item.get("bin") or [None])[0])
        accuracy, count = item.get("accuracy"), item.get("count")
        if not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in (lower, accuracy, count)
        ):
            return []
        if count > 0:
            bins.append((float(lower), float(accuracy), int(count)))
    return sorted(bins)


def _bands_from_reliability(bins: list[tuple[float, float, int]]) -> ConfidenceBands | None:
    """The lowest edge from which answers were right often enough, for each band."""
    thresholds: dict[float, tuple[float, float]] = {}
    right = total = 0.0
    for lower, accuracy, count in reversed(bins):  # from the most confident bin down
        right += accuracy * count
        total += count
        share = right / total
        for target in (VERY_SURE_ACCURACY, FAIRLY_SURE_ACCURACY):
            if share >= target:
                thresholds[target] = (lower, share)
    if VERY_SURE_ACCURACY not in thresholds:
        return None
    very, very_share = thresholds[VERY_SURE_ACCURACY]
    fairly, fairly_share = thresholds.get(FAIRLY_SURE_ACCURACY, (very, very_share))
    return ConfidenceBands(
        very_sure=very,
        fairly_sure=min(fairly, very),
        close_margin=CLOSE_MARGIN,
        source="reliability",
        evidence=(
            f"Measured on this version's held-out texts: answers at {very:.0%} or more were "
            f"right {very_share:.0%} of the time, at {fairly:.0%} or more {fairly_share:.0%}."
        ),
        very_sure_accuracy=round(very_share, 4),
        fairly_sure_accuracy=round(fairly_share, 4),
    )
