"""Grad-CAM on spectrogram CNNs, and sanity checks that the maps mean something.

Grad-CAM (Selvaraju et al., 2017) asks: which time-frequency regions raised the score of a
class? It weights the feature maps of the last conv layer by the mean gradient of the class
score (the *pre-softmax* logit) with respect to each map, keeps the positive part and
upsamples the result to the input's (bins, frames) grid.

Two checks keep us honest (Adebayo et al., 2018; Samek et al., 2017):

* model randomisation: a network with re-initialised weights should give *different* maps
  (low rank correlation with the trained model's maps); if not, the map shows the input, not
  what the model learnt;
* deletion: replacing the cells Grad-CAM ranks highest by the mean should lower the class
  probability faster than deleting as many random cells.

Relies on the layer-name contract of :func:`helpers.models.build_cnn` (``conv1..N``,
``logits``). Used in: notebooks/07_cam.ipynb.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from helpers.plots import new_axes

RELEVANCE_LABEL = "Grad-CAM relevance (0-1)"


def last_conv_layer(model) -> str:
    """Name of the highest-numbered ``convN`` layer; ``ValueError`` if the model has none."""
    numbers = [int(m.group(1)) for layer in model.layers
               if (m := re.fullmatch(r"conv(\d+)", layer.name))]
    if not numbers:
        raise ValueError(f"model {model.name!r} has no conv layer (conv1..N): Grad-CAM needs one")
    return f"conv{max(numbers)}"


def _class_indices(class_index, logits: np.ndarray) -> np.ndarray:
    """Per-example class: the predicted one (None), one int for all, or an array ``(n,)``."""
    if class_index is None:
        return np.argmax(logits, axis=1)
    index = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(logits),))
    if index.min() < 0 or index.max() >= logits.shape[1]:
        raise ValueError(f"class_index must lie in [0, {logits.shape[1]}), got {class_index}")
    return index


def _features_and_logits(model, x, conv_name: str):
    """Run the layer chain of a :func:`helpers.models.build_cnn` model on ``x`` (inference).

    Returns the output of layer ``conv_name`` ``(b, h, w, k)`` and of ``logits``
    ``(b, classes)``. Calling the layers one by one (rather than building a sub-model from
    ``layer.output``) also works for models whose layers are shared by several graphs, such
    as TF-MOT's ``strip_pruning`` output.
    """
    features = None
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        x = layer(x, training=False)
        if layer.name == conv_name:
            features = x
        if layer.name == "logits":
            return features, x
    raise ValueError(f"model {model.name!r} has no 'logits' layer (see helpers.models)")


def grad_cam(model, X: np.ndarray, class_index=None, layer: str | None = None,
             batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps ``(n, bins, frames)`` in [0, 1] for windows ``X`` ``(n, bins, frames, 1)``.

    ``class_index``: None (each window's predicted class), an int, or ``(n,)`` ints.
    ``layer``: a conv layer name (default: the last ``convN``). Each map is divided by its
    maximum (an all-zero map stays zero: no positive evidence for the class).
    """
    import tensorflow as tf

    X = np.asarray(X, dtype=np.float32)
    conv_name = layer or last_conv_layer(model)
    model.get_layer(conv_name)  # a clear error for a wrong name
    if class_index is not None:
        class_index = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (len(X),))
    maps = []
    for start in range(0, len(X), batch_size):
        x = tf.constant(X[start:start + batch_size])
        wanted = None if class_index is None else class_index[start:start + batch_size]
        with tf.GradientTape() as tape:
            features, logits = _features_and_logits(model, x, conv_name)  # (b,h,w,k), (b,c)
            target = _class_indices(wanted, logits.numpy())
            score = tf.gather(logits, target, axis=1, batch_dims=1)  # (b,): pre-softmax
        grads = tape.gradient(score, features)  # (b, h, w, k)
        weights = tf.reduce_mean(grads, axis=(1, 2))  # (b, k): one weight per feature map
        cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", features, weights))  # (b, h, w)
        cam = tf.image.resize(cam[..., None], X.shape[1:3], method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        maps.append((cam / tf.where(peak > 0, peak, 1.0)).numpy())
    return np.concatenate(maps) if maps else np.zeros(X.shape[:3], np.float32)


def mean_cam_per_class(model, X: np.ndarray, y: np.ndarray, classes: Sequence[str],
                       layer: str | None = None) -> dict[str, np.ndarray]:
    """Mean Grad-CAM ``(bins, frames)`` per class over the windows of that class.

    Each window's map is computed for its *true* class ``y`` ``(n,)``; classes without
    windows are left out.
    """
    y = np.asarray(y, dtype=np.int64)
    cams = grad_cam(model, X, class_index=y, layer=layer)
    return {name: cams[y == c].mean(axis=0) for c, name in enumerate(classes) if np.any(y == c)}


def plot_cam(x: np.ndarray | None, cam: np.ndarray, config, ax=None, title: str = "Grad-CAM",
             alpha: float = 0.45, cmap: str = "jet", colorbar: bool = True):
    """The input window (grey) with the Grad-CAM map overlaid, both on real axes.

    ``x`` ``(bins, frames)`` or ``(bins, frames, 1)`` standardised features (None: the map
    alone), ``cam`` ``(bins, frames)`` in [0, 1]; ``config`` the
    :class:`helpers.features.FeatureConfig` (time in s; Hz on a mel axis for log-mel, MFCC
    index for MFCC). One colour bar, labelled :data:`RELEVANCE_LABEL` (``colorbar=False``
    leaves it out, for a grid of maps sharing one bar: see :func:`add_relevance_colorbar`).
    Returns the axes.
    """
    import librosa.display
    from matplotlib.ticker import MaxNLocator

    from helpers.plots import plot_features

    cam = np.asarray(cam)
    _, ax = new_axes(ax)
    if x is not None:
        x = np.asarray(x).reshape(cam.shape)
        plot_features(x, config, ax=ax, title=title, colorbar=False, cmap="gray")
        alpha_overlay = alpha
    else:
        alpha_overlay = 1.0
    mfcc = config.kind == "mfcc" or cam.shape[0] != config.n_mels
    img = librosa.display.specshow(
        cam, sr=config.sample_rate, hop_length=config.hop_length, x_axis="time",
        y_axis=None if mfcc else "mel", fmin=config.fmin, fmax=config.fmax, ax=ax, cmap=cmap,
        vmin=0.0, vmax=1.0, alpha=alpha_overlay)
    ax.set(title=title, xlabel="time (s)", ylabel="MFCC index" if mfcc else "frequency (Hz)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))  # 0, 0.25, ... s
    if mfcc:  # specshow hides the ticks of an index axis; cell i spans [i, i + 1)
        ticks = np.arange(0, cam.shape[0], max(1, cam.shape[0] // 5))
        ax.set_yticks(ticks + 0.5, [str(t) for t in ticks])
    if colorbar:
        ax.figure.colorbar(img, ax=ax, label=RELEVANCE_LABEL)
    return ax


def add_relevance_colorbar(fig, axes, cmap: str = "jet", label: str = RELEVANCE_LABEL):
    """One colour bar (0-1, labelled ``label``) shared by ``axes`` of ``fig``; returns it."""
    from matplotlib import cm, colors

    mappable = cm.ScalarMappable(norm=colors.Normalize(0.0, 1.0), cmap=cmap)
    return fig.colorbar(mappable, ax=np.ravel(axes).tolist(), label=label, fraction=0.025,
                        pad=0.02)


def plot_cam_grid(X: np.ndarray | None, cams: np.ndarray, config, titles: Sequence[str],
                  ncols: int = 4, title: str = "Grad-CAM", label: str = RELEVANCE_LABEL,
                  panel_size: tuple[float, float] = (3.4, 2.6)):
    """Several maps (over their windows, or alone when ``X`` is None) with one colour bar.

    ``X`` ``(n, bins, frames[, 1])`` or None, ``cams`` ``(n, bins, frames)`` in [0, 1],
    ``titles`` one per map; axes as in :func:`plot_cam`, one shared x and y label.
    Returns the figure. Used in: notebooks/07_cam.ipynb.
    """
    import matplotlib.pyplot as plt

    cams = np.asarray(cams)
    if len(titles) != len(cams):
        raise ValueError(f"need one title per map: {len(titles)} titles, {len(cams)} maps")
    n = len(cams)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, constrained_layout=True,
                             figsize=(panel_size[0] * ncols + 1.0, panel_size[1] * nrows + 0.6))
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        plot_cam(None if X is None else X[i], cams[i], config, ax=ax, title=titles[i],
                 colorbar=False)
        ax.title.set_fontsize(9)
        xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
        ax.set(xlabel="", ylabel="")  # one shared label per axis, below and left of the grid
    add_relevance_colorbar(fig, axes, label=label)
    fig.suptitle(title, fontweight="bold")
    fig.supxlabel(xlabel)
    fig.supylabel(ylabel)
    return fig


def example_windows(y_true: np.ndarray, y_pred: np.ndarray, n: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of up to ``n`` correctly and ``n`` wrongly classified windows, for display.

    Drawn at random (``seed``), preferring windows of different true classes, so a few examples
    cover several classes. Returns ``(correct, wrong)``, each sorted by true class.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    rng = np.random.default_rng(seed)
    out = []
    for mask in (y_true == y_pred, y_true != y_pred):
        candidates = rng.permutation(np.flatnonzero(mask))
        # first window of each class (in random order), then the rest
        _, first = np.unique(y_true[candidates], return_index=True)
        first = rng.permutation(candidates[first])
        rest = np.setdiff1d(candidates, first, assume_unique=True)
        chosen = np.concatenate([first, rng.permutation(rest)])[:n].astype(np.int64)
        out.append(chosen[np.argsort(y_true[chosen], kind="stable")])
    return out[0], out[1]


def plot_rank_correlations(rhos: Mapping[str, np.ndarray], ax=None, bins: int = 20,
                           title: str = "Model randomisation: trained vs random-weight maps"):
    """Histograms of Spearman correlations per model, each mean marked; NaNs are left out.

    Returns the axes. Used in: notebooks/07_cam.ipynb.
    """
    _, ax = new_axes(ax)
    edges = np.linspace(-1, 1, bins + 1)
    for i, (label, rho) in enumerate(rhos.items()):
        rho = np.asarray(rho, float)
        rho = rho[np.isfinite(rho)]
        mean = float(rho.mean()) if len(rho) else float("nan")
        ax.hist(rho, bins=edges, alpha=0.5, color=f"C{i}", label=f"{label} (mean {mean:.2f})")
        ax.axvline(mean, color=f"C{i}", linestyle="--")
    ax.set(title=title, xlabel="Spearman rank correlation of the two maps",
           ylabel="windows (count)", xlim=(-1, 1))
    ax.legend(loc="best", fontsize=8)
    return ax


# ----------------------------------------------------------------------------- sanity checks


def randomized_copy(model, seed: int = 0):
    """Same architecture as ``model`` with freshly initialised weights (model randomisation test)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def rank_correlation(cams_a: np.ndarray, cams_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation ``(n,)`` between paired maps ``(n, bins, frames)``.

    NaN where a map is constant (e.g. all zero: no ranking to compare).
    """
    from scipy.stats import spearmanr

    a = np.asarray(cams_a).reshape(len(cams_a), -1)
    b = np.asarray(cams_b).reshape(len(cams_b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {np.shape(cams_a)} vs {np.shape(cams_b)}")
    out = np.full(len(a), np.nan)
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if np.ptp(u) > 0 and np.ptp(v) > 0:
            out[i] = spearmanr(u, v).statistic
    return out


def deletion_order(cams: np.ndarray, mode: str = "cam", seed: int = 0) -> np.ndarray:
    """Per map, the flat cell indices in deletion order ``(n, bins * frames)``.

    ``"cam"``: highest relevance first (ties in random order); ``"random"``: a random order.
    """
    rng = np.random.default_rng(seed)
    flat = np.asarray(cams).reshape(len(cams), -1)
    noise = rng.random(flat.shape)
    if mode == "random":
        return np.argsort(noise, axis=1)
    if mode == "cam":
        return np.lexsort((noise, -flat), axis=1)  # sort by -relevance, then by noise
    raise ValueError(f"mode must be 'cam' or 'random', got {mode!r}")


def deletion_scores(model, X: np.ndarray, cams: np.ndarray, class_index=None, steps: int = 10,
                    mode: str = "cam", seed: int = 0, baseline: float = 0.0,
                    max_fraction: float = 1.0,
                    max_windows_per_call: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-window class probability as a growing share of cells is replaced by ``baseline``.

    ``X`` ``(n, bins, frames, 1)`` standardised windows (0 is the training mean), ``cams``
    ``(n, bins, frames)``. Cells are deleted in :func:`deletion_order` (``mode`` "cam" or
    "random"). ``class_index``: None (the class predicted on the intact window), an int or
    ``(n,)`` ints. Returns ``fractions`` ``(steps + 1,)`` from 0 to ``max_fraction`` and the
    probabilities ``(n, steps + 1)``, one curve per window (paired comparisons of two orders).
    Several steps go to the model in one call of at most ``max_windows_per_call`` windows.
    """
    from helpers.training import predict_windows

    X = np.asarray(X, dtype=np.float32)
    n, bins, frames = X.shape[:3]
    if np.shape(cams) != (n, bins, frames):
        raise ValueError(f"cams must be (n, bins, frames) = {(n, bins, frames)}, "
                         f"got {np.shape(cams)}")
    order = deletion_order(cams, mode, seed)
    probs = predict_windows(model, X)
    target = _class_indices(class_index, probs)
    fractions = np.linspace(0.0, max_fraction, steps + 1)
    scores = np.empty((n, steps + 1))
    per_call = max(1, max_windows_per_call // max(n, 1))  # steps predicted in one call
    for first in range(0, steps + 1, per_call):
        chunk = fractions[first:first + per_call]
        batch = np.repeat(X.reshape(1, n, bins * frames, -1), len(chunk), axis=0)
        for j, fraction in enumerate(chunk):
            k = int(round(fraction * bins * frames))
            np.put_along_axis(batch[j], order[:, :k, None], baseline, axis=1)
        p = predict_windows(model, batch.reshape(len(chunk) * n, *X.shape[1:]))
        scores[:, first:first + len(chunk)] = p.reshape(len(chunk), n, -1)[:, np.arange(n), target].T
    return fractions, scores


def deletion_curve(model, X: np.ndarray, cams: np.ndarray, class_index=None, steps: int = 10,
                   mode: str = "cam", seed: int = 0, baseline: float = 0.0,
                   max_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean class probability as a growing share of cells is replaced by ``baseline``.

    The mean over windows of :func:`deletion_scores` (same arguments). Returns ``fractions``
    ``(steps + 1,)`` from 0 to ``max_fraction`` and the mean probability ``(steps + 1,)``:
    a faithful map makes it fall fast.
    """
    fractions, scores = deletion_scores(model, X, cams, class_index, steps, mode, seed,
                                        baseline, max_fraction)
    return fractions, scores.mean(axis=0)


def area_under_curve(fractions: np.ndarray, scores: np.ndarray):
    """Trapezoid area under a deletion curve, divided by its x range (a mean probability).

    ``scores`` ``(steps + 1,)`` gives a float; ``(n, steps + 1)`` (from
    :func:`deletion_scores`) gives one area per window ``(n,)``.
    """
    fractions, scores = np.asarray(fractions, float), np.asarray(scores, float)
    span = fractions[-1] - fractions[0] if len(fractions) else 0.0
    if len(fractions) < 2 or span <= 0:
        raise ValueError("need at least two increasing fractions")
    if scores.shape[-1] != len(fractions):
        raise ValueError(f"scores' last axis ({scores.shape[-1]}) must match the "
                         f"{len(fractions)} fractions")
    area = np.sum(np.diff(fractions) * (scores[..., 1:] + scores[..., :-1]) / 2, axis=-1) / span
    return float(area) if area.ndim == 0 else area


def plot_deletion_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], ax=None,
                         title: str = "Deletion test: class probability as cells are removed"):
    """Deletion curves by label (e.g. ``{"Grad-CAM order": ..., "random order": ...}``).

    Each value is ``(fractions, scores)`` with mean scores ``(steps + 1,)`` or per-window
    scores ``(n, steps + 1)`` from :func:`deletion_scores` (then the mean is drawn with a band
    of ± 1 standard error over windows). The legend shows each curve's area (lower = the map
    found the evidence). Returns the axes.
    """
    _, ax = new_axes(ax)
    for i, (label, (fractions, scores)) in enumerate(curves.items()):
        x, scores = np.asarray(fractions) * 100, np.asarray(scores, float)
        mean = scores.mean(axis=0) if scores.ndim == 2 else scores
        ax.plot(x, mean, marker="o", markersize=3, color=f"C{i}",
                label=f"{label} (area {area_under_curve(fractions, mean):.2f})")
        if scores.ndim == 2 and len(scores) > 1:
            sem = scores.std(axis=0, ddof=1) / np.sqrt(len(scores))
            ax.fill_between(x, mean - sem, mean + sem, color=f"C{i}", alpha=0.2, linewidth=0)
    ax.set(title=title, xlabel="time-frequency cells replaced by the mean (%)",
           ylabel="probability of the class (mean over windows)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="best", fontsize=8)
    return ax
