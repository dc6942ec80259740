"""Thompson sampling over model versions (``ROUTING=bandit``), as Seldon Core's
multi-armed-bandit routers do: each version is an arm whose reward is 1 when feedback says
its answer was right, 0 when wrong.

Per request, draw from each arm's Beta(1 + successes, 1 + failures) and send the request
to the highest draw. A floor keeps every arm alive: with probability
``min_percent × arms / 100`` the arm is chosen uniformly instead, so each arm gets at
least ``min_percent`` of the traffic whatever the rewards say (and a version that
improves can still earn it back).

The counts come from the database (shared by every worker) through ``update()``; this
module holds no database code.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from typing import Any

# Draws of the simulation that estimates each arm's share (about 6 ms for two arms,
# every 2 s in each worker while feedback comes in: 2,000 took 24 ms of the GIL).
SHARE_DRAWS = 500


class ThompsonSampler:
    """Chooses an arm per request from the latest known rewards (see the module docstring)."""

    def __init__(self, arms: Sequence[str], min_percent: float = 5):
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        if not 0 <= min_percent * len(arms) <= 100:
            raise ValueError(
                f"BANDIT_MIN_PERCENT={min_percent}: use 0 to {100 / len(arms):g} "
                f"with {len(arms)} versions"
            )
        self.arms = list(arms)
        self.min_percent = min_percent
        self._explore = min_percent * len(arms) / 100
        self._counts: dict[str, tuple[int, int]] = {arm: (0, 0) for arm in self.arms}
        self._lock = threading.Lock()
        self._shares: tuple[Any, dict[str, float]] | None = None  # expected_shares's last

    def update(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Replace the rewards: version → (successes, failures); unknown versions ignored."""
        fresh = {arm: tuple(counts.get(arm, (0, 0))) for arm in self.arms}
        with self._lock:
            self._counts = fresh  # type: ignore[assignment]

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        return dict(self._counts)

    def choose(self, rng: random.Random | None = None) -> str:
        draw = rng or random
        if draw.random() < self._explore:
            return draw.choice(self.arms)
        return self._highest_draw(draw, self._counts)

    def _highest_draw(self, draw: Any, counts: Mapping) -> str:
        """The arm whose reward draws highest (``draw``: a Random, or the module)."""
        return max(
            self.arms,
            key=lambda arm: draw.betavariate(1 + counts[arm][0], 1 + counts[arm][1]),
        )

    def expected_shares(self, draws: int = SHARE_DRAWS, seed: int = 0) -> dict[str, float]:
        """The share of traffic each arm gets now, for ``/monitoring`` and its gauge: the
        floor, exactly, plus the rest by how often each arm's draw is the highest (by
        simulation; the floor simulated too read 4.65% against a floor of 5). Arms with
        the same rewards share their wins evenly (without feedback the split is even,
        not the simulation's 49.6 / 50.4), and the shares of the same rewards are worked
        out once: ``/monitoring`` and the gauge give the same numbers."""
        counts = self._counts
        key = (tuple(counts.items()), draws, seed)
        known = self._shares
        if known is not None and known[0] == key:
            return dict(known[1])
        rng = random.Random(seed)
        wins = {arm: 0.0 for arm in self.arms}
        for _ in range(draws):
            wins[self._highest_draw(rng, counts)] += 1
        alike: dict[tuple[int, int], list[str]] = {}
        for arm in self.arms:
            alike.setdefault(counts[arm], []).append(arm)
        for arms in alike.values():
            mean = sum(wins[arm] for arm in arms) / len(arms)
            wins.update(dict.fromkeys(arms, mean))
        floor = self.min_percent / 100
        shares = {arm: floor + (1 - self._explore) * won / draws for arm, won in wins.items()}
        self._shares = (key, shares)
        return dict(shares)
