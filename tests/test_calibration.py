"""helpers.calibration: temperature scaling, ECE and the reliability diagram, OOD scores and
their threshold, the synthetic out-of-distribution sounds."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers.calibration import (  # noqa: E402
    OODDetector,
    acceptance_threshold,
    apply_temperature,
    confidence_gap,
    cross_validated_temperature,
    expected_calibration_error,
    fit_temperature,
    mahalanobis_distances,
    mahalanobis_fit,
    plot_reliability,
    reliability_table,
    shrunk_precision,
    synthetic_unlike,
    temperature_nll,
    unheard_margin,
)
from helpers.plots import label_problems  # noqa: E402


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n=4000, k=5, true_t=2.5, seed=0):
    """Labels drawn from softmax(logits); the model reports softmax(true_t * logits), which is
    over-confident by exactly the temperature true_t."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(n, k))
    calibrated = _softmax(logits)
    y = np.array([rng.choice(k, p=p) for p in calibrated])
    return _softmax(true_t * logits), y, calibrated


def test_temperature_recovers_a_known_overconfidence():
    probs, y, calibrated = _overconfident()
    t = fit_temperature(probs, y)
    assert t == pytest.approx(2.5, rel=0.08)
    after = apply_temperature(probs, t)
    assert temperature_nll(probs, y, t) < temperature_nll(probs, y, 1.0)
    assert expected_calibration_error(after, y) < expected_calibration_error(probs, y) / 2
    # the ranking of the classes inside each clip never changes
    np.testing.assert_array_equal(after.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(probs, 2.5), calibrated, atol=1e-9)


def test_cross_validated_temperature_says_whether_it_helps():
    probs, y, _ = _overconfident(n=1500)
    over = cross_validated_temperature(probs, y)
    assert over["helps"] and over["nll_after"] < over["nll_before"]
    assert over["ece_after"] < over["ece_before"]
    assert over["temperature"] == pytest.approx(fit_temperature(probs, y))
    calibrated, y2, _ = _overconfident(n=1500, true_t=1.0, seed=1)
    fine = cross_validated_temperature(calibrated, y2)
    assert fine["temperature"] == pytest.approx(1.0, abs=0.15)
    assert abs(fine["nll_after"] - fine["nll_before"]) < 0.01
    with pytest.raises(ValueError, match="n_folds"):
        cross_validated_temperature(probs[:3], y[:3], n_folds=5)


def test_apply_temperature_one_is_the_identity_and_bad_temperatures_are_refused():
    probs = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, atol=1e-12)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            apply_temperature(probs, bad)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3), st.floats(0.1, 10.0))
def test_calibrated_probabilities_sum_to_one_and_keep_the_order(p, t):
    probs = np.asarray([p]) / np.sum(p)
    out = apply_temperature(probs, t)
    assert out.sum() == pytest.approx(1.0)
    assert list(np.argsort(-out[0], kind="stable")) == list(np.argsort(-probs[0], kind="stable"))


def test_ece_by_hand_on_four_clips():
    # two bins: (0, 0.5] and (0.5, 1]
    probs = np.array([[0.9, 0.1],   # confidence 0.9, right
                      [0.8, 0.2],   # 0.8, wrong
                      [0.4, 0.6],   # 0.6, right
                      [0.5, 0.5]])  # 0.5 (first bin), tie -> class 0, right
    y = np.array([0, 1, 1, 0])
    table = reliability_table(probs, y, n_bins=2)
    assert list(table["count"]) == [1, 3]
    assert table["confidence"].tolist() == pytest.approx([0.5, (0.9 + 0.8 + 0.6) / 3])
    assert table["accuracy"].tolist() == pytest.approx([1.0, 2 / 3])
    by_hand = 1 / 4 * abs(1.0 - 0.5) + 3 / 4 * abs(2 / 3 - 2.3 / 3)
    assert expected_calibration_error(probs, y, n_bins=2) == pytest.approx(by_hand)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0
    # which way: mean confidence (0.9 + 0.8 + 0.6 + 0.5) / 4 = 0.7 against 3 of 4 right
    assert confidence_gap(probs, y) == pytest.approx(0.7 - 0.75)


def test_bad_inputs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="n_clips"):
        expected_calibration_error(np.ones(3) / 3, np.array([0]))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer"):
        fit_temperature(np.full((2, 3), 1 / 3), np.array([0.0, 1.0]))


def test_reliability_diagram_composes_curves_and_is_labelled():
    probs, y, _ = _overconfident(n=600)
    ax = plot_reliability(probs, y, label="before calibration")
    plot_reliability(apply_temperature(probs, fit_temperature(probs, y)), y, ax=ax,
                     label="after calibration", title="Reliability (validation clips)")
    fig = ax.figure
    assert label_problems(fig) == []
    assert ax.get_xlabel() == "confidence (top-class probability)"
    assert ax.get_ylabel() == "accuracy"
    assert ax.get_title() == "Reliability (validation clips)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "perfect calibration" and len(labels) == 3  # the diagonal once
    assert labels[1].startswith("before calibration (ECE ")
    assert len(ax.collections) == 2  # one set of count-sized markers per curve
    plt.close("all")


def _blobs(seed=0, n=300):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    y = np.repeat([0, 1], n)
    X = centres[y] + rng.normal(0, 1, size=(2 * n, 3)) * [1.0, 2.0, 0.5]
    return X, y


def test_mahalanobis_detector_separates_two_blobs_from_a_far_point():
    X, y = _blobs()
    detector = OODDetector.fit("mahalanobis", X, y)
    X_val, _ = _blobs(seed=1, n=200)
    detector = detector.with_threshold(detector.score(X_val), accept=0.95)
    far = np.array([[3.0, 0.0, 6.0]])  # between the blobs in x, but far along the narrow axis
    near = np.array([[0.2, -0.5, 0.1], [5.8, 1.0, 0.0]])
    assert detector.accepts(near).tolist() == [True, True]
    assert detector.accepts(far).tolist() == [False]
    assert detector.score(far)[0] > 3 * detector.threshold
    # the shared covariance follows the data: a step along the wide axis costs less
    means, precision = mahalanobis_fit(X, y)
    np.testing.assert_allclose(means, [[0, 0, 0], [6, 0, 0]], atol=0.3)
    wide, narrow = detector.score(np.array([[0, 2.0, 0], [0, 0, 2.0]]))
    assert wide < narrow


def test_mahalanobis_distances_match_the_definition_by_hand():
    # precision diag(1, 4): a step of 1 along the second axis counts as 2
    means = np.array([[0.0, 0.0], [3.0, 0.0]])
    precision = np.diag([1.0, 4.0])
    x = np.array([[0.0, 1.0], [3.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(mahalanobis_distances(x, means, precision),
                               [[2.0, np.sqrt(13.0)], [3.0, 0.0], [1.0, 2.0]], atol=1e-12)
    # and, in many dimensions, the product form agrees with (x - m)' P (x - m) per pair
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40))
    precision = a @ a.T / 40 + np.eye(40)
    means, x = rng.normal(size=(5, 40)), rng.normal(size=(7, 40))
    diff = x[:, None, :] - means[None, :, :]
    expected = np.sqrt(np.einsum("nkd,de,nke->nk", diff, precision, diff))
    np.testing.assert_allclose(mahalanobis_distances(x, means, precision), expected, rtol=1e-10)


@pytest.mark.parametrize("n, d", [(40, 120), (200, 30), (15, 15), (30, 1)])
def test_shrunk_precision_matches_scikit_learns_ledoit_wolf(n, d):
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)
    X[:, :2 if d > 2 else 0] = 0.0  # units that never fire (zero columns) keep it invertible
    expected = np.linalg.inv(LedoitWolf(assume_centered=True).fit(X).covariance_)
    np.testing.assert_allclose(shrunk_precision(X), expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("accept", [0.5, 0.9, 0.95, 1.0])
def test_threshold_accepts_the_requested_share_of_validation_clips(accept):
    scores = np.random.default_rng(3).gamma(2.0, size=400)
    detector = OODDetector("max_probability").with_threshold(scores, accept=accept)
    assert detector.accepts_scores(scores).mean() == pytest.approx(accept)
    assert detector.accept == accept
    odd = scores[:7]  # 0.95 * 7 = 6.65: at least 7 of 7 must be accepted, never fewer
    assert detector.with_threshold(odd, accept).accepts_scores(odd).mean() >= accept


def test_unheard_margin_is_scale_free_and_moves_the_threshold_to_unheard_clips():
    rng = np.random.default_rng(4)
    val = [rng.gamma(4.0, size=300), rng.gamma(4.0, size=200)]
    unheard = [1.5 * rng.gamma(4.0, size=250), 1.5 * rng.gamma(4.0, size=350)]
    margin = unheard_margin(val, unheard, accept=0.9)
    assert 1.2 < margin < 1.9  # the unheard libraries lie about 1.5 times further out
    # each fold in its own units: scaling one fold's scores (another network) changes nothing
    assert unheard_margin([val[0] * 7.0, val[1]], [unheard[0] * 7.0, unheard[1]], 0.9) == pytest.approx(margin)
    # one fold: exactly its unheard threshold over its validation threshold
    one = unheard_margin(val[:1], unheard[:1], 0.9)
    assert one == pytest.approx(acceptance_threshold(unheard[0], 0.9) / acceptance_threshold(val[0], 0.9))
    # the same clips on both sides: no margin
    assert unheard_margin(val, val, 0.9) == pytest.approx(1.0)
    # a model with no unheard library left takes the margin on its own validation clips: on new
    # clips drawn like the unheard ones it accepts about the requested share
    own_val = rng.gamma(4.0, size=2000)
    detector = OODDetector("max_probability").with_threshold(own_val, 0.9, margin=margin)
    assert detector.threshold == pytest.approx(margin * acceptance_threshold(own_val, 0.9))
    assert detector.accepts_scores(1.5 * rng.gamma(4.0, size=4000)).mean() == pytest.approx(0.9, abs=0.04)
    with pytest.raises(ValueError, match="same number"):
        unheard_margin(val, unheard[:1])
    with pytest.raises(ValueError, match="margin"):
        OODDetector("max_probability").with_threshold(own_val, 0.9, margin=0.0)


def test_max_probability_scores_and_detector_checks():
    detector = OODDetector.fit("max_probability").with_threshold([0.1, 0.2, 0.3], accept=1.0)
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]])
    np.testing.assert_allclose(detector.score(probs), [0.1, 0.6])
    assert detector.accepts(probs).tolist() == [True, False]
    assert detector.needs == "probs" and OODDetector.fit("mahalanobis", *_blobs()).needs == "features"
    with pytest.raises(ValueError, match="unknown OOD method"):
        OODDetector("energy")
    with pytest.raises(ValueError, match="no threshold"):
        OODDetector("max_probability").accepts(probs)
    with pytest.raises(ValueError, match="needs train_features"):
        OODDetector.fit("mahalanobis")
    with pytest.raises(ValueError, match="missing \\[1\\]"):
        OODDetector.fit("mahalanobis", np.zeros((4, 2)), np.array([0, 0, 2, 2]))


def test_detector_round_trips_through_meta_and_arrays():
    X, y = _blobs()
    detector = OODDetector.fit("mahalanobis", X, y, fitted_on="train blobs").with_threshold(
        OODDetector.fit("mahalanobis", X, y).score(X), accept=0.9)
    meta, arrays = detector.to_meta()
    assert meta == {"method": "mahalanobis", "threshold": detector.threshold, "accept": 0.9,
                    "fitted_on": "train blobs"}
    assert set(arrays) == {"class_means", "precision"}
    again = OODDetector.from_meta(meta, arrays)
    np.testing.assert_array_equal(again.score(X), detector.score(X))
    assert again.threshold == detector.threshold


def test_synthetic_unlike_sounds_are_loud_named_and_reproducible():
    sounds = synthetic_unlike(sample_rate=16000, seconds=0.5, seed=1)
    assert {"sine_440Hz", "white_noise", "pink_noise", "log_chirp"} <= set(sounds)
    assert "sine_5000Hz" in sounds
    for name, y in sounds.items():
        assert y.shape == (8000,) and y.dtype == np.float32, name
        assert np.max(np.abs(y)) == pytest.approx(0.5), name
    again = synthetic_unlike(sample_rate=16000, seconds=0.5, seed=1)
    np.testing.assert_array_equal(again["white_noise"], sounds["white_noise"])
    assert not np.array_equal(synthetic_unlike(16000, 0.5, seed=2)["white_noise"],
                              sounds["white_noise"])
    # a sine is one spectral line; white noise is flat
    spectrum = np.abs(np.fft.rfft(sounds["sine_440Hz"]))
    assert np.fft.rfftfreq(8000, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
