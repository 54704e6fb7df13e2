"""Models: the configurable CNN, the classical baselines, and the saved model bundle.

Every network is built with Keras 2 (``tf_keras``), because TF-MOT pruning needs it; TensorFlow
is imported inside the functions, so importing this module stays cheap.

Layer-name contract (Grad-CAM, pruning and the ablation rely on it):

* conv blocks' ``Conv2D`` layers are ``conv1 .. convN``;
* hidden ``Dense`` layers are ``dense1 .. denseM``;
* the last ``Dense`` (no activation) is ``logits``, followed by ``Activation("softmax")`` named
  ``probs``, the model output.

Input: standardised feature windows of shape ``(n_bins, n_frames, 1)`` (mel bands or MFCC
coefficients x time frames); the model does no normalisation of its own.
Used in: notebooks/03_baselines.ipynb, 04_cutmix.ipynb, 05_tuning.ipynb, 06_pruning.ipynb,
07_cam.ipynb, 08_ablation.ipynb, 09_pretrained.ipynb, 10_shipping.ipynb; helpers/ablation.py,
experiment.py, predict.py, protocol.py, pruning.py, transfer.py, tune_command.py, tuning.py.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helpers.files import atomic_folder, write_json

MODEL_FILE = "model.keras"
META_FILE = "meta.json"
NORMALIZER_FILE = "normalizer.npz"
OOD_FILE = "ood.npz"  # the OOD detector's arrays, beside meta.json (only when it has any)
BUNDLE_FILES = (MODEL_FILE, META_FILE, NORMALIZER_FILE)
DEFAULT_KIND = "cnn"  # meta.json's "kind" when it has none (bundles older than the field)


@dataclass(frozen=True)
class CNNConfig:
    """Architecture and optimiser of :func:`build_cnn`.

    ``conv_filters[i]`` and ``kernel_sizes[i]`` describe conv block ``i + 1`` (0..n blocks);
    ``dense_units`` lists the hidden dense layers (0..n). ``dropout`` follows every conv block
    and hidden dense layer (0 disables it). ``global_pool`` replaces ``Flatten`` by
    ``GlobalAveragePooling2D`` after the conv blocks (ignored when there are none).
    """

    conv_filters: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    dense_units: tuple[int, ...]
    dropout: float = 0.2
    batch_norm: bool = False
    global_pool: bool = False
    learning_rate: float = 1e-3

    def __post_init__(self) -> None:
        if len(self.conv_filters) != len(self.kernel_sizes):
            raise ValueError(
                f"conv_filters {self.conv_filters} and kernel_sizes {self.kernel_sizes} "
                "must have the same length (one entry per conv block)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


# The seed student project's network on MFCC windows: three 3x3 conv layers (32/64/128 filters,
# each followed by 2x2 max pooling), Flatten, three hidden dense layers (256/128/64), dropout
# 0.2 throughout, no batch norm. Most of its weights sit in the first dense layer (on 20 MFCC
# x 44 frames, Flatten gives 2 x 5 x 128 = 1280 features, each wired to 256 units);
# count_params gives the total, which the README's results table lists.
SEED_CNN = CNNConfig(
    conv_filters=(32, 64, 128),
    kernel_sizes=(3, 3, 3),
    dense_units=(256, 128, 64),
    dropout=0.2,
)

# The log-mel CNN: three small conv blocks (16/32/64 filters), then Flatten so the dense layer
# still knows WHERE in frequency the energy lies (pitch range and formants tell instruments
# apart), one dense layer of 128, dropout 0.2, Adam at 3e-3. Its settings were chosen on
# cross-library validation accuracy in development runs of the protocol of notebook 03, which
# the chain does not repeat; notebook 05's search (filters, dense units, dropout, learning rate)
# tests it against variants. Notebook 03 prints its size; notebook 04 varies how it is trained,
# notebook 05 its size and settings.
LOGMEL_CNN = CNNConfig(
    conv_filters=(16, 32, 64),
    kernel_sizes=(3, 3, 3),
    dense_units=(128,),
    dropout=0.2,
    learning_rate=3e-3,
)


def describe_cnn(config: CNNConfig, input_shape: tuple[int, int, int] | None = None,
                 n_classes: int | None = None) -> str:
    """One paragraph describing the network of ``config`` (with both shapes: its weight count).

    Notebooks print this instead of describing a model by hand, so the prose always matches
    the configuration that trains. Used in: notebooks 03, 05, 08.
    """
    blocks = [f"{f} filters {k}x{k}" for f, k in zip(config.conv_filters, config.kernel_sizes)]
    parts = []
    if blocks:
        per_block = "Conv2D (ReLU)" + (" + batch normalisation" if config.batch_norm else "")
        parts.append(f"{len(blocks)} conv block(s) ({'; '.join(blocks)}), each {per_block} "
                     "+ 2x2 max pooling")
        parts.append("global average pooling over time and frequency" if config.global_pool
                     else "Flatten (the dense layers keep where in time and frequency a feature is)")
    else:
        parts.append("no conv block: the window is flattened")
    if config.dense_units:
        parts.append(f"{len(config.dense_units)} hidden dense layer(s) of "
                     f"{'/'.join(map(str, config.dense_units))} units (ReLU)")
    else:
        parts.append("no hidden dense layer")
    parts.append(f"dropout {config.dropout:g} after every block and dense layer" if config.dropout
                 else "no dropout")
    parts.append("a softmax output layer")
    text = "; ".join(parts) + f". Adam, learning rate {config.learning_rate:g}."
    if input_shape is not None and n_classes is not None:
        size = count_params(build_cnn(input_shape, n_classes, config))
        text += (f" {size:,} weights for {input_shape[0]} x {input_shape[1]} windows and "
                 f"{n_classes} classes.")
    return text


def _pool_size(height: int, width: int) -> tuple[int, int]:
    """2x2 max pooling, but never shrink a dimension below 1 (tiny inputs in the ablation)."""
    return (2 if height >= 2 else 1, 2 if width >= 2 else 1)


def build_cnn(input_shape: tuple[int, int, int], n_classes: int, config: CNNConfig):
    """Build and compile the CNN of ``config`` for windows of ``input_shape``.

    ``input_shape`` is ``(n_bins, n_frames, 1)``; the output is ``(batch, n_classes)``
    probabilities. Each conv block is Conv2D (same padding, ReLU) [+ BatchNorm] + MaxPool2D(2)
    [+ Dropout]; with no conv block the input is flattened. Compiled with Adam
    (``config.learning_rate``) and categorical cross-entropy on one-hot or soft targets
    (CutMix and mixup give soft labels), metric accuracy.
    Returns a ``tf_keras.Model``. Used in: helpers/experiment.py (every training job) and
    helpers/protocol.py, so every CNN the notebooks train is built here; no notebook calls it
    directly (notebook 03 introduces it by name).
    """
    import tf_keras as keras

    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (n_bins, n_frames, channels), got {input_shape}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    height, width = int(input_shape[0]), int(input_shape[1])
    blocks = zip(config.conv_filters, config.kernel_sizes, strict=True)
    for i, (filters, kernel) in enumerate(blocks, 1):
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        if config.batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        pool = _pool_size(height, width)
        if pool != (1, 1):
            x = layers.MaxPool2D(pool, name=f"pool{i}")(x)
            height, width = height // pool[0], width // pool[1]
        if config.dropout > 0:
            x = layers.Dropout(config.dropout, name=f"conv_dropout{i}")(x)
    if config.global_pool and config.conv_filters:
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    for j, units in enumerate(config.dense_units, 1):
        x = layers.Dense(units, activation="relu", name=f"dense{j}")(x)
        if config.dropout > 0:
            x = layers.Dropout(config.dropout, name=f"dense_dropout{j}")(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    probs = layers.Activation("softmax", name="probs")(logits)
    model = keras.Model(inputs, probs, name="cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def count_params(model) -> int:
    """Number of weights of ``model`` (trainable and not, e.g. batch-norm statistics)."""
    return int(model.count_params())


@functools.cache
def small_data_classes():
    """Two scikit-learn estimators that also fit on tiny training sets (a smoke run), made on
    first use so that importing this module stays cheap: ``.mlp`` and ``.calibrated``.

    * ``SmallDataMLP``: ``MLPClassifier`` whose early-stopping split holds at least one clip per
      class (scikit-learn stratifies that split and refuses one smaller than the number of
      classes); the fraction is raised just enough, for that fit only.
    * ``SmallDataCalibratedCV``: ``CalibratedClassifierCV`` whose number of folds is lowered to
      the smallest class's clip count when that is below it (at least 2).

    Otherwise both are their scikit-learn class unchanged. Used in: :func:`classical_models`,
    helpers.transfer.
    """
    from types import SimpleNamespace

    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.neural_network import MLPClassifier

    class SmallDataMLP(MLPClassifier):
        def fit(self, X, y, **kwargs):
            wanted = self.validation_fraction
            n_classes = len(np.unique(y))
            if self.early_stopping and int(np.ceil(wanted * len(y))) < n_classes:
                self.validation_fraction = min(0.5, (n_classes + 0.5) / len(y))
            try:
                return super().fit(X, y, **kwargs)
            finally:
                self.validation_fraction = wanted

    class SmallDataCalibratedCV(CalibratedClassifierCV):
        def fit(self, X, y, **kwargs):
            wanted = self.cv
            smallest = int(np.unique(y, return_counts=True)[1].min())
            if isinstance(wanted, int) and smallest < wanted:
                if smallest < 2:
                    raise ValueError(f"calibration needs at least 2 training clips of every class; "
                                     f"one class has {smallest}")
                self.cv = smallest
            try:
                return super().fit(X, y, **kwargs)
            finally:
                self.cv = wanted

    for cls in (SmallDataMLP, SmallDataCalibratedCV):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
        cls.__doc__ = small_data_classes.__doc__
    return SimpleNamespace(mlp=SmallDataMLP, calibrated=SmallDataCalibratedCV)


def __getattr__(name: str):
    """``helpers.models.SmallDataMLP`` / ``SmallDataCalibratedCV`` resolve lazily (pickle finds
    fitted models by these names)."""
    if name == "SmallDataMLP":
        return small_data_classes().mlp
    if name == "SmallDataCalibratedCV":
        return small_data_classes().calibrated
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def classical_models(seed: int) -> dict[str, Any]:
    """The classical baselines for clip-level MFCC summary statistics, keyed by display name.

    Each is ``make_pipeline(StandardScaler(), estimator)`` with ``predict_proba``, seeded, and
    sized (trees, iterations) to fit quickly on one summary vector per clip
    (:func:`helpers.protocol.evaluate_clip_model` records each fit's time as ``train_seconds``).
    Used in: notebooks/03_baselines.ipynb, 09_pretrained.ipynb.
    """
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    small = small_data_classes()
    estimators = {
        "Logistic regression": LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
        "Gaussian naive Bayes": GaussianNB(),
        # Platt-scaled probabilities, the replacement sklearn 1.9 gives for SVC(probability=True)
        "SVM (RBF)": small.calibrated(SVC(kernel="rbf", C=10.0, gamma="scale"),
                                      method="sigmoid", cv=5, ensemble=False),
        "Decision tree": DecisionTreeClassifier(min_samples_leaf=2, random_state=seed),
        "Random forest": RandomForestClassifier(n_estimators=300, min_samples_leaf=1,
                                                n_jobs=2, random_state=seed),
        "AdaBoost": AdaBoostClassifier(DecisionTreeClassifier(max_depth=3, random_state=seed),
                                       n_estimators=100, learning_rate=0.5, random_state=seed),
        "MLP": small.mlp(hidden_layer_sizes=(128,), alpha=1e-3, batch_size=32, max_iter=300,
                             early_stopping=True, n_iter_no_change=20, random_state=seed),
        "k-NN": KNeighborsClassifier(n_neighbors=5, weights="distance"),
    }
    return {name: make_pipeline(StandardScaler(), est) for name, est in estimators.items()}


# ----------------------------------------------------------------------------- model bundle


@dataclass(frozen=True)
class Bundle:
    """A trained model with everything needed to use it on new audio.

    ``mean``/``std`` standardise feature windows before ``model.predict`` (shapes broadcast
    against ``(n_windows, n_bins, n_frames, 1)``). The model is loaded uncompiled (inference).
    ``calibration`` is ``{"temperature": T, "fitted_on": ...}`` or None, ``ood`` a
    :class:`helpers.calibration.OODDetector` or None (bundles saved without them).
    """

    model: Any
    classes: tuple[str, ...]
    feature_config: Any
    mean: np.ndarray
    std: np.ndarray
    extra: dict = field(default_factory=dict)
    calibration: dict | None = None
    ood: Any = None
    kind: str = DEFAULT_KIND


def _tuples(value: Any) -> Any:
    """JSON turns tuples into lists; turn them back so frozen configs compare equal."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def inference_copy(model):
    """An uncompiled copy with the same weights, so the saved file holds no optimizer state.

    Falls back to ``model`` itself for models ``clone_model`` cannot rebuild (subclassed).
    Used in: :func:`save_bundle`, :func:`helpers.pruning.keras_file_bytes`.
    """
    import tf_keras as keras

    try:
        copy = keras.models.clone_model(model)
    except (TypeError, ValueError):
        return model
    copy.set_weights(model.get_weights())
    return copy


def calibration_meta(calibration: dict | None = None, ood=None, n_classes: int | None = None
                     ) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``meta.json`` entries and the ``ood.npz`` arrays of a temperature and a detector.

    ``calibration``: None or a mapping with a positive ``temperature`` and optionally
    ``fitted_on`` (free text: which clips it was fitted on). ``ood``: None or a
    :class:`helpers.calibration.OODDetector` with a threshold. Returns ``(entries, arrays)``:
    ``entries`` has ``"calibration"`` and/or ``"ood"`` (``{"method", "threshold", "accept",
    "fitted_on", "file"}``, ``file`` only when the detector has arrays), ``arrays`` what goes
    into :data:`OOD_FILE` (plain float arrays, written with ``np.savez``, never pickled).
    Shared by :func:`save_bundle` and :func:`helpers.pruning.save_tflite_bundle`.
    """
    import math

    entries: dict = {}
    arrays: dict[str, np.ndarray] = {}
    if calibration is not None:
        unknown = set(calibration) - {"temperature", "fitted_on"}
        temperature = calibration.get("temperature")
        if unknown or not isinstance(temperature, (int, float, np.floating)) or not (
                math.isfinite(temperature) and temperature > 0):
            raise ValueError("calibration must be {'temperature': positive number, "
                             f"'fitted_on': text}}, got {calibration!r}")
        entries["calibration"] = {"temperature": float(temperature),
                                  "fitted_on": str(calibration.get("fitted_on", ""))}
    if ood is not None:
        from helpers.calibration import OODDetector

        if not isinstance(ood, OODDetector):
            raise TypeError(f"ood must be a helpers.calibration.OODDetector, got {ood!r}")
        if ood.threshold is None:
            raise ValueError("the OOD detector has no threshold: call with_threshold on "
                             "validation scores before saving it")
        if (n_classes is not None and ood.class_means is not None
                and len(ood.class_means) != n_classes):
            raise ValueError(f"the OOD detector has {len(ood.class_means)} class means, the "
                             f"model {n_classes} classes")
        entries["ood"], arrays = ood.to_meta()
        if arrays:
            entries["ood"]["file"] = OOD_FILE
    return entries, arrays


def read_meta(directory: Path) -> dict:
    """The parsed ``meta.json`` of a bundle folder (Keras or TFLite); ValueError naming the
    file when it is not JSON."""
    path = Path(directory) / META_FILE
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable meta.json ({exc})") from exc


def read_calibration(directory: Path, meta: dict) -> tuple[dict | None, Any]:
    """``(calibration, ood)`` stored in a bundle: the ``"calibration"`` entry of ``meta`` (or
    None) and an :class:`helpers.calibration.OODDetector` (or None), its arrays read from the
    ``.npz`` file the entry names. Bundles written without them give ``(None, None)``."""
    calibration = meta.get("calibration")
    entry = meta.get("ood")
    if entry is None:
        return calibration, None
    from helpers.calibration import OODDetector

    arrays: dict[str, np.ndarray] = {}
    if entry.get("file"):
        path = Path(directory) / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"model bundle {directory}: meta.json names the OOD "
                                    f"detector's {entry['file']}, which is missing")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return calibration, OODDetector.from_meta(entry, arrays)


def save_bundle(
    directory: Path,
    model,
    classes: Sequence[str],
    feature_config,
    normalizer_mean: np.ndarray,
    normalizer_std: np.ndarray,
    extra: dict | None = None,
    *,
    calibration: dict | None = None,
    ood=None,
) -> Path:
    """Write ``model.keras``, ``meta.json`` and ``normalizer.npz`` into ``directory``.

    ``meta.json`` holds ``"kind": "cnn"``, the classes, ``dataclasses.asdict(feature_config)``
    and ``extra`` (JSON-serialisable; numpy scalars are converted). Optionally a temperature,
    ``calibration={"temperature": T, "fitted_on": "..."}``, and an out-of-distribution
    detector ``ood`` (:class:`helpers.calibration.OODDetector` with a threshold; its arrays go
    to ``ood.npz``), which ``python -m helpers predict`` then applies (see
    :func:`calibration_meta`). The model is saved in the native
    ``.keras`` format without optimizer state (an uncompiled copy), which tf_keras 2.21 saves
    and reloads exactly, also after TF-MOT ``strip_pruning``. The write is atomic: everything goes to a temporary folder next to
    ``directory``, which then replaces any older bundle. Returns ``directory``.
    Used in: notebooks/05_tuning.ipynb, 06_pruning.ipynb, 10_shipping.ipynb.
    """
    directory = Path(directory)
    if not dataclasses.is_dataclass(feature_config) or isinstance(feature_config, type):
        raise TypeError(f"feature_config must be a dataclass instance, got {feature_config!r}")
    entries, ood_arrays = calibration_meta(calibration, ood, n_classes=len(classes))
    meta = {
        "kind": DEFAULT_KIND,
        "classes": [str(c) for c in classes],
        "feature_config": dataclasses.asdict(feature_config),
        "extra": dict(extra or {}),
        "model_file": MODEL_FILE,
        **entries,
    }
    directory.parent.mkdir(parents=True, exist_ok=True)

    def fill(tmp: Path) -> None:
        inference_copy(model).save(tmp / MODEL_FILE)
        write_json(tmp / META_FILE, meta)
        np.savez(tmp / NORMALIZER_FILE, mean=np.asarray(normalizer_mean, dtype=np.float32),
                 std=np.asarray(normalizer_std, dtype=np.float32))
        if ood_arrays:
            np.savez(tmp / OOD_FILE, **ood_arrays)

    return atomic_folder(directory, fill)


def save_ensemble_bundle(directory: Path, members: Sequence[tuple[str, Any, float]],
                         classes: Sequence[str], features_from: str | None = None,
                         extra: dict | None = None, *, calibration: dict | None = None,
                         ood=None) -> Path:
    """Write an ``"ensemble"`` bundle: member bundles in sub-folders, their probabilities
    averaged with weights.

    ``members`` are ``(name, write, weight)``: ``write(folder)`` writes that member's bundle
    (e.g. ``lambda f: save_bundle(f, ...)``) into ``directory/name``. ``features_from`` names
    the member whose clip feature vectors an OOD detector scores. The ensemble's temperature and
    detector live in its own ``meta.json``; members carry none. Written atomically.
    Used in: notebooks/10_shipping.ipynb.
    """
    entries, ood_arrays = calibration_meta(calibration, ood, n_classes=len(classes))
    names = [name for name, _, _ in members]
    if len(set(names)) != len(names) or features_from not in (None, *names):
        raise ValueError(f"members need distinct names and features_from one of them: {names}, "
                         f"{features_from!r}")
    weights = np.asarray([w for _, _, w in members], dtype=np.float64)
    meta = {"kind": "ensemble", "classes": [str(c) for c in classes],
            "members": [{"folder": n, "weight": float(w / weights.sum())} for n, w in zip(names, weights)],
            "features_from": features_from, "extra": dict(extra or {}), **entries}

    def fill(tmp: Path) -> None:
        for name, write, _ in members:
            write(tmp / name)
        write_json(tmp / META_FILE, meta)
        if ood_arrays:
            np.savez(tmp / OOD_FILE, **ood_arrays)

    return atomic_folder(Path(directory), fill)


def load_bundle(directory: Path, config_type: type | None = None) -> Bundle:
    """Load a bundle written by :func:`save_bundle`.

    ``config_type`` rebuilds the feature configuration (default:
    ``helpers.features.FeatureConfig``); JSON lists become tuples again. The temperature and
    OOD detector come back as ``Bundle.calibration`` and ``Bundle.ood`` (None for bundles saved
    without them, including every bundle older than these fields).
    Raises ``FileNotFoundError`` naming the folder and the missing files.
    """
    import tf_keras as keras

    directory = Path(directory)
    missing = [name for name in BUNDLE_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"model bundle {directory} is incomplete: missing {', '.join(missing)} "
            "(write it with helpers.models.save_bundle)"
        )
    if config_type is None:
        from helpers.features import FeatureConfig

        config_type = FeatureConfig
    meta = read_meta(directory)
    kind = meta.get("kind", DEFAULT_KIND)
    if kind != DEFAULT_KIND:
        raise ValueError(f"model bundle {directory} is of kind {kind!r}; load_bundle reads "
                         f"{DEFAULT_KIND!r} bundles (helpers.predict.load_predictor reads every kind)")
    feature_config = config_type(**{k: _tuples(v) for k, v in meta["feature_config"].items()})
    with np.load(directory / NORMALIZER_FILE) as npz:
        mean, std = npz["mean"], npz["std"]
    calibration, ood = read_calibration(directory, meta)
    model = keras.models.load_model(directory / MODEL_FILE, compile=False)
    return Bundle(model=model, classes=tuple(meta["classes"]), feature_config=feature_config,
                  mean=mean, std=std, extra=meta.get("extra", {}), calibration=calibration,
                  ood=ood, kind=kind)
