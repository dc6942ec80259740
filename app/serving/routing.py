"""Who answers a request that names no version: the ``ROUTING`` policies.

- ``stable``: the ``stable`` version.
- ``canary``: ``CANARY_PERCENT`` of callers get ``canary``, the rest ``stable``. A routing
  key (the ``X-Routing-Key`` header) is hashed, so one key always gets one version, in
  every worker and across restarts; without a key the draw is random per request.
- ``shadow``: ``stable`` answers; ``canary`` also scores ``SHADOW_PERCENT`` of the
  requests in a background thread (``ShadowScorer``), off the response path.
- ``bandit``: every loaded version competes; Thompson sampling on feedback rewards
  (``app.serving.bandit``) picks one per request, each keeping ``BANDIT_MIN_PERCENT``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.serving.bandit import ThompsonSampler
from app.serving.predictor import Classification, ModelBundleError, Predictor
from app.serving.registry import CANARY, ModelRegistry

log = logging.getLogger(__name__)

POLICIES = ("stable", "canary", "shadow", "bandit")


def key_bucket(key: str) -> float:
    """A routing key's fixed place in [0, 100): a hash, not Python's salted ``hash()``."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


@dataclass(frozen=True)
class Route:
    """Who answers, and who scores the same texts in the shadow (or None)."""

    answer: Predictor
    shadow: Predictor | None = None


class Router:
    """Chooses the version for requests that name none (see the module docstring)."""

    def __init__(
        self,
        registry: ModelRegistry,
        policy: str = "stable",
        canary_percent: float = 10,
        shadow_percent: float = 100,
        bandit_min_percent: float = 5,
    ):
        if policy not in POLICIES:
            raise ModelBundleError(f"ROUTING={policy}: use one of {', '.join(POLICIES)}")
        self.bandit: ThompsonSampler | None = None
        self._versions = registry.versions
        if policy == "bandit":
            if len(registry.versions) < 2:
                raise ModelBundleError("ROUTING=bandit needs at least two loaded versions")
            try:
                self.bandit = ThompsonSampler(list(registry.versions), bandit_min_percent)
            except ValueError as error:
                raise ModelBundleError(str(error)) from None
        elif policy != "stable" and CANARY not in registry.labels:
            raise ModelBundleError(
                f"ROUTING={policy} needs a 'canary' label (MODEL_LABELS=stable=N,canary=M)"
            )
        self.policy = policy
        self.stable = registry.stable
        self.candidate = registry.labelled(CANARY) if policy in ("canary", "shadow") else None
        self.canary_percent = canary_percent
        self.shadow_percent = shadow_percent

    def route(self, routing_key: str | None = None) -> Route:
        if self.bandit is not None:
            return Route(self._versions[self.bandit.choose()])
        if self.candidate is None:
            return Route(self.stable)
        if self.policy == "canary":
            draw = key_bucket(routing_key) if routing_key else random.random() * 100
            return Route(self.candidate if draw < self.canary_percent else self.stable)
        shadowed = random.random() * 100 < self.shadow_percent
        return Route(self.stable, self.candidate if shadowed else None)

    def answering(self) -> list[Predictor]:
        """The versions ``route`` may have answer a request (a shadow never answers)."""
        if self.bandit is not None:
            return list(self._versions.values())
        if self.policy == "canary":
            return [self.stable, self.candidate]
        return [self.stable]


# What the shadow reports: (stable version, candidate version, labels agreed per text,
# the candidate's seconds), and (candidate version) for work dropped or failed.
ComparisonObserver = Callable[[str, str, Sequence[bool], float], None]
DropObserver = Callable[[str], None]


# What a worker's shadow may hold, waiting: its requests, and their characters. The
# requests alone let 262 batches of 51 long reviews wait for a transformer (35 minutes of
# its work, 290 MB more memory, nothing dropped; an outside probe).
SHADOW_MAX_PENDING = 256
SHADOW_MAX_CHARS = 1_000_000
# Texts a call of the candidate's: a worker that stops waits for the call in progress
# (5 s at most), and 64 texts of 5,000 characters took a transformer 10-16 s.
SHADOW_CALL_TEXTS = 8


class ShadowScorer:
    """Scores texts with a candidate version in one background thread of this process.

    The queue is bounded, in requests and in characters: when the candidate falls
    behind, work is dropped (and reported), never queued without limit and never waited
    for by a request. The candidate's exceptions are logged and reported as drops; no
    request sees them.
    """

    def __init__(
        self,
        on_comparison: ComparisonObserver,
        on_drop: DropObserver,
        max_pending: int = SHADOW_MAX_PENDING,
        max_chars: int = SHADOW_MAX_CHARS,
    ):
        self._pending: queue.Queue[tuple[Predictor, list[str], Classification, int]] = queue.Queue(
            max_pending
        )
        self._max_chars = max_chars
        self._chars = 0  # of the texts waiting or being scored
        self._chars_lock = threading.Lock()
        self._on_comparison = on_comparison
        self._on_drop = on_drop
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def submit(self, candidate: Predictor, texts: list[str], answer: Classification) -> None:
        size = sum(map(len, texts))
        with self._chars_lock:
            if self._chars + size > self._max_chars:
                self._on_drop(candidate.bundle.version)
                return
            self._chars += size
        try:
            self._pending.put_nowait((candidate, texts, answer, size))
        except queue.Full:
            self._release(size)
            self._on_drop(candidate.bundle.version)

    def _release(self, size: int) -> None:
        with self._chars_lock:
            self._chars -= size

    def join(self) -> None:
        """Wait until everything submitted so far is scored (tests)."""
        self._pending.join()

    def close(self, timeout: float = 5) -> None:
        """Stop after the call in progress, leaving what waits unscored (a worker that
        exits). The thread is a daemon: left inside a transformer's OpenVINO call while
        the interpreter shut down, it took the worker down with "terminate called
        without an active exception" and SIGABRT (4 stops of 6 under load, measured);
        calls of at most SHADOW_CALL_TEXTS texts end within the wait."""
        self._closing = True
        with contextlib.suppress(queue.Full):
            self._pending.put_nowait(None)  # wakes the thread if it waits for work
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._closing:
            item = self._pending.get()
            if item is None or self._closing:
                self._pending.task_done()
                continue
            candidate, texts, answer, size = item
            try:
                started = time.perf_counter()
                labels: list[str] = []
                for first in range(0, len(texts), SHADOW_CALL_TEXTS):
                    if self._closing:
                        break
                    labels += candidate.classify(texts[first : first + SHADOW_CALL_TEXTS]).labels
                else:
                    seconds = time.perf_counter() - started
                    agreed = [a == b for a, b in zip(answer.labels, labels, strict=True)]
                    self._on_comparison(answer.version, candidate.bundle.version, agreed, seconds)
            except Exception:
                log.exception(
                    "shadow scoring failed", extra={"model_version": candidate.bundle.version}
                )
                self._on_drop(candidate.bundle.version)
            finally:
                self._release(size)
                self._pending.task_done()
