"""Spectrogram augmentation applied on the fly in ``tf.data``: CutMix, band CutMix, mixup, SpecAugment.

A batch is ``x`` float32 ``(batch, n_bins, n_frames, channels)`` (axis 1 = frequency, axis 2 =
time; standardised log-mel or MFCC windows) and ``y`` float32 ``(batch, n_classes)`` one-hot or
soft labels. Every function keeps shapes and dtypes, runs eagerly and inside ``Dataset.map``
(graph mode), and draws all randomness from a *stateless* seed: an int tensor of shape ``[2]``
(a Python int is accepted too). The same seed always gives the same batch.

Mixing methods draw one λ ~ Beta(α, α), one partner and one box per *example* (the partner comes
from a random permutation of the same batch; Yun et al. draw one per batch, per example gives
more variety at no cost). Label weights always equal the *exact* share of the partner in the
output: the pasted area after clipping for CutMix, λ for mixup.

:func:`augment_dataset` keys each batch with a seed from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``: every epoch (every new
iterator) sees new mixes, yet a fresh pipeline built with the same seed replays the same
sequence of epochs.

Augmentation made once before training is held as :class:`Versions` of the training windows
(the seed paper's static CutMix copies, :class:`StaticCutMix`; the waveform copies of
:mod:`helpers.augment_audio`): each epoch draws one version per window.

:func:`save_augment_config` / :func:`load_augment_config` store a chosen :class:`AugmentConfig`
as JSON (notebook 04 writes its CutMix setting to ``results/best_cutmix.json``; notebook 08
reads it through :func:`helpers.ablation.cutmix_setting`).

Used in: notebooks/04_cutmix.ipynb; helpers/training.py (every augmented training, and
:class:`Versions`), helpers/augment_audio.py (:class:`Versions`), helpers/protocol.py (:func:`helpers.protocol.load_recipe` rebuilds a saved recipe's
augmentation: notebook 10 reads notebook 04's ``results/best_recipe.json`` with it) and
helpers/ablation.py (:func:`helpers.ablation.cutmix_setting`, notebook 08).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from helpers.files import write_json

if TYPE_CHECKING:  # type hints only: TensorFlow is imported lazily inside functions
    import tensorflow as tf

KINDS: tuple[str, ...] = ("none", "cutmix", "bandcutmix", "mixup", "specaugment")
_TINY_FLOAT64 = 2.2250738585072014e-308  # smallest normal float64: where tiny-α gammas sit


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentation a training run applies to each batch, and its knobs.

    ``alpha`` parameterises Beta(α, α) for cutmix, bandcutmix and mixup (small α: mostly
    unmixed examples; α = 1: λ uniform). ``prob`` is the chance a batch is augmented.
    SpecAugment draws ``freq_masks`` bands of 0..``freq_mask_width`` mel bins and
    ``time_masks`` bands of 0..``time_mask_width`` frames per example.
    Used in: notebooks/04_cutmix.ipynb; helpers/ablation.py (notebook 08), helpers/protocol.py
    (:func:`helpers.protocol.load_recipe`, notebook 10), helpers/training.py.
    """

    kind: str = "none"
    alpha: float = 1.0
    prob: float = 1.0
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 10

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown augmentation kind {self.kind!r}; choose one of {KINDS}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {self.prob}")
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def describe(self) -> str:
        """What this augmentation does to a training batch, in words, from its fields (for a
        notebook's table of recipes: the prose comes from the configuration that runs)."""
        share = "every batch" if self.prob >= 1 else f"{self.prob:.0%} of the batches"
        if self.kind == "none" or self.prob <= 0:
            return "no augmentation"
        if self.kind == "specaugment":
            return (f"SpecAugment on {share}: {self.freq_masks} mask(s) of up to {self.freq_mask_width} "
                    f"mel bands and {self.time_masks} of up to {self.time_mask_width} frames")
        name = {"cutmix": "CutMix", "bandcutmix": "band CutMix", "mixup": "mixup"}[self.kind]
        return f"{name} on {share}, λ ~ Beta({self.alpha:g}, {self.alpha:g})"


class MixBox(NamedTuple):
    """Where and how much of each example's partner was pasted; every field has shape (batch,).

    ``top``/``left``/``height``/``width`` locate the box in (mel bin, frame) cells, ``lam`` is
    the drawn λ, ``area`` the exact pasted fraction of the T-F plane (the partner's label weight)
    and ``partner`` the index of the example the box came from.
    """

    top: tf.Tensor
    left: tf.Tensor
    height: tf.Tensor
    width: tf.Tensor
    lam: tf.Tensor
    area: tf.Tensor
    partner: tf.Tensor


# --- seeds and shared sampling ---------------------------------------------------------------


def _as_seed(seed) -> tf.Tensor:
    """Return a stateless seed, int64 shape [2], from a Python int, a scalar or a [2] tensor."""
    import tensorflow as tf

    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.zeros_like(seed)])
    return tf.reshape(seed, [2])


def _split(seed, n: int) -> list[tf.Tensor]:
    """Split one stateless seed into ``n`` independent seeds."""
    import tensorflow as tf

    return tf.unstack(tf.random.experimental.stateless_split(_as_seed(seed), num=n))


def _sample_beta(alpha: float, n, seed) -> tf.Tensor:
    """λ ~ Beta(α, α), float32 shape (n,), as G1 / (G1 + G2) with G ~ Gamma(α).

    For tiny α both gamma draws can sit at the smallest float64 (the sampler clamps there);
    their ratio would then read 0.5, so such draws use the limit of Beta(α, α) as α → 0,
    a fair coin on {0, 1}.
    """
    import tensorflow as tf

    seed_a, seed_b, seed_coin = _split(seed, 3)
    g_a = tf.random.stateless_gamma([n], seed_a, alpha=alpha, dtype=tf.float64)
    g_b = tf.random.stateless_gamma([n], seed_b, alpha=alpha, dtype=tf.float64)
    coin = tf.cast(tf.random.stateless_uniform([n], seed_coin, dtype=tf.float64) < 0.5, tf.float64)
    underflow = tf.maximum(g_a, g_b) <= _TINY_FLOAT64
    lam = tf.where(underflow, coin, g_a / tf.maximum(g_a + g_b, _TINY_FLOAT64))
    return tf.cast(lam, tf.float32)


def _partners(n, seed) -> tf.Tensor:
    """A random permutation of ``range(n)``, int32 shape (n,): example i mixes with partner[i]."""
    import tensorflow as tf

    return tf.argsort(tf.random.stateless_uniform([n], _as_seed(seed)))


def sample_span(fraction, length, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """One side of a CutMix box: ``(start, size)`` of a span on an axis of ``length`` cells.

    The span is ``round(fraction * length)`` cells long, its centre uniform over the cells,
    and it is clipped to ``[0, length)``, so near an edge it comes out shorter.
    ``fraction`` is a scalar or shape (batch,); outputs are int32 of the same shape.
    Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    fraction = tf.convert_to_tensor(fraction, tf.float32)
    length = tf.cast(length, tf.int32)
    size = tf.cast(tf.round(fraction * tf.cast(length, tf.float32)), tf.int32)
    centre = tf.random.stateless_uniform(tf.shape(fraction), _as_seed(seed), 0, length, tf.int32)
    start = centre - size // 2  # the unclipped span is [start, start + size)
    stop = tf.clip_by_value(start + size, 0, length)
    start = tf.clip_by_value(start, 0, length)
    return start, stop - start


def sample_box(lam, height, width, seed) -> tuple[tf.Tensor, ...]:
    """The CutMix box (Yun et al. 2019): ``(top, left, box_h, box_w)`` in cells, int32.

    The box has the input's aspect ratio and area ``(1 - lam) * height * width`` before
    clipping: each side is ``sqrt(1 - lam)`` of the input's. Its centre is uniform over the
    input and the box is clipped to it, so the *pasted* area can be smaller than ``1 - lam``;
    :func:`cutmix` therefore weights labels by the exact pasted area.
    ``lam`` is a scalar or shape (batch,); outputs have the same shape.
    Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    lam = tf.clip_by_value(tf.convert_to_tensor(lam, tf.float32), 0.0, 1.0)
    side = tf.sqrt(1.0 - lam)  # box area = side**2 = 1 - lam of the input
    seed_rows, seed_cols = _split(seed, 2)
    top, box_h = sample_span(side, height, seed_rows)
    left, box_w = sample_span(side, width, seed_cols)
    return top, left, box_h, box_w


def _paste(x, y, partner, top, left, box_h, box_w) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Paste each partner's box into ``x`` and mix ``y`` by the exact pasted area.

    ``top``/``left``/``box_h``/``box_w``/``partner`` have shape (batch,).
    Returns ``(x_mixed, y_mixed, area)`` with ``area`` float32 (batch,).
    """
    import tensorflow as tf

    n_rows, n_cols = tf.shape(x)[1], tf.shape(x)[2]
    rows, cols = tf.range(n_rows)[None, :], tf.range(n_cols)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])  # (batch, n_rows)
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])  # (batch, n_cols)
    inside = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (batch, rows, cols, 1)
    x_mixed = tf.where(inside, tf.gather(x, partner), x)
    area = tf.cast(box_h * box_w, tf.float32) / tf.cast(n_rows * n_cols, tf.float32)
    weight = tf.cast(area, y.dtype)[:, None]
    y_mixed = (1.0 - weight) * y + weight * tf.gather(y, partner)
    return x_mixed, y_mixed, area


# --- the augmentations -----------------------------------------------------------------------


def cutmix_with_box(x, y, seed, alpha: float = 1.0) -> tuple[tf.Tensor, tf.Tensor, MixBox]:
    """CutMix, also returning where each box went: ``(x_mixed, y_mixed, MixBox)``.

    Each example draws λ ~ Beta(alpha, alpha), a partner from the same batch and a box
    (:func:`sample_box`); the partner's box replaces the example's cells there, and the
    partner's label weight is the exact pasted area fraction. ``x`` (batch, bins, frames, ch),
    ``y`` (batch, classes). Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    n = tf.shape(x)[0]
    seed_lam, seed_partner, seed_box = _split(seed, 3)
    lam = _sample_beta(alpha, n, seed_lam)
    partner = _partners(n, seed_partner)
    top, left, box_h, box_w = sample_box(lam, tf.shape(x)[1], tf.shape(x)[2], seed_box)
    x_mixed, y_mixed, area = _paste(x, y, partner, top, left, box_h, box_w)
    return x_mixed, y_mixed, MixBox(top, left, box_h, box_w, lam, area, partner)


def cutmix(x, y, seed, alpha: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
    """CutMix (Yun et al. 2019) on a batch: see :func:`cutmix_with_box`. Returns ``(x, y)``.

    Used in: notebooks/04_cutmix.ipynb.
    """
    x_mixed, y_mixed, _ = cutmix_with_box(x, y, seed, alpha)
    return x_mixed, y_mixed


def band_cutmix_with_box(x, y, seed, alpha: float = 1.0) -> tuple[tf.Tensor, tf.Tensor, MixBox]:
    """Band CutMix, also returning the bands as a :class:`MixBox`.

    An audio-minded CutMix: with probability 1/2 the pasted region is a full-height *time*
    band (all mel bins of some frames: a stretch of the partner's sound), otherwise a
    full-width *frequency* band (some mel bins over the whole window). The band covers
    ``1 - λ`` of its axis before clipping (:func:`sample_span`); labels are weighted by the
    exact pasted area. Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    n, n_rows, n_cols = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    seed_lam, seed_partner, seed_axis, seed_rows, seed_cols = _split(seed, 5)
    lam = _sample_beta(alpha, n, seed_lam)
    partner = _partners(n, seed_partner)
    time_band = tf.random.stateless_uniform([n], seed_axis) < 0.5
    band_top, band_h = sample_span(1.0 - lam, n_rows, seed_rows)
    band_left, band_w = sample_span(1.0 - lam, n_cols, seed_cols)
    zeros = tf.zeros_like(band_top)
    top = tf.where(time_band, zeros, band_top)
    box_h = tf.where(time_band, zeros + n_rows, band_h)
    left = tf.where(time_band, band_left, zeros)
    box_w = tf.where(time_band, band_w, zeros + n_cols)
    x_mixed, y_mixed, area = _paste(x, y, partner, top, left, box_h, box_w)
    return x_mixed, y_mixed, MixBox(top, left, box_h, box_w, lam, area, partner)


def band_cutmix(x, y, seed, alpha: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Band CutMix on a batch: see :func:`band_cutmix_with_box`. Returns ``(x, y)``.

    Used in: :func:`augment_batch` (``kind="bandcutmix"``, notebook 04).
    """
    x_mixed, y_mixed, _ = band_cutmix_with_box(x, y, seed, alpha)
    return x_mixed, y_mixed


def mixup(x, y, seed, alpha: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup (Zhang et al. 2018): ``x = λ x + (1 - λ) x[partner]``, ``y`` likewise.

    λ ~ Beta(alpha, alpha) and the partner are drawn per example.
    Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    n = tf.shape(x)[0]
    seed_lam, seed_partner = _split(seed, 2)
    lam = _sample_beta(alpha, n, seed_lam)
    partner = _partners(n, seed_partner)
    lam_x = tf.cast(lam, x.dtype)[:, None, None, None]
    lam_y = tf.cast(lam, y.dtype)[:, None]
    x_mixed = lam_x * x + (1.0 - lam_x) * tf.gather(x, partner)
    y_mixed = lam_y * y + (1.0 - lam_y) * tf.gather(y, partner)
    return x_mixed, y_mixed


def _band_masks(n, length, n_masks: int, max_width: int, seed) -> tf.Tensor:
    """``n_masks`` bands per example along an axis of ``length`` cells: bool (n, length).

    Each band's width is uniform in ``0..max_width`` (clipped to ``length``) and its start
    uniform among the positions where it fits (Park et al. 2019).
    """
    import tensorflow as tf

    seed_width, seed_start = _split(seed, 2)
    length_f = tf.cast(length, tf.float32)
    u_width = tf.random.stateless_uniform([n, n_masks], seed_width)
    width = tf.minimum(tf.floor(u_width * (max_width + 1)), tf.minimum(float(max_width), length_f))
    u_start = tf.random.stateless_uniform([n, n_masks], seed_start)
    start = tf.minimum(tf.floor(u_start * (length_f - width + 1.0)), length_f - width)
    cells = tf.cast(tf.range(length), tf.float32)[None, None, :]
    inside = (cells >= start[..., None]) & (cells < (start + width)[..., None])
    return tf.reduce_any(inside, axis=1)


def spec_augment(
    x,
    y,
    seed,
    freq_masks: int = 2,
    freq_mask_width: int = 8,
    time_masks: int = 2,
    time_mask_width: int = 10,
) -> tuple[tf.Tensor, tf.Tensor]:
    """SpecAugment's frequency and time masking (Park et al. 2019); labels unchanged.

    Each example gets ``freq_masks`` bands of up to ``freq_mask_width`` mel bins and
    ``time_masks`` bands of up to ``time_mask_width`` frames. Masked cells are set to the batch
    mean of ``x``: for standardised inputs that is about 0, Park et al.'s choice, and it stays
    a neutral value if the inputs are not standardised. Used in: notebooks/04_cutmix.ipynb.
    """
    import tensorflow as tf

    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    n, n_rows, n_cols = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    seed_freq, seed_time = _split(seed, 2)
    in_freq = _band_masks(n, n_rows, freq_masks, freq_mask_width, seed_freq)  # (batch, bins)
    in_time = _band_masks(n, n_cols, time_masks, time_mask_width, seed_time)  # (batch, frames)
    masked = in_freq[:, :, None, None] | in_time[:, None, :, None]
    return tf.where(masked, tf.reduce_mean(x), x), y


# --- applying a config -----------------------------------------------------------------------


def augment_batch(x, y, seed, config: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Apply ``config.kind`` to one batch with probability ``config.prob``; ``(x, y)`` out.

    ``kind="none"`` and ``prob=0`` return the inputs untouched.
    Used in: :func:`augment_dataset`.
    """
    import tensorflow as tf

    if config.kind not in KINDS:
        raise ValueError(f"unknown augmentation kind {config.kind!r}; choose one of {KINDS}")
    if config.kind == "none" or config.prob <= 0.0:
        return x, y
    seed_gate, seed_aug = _split(seed, 2)

    def augmented():
        if config.kind == "specaugment":
            return spec_augment(
                x,
                y,
                seed_aug,
                config.freq_masks,
                config.freq_mask_width,
                config.time_masks,
                config.time_mask_width,
            )
        mix = {"cutmix": cutmix, "bandcutmix": band_cutmix, "mixup": mixup}[config.kind]
        return mix(x, y, seed_aug, config.alpha)

    if config.prob >= 1.0:
        return augmented()
    apply = tf.random.stateless_uniform([], seed_gate) < config.prob
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    return tf.cond(apply, augmented, lambda: (x, y))


def augment_dataset(ds: tf.data.Dataset, config: AugmentConfig, seed: int) -> tf.data.Dataset:
    """Augment a *batched* ``(x, y)`` dataset on the fly, deterministically per ``seed``.

    Batch k of an epoch is augmented with the k-th seed of
    ``Dataset.random(seed, rerandomize_each_iteration=True)``, which draws a new seed stream
    each time the dataset is iterated: every epoch sees new mixes, and a fresh pipeline built
    with the same ``seed`` replays the same epochs. (Like every seeded TF op, the stream also
    depends on the global seed if one is set with ``tf.random.set_seed``.)
    Used in: notebooks/04_cutmix.ipynb, helpers/training.py (every augmented training).
    """
    import tensorflow as tf

    x_spec = ds.element_spec[0]
    if x_spec.shape.rank != 4:
        raise ValueError(
            f"augment_dataset expects batched (x, y) with x of rank 4 "
            f"(batch, bins, frames, channels), got x spec {x_spec}"
        )
    if config.kind == "none" or config.prob <= 0.0:
        return ds
    seeds = tf.data.Dataset.random(seed, rerandomize_each_iteration=True)
    seeds = seeds.batch(2, drop_remainder=True)  # one [2] stateless seed per batch
    return tf.data.Dataset.zip((ds, seeds)).map(
        lambda xy, batch_seed: augment_batch(xy[0], xy[1], batch_seed, config),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


# --- precomputed versions of the training windows, and the seed paper's static copies -------


@dataclass(frozen=True)
class Versions:
    """Several renderings of the same training windows: each epoch draws one per window.

    ``X`` ``(n_versions, n_windows, bins, frames, 1)`` and soft labels ``y``
    ``(n_versions, n_windows, n_classes)``; version 0 is the original. Waveform augmentation
    (:meth:`helpers.augment_audio.WaveformAugment.build`) and the seed paper's static CutMix
    copies (:meth:`StaticCutMix.build`) are both such precomputed versions, so an epoch costs
    the same as without them. Used in: helpers/training.py (:func:`helpers.training.fit`'s
    ``variants``), helpers/augment_audio.py, helpers/experiment.py (a run's cache key).
    """

    X: np.ndarray
    y: np.ndarray
    name: str = "versions"

    def __post_init__(self) -> None:
        if self.X.ndim != 5 or self.y.ndim != 3 or self.X.shape[:2] != self.y.shape[:2]:
            raise ValueError(f"Versions needs X (versions, windows, bins, frames, 1) and y "
                             f"(versions, windows, classes); got {self.X.shape} and {self.y.shape}")

    @property
    def fingerprint(self) -> str:
        """Hash of the arrays (part of a run's cache key)."""
        import hashlib

        digest = hashlib.sha256(self.name.encode())
        for array in (np.ascontiguousarray(self.X, np.float32), np.ascontiguousarray(self.y, np.float32)):
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:20]


@dataclass(frozen=True)
class StaticCutMix:
    """The seed paper's CutMix: ``copies`` CutMix copies of the training set, made ONCE before
    training (the partners are drawn from the whole training set), not re-drawn every batch.

    The seed trained on the original plus its three copies together; here every epoch draws one
    of the ``copies + 1`` versions of each window (:class:`Versions`), so the
    static recipe gets the same number of training steps as every other recipe.
    Used in: notebooks/04_cutmix.ipynb; helpers/protocol.py (:func:`helpers.protocol.load_recipe`,
    notebook 10).
    """

    copies: int = 3
    alpha: float = 1.0
    name = "static-cutmix"

    def describe(self) -> str:
        """In words: what the training windows look like (for a notebook's table of recipes)."""
        return (f"{self.copies} CutMix copies of the training windows made once (λ ~ Beta({self.alpha:g}, "
                f"{self.alpha:g})); each epoch draws one of the {self.copies + 1} versions of a window")

    def build(self, prepared, seed: int = 0, progress: bool = True):
        """:class:`Versions` of ``prepared``'s training windows: the original and ``copies``
        CutMix copies drawn with ``seed`` (quick: ``progress`` shows nothing)."""
        X, y = prepared.xy("train")
        onehot = np.eye(len(prepared.classes), dtype=np.float32)[y]
        xs, ys = [X], [onehot]
        for k in range(self.copies):
            x_mix, y_mix = cutmix(X, onehot, seed=[seed, 1000 + k], alpha=self.alpha)
            xs.append(x_mix.numpy())
            ys.append(y_mix.numpy())
        return Versions(X=np.stack(xs), y=np.stack(ys),
                        name=f"{self.name}:{self.copies}:{self.alpha}:{seed}")


# --- saving the chosen augmentation ----------------------------------------------------------


def save_augment_config(config: AugmentConfig, path, extra: dict | None = None) -> Path:
    """Write ``config`` as JSON to ``path`` (atomically); returns the path.

    The file holds the config's fields at the top level (``{"kind": "cutmix", "alpha": 1.0,
    ...}``) and, when given, ``extra`` (e.g. how it was chosen, its scores; numpy values are
    converted, NaN becomes null) under ``"extra"``;
    :func:`load_augment_config` reads it back. Used in: notebooks/04_cutmix.ipynb writes
    ``results/best_cutmix.json``, which notebook 08 loads (:func:`helpers.ablation.cutmix_setting`).
    """
    payload = asdict(config)
    if extra is not None:
        payload["extra"] = extra
    return write_json(Path(path), payload, sort_keys=True)


def load_augment_config(path) -> AugmentConfig:
    """Read an :class:`AugmentConfig` written by :func:`save_augment_config`.

    Fields missing from the file take their defaults; ``"extra"`` is ignored; an unknown
    field or kind raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no saved augmentation; run notebooks/04_cutmix.ipynb first") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    payload.pop("extra", None)
    known = {f.name for f in fields(AugmentConfig)}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ValueError(f"{path}: unknown augmentation field(s) {unknown}; known: {sorted(known)}")
    try:
        return AugmentConfig(**payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
