import math

import numpy as np
import pytest

from rewardgauge.stats import hockey_stick, pearson, ranks, slope, spearman


def test_ranks_average_ties():
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)  # scipy.stats.spearmanr
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # a constant side has no correlation
    assert math.isnan(pearson([1, 2], [2, 1]))  # too few points


def test_slope_is_least_squares():
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([0, 1, 2], [0, 1, 0]) == pytest.approx(0.0)
    assert math.isnan(slope([1, 1], [0, 1]))


def test_hockey_stick_recovers_the_knee_and_slopes():
    x = np.arange(0, 40, dtype=float)
    y = 0.1 * x + 2.0 * np.maximum(0, x - 20)  # flat-ish, then steep past 20
    fit = hockey_stick(x, y)
    assert fit.knee == pytest.approx(20, abs=2.5)
    assert fit.slope_before == pytest.approx(0.1, abs=0.1)
    assert fit.slope_after == pytest.approx(2.1, abs=0.15)
    assert fit.gain > 0.9
    line = hockey_stick(x, 3 * x + 1)  # a straight line: the knee explains nothing
    assert line.gain == pytest.approx(0.0, abs=1e-6)
    assert line.slope_before == pytest.approx(line.slope_after, abs=1e-6)
    assert hockey_stick([1, 1, 2, 2], [0, 1, 2, 3]) is None
