"""From counts to what ``GET /monitoring`` says: live accuracy and macro-F1 on the
predictions that got feedback, label mixes, and drift as a population stability index
(PSI) against the reference the model folder recorded at training time.

PSI = Σ (p − q) · ln(p / q) over the bins, p the live shares, q the reference's; empty
bins count as 0.0001 (the usual guard against ln 0). Rules of thumb (credit scoring, where
the PSI comes from): below 0.1 no shift, 0.1–0.25 a moderate one, above 0.25 a major one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from app.feedback.store import CONFIDENCE_BUCKETS, StoreSummary

PSI_FLOOR = 0.0001
# Fewer predictions than this in the window: no drift score (it would be noise).
MIN_DRIFT_PREDICTIONS = 100


def accuracy(confusion: Mapping[tuple[str, str], int]) -> float | None:
    total = sum(confusion.values())
    if not total:
        return None
    return sum(n for (predicted, true), n in confusion.items() if predicted == true) / total


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
    return {
        "version": version,
        "predictions": summary.predictions.get(version, 0),
        "feedback": summary.feedback.get(version, 0),
        "accuracy": _rounded(accuracy(confusion)),
        "macro_f1": _rounded(macro_f1(confusion)),
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
