"""How much a pass rate is worth: exact binomial intervals for integrity and pass^k.

durabench reports integrity as passed runs / exposed runs. A rate without its interval
overclaims: 6 of 6 runs passing says integrity is at least 0.54 (95%), not 1.000. The
interval is Clopper-Pearson's, the exact one: its coverage is never below the nominal
level, also at the edge that matters here (no failure, or very few), where Wilson's
and the normal approximation's can fall below it. It is conservative by design: a
green cell must never claim more than its runs show.

One-sided lower bounds answer "is integrity at least P?" (`durabench run
--until-integrity P`); with no failure in n runs the bound is (1 - C)^(1/n), about
1 - 3/n at 95%: the rule of three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import beta

__all__ = [
    "DEFAULT_CONFIDENCE",
    "Interval",
    "difference_interval",
    "integrity_interval",
    "lower_bound",
    "runs_needed",
]

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """`passed` of `n` runs, and the two-sided `confidence` interval of the pass rate."""

    passed: int
    n: int
    lower: float
    upper: float
    confidence: float = DEFAULT_CONFIDENCE
    method: str = "clopper-pearson"

    @property
    def rate(self) -> float | None:
        return self.passed / self.n if self.n else None

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {
            "passed": self.passed,
            "n": self.n,
            "rate": self.rate,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "method": self.method,
        }

    def __str__(self) -> str:
        if not self.n:
            return "n=0 (no evidence)"
        return f"{self.rate:.3f} [{self.lower:.3f}, {self.upper:.3f}] n={self.n}"


def _check(passed: int, n: int, confidence: float) -> None:
    if n < 0 or not 0 <= passed <= n:
        raise ValueError(f"need 0 <= passed <= n, got passed={passed}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def integrity_interval(passed: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The exact two-sided interval of the pass rate; [0, 1] when there is no run."""
    _check(passed, n, confidence)
    if n == 0:
        return Interval(0, 0, 0.0, 1.0, confidence)
    alpha = 1 - confidence
    lower = 0.0 if passed == 0 else float(beta.ppf(alpha / 2, passed, n - passed + 1))
    upper = 1.0 if passed == n else float(beta.ppf(1 - alpha / 2, passed + 1, n - passed))
    return Interval(passed, n, lower, upper, confidence)


def lower_bound(passed: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The exact one-sided lower confidence bound of the pass rate (0 with no run)."""
    _check(passed, n, confidence)
    if passed == 0:
        return 0.0
    return float(beta.ppf(1 - confidence, passed, n - passed + 1))


def runs_needed(target: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The fewest exposed runs that, all passing, put the one-sided lower bound at or
    above `target` (0.999 at 95% takes 2995 runs)."""
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    _check(0, 0, confidence)
    n = math.ceil(math.log(1 - confidence) / math.log(target))
    while lower_bound(n, n, confidence) < target:  # guard the float edge
        n += 1
    return n


def difference_interval(
    base_passed: int,
    base_n: int,
    passed: int,
    n: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """The interval of rate - base_rate, recovered from the two exact intervals (MOVER,
    Zou & Donner 2008): what `compare` reads an integrity gate by. With no run on either
    side it is [-1, 1]: nothing is known."""
    if not base_n or not n:
        return -1.0, 1.0
    base = integrity_interval(base_passed, base_n, confidence)
    cand = integrity_interval(passed, n, confidence)
    b, c = base_passed / base_n, passed / n
    low = (c - b) - math.sqrt((c - cand.lower) ** 2 + (base.upper - b) ** 2)
    high = (c - b) + math.sqrt((cand.upper - c) ** 2 + (b - base.lower) ** 2)
    return max(-1.0, low), min(1.0, high)
