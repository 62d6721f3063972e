"""Experiment statistics against textbook values and SciPy/NumPy."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ssnas_tf.stats import paired_difference, summarize


def test_summarize_matches_the_textbook_t_interval():
    out = summarize([1, 2, 3, 4, 5])
    # mean 3, s^2 = 2.5, se = sqrt(0.5), t(0.975, 4) = 2.7764 (t tables)
    assert out["n"] == 5 and out["mean"] == pytest.approx(3.0)
    assert out["sd"] == pytest.approx(math.sqrt(2.5))
    assert out["se"] == pytest.approx(math.sqrt(0.5))
    assert out["ci_low"] == pytest.approx(3 - 2.7764 * math.sqrt(0.5), abs=1e-4)
    assert out["ci_high"] == pytest.approx(3 + 2.7764 * math.sqrt(0.5), abs=1e-4)


def test_summarize_matches_scipy_on_other_numbers_and_levels():
    x = np.array([0.912, 0.874, 0.889, 0.931, 0.866, 0.901, 0.877])
    for confidence in (0.9, 0.95, 0.99):
        out = summarize(x, confidence)
        low, high = scipy_stats.t.interval(confidence, len(x) - 1, loc=x.mean(),
                                           scale=scipy_stats.sem(x))
        assert (out["ci_low"], out["ci_high"]) == pytest.approx((low, high))
        assert out["se"] == pytest.approx(x.std(ddof=1) / np.sqrt(len(x)))


def test_summarize_of_one_or_no_value_leaves_the_spread_undefined():
    one = summarize([0.8])
    assert one["n"] == 1 and one["mean"] == 0.8
    assert all(math.isnan(one[k]) for k in ("sd", "se", "ci_low", "ci_high"))
    assert summarize([])["n"] == 0 and math.isnan(summarize([])["mean"])
    with pytest.raises(ValueError, match="non-finite"):
        summarize([0.5, float("nan")])


def test_paired_difference_exact_wilcoxon_p_value():
    # Five positive differences with distinct ranks: the exact two-sided
    # p-value is 2 / 2**5 (only the all-positive and all-negative sign patterns).
    out = paired_difference([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert out["wilcoxon_p"] == pytest.approx(2 / 32)
    assert out["mean"] == pytest.approx(3.0)


def test_paired_difference_agrees_with_scipy_paired_t_and_wilcoxon():
    a = [0.90, 0.85, 0.88, 0.91, 0.87, 0.86]
    b = [0.88, 0.86, 0.85, 0.90, 0.83, 0.86]
    out = paired_difference(a, b)
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert out["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    assert out["n"] == 6 and out["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    # The order matters: b - a is the mirror image.
    back = paired_difference(b, a)
    assert back["mean"] == pytest.approx(-out["mean"])
    assert back["wilcoxon_p"] == pytest.approx(out["wilcoxon_p"])


def test_paired_difference_edge_cases():
    assert paired_difference([0.8, 0.9], [0.8, 0.9])["wilcoxon_p"] == 1.0
    assert math.isnan(paired_difference([0.8], [0.7])["wilcoxon_p"])
    with pytest.raises(ValueError, match="3 values against 2"):
        paired_difference([1, 2, 3], [1, 2])
