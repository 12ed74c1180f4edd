"""When customers talk, scan and buy: a daily profile in local time.

Office workers read their phones around 09:30 (commute, arrival), 12:00 (lunch) and
20:00–21:00 (evening at home) — the posting times DOMAIN.md recommends. The profile is a
mixture of a background curve over the waking day and three peaks; weekends sleep in,
lose the lunch-break peak's sharpness and gain a longer evening.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Background activity per local hour (0–23): night is quiet, the day is busy.
_BACKGROUND_HOURS: tuple[float, ...] = (
    0.6, 0.3, 0.15, 0.1, 0.1, 0.2, 0.6, 1.5, 2.5, 3.0, 3.0, 3.0,
    3.0, 2.8, 2.5, 2.5, 2.6, 2.8, 3.0, 3.5, 4.0, 3.8, 3.0, 1.6,
)
_BACKGROUND_CUM = tuple(sum(_BACKGROUND_HOURS[: h + 1]) for h in range(24))


@dataclass(frozen=True)
class Peak:
    center: float  # local hour, e.g. 9.5 = 09:30
    spread: float  # standard deviation in hours
    weight: float


@dataclass(frozen=True)
class DayProfile:
    background: float
    peaks: tuple[Peak, ...]

    def sample_hour(self, rng: random.Random) -> float:
        """A local time of day in hours, ``0 <= h < 24``."""
        roll = rng.random() * (self.background + sum(p.weight for p in self.peaks))
        if roll >= self.background:
            roll -= self.background
            for peak in self.peaks:
                if roll < peak.weight:
                    while True:
                        hour = rng.gauss(peak.center, peak.spread)
                        if 0 <= hour < 24:
                            return hour
                roll -= peak.weight
        hour = rng.choices(range(24), cum_weights=_BACKGROUND_CUM)[0]
        return hour + rng.random()


WEEKDAY = DayProfile(
    background=0.45,
    peaks=(Peak(9.5, 0.3, 0.15), Peak(12.25, 0.3, 0.12), Peak(20.5, 0.6, 0.28)),
)
WEEKEND = DayProfile(
    background=0.5,
    peaks=(Peak(10.3, 0.6, 0.08), Peak(12.4, 0.45, 0.1), Peak(20.6, 0.75, 0.32)),
)
# Weekends bring a little more traffic to a fashion brand's groups (shopping days).
WEEKEND_VOLUME = 1.15


def profile_for(weekday: int) -> DayProfile:
    return WEEKEND if weekday >= 5 else WEEKDAY


def sample_hour(rng: random.Random, weekday: int) -> float:
    return profile_for(weekday).sample_hour(rng)
