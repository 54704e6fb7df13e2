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
project's one cache. TensorFlow and librosa are imported inside the functions, so importing this
module stays cheap. Used in: notebooks/09_pretrained.ipynb, notebooks/10_shipping.ipynb
(:func:`clip_embeddings`); helpers/transfer.py (:class:`EmbeddingConfig`,
:class:`ClipEmbeddings`), helpers/predict.py (the ``"transfer"`` model kind).
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
}

EMBEDDINGS_VERSION = 1  # bump when the extraction code changes what it writes


# --- where the checkpoints are ----------------------------------------------------------------

def _check_name(name: str) -> str:
    if name not in MUSICNN_MODELS:
        raise ValueError(f"unknown musicnn model {name!r}; choose one of {', '.join(MUSICNN_MODELS)}")
    return name


def architecture(name: str) -> str:
    """``"musicnn"`` or ``"vgg"``: the network family of model ``name``."""
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
    mel = librosa.feature.melspectrogram(y=y16, sr=SAMPLE_RATE, hop_length=HOP_LENGTH,
                                         n_fft=N_FFT, n_mels=N_MELS).T
    # the float16 rounding of the training data; clipped so that the cast itself stays finite
    mel16 = np.minimum(mel, np.finfo(np.float16).max).astype(np.float16)
    return np.log10(10000 * mel16.astype(np.float32) + 1).astype(np.float32)


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
    width = features.shape[2]
    features = L.Reshape((-1, width), name="midend_squeeze")(features)

    # Back end: max and mean over time, interleaved per feature as musicnn's
    # flatten(concat([max, mean], axis=2)) does: [max_0, mean_0, max_1, mean_1, ...].
    max_pool = L.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = L.GlobalAveragePooling1D(name="mean_pool")(features)
    pair = L.Concatenate(axis=2, name="pool_pairs")([
        L.Reshape((width, 1), name="max_pool_column")(max_pool),
        L.Reshape((width, 1), name="mean_pool_column")(mean_pool)])
    h = L.Flatten(name="pool_flat")(pair)  # (b, 1506)
    h = L.BatchNormalization(name="pool_bn")(h)
    h = L.Dense(200, activation="relu", name="penultimate_dense")(h)
    penultimate = L.BatchNormalization(name="penultimate_bn")(h)
    logits = L.Dense(n_tags, name="logits")(penultimate)
    taggram = L.Activation("sigmoid", name="taggram")(logits)

    def squeeze(t, name):
        return L.Reshape((-1, 64), name=name)(t)

    return x, {
        "taggram": taggram,
        "timbral": L.Concatenate(axis=2, name="timbral")([f74, f77]),
        "temporal": L.Concatenate(axis=2, name="temporal")([s1, s2, s3]),
        "cnn1": squeeze(cnn1, "cnn1"), "cnn2": squeeze(cnn2, "cnn2"), "cnn3": squeeze(cnn3, "cnn3"),
        "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate,
    }


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
    ``pooling``, that per-patch output reduced over the clip's patches by the statistic
    (``"mean"`` or ``"max"``; every patch counts once, including a clip's last patch that
    overlaps the one before), all concatenated in that order. Outputs must be per-patch vectors:
    ``mean_pool``, ``max_pool``, ``penultimate``, ``taggram`` (VGG models: ``taggram`` only).
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
        for model in self.models:
            widths = VECTOR_WIDTHS[architecture(model)]
            for output, stat in self.pooling:
                if output not in widths:
                    raise ValueError(f"EmbeddingConfig: {model} has no per-patch vector "
                                     f"{output!r}; choose among {list(widths)}")
                if stat not in ("mean", "max"):
                    raise ValueError(f"EmbeddingConfig: statistic must be 'mean' or 'max', "
                                     f"not {stat!r}")

    def blocks(self) -> list[tuple[str, str, str, slice]]:
        """``(model, output, statistic, columns)`` of each part of the embedding, in order."""
        out, start = [], 0
        for model in self.models:
            widths = VECTOR_WIDTHS[architecture(model)]
            for output, stat in self.pooling:
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
    """What identifies the installed checkpoints: musicnn's version and each data file's size."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("musicnn")
    except PackageNotFoundError:
        release = None
    data = [checkpoint_dir(m) / ".data-00000-of-00001" for m in models]
    return [release, [[m, p.stat().st_size if p.is_file() else None] for m, p in zip(models, data)]]


CACHE_PREFIX = "embeddings-musicnn"


def _cache_key(clips: pd.DataFrame, config: EmbeddingConfig) -> str:
    """The cache key of the embeddings of ``clips``: config, code version, checkpoints, clips."""
    from helpers import cache

    return cache.key_for(config=asdict(config), version=EMBEDDINGS_VERSION,
                         weights=_weights_fingerprint(config.models),
                         clips=cache.clip_fingerprint(clips))


def embeddings_cached(clips: pd.DataFrame, config: EmbeddingConfig | None = None) -> bool:
    """Whether :func:`clip_embeddings` would load these embeddings from the cache (a notebook
    can then say whether its timing measured extraction or loading)."""
    from helpers import cache

    return cache.entry_path(_cache_key(clips, config or EmbeddingConfig()), CACHE_PREFIX).is_file()


def clip_embeddings(clips: pd.DataFrame, config: EmbeddingConfig | None = None,
                    use_cache: bool = True, progress: bool = True,
                    batch_patches: int = 16) -> ClipEmbeddings:
    """Embeddings of every clip of ``clips`` (columns ``fname``, ``path``; others are kept).

    Each clip's front end is computed once and fed to every model of ``config``; patches of
    several clips go through a model ``batch_patches`` at a time. Unreadable clips are skipped
    with one warning that counts them; they are listed in ``ClipEmbeddings.skipped``. Results
    are cached under a key of the config, the checkpoints and the clip list.
    Used in: notebooks/09_pretrained.ipynb, notebooks/10_shipping.ipynb.
    """
    from helpers import cache

    config = config or EmbeddingConfig()
    key = _cache_key(clips, config)
    cached = cache.load(key, prefix=CACHE_PREFIX) if use_cache else None
    if cached is None:
        cached = _embed(clips, config, progress, batch_patches)
        if use_cache:
            cache.save(key, cached, prefix=CACHE_PREFIX)
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
                  batch_patches: int = 16) -> np.ndarray:
    """Pooled embeddings ``(len(patches), config.dim)`` of clips given by their patches
    (:func:`musicnn_patches` of each clip): what :func:`clip_embeddings` stores, for audio in
    memory. Used in: :func:`clip_embeddings`, helpers.predict (the transfer model kind)."""
    counts = np.array([len(p) for p in patches])
    stacked = np.concatenate(patches)
    blocks = []
    for model in config.models:
        wanted = tuple(dict.fromkeys(output for output, _ in config.pooling))
        out = musicnn_outputs(stacked, model, outputs=wanted, batch_size=batch_patches)
        blocks += [_pool(out[output], counts, stat) for output, stat in config.pooling]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _embed(clips: pd.DataFrame, config: EmbeddingConfig, progress: bool,
           batch_patches: int) -> dict[str, np.ndarray]:
    """Embed every clip, skipping (and recording) the unusable ones."""
    from helpers.progress import progress as progress_bar

    rows, n_patches, X, bad_f, bad_r = [], [], [], [], []
    pending: list[np.ndarray] = []  # patches of clips not yet run through the models
    items = enumerate(clips[["fname", "path"]].itertuples(index=False))
    for i, (fname, path) in progress_bar(items, total=len(clips), desc="musicnn embeddings",
                                         disable=not progress, unit="clip"):
        try:
            y = load_audio(path, sample_rate=SAMPLE_RATE, max_seconds=config.max_seconds)
        except AudioError as exc:
            bad_f.append(fname)
            bad_r.append(exc.problem)
            continue
        pending.append(musicnn_patches(musicnn_frontend(y, SAMPLE_RATE)))
        rows.append(i)
        n_patches.append(len(pending[-1]))
        if sum(map(len, pending)) >= batch_patches:
            X.append(embed_patches(pending, config, batch_patches))
            pending = []
    if pending:
        X.append(embed_patches(pending, config, batch_patches))
    return {
        "X": np.concatenate(X) if X else np.zeros((0, config.dim), np.float32),
        "rows": np.array(rows, dtype=np.int64),
        "n_patches": np.array(n_patches, dtype=np.int64),
        "skipped_fname": np.array(bad_f, dtype=str),
        "skipped_reason": np.array(bad_r, dtype=str),
    }
