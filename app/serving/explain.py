"""Why the model decided: each token's contribution to each class, measured by occlusion.

The text is scored as it is, then once more per token with that token left out: its own
id and the id of every n-gram it takes part in are removed from the model's input (the
rest of the row is kept as the encoder built it). A token's contribution to a class is
the class's probability with the token minus without it: positive means the token pushed
the model toward that class.

Occlusion asks the model itself, so it is faithful to whatever happens between the ids
and the probabilities (masked average, max pooling, dense layers, another architecture
behind the same encoder), at the cost of one inference call over ``tokens + 1`` rows. It
measures each token alone: two words that each suffice (``"great, love it"``) share the
credit, and may each get little.

No Flask here (``ARCHITECTURE.md``): ``app.web`` calls ``explain`` and shapes the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from app.serving.predictor import Predictor
from app.serving.preprocessing import OOV_ID, PAD_ID

METHOD = "occlusion"


@dataclass(frozen=True)
class TokenContribution:
    """One token as the model sees it (standardised: lower case, ``xxurl`` for a link…)
    and, per class, probability with it minus probability without it."""

    token: str
    contributions: dict[str, float]


@dataclass(frozen=True)
class Explanation:
    """The model's answer for one text and what each token contributed to it."""

    name: str
    version: str
    classes: list[str]
    probabilities: list[float]  # in ``classes`` order
    tokens: list[TokenContribution]  # in reading order, the tokens the model sees
    unseen_tokens: int  # tokens the model does not read: past its input, or skipped
    seconds: float
    # Where in ``tokens`` the unread ones are (before that index): at the end for a text
    # past the input length, inside for a transformer's skipped middle; None: none unread.
    unseen_at: int | None = None

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def score(self) -> float:
        return max(self.probabilities)

    @property
    def reference(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def occluded_rows(predictor: Predictor, text: str) -> tuple[list[str], np.ndarray]:
    """The tokens the model sees, and its input for the text (row 0), then with each seen
    token left out (row ``i + 1`` without token ``i`` and every feature made from it)."""
    encoder = predictor.bundle.encoder
    tokens, spans = encoder.feature_spans(text)
    seen = min(len(tokens), encoder.sequence_length)
    rows = np.full((seen + 1, encoder.width), PAD_ID, dtype=np.int32)
    for row, left_out in enumerate(range(-1, seen)):
        ids = [feature for feature, first, end in spans if not first <= left_out < end]
        # The encoder's convention for a text with nothing in it: one out-of-vocabulary id.
        rows[row, : len(ids) or 1] = ids or [OOV_ID]
        if encoder.char_length:  # the character n-gram segment, made again
            chars = encoder.char_ids([t for i, t in enumerate(tokens) if i != left_out])
            rows[row, encoder.sequence_length : encoder.sequence_length + len(chars)] = chars
    if not encoder.fixed_length:  # a transformer takes rows as wide as the longest
        rows = rows[:, : max(len(spans), 1)]
    return tokens, rows


def explain(predictor: Predictor, text: str) -> Explanation:
    """Score ``text`` and measure each token's contribution to each class. A text that
    ``/classify`` scores by windows (``Predictor.predict_proba``) is explained the same
    way: each window with its tokens left out one at a time, the answer the mean of the
    windows', so a token's contribution is its window's difference over the number of
    windows."""
    started = time.perf_counter()
    encoder = predictor.bundle.encoder
    # A transformer may skip the middle of a very long text: ``head`` windows come before it.
    windows, head = encoder.windows_read(text)
    occluded = [occluded_rows(predictor, window) for window in windows]
    width = max(rows.shape[1] for _, rows in occluded)  # a transformer's windows differ
    probabilities = predictor.predict_ids(
        np.concatenate(
            [
                np.pad(rows, ((0, 0), (0, width - rows.shape[1])), constant_values=PAD_ID)
                for _, rows in occluded
            ]
        )
    )
    classes = predictor.bundle.classes
    fulls, contributions, unseen, start = [], [], 0, 0
    unseen_at = None
    for window, (tokens, rows) in enumerate(occluded):
        if window == head:  # the windows before the skipped middle are done
            unseen_at = len(contributions)
        full, without = probabilities[start], probabilities[start + 1 : start + len(rows)]
        start += len(rows)
        fulls.append(full)
        differences = ((full[np.newaxis, :] - without) / len(windows)).tolist()
        contributions.extend(
            TokenContribution(token, dict(zip(classes, row, strict=True)))
            for token, row in zip(tokens, differences, strict=False)
        )
        unseen += len(tokens) - len(differences)
    if not encoder.fixed_length:  # a transformer's rows are cut, and it may skip windows
        unseen = max(encoder.words(text) - len(contributions), 0)
    if not unseen:
        unseen_at = None
    elif unseen_at is None:
        unseen_at = len(contributions)
    bundle = predictor.bundle
    return Explanation(
        name=bundle.name,
        version=bundle.version,
        classes=classes,
        probabilities=np.mean(fulls, axis=0).tolist(),
        tokens=contributions,
        unseen_tokens=unseen,
        seconds=time.perf_counter() - started,
        unseen_at=unseen_at,
    )
