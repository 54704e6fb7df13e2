"""``python -m helpers predict``: label new audio files with a saved model.

Prints CSV to stdout, one row per readable file, in the order the files are found (folders are
searched recursively and sorted)::

    path,top1,top1_p,top2,top2_p,top3,top3_p

the three most probable classes and their probabilities (4 decimals). When the bundle carries an
out-of-distribution detector (:mod:`helpers.calibration`, saved with
``helpers.models.save_bundle(..., ood=...)``), two columns follow::

    path,top1,top1_p,top2,top2_p,top3,top3_p,ood_score,status

``ood_score`` (4 decimals) is the detector's score, higher meaning less like the training data
(``1 - max p`` for ``"max_probability"``, the Mahalanobis distance to the nearest class mean for
``"mahalanobis"``), and ``status`` is ``ok`` or ``unlike any class`` (the score is above the
threshold chosen on validation). When the bundle carries a temperature
(``save_bundle(..., calibration={"temperature": T, ...})``) the printed probabilities are the
calibrated ones, ``softmax(log(p) / T)``; without one they are the model's, exactly as before.

A clip of any length is cut into windows and the window probabilities are averaged, exactly as
in the evaluation. Unreadable files are reported on stderr (file name and problem) and counted,
the exit status is then 1, and every other file is still predicted. A file stored at a lower
sample rate than the model reads is predicted, with a note on stderr (:func:`low_rate_note`).

**Speed.** Reading a file and computing its features happens file by file, but the model runs on
the windows of many files at once: up to ``batch_files`` files or ``batch_windows`` windows per
model call (:class:`Predictor`). Keras pays a fixed cost per ``predict`` call, so one call per
file was most of the time; ``batch_files=1`` keeps that old path measurable
(``benchmarks/bench_predict.py``). A TFLite model is resized to the batch
(:class:`helpers.tflite.TFLiteModel`), and falls back to one window per call when its batch size
is fixed.
The musicnn networks of the ``"transfer"`` kind (alone or in an ensemble) take the patches of a
whole batch of files at once: each distinct window of their timbral filters is computed once, in
calls of fixed shape, so that a file's result does not depend on the files beside it
(:class:`helpers.pretrained.FastMusicnn`); ``musicnn_engine="keras"`` keeps the path before (each
file's patches through the Keras models in calls of their own) measurable.

**Model kinds.** ``meta.json``'s ``"kind"`` (default ``"cnn"``) picks the class in
:data:`MODEL_KINDS` that turns a file into clip probabilities (and, for a distance-based detector,
clip feature vectors). A new kind (say ``"transfer"``: musicnn embeddings + a scikit-learn head)
needs one :class:`ClipModel` subclass and one entry there; batching, calibration, the detector
and the CSV are shared.
Used in: notebooks/05_tuning.ipynb, 06_pruning.ipynb and 10_shipping.ipynb (run the command in
a fresh process), notebooks/09_pretrained.ipynb (:class:`CNNClips`, :class:`Predictor`,
:func:`load_predictor`: the costs of prediction), notebooks/10_shipping.ipynb
(:func:`cnn_clip_outputs`, :func:`load_predictor`); helpers/cli.py (the command);
benchmarks/bench_predict.py; and by users.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from helpers.paths import models_dir
from helpers.tflite import TFLiteModel

DEFAULT_MODEL_NAME = "instrument_classifier"  # the model notebook 10 ships (make run), in models/
HEADER = ("path", "top1", "top1_p", "top2", "top2_p", "top3", "top3_p")
OOD_COLUMNS = ("ood_score", "status")
STATUS_OK = "ok"
STATUS_UNLIKE = "unlike any class"
# Windows of many files per model call. 256 files of up to 10 one-second windows, or 1,024
# windows of the log-mel CNN: its largest activation (the first conv layer) is then about
# 50 MB of float32, small next to the model call's fixed cost it saves.
DEFAULT_BATCH_FILES = 256
DEFAULT_BATCH_WINDOWS = 1024


# ----------------------------------------------------------------------------- model kinds


@dataclass(frozen=True)
class ClipOutputs:
    """What a :class:`ClipModel` gives for a batch of clips: ``probs`` ``(n, n_classes)`` and,
    when asked for, ``features`` ``(n, d)`` (the vectors a distance-based detector scores)."""

    probs: np.ndarray
    features: np.ndarray | None = None


class ClipModel:
    """One model kind: turns audio into clip probabilities (and clip feature vectors).

    A subclass sets ``classes``, ``sample_rate`` and ``max_seconds`` (how files are read), and
    implements :meth:`inputs_of_signal` (one clip's model input, e.g. its windows) and
    :meth:`predict` (many clips' inputs in one model call). :meth:`inputs_of_file` reads a file
    with :func:`helpers.audio.load_audio`; :meth:`size_of` (default 1) is what
    ``batch_windows`` counts. ``has_features`` says whether :meth:`predict` can return feature
    vectors. Register the class in :data:`MODEL_KINDS` under the bundle's ``"kind"``.
    """

    kind: str = ""
    classes: tuple[str, ...] = ()
    sample_rate: int = 22050
    max_seconds: float | None = None
    has_features: bool = False

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict, *, batch_windows: int = DEFAULT_BATCH_WINDOWS,
                    threads: int = 1, musicnn_engine: str = "fast") -> ClipModel:
        """Load the kind's model from a bundle folder whose ``meta.json`` is ``meta``
        (``musicnn_engine``: how a kind that uses musicnn runs it, see :class:`TransferClips`)."""
        raise NotImplementedError

    def inputs_of_signal(self, y: np.ndarray) -> Any:
        """The model input of one mono float32 signal at :attr:`sample_rate`."""
        raise NotImplementedError

    def inputs_of_file(self, path: Path) -> Any:
        """The model input of one audio file; raises :class:`helpers.audio.AudioError`."""
        from helpers.audio import load_audio

        return self.inputs_of_signal(load_audio(path, self.sample_rate, self.max_seconds))

    def size_of(self, inputs: Any) -> int:
        """How much of a batch one clip's input takes (windows for the CNN)."""
        return 1

    def predict(self, inputs: Sequence[Any], features: bool = False) -> ClipOutputs:
        """Clip probabilities (and feature vectors if ``features``) of several clips' inputs."""
        raise NotImplementedError


def penultimate_model(model):
    """A Keras model with two outputs: the probabilities and the input of the ``logits`` layer.

    The second output is the CNN's penultimate representation (after the last hidden dense
    layer and its dropout, which is the identity at inference), see the layer-name contract of
    :mod:`helpers.models`. Raises ``ValueError`` for a model without a ``logits`` layer.
    """
    import tf_keras as keras

    try:
        logits = model.get_layer("logits")
    except ValueError as exc:
        raise ValueError(f"model {model.name!r} has no 'logits' layer, so no penultimate "
                         "features (see the layer-name contract in helpers.models)") from exc
    return keras.Model(model.inputs, [model.output, logits.input], name=f"{model.name}_features")


def _clip_means(window_values: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Mean over each clip's consecutive rows ``(n_clips, ...)``; same dtype as the input."""
    bounds = np.cumsum([0, *lengths])
    return np.stack([window_values[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])


class CNNClips(ClipModel):
    """The ``"cnn"`` kind: standardised feature windows -> a Keras or TFLite CNN -> clip means.

    ``model`` is a ``tf_keras`` model or a :class:`TFLiteModel`. Clip probabilities are the mean
    of the windows' probabilities; clip feature vectors the mean of the windows' penultimate
    activations (:func:`penultimate_model`; Keras models only: a TFLite flatbuffer exports the
    probabilities only).
    """

    kind = "cnn"

    def __init__(self, model, classes: Sequence[str], feature_config, mean: np.ndarray,
                 std: np.ndarray, batch_windows: int = DEFAULT_BATCH_WINDOWS):
        self.model = model
        self.classes = tuple(classes)
        self.feature_config = feature_config
        self.mean = mean
        self.std = std
        self.sample_rate = feature_config.sample_rate
        self.max_seconds = feature_config.max_seconds
        self.batch_windows = max(1, int(batch_windows))
        self.has_features = not isinstance(model, TFLiteModel)
        self._feature_model = None

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict, *, batch_windows: int = DEFAULT_BATCH_WINDOWS,
                    threads: int = 1, musicnn_engine: str = "fast") -> CNNClips:
        from helpers.models import load_bundle

        bundle = load_bundle(folder)
        return cls(bundle.model, bundle.classes, bundle.feature_config, bundle.mean, bundle.std,
                   batch_windows)

    def inputs_of_signal(self, y: np.ndarray) -> np.ndarray:
        """Standardised windows ``(n_windows, bins, frames, 1)`` of a signal."""
        from helpers.features import clip_windows, standardize

        return standardize(clip_windows(y, self.feature_config), self.mean, self.std)

    def inputs_of_file(self, path: Path) -> np.ndarray:
        from helpers.features import file_windows, standardize

        return standardize(file_windows(path, self.feature_config), self.mean, self.std)

    def size_of(self, inputs: np.ndarray) -> int:
        return len(inputs)

    def window_outputs(self, X: np.ndarray, features: bool = False
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """Window probabilities ``(n, n_classes)`` (and penultimate activations ``(n, d)``) in
        one model call of up to ``batch_windows`` windows per batch."""
        if not features:
            return np.asarray(self.model.predict(X, batch_size=self.batch_windows, verbose=0)), None
        if not self.has_features:
            raise ValueError(f"{getattr(self.model, 'path', 'this model')}: a TFLite model "
                             "gives no penultimate features; use the Keras bundle")
        if self._feature_model is None:
            self._feature_model = penultimate_model(self.model)
        probs, feats = self._feature_model.predict(X, batch_size=self.batch_windows, verbose=0)
        return np.asarray(probs), np.asarray(feats)

    def predict(self, inputs: Sequence[np.ndarray], features: bool = False) -> ClipOutputs:
        lengths = [len(x) for x in inputs]
        X = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        probs, feats = self.window_outputs(X, features)
        return ClipOutputs(_clip_means(probs, lengths),
                           None if feats is None else _clip_means(feats, lengths))


class TransferClips(ClipModel):
    """The ``"transfer"`` kind: musicnn embeddings of 3-s patches -> a small head (numpy).

    The pretrained networks come from the ``musicnn`` wheel (:mod:`helpers.pretrained`); the
    head's weights from the bundle's ``head.npz`` (:func:`helpers.transfer.head_arrays`). Clip
    feature vectors are the head's standardised inputs.

    ``engine`` (:data:`helpers.pretrained.MUSICNN_ENGINES`): ``"fast"`` (default) embeds the
    patches of all the clips of a batch together with :class:`helpers.pretrained.FastMusicnn`;
    ``"keras"`` runs the Keras models on each clip's patches in calls of their own, the path
    before (kept to measure it, ``benchmarks/bench_predict.py``). Either way a file's result does
    not depend on the files beside it; the two agree up to float rounding.
    """

    kind = "transfer"
    has_features = True

    def __init__(self, recipe, arrays: dict, classes: Sequence[str], batch_patches: int = 16,
                 engine: str = "fast"):
        from helpers.pretrained import MUSICNN_ENGINES, SAMPLE_RATE

        if engine not in MUSICNN_ENGINES:
            raise ValueError(f"unknown musicnn engine {engine!r}; choose one of {MUSICNN_ENGINES}")
        self.recipe = recipe
        self.arrays = arrays
        self.classes = tuple(classes)
        self.sample_rate = SAMPLE_RATE
        self.max_seconds = recipe.embedding.max_seconds
        self.batch_patches = batch_patches
        self.engine = engine

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict, *, batch_windows: int = DEFAULT_BATCH_WINDOWS,
                    threads: int = 1, musicnn_engine: str = "fast") -> TransferClips:
        from helpers.transfer import HEAD_FILE, TransferRecipe

        head = Path(folder) / meta.get("head_file", HEAD_FILE)
        if not head.is_file():
            raise FileNotFoundError(f"model bundle {folder} is incomplete: missing {head.name}")
        with np.load(head, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(TransferRecipe.from_dict(meta["recipe"]), arrays, meta["classes"],
                   engine=musicnn_engine)

    def inputs_of_signal(self, y: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The clip's musicnn patches ``(n_patches, 187, 96)``; when the embedding uses aiSFX,
        the pair (musicnn patches, aiSFX patches ``(n, 100, 96)``), the latter from ``y``
        resampled to 44.1 kHz (a file is read at 44.1 kHz directly: :meth:`inputs_of_file`)."""
        from helpers.pretrained import musicnn_frontend, musicnn_patches

        patches = musicnn_patches(musicnn_frontend(y, self.sample_rate))
        if not self.recipe.embedding.uses_aisfx:
            return patches
        from helpers.pretrained_aisfx import aisfx_frontend, aisfx_patches

        return patches, aisfx_patches(aisfx_frontend(y, self.sample_rate))

    def inputs_of_file(self, path: Path):
        """As :meth:`inputs_of_signal`, reading the file at 16 kHz for musicnn and, when the
        embedding uses aiSFX, again at its 44.1 kHz (as :func:`helpers.pretrained.clip_embeddings`
        does, so the shipped model sees what it was trained on)."""
        from helpers.audio import load_audio

        y = load_audio(path, self.sample_rate, self.max_seconds)
        if not self.recipe.embedding.uses_aisfx:
            return self.inputs_of_signal(y)
        from helpers.pretrained import musicnn_frontend, musicnn_patches
        from helpers.pretrained_aisfx import SAMPLE_RATE, aisfx_frontend, aisfx_patches

        y44 = load_audio(path, SAMPLE_RATE, self.max_seconds)
        return (musicnn_patches(musicnn_frontend(y, self.sample_rate)),
                aisfx_patches(aisfx_frontend(y44, SAMPLE_RATE)))

    def size_of(self, inputs) -> int:
        return len(inputs[0] if isinstance(inputs, tuple) else inputs)

    def predict(self, inputs: Sequence[np.ndarray], features: bool = False) -> ClipOutputs:
        """The ``"fast"`` engine embeds all the clips at once, in calls of fixed shape, so a
        file's result does not depend on the files beside it. The Keras models would change a
        patch's embedding in its last float digits with its place in a batch (oneDNN), so the
        ``"keras"`` engine gives each clip's patches calls of their own."""
        from helpers.pretrained import embed_patches
        from helpers.transfer import head_inputs, head_probabilities

        embedding = self.recipe.embedding
        inputs = list(inputs)
        musicnn = [x[0] if isinstance(x, tuple) else x for x in inputs]
        aisfx = [x[1] for x in inputs] if embedding.uses_aisfx else None
        if self.engine == "fast":
            X = embed_patches(musicnn, embedding, engine="fast", aisfx_patches=aisfx)
        else:
            X = np.concatenate([embed_patches([m], embedding, self.batch_patches,
                                              aisfx_patches=None if aisfx is None else [a])
                                for m, a in zip(musicnn, aisfx or [None] * len(musicnn))])
        X = X[:, self.recipe.columns()]
        return ClipOutputs(head_probabilities(self.arrays, X),
                           head_inputs(self.arrays, X) if features else None)


class EnsembleClips(ClipModel):
    """The ``"ensemble"`` kind: member models (sub-bundles) whose probabilities are averaged
    with the bundle's weights; feature vectors come from the member ``features_from`` names."""

    kind = "ensemble"

    def __init__(self, members: Sequence[tuple[str, ClipModel, float]], classes: Sequence[str],
                 features_from: str | None = None):
        self.members = list(members)
        self.classes = tuple(classes)
        for name, member, _ in self.members:
            if tuple(member.classes) != self.classes:
                raise ValueError(f"ensemble member {name!r} has other classes than the ensemble")
        self.features_from = features_from
        self.has_features = features_from is not None and dict(
            (n, m) for n, m, _ in self.members)[features_from].has_features
        self.sample_rate = self.members[0][1].sample_rate
        self.max_seconds = self.members[0][1].max_seconds

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict, *, batch_windows: int = DEFAULT_BATCH_WINDOWS,
                    threads: int = 1, musicnn_engine: str = "fast") -> EnsembleClips:
        from helpers.models import read_meta

        members = []
        for entry in meta["members"]:
            sub = Path(folder) / entry["folder"]
            sub_meta = read_meta(sub)
            kind = sub_meta.get("kind", "cnn")
            if kind not in MODEL_KINDS or kind == "ensemble":
                raise ValueError(f"{sub}: member kind {kind!r} cannot be part of an ensemble")
            members.append((entry["folder"], MODEL_KINDS[kind].from_bundle(
                sub, sub_meta, batch_windows=batch_windows, threads=threads,
                musicnn_engine=musicnn_engine), float(entry["weight"])))
        return cls(members, meta["classes"], meta.get("features_from"))

    def inputs_of_file(self, path: Path) -> tuple:
        return tuple(member.inputs_of_file(path) for _, member, _ in self.members)

    def inputs_of_signal(self, y: np.ndarray) -> tuple:
        from helpers.audio import resample

        return tuple(member.inputs_of_signal(resample(y, self.sample_rate, member.sample_rate))
                     for _, member, _ in self.members)

    def size_of(self, inputs: tuple) -> int:
        return max(member.size_of(x) for (_, member, _), x in zip(self.members, inputs))

    def predict(self, inputs: Sequence[tuple], features: bool = False) -> ClipOutputs:
        probs, feats = 0.0, None
        for k, (name, member, weight) in enumerate(self.members):
            want = features and name == self.features_from
            out = member.predict([x[k] for x in inputs], features=want)
            probs = probs + weight * out.probs
            feats = out.features if want else feats
        return ClipOutputs(np.asarray(probs), feats)


# "kind" in meta.json -> the ClipModel that loads and runs it. A new kind adds one entry.
MODEL_KINDS: dict[str, type[ClipModel]] = {"cnn": CNNClips, "transfer": TransferClips,
                                           "ensemble": EnsembleClips}


def cnn_clip_outputs(model, X: np.ndarray, clip_ids: Sequence[str],
                     batch_windows: int = DEFAULT_BATCH_WINDOWS
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ids, clip probabilities ``(n_clips, n_classes)`` and clip feature vectors
    ``(n_clips, d)`` of a Keras CNN on standardised windows ``X`` with their ``clip_ids``.

    What ``predict`` computes for a file, for a whole split at once (clips in order of first
    appearance, like :func:`helpers.evaluation.aggregate_clips`): fit a temperature on the
    validation clips' probabilities, a Mahalanobis detector on the training clips' features.
    """
    from helpers.evaluation import aggregate_clips

    probs, feats = penultimate_model(model).predict(np.asarray(X, np.float32),
                                                    batch_size=batch_windows, verbose=0)
    ids, clip_probs = aggregate_clips(probs, clip_ids)
    _, clip_feats = aggregate_clips(feats, clip_ids)
    return ids, clip_probs, clip_feats


# ----------------------------------------------------------------------------- predictor


@dataclass(frozen=True)
class FileResult:
    """One file's prediction: ``probs`` ``(n_classes,)`` and ``ood_score`` (None without a
    detector), or the :class:`helpers.audio.AudioError` that stopped it."""

    path: Path
    probs: np.ndarray | None = None
    ood_score: float | None = None
    accepted: bool | None = None
    error: Exception | None = None

    @property
    def status(self) -> str | None:
        """``"ok"``, ``"unlike any class"``, or None without a detector (or on error)."""
        if self.accepted is None:
            return None
        return STATUS_OK if self.accepted else STATUS_UNLIKE


@dataclass(frozen=True)
class Predictor:
    """A loaded model kind, its optional temperature and OOD detector, and how to batch.

    ``batch_files`` / ``batch_windows``: the windows of up to that many files, or until that
    many windows are gathered, go through the model in one call (``batch_files=1``: one call
    per file, as before batching).
    """

    clip_model: ClipModel
    temperature: float | None = None
    ood: Any = None  # helpers.calibration.OODDetector
    batch_files: int = DEFAULT_BATCH_FILES
    batch_windows: int = DEFAULT_BATCH_WINDOWS

    def __post_init__(self) -> None:
        if self.batch_files < 1 or self.batch_windows < 1:
            raise ValueError(f"batch_files and batch_windows must be >= 1, got "
                             f"{self.batch_files}, {self.batch_windows}")
        if self.ood is not None:
            if self.ood.threshold is None:
                raise ValueError("the OOD detector has no threshold")
            if self.ood.needs == "features" and not self.clip_model.has_features:
                raise ValueError(f"the OOD method {self.ood.method!r} scores feature vectors, "
                                 f"which this {self.clip_model.kind!r} model does not give "
                                 "(a TFLite model exports probabilities only)")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.clip_model.classes

    @property
    def feature_config(self):
        """The CNN's feature configuration (None for kinds without one)."""
        return getattr(self.clip_model, "feature_config", None)

    @property
    def model(self):
        """The underlying model (Keras, :class:`TFLiteModel`, ...)."""
        return getattr(self.clip_model, "model", None)

    @property
    def header(self) -> tuple[str, ...]:
        """The CSV header: :data:`HEADER`, plus :data:`OOD_COLUMNS` with a detector."""
        return HEADER + OOD_COLUMNS if self.ood is not None else HEADER

    def outputs(self, inputs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Printed probabilities ``(n, n_classes)`` (calibrated when there is a temperature) and
        OOD scores ``(n,)`` (None without a detector) of several clips' inputs, one model call."""
        need_features = self.ood is not None and self.ood.needs == "features"
        out = self.clip_model.predict(inputs, features=need_features)
        probs = out.probs
        if self.temperature is not None:
            from helpers.calibration import apply_temperature

            probs = apply_temperature(probs, self.temperature)
        scores = None
        if self.ood is not None:
            scores = self.ood.score(out.features if need_features else probs)
        return probs, scores

    def _results(self, batch: list[tuple[Path, Any, Exception | None]]) -> list[FileResult]:
        good = [inputs for _, inputs, error in batch if error is None]
        probs, scores = self.outputs(good) if good else (None, None)
        results, i = [], 0
        for path, _, error in batch:
            if error is not None:
                results.append(FileResult(path, error=error))
                continue
            score = None if scores is None else float(scores[i])
            accepted = None if score is None else bool(self.ood.accepts_scores(score))
            results.append(FileResult(path, probs[i], score, accepted))
            i += 1
        return results

    def iter_files(self, files: Iterable[Path]) -> Iterator[FileResult]:
        """One :class:`FileResult` per file, in order; files are read one by one and predicted
        in batches. Unreadable files (:class:`helpers.audio.AudioError`) give a result with
        ``error`` set; other exceptions propagate."""
        from helpers.audio import AudioError

        batch: list[tuple[Path, Any, Exception | None]] = []
        n_files = n_units = 0
        for path in files:
            try:
                inputs = self.clip_model.inputs_of_file(path)
            except AudioError as exc:
                batch.append((path, None, exc))
                continue
            batch.append((path, inputs, None))
            n_files += 1
            n_units += self.clip_model.size_of(inputs)
            if n_files >= self.batch_files or n_units >= self.batch_windows:
                yield from self._results(batch)
                batch, n_files, n_units = [], 0, 0
        if batch:
            yield from self._results(batch)

    def predict_file(self, path: Path) -> np.ndarray:
        """Clip probabilities ``(n_classes,)`` of an audio file (windows averaged; calibrated
        when the bundle has a temperature). Raises :class:`helpers.audio.AudioError`."""
        result = next(self.iter_files([Path(path)]))
        if result.error is not None:
            raise result.error
        return result.probs

    def predict_signals(self, signals: Sequence[np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities ``(n, n_classes)`` and OOD scores ``(n,)`` (or None) of mono signals at
        the model's sample rate (``clip_model.sample_rate``), e.g. from
        :func:`helpers.calibration.synthetic_unlike`. One model call."""
        return self.outputs([self.clip_model.inputs_of_signal(np.asarray(y, np.float32))
                             for y in signals])

    def row(self, result: FileResult) -> list[str]:
        """The CSV row of one predicted file (see the module docstring)."""
        row = [str(result.path), *top_k(result.probs, self.classes)]
        if self.ood is not None:
            row += [f"{result.ood_score:.4f}", result.status]
        return row


def load_predictor(model: Path | None = None, *, batch_files: int = DEFAULT_BATCH_FILES,
                   batch_windows: int = DEFAULT_BATCH_WINDOWS, threads: int = 1,
                   musicnn_engine: str = "fast") -> Predictor:
    """Load a model bundle folder or a ``.tflite`` file inside a bundle folder.

    ``None`` loads ``models/instrument_classifier``, the model notebook 10 ships. The folder's
    ``meta.json`` names the model kind (:data:`MODEL_KINDS`, default ``"cnn"``) and may carry a
    temperature and an OOD detector (:func:`helpers.models.read_calibration`). ``threads``:
    TFLite interpreter threads. ``batch_files``/``batch_windows``: see :class:`Predictor`
    (for a TFLite model ``batch_windows`` is also the most windows per interpreter call).
    ``musicnn_engine``: ``"fast"`` or ``"keras"`` (the path before), for bundles that embed
    audio with musicnn (:class:`TransferClips`); CNN bundles do not use it.
    """
    from helpers.features import FeatureConfig
    from helpers.models import (
        DEFAULT_KIND,
        META_FILE,
        NORMALIZER_FILE,
        read_calibration,
        read_meta,
    )
    from helpers.pretrained import MUSICNN_ENGINES

    if musicnn_engine not in MUSICNN_ENGINES:
        raise ValueError(f"unknown musicnn engine {musicnn_engine!r}; choose one of "
                         f"{MUSICNN_ENGINES}")
    path = Path(model) if model is not None else models_dir() / DEFAULT_MODEL_NAME
    if not path.exists():
        hint = (" (run `make run` first to train it; models/instrument_cnn is the project's CNN "
                "from notebook 05)") if model is None else ""
        raise FileNotFoundError(f"model not found: {path}{hint}")
    folder = path.parent if path.suffix == ".tflite" else path
    if path.is_dir() and (folder / META_FILE).is_file():
        named = read_meta(folder).get("model_file", "")
        if named.endswith(".tflite"):  # a TFLite bundle folder: the model file its meta names
            path = folder / named
    if path.suffix == ".tflite":
        for needed in (META_FILE, NORMALIZER_FILE):
            if not (folder / needed).is_file():
                raise FileNotFoundError(f"{path}: needs {needed} beside it (a model bundle "
                                        "folder)")
    # a folder without meta.json is left to the kind's loader, which names every missing file
    meta = read_meta(folder) if (folder / META_FILE).is_file() else {}
    kind = meta.get("kind", DEFAULT_KIND)
    if path.suffix == ".tflite":
        if kind != "cnn":
            raise ValueError(f"{path}: a .tflite file belongs to a 'cnn' bundle, meta.json "
                             f"says {kind!r}")
        with np.load(folder / NORMALIZER_FILE) as npz:
            mean, std = npz["mean"], npz["std"]
        config = FeatureConfig(**meta["feature_config"])
        clip_model: ClipModel = CNNClips(TFLiteModel(path, threads, max_batch=batch_windows),
                                         meta["classes"], config, mean, std, batch_windows)
    else:
        if kind not in MODEL_KINDS:
            raise ValueError(f"{path}: unknown model kind {kind!r} in {META_FILE}; this version "
                             f"reads {sorted(MODEL_KINDS)}")
        clip_model = MODEL_KINDS[kind].from_bundle(path, meta, batch_windows=batch_windows,
                                                   threads=threads, musicnn_engine=musicnn_engine)
    calibration, ood = read_calibration(folder, meta)
    temperature = None if calibration is None else float(calibration["temperature"])
    return Predictor(clip_model, temperature, ood, batch_files, batch_windows)


def top_k(probs: np.ndarray, classes, k: int = 3) -> list:
    """``[class1, p1, class2, p2, ...]`` for the ``k`` most probable classes."""
    order = np.argsort(-probs, kind="stable")[:k]
    row: list = []
    for i in order:
        row += [classes[i], f"{probs[i]:.4f}"]
    return row


def low_rate_note(path: Path, model_rate: int) -> str | None:
    """A note for a file stored at a lower sample rate than the model reads (a phone call at
    8 kHz, say): it holds nothing above half its rate, where the model learned from content up
    to half of ``model_rate``. None when the rate is the model's or higher."""
    from helpers.audio import file_sample_rate

    rate = file_sample_rate(path)
    if rate is None or rate >= model_rate:
        return None
    return (f"{path}: note: recorded at {rate:,} Hz, so it holds nothing above {rate / 2:,.0f} Hz; "
            f"the model reads {model_rate:,} Hz audio (up to {model_rate / 2:,.0f} Hz), so its "
            "prediction may be less reliable")


def predict_paths(paths: list[str | Path], model: Path | None = None,
                  out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                  batch_files: int = DEFAULT_BATCH_FILES,
                  batch_windows: int = DEFAULT_BATCH_WINDOWS) -> int:
    """Predict every audio file under ``paths``; returns the exit status (1 if any file failed).

    ``batch_files``/``batch_windows``: see :class:`Predictor` (the CSV does not depend on them).
    """
    from helpers.audio import find_audio_files, unread_audio_files
    from helpers.progress import progress, progress_mode

    progress_mode(err)  # a bad HELPERS_PROGRESS stops here, before the model loads
    files = find_audio_files(paths)
    failed = 0
    for p in map(Path, paths):
        if not p.exists():
            print(f"{p}: no such file or folder", file=err)
            failed += 1
        elif p.is_dir():
            unread = unread_audio_files(p)
            skipped = (f"skipped {sum(unread.values())} file(s) of formats this tool does not read "
                       f"({', '.join(f'{n} {s}' for s, n in unread.items())}): convert them to "
                       "WAV, FLAC or OGG") if unread else ""
            if not find_audio_files([p]):
                print(f"{p}: no audio files (WAV, FLAC or OGG) in this folder"
                      + (f"; {skipped}" if skipped else ""), file=err)
                failed += 1
            elif skipped:
                print(f"{p}: {skipped}", file=err)
    files = [f for f in files if f.exists()]
    if not files:
        print(f"no audio files found (WAV, FLAC or OGG) in {', '.join(map(str, paths))}", file=err)
        return 1
    predictor = load_predictor(model, batch_files=batch_files, batch_windows=batch_windows)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(predictor.header)
    bar = progress(files, desc="predict (reading)", unit="file", disable=len(files) < 20, file=err)
    for result in predictor.iter_files(bar):
        if result.error is not None:
            bar.write(f"{result.error.path}: {result.error.problem}", file=err)  # above the bar
            failed += 1
            continue
        writer.writerow(predictor.row(result))
        note = low_rate_note(result.path, predictor.clip_model.sample_rate)
        if note:
            bar.write(note, file=err)
    if failed:
        print(f"{failed} file(s) could not be predicted", file=err)
    return 1 if failed else 0
