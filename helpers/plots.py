"""One plotting style for the whole series and one way to save a figure.

Every figure of the report is saved by :func:`save_fig` to ``figures/NN_topic.png``.
Plot helpers take ``ax=None`` and return the axes (or figure) so notebooks can compose them.
Used in: every notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

from helpers.files import atomic_file
from helpers.paths import figures_dir

_STYLE_SET = False


def use_style() -> None:
    """Apply the series' style (seaborn 'whitegrid', readable sizes) to figures, and show every
    table cell whole (pandas would cut a verdict or a description at 50 characters). Idempotent."""
    global _STYLE_SET
    import pandas as pd
    import seaborn as sns

    pd.set_option("display.max_colwidth", None)

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update(
        {
            "figure.figsize": (8, 4.5),
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "image.cmap": "magma",
        }
    )
    _STYLE_SET = True


def label_problems(fig) -> list[str]:
    """What a reader would miss: axes with data but no title, x label or y label; colour bars
    without a label. A figure-level suptitle/supxlabel/supylabel counts for every axes."""
    has_suptitle = bool(fig._suptitle and fig._suptitle.get_text())
    sup_x = bool(getattr(fig, "_supxlabel", None) and fig._supxlabel.get_text())
    sup_y = bool(getattr(fig, "_supylabel", None) and fig._supylabel.get_text())
    problems = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        if getattr(ax, "_colorbar", None) is not None:
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"colour bar {i} has no label")
            continue
        if not (ax.has_data() or ax.images):
            continue
        if not (ax.get_title() or has_suptitle):
            problems.append(f"axes {i} has no title")
        if not (ax.get_xlabel() or sup_x):
            problems.append(f"axes {i} ({ax.get_title()!r}) has no x label")
        if not (ax.get_ylabel() or sup_y):
            problems.append(f"axes {i} ({ax.get_title()!r}) has no y label")
    return problems


def save_fig(name: str, fig=None) -> Path:
    """Save ``fig`` (default: the current figure) as ``figures/<name>.png`` and return the path.

    ``name`` must start with the notebook number, e.g. ``"04_cutmix_examples"``. Every axes
    with data needs a title (or a suptitle) and both axis labels, and every colour bar a label:
    otherwise a ValueError lists what is missing (:func:`label_problems`).
    The write is atomic (:func:`helpers.files.atomic_file`), so an interrupted run never
    leaves a truncated figure.
    """
    import matplotlib.pyplot as plt

    if not name[:2].isdigit() or "/" in name or name.endswith(".png"):
        raise ValueError(f"figure name {name!r} must look like 'NN_topic' (no folder, no .png)")
    fig = fig if fig is not None else plt.gcf()
    problems = label_problems(fig)
    if problems:
        raise ValueError(f"figure {name!r} is not ready for the report: {'; '.join(problems)}")
    return atomic_file(figures_dir() / f"{name}.png", fig.savefig)


def new_axes(ax=None, figsize=None):
    """Return ``(fig, ax)``: the given axes and its figure, or a fresh pair."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_class_counts(counts, ax=None, title: str = "Clips per class", xlabel: str = "clips",
                      highlight=None):
    """Horizontal bars of a count table (Series, or DataFrame: stacked columns).

    ``highlight``: class names to mark in bold (e.g. the instrument classes).
    """
    import pandas as pd

    fig, ax = new_axes(ax, figsize=(8, max(3, 0.22 * len(counts))))
    frame = counts.to_frame() if isinstance(counts, pd.Series) else counts
    frame.plot.barh(stacked=True, ax=ax, width=0.8, legend=frame.shape[1] > 1)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel="class")
    if highlight is not None:
        for label in ax.get_yticklabels():
            if label.get_text() in set(highlight):
                label.set_fontweight("bold")
    return ax


def plot_waveform(y, sample_rate: int, ax=None, title: str = "Waveform"):
    """Waveform against time in seconds."""
    import numpy as np

    fig, ax = new_axes(ax)
    ax.plot(np.arange(len(y)) / sample_rate, y, linewidth=0.6)
    ax.set(title=title, xlabel="time (s)", ylabel="amplitude (full scale = 1)")
    return ax


def plot_features(S, config, ax=None, title: str = "Log-mel spectrogram", colorbar: bool = True,
                  cmap: str | None = None, colorbar_label: str | None = None):
    """A log-mel (frequency axis in Hz, mel-spaced) or MFCC matrix (coefficient index) vs time (s).

    ``S`` is (bins, frames); ``config`` a :class:`helpers.features.FeatureConfig` (sets the axes).
    Returns the axes; the colour bar is labelled with the unit (``colorbar_label`` overrides it,
    e.g. "standardised value" for model inputs).
    """
    import librosa.display

    fig, ax = new_axes(ax)
    mfcc = config.kind == "mfcc" or S.shape[0] != config.n_mels
    img = librosa.display.specshow(
        S, sr=config.sample_rate, hop_length=config.hop_length, x_axis="time",
        y_axis=None if mfcc else "mel", fmin=config.fmin, fmax=config.fmax, ax=ax, cmap=cmap)
    ax.set(title=title, xlabel="time (s)", ylabel="MFCC index" if mfcc else "frequency (Hz)")
    if colorbar:
        default = {"mfcc": "coefficient value", "pcen": "PCEN value (unitless)"}
        label = colorbar_label or default.get(config.kind, "level (dB re clip peak)")
        ax.figure.colorbar(img, ax=ax, label=label, format="%+.1f" if config.kind == "pcen" else "%+.0f")
    return ax


PROTOCOL_SPLITS = {"cross_val": ("inner validation", "C2"), "test": ("in-library test", "C0"),
                   "cross_test": ("cross-library test", "C1")}


def plot_protocol(summary, metric: str = "accuracy", ax=None, title: str | None = None,
                  splits: Sequence[str] = ("test", "cross_test")):
    """Scores per model on ``splits`` (default in-library and cross-library test; add
    ``"cross_val"`` where the chapter decides on it): grouped horizontal bars with the standard
    deviation over the (fold, seed) runs as error bars. A model run once has no spread, and no
    error bar.

    ``summary`` is :func:`helpers.protocol.summarise` output (index = model). Returns the axes.
    Used in: notebooks 03, 04, 05, 09, 10.
    """
    import numpy as np

    unknown = [s for s in splits if s not in PROTOCOL_SPLITS]
    if unknown:
        raise ValueError(f"plot_protocol: unknown split(s) {unknown}; choose among {list(PROTOCOL_SPLITS)}")
    height = 0.8 / len(splits)
    fig, ax = new_axes(ax, figsize=(9, 0.22 * len(splits) * len(summary) + 1.6))
    y = np.arange(len(summary))
    for i, split in enumerate(splits):
        label, color = PROTOCOL_SPLITS[split]
        where = y + (i - (len(splits) - 1) / 2) * height
        mean = summary[f"{split}_{metric}"].to_numpy(dtype=float)
        ax.barh(where, mean, height=height, color=color, label=label)
        std = summary.get(f"{split}_{metric}_std")
        spread = np.full(len(summary), np.nan) if std is None else std.to_numpy(dtype=float)
        has = np.isfinite(spread)
        if has.any():
            ax.errorbar(mean[has], where[has], xerr=spread[has], fmt="none", ecolor="black",
                        elinewidth=1, capsize=3)
    ax.set_yticks(y, summary.index)
    ax.invert_yaxis()
    ax.set(title=title or f"In-library vs cross-library test {metric}", xlabel=f"clip {metric}",
           ylabel="model", xlim=(0, 1))
    ax.legend(loc="lower right", fontsize=8)
    return ax
