"""Is model A better than model B, or is the difference seed and clip noise?

Two models are compared on the SAME clips with the SAME seeds (a *paired* comparison): for
every seed and clip we have both models' scores (1/0 for a right/wrong top class, or the MAP@3
term), so the differences cancel out how hard each clip is.

- :func:`permutation_test`: if A and B were interchangeable, each clip's difference (averaged
  over seeds) would be as likely positive as negative. Flip the signs at random many times
  (or all 2^n ways for few clips) and count how often the mean difference is at least as far
  from zero as the observed one: that share is the two-sided p-value.
- :func:`bootstrap_interval`: resample seeds and clips with replacement to get a 95 % interval
  of the mean difference (seeds vary the training, clips the test material).
- :func:`holm`: a chapter that asks several questions corrects for asking several
  (Holm-Bonferroni): with m questions, the smallest p-value is compared with alpha / m, the
  next with alpha / (m - 1), and so on, stopping at the first that fails.
- :func:`compare` and :func:`verdicts` put it together. The sign-flip test pairs clips with
  each clip's difference averaged over seeds, so it does not see how much the difference
  varies from one training seed to the next; the bootstrap interval does. A verdict therefore
  needs both: the Holm-corrected p-value at most alpha AND a 95 % interval that excludes zero.
  "No detectable difference" is a finding, not a failure.

Used in: notebooks 04, 05, 08, 09 and 10 (choices and verdicts on validation clips) and 07
(the Grad-CAM deletion check: permutation_test, holm, p_text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product

import numpy as np
import pandas as pd

ALPHA = 0.05  # family-wise error rate of a chapter's questions


def _as_matrix(scores) -> np.ndarray:
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis]
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"need scores of shape (n_seeds, n_clips) or (n_clips,), got {matrix.shape}")
    return matrix


def permutation_test(a, b, n_permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip test on per-clip differences.

    ``a`` and ``b`` are ``(n_seeds, n_clips)`` (or ``(n_clips,)``) scores on the same clips and
    seeds; each clip's difference is averaged over seeds first. With at most
    ``log2(n_permutations)`` clips every sign pattern is enumerated (an exact test), otherwise
    ``n_permutations`` random patterns are drawn; the observed pattern always counts, so the
    p-value is never 0.
    """
    A, B = _as_matrix(a), _as_matrix(b)
    if A.shape != B.shape:
        raise ValueError(f"paired scores need equal shapes, got {A.shape} and {B.shape}")
    d = (A - B).mean(axis=0)
    observed = abs(d.mean())
    n = len(d)
    if 2 ** n <= n_permutations:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
        return float(np.mean(np.abs(signs @ d) / n >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_permutations, n))
    extreme = np.sum(np.abs(signs @ d) / n >= observed - 1e-12)
    return float((extreme + 1) / (n_permutations + 1))


def bootstrap_interval(a, b, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean difference ``a - b``, resampling seeds and clips.

    Each replicate draws seeds with replacement, then clips with replacement, and averages the
    differences of the drawn (seed, clip) cells.
    """
    A, B = _as_matrix(a), _as_matrix(b)
    if A.shape != B.shape:
        raise ValueError(f"paired scores need equal shapes, got {A.shape} and {B.shape}")
    d = A - B
    rng = np.random.default_rng(seed)
    n_seeds, n_clips = d.shape
    means = np.empty(n_boot)
    for i in range(n_boot):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_clips, n_clips)
        means[i] = d[np.ix_(rows, cols)].mean()
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm-Bonferroni: adjusted p-values and which hypotheses are rejected at ``alpha``.

    Sorted ascending, p_(i) is multiplied by (m - i) (i from 0), made non-decreasing, and capped
    at 1; a hypothesis is rejected when its adjusted p-value is at most ``alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be a 1-D array in [0, 1], got {p}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted, adjusted <= alpha


def compare(a, b, n_permutations: int = 10_000, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean paired difference ``a - b`` with its bootstrap interval and permutation p-value."""
    A, B = _as_matrix(a), _as_matrix(b)
    low, high = bootstrap_interval(A, B, n_boot=n_boot, seed=seed)
    return {"a_mean": float(A.mean()), "b_mean": float(B.mean()),
            "difference": float((A - B).mean()), "ci_low": low, "ci_high": high,
            "p_value": permutation_test(A, B, n_permutations=n_permutations, seed=seed),
            "n_seeds": A.shape[0], "n_clips": A.shape[1]}


def verdicts(comparisons: Mapping[str, dict], alpha: float = ALPHA) -> pd.DataFrame:
    """One row per question: the comparison, Holm-adjusted p-value and the wording it supports.

    ``comparisons`` maps a question to :func:`compare`'s dict plus ``a`` and ``b`` (the names of
    the two models). The verdict says which model is better when the adjusted p-value is at
    most ``alpha`` and the bootstrap interval (``ci_low``, ``ci_high``: seeds and clips
    resampled) excludes zero; otherwise "no detectable difference". Columns added: ``p_holm``,
    ``interval_excludes_zero``, ``significant`` (both hold) and ``verdict``.
    """
    table = pd.DataFrame.from_dict(dict(comparisons), orient="index")
    if table.empty:
        return table
    adjusted, reject = holm(table["p_value"].to_numpy(), alpha)
    table["p_holm"] = adjusted
    table["interval_excludes_zero"] = (table["ci_low"] > 0) | (table["ci_high"] < 0)
    table["significant"] = reject & table["interval_excludes_zero"].to_numpy()
    table["verdict"] = [verdict_text(r["a"], r["b"], r["difference"], bool(s))
                        for (_, r), s in zip(table.iterrows(), table["significant"])]
    return table


def p_text(p: float) -> str:
    """``"p = 0.041"``, or ``"p < 0.001"`` below that (a permutation test's smallest p-value is
    1 / (permutations + 1), so three decimals would print a misleading 0.000)."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict_text(a: str, b: str, difference: float, significant: bool) -> str:
    """'A better than B' / 'B better than A' / 'no detectable difference'."""
    if not significant:
        return "no detectable difference"
    return f"{a} better than {b}" if difference > 0 else f"{b} better than {a}"


VERDICT_COLUMNS = ("difference", "ci_low", "ci_high", "p_value", "p_holm", "verdict")


def verdict_table(table: pd.DataFrame, columns: Sequence[str] = VERDICT_COLUMNS) -> pd.DataFrame:
    """``columns`` of a :func:`verdicts` table for display: numbers to three decimals, p-values
    as :func:`p_text` writes them (never a misleading 0.000)."""
    shown = table[list(columns)].copy()
    for column in shown.columns:
        if column in ("p_value", "p_holm"):
            shown[column] = [p_text(p).removeprefix("p = ").removeprefix("p ") for p in shown[column]]
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].round(3)
    return shown
