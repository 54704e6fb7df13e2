"""helpers.cam: Grad-CAM finds planted class evidence; randomisation and deletion checks; plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.cam import (  # noqa: E402
    RELEVANCE_LABEL,
    add_relevance_colorbar,
    area_under_curve,
    deletion_curve,
    deletion_order,
    deletion_scores,
    example_windows,
    grad_cam,
    last_conv_layer,
    mean_cam_per_class,
    plot_cam,
    plot_cam_grid,
    plot_deletion_curves,
    plot_rank_correlations,
    randomized_copy,
    rank_correlation,
)
from helpers.features import FeatureConfig  # noqa: E402
from helpers.models import CNNConfig, build_cnn  # noqa: E402
from helpers.plots import label_problems  # noqa: E402
from helpers.training import set_seed  # noqa: E402

SHAPE = (16, 16, 1)
REGION = (slice(4, 8), slice(10, 14))  # mel bins 4-7, frames 10-13: class 1's evidence
INSIDE = np.zeros(SHAPE[:2], bool)
INSIDE[REGION] = True


def _planted(n: int, seed: int):
    """Noise windows (n, 16, 16, 1); class 1 (odd rows) has a bright patch in ``REGION``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, *SHAPE)).astype(np.float32)
    X[y == 1, REGION[0], REGION[1]] += 3.0
    return X, y


@pytest.fixture(scope="module")
def toy():
    """A tiny global-pooling CNN trained to detect the patch; test windows of class 1; maps."""
    X, y = _planted(400, 0)
    set_seed(0)
    model = build_cnn(SHAPE, 2, CNNConfig((8, 8), (3, 3), (), dropout=0.0, global_pool=True,
                                          learning_rate=3e-3))
    model.fit(X, np.eye(2)[y], batch_size=32, epochs=6, verbose=0)
    Xt, yt = _planted(40, 1)
    accuracy = model.evaluate(Xt, np.eye(2)[yt], verbose=0)[1]
    X1 = Xt[yt == 1]
    return model, accuracy, Xt, yt, X1, grad_cam(model, X1, class_index=1)


def test_grad_cam_peaks_inside_the_planted_region(toy):
    model, accuracy, _, _, X1, cams = toy
    assert accuracy > 0.95
    assert cams.shape == (len(X1), 16, 16) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and np.allclose(cams.max(axis=(1, 2)), 1.0)
    peaks = [np.unravel_index(c.argmax(), c.shape) for c in cams]
    assert np.mean([INSIDE[p] for p in peaks]) >= 0.9
    assert cams[:, INSIDE].mean() > 3 * cams[:, ~INSIDE].mean()


def test_grad_cam_class_and_layer_arguments(toy):
    model, _, Xt, _, X1, cams = toy
    assert last_conv_layer(model) == "conv2"
    predicted = grad_cam(model, X1)  # the predicted class is 1 for these windows
    np.testing.assert_allclose(predicted, cams, atol=1e-6)
    per_example = grad_cam(model, X1, class_index=np.ones(len(X1), int), batch_size=7)
    np.testing.assert_allclose(per_example, cams, atol=1e-6)  # batching does not matter
    first = grad_cam(model, X1[:3], layer="conv1")
    assert first.shape == (3, 16, 16) and 0 <= first.min() and first.max() <= 1
    with pytest.raises(ValueError, match="class_index"):
        grad_cam(model, X1[:2], class_index=2)
    with pytest.raises(ValueError, match="conv9"):
        grad_cam(model, X1[:2], layer="conv9")
    no_conv = build_cnn(SHAPE, 2, CNNConfig((), (), (4,)))
    with pytest.raises(ValueError, match="no conv layer"):
        grad_cam(no_conv, X1[:2])


def test_grad_cam_on_layers_shared_by_two_graphs(toy):
    # TF-MOT's strip_pruning returns such a model: each layer has two inbound nodes
    import tf_keras as keras

    model, _, _, _, X1, cams = toy
    inputs = keras.Input(SHAPE)
    x = inputs
    for layer in model.layers[1:]:
        x = layer(x)
    shared = keras.Model(inputs, x)
    np.testing.assert_allclose(grad_cam(shared, X1), cams, atol=1e-6)


def test_mean_cam_per_class(toy):
    model, _, Xt, yt, _, _ = toy
    means = mean_cam_per_class(model, Xt, yt, ["noise", "patch", "absent"])
    assert set(means) == {"noise", "patch"}  # no window of "absent"
    assert means["patch"].shape == (16, 16)
    assert means["patch"][INSIDE].mean() > means["patch"][~INSIDE].mean()


def test_randomized_model_gives_different_maps(toy):
    model, _, _, _, X1, cams = toy
    random = randomized_copy(model, seed=1)
    assert [layer.name for layer in random.layers] == [layer.name for layer in model.layers]
    assert not np.allclose(random.get_weights()[0], model.get_weights()[0])
    np.testing.assert_array_equal(random.get_weights()[0],
                                  randomized_copy(model, seed=1).get_weights()[0])
    rho = rank_correlation(cams, grad_cam(random, X1, class_index=1))
    assert rho.shape == (len(X1),)
    assert np.nanmean(rho) < 0.6
    np.testing.assert_allclose(rank_correlation(cams, cams), 1.0)


def test_rank_correlation_by_hand():
    a = np.arange(12, dtype=float).reshape(1, 3, 4)
    maps = np.concatenate([a, a])
    other = np.concatenate([a ** 2, -a])  # same order, reversed order
    np.testing.assert_allclose(rank_correlation(maps, other), [1.0, -1.0])
    assert np.isnan(rank_correlation(a, np.zeros_like(a))[0])  # a constant map has no ranks
    with pytest.raises(ValueError, match="differ in shape"):
        rank_correlation(a, a[:, :2])


def test_deletion_by_cam_drops_the_score_faster_than_random(toy):
    model, _, _, _, X1, cams = toy
    curves = {mode: deletion_curve(model, X1, cams, class_index=1, steps=10, mode=mode,
                                   max_fraction=0.5) for mode in ("cam", "random")}
    fractions, by_cam = curves["cam"]
    assert fractions.shape == by_cam.shape == (11,) and fractions[-1] == 0.5
    assert by_cam[0] == pytest.approx(curves["random"][1][0])  # same intact start
    assert by_cam[0] > 0.9 and by_cam[2] < 0.3  # 10 % of the cells hold the evidence
    assert area_under_curve(*curves["cam"]) < area_under_curve(*curves["random"]) - 0.3
    ax = plot_deletion_curves({"Grad-CAM order": curves["cam"], "random order": curves["random"]})
    assert ax.get_title() and "%" in ax.get_xlabel() and "probability" in ax.get_ylabel()
    assert "area" in ax.get_legend().get_texts()[0].get_text()
    plt.close("all")


def test_deletion_scores_are_per_window_and_average_to_the_curve(toy):
    model, _, _, _, X1, cams = toy
    fractions, per_window = deletion_scores(model, X1, cams, class_index=1, steps=4,
                                            max_fraction=0.5)
    assert per_window.shape == (len(X1), 5)
    _, mean = deletion_curve(model, X1, cams, class_index=1, steps=4, max_fraction=0.5)
    np.testing.assert_allclose(per_window.mean(axis=0), mean, rtol=1e-6)
    _, one_step_per_call = deletion_scores(model, X1, cams, class_index=1, steps=4,
                                           max_fraction=0.5, max_windows_per_call=1)
    np.testing.assert_allclose(one_step_per_call, per_window, rtol=1e-5, atol=1e-6)
    areas = area_under_curve(fractions, per_window)  # one area per window
    assert areas.shape == (len(X1),)
    assert np.mean(areas) == pytest.approx(area_under_curve(fractions, mean))
    _, random = deletion_scores(model, X1, cams, class_index=1, steps=4, mode="random",
                                max_fraction=0.5)
    assert np.mean(areas < area_under_curve(fractions, random)) > 0.8  # paired, per window
    ax = plot_deletion_curves({"Grad-CAM order": (fractions, per_window),
                               "random order": (fractions, random)})
    assert len(ax.collections) == 2  # a standard-error band per curve
    with pytest.raises(ValueError, match="cams must be"):
        deletion_scores(model, X1, cams[:, :8])
    plt.close("all")


def test_deletion_order_and_area_by_hand():
    cams = np.array([[[0.1, 0.9], [0.5, 0.0]]])
    np.testing.assert_array_equal(deletion_order(cams, "cam"), [[1, 2, 0, 3]])
    random = deletion_order(np.zeros((3, 2, 2)), "random", seed=0)
    assert sorted(random[0]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="mode"):
        deletion_order(cams, "smallest")
    assert area_under_curve([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(0.5)
    assert area_under_curve([0, 0.5], [1, 1]) == pytest.approx(1.0)  # divided by the x range
    np.testing.assert_allclose(area_under_curve([0, 0.5, 1], [[1, 0.5, 0], [1, 1, 1]]), [0.5, 1])
    with pytest.raises(ValueError, match="match"):
        area_under_curve([0, 1], [1, 0.5, 0])


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_plot_cam_has_real_axes_and_a_labelled_colour_bar(toy, kind):
    _, _, _, _, X1, cams = toy
    # 16 bins x 16 frames: 1 + round(0.35 s * 22050 Hz / 512) = 16
    config = FeatureConfig(kind=kind, n_mels=16, n_mfcc=16, window_seconds=0.35)
    assert config.input_shape == SHAPE
    ax = plot_cam(X1[0], cams[0], config, title="Grad-CAM of a patch window")
    assert ax.get_title() == "Grad-CAM of a patch window"
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == ("frequency (Hz)" if kind == "logmel" else "MFCC index")
    assert ax.figure.axes[-1].get_ylabel() == RELEVANCE_LABEL
    alone = plot_cam(None, cams.mean(axis=0), config, title="mean map")
    assert alone.get_title() == "mean map"
    fig, axes = plt.subplots(1, 2)
    for ax, cam in zip(axes, cams[:2], strict=True):
        plot_cam(None, cam, config, ax=ax, colorbar=False)
    assert len(fig.axes) == 2  # no colour bar per panel
    bar = add_relevance_colorbar(fig, axes)
    assert bar.ax.get_ylabel() == RELEVANCE_LABEL and len(fig.axes) == 3
    plt.close("all")


def test_example_windows_pick_correct_and_wrong_of_several_classes():
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 1])
    y_pred = np.array([0, 0, 1, 1, 0, 2, 2, 0, 0, 1])
    correct, wrong = example_windows(y_true, y_pred, n=3, seed=0)
    assert len(correct) == 3 and (y_true[correct] == y_pred[correct]).all()
    assert sorted(y_true[correct]) == [0, 1, 2]  # one per class before any repeat
    assert sorted(wrong.tolist()) == [2, 4, 7] and (y_true[wrong] != y_pred[wrong]).all()
    again = example_windows(y_true, y_pred, n=3, seed=0)
    np.testing.assert_array_equal(again[0], correct)
    few_c, few_w = example_windows(y_true, y_true, n=2)
    assert len(few_c) == 2 and len(few_w) == 0  # no wrong windows: none shown
    with pytest.raises(ValueError, match="shape"):
        example_windows(y_true, y_pred[:3], n=1)


@pytest.mark.parametrize("with_input", [True, False])
def test_plot_cam_grid_shares_one_colour_bar(toy, with_input):
    _, _, _, _, X1, cams = toy
    config = FeatureConfig(kind="logmel", n_mels=16, window_seconds=0.35)
    fig = plot_cam_grid(X1[:5] if with_input else None, cams[:5], config,
                        [f"window {i}" for i in range(5)], ncols=3, title="five maps",
                        label="mean relevance")
    maps = [ax for ax in fig.axes if ax.get_title().startswith("window")]
    assert len(maps) == 5 and fig.axes[-1].get_ylabel() == "mean relevance"
    assert fig._suptitle.get_text() == "five maps"
    assert fig._supylabel.get_text() == "frequency (Hz)" and fig._supxlabel.get_text() == "time (s)"
    assert label_problems(fig) == []  # save_fig would accept it
    with pytest.raises(ValueError, match="one title per map"):
        plot_cam_grid(None, cams[:2], config, ["only one"])
    plt.close("all")


def test_plot_rank_correlations():
    ax = plot_rank_correlations({"a": np.array([0.1, 0.3, np.nan]), "b": np.array([0.9])})
    assert "randomisation" in ax.get_title().lower()
    assert "Spearman" in ax.get_xlabel() and "count" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a (mean 0.20)", "b (mean 0.90)"]
    plt.close("all")
