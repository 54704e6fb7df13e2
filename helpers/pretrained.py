"""The pretrained musicnn networks, ported to ``tf_keras``, and the clip embeddings they give.

musicnn (Jordi Pons and Xavier Serra, "musicnn: pre-trained convolutional neural networks for
music audio tagging", ISMIR 2019 late-breaking demo; PyPI package ``musicnn`` 0.1.0, ISC licence)
ships four tagging networks trained on 3-second log-mel patches, with their TF1 checkpoints:

* ``MTT_musicnn``, ``MSD_musicnn``: a musically motivated front end (timbral filters spanning
  frequency, temporal filters spanning time), a dense mid end and a pooling back end; trained on
  MagnaTagATune (MTT) and the Million Song Dataset (MSD), 50 tags each.
* ``MTT_vgg``, ``MSD_vgg``: a 5-layer VGG-style CNN of 3x3 filters, same data and tags.

This module rebuilds those graphs layer by layer with ``tf_keras`` (Keras 2, like the rest of the
project) and copies the checkpoint weights into them, so the networks run in the notebook's own
TensorFlow 2 process: musicnn's code needs TF1 graph mode (its ``extractor`` module disables
eager execution for the whole process at import, so it is never imported here). ``tests/test_pretrained.py`` checks
the port against musicnn's TF1 graph on the same inputs.

A clip's **embedding** pools per-patch outputs of one or more networks over the clip's patches
(:class:`EmbeddingConfig`); :func:`clip_embeddings` computes them for a clip table through the
project's one cache. :class:`FastMusicnn` computes the same per-patch vectors, up to float
rounding, for the patches of many clips at once and about twice as fast
(``benchmarks/bench_predict.py``): each distinct window of the timbral filters once, in
TensorFlow calls of fixed shape, so that a clip's values do not depend on the clips beside it
(``predict`` uses it: :func:`embed_patches` with ``engine="fast"``). TensorFlow and librosa
are imported inside the functions, so importing this module stays cheap. Used in:
notebooks/09_pretrained.ipynb, notebooks/10_shipping.ipynb (:func:`clip_embeddings`);
helpers/transfer.py (:class:`EmbeddingConfig`, :class:`ClipEmbeddings`), helpers/predict.py
(the ``"transfer"`` model kind: :func:`embed_patches`, :data:`MUSICNN_ENGINES`).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.audio import AudioError, load_audio, resample

MUSICNN_MODELS: tuple[str, ...] = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
INSTALL_HINT = 'pip install --no-deps "musicnn>=0.1,<0.2"'  # --no-deps: its wheel pins numpy<1.17

# The tags of each training set, in the order of the networks' 50 outputs.
# Copied from musicnn/configuration.py (MTT_LABELS, MSD_LABELS), musicnn 0.1.0, ISC licence.
MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)

# musicnn's front end (musicnn/configuration.py) and input length.
SAMPLE_RATE = 16000  # Hz
N_FFT = 512  # samples (32 ms)
HOP_LENGTH = 256  # samples (16 ms)
N_MELS = 96
# 3 s of frames, as musicnn computes it:
# librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1 = 187
PATCH_FRAMES = 187

# What each architecture exposes: per-patch vectors (pooled into clip embeddings) and the rest.
MUSICNN_OUTPUTS: tuple[str, ...] = ("taggram", "timbral", "temporal", "cnn1", "cnn2", "cnn3",
                                    "mean_pool", "max_pool", "penultimate")
VGG_OUTPUTS: tuple[str, ...] = ("taggram", "pool1", "pool2", "pool3", "pool4", "pool5")
VECTOR_WIDTHS: dict[str, dict[str, int]] = {
    "musicnn": {"mean_pool": 753, "max_pool": 753, "penultimate": 200, "taggram": 50},
    "vgg": {"taggram": 50},
    "aisfx": {"embedding": 512},  # helpers.pretrained_aisfx's 512-wide patch embedding
}
AISFX = "aisfx"  # the sound-effects network of helpers.pretrained_aisfx, as a model name here
AISFX_CALL = 16  # aiSFX patches per TensorFlow call, always (the last call padded with silence)

EMBEDDINGS_VERSION = 2  # bump when the extraction code changes what it writes (2: the fast engine)


# --- where the checkpoints are ----------------------------------------------------------------

def _check_name(name: str) -> str:
    if name not in MUSICNN_MODELS:
        raise ValueError(f"unknown musicnn model {name!r}; choose one of {', '.join(MUSICNN_MODELS)}")
    return name


def architecture(name: str) -> str:
    """``"musicnn"``, ``"vgg"`` or ``"aisfx"``: the network family of model ``name`` (one of
    :data:`MUSICNN_MODELS`, or :data:`AISFX`)."""
    if name == AISFX:
        return "aisfx"
    return "vgg" if _check_name(name).endswith("_vgg") else "musicnn"


def tags_of(name: str) -> tuple[str, ...]:
    """The 50 tags model ``name`` predicts, in output order (MTT or MSD tags)."""
    return MTT_TAGS if _check_name(name).startswith("MTT") else MSD_TAGS


def outputs_of(name: str) -> tuple[str, ...]:
    """The named outputs of the ported model ``name`` (see :func:`build_musicnn`)."""
    return MUSICNN_OUTPUTS if architecture(name) == "musicnn" else VGG_OUTPUTS


def musicnn_dir() -> Path:
    """Folder of the installed ``musicnn`` package, found without importing it.

    Raises ModuleNotFoundError with the install command when the package is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the pretrained musicnn networks need the 'musicnn' package, which is not installed: "
            f"run `{INSTALL_HINT}` (or `make setup`). Always with --no-deps: its wheel pins "
            "numpy<1.17, and only its checkpoints are used.", name="musicnn")
    return Path(next(iter(spec.submodule_search_locations)))


def checkpoint_dir(name: str) -> Path:
    """The checkpoint folder of model ``name`` inside the musicnn package."""
    return musicnn_dir() / _check_name(name)


def read_checkpoint(folder: str | Path) -> dict[str, np.ndarray]:
    """The trained variables of a musicnn TF1 checkpoint folder, ``{"conv2d/kernel": array}``.

    musicnn saves each checkpoint with an empty file name (``<folder>/.index``,
    ``.data-00000-of-00001``), so it is read by the prefix ``"<folder>/"`` (its ``checkpoint``
    file points at the author's disk and is not used). Adam's slots and
    ``beta1_power``/``beta2_power`` (optimizer state) are left out.
    Raises FileNotFoundError or ValueError naming the folder.
    """
    import tensorflow as tf

    folder = Path(folder)
    if not (folder / ".index").is_file():
        raise FileNotFoundError(
            f"{folder}: no musicnn checkpoint here (expected the files '.index' and "
            f"'.data-00000-of-00001'); reinstall the package with `{INSTALL_HINT}`")
    try:
        reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    except Exception as exc:  # DataLossError, NotFoundError, ... from the C++ reader
        raise ValueError(f"{folder}: cannot read the musicnn checkpoint ({exc})") from exc
    return {k: reader.get_tensor(k) for k in sorted(reader.get_variable_to_shape_map())
            if not _is_optimizer_state(k)}


def _is_optimizer_state(variable: str) -> bool:
    return "/Adam" in variable or variable in ("beta1_power", "beta2_power")


# --- front end --------------------------------------------------------------------------------

def musicnn_frontend(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """musicnn's input representation of a mono signal: (frames, 96) float32, time x mel band.

    As musicnn computes it: resample to 16 kHz, power mel spectrogram (``n_fft`` 512, hop 256,
    96 bands, librosa's defaults otherwise), transposed to time x frequency and cast to float16
    (the networks' training data was stored in float16), then ``log10(10000 x + 1)``.

    One deliberate deviation: musicnn multiplies the float16 array by 10000 in float16, which
    overflows to ``inf`` for loud clips (mel power above 6.55, common in full-scale audio);
    here the product and the log are computed in float32 after the float16 cast. Where
    musicnn's values are finite, the two agree to float16 precision.
    """
    import librosa

    y16 = resample(np.asarray(y, dtype=np.float32), sample_rate, SAMPLE_RATE)
    if len(y16) < N_FFT:  # a clip shorter than one frame (32 ms): zero-padded to one frame
        y16 = np.pad(y16, (0, N_FFT - len(y16)))
    # librosa.feature.melspectrogram(y=y16, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT,
    # n_mels=N_MELS), the same operations, with its mel filter bank built once per process
    power = np.abs(librosa.stft(y16, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2
    mel = np.einsum("...ft,mf->...mt", power, _mel_basis(), optimize=True).T
    # the float16 rounding of the training data; clipped so that the cast itself stays finite
    mel16 = np.minimum(mel, np.finfo(np.float16).max).astype(np.float16)
    return np.log10(10000 * mel16.astype(np.float32) + 1).astype(np.float32)


@functools.cache
def _mel_basis() -> np.ndarray:
    """musicnn's mel filter bank (librosa's, as ``melspectrogram`` builds it on every call)."""
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)
    basis.setflags(write=False)
    return basis


def patch_starts(n_frames: int) -> list[int]:
    """First frame of each 187-frame patch of a (frames, 96) representation.

    Non-overlapping patches; when a tail remains, one last patch ends at the last frame.
    """
    from helpers.features import window_starts

    return window_starts(n_frames, PATCH_FRAMES, PATCH_FRAMES)


def musicnn_patches(rep: np.ndarray) -> np.ndarray:
    """Cut a (frames, 96) representation into the networks' inputs (n_patches, 187, 96).

    A clip shorter than one patch is repeated (tiled) to 187 frames, as musicnn's training did
    ("pad_short": "repeat-pad"); longer clips give the patches of :func:`patch_starts`.
    """
    rep = np.asarray(rep, dtype=np.float32)
    if rep.ndim != 2 or rep.shape[1] != N_MELS or rep.shape[0] == 0:
        raise ValueError(f"expected a (frames, {N_MELS}) representation, got shape {rep.shape}")
    if rep.shape[0] < PATCH_FRAMES:
        reps = -(-PATCH_FRAMES // rep.shape[0])  # ceil
        return np.tile(rep, (reps, 1))[np.newaxis, :PATCH_FRAMES]
    return np.stack([rep[s:s + PATCH_FRAMES] for s in patch_starts(rep.shape[0])])


# --- the networks -----------------------------------------------------------------------------

# The weighted tf_keras layers in the order musicnn.models creates its variables. TF1 numbers
# auto-named layers in creation order (conv2d, conv2d_1, ...; batch_normalization, ...), and
# the VGG's convolutions are named 1CNN..5CNN: that order maps checkpoint onto port.
_CREATION_ORDER: dict[str, tuple[str, ...]] = {
    "musicnn": (
        "input_bn",
        "timbral_74_conv", "timbral_74_bn", "timbral_77_conv", "timbral_77_bn",
        "temporal_128_conv", "temporal_128_bn", "temporal_64_conv", "temporal_64_bn",
        "temporal_32_conv", "temporal_32_bn",
        "midend1_conv", "midend1_bn", "midend2_conv", "midend2_bn", "midend3_conv", "midend3_bn",
        "pool_bn", "penultimate_dense", "penultimate_bn", "logits",
    ),
    "vgg": (
        "input_bn",
        "conv1", "conv1_bn", "conv2", "conv2_bn", "conv3", "conv3_bn", "conv4", "conv4_bn",
        "conv5", "conv5_bn", "logits",
    ),
}


def build_musicnn(name: str = "MTT_musicnn"):
    """The architecture of musicnn model ``name`` as a ``tf_keras`` model, untrained.

    Input ``(batch, frames, 96)`` from :func:`musicnn_frontend` (time x mel band); musicnn
    networks take any number of frames (trained on 187), VGG networks exactly 187. Outputs a
    dict (see :func:`outputs_of`): ``taggram`` (batch, 50) tag probabilities (sigmoid of the
    logits) and the layers musicnn's extractor exposes; for musicnn networks:

    * ``timbral`` (batch, frames, 408), ``temporal`` (batch, frames, 153): front-end maps;
    * ``cnn1``, ``cnn2``, ``cnn3`` (batch, frames, 64): the mid-end layers (musicnn's trailing
      axis of 1 is dropped);
    * ``mean_pool``, ``max_pool`` (batch, 753): mean and max over time of front end + mid end;
    * ``penultimate`` (batch, 200): the batch-normalised hidden dense layer.

    For VGG networks ``pool1`` .. ``pool5`` (batch, time, frequency, 128). Inference only: the
    model is frozen (batch norm uses its moving statistics) and dropout is left out. Use
    :func:`load_musicnn` for the trained model. Used in: :func:`load_musicnn` (so notebook 09,
    through it); tests/test_pretrained.py.
    """
    import tf_keras as keras

    n_tags = len(tags_of(name))
    if architecture(name) == "vgg":
        inputs, outputs = _vgg_graph(keras.layers, n_tags)
    else:
        inputs, outputs = _musicnn_graph(keras.layers, n_tags)
    model = keras.Model(inputs, outputs, name=name)
    model.trainable = False
    return model


def _musicnn_graph(L, n_tags: int):
    """musicnn.models.build_musicnn (front end '7774timbraltemporal', 64-filter mid end,
    200-unit back end) in tf_keras layers; tensors are (batch, time, frequency, channels)."""
    x = L.Input(shape=(None, N_MELS), name="logmel")
    image = L.Reshape((-1, N_MELS, 1), name="expand")(x)
    normalized = L.BatchNormalization(name="input_bn")(image)

    def block(inputs, kernel: tuple[int, int], filters: int, padding: str, name: str):
        """conv (ReLU) -> batch norm -> max over all frequency -> (batch, time, filters)."""
        h = L.Conv2D(filters, kernel, padding=padding, activation="relu", name=f"{name}_conv")(inputs)
        h = L.BatchNormalization(name=f"{name}_bn")(h)
        h = L.MaxPooling2D(pool_size=(1, h.shape[2]), name=f"{name}_pool")(h)
        return L.Reshape((-1, filters), name=f"{name}_squeeze")(h)

    # Front end. Timbral: 'valid' convolutions after padding time by 3 on each side, i.e.
    # 'same' in time; filters span 40% and 70% of the 96 bands (int(0.4*96), int(0.7*96)).
    # Temporal: 'same' convolutions along time only (128/64/32 frames x 1 band).
    time_padded = L.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(normalized)
    f74 = block(time_padded, (7, int(0.4 * N_MELS)), 204, "valid", "timbral_74")
    f77 = block(time_padded, (7, int(0.7 * N_MELS)), 204, "valid", "timbral_77")
    s1 = block(normalized, (128, 1), 51, "same", "temporal_128")
    s2 = block(normalized, (64, 1), 51, "same", "temporal_64")
    s3 = block(normalized, (32, 1), 51, "same", "temporal_32")
    frontend = L.Concatenate(axis=2, name="frontend")([f74, f77, s1, s2, s3])  # (b, t, 561)

    # Mid end: three 7-frame convolutions across all features (64 filters), each batch-normed
    # and transposed back to (b, t, 64, 1); the 2nd and 3rd add a residual connection.
    mid0 = L.Reshape((-1, frontend.shape[2], 1), name="midend0")(frontend)

    def mid_conv(inputs, index: int):
        h = L.ZeroPadding2D(((3, 3), (0, 0)), name=f"midend{index}_pad")(inputs)
        h = L.Conv2D(64, (7, h.shape[2]), padding="valid", activation="relu",
                     name=f"midend{index}_conv")(h)
        h = L.BatchNormalization(name=f"midend{index}_bn")(h)  # (b, t, 1, 64)
        return L.Permute((1, 3, 2), name=f"midend{index}_transpose")(h)  # (b, t, 64, 1)

    cnn1 = mid_conv(mid0, 1)
    cnn2 = L.Add(name="midend2_residual")([mid_conv(cnn1, 2), cnn1])
    cnn3 = L.Add(name="midend3_residual")([mid_conv(cnn2, 3), cnn2])
    features = L.Concatenate(axis=2, name="midend")([mid0, cnn1, cnn2, cnn3])  # (b, t, 753, 1)
    features = L.Reshape((-1, features.shape[2]), name="midend_squeeze")(features)

    max_pool = L.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = L.GlobalAveragePooling1D(name="mean_pool")(features)
    penultimate, taggram = _musicnn_backend(L, max_pool, mean_pool, n_tags)

    def squeeze(t, name):
        return L.Reshape((-1, 64), name=name)(t)

    return x, {
        "taggram": taggram,
        "timbral": L.Concatenate(axis=2, name="timbral")([f74, f77]),
        "temporal": L.Concatenate(axis=2, name="temporal")([s1, s2, s3]),
        "cnn1": squeeze(cnn1, "cnn1"), "cnn2": squeeze(cnn2, "cnn2"), "cnn3": squeeze(cnn3, "cnn3"),
        "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate,
    }


def _weighted(trained, name: str, make):
    """Layer ``name`` of the ``trained`` model (its weights shared) when one is given, else the
    new layer ``make()``: the same graph code builds the port and :class:`FastMusicnn`'s parts."""
    return trained.get_layer(name) if trained is not None else make()


def _musicnn_backend(L, max_pool, mean_pool, n_tags: int, trained=None):
    """Back end of :func:`_musicnn_graph` on the max and mean over time ``(b, 753)``: the two
    interleaved per feature as musicnn's flatten(concat([max, mean], axis=2)) does
    ([max_0, mean_0, max_1, mean_1, ...]), batch norm, the 200-unit hidden layer and its batch
    norm (``penultimate``), the logits and their sigmoid (``taggram``)."""
    width = max_pool.shape[-1]
    pair = L.Concatenate(axis=2, name="pool_pairs")([
        L.Reshape((width, 1), name="max_pool_column")(max_pool),
        L.Reshape((width, 1), name="mean_pool_column")(mean_pool)])
    h = L.Flatten(name="pool_flat")(pair)  # (b, 1506)
    h = _weighted(trained, "pool_bn", lambda: L.BatchNormalization(name="pool_bn"))(h)
    h = _weighted(trained, "penultimate_dense",
                  lambda: L.Dense(200, activation="relu", name="penultimate_dense"))(h)
    penultimate = _weighted(trained, "penultimate_bn",
                            lambda: L.BatchNormalization(name="penultimate_bn"))(h)
    logits = _weighted(trained, "logits", lambda: L.Dense(n_tags, name="logits"))(penultimate)
    return penultimate, L.Activation("sigmoid", name="taggram")(logits)


def _vgg_graph(L, n_tags: int):
    """musicnn.models.vgg (128 filters) in tf_keras layers; input exactly 187 frames."""
    x = L.Input(shape=(PATCH_FRAMES, N_MELS), name="logmel")
    h = L.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(x)
    h = L.BatchNormalization(name="input_bn")(h)
    pools = {}
    # (pool size, strides) after each conv, as in musicnn.models.vgg ('valid' pooling)
    for i, (size, strides) in enumerate([((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                                         ((2, 2), (2, 2)), ((4, 4), (4, 4))], start=1):
        h = L.Conv2D(128, (3, 3), padding="same", activation="relu", name=f"conv{i}")(h)
        h = L.BatchNormalization(name=f"conv{i}_bn")(h)
        h = pools[f"pool{i}"] = L.MaxPooling2D(size, strides, name=f"pool{i}")(h)
    logits = L.Dense(n_tags, name="logits")(L.Flatten(name="flat")(h))
    return x, {"taggram": L.Activation("sigmoid", name="taggram")(logits), **pools}


def _layer_kind(layer) -> str | None:
    kind = type(layer).__name__
    return {"Conv2D": "conv", "BatchNormalization": "bn", "Dense": "dense"}.get(kind)


def _scope_kind(variables: dict[str, np.ndarray], scope: str) -> str:
    if f"{scope}/moving_mean" in variables:
        return "bn"
    kernel = variables.get(f"{scope}/kernel")
    if kernel is None:
        return "unknown"
    return "conv" if kernel.ndim == 4 else "dense"


def _scope_order(scope: str) -> int:
    """Creation index of a TF1 layer scope: 'conv2d' 0, 'conv2d_5' 5, VGG's '3CNN' 3."""
    match = re.fullmatch(r"(\d+)\D.*", scope) or re.fullmatch(r".*?_(\d+)", scope)
    return int(match.group(1)) if match else 0


def assign_checkpoint(model, variables: dict[str, np.ndarray], name: str) -> None:
    """Copy checkpoint ``variables`` (from :func:`read_checkpoint`) into ``model`` in place.

    Layers are matched per kind (convolution, batch norm, dense) in creation order, and each
    weight by its role (kernel, bias, gamma, ...) and shape. Raises ValueError naming what is
    left over when a model weight stays unassigned or a checkpoint variable stays unused.
    """
    scopes = sorted({v.rsplit("/", 1)[0] for v in variables if "/" in v}, key=_scope_order)
    by_kind: dict[str, list[str]] = {}
    for scope in scopes:
        by_kind.setdefault(_scope_kind(variables, scope), []).append(scope)
    layers_by_kind: dict[str, list] = {}
    for layer_name in _CREATION_ORDER[architecture(name)]:
        layer = model.get_layer(layer_name)
        layers_by_kind.setdefault(_layer_kind(layer), []).append(layer)

    used, assigned, problems = set(), set(), []
    for kind, layers in layers_by_kind.items():
        ckpt = by_kind.get(kind, [])
        if len(ckpt) != len(layers):
            problems.append(f"{len(layers)} {kind} layers in the port but {len(ckpt)} in the "
                            f"checkpoint ({', '.join(ckpt)})")
        for layer, scope in zip(layers, ckpt):
            values = []
            for weight in layer.weights:
                role = weight.name.split("/")[-1].split(":")[0]  # kernel, bias, gamma, ...
                value = variables.get(f"{scope}/{role}")
                if value is None or tuple(value.shape) != tuple(weight.shape):
                    found = "missing" if value is None else f"shape {tuple(value.shape)}"
                    problems.append(f"{layer.name}/{role} {tuple(weight.shape)}: "
                                    f"{scope}/{role} {found}")
                    values.append(weight.numpy())
                    continue
                values.append(value)
                used.add(f"{scope}/{role}")
                assigned.add(weight.name)
            layer.set_weights(values)
    unassigned = [w.name for w in model.weights if w.name not in assigned]
    if unassigned:
        problems.append(f"model weights left unassigned: {', '.join(unassigned)}")
    unused = sorted(set(variables) - used)
    if unused:
        problems.append(f"checkpoint variables left unused: {', '.join(unused)}")
    if problems:
        raise ValueError(f"{name}: the checkpoint does not match the ported network: "
                         + "; ".join(problems))


def load_musicnn(name: str = "MTT_musicnn"):
    """The trained musicnn model ``name`` (see :func:`build_musicnn`), loaded once per process.

    Weights come from the checkpoint inside the installed musicnn package. Used in:
    notebooks/09_pretrained.ipynb.
    """
    return _load(_check_name(name))


@functools.cache  # keyed by the name alone, however load_musicnn was called
def _load(name: str):
    model = build_musicnn(name)
    assign_checkpoint(model, read_checkpoint(checkpoint_dir(name)), name)
    return model


@functools.cache
def _compiled(name: str, outputs: tuple[str, ...]):
    """A traced inference function of model ``name`` returning only ``outputs``."""
    import tensorflow as tf

    model = load_musicnn(name)
    frames = PATCH_FRAMES if architecture(name) == "vgg" else None

    @tf.function(input_signature=[tf.TensorSpec([None, frames, N_MELS], tf.float32)])
    def run(x):
        out = model(x, training=False)
        return {k: out[k] for k in outputs}

    return run


def musicnn_outputs(patches: np.ndarray, name: str = "MTT_musicnn",
                    outputs: Sequence[str] | None = None,
                    batch_size: int = 16) -> dict[str, np.ndarray]:
    """Run the trained model ``name`` on ``patches`` (n, frames, 96): ``{output: (n, ...)}``.

    ``outputs`` selects among :func:`outputs_of` (default: all); patches go through in batches
    of ``batch_size``. On a CPU larger batches are hardly faster, but the front-end activations
    of every patch in a batch are held at once, so memory grows with it
    (``benchmarks/bench_embeddings.py --batch N`` prints both).
    """
    outputs = tuple(outputs) if outputs is not None else outputs_of(name)
    unknown = sorted(set(outputs) - set(outputs_of(name)))
    if unknown:
        raise ValueError(f"{name} has no output(s) {unknown}; choose among {list(outputs_of(name))}")
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[2] != N_MELS or len(patches) == 0:
        raise ValueError(f"expected patches (n >= 1, frames, {N_MELS}), got shape {patches.shape}")
    if architecture(name) == "vgg" and patches.shape[1] != PATCH_FRAMES:
        raise ValueError(f"{name} takes patches of exactly {PATCH_FRAMES} frames, "
                         f"got {patches.shape[1]}")
    run = _compiled(name, outputs)
    parts = [run(patches[i:i + batch_size]) for i in range(0, len(patches), batch_size)]
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in outputs}


def taggram_for(y: np.ndarray, sample_rate: int, name: str = "MTT_musicnn") -> pd.DataFrame:
    """Tag probabilities of a clip over time: one row per 3-s patch, one column per tag.

    The index ``start_s`` is each patch's start in seconds. Used in: notebooks/09_pretrained.ipynb.
    """
    rep = musicnn_frontend(y, sample_rate)
    probs = musicnn_outputs(musicnn_patches(rep), name, outputs=("taggram",))["taggram"]
    starts = np.array(patch_starts(rep.shape[0])) * HOP_LENGTH / SAMPLE_RATE
    return pd.DataFrame(probs, columns=list(tags_of(name)),
                        index=pd.Index(starts, name="start_s"))


# --- many clips at once -----------------------------------------------------------------------

MUSICNN_ENGINES: tuple[str, ...] = ("keras", "fast")  # how embed_patches runs the networks
FAST_WINDOWS = 128  # timbral windows per TensorFlow call of FastMusicnn (a fixed shape)
FAST_PATCHES = 2  # patches per call of its temporal filters, mid end and back end
PATCH_VECTORS: tuple[str, ...] = tuple(VECTOR_WIDTHS["musicnn"])  # what FastMusicnn gives
TIMBRAL_BLOCKS: tuple[str, ...] = ("timbral_74", "timbral_77")
TEMPORAL_BLOCKS: tuple[str, ...] = ("temporal_128", "temporal_64", "temporal_32")
TIMBRAL_FRAMES = 7  # frames a timbral filter spans; the patch is padded by 3 zero frames each side


@dataclass(frozen=True)
class SharedWindows:
    """Patches ``(n, 187, 96)`` written as their distinct frames and distinct timbral windows.

    ``frames`` ``(n_frames, 96)`` holds each distinct input frame once (equal bytes) and
    ``frame_ids`` ``(n, 187)`` says which one every patch frame is. A timbral filter reads 7
    frames of a patch padded by 3 zero frames at each end (:func:`_musicnn_graph`); ``windows``
    ``(n_windows, 7)`` lists each distinct such window once, as frame indices (``n_frames``
    stands for a padding frame), and ``window_ids`` ``(n, 187)`` says which window each patch
    position reads. Windows repeat where a short clip is tiled to 3 s, where a clip's last patch
    overlaps the one before, and wherever frames repeat (silence), within a clip or across clips.
    Computed once for all networks: they read the same patches.
    """

    frames: np.ndarray
    frame_ids: np.ndarray
    windows: np.ndarray
    window_ids: np.ndarray

    @classmethod
    def of(cls, patches: np.ndarray) -> SharedWindows:
        patches = np.ascontiguousarray(patches, dtype=np.float32)
        if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS) or len(patches) == 0:
            raise ValueError(f"expected patches (n >= 1, {PATCH_FRAMES}, {N_MELS}), got shape "
                             f"{patches.shape}")
        n = len(patches)
        rows = patches.reshape(-1, N_MELS).view(np.dtype((np.void, 4 * N_MELS))).ravel()
        distinct, frame_ids = np.unique(rows, return_inverse=True)
        frames = distinct.view(np.float32).reshape(-1, N_MELS)
        frame_ids = frame_ids.reshape(n, PATCH_FRAMES)
        pad = np.full((n, TIMBRAL_FRAMES // 2), len(frames), frame_ids.dtype)
        padded = np.concatenate([pad, frame_ids, pad], axis=1)
        positions = np.stack([padded[:, i:i + PATCH_FRAMES] for i in range(TIMBRAL_FRAMES)], -1)
        windows, window_ids = np.unique(positions.reshape(-1, TIMBRAL_FRAMES), axis=0,
                                        return_inverse=True)
        return cls(frames, frame_ids, windows, window_ids.reshape(n, PATCH_FRAMES))


def _padded(x: np.ndarray, size: int) -> np.ndarray:
    """``x`` with zero rows appended up to ``size`` rows: every call gets the same shape."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])


class FastMusicnn:
    """A musicnn network (not VGG) run on the patches of many clips at once: the per-patch
    vectors of :func:`musicnn_outputs` (:data:`PATCH_VECTORS`), the same sums computed another
    way, so the same values up to float rounding:

    * **Each distinct timbral window once** (:class:`SharedWindows`). The timbral filters (7
      frames x 38 or 67 bands, 204 each) are four fifths of the network's multiply-adds, and a
      window's result does not depend on the patch it sits in.
    * **Max over frequency before batch norm.** Each front-end filter is conv -> ReLU -> batch
      norm -> max over all frequency positions. Batch norm is a per-channel affine map whose
      float rounding is monotone, so for a positive scale the max of the normalised values is
      the normalised max, exactly; for a negative scale it is the normalised min, taken as the
      max of the negated filter (weights and bias negated, which is exact). So the max comes
      first, and ReLU and batch norm see 1/59 (timbral) or 1/96 (temporal) of the values.
    * **One-dimensional convolutions** where a 2-d kernel spans a whole axis: a timbral filter
      slides along frequency only, over 7 frames taken as channels, and a mid-end filter along
      time only, over the features as channels. The same sums; in our measurements oneDNN
      runs them 1.2x (timbral) and 4x (mid end) faster than 2-d convolutions of one channel.
    * **Fixed shapes.** Every TensorFlow call takes exactly :data:`FAST_WINDOWS` windows or
      :data:`FAST_PATCHES` patches (the last zero-padded). A kernel's rounding can change with
      the batch size (oneDNN picks kernels by shape: why the Keras path embeds each clip in
      calls of its own), but within one shape every item of a batch is computed alike wherever
      it sits, so a patch's values do not depend on the patches beside it
      (``tests/test_pretrained.py`` checks both). The mean over time is taken in NumPy, patch by
      patch (TensorFlow's reduction rounds with the item's place in the batch).

    The back end is the port's own layers (:func:`_musicnn_backend`); all weights come from a
    private copy of the trained model. Used in: :func:`embed_patches` (``engine="fast"``), so
    helpers/predict.py (the ``"transfer"`` kind).
    """

    def __init__(self, name: str):
        import tensorflow as tf
        import tf_keras as keras

        if architecture(name) != "musicnn":
            raise ValueError(f"FastMusicnn runs musicnn networks, not {name}")
        self.name = name
        trained = build_musicnn(name)  # a copy of its own: a graph below shares its layers
        assign_checkpoint(trained, read_checkpoint(checkpoint_dir(name)), name)
        self._input_bn = trained.get_layer("input_bn")
        self._filters = {}
        for block in TIMBRAL_BLOCKS + TEMPORAL_BLOCKS:
            kernel, bias = trained.get_layer(f"{block}_conv").get_weights()
            norm = trained.get_layer(f"{block}_bn")
            sign = np.where(norm.gamma.numpy() < 0, -1.0, 1.0).astype(np.float32)
            kernel = kernel * sign
            if block in TIMBRAL_BLOCKS:  # (7, bands, 1, f) -> (bands, 7, f): frames as channels
                kernel = np.transpose(kernel[:, :, 0, :], (1, 0, 2))
            self._filters[block] = (tf.constant(kernel), tf.constant(bias * sign),
                                    tf.constant(sign), norm)
        self._mid = []
        for index in (1, 2, 3):  # (7, features, 1, 64) -> (7, features, 64)
            kernel, bias = trained.get_layer(f"midend{index}_conv").get_weights()
            self._mid.append((tf.constant(kernel[:, :, 0, :]), tf.constant(bias),
                              trained.get_layer(f"midend{index}_bn")))
        self._timbral_widths = [int(self._filters[b][1].shape[0]) for b in TIMBRAL_BLOCKS]
        # the features the back end pools: the front end (561) and the three mid-end layers
        self.width = sum(int(f[1].shape[0]) for f in [*self._filters.values(), *self._mid])
        L = keras.layers
        pooled = [L.Input((self.width,)), L.Input((self.width,))]
        self._backend = keras.Model(pooled, _musicnn_backend(L, *pooled, len(tags_of(name)),
                                                             trained))
        W, P, f32 = FAST_WINDOWS, FAST_PATCHES, tf.float32
        self._normalize = tf.function(
            lambda frames: self._input_bn(frames, training=False),
            input_signature=[tf.TensorSpec([W, 1, N_MELS, 1], f32)])
        self._timbral = tf.function(
            self._timbral_maxima,
            input_signature=[tf.TensorSpec([W, TIMBRAL_FRAMES, N_MELS], f32)])
        self._features = tf.function(self._features_of, input_signature=[
            *(tf.TensorSpec([P, PATCH_FRAMES, w], f32) for w in self._timbral_widths),
            tf.TensorSpec([P, PATCH_FRAMES, N_MELS, 1], f32)])
        self._head = tf.function(
            lambda max_pool, mean_pool: self._backend([max_pool, mean_pool], training=False),
            input_signature=[tf.TensorSpec([P, self.width], f32)] * 2)

    def _timbral_maxima(self, windows):
        """Each timbral filter's sign-adjusted max over frequency of windows (W, 7, 96):
        one (W, 204) per filter width."""
        import tensorflow as tf

        bands = tf.transpose(windows, [0, 2, 1])  # (W, 96, 7): frequency x frames
        out = []
        for block in TIMBRAL_BLOCKS:
            kernel, bias, _, _ = self._filters[block]
            z = tf.nn.bias_add(tf.nn.conv1d(bands, kernel, 1, "VALID"), bias)  # (W, f, 204)
            out.append(tf.nn.max_pool1d(z, z.shape[1], 1, "VALID")[:, 0])
        return out

    def _finish(self, signed_max, block: str):
        """ReLU and batch norm of a block's max over frequency: (b, t, 1, f) -> (b, t, f)."""
        import tensorflow as tf

        _, _, sign, norm = self._filters[block]
        return tf.squeeze(norm(tf.nn.relu(signed_max * sign), training=False), axis=2)

    def _features_of(self, t74, t77, normalized):
        """The features the back end pools, (P, 187, 753), of patches from their timbral
        maxima (P, 187, 204) x 2 and their normalised input (P, 187, 96, 1)."""
        import tensorflow as tf

        parts = [self._finish(t[:, :, tf.newaxis, :], block)
                 for t, block in zip((t74, t77), TIMBRAL_BLOCKS)]
        for block in TEMPORAL_BLOCKS:
            kernel, bias, _, _ = self._filters[block]
            z = tf.nn.bias_add(tf.nn.conv2d(normalized, kernel, 1, "SAME"), bias)
            parts.append(self._finish(tf.nn.max_pool2d(z, (1, N_MELS), 1, "VALID"), block))
        # mid end: three 7-frame convolutions over all features (zero-padded in time), batch
        # norm; the 2nd and 3rd add a residual connection (as in _musicnn_graph)
        layers = [tf.concat(parts, axis=2)]  # the front end, (P, 187, 561)
        h = layers[0]
        for index, (kernel, bias, norm) in enumerate(self._mid):
            z = tf.nn.conv1d(tf.pad(h, [[0, 0], [3, 3], [0, 0]]), kernel, 1, "VALID")
            z = norm(tf.nn.relu(tf.nn.bias_add(z, bias))[:, :, tf.newaxis, :], training=False)
            h = z[:, :, 0] if index == 0 else z[:, :, 0] + h
            layers.append(h)
        return tf.concat(layers, axis=2)

    def outputs(self, shared: SharedWindows, outputs: Sequence[str] = PATCH_VECTORS
                ) -> dict[str, np.ndarray]:
        """``{output: (n_patches, width)}`` float32 for the patches ``shared`` describes."""
        outputs = tuple(outputs)
        unknown = sorted(set(outputs) - set(PATCH_VECTORS))
        if unknown:
            raise ValueError(f"FastMusicnn gives {list(PATCH_VECTORS)}, not {unknown}")
        W, P = FAST_WINDOWS, FAST_PATCHES
        # the input batch norm of every distinct frame, then a zero frame: the padding
        frames = [np.zeros((0, N_MELS), np.float32)]
        for i in range(0, len(shared.frames), W):
            chunk = shared.frames[i:i + W]
            normalized = self._normalize(_padded(chunk, W)[:, np.newaxis, :, np.newaxis])
            frames.append(normalized.numpy()[:len(chunk), 0, :, 0])
        frames = np.concatenate(frames + [np.zeros((1, N_MELS), np.float32)])
        timbral = [np.empty((len(shared.windows), w), np.float32) for w in self._timbral_widths]
        for i in range(0, len(shared.windows), W):
            chunk = frames[shared.windows[i:i + W]]  # (k, 7, 96)
            for out, maxima in zip(timbral, self._timbral(_padded(chunk, W))):
                out[i:i + len(chunk)] = maxima.numpy()[:len(chunk)]
        result: dict[str, list[np.ndarray]] = {key: [] for key in outputs}
        head = bool({"penultimate", "taggram"} & set(outputs))
        for i in range(0, len(shared.window_ids), P):
            ids = shared.window_ids[i:i + P]
            features = self._features(
                *(_padded(t[ids], P) for t in timbral),
                _padded(frames[shared.frame_ids[i:i + P]], P)[..., np.newaxis]).numpy()
            pooled = {"max_pool": features.max(axis=1), "mean_pool": features.mean(axis=1)}
            if head:
                penultimate, taggram = self._head(pooled["max_pool"], pooled["mean_pool"])
                pooled |= {"penultimate": penultimate.numpy(), "taggram": taggram.numpy()}
            for key in outputs:
                result[key].append(pooled[key][:len(ids)])
        return {key: np.concatenate(parts).astype(np.float32, copy=False)
                for key, parts in result.items()}


@functools.cache
def fast_musicnn(name: str) -> FastMusicnn:
    """The :class:`FastMusicnn` of network ``name``, built once per process."""
    return FastMusicnn(_check_name(name))


# --- clip embeddings --------------------------------------------------------------------------

DEFAULT_POOLING: tuple[tuple[str, str], ...] = (
    ("mean_pool", "mean"),  # each front/mid-end feature averaged over the whole clip,
    ("max_pool", "max"),  # its strongest response anywhere in the clip,
    ("penultimate", "mean"),  # the hidden layer the tags are read from, averaged over patches,
    ("taggram", "mean"),  # and the 50 tag probabilities, averaged over patches
)


@dataclass(frozen=True)
class EmbeddingConfig:
    """Every parameter that shapes a clip embedding (and so its cache key).

    The embedding is, for each model in ``models`` and each ``(output, statistic)`` in
    ``pooling`` that the model has, that per-patch output reduced over the clip's patches by
    the statistic (``"mean"`` or ``"max"``; every patch counts once, including a clip's last
    patch that overlaps the one before), all concatenated in that order. Outputs are per-patch
    vectors: ``mean_pool``, ``max_pool``, ``penultimate``, ``taggram`` (musicnn; VGG models:
    ``taggram`` only) and ``embedding`` (:data:`AISFX`, the aiSFX network of
    :mod:`helpers.pretrained_aisfx`, on its own 2.3-s patches at 44.1 kHz). Every model must
    have at least one of the pooled outputs, and every pooled output some model.
    Clips are cut at ``max_seconds`` (like :class:`helpers.features.FeatureConfig`).
    """

    models: tuple[str, ...] = ("MTT_musicnn", "MSD_musicnn")
    pooling: tuple[tuple[str, str], ...] = DEFAULT_POOLING
    max_seconds: float | None = 10.0

    def __post_init__(self):
        # tuples, whatever sequences were given: the config is hashable and its key stable
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "pooling", tuple((str(o), str(s)) for o, s in self.pooling))
        if not self.models or not self.pooling:
            raise ValueError("EmbeddingConfig needs at least one model and one pooling entry")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"EmbeddingConfig.max_seconds must be positive or None, "
                             f"not {self.max_seconds}")
        for output, stat in self.pooling:
            if stat not in ("mean", "max"):
                raise ValueError(f"EmbeddingConfig: statistic must be 'mean' or 'max', not {stat!r}")
            if not any(output in VECTOR_WIDTHS[architecture(m)] for m in self.models):
                raise ValueError(f"EmbeddingConfig: no model of {list(self.models)} has a "
                                 f"per-patch vector {output!r}")
        for model in self.models:
            widths = VECTOR_WIDTHS[architecture(model)]
            if not any(output in widths for output, _ in self.pooling):
                raise ValueError(f"EmbeddingConfig: {model} has none of the pooled outputs "
                                 f"{sorted({o for o, _ in self.pooling})}; choose among {list(widths)}")

    def outputs_of(self, model: str) -> tuple[tuple[str, str], ...]:
        """The ``(output, statistic)`` pairs of ``pooling`` that ``model`` has, in order."""
        widths = VECTOR_WIDTHS[architecture(model)]
        return tuple((o, s) for o, s in self.pooling if o in widths)

    @property
    def uses_aisfx(self) -> bool:
        """Whether the aiSFX network is one of the models (its patches are cut at 44.1 kHz)."""
        return AISFX in self.models

    def blocks(self) -> list[tuple[str, str, str, slice]]:
        """``(model, output, statistic, columns)`` of each part of the embedding, in order."""
        out, start = [], 0
        for model in self.models:
            widths = VECTOR_WIDTHS[architecture(model)]
            for output, stat in self.outputs_of(model):
                out.append((model, output, stat, slice(start, start + widths[output])))
                start += widths[output]
        return out

    @property
    def dim(self) -> int:
        """Length of one clip's embedding."""
        return self.blocks()[-1][3].stop


@dataclass(frozen=True)
class ClipEmbeddings:
    """Embeddings of a table of clips.

    ``X`` (n_clips, dim) float32, row ``i`` is the clip in row ``i`` of ``clips`` (the rows of
    the input table that could be used, in input order, index reset); ``skipped`` lists the
    clips that could not be read (``fname``, ``reason``); ``n_patches`` (n_clips,) the 3-s
    patches pooled per clip.
    """

    X: np.ndarray
    clips: pd.DataFrame
    skipped: pd.DataFrame
    n_patches: np.ndarray
    config: EmbeddingConfig

    def block(self, model: str, output: str, statistic: str | None = None) -> np.ndarray:
        """The columns of one model's pooled output, (n_clips, width)."""
        for m, o, s, cols in self.config.blocks():
            if m == model and o == output and statistic in (None, s):
                return self.X[:, cols]
        raise KeyError(f"no block {model}/{output} in this embedding; have "
                       f"{[(m, o, s) for m, o, s, _ in self.config.blocks()]}")

    def select(self, mask_or_split) -> ClipEmbeddings:
        """The embeddings of a subset of clips: a split name ('train', 'val', 'test') or a mask."""
        from helpers.splits import clip_mask

        mask = clip_mask(self.clips, mask_or_split)
        return replace(self, X=self.X[mask], n_patches=self.n_patches[mask],
                       clips=self.clips[mask].reset_index(drop=True))

    def clip_labels(self, classes) -> np.ndarray:
        """Class index of every clip (n_clips,), in ``clips`` order."""
        from helpers.data import encode_labels

        return encode_labels(self.clips["label"], classes)


def _weights_fingerprint(models: Sequence[str]) -> list:
    """What identifies the installed checkpoints: musicnn's version and each data file's size
    (aiSFX: its version and its checkpoint's size, when it is one of ``models``)."""
    from importlib.metadata import PackageNotFoundError, version

    def release(package):
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    nets = [m for m in models if m != AISFX]
    data = [checkpoint_dir(m) / ".data-00000-of-00001" for m in nets]
    out = [release("musicnn"), [[m, p.stat().st_size if p.is_file() else None] for m, p in zip(nets, data)]]
    if AISFX in models:  # only then, so that musicnn-only keys stay what they were
        from helpers.pretrained_aisfx import checkpoint_path

        out.append([AISFX, release("aisfx"), checkpoint_path().stat().st_size, AISFX_CALL])
    return out


CACHE_PREFIX = "embeddings-musicnn"


def _cache_key(clips: pd.DataFrame, config: EmbeddingConfig) -> str:
    """The cache key of the embeddings of ``clips``: config, code version, checkpoints, clips."""
    from helpers import cache

    return cache.key_for(config=asdict(config), version=EMBEDDINGS_VERSION,
                         weights=_weights_fingerprint(config.models),
                         clips=cache.clip_fingerprint(clips))


def _per_model(config: EmbeddingConfig) -> dict[str, EmbeddingConfig]:
    """One single-model config per model of ``config``: the cache holds each model's columns
    under its own key, so a config that adds or drops a network reuses the others' entries."""
    return {m: EmbeddingConfig(models=(m,), pooling=config.outputs_of(m), max_seconds=config.max_seconds)
            for m in config.models}


def embeddings_cached(clips: pd.DataFrame, config: EmbeddingConfig | None = None) -> bool:
    """Whether :func:`clip_embeddings` would load these embeddings from the cache (a notebook
    can then say whether its timing measured extraction or loading)."""
    from helpers import cache

    return all(cache.entry_path(_cache_key(clips, c), CACHE_PREFIX).is_file()
               for c in _per_model(config or EmbeddingConfig()).values())


def clip_embeddings(clips: pd.DataFrame, config: EmbeddingConfig | None = None,
                    use_cache: bool = True, progress: bool = True,
                    batch_patches: int = 16) -> ClipEmbeddings:
    """Embeddings of every clip of ``clips`` (columns ``fname``, ``path``; others are kept).

    Each clip's front end is computed once and fed to every model of ``config``; the patches of
    clips gathered until there are ``batch_patches`` go through the networks together, with the
    fast engine of :func:`embed_patches` (as ``predict`` runs them: a clip's values do not depend
    on the clips beside it, so neither on the batch nor on the order). Unreadable clips are skipped
    with one warning that counts them; they are listed in ``ClipEmbeddings.skipped``. Results
    are cached per model (its columns under a key of its pooling, the checkpoints and the clip
    list), so a config that combines networks differently computes only the missing ones.
    Used in: notebooks/09_pretrained.ipynb, notebooks/10_shipping.ipynb.
    """
    from helpers import cache

    config = config or EmbeddingConfig()
    parts = _per_model(config)
    stored = {m: cache.load(_cache_key(clips, c), prefix=CACHE_PREFIX) if use_cache else None
              for m, c in parts.items()}
    missing = tuple(m for m in config.models if stored[m] is None)
    if missing:
        pooling = tuple(p for p in config.pooling if any(p in config.outputs_of(m) for m in missing))
        joint = EmbeddingConfig(models=missing, pooling=pooling, max_seconds=config.max_seconds)
        fresh = _embed(clips, joint, progress, batch_patches)
        for m in missing:
            columns = np.concatenate([np.arange(c.start, c.stop) for b, _, _, c in joint.blocks() if b == m])
            stored[m] = {**fresh, "X": fresh["X"][:, columns]}
            if use_cache:
                cache.save(_cache_key(clips, parts[m]), stored[m], prefix=CACHE_PREFIX)
    first = stored[config.models[0]]
    if any(not np.array_equal(stored[m]["rows"], first["rows"]) for m in config.models):
        raise RuntimeError("the cached embeddings of the networks cover different clips (a clip became "
                           "readable or unreadable since); call clip_embeddings(..., use_cache=False)")
    cached = {**first, "X": np.concatenate([stored[m]["X"] for m in config.models], axis=1)}
    skipped = pd.DataFrame({"fname": cached["skipped_fname"], "reason": cached["skipped_reason"]})
    if len(skipped):
        examples = "; ".join(f"{f}: {r}" for f, r in skipped.head(3).itertuples(index=False))
        warnings.warn(f"skipped {len(skipped)} of {len(clips)} clips that could not be used "
                      f"(e.g. {examples})", stacklevel=2)
    done = clips.iloc[cached["rows"]].reset_index(drop=True)
    return ClipEmbeddings(X=cached["X"], clips=done, skipped=skipped,
                          n_patches=cached["n_patches"], config=config)


def _pool(values: np.ndarray, counts: np.ndarray, stat: str) -> np.ndarray:
    """Reduce consecutive runs of ``counts`` rows of ``values`` (n, width) -> (len(counts), width)."""
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if stat == "max":
        return np.maximum.reduceat(values, offsets, axis=0)
    return np.add.reduceat(values.astype(np.float64), offsets, axis=0) / counts[:, None]


def embed_patches(patches: list[np.ndarray], config: EmbeddingConfig,
                  batch_patches: int = 16, engine: str = "keras",
                  aisfx_patches: list[np.ndarray] | None = None) -> np.ndarray:
    """Pooled embeddings ``(len(patches), config.dim)`` of clips given by their patches
    (:func:`musicnn_patches` of each clip; with :data:`AISFX` among the models, also
    ``aisfx_patches``: :func:`helpers.pretrained_aisfx.aisfx_patches` of each clip at 44.1 kHz):
    what :func:`clip_embeddings` stores, for audio in memory. The aiSFX network runs the
    patches of all the clips in calls of exactly :data:`AISFX_CALL` patches (the last padded
    with silence), with either engine: in a call of fixed size a patch's values do not depend on
    its place nor on the patches beside it (``tests/test_aisfx.py`` checks it), so neither on
    the clips beside it, and one call per clip would cost about six times as much.

    ``engine`` (:data:`MUSICNN_ENGINES`): ``"keras"`` runs the Keras models on all the patches,
    ``batch_patches`` per call (a patch's values then change in their last float digits with
    its place in a call); ``"fast"`` runs musicnn networks through :class:`FastMusicnn` (each
    distinct window once, a clip's values independent of the clips beside it; the same values
    up to float rounding) and VGG networks through the Keras model one clip per call.
    Used in: :func:`clip_embeddings`, helpers.predict (the transfer model kind)."""
    if engine not in MUSICNN_ENGINES:
        raise ValueError(f"unknown musicnn engine {engine!r}; choose one of {MUSICNN_ENGINES}")
    if config.uses_aisfx and (aisfx_patches is None or len(aisfx_patches) != len(patches)):
        raise ValueError("embed_patches: the embedding uses aiSFX, so give aisfx_patches, one "
                         "array per clip")
    counts = np.array([len(p) for p in patches])
    stacked = np.concatenate(patches) if any(m != AISFX for m in config.models) else None
    shared = None  # the distinct frames and windows, found once for every network
    blocks = []
    for model in config.models:
        pooling = config.outputs_of(model)
        wanted = tuple(dict.fromkeys(output for output, _ in pooling))
        if model == AISFX:
            from helpers.pretrained_aisfx import aisfx_outputs

            every = np.concatenate(aisfx_patches)
            padded = np.concatenate([every, np.zeros(((-len(every)) % AISFX_CALL, *every.shape[1:]),
                                                     np.float32)])
            emb = aisfx_outputs(padded, wanted, batch_size=AISFX_CALL)["embedding"][:len(every)]
            n = np.array([len(p) for p in aisfx_patches])
            blocks += [_pool(emb, n, stat) for _, stat in pooling]
            continue
        if engine == "keras":
            out = musicnn_outputs(stacked, model, outputs=wanted, batch_size=batch_patches)
        elif architecture(model) == "musicnn":
            if shared is None:
                shared = SharedWindows.of(stacked)
            out = fast_musicnn(model).outputs(shared, wanted)
        else:
            parts = [musicnn_outputs(p, model, outputs=wanted, batch_size=batch_patches)
                     for p in patches]
            out = {k: np.concatenate([part[k] for part in parts]) for k in wanted}
        blocks += [_pool(out[output], counts, stat) for output, stat in pooling]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _embed(clips: pd.DataFrame, config: EmbeddingConfig, progress: bool,
           batch_patches: int) -> dict[str, np.ndarray]:
    """Embed every clip, skipping (and recording) the unusable ones."""
    from helpers.progress import progress as progress_bar

    rows, n_patches, X, bad_f, bad_r = [], [], [], [], []
    pending: list[np.ndarray] = []  # patches of clips not yet run through the models
    pending_aisfx: list[np.ndarray] = []  # ... and their aiSFX patches, when the config has it
    aisfx = None
    if config.uses_aisfx:
        from helpers import pretrained_aisfx as aisfx
    items = enumerate(clips[["fname", "path"]].itertuples(index=False))
    desc = " + ".join(dict.fromkeys("aiSFX" if m == AISFX else "musicnn" for m in config.models))
    for i, (fname, path) in progress_bar(items, total=len(clips), desc=f"{desc} embeddings",
                                         disable=not progress, unit="clip"):
        try:
            y = load_audio(path, sample_rate=SAMPLE_RATE, max_seconds=config.max_seconds)
            if aisfx is not None:
                y44 = load_audio(path, sample_rate=aisfx.SAMPLE_RATE, max_seconds=config.max_seconds)
                pending_aisfx.append(aisfx.aisfx_patches(aisfx.aisfx_frontend(y44, aisfx.SAMPLE_RATE)))
        except AudioError as exc:
            bad_f.append(fname)
            bad_r.append(exc.problem)
            continue
        pending.append(musicnn_patches(musicnn_frontend(y, SAMPLE_RATE)))
        rows.append(i)
        n_patches.append(len(pending[-1]))
        if sum(map(len, pending)) >= batch_patches and (
                aisfx is None or sum(map(len, pending_aisfx)) >= 4 * AISFX_CALL):  # little padding
            X.append(embed_patches(pending, config, batch_patches, engine="fast",
                                   aisfx_patches=pending_aisfx if aisfx is not None else None))
            pending, pending_aisfx = [], []
    if pending:
        X.append(embed_patches(pending, config, batch_patches, engine="fast",
                               aisfx_patches=pending_aisfx if aisfx is not None else None))
    return {
        "X": np.concatenate(X) if X else np.zeros((0, config.dim), np.float32),
        "rows": np.array(rows, dtype=np.int64),
        "n_patches": np.array(n_patches, dtype=np.int64),
        "skipped_fname": np.array(bad_f, dtype=str),
        "skipped_reason": np.array(bad_r, dtype=str),
    }
