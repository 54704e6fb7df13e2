"""save_fig: one place, stable names, and no unlabelled figure reaches the report."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers.features import FeatureConfig, log_mel  # noqa: E402
from helpers.plots import label_problems, plot_features, save_fig, use_style  # noqa: E402
from tests.conftest import tone  # noqa: E402


def test_labelled_figure_is_saved_under_figures(tmp_path):
    use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 2])
    ax.set(title="t", xlabel="time (s)", ylabel="level (dB)")
    path = save_fig("99_test", fig)
    assert path == tmp_path / "out" / "figures" / "99_test.png" and path.stat().st_size > 0
    assert not list(path.parent.glob("*.tmp*"))


def test_unlabelled_figures_are_refused_with_the_reason():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 2])
    with pytest.raises(ValueError, match="no title.*no x label.*no y label"):
        save_fig("99_bad", fig)
    img = ax.imshow(np.zeros((2, 2)))
    ax.set(title="t", xlabel="x", ylabel="y")
    fig.colorbar(img, ax=ax)
    assert label_problems(fig) == ["colour bar 1 has no label"]


@pytest.mark.parametrize("name", ["cutmix", "04_x.png", "figs/04_x"])
def test_names_must_be_numbered_topics(name):
    with pytest.raises(ValueError, match="NN_topic"):
        save_fig(name, plt.figure())


def test_feature_plot_has_real_axes_and_a_labelled_colour_bar():
    cfg = FeatureConfig()
    ax = plot_features(log_mel(tone(1.0), cfg), cfg)
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
    assert label_problems(ax.figure) == []
    assert ax.figure.axes[1].get_ylabel() == "level (dB re clip peak)"


def test_protocol_bars_per_split_and_no_error_bar_for_a_single_run():
    import pandas as pd

    from helpers.plots import plot_protocol

    summary = pd.DataFrame({"cross_val_accuracy": [0.6, 0.5], "cross_val_accuracy_std": [0.02, np.nan],
                            "test_accuracy": [0.8, 0.7], "test_accuracy_std": [0.01, np.nan],
                            "cross_test_accuracy": [0.65, 0.55], "cross_test_accuracy_std": [0.03, np.nan]},
                           index=["cnn", "classical (one run)"])
    ax = plot_protocol(summary, splits=("cross_val", "test", "cross_test"))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "inner validation", "in-library test", "cross-library test"]
    assert len(ax.patches) == 6
    # one error bar per split, drawn for the CNN only (the classical model has no spread)
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert [len(c.lines[2][0].get_segments()) for c in bars] == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown split"):
        plot_protocol(summary, splits=("val",))
    plt.close("all")
