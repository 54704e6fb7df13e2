"""The pretrained aiSFX sound-effects network, ported to ``tf_keras``, and the embeddings it gives.

aiSFX (Alison B. Ma and Alexander Lerch, "Representation Learning for the Automatic Indexing of
Sound Effects Libraries", ISMIR 2022; PyPI package ``aisfx`` 0.1.2) ships one PyTorch checkpoint,
``aisfx/models/checkpoint.pth``: the model the paper calls **X-Sequential-CE**, trained with a
cross-entropy head per sound-effects library (Pro Sound Effects, Soundly, UCS-mixed and six
other libraries). The model and the paper are licensed **CC BY 4.0** (the wheel's ``LICENSE``,
"Copyright (c) 2022 A.B. Ma and A. Lerch"; its PyPI classifier says MIT, its licence file and
README say CC BY 4.0): use them with attribution to that paper. The package pins numpy 1.23 and
librosa 0.9.2, so it is installed with ``--no-deps`` and only its checkpoint file is read; its
code (which needs torch) is never imported.

What aiSFX computes, read from its source (``aisfx/inference.py``, ``preprocessing.py``,
``spectrogram/spectrogram_essentia.py``, ``models/cnn2d.py``):

* **Front end** (the Essentia one, aiSFX's default and the paper's): audio loaded mono at
  44.1 kHz (Essentia's ``EasyLoader``: samples clipped to [-1, 1], no gain change); frames of
  2048 samples every 1024 (46 ms / 23 ms), the first centred on sample 0 (zero-padded),
  ``ceil(n / 1024) + 1`` frames; a symmetric Hann window, not normalised; magnitude spectrum
  (1025 bins), squared; 96 mel bands from 0 to 22050 Hz on the HTK mel scale, triangles
  weighted in mel and normalised to unit sum (Essentia's ``MelBands``, not librosa's filters);
  ``log10(10000 x + 1)``; then divided by 9.457798957824707 (``spectrogram_normalize(spec_norm="original")``: the maximum
  over the training data, minimum 0).
* **Patches** (``preprocessing.blocking``): 100 frames (2.3 s) every 50 frames, a partial last
  patch dropped; a clip shorter than one patch gives one patch, zero-padded at its end.
* **Network** (``EmbeddingNet("max", 3, 1, 64)``: the ``Cnn_9layers`` of Kong et al.'s DCASE
  2018 cross-task baseline, with max pooling): input (100 frames, 96 bands, 1 channel); four blocks of two 3x3
  convolutions (padding 1, no bias), each followed by batch norm (eps 1e-5) and ReLU, with
  64, 128, 256, 512 channels; 2x2 max pooling after blocks 1-3 (block 4 pools 1x1, a no-op);
  then the mean over frequency and the maximum over time.
* **Embedding**: that 512-wide vector, per patch, is the package's own embedding
  (``CrossNet.get_embedding``, what ``aisfx.inference.main`` saves). The per-library
  classifier heads (``fc.0`` .. ``fc.8``: 512 -> 256 -> 128 -> classes) are in the checkpoint
  but not ported: the package ships no class names for them.

What differs here, on purpose or because it cannot be matched (``tests/test_aisfx.py`` measures
the differences against aiSFX's own front end and PyTorch network, stored by
``tests/aisfx_torch_reference.py``):

* Essentia computes in float32, this module in float64 before the network.
* Essentia's frame cutter adds random noise of amplitude 1e-10 (its ``NoiseAdder`` at
  -100 dB) to a frame whose mean power is below 1e-10; here such frames stay as they are.
* Audio at another rate is resampled with :func:`helpers.audio.resample` (soxr), Essentia
  with libsamplerate: the two differ most in a clip's last frames and in the bands above the
  original rate's Nyquist frequency.
* aiSFX fails on clips of fewer than 51 frames (1.14 s); here they give one zero-padded patch.
* aiSFX's optional librosa front end (``spectrogram_type="librosa"``) returns bands x frames
  untransposed, so its patches cut across bands; it is not reproduced.

The checkpoint is read without torch: :func:`read_torch_checkpoint` opens the zip archive
``torch.save`` writes and unpickles ``data.pkl`` with a restricted unpickler that allows only
the handful of globals a state dict needs and turns each storage into a numpy array. TensorFlow
is imported inside the functions, so importing this module stays cheap. It imports nothing of
:mod:`helpers.pretrained`, so that module can import this one. Clip embeddings pool the
per-patch vectors by the rule of :class:`helpers.pretrained.EmbeddingConfig`
(:func:`pool_patches`). Used in: tests/test_aisfx.py (no notebook yet).
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from helpers.audio import resample

INSTALL_HINT = 'pip install --no-deps "aisfx>=0.1.2,<0.2"'  # --no-deps: it pins numpy 1.23
CHECKPOINT = "models/checkpoint.pth"  # inside the aisfx package

# aiSFX's front end (aisfx/inference.py and spectrogram/spectrogram_essentia.py)
SAMPLE_RATE = 44100  # Hz
FRAME_SIZE = 2048  # samples (46 ms)
HOP_SIZE = 1024  # samples (23 ms)
N_MELS = 96
F_MIN, F_MAX = 0.0, 22050.0  # Hz
LOG_SCALE = 10000.0  # log10(LOG_SCALE * x + 1), Essentia's "shift_scale_log"
NORM_MAX = 9.457798957824707  # spectrogram_normalize(spec_norm="original"): (x - 0) / NORM_MAX
# ... and its patches (preprocessing.blocking, EMB_BLOCK_LENGTH and emb_hop_size=0.5)
PATCH_FRAMES = 100  # frames (2.3 s)
PATCH_HOP = 50  # frames

CHANNELS: tuple[int, ...] = (64, 128, 256, 512)  # EmbeddingNet's four blocks (hl1 = 64)
BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default
AISFX_OUTPUTS: tuple[str, ...] = ("embedding",)
VECTOR_WIDTHS: dict[str, int] = {"embedding": CHANNELS[-1]}
EMBEDDING_DIM = CHANNELS[-1]
DEFAULT_POOLING: tuple[tuple[str, str], ...] = (("embedding", "mean"), ("embedding", "max"))


# --- where the checkpoint is ------------------------------------------------------------------

def aisfx_dir() -> Path:
    """Folder of the installed ``aisfx`` package, found without importing it (its code needs
    torch). Raises ModuleNotFoundError with the install command when the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the pretrained aiSFX network needs the 'aisfx' package, which is not installed "
            f"(its file {CHECKPOINT} holds the weights): run `{INSTALL_HINT}` (or `make setup`). "
            "Always with --no-deps: its wheel pins numpy 1.23, and only its checkpoint is used.",
            name="aisfx")
    return Path(next(iter(spec.submodule_search_locations)))


def checkpoint_path() -> Path:
    """The checkpoint file inside the installed aisfx package. Raises FileNotFoundError naming
    the file when the package is there but the file is not."""
    path = aisfx_dir() / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the aiSFX checkpoint is missing from the installed "
                                f"package; reinstall it with `{INSTALL_HINT}`")
    return path


# --- reading a PyTorch checkpoint without torch -----------------------------------------------

# torch's typed storages -> numpy dtypes ("BFloat16Storage" is read as float32 below)
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "BFloat16Storage": "<u2",
}


class _StorageType:
    """Stands for one of torch's storage classes while unpickling: only its name is needed."""

    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_unused):
    """torch._utils._rebuild_tensor_v2 for numpy: a strided view of the storage, copied."""
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if offset < 0 or min(stride, default=0) < 0 or last >= max(len(storage), 1):
        raise pickle.UnpicklingError(f"tensor of size {tuple(size)}, stride {tuple(stride)} at "
                                     f"offset {offset} reaches past its storage of {len(storage)}")
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * storage.itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data  # torch._utils._rebuild_parameter: an nn.Parameter is its tensor here


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None):
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0]


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),
}


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a torch zip checkpoint, tensors as numpy arrays; any global
    outside a state dict's few (no code of the file's choosing) raises UnpicklingError."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(file)
        self._archive, self._prefix, self._source = archive, prefix, source
        self._storages: dict[str, np.ndarray] = {}
        byteorder = f"{prefix}/byteorder"
        self._big_endian = (byteorder in archive.namelist()
                            and archive.read(byteorder).decode().strip() == "big")

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        raise pickle.UnpicklingError(f"{self._source}: refusing to load the global "
                                     f"{module}.{name} (not part of a plain state dict)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self._source}: unknown persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            dtype = np.dtype(_STORAGE_DTYPES[storage_type.name])
            if self._big_endian:
                dtype = dtype.newbyteorder(">")
            values = np.frombuffer(raw, dtype=dtype)
            if storage_type.name == "BFloat16Storage":  # the upper half of a float32
                values = (values.astype(np.uint32) << 16).view(np.float32)
            self._storages[key] = values.astype(values.dtype.newbyteorder("="), copy=False)
        return self._storages[key]


def read_torch_checkpoint(path: str | Path):
    """The object ``torch.save`` wrote to ``path``, every tensor as a numpy array.

    Reads the zip format of torch >= 1.6 (``<name>/data.pkl``, ``<name>/data/<storage>``), the
    one aiSFX ships, with a restricted unpickler (state dicts, numpy scalars and dtypes only).
    Raises FileNotFoundError, or ValueError naming the file for anything else (the legacy
    pre-1.6 format included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip-format PyTorch checkpoint (the legacy format of "
                         "torch < 1.6 is not read here)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if PurePosixPath(n).name == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = str(PurePosixPath(pickles[0]).parent)
        with archive.open(pickles[0]) as file:
            try:
                return _CheckpointUnpickler(file, archive, prefix, path).load()
            except (pickle.UnpicklingError, KeyError, EOFError, IndexError, ValueError) as exc:
                raise ValueError(f"{path}: cannot read the checkpoint ({exc})") from exc


def read_checkpoint(path: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """aiSFX's checkpoint: its state dict ``{"embedding_net.conv_block1.conv1.weight": array}``
    (every tensor, the classifier heads and BN counters included) and its dataset table
    ``{library: (head index, n_classes)}``. ``path`` defaults to the installed package's file."""
    path = checkpoint_path() if path is None else Path(path)
    loaded = read_torch_checkpoint(path)
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[0], dict)):
        raise ValueError(f"{path}: expected aiSFX's (state dict, dataset table) pair, "
                         f"got {type(loaded).__name__}")
    state, datasets = loaded
    return dict(state), {str(k): (int(v[0]), int(v[1])) for k, v in datasets.items()}


# --- front end --------------------------------------------------------------------------------

def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)  # HTK


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.cache
def mel_filterbank() -> np.ndarray:
    """Essentia's ``MelBands`` weights as aiSFX configures them: (96, 1025) float64, read-only.

    Band edges evenly spaced on the HTK mel scale from 0 to 22050 Hz; band ``i`` weights the
    bins from ``ceil(edge_i / df)`` to ``floor(edge_{i+2} / df)`` by a triangle that is linear
    in mel (``weighting="warping"``), then each band is scaled to sum to one (``"unit_sum"``).
    As Essentia's ``TriangularBands.createFilters`` does it, in float64 here.
    """
    n_bins = FRAME_SIZE // 2 + 1
    low, high = _hz_to_mel(F_MIN), _hz_to_mel(F_MAX)
    edges = _mel_to_hz(low + (high - low) / (N_MELS + 1) * np.arange(N_MELS + 2))
    df = (SAMPLE_RATE / 2.0) / (n_bins - 1)
    weights = np.zeros((N_MELS, n_bins))
    for i in range(N_MELS):
        left, centre, right = _hz_to_mel(edges[i:i + 3])
        bins = np.arange(int(np.ceil(edges[i] / df)), int(np.floor(edges[i + 2] / df)) + 1)
        mel = _hz_to_mel(bins * df)
        rising = bins * df < edges[i + 1]
        weights[i, bins] = np.where(rising, (mel - left) / (centre - left),
                                    (right - mel) / (right - centre))
        weights[i] /= weights[i].sum()
    weights.setflags(write=False)
    return weights


def frame_count(n_samples: int) -> int:
    """Essentia's frame count for ``n_samples`` (its ``FrameCutter``, ``startFromZero=False``):
    frames centred on 0, 1024, 2048, ... up to the first centre at or past the end."""
    return -(-n_samples // HOP_SIZE) + 1 if n_samples > 0 else 0


def aisfx_logmel(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """aiSFX's log-mel spectrogram of a mono signal, before normalisation: (frames, 96) float32,
    ``log10(10000 x + 1)`` of the mel power (see the module docstring). ``y`` is clipped to
    [-1, 1] and resampled to 44.1 kHz when ``sample_rate`` differs."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal (n,), got shape {y.shape}")
    y = np.clip(y, -1.0, 1.0)  # as Essentia's loader decodes it
    y = np.asarray(resample(y, sample_rate, SAMPLE_RATE), dtype=np.float64)
    n = frame_count(len(y))
    if n == 0:
        raise ValueError("cannot compute a spectrogram of an empty signal")
    padded = np.zeros((n - 1) * HOP_SIZE + FRAME_SIZE)
    padded[FRAME_SIZE // 2:FRAME_SIZE // 2 + len(y)] = y
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME_SIZE)[::HOP_SIZE]
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME_SIZE), axis=1)) ** 2
    return np.log10(LOG_SCALE * (power @ mel_filterbank().T) + 1.0).astype(np.float32)


def aisfx_frontend(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """The network's input representation of a mono signal: (frames, 96) float32, the log-mel
    spectrogram of :func:`aisfx_logmel` divided by aiSFX's training maximum (values in 0..~1)."""
    return (aisfx_logmel(y, sample_rate) / np.float32(NORM_MAX)).astype(np.float32)


def patch_starts(n_frames: int) -> list[int]:
    """First frame of each 100-frame patch, every 50 frames, as aiSFX's ``blocking`` with
    ``drop_partial_block=True`` cuts them: a last patch that would need padding is left out,
    except that a clip shorter than one patch gives one patch (starting at 0)."""
    if n_frames <= PATCH_FRAMES:
        return [0]
    return list(range(0, n_frames - PATCH_FRAMES + 1, PATCH_HOP))


def aisfx_patches(rep: np.ndarray) -> np.ndarray:
    """Cut a (frames, 96) representation into the network's inputs (n_patches, 100, 96) float32;
    a clip shorter than 100 frames is zero-padded at its end (zero is silence after the log)."""
    rep = np.asarray(rep, dtype=np.float32)
    if rep.ndim != 2 or rep.shape[1] != N_MELS or rep.shape[0] == 0:
        raise ValueError(f"expected a (frames, {N_MELS}) representation, got shape {rep.shape}")
    if rep.shape[0] < PATCH_FRAMES:
        rep = np.pad(rep, ((0, PATCH_FRAMES - rep.shape[0]), (0, 0)))
    return np.stack([rep[s:s + PATCH_FRAMES] for s in patch_starts(rep.shape[0])])


# --- the network ------------------------------------------------------------------------------

def _torch_name(block: int, index: int, part: str) -> str:
    return f"embedding_net.conv_block{block}.{part}{index}"


def build_aisfx():
    """aiSFX's embedding network as an untrained ``tf_keras`` model (see the module docstring).

    Input ``(batch, frames, 96)`` from :func:`aisfx_frontend` (trained on 100 frames; any number
    of at least 8 is accepted, as in PyTorch); output ``{"embedding": (batch, 512)}``. Layers
    ``block{b}_conv{i}`` and ``block{b}_bn{i}`` mirror ``embedding_net.conv_block{b}.conv{i}`` and
    ``.bn{i}``. Inference only: the model is frozen (batch norm uses its running statistics).
    """
    import tf_keras as keras

    L = keras.layers
    x = L.Input(shape=(None, N_MELS), name="logmel")
    h = L.Reshape((-1, N_MELS, 1), name="expand")(x)  # (batch, time, frequency, 1), as torch's
    for block, channels in enumerate(CHANNELS, start=1):  # (batch, 1, time, frequency)
        for index in (1, 2):
            # 3x3, stride 1, padding 1 on each side: 'same'
            h = L.Conv2D(channels, 3, padding="same", use_bias=False,
                         name=f"block{block}_conv{index}")(h)
            h = L.BatchNormalization(epsilon=BN_EPSILON, name=f"block{block}_bn{index}")(h)
            h = L.ReLU(name=f"block{block}_relu{index}")(h)
        if block < len(CHANNELS):  # block 4 pools 1x1
            h = L.MaxPooling2D(2, name=f"block{block}_pool")(h)  # floors odd sizes, as torch
    h = L.AveragePooling2D((1, h.shape[2]), name="frequency_mean")(h)  # (batch, time, 1, 512)
    h = L.Reshape((-1, CHANNELS[-1]), name="squeeze")(h)
    embedding = L.GlobalMaxPooling1D(name="embedding")(h)
    model = keras.Model(x, {"embedding": embedding}, name="aisfx")
    model.trainable = False
    return model


def assign_checkpoint(model, state: dict[str, np.ndarray]) -> None:
    """Copy aiSFX's embedding-network weights from ``state`` (:func:`read_checkpoint`) into
    ``model`` in place: convolution kernels from torch's (out, in, h, w) to Keras's
    (h, w, in, out); batch norm's weight, bias, running mean and variance as gamma, beta and
    the moving statistics. Raises ValueError naming each missing or misshapen tensor."""
    problems = []

    def take(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        value = state.get(name)
        if value is None or tuple(value.shape) != shape:
            problems.append(f"{name}: expected {shape}, "
                            + ("missing" if value is None else f"found {tuple(value.shape)}"))
            return None
        return np.asarray(value, dtype=np.float32)

    for block, channels in enumerate(CHANNELS, start=1):
        for index in (1, 2):
            conv = model.get_layer(f"block{block}_conv{index}")
            height, width, inputs, _ = (int(d) for d in conv.kernel.shape)
            kernel = take(_torch_name(block, index, "conv") + ".weight",
                          (channels, inputs, height, width))
            if kernel is not None:
                conv.set_weights([kernel.transpose(2, 3, 1, 0)])
            bn = _torch_name(block, index, "bn")
            values = [take(f"{bn}.{part}", (channels,))
                      for part in ("weight", "bias", "running_mean", "running_var")]
            if all(v is not None for v in values):
                model.get_layer(f"block{block}_bn{index}").set_weights(values)
    if problems:
        raise ValueError("the checkpoint does not match aiSFX's embedding network: "
                         + "; ".join(problems))


@functools.cache
def load_aisfx():
    """The trained embedding network (:func:`build_aisfx`), loaded once per process from the
    installed package's checkpoint."""
    model = build_aisfx()
    assign_checkpoint(model, read_checkpoint()[0])
    return model


@functools.cache
def _compiled():
    import tensorflow as tf

    model = load_aisfx()

    @tf.function(input_signature=[tf.TensorSpec([None, None, N_MELS], tf.float32)])
    def run(x):
        return model(x, training=False)["embedding"]

    return run


def aisfx_outputs(patches: np.ndarray, outputs: Sequence[str] | None = None,
                  batch_size: int = 16) -> dict[str, np.ndarray]:
    """Run the trained network on ``patches`` (n, frames, 96): ``{"embedding": (n, 512)}``
    float32, ``batch_size`` patches per call (the form of
    :func:`helpers.pretrained.musicnn_outputs`)."""
    outputs = tuple(outputs) if outputs is not None else AISFX_OUTPUTS
    unknown = sorted(set(outputs) - set(AISFX_OUTPUTS))
    if unknown:
        raise ValueError(f"aiSFX has no output(s) {unknown}; choose among {list(AISFX_OUTPUTS)}")
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[2] != N_MELS or len(patches) == 0:
        raise ValueError(f"expected patches (n >= 1, frames, {N_MELS}), got shape {patches.shape}")
    if patches.shape[1] < 8:
        raise ValueError(f"patches need at least 8 frames (three 2x2 poolings), got {patches.shape[1]}")
    run = _compiled()
    parts = [run(patches[i:i + batch_size]).numpy() for i in range(0, len(patches), batch_size)]
    return {"embedding": np.concatenate(parts).astype(np.float32, copy=False)}


def aisfx_embeddings(y: np.ndarray, sample_rate: int, batch_size: int = 16) -> np.ndarray:
    """aiSFX's embedding of each 2.3-s patch of a mono clip: (n_patches, 512) float32, patches
    every 1.16 s (:func:`patch_starts`), as ``aisfx.inference.main`` saves them."""
    patches = aisfx_patches(aisfx_frontend(y, sample_rate))
    return aisfx_outputs(patches, batch_size=batch_size)["embedding"]


def pool_patches(values: np.ndarray, pooling: Sequence[tuple[str, str]] = DEFAULT_POOLING
                 ) -> np.ndarray:
    """One clip's embedding from its per-patch vectors ``values`` (n_patches, 512): for each
    ``(output, statistic)`` of ``pooling`` the mean (in float64) or max over patches, all
    concatenated, float32 -- the rule of :class:`helpers.pretrained.EmbeddingConfig`."""
    values = np.asarray(values)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"expected per-patch vectors (n >= 1, width), got shape {values.shape}")
    parts = []
    for output, stat in pooling:
        if output not in VECTOR_WIDTHS:
            raise ValueError(f"aiSFX has no per-patch vector {output!r}; choose among "
                             f"{list(VECTOR_WIDTHS)}")
        if stat not in ("mean", "max"):
            raise ValueError(f"statistic must be 'mean' or 'max', not {stat!r}")
        parts.append(values.max(axis=0) if stat == "max"
                     else values.astype(np.float64).mean(axis=0))
    return np.concatenate(parts).astype(np.float32)


def aisfx_clip_embedding(y: np.ndarray, sample_rate: int,
                         pooling: Sequence[tuple[str, str]] = DEFAULT_POOLING) -> np.ndarray:
    """A clip's pooled aiSFX embedding, (512 x len(pooling),) float32: the patches' embeddings
    reduced by :func:`pool_patches` (by default their mean, then their max)."""
    return pool_patches(aisfx_embeddings(y, sample_rate), pooling)
