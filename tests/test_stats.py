"""helpers.stats: paired comparisons and the Holm correction, on hand-computed cases."""

import numpy as np
import pytest

from helpers.stats import bootstrap_interval, compare, holm, permutation_test, verdicts


def test_exact_sign_flip_p_value_by_hand():
    # differences (1, 1, 1): of the 8 sign patterns only +++ and --- reach |mean| = 1 -> 2/8
    assert permutation_test([1, 1, 1], [0, 0, 0]) == pytest.approx(0.25)
    # differences (2, 1): means 1.5, 0.5, -0.5, -1.5 -> 2 of 4 reach |1.5|
    assert permutation_test([2, 1], [0, 0]) == pytest.approx(0.5)


def test_seeds_are_averaged_per_clip_before_flipping():
    a = np.array([[1, 1, 1], [1, 1, 1]])
    b = np.array([[0, 0, 0], [2, 0, 0]])  # clip differences averaged over seeds: (0, 1, 1)
    # patterns of (0, 1, 1): |mean| >= 2/3 for ++, -- on the last two clips: 4 of 8 (the 0 flips freely)
    assert permutation_test(a, b) == pytest.approx(0.5)


def test_identical_models_give_p_one_and_a_zero_interval():
    a = np.random.default_rng(0).integers(0, 2, size=(3, 50))
    assert permutation_test(a, a) == 1.0
    assert bootstrap_interval(a, a) == (0.0, 0.0)


def test_random_flips_for_many_clips_find_a_clear_difference():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 400)) < 0.8).astype(float)
    b = (rng.random((3, 400)) < 0.5).astype(float)
    result = compare(a, b, n_permutations=2000)
    assert result["p_value"] < 0.01
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert result["ci_low"] > 0


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    adjusted, reject = holm([0.01, 0.04, 0.03])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert list(reject) == [True, False, False]
    assert list(holm([0.2, 0.9])[0]) == pytest.approx([0.4, 0.9])


def test_holm_rejects_bad_input():
    with pytest.raises(ValueError):
        holm([0.5, 1.5])


def test_verdict_wording_follows_the_corrected_result():
    strong = {"a": "A", "b": "B", "difference": -0.2, "p_value": 0.001, "ci_low": -0.3, "ci_high": -0.1}
    weak = {"a": "C", "b": "D", "difference": 0.05, "p_value": 0.03,  # second of 3: 0.03 x 2 = 0.06
            "ci_low": 0.01, "ci_high": 0.09}
    null = {"a": "E", "b": "F", "difference": 0.01, "p_value": 0.5, "ci_low": -0.02, "ci_high": 0.04}
    table = verdicts({"q1": strong, "q2": weak, "q3": null})
    assert table.loc["q1", "verdict"] == "B better than A"
    assert table.loc["q2", "verdict"] == "no detectable difference"
    assert table.loc["q2", "p_holm"] == pytest.approx(0.06)
    assert table.loc["q3", "p_holm"] == pytest.approx(0.5)  # largest of 3: 0.5 x 1, kept monotone
    assert table.loc["q3", "verdict"] == "no detectable difference"


def test_no_verdict_when_the_seed_and_clip_interval_includes_zero():
    # the clip-level test alone would call it (Holm: 0.001 x 2, then 0.002 x 1), but resampling seeds
    # too, the interval straddles zero: the seeds disagree, so no verdict
    seeds_disagree = {"a": "A", "b": "B", "difference": -0.013, "p_value": 0.002,
                      "ci_low": -0.029, "ci_high": 0.004}
    clear = {"a": "C", "b": "D", "difference": 0.1, "p_value": 0.001, "ci_low": 0.05, "ci_high": 0.15}
    table = verdicts({"q1": seeds_disagree, "q2": clear})
    assert table.loc["q1", "p_holm"] == pytest.approx(0.002)
    assert not table.loc["q1", "interval_excludes_zero"]
    assert not table.loc["q1", "significant"]
    assert table.loc["q1", "verdict"] == "no detectable difference"
    assert table.loc["q2", "verdict"] == "C better than D"


def test_p_text_never_prints_zero():
    from helpers.stats import p_text

    assert p_text(0.0412) == "p = 0.041"
    assert p_text(0.0002) == "p < 0.001"
    assert p_text(0.001) == "p = 0.001"


def test_verdict_table_never_shows_a_zero_p_value():
    from helpers.stats import verdict_table

    row = {"a": "A", "b": "B", "difference": 0.12345, "p_value": 0.0001, "ci_low": 0.05, "ci_high": 0.2}
    shown = verdict_table(verdicts({"q": row}))
    assert list(shown.columns) == ["difference", "ci_low", "ci_high", "p_value", "p_holm", "verdict"]
    assert shown.loc["q", "p_value"] == "< 0.001"
    assert shown.loc["q", "difference"] == 0.123
    assert shown.loc["q", "verdict"] == "A better than B"


def test_a_sampled_p_value_counts_the_observed_pattern_and_repeats_with_its_seed():
    """Beyond log2(n_permutations) clips the signs are sampled: (extreme + 1) / (n + 1), so a
    difference no flip reaches still gets 1 / (n + 1), never 0; the same seed, the same p."""
    a, b = np.ones(40), np.zeros(40)  # every clip +1: only the all-plus/all-minus patterns reach it
    assert permutation_test(a, b, n_permutations=999) == pytest.approx(1 / 1000)
    rng = np.random.default_rng(3)
    x, y = rng.random((2, 60)), rng.random((2, 60))
    assert permutation_test(x, y, n_permutations=500, seed=7) == permutation_test(x, y, n_permutations=500, seed=7)


def test_the_bootstrap_interval_by_hand_and_when_seeds_disagree():
    # the same difference on every (seed, clip) cell: every replicate has that mean
    a, b = np.full((3, 20), 0.7), np.full((3, 20), 0.2)
    assert bootstrap_interval(a, b) == pytest.approx((0.5, 0.5))
    # seeds that disagree (+0.2 on one, -0.2 on another) widen the interval past zero, although
    # each seed's clips agree perfectly with each other
    d = np.array([[0.2] * 30, [-0.2] * 30, [0.0] * 30])
    low, high = bootstrap_interval(d, np.zeros_like(d), level=0.9)
    assert low < 0 < high
    narrow = bootstrap_interval(d, np.zeros_like(d), level=0.5)
    assert low <= narrow[0] <= narrow[1] <= high


def test_paired_scores_must_match_and_be_one_or_two_dimensional():
    with pytest.raises(ValueError, match="equal shapes"):
        permutation_test(np.zeros((2, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="equal shapes"):
        bootstrap_interval(np.zeros(5), np.zeros(6))
    with pytest.raises(ValueError, match=r"shape \(n_seeds, n_clips\)"):
        permutation_test(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(n_seeds, n_clips\)"):
        bootstrap_interval([], [])


def test_holm_keeps_tied_p_values_tied():
    adjusted, rejected = holm([0.01, 0.01, 0.04])
    # 0.01 x 3 = 0.03; 0.01 x 2 = 0.02, raised to 0.03 to stay monotone; 0.04 x 1
    assert list(adjusted) == pytest.approx([0.03, 0.03, 0.04])
    assert list(rejected) == [True, True, True]
    with pytest.raises(ValueError):
        holm([[0.1, 0.2]])
