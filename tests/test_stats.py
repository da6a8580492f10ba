"""Integrity intervals as a specification: exact Clopper-Pearson bounds, the rule of
three at the edge, and never more confidence than the runs give."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import difference_interval, integrity_interval, lower_bound, runs_needed


def test_six_of_six_is_not_a_proof_of_perfection() -> None:
    interval = integrity_interval(6, 6)
    assert interval.rate == 1.0
    assert interval.upper == 1.0
    assert interval.lower == pytest.approx(0.025 ** (1 / 6))  # about 0.54
    assert str(interval) == "1.000 [0.541, 1.000] n=6"


def test_no_run_is_no_evidence() -> None:
    interval = integrity_interval(0, 0)
    assert (interval.lower, interval.upper, interval.rate) == (0.0, 1.0, None)
    assert "no evidence" in str(interval)
    assert lower_bound(0, 0) == 0.0


def test_the_interval_matches_published_clopper_pearson_values() -> None:
    # 8 of 10: the textbook exact interval is [0.4439, 0.9748]
    interval = integrity_interval(8, 10)
    assert interval.lower == pytest.approx(0.4439, abs=1e-4)
    assert interval.upper == pytest.approx(0.9748, abs=1e-4)
    assert integrity_interval(0, 10).upper == pytest.approx(1 - 0.025 ** (1 / 10))


def test_the_one_sided_bound_with_no_failure_is_the_rule_of_three() -> None:
    for n in (100, 1000, 3000):
        assert lower_bound(n, n) == pytest.approx(0.05 ** (1 / n))
        assert 1 - lower_bound(n, n) == pytest.approx(3 / n, rel=0.02)


def test_runs_needed_for_three_nines_at_95_percent() -> None:
    n = runs_needed(0.999)
    assert n == 2995
    assert lower_bound(n, n) >= 0.999 > lower_bound(n - 1, n - 1)


def test_coverage_is_never_below_the_nominal_level() -> None:
    """Simulate: the true rate lies inside the 95% interval at least 95% of the time."""
    rng = np.random.default_rng(7)
    for true_rate, n in ((0.99, 30), (0.9, 12), (0.999, 200)):
        passed = rng.binomial(n, true_rate, size=2000)
        inside = [
            integrity_interval(int(p), n).lower <= true_rate <= integrity_interval(int(p), n).upper
            for p in passed
        ]
        assert np.mean(inside) >= 0.95


@pytest.mark.parametrize(("passed", "n"), [(-1, 3), (4, 3), (1, -1)])
def test_impossible_counts_are_refused(passed: int, n: int) -> None:
    with pytest.raises(ValueError, match="passed"):
        integrity_interval(passed, n)


def test_the_interval_narrows_as_runs_accumulate() -> None:
    widths = [integrity_interval(n, n).upper - integrity_interval(n, n).lower for n in (6, 60, 600)]
    assert widths == sorted(widths, reverse=True)
    assert math.isclose(integrity_interval(600, 600).upper, 1.0)


def test_the_interval_of_a_difference_tells_luck_from_a_regression() -> None:
    # 20/20 -> 18/20: two failures in twenty runs cannot be told apart from luck
    low, high = difference_interval(20, 20, 18, 20)
    assert low < -0.1 < 0 < high
    # 20/20 -> 10/20: the whole interval is below zero
    low, high = difference_interval(20, 20, 10, 20)
    assert low < high < 0
    assert difference_interval(0, 0, 5, 5) == (-1.0, 1.0), "no run on one side: nothing known"
