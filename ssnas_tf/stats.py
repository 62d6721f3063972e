"""Summary statistics for repeated trials: mean, standard error, t-intervals and
the paired comparison of two methods (Wilcoxon signed-rank test).

Plain NumPy plus `scipy.stats` (for the t quantile and the Wilcoxon test); no
TensorFlow. Every function takes plain sequences of floats and returns plain
Python floats, NaN where a figure is undefined (e.g. a standard error of one
trial), so the results can go straight into a CSV file.

Example:
>>> round(summarize([1, 2, 3, 4, 5])["ci_low"], 4)   # 3 - t(0.975, 4) * sqrt(0.5)
1.0368
"""

import math

import numpy as np

NAN = float("nan")


def _scipy_stats():
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - scipy is a declared dependency
        raise ImportError(
            "the experiment statistics need scipy: pip install scipy "
            "(or reinstall ssnas_tf: pip install -e .)") from None
    return stats


def _values(values, name):
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: non-finite values in {array.tolist()}")
    return array


def summarize(values, confidence=0.95):
    """Mean, sample standard deviation, standard error and a t-interval.

    Args:
        values: one score per trial.
        confidence: the interval's coverage. Defaults to 0.95.

    Returns:
        dict with `n`, `mean`, `sd` (ddof=1), `se` (sd / sqrt(n)), `ci_low`,
        `ci_high` (mean -+ t_{(1+confidence)/2, n-1} * se). With one value,
        sd, se and the interval are NaN; with none, everything but n is NaN.
    """
    x = _values(values, "values")
    n = len(x)
    out = {"n": n, "mean": NAN, "sd": NAN, "se": NAN, "ci_low": NAN, "ci_high": NAN}
    if n == 0:
        return out
    out["mean"] = float(x.mean())
    if n == 1:
        return out
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(_scipy_stats().t.ppf((1 + confidence) / 2, n - 1)) * se
    out.update(sd=sd, se=se, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def paired_difference(a, b, confidence=0.95):
    """The paired comparison a - b of two methods over the same trials.

    Args:
        a, b: scores of the two methods, element i from the same trial (same
            test split and labeled set).
        confidence: coverage of the t-interval of the mean difference.

    Returns:
        `summarize(a - b)` plus `wilcoxon_p`: the two-sided p-value of the
        Wilcoxon signed-rank test (SciPy's default method: exact for small n
        without ties or zeros). It is 1.0 when every difference is zero and
        NaN with fewer than two pairs.

    Raises:
        ValueError: a and b differ in length.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if len(x) != len(y):
        raise ValueError(f"paired_difference: {len(x)} values against {len(y)}; "
                         f"the trials must pair up")
    diff = x - y
    out = summarize(diff, confidence)
    if len(diff) < 2:
        out["wilcoxon_p"] = NAN
    elif not np.any(diff):
        out["wilcoxon_p"] = 1.0  # no evidence of any difference; scipy returns NaN
    else:
        out["wilcoxon_p"] = float(_scipy_stats().wilcoxon(x, y).pvalue)
    return out


__all__ = ["summarize", "paired_difference"]
