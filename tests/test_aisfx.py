"""Pretrained aiSFX: the port equals aiSFX's own Essentia front end and PyTorch network.

The reference outputs were computed by ``tests/aisfx_torch_reference.py`` (torch, Essentia and
aiSFX in a scratch environment; never run here) and stored in ``tests/data/aisfx_reference.npz``;
the inputs are rebuilt from the same script's recipe functions. Tests that need the checkpoint
skip when the ``aisfx`` package is not installed (``make setup`` installs it); it is found with
``find_spec``, never imported (its code needs torch).

Tolerances. Network: 1e-4 of the largest reference value. Both sides run in float32 but sum
the up to 4,608 products of each output in different orders (TensorFlow's and PyTorch's
convolution kernels) over eight layers, so the last digits differ; an error of the port itself
(a transposed kernel, a wrong epsilon or padding) moves values by whole percents. Front end:
1e-4 in normalised log-mel units (values 0..~1): Essentia computes in float32, the port in
float64.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import pretrained_aisfx as A
from tests.aisfx_torch_reference import (
    HEAD,
    SAMPLE_RATE,
    fixed_inputs,
    frame_indices,
    projection,
    signals,
)

REFERENCE = Path(__file__).parent / "data" / "aisfx_reference.npz"
NATIVE = ("tone_noise", "chirp", "burst")  # the clips at 44.1 kHz: no resampling
RESAMPLED = "chirp_22k"  # at 22.05 kHz: Essentia's libsamplerate vs the port's soxr

needs_aisfx = pytest.mark.skipif(importlib.util.find_spec("aisfx") is None,
                                 reason=f"needs the aiSFX checkpoint: {A.INSTALL_HINT}")


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


def _close_to_scale(port: np.ndarray, reference: np.ndarray, fraction: float) -> None:
    """Every value within ``fraction`` of the reference's largest magnitude."""
    np.testing.assert_allclose(port, reference, rtol=0,
                               atol=fraction * float(np.abs(reference).max()))


# --- the inputs are the reference's -----------------------------------------------------------

def test_the_recipe_rebuilds_the_reference_signals(ref):
    for name, (y, _) in signals().items():
        assert y.dtype == np.float32 and y.ndim == 1
        assert np.abs(y.astype(np.float64)).sum() == pytest.approx(float(ref[f"{name}__signal_sum"]),
                                                                   rel=1e-12), name
    assert {n: sr for n, (_, sr) in signals().items()} == {
        "tone_noise": SAMPLE_RATE, "chirp": SAMPLE_RATE, "burst": SAMPLE_RATE, "chirp_22k": 22050}


# --- front end --------------------------------------------------------------------------------

def test_constants_are_aisfx_s():
    assert (A.SAMPLE_RATE, A.FRAME_SIZE, A.HOP_SIZE, A.N_MELS) == (44100, 2048, 1024, 96)
    assert (A.PATCH_FRAMES, A.PATCH_HOP, A.EMBEDDING_DIM) == (100, 50, 512)
    assert A.CHANNELS == (64, 128, 256, 512) and A.BN_EPSILON == 1e-5  # EmbeddingNet(.., 64)


@pytest.mark.parametrize("name", [*NATIVE, RESAMPLED])
def test_frame_count_is_essentia_s(ref, name):
    y, sr = signals()[name]
    assert A.aisfx_frontend(y, sr).shape == (int(ref[f"{name}__n_frames"]), A.N_MELS)


@pytest.mark.parametrize("name", NATIVE)
def test_frontend_equals_essentia_s(ref, name):
    y, sr = signals()[name]
    rep = A.aisfx_frontend(y, sr)
    assert rep.dtype == np.float32
    idx = ref[f"{name}__frame_index"]
    assert list(idx) == frame_indices(len(rep))
    np.testing.assert_allclose(rep[idx], ref[f"{name}__frames"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(rep.mean(axis=0), ref[f"{name}__band_mean"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(rep.mean(axis=1), ref[f"{name}__frame_mean"], rtol=0, atol=1e-4)


def test_resampled_frontend_is_close_to_essentia_s(ref):
    """Resamplers differ (soxr here, libsamplerate in Essentia), most in the last frames and
    above the original Nyquist frequency: close on average, not to float precision."""
    y, sr = signals()[RESAMPLED]
    rep = A.aisfx_frontend(y, sr)
    assert np.abs(rep.mean(axis=0) - ref[f"{RESAMPLED}__band_mean"]).max() < 5e-3
    assert np.abs(rep.mean(axis=1) - ref[f"{RESAMPLED}__frame_mean"])[:-2].max() < 1e-3


def test_frontend_clips_like_essentia_s_loader_and_rejects_bad_input():
    y = np.sin(np.linspace(0, 200, 20000)).astype(np.float32)
    np.testing.assert_array_equal(A.aisfx_logmel(3 * y, A.SAMPLE_RATE),
                                  A.aisfx_logmel(np.clip(3 * y, -1, 1), A.SAMPLE_RATE))
    with pytest.raises(ValueError, match="mono"):
        A.aisfx_logmel(np.zeros((100, 2), np.float32), A.SAMPLE_RATE)
    with pytest.raises(ValueError, match="empty"):
        A.aisfx_logmel(np.zeros(0, np.float32), A.SAMPLE_RATE)


def test_mel_filterbank_is_unit_sum_triangles():
    fb = A.mel_filterbank()
    assert fb.shape == (96, 1025) and not fb.flags.writeable
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, rtol=1e-12)
    assert (fb >= 0).all()
    peaks = fb.argmax(axis=1) * 22050 / 1024  # Hz
    assert (np.diff(peaks) >= 0).all()
    top = 2595 * np.log10(1 + 22050 / 700) * 96 / 97  # the last band's centre, HTK mel
    assert abs(peaks[-1] - 700 * (10 ** (top / 2595) - 1)) < 22050 / 1024  # 21.25 kHz


@pytest.mark.parametrize("n_samples, n_frames", [(1, 2), (1024, 2), (1025, 3), (132300, 131)])
def test_frame_count(n_samples, n_frames):
    assert A.frame_count(n_samples) == n_frames


@pytest.mark.parametrize("n_frames, starts", [
    (30, [0]), (100, [0]), (131, [0]), (149, [0]), (150, [0, 50]), (260, [0, 50, 100, 150])])
def test_patches_are_aisfx_s_blocks(n_frames, starts):
    """aisfx.preprocessing.blocking(spec, 100, 50, drop_partial_block=True), whose block count
    is ceil((n - 100) / 50 + 1), less one when a block would be partial, at least one."""
    rep = np.random.default_rng(0).uniform(size=(n_frames, 96)).astype(np.float32)
    assert A.patch_starts(n_frames) == starts
    patches = A.aisfx_patches(rep)
    assert patches.shape == (len(starts), 100, 96)
    expected = int(np.ceil((n_frames - 100) / 50 + 1)) - ((n_frames - 100) % 50 != 0)
    assert len(starts) == max(expected, 1)
    for patch, start in zip(patches, starts):
        part = rep[start:start + 100]
        np.testing.assert_array_equal(patch[:len(part)], part)
        assert not patch[len(part):].any()  # a short clip: zeros after it


def test_patches_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"\(frames, 96\)"):
        A.aisfx_patches(np.zeros((10, 40), np.float32))
    with pytest.raises(ValueError, match=r"\(frames, 96\)"):
        A.aisfx_patches(np.zeros((0, 96), np.float32))


# --- the checkpoint, read without torch -------------------------------------------------------

@needs_aisfx
def test_checkpoint_reader_gives_torch_s_tensors(ref):
    state, datasets = A.read_checkpoint()
    names = [str(n) for n in ref["checkpoint__names"]]
    assert list(state) == names and len(state) == 102
    shapes = json.loads(str(ref["checkpoint__shapes_json"]))
    assert [list(v.shape) for v in state.values()] == shapes
    sums = [float(np.asarray(v, dtype=np.float64).sum()) for v in state.values()]
    np.testing.assert_allclose(sums, ref["checkpoint__sums"], rtol=1e-9, atol=1e-9)
    assert state["embedding_net.conv_block1.conv1.weight"].dtype == np.float32
    assert state["embedding_net.conv_block1.bn1.num_batches_tracked"].dtype == np.int64
    assert datasets == {k: tuple(v) for k, v in
                        json.loads(str(ref["checkpoint__datasets_json"])).items()}


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError,
                       match=r'models/checkpoint\.pth.*pip install --no-deps "aisfx>=0\.1\.2,<0\.2"'):
        A.checkpoint_path()


def test_missing_checkpoint_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(A, "aisfx_dir", lambda: tmp_path / "aisfx")
    with pytest.raises(FileNotFoundError, match=r"aisfx/models/checkpoint\.pth"):
        A.checkpoint_path()


def test_reader_refuses_code_and_other_formats(tmp_path):
    import os

    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(os.getcwd))
    with pytest.raises(ValueError, match=r"refusing to load the global \w+\.getcwd"):
        A.read_torch_checkpoint(bad)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a zip-format"):
        A.read_torch_checkpoint(legacy)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        A.read_torch_checkpoint(tmp_path / "missing.pth")


def _text(value: str) -> bytes:
    """Pickle's BINUNICODE opcode."""
    return b"X" + struct.pack("<I", len(value)) + value.encode()


def _tiny_checkpoint(path: Path, columns: int) -> Path:
    """A (2, columns) tensor viewing a storage of 7 floats at offset 1 with stride (1, 2) (a
    transposed view), pickled opcode by opcode as torch.save writes it (torch is not needed)."""
    pickled = b"".join([
        b"\x80\x02}", _text("w"),  # protocol 2, {"w": ...
        b"ctorch._utils\n_rebuild_tensor_v2\n(",  # _rebuild_tensor_v2(
        b"(", _text("storage"), b"ctorch\nFloatStorage\n", _text("0"), _text("cpu"),
        b"K\x07tQ",  # the persistent id ("storage", FloatStorage, "0", "cpu", 7),
        b"K\x01(K\x02", bytes([ord("K"), columns]), b"t(K\x01K\x02t\x89Nt",  # offset 1, size,
        b"Rs.",  # stride (1, 2), ...): call, set the item, stop
    ])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("tiny/data.pkl", pickled)
        archive.writestr("tiny/data/0", np.arange(7, dtype="<f4").tobytes())
    return path


def test_reader_rebuilds_strided_tensors(tmp_path):
    loaded = A.read_torch_checkpoint(_tiny_checkpoint(tmp_path / "tiny.pth", 3))
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], [[1, 3, 5], [2, 4, 6]])
    with pytest.raises(ValueError, match="reaches past its storage of 7"):
        A.read_torch_checkpoint(_tiny_checkpoint(tmp_path / "long.pth", 4))


# --- the network ------------------------------------------------------------------------------

@needs_aisfx
def test_network_equals_torch_s_on_fixed_inputs(ref):
    port = A.aisfx_outputs(fixed_inputs())["embedding"]
    assert port.shape == (2, 512) and port.dtype == np.float32
    _close_to_scale(port, ref["fixed__embedding"], 1e-4)


@needs_aisfx
@pytest.mark.parametrize("name", NATIVE)
def test_embeddings_from_audio_equal_aisfx_s(ref, name):
    y, sr = signals()[name]
    emb = A.aisfx_embeddings(y, sr)
    n_patches = len(A.patch_starts(int(ref[f"{name}__n_frames"])))
    assert emb.shape == (n_patches, 512) == (len(ref[f"{name}__embedding_norm"]), 512)
    _close_to_scale(emb[:, :HEAD], ref[f"{name}__embedding_head"], 1e-4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), ref[f"{name}__embedding_norm"],
                               rtol=1e-4)
    _close_to_scale(emb @ projection(), ref[f"{name}__embedding_projection"], 1e-4)


@needs_aisfx
def test_resampled_embeddings_are_close_to_aisfx_s(ref):
    y, sr = signals()[RESAMPLED]
    emb = A.aisfx_embeddings(y, sr)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), ref[f"{RESAMPLED}__embedding_norm"],
                               rtol=1e-2)
    _close_to_scale(emb @ projection(), ref[f"{RESAMPLED}__embedding_projection"], 1e-2)


@needs_aisfx
def test_model_has_the_checkpoint_s_embedding_weights():
    model = A.load_aisfx()
    state, _ = A.read_checkpoint()
    embedding = [k for k in state if k.startswith("embedding_net.")
                 and not k.endswith("num_batches_tracked")]
    assert model.count_params() == sum(state[k].size for k in embedding)
    kernel = model.get_layer("block2_conv1").get_weights()[0]
    np.testing.assert_array_equal(kernel, state["embedding_net.conv_block2.conv1.weight"]
                                  .transpose(2, 3, 1, 0))
    assert model.get_layer("block1_bn1").epsilon == 1e-5


def test_assign_reports_what_does_not_fit():
    model = A.build_aisfx()
    state = {"embedding_net.conv_block1.conv1.weight": np.zeros((64, 1, 5, 5), np.float32)}
    with pytest.raises(ValueError, match=r"conv_block1\.conv1\.weight: expected \(64, 1, 3, 3\), "
                                         r"found \(64, 1, 5, 5\).*conv_block1\.bn1\.weight: "
                                         r"expected \(64,\), missing"):
        A.assign_checkpoint(model, state)


@needs_aisfx
def test_outputs_reject_bad_requests():
    with pytest.raises(ValueError, match="no output"):
        A.aisfx_outputs(fixed_inputs(), outputs=("taggram",))
    with pytest.raises(ValueError, match=r"patches \(n >= 1, frames, 96\)"):
        A.aisfx_outputs(np.zeros((1, 100, 40), np.float32))


# --- clip embeddings --------------------------------------------------------------------------

def test_pooling_follows_embedding_config_s_rule():
    values = np.random.default_rng(0).uniform(size=(5, 512)).astype(np.float32)
    pooled = A.pool_patches(values, (("embedding", "max"), ("embedding", "mean")))
    assert pooled.shape == (1024,) and pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled[:512], values.max(axis=0))
    np.testing.assert_allclose(pooled[512:], values.astype(np.float64).mean(axis=0), rtol=1e-7)
    with pytest.raises(ValueError, match="no per-patch vector 'taggram'"):
        A.pool_patches(values, (("taggram", "mean"),))
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        A.pool_patches(values, (("embedding", "median"),))


@needs_aisfx
def test_clip_embedding_pools_the_patch_embeddings():
    y, sr = signals()["chirp"]
    per_patch = A.aisfx_embeddings(y, sr)
    clip = A.aisfx_clip_embedding(y, sr)
    assert clip.shape == (2 * A.EMBEDDING_DIM,)
    np.testing.assert_allclose(clip, A.pool_patches(per_patch), rtol=1e-6)


# --- beside musicnn in one clip embedding (helpers.pretrained) --------------------------------

BESIDE = ("MTT_musicnn", "aisfx")
BESIDE_POOLING = (("taggram", "mean"), ("embedding", "mean"), ("embedding", "max"))


@needs_aisfx
def test_a_clip_embedding_holds_aisfx_beside_musicnn_and_predict_computes_the_same(tmp_path):
    """clip_embeddings reads each clip at 44.1 kHz for aiSFX and pools its patch embeddings as
    aisfx_clip_embedding does; a transfer bundle's TransferClips gives the same vectors."""
    import pandas as pd
    import soundfile as sf

    from helpers import pretrained as P
    from helpers.predict import TransferClips
    from helpers.transfer import TransferHead, TransferRecipe

    config = P.EmbeddingConfig(models=BESIDE, pooling=BESIDE_POOLING, max_seconds=4.0)
    rng = np.random.default_rng(0)
    paths = []
    for i, seconds in enumerate((3.5, 1.0)):  # the second is shorter than one aiSFX patch
        t = np.arange(int(seconds * 22050)) / 22050
        y = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.01 * rng.standard_normal(len(t))
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], y.astype(np.float32), 22050)
    clips = pd.DataFrame({"fname": [p.name for p in paths], "path": [str(p) for p in paths]})
    emb = P.clip_embeddings(clips, config, use_cache=False, progress=False)
    assert emb.X.shape == (2, config.dim) and np.all(np.isfinite(emb.X))
    from helpers.audio import load_audio

    for row, path in enumerate(paths):
        y44 = load_audio(path, sample_rate=A.SAMPLE_RATE, max_seconds=4.0)
        expected = A.aisfx_clip_embedding(y44, A.SAMPLE_RATE)
        np.testing.assert_allclose(emb.block("aisfx", "embedding", "mean")[row], expected[:512], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(emb.block("aisfx", "embedding", "max")[row], expected[512:], rtol=1e-5, atol=1e-6)
    recipe = TransferRecipe("logistic on MTT + aiSFX", config, TransferHead(C=1.0))
    model = TransferClips(recipe, arrays={}, classes=["a", "b"])
    inputs = [model.inputs_of_file(p) for p in paths]
    assert all(isinstance(x, tuple) and len(x) == 2 for x in inputs)
    X = P.embed_patches([x[0] for x in inputs], config, engine="fast", aisfx_patches=[x[1] for x in inputs])
    np.testing.assert_allclose(X, emb.X, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="give aisfx_patches"):
        P.embed_patches([x[0] for x in inputs], config, engine="fast")


@needs_aisfx
def test_in_a_call_of_fixed_size_a_patch_does_not_depend_on_its_neighbours():
    """What lets embed_patches batch the patches of many clips: in calls of AISFX_CALL patches,
    a patch's embedding is the same at any place and beside any other patches."""
    from helpers.pretrained import AISFX_CALL

    rng = np.random.default_rng(1)
    patches = rng.uniform(0, 1, (AISFX_CALL + 1, A.PATCH_FRAMES, A.N_MELS)).astype(np.float32)
    a = A.aisfx_outputs(patches[:AISFX_CALL], batch_size=AISFX_CALL)["embedding"]
    shifted = A.aisfx_outputs(patches[1:], batch_size=AISFX_CALL)["embedding"]
    reversed_ = A.aisfx_outputs(patches[:AISFX_CALL][::-1].copy(), batch_size=AISFX_CALL)["embedding"][::-1]
    np.testing.assert_array_equal(a[1:], shifted[:-1])
    np.testing.assert_array_equal(a, reversed_)
