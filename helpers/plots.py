"""One plotting style for the whole series and one way to save a figure.

Every figure of the report is saved by :func:`save_fig` to ``figures/NN_topic.png``.
Plot helpers take ``ax=None`` and return the axes (or figure) so notebooks can compose them.
Used in: every notebook.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from helpers.paths import figures_dir

_STYLE_SET = False


def use_style() -> None:
    """Apply the series' style (seaborn 'whitegrid', readable sizes). Idempotent."""
    global _STYLE_SET
    import seaborn as sns

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


def save_fig(name: str, fig=None) -> Path:
    """Save ``fig`` (default: the current figure) as ``figures/<name>.png`` and return the path.

    ``name`` must start with the notebook number, e.g. ``"04_cutmix_examples"``.
    The write is atomic (temporary file, then rename), so an interrupted run never leaves
    a truncated figure.
    """
    import matplotlib.pyplot as plt

    if not name[:2].isdigit() or "/" in name or name.endswith(".png"):
        raise ValueError(f"figure name {name!r} must look like 'NN_topic' (no folder, no .png)")
    fig = fig if fig is not None else plt.gcf()
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def new_axes(ax=None, figsize=None):
    """Return ``(fig, ax)``: the given axes and its figure, or a fresh pair."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax
