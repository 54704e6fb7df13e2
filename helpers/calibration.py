"""Trustworthy outputs: calibrated probabilities and a way to say "none of these classes".

Everything here works on **clip-level** values, whatever the model: the probabilities
``(n_clips, n_classes)`` that ``python -m helpers predict`` prints (for the CNN, the mean of a
clip's window probabilities) and, for the distance score, one feature vector per clip
``(n_clips, n_features)`` (for the CNN, the mean of its windows' penultimate-layer activations,
:func:`helpers.predict.cnn_clip_outputs`; for a scikit-learn head on embeddings, its input
vectors).

**Calibration.** A classifier is calibrated when, among the clips it labels with confidence
``p``, a share ``p`` is right. :func:`expected_calibration_error` measures the gap (definition
in its docstring), :func:`reliability_table` and :func:`plot_reliability` show it per
confidence bin. :func:`fit_temperature` fits one temperature ``T`` on *validation* clips
(Guo et al. 2017, "On calibration of modern neural networks"): the calibrated probabilities are
``softmax(log(p) / T)``, i.e. ``p ** (1 / T)`` renormalised, which keeps every clip's ranking of
the classes (accuracy and MAP@3 do not change) and only makes the model more (``T < 1``) or
less (``T > 1``) sure of itself. Clip probabilities are means of window softmaxes, not the
softmax of one logit vector, so ``log(p)`` stands in for the logits: the same one-parameter
family, fitted the same way. Whether it helps is judged out of fold on validation
(:func:`cross_validated_temperature`): a model that is calibrated already gains nothing, and a
temperature fitted for NLL can even raise the ECE.

**Out-of-distribution (OOD) scores.** A softmax always spreads 100 % over the known classes, so
a sound that is no instrument at all, such as a pure sine tone, is still given one of the
classes, possibly with high confidence. :class:`OODDetector` scores how unlike the training data
a clip is (higher = more unusual) with one of two methods:

* ``"max_probability"``: ``1 - max p`` of the (calibrated) clip probabilities (Hendrycks &
  Gimpel 2017, the baseline every OOD paper compares with);
* ``"mahalanobis"``: the Mahalanobis distance of the clip's feature vector to the nearest class
  mean under one covariance shared by all classes (Lee et al. 2018, "A simple unified framework
  for detecting out-of-distribution samples"), fitted on *training* clips; the covariance is
  estimated with Ledoit-Wolf shrinkage, so it stays invertible when the features outnumber the
  clips or some ReLU units never fire.

Its ``threshold`` is chosen on *validation* clips so that a stated share of them (say 95 %) is
accepted (:meth:`OODDetector.with_threshold`); a clip scoring above it is reported as
"unlike any class". That share is the price: about 5 % of ordinary clips are flagged too.
Clips of a library the model never heard lie further out than its own validation clips, so a
threshold set on those flags more of them. :func:`unheard_margin` measures by how much, fold by
fold of a nested leave-one-library-out protocol, on each fold's *inner validation* library
(never its test library), as a factor on the threshold: scale-free, so a model trained on every
library, which has no unheard library left, can take it over.
:func:`synthetic_unlike` makes sounds no instrument class describes (pure tones, noise,
chirps) to check the detector on; they are easy cases and **not** a substitute for real unknown
sounds (speech, other instruments, environmental noise), on which a detector can fail silently.

Bundles store the temperature and the detector (``meta.json`` plus ``ood.npz`` beside it,
:func:`helpers.models.save_bundle`); ``python -m helpers predict`` applies both.
Used in: notebooks/10_shipping.ipynb (:class:`OODDetector`, :func:`apply_temperature`,
:func:`confidence_gap`, :func:`cross_validated_temperature`, :func:`expected_calibration_error`,
:func:`plot_reliability`, :func:`synthetic_unlike`, :func:`unheard_margin`); helpers/predict.py (applies the temperature
and the detector), helpers/models.py (stores and reads them in bundles), and, through
helpers/models.py's bundle format, helpers/pruning.py and helpers/transfer.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.plots import new_axes

OOD_METHODS: tuple[str, ...] = ("max_probability", "mahalanobis")
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)  # search range of fit_temperature
_EPS = 1e-12  # probabilities are clipped to this before taking logs (a softmax can round to 0)


# ----------------------------------------------------------------------------- checks


def _check_probs(probs, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"probs must be (n_clips, n_classes >= 2), got shape {probs.shape}")
    if len(probs) == 0:
        raise ValueError("need at least one clip")
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        raise ValueError("probs must be finite and non-negative")
    if y is None:
        return probs, None
    y = np.asarray(y)
    if y.shape != (len(probs),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer class indices ({len(probs)},), got {y.dtype} "
                         f"{y.shape}")
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1]}), got {y.min()}..{y.max()}")
    return probs, y.astype(np.int64)


# ----------------------------------------------------------------------------- temperature


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row: ``p ** (1 / T)`` renormalised, ``(n, n_classes)``.

    ``T = 1`` gives ``p`` back (up to rounding), ``T > 1`` softens, ``T < 1`` sharpens; the
    order of the classes within a clip never changes. Probabilities are clipped at 1e-12
    before the log. Returns float64.
    """
    if not (isinstance(temperature, (int, float, np.floating)) and math.isfinite(temperature)
            and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    probs = np.asarray(probs, dtype=np.float64)
    z = np.log(np.clip(probs, _EPS, None)) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def temperature_nll(probs, y, temperature: float) -> float:
    """Mean negative log-likelihood (nats per clip) of the true classes after temperature ``T``."""
    probs, y = _check_probs(probs, y)
    calibrated = apply_temperature(probs, temperature)
    return float(-np.mean(np.log(np.clip(calibrated[np.arange(len(y)), y], _EPS, None))))


def fit_temperature(probs, y, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature ``T`` minimising :func:`temperature_nll` on (validation) clips.

    ``probs`` ``(n_clips, n_classes)`` clip probabilities, ``y`` ``(n_clips,)`` true class
    indices. A bounded scalar search over ``log T`` in ``bounds`` (scipy's Brent method); the
    NLL of a temperature family is smooth and has one minimum, so this finds it. Fit on the
    validation split, never on test. Returns a float in ``bounds``.
    """
    from scipy.optimize import minimize_scalar

    probs, y = _check_probs(probs, y)
    low, high = bounds
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    log_p = np.log(np.clip(probs, _EPS, None))
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = log_p / math.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y]))

    found = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded",
                            options={"xatol": 1e-5})
    return float(math.exp(found.x))


def cross_validated_temperature(probs, y, n_folds: int = 5, seed: int = 0, n_bins: int = 15
                                ) -> dict:
    """Does a temperature help on these (validation) clips? Judged out of fold.

    The clips are split into ``n_folds`` shuffled folds; each fold is calibrated with the
    temperature fitted on the other folds, so no clip is scored by a temperature it helped fit
    (fitting and judging on the same clips always looks like a gain in NLL). Returns
    ``temperature`` (fitted on all clips: what a bundle would store), the out-of-fold mean NLL
    and ECE before and after (``nll_before``, ``nll_after``, ``ece_before``, ``ece_after``), and
    ``helps``: True when the out-of-fold NLL drops and the out-of-fold ECE does not rise
    (``nll_after < nll_before`` and ``ece_after <= ece_before``). Use it on validation clips,
    never on test.
    """
    probs, y = _check_probs(probs, y)
    if not 2 <= n_folds <= len(y):
        raise ValueError(f"n_folds must be in [2, {len(y)}], got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(y))
    calibrated = np.empty_like(probs)
    for fold in np.array_split(order, n_folds):
        rest = np.setdiff1d(order, fold)
        calibrated[fold] = apply_temperature(probs[fold], fit_temperature(probs[rest], y[rest]))
    rows = np.arange(len(y))

    def nll(p: np.ndarray) -> float:
        return float(-np.mean(np.log(np.clip(p[rows, y], _EPS, None))))

    result = {"temperature": fit_temperature(probs, y),
              "nll_before": nll(probs), "nll_after": nll(calibrated),
              "ece_before": expected_calibration_error(probs, y, n_bins),
              "ece_after": expected_calibration_error(calibrated, y, n_bins)}
    result["helps"] = bool(result["nll_after"] < result["nll_before"]
                           and result["ece_after"] <= result["ece_before"])
    return result


# ----------------------------------------------------------------------------- calibration error


def _bin_of(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence: bin b holds (b/n, (b+1)/n]; 0 goes to bin 0."""
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability_table(probs, y, n_bins: int = 15) -> pd.DataFrame:
    """Per equal-width confidence bin: clips, mean confidence, accuracy and their gap.

    The confidence of a clip is its top-class probability; it is right when that class is the
    true one (ties: the lower class index, as ``np.argmax``). Bin ``b`` (0-based) holds
    confidences in ``(b / n_bins, (b + 1) / n_bins]`` (bin 0 also holds 0). Columns:
    ``lower, upper, count, confidence, accuracy, gap`` (``accuracy - confidence``; NaN for an
    empty bin), one row per bin.
    """
    probs, y = _check_probs(probs, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    bins = _bin_of(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, confidence, n_bins) / count
        accuracy = np.bincount(bins, correct, n_bins) / count
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count,
                         "confidence": mean_conf, "accuracy": accuracy,
                         "gap": accuracy - mean_conf})


def expected_calibration_error(probs, y, n_bins: int = 15) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017), in [0, 1].

    Clips are put into ``n_bins`` equal-width bins by their confidence (top-class
    probability), as in :func:`reliability_table`; then::

        ECE = sum over bins b of  (n_b / N) * |accuracy_b - confidence_b|

    where ``n_b`` is the number of clips in bin ``b``, ``accuracy_b`` the share of them whose
    top class is right and ``confidence_b`` their mean confidence (empty bins add nothing). 0 is
    perfect calibration. With few clips per bin the estimate is noisy and biased upwards.
    """
    table = reliability_table(probs, y, n_bins)
    used = table[table["count"] > 0]
    return float((used["count"] * used["gap"].abs()).sum() / used["count"].sum())


def confidence_gap(probs, y) -> float:
    """Mean confidence (top-class probability) minus accuracy over all clips: above 0 the model
    is over-confident, below 0 under-confident (ECE says how far off, not which way)."""
    probs = np.asarray(probs)
    return float(probs.max(axis=1).mean() - (probs.argmax(axis=1) == np.asarray(y)).mean())


DIAGONAL_LABEL = "perfect calibration"


def plot_reliability(probs, y, ax=None, title: str = "Reliability diagram", label: str | None = None,
                     n_bins: int = 15):
    """Reliability diagram: accuracy against mean confidence per confidence bin.

    One curve per call, so several can share an axes (before/after calibration, in-library and
    cross-library): pass the same ``ax``. Marker areas are proportional to the clips in each
    bin (empty bins are left out); the dashed diagonal is perfect calibration (drawn once per
    axes). The legend entry is ``label`` with the curve's ECE. Returns the axes.
    """
    table = reliability_table(probs, y, n_bins)
    ece = expected_calibration_error(probs, y, n_bins)
    _, ax = new_axes(ax, figsize=(5.5, 5))
    if not any(line.get_label() == DIAGONAL_LABEL for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label=DIAGONAL_LABEL)
    used = table[table["count"] > 0]
    name = f"{label} (ECE {ece:.3f})" if label else f"ECE {ece:.3f}"
    (line,) = ax.plot(used["confidence"], used["accuracy"], linewidth=1.2, label=name)
    sizes = 600.0 * used["count"] / max(int(table["count"].sum()), 1)
    ax.scatter(used["confidence"], used["accuracy"], s=np.maximum(sizes, 6.0),
               color=line.get_color(), alpha=0.7, edgecolors="white", linewidths=0.5)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=title,
           xlabel="confidence (top-class probability)",
           ylabel="accuracy")
    ax.set_aspect("equal")
    # below the axes: inside, the legend would hide bins of an under-confident curve (upper left)
    # or of an over-confident one (lower right)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small",
              title="marker area: clips per bin", title_fontsize="x-small")
    return ax


# ----------------------------------------------------------------------------- OOD detection


def _check_features(features, what: str = "features") -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"{what} must be (n_clips, n_features) with n_clips >= 1, got shape "
                         f"{features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{what} must be finite")
    return features


def mahalanobis_fit(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """Class means ``(n_classes, d)`` and shared precision matrix ``(d, d)`` of training clips.

    The covariance is that of the class-centred features (every class around its own mean,
    Lee et al. 2018), estimated with Ledoit-Wolf shrinkage; the precision is its inverse
    (:func:`shrunk_precision`). Classes are ``0 .. labels.max()``; every one needs at least one
    clip.
    """
    features = _check_features(features, "train_features")
    labels = np.asarray(labels)
    if labels.shape != (len(features),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"train_labels must be integer class indices ({len(features)},)")
    n_classes = int(labels.max()) + 1
    missing = [k for k in range(n_classes) if not np.any(labels == k)]
    if labels.min() < 0 or missing:
        raise ValueError(f"every class 0..{n_classes - 1} needs training clips; missing {missing}")
    means = np.stack([features[labels == k].mean(axis=0) for k in range(n_classes)])
    precision = shrunk_precision(features - means[labels])
    return means, (precision + precision.T) / 2


def shrunk_precision(centred) -> np.ndarray:
    """The inverse ``(d, d)`` of the Ledoit-Wolf shrunk covariance of centred rows ``(n, d)``.

    The same estimate as scikit-learn's ``LedoitWolf(assume_centered=True)``: the covariance
    ``(1 - s) S + s mu I`` with ``S = X'X / n``, ``mu = trace(S) / d`` and the shrinkage ``s``
    of Ledoit & Wolf (2004). Its sums need no ``d x d`` product (the squared entries of ``S``
    sum to those of the ``n x n`` Gram matrix ``XX'``, over ``n^2``), and with fewer rows than
    columns (a few hundred clips, some thousand embedding columns) the inverse follows from the
    Woodbury identity on the Gram matrix::

        ((1 - s) S + s mu I)^-1 = (I - X' (c I + XX')^-1 X) / (s mu),   c = n s mu / (1 - s)

    which takes seconds where scikit-learn's blocked sums and a ``d x d`` inverse take a minute.
    """
    X = _check_features(centred, "centred features")
    n, d = X.shape
    squared_norms = np.einsum("nd,nd->n", X, X)
    trace = squared_norms.sum() / n  # trace of S
    mu = trace / d
    gram = X @ X.T
    if d == 1:
        shrinkage = 0.0  # one feature: nothing to shrink towards (as scikit-learn)
    else:
        beta_ = float(np.sum(squared_norms ** 2))  # sum of the entries of (X**2)'(X**2)
        delta_ = float(np.sum(gram ** 2)) / n ** 2  # sum of the squared entries of S
        delta = (delta_ - 2.0 * mu * trace + d * mu ** 2) / d
        beta = min((beta_ / n - delta_) / (d * n), delta)
        shrinkage = 0.0 if beta == 0 else beta / delta
    scale, ridge = 1.0 - shrinkage, shrinkage * mu
    if ridge > 0 and (n < d or scale == 0):
        if scale == 0:
            return np.eye(d) / ridge
        inner = np.linalg.solve(n * ridge / scale * np.eye(n) + gram, X)
        precision = -(X.T @ inner)
        precision[np.diag_indices(d)] += 1.0
        return precision / ridge
    covariance = scale * (X.T @ X) / n
    covariance[np.diag_indices(d)] += ridge
    return np.linalg.inv(covariance)


def mahalanobis_distances(features, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of every clip to every class mean ``(n_clips, n_classes)``."""
    features = _check_features(features)
    if features.shape[1] != means.shape[1]:
        raise ValueError(f"features have {features.shape[1]} dimensions, the detector "
                         f"{means.shape[1]}")
    # (x - m)' P (x - m) = x'Px - 2 x'Pm + m'Pm: one (n, d) x (d, d) product instead of one
    # per clip and class (P is symmetric).
    projected = features @ precision
    squared = (np.einsum("nd,nd->n", projected, features)[:, None]
               - 2.0 * projected @ means.T
               + np.einsum("kd,kd->k", means @ precision, means)[None, :])
    return np.sqrt(np.maximum(squared, 0.0))


def acceptance_threshold(scores, accept: float = 0.95) -> float:
    """The score at or below which the share ``accept`` of ``scores`` lies: with the scores
    sorted, the ``ceil(accept * n)``-th smallest (so at least that share is accepted, more only
    when scores tie). ``scores`` are OOD scores (higher = more unusual), e.g. of validation clips.
    """
    scores = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if len(scores) == 0 or not np.all(np.isfinite(scores)):
        raise ValueError("need finite validation scores")
    if not 0 < accept <= 1:
        raise ValueError(f"accept must be in (0, 1], got {accept}")
    k = max(1, math.ceil(accept * len(scores) - 1e-9))
    return float(scores[k - 1])


def unheard_margin(val_scores: Sequence, unheard_scores: Sequence, accept: float = 0.95) -> float:
    """How much further out clips of a library a model never heard lie than its own validation
    clips: the factor on :func:`acceptance_threshold` of the validation scores that accepts
    ``accept`` of the unheard clips instead.

    ``val_scores[i]`` and ``unheard_scores[i]`` are one fold's OOD scores, from one model and
    in its own units (a distance in one network's feature space cannot be compared with
    another's): of the fold's in-library validation clips and of its *inner validation*
    library (``cross_val``, which the fold's model never heard and its test library is not).
    Each fold's unheard scores are divided by the threshold that accepts ``accept`` of its own
    validation clips, which puts every fold on one scale (multiplying a fold's scores by any
    positive number changes nothing); the margin is :func:`acceptance_threshold` of these
    pooled relative scores. A model trained on every library has no unheard library left: it
    takes ``margin`` times its own validation threshold
    (``OODDetector.with_threshold(val, accept, margin=...)``). With one fold the margin is
    exactly that fold's unheard threshold over its validation threshold. Used in:
    notebooks/10_shipping.ipynb.
    """
    if len(val_scores) != len(unheard_scores) or len(val_scores) == 0:
        raise ValueError(f"need the same number (>= 1) of folds of validation and unheard scores, "
                         f"got {len(val_scores)} and {len(unheard_scores)}")
    relative = []
    for val, unheard in zip(val_scores, unheard_scores):
        scale = acceptance_threshold(val, accept)
        if scale <= 0:
            raise ValueError("a fold's validation threshold is 0: the scores need a positive scale")
        unheard = np.asarray(unheard, dtype=np.float64).ravel()
        if len(unheard) == 0 or not np.all(np.isfinite(unheard)):
            raise ValueError("need finite unheard scores in every fold")
        relative.append(unheard / scale)
    return acceptance_threshold(np.concatenate(relative), accept)


@dataclass(frozen=True)
class OODDetector:
    """A frozen out-of-distribution score and its threshold.

    ``method``: ``"max_probability"`` (scores ``1 - max p`` of clip probabilities, needs
    nothing fitted) or ``"mahalanobis"`` (scores the distance of a clip's feature vector to the
    nearest class mean, needs ``class_means`` ``(n_classes, d)`` and ``precision`` ``(d, d)``
    from :meth:`fit`). Higher scores are more unusual. ``threshold``: a clip is accepted when
    its score is at most this (None until :meth:`with_threshold`); ``accept`` is the share of
    validation clips the threshold was chosen to accept, ``fitted_on`` says on what (free text,
    stored in bundles). Build with :meth:`fit`, then :meth:`with_threshold` on validation.
    """

    method: str
    threshold: float | None = None
    accept: float | None = None
    class_means: np.ndarray | None = field(default=None, repr=False)
    precision: np.ndarray | None = field(default=None, repr=False)
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.method not in OOD_METHODS:
            raise ValueError(f"unknown OOD method {self.method!r}; choose one of {OOD_METHODS}")
        if self.method == "mahalanobis":
            if self.class_means is None or self.precision is None:
                raise ValueError("a 'mahalanobis' detector needs class_means and precision "
                                 "(OODDetector.fit)")
            d = np.shape(self.class_means)[1]
            if np.shape(self.precision) != (d, d):
                raise ValueError(f"precision must be ({d}, {d}), got {np.shape(self.precision)}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be finite, got {self.threshold}")

    @property
    def needs(self) -> str:
        """What :meth:`score` takes: ``"probs"`` (clip probabilities) or ``"features"``."""
        return "probs" if self.method == "max_probability" else "features"

    @classmethod
    def fit(cls, method: str, train_features=None, train_labels=None,
            fitted_on: str = "") -> OODDetector:
        """A detector of ``method``; ``"mahalanobis"`` is fit on training clips' feature vectors
        ``(n, d)`` and class indices ``(n,)`` (:func:`mahalanobis_fit`)."""
        if method == "mahalanobis":
            if train_features is None or train_labels is None:
                raise ValueError("method 'mahalanobis' needs train_features and train_labels")
            means, precision = mahalanobis_fit(train_features, train_labels)
            return cls(method, class_means=means, precision=precision, fitted_on=fitted_on)
        return cls(method, fitted_on=fitted_on)

    def score(self, features_or_probs) -> np.ndarray:
        """OOD score of every clip ``(n,)``: higher is more unusual (see the class docstring)."""
        if self.method == "max_probability":
            probs, _ = _check_probs(features_or_probs)
            return 1.0 - probs.max(axis=1)
        return mahalanobis_distances(features_or_probs, self.class_means,
                                     self.precision).min(axis=1)

    def with_threshold(self, val_scores, accept: float = 0.95, fitted_on: str | None = None,
                       margin: float = 1.0) -> OODDetector:
        """A copy whose threshold accepts the share ``accept`` of validation clips.

        ``val_scores`` are :meth:`score` of in-distribution validation clips; the threshold is
        :func:`acceptance_threshold` of them (at least that share is accepted, more only when
        scores tie), times ``margin``: :func:`unheard_margin`'s factor makes it accept about
        ``accept`` of clips from libraries the model never heard instead (1: no margin).
        """
        if not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"margin must be a positive finite number, got {margin!r}")
        threshold = margin * acceptance_threshold(val_scores, accept)
        return dataclasses.replace(self, threshold=float(threshold), accept=float(accept),
                                   fitted_on=self.fitted_on if fitted_on is None else fitted_on)

    def accepts(self, features_or_probs) -> np.ndarray:
        """True for every clip that looks like the training data (score <= threshold) ``(n,)``."""
        return self.accepts_scores(self.score(features_or_probs))

    def accepts_scores(self, scores) -> np.ndarray:
        """:meth:`accepts` for scores already computed."""
        if self.threshold is None:
            raise ValueError("the detector has no threshold yet: call with_threshold on "
                             "validation scores")
        return np.asarray(scores, dtype=np.float64) <= self.threshold

    # -- storage: JSON-able metadata plus named arrays (an .npz beside meta.json, no pickle)

    def to_meta(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(meta, arrays)``: what a bundle's ``meta.json`` and ``ood.npz`` hold."""
        meta = {"method": self.method, "threshold": self.threshold, "accept": self.accept,
                "fitted_on": self.fitted_on}
        arrays = {}
        if self.method == "mahalanobis":
            arrays = {"class_means": np.asarray(self.class_means, np.float64),
                      "precision": np.asarray(self.precision, np.float64)}
        return meta, arrays

    @classmethod
    def from_meta(cls, meta: Mapping, arrays: Mapping[str, np.ndarray] | None = None
                  ) -> OODDetector:
        """Rebuild a detector from :meth:`to_meta`'s output."""
        arrays = dict(arrays or {})
        threshold = meta.get("threshold")
        return cls(meta["method"], threshold=None if threshold is None else float(threshold),
                   accept=meta.get("accept"), class_means=arrays.get("class_means"),
                   precision=arrays.get("precision"), fitted_on=str(meta.get("fitted_on", "")))


# ----------------------------------------------------------------------------- test sounds


def synthetic_unlike(sample_rate: int = 22050, seconds: float = 3.0, seed: int = 0,
                     peak: float = 0.5) -> dict[str, np.ndarray]:
    """Named waveforms that no instrument class describes: ``{name: (n,) float32}``.

    Pure sine tones at 110, 440, 1760 and 5000 Hz, white, pink and brown noise, and a
    logarithmic chirp from 50 Hz to 8 kHz, each ``seconds`` long at ``sample_rate``, peak
    ``peak`` (so ``helpers.audio.load_audio`` accepts them: silence is rejected there, and so
    is left out here). Deterministic for a ``seed``.

    Use them to check that a detector flags the obvious; they are **not** a substitute for real
    unknown sounds (speech, other instruments, environmental recordings), which can look far
    more like the training classes. Used in: notebooks/10_shipping.ipynb (the detectors' check
    on sounds no class describes); tests/test_calibration.py, tests/test_predict.py.
    """
    from helpers.acoustics import coloured_noise

    if seconds <= 0 or sample_rate <= 0:
        raise ValueError("seconds and sample_rate must be positive")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    sounds: dict[str, np.ndarray] = {}
    for freq in (110, 440, 1760, 5000):
        if freq < sample_rate / 2:
            sounds[f"sine_{freq}Hz"] = np.sin(2 * np.pi * freq * t)
    for colour in ("white", "pink", "brown"):
        sounds[f"{colour}_noise"] = coloured_noise(rng, n, colour, sample_rate)
    f0, f1 = 50.0, min(8000.0, 0.45 * sample_rate)
    rate = math.log(f1 / f0) / seconds
    sounds["log_chirp"] = np.sin(2 * np.pi * f0 * (np.exp(rate * t) - 1) / rate)
    return {name: (peak * y / np.max(np.abs(y))).astype(np.float32) for name, y in sounds.items()}
