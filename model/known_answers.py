"""Known answers: a handful of clear texts with their expected labels, written into every
version's ``metadata.json`` by training. The server scores them when it loads the version
and refuses it when one comes out wrong (``app.serving.predictor``): a ``metadata.json``
whose classes are listed in another order than the model was trained with would otherwise
load and label everything wrongly.

The texts are written for this purpose (from no data set). Training keeps those the model
gets right with at least a given confidence, the surest first, up to ``PER_CLASS`` a class,
and fails if a class has none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CANDIDATES = (
    ("I absolutely love this, it is wonderful and works perfectly.", "positive"),
    ("Fantastic service, friendly staff and great food. Highly recommended!", "positive"),
    ("The best purchase I have made all year, excellent quality.", "positive"),
    ("The crew was friendly and the flight left on time.", "positive"),
    ("Terrible experience, rude staff and the product broke after a day.", "negative"),
    ("This is the worst app I have ever used, it crashes constantly.", "negative"),
    ("Awful, disgusting food and horrible service. Never again.", "negative"),
    ("I hate it, a complete waste of money.", "negative"),
    ("The store opens at 9 am on weekdays.", "neutral"),
    ("The package contains two cables and a charger.", "neutral"),
    ("The meeting has been moved to room 204 on Thursday.", "neutral"),
    ("The book has twelve chapters and an index.", "neutral"),
    # Questions, the neutral texts of the tweet corpus (version 1 knows no other kind).
    ("Can I bring a guitar as carry-on?", "neutral"),
    ("Which terminal does the Dallas flight leave from?", "neutral"),
    ("Do you fly from Chicago to Miami on Sundays?", "neutral"),
)
PER_CLASS = 2


def choose(
    probabilities: np.ndarray,
    classes: Sequence[str],
    min_confidence: float,
    candidates: Sequence[tuple[str, str]] = CANDIDATES,
) -> list[dict[str, str]]:
    """The candidates the model gets right with at least ``min_confidence`` (rows of
    ``probabilities`` in ``candidates`` order, columns in ``classes`` order), the surest
    first, ``PER_CLASS`` a class, as ``{"text", "label"}`` for ``metadata.json``."""
    chosen = []
    for label in classes:
        column = list(classes).index(label)
        right = [
            (float(probabilities[i, column]), text)
            for i, (text, expected) in enumerate(candidates)
            if expected == label
            and probabilities[i].argmax() == column
            and probabilities[i, column] >= min_confidence
        ]
        if not right:
            raise RuntimeError(f"no known-answer candidate for {label!r} is answered surely")
        for _, text in sorted(right, reverse=True)[:PER_CLASS]:
            chosen.append({"text": text, "label": label})
    return chosen
