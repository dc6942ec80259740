"""From counts to what ``GET /monitoring`` says: live accuracy and macro-F1 on the
predictions that got feedback, label mixes, and drift as a population stability index
(PSI) against the reference the model folder recorded at training time.

PSI = Σ (p − q) · ln(p / q) over the bins, p the live shares, q the reference's; empty
bins count as 0.0001 (the usual guard against ln 0). Rules of thumb (credit scoring, where
the PSI comes from): below 0.1 no shift, 0.1–0.25 a moderate one, above 0.25 a major one.

A live accuracy on a few dozen answers says little, so each comes with its 95% interval
(Wilson's score interval), and each version's is compared with the stable version's
(Newcombe's interval for the difference of two proportions): what an operator needs to
promote a canary, or roll it back, on evidence rather than on two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from app.feedback.store import CONFIDENCE_BUCKETS, StoreSummary

PSI_FLOOR = 0.0001
# The standard normal quantile of a two-sided 95% interval.
Z_95 = 1.959963984540054
# Fewer predictions than this in the window: no drift score (it would be noise).
MIN_DRIFT_PREDICTIONS = 100


def accuracy(confusion: Mapping[tuple[str, str], int]) -> float | None:
    right, total = correct_and_total(confusion)
    return right / total if total else None


def macro_f1(confusion: Mapping[tuple[str, str], int]) -> float | None:
    """Mean F1 over the classes that occur as a prediction or a true label (as
    scikit-learn's ``f1_score(average="macro")`` without ``labels``)."""
    if not sum(confusion.values()):
        return None
    classes = {label for pair in confusion for label in pair}
    scores = []
    for label in sorted(classes):
        tp = confusion.get((label, label), 0)
        fp = sum(n for (p, t), n in confusion.items() if p == label and t != label)
        fn = sum(n for (p, t), n in confusion.items() if t == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


def correct_and_total(confusion: Mapping[tuple[str, str], int]) -> tuple[int, int]:
    right = sum(n for (predicted, true), n in confusion.items() if predicted == true)
    return right, sum(confusion.values())


def wilson_interval(correct: int, total: int) -> tuple[float, float] | None:
    """The 95% score interval of a proportion (Wilson 1927; scipy's
    ``binomtest(...).proportion_ci(method="wilson")``). Unlike p ± 1.96·sqrt(p(1 − p)/n)
    it stays within [0, 1] and is not zero-wide at 0 of 5 or 5 of 5."""
    if total <= 0:
        return None
    p, z2 = correct / total, Z_95 * Z_95
    scale = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / scale
    half = Z_95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(
    correct_a: int, total_a: int, correct_b: int, total_b: int
) -> tuple[float, float] | None:
    """The 95% interval of p_a − p_b for two independent proportions, from their Wilson
    intervals (Newcombe 1998, method 10; statsmodels' ``confint_proportions_2indep(...,
    method="newcomb")``)."""
    a, b = wilson_interval(correct_a, total_a), wilson_interval(correct_b, total_b)
    if a is None or b is None:
        return None
    p_a, p_b = correct_a / total_a, correct_b / total_b
    low = p_a - p_b - math.sqrt((p_a - a[0]) ** 2 + (b[1] - p_b) ** 2)
    high = p_a - p_b + math.sqrt((a[1] - p_a) ** 2 + (p_b - b[0]) ** 2)
    return low, high


def against_stable(
    confusion: Mapping[tuple[str, str], int],
    stable_version: str,
    stable_confusion: Mapping[tuple[str, str], int],
) -> dict[str, Any] | None:
    """A version's live accuracy against the stable version's: the difference, its 95%
    interval and what it says (``better`` or ``worse`` when the interval excludes 0,
    else ``undecided``); None until both have feedback."""
    right, total = correct_and_total(confusion)
    stable_right, stable_total = correct_and_total(stable_confusion)
    interval = difference_interval(right, total, stable_right, stable_total)
    if interval is None:
        return None
    low, high = interval
    return {
        "version": stable_version,
        "accuracy_difference": round(right / total - stable_right / stable_total, 4),
        "interval": [round(low, 4), round(high, 4)],
        "verdict": "better" if low > 0 else "worse" if high < 0 else "undecided",
    }


def confusion_matrix(
    confusion: Mapping[tuple[str, str], int], classes: Sequence[str]
) -> dict[str, dict[str, int]] | None:
    """Rows the true labels, columns the predicted ones (scikit-learn's layout), every
    class in both; None without feedback."""
    if not confusion:
        return None
    return {
        true: {predicted: confusion.get((predicted, true), 0) for predicted in classes}
        for true in classes
    }


def shares(counts: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {label: (counts.get(label, 0) / total if total else 0.0) for label in classes}


def psi(live: Sequence[float], reference: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins."""
    live_total, reference_total = sum(live), sum(reference)
    value = 0.0
    for p, q in zip(live, reference, strict=True):
        p = max(p / live_total, PSI_FLOOR)
        q = max(q / reference_total, PSI_FLOOR)
        value += (p - q) * math.log(p / q)
    return value


def version_report(
    version: str, classes: Sequence[str], metadata: Mapping[str, Any], summary: StoreSummary
) -> dict[str, Any]:
    """One version's entry of ``GET /monitoring``."""
    confusion = summary.confusion.get(version, {})
    last_hour = summary.last_hour.get(version, {})
    last_day = summary.last_day.get(version, {})
    reference = metadata.get("reference") or {}
    drift: dict[str, Any] = {
        "window": "last_day",
        "reference": reference.get("set"),
        "label_mix_psi": None,
        "confidence_psi": None,
    }
    day_total = sum(last_day.values())
    if reference and day_total >= MIN_DRIFT_PREDICTIONS:
        mix = reference.get("label_mix", {})
        drift["label_mix_psi"] = round(
            psi([last_day.get(c, 0) for c in classes], [mix.get(c, 0.0) for c in classes]), 4
        )
        histogram = reference.get("confidence_histogram", {})
        live = summary.confidence.get(version)
        if live and tuple(histogram.get("buckets", ())) == CONFIDENCE_BUCKETS:
            drift["confidence_psi"] = round(psi(live, histogram["counts"]), 4)
    interval = wilson_interval(*correct_and_total(confusion))
    return {
        "version": version,
        "predictions": summary.predictions.get(version, 0),
        "feedback": summary.feedback.get(version, 0),
        "accuracy": _rounded(accuracy(confusion)),
        "accuracy_interval": None if interval is None else [round(x, 4) for x in interval],
        "macro_f1": _rounded(macro_f1(confusion)),
        "confusion": confusion_matrix(confusion, classes),
        "label_mix": {
            "last_hour": {
                "predictions": sum(last_hour.values()),
                "shares": _rounded_shares(last_hour, classes),
            },
            "last_day": {"predictions": day_total, "shares": _rounded_shares(last_day, classes)},
            "training": metadata.get("training_label_mix"),
        },
        "drift": drift,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rounded_shares(counts: Mapping[str, int], classes: Sequence[str]) -> dict[str, float]:
    return {label: round(share, 4) for label, share in shares(counts, classes).items()}
