"""Pretrained musicnn: the port equals musicnn's TF1 graph, the front end, weights, embeddings."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import pretrained as P
from helpers.audio import load_audio
from helpers.features import window_starts
from tests.conftest import tone

pytest.importorskip("musicnn", reason=f"needs the musicnn checkpoints: {P.INSTALL_HINT}")

SR = 22050  # the rate the clips are written at (resampled to 16 kHz by the front end)
SMALL = P.EmbeddingConfig(models=("MTT_musicnn",), pooling=(("taggram", "mean"),
                                                            ("max_pool", "max")))


def noise(seconds: float, sr: int = SR, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    y = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return (amp * y / np.abs(y).max()).astype(np.float32)


def chirp(seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * (100 * t + 400 * t ** 2))).astype(np.float32)


def square(seconds: float, sr: int = SR, freq: float = 110.0) -> np.ndarray:
    """Full scale (peak 1.0), rich in low harmonics: the clip that overflows musicnn's float16."""
    t = np.arange(int(seconds * sr)) / sr
    return np.sign(np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def clip_files(tmp_path):
    """Four clips: short (< 3 s) and long (> 3 s), quiet and full scale."""
    signals = {"tone.wav": tone(1.5, SR), "noise.wav": noise(4.0), "chirp.flac": chirp(7.0),
               "square.wav": square(3.5)}
    paths = {}
    for name, y in signals.items():
        paths[name] = tmp_path / name
        sf.write(paths[name], y, SR)
    return paths


def _clip_table(paths: dict) -> pd.DataFrame:
    return pd.DataFrame({"fname": list(paths), "path": list(paths.values()),
                         "label": ["A", "B"] * (len(paths) // 2) + ["A"] * (len(paths) % 2),
                         "split": "train"})


def test_tags_are_musicnn_s():
    from musicnn import configuration  # constants only (never musicnn.extractor)

    assert P.MTT_TAGS == tuple(configuration.MTT_LABELS)
    assert P.MSD_TAGS == tuple(configuration.MSD_LABELS)
    assert P.tags_of("MTT_vgg") is P.MTT_TAGS and P.tags_of("MSD_musicnn") is P.MSD_TAGS


# --- front end --------------------------------------------------------------------------------

def test_patch_length_is_musicnn_s_three_seconds():
    import librosa

    assert P.PATCH_FRAMES == librosa.time_to_frames(
        3, sr=P.SAMPLE_RATE, n_fft=P.N_FFT, hop_length=P.HOP_LENGTH) + 1


def test_frontend_shape_dtype_and_frames():
    y = tone(2.0, SR)
    rep = P.musicnn_frontend(y, SR)
    n16 = int(round(len(y) * P.SAMPLE_RATE / SR))
    assert rep.shape == (1 + n16 // P.HOP_LENGTH, P.N_MELS)
    assert rep.dtype == np.float32 and np.all(np.isfinite(rep)) and rep.min() >= 0


def test_frontend_is_finite_where_musicnn_s_float16_overflows():
    import librosa

    y = square(2.0)
    rep = P.musicnn_frontend(y, SR)
    assert np.all(np.isfinite(rep))
    # musicnn's own arithmetic: 10000 * x in float16 -> inf for this full-scale clip
    y16 = librosa.resample(y, orig_sr=SR, target_sr=P.SAMPLE_RATE, res_type="soxr_hq")
    mel16 = librosa.feature.melspectrogram(y=y16, sr=P.SAMPLE_RATE, hop_length=P.HOP_LENGTH,
                                           n_fft=P.N_FFT, n_mels=P.N_MELS).T.astype(np.float16)
    with np.errstate(over="ignore"):
        theirs = np.log10(10000 * mel16 + 1)
    assert not np.all(np.isfinite(theirs))
    finite = np.isfinite(theirs)  # elsewhere: the same values, to float16 precision
    assert np.allclose(rep[finite], theirs[finite].astype(np.float32), rtol=2e-3, atol=2e-3)


def test_frontend_builds_the_mel_filter_bank_once_and_gives_librosa_s_values_bit_for_bit():
    import librosa

    for y in (tone(2.0, SR), chirp(4.0), noise(0.02)):
        y16 = librosa.resample(y, orig_sr=SR, target_sr=P.SAMPLE_RATE, res_type="soxr_hq")
        y16 = np.pad(y16, (0, max(0, P.N_FFT - len(y16))))
        mel = librosa.feature.melspectrogram(y=y16, sr=P.SAMPLE_RATE, hop_length=P.HOP_LENGTH,
                                             n_fft=P.N_FFT, n_mels=P.N_MELS).T
        mel16 = np.minimum(mel, np.finfo(np.float16).max).astype(np.float16)
        expected = np.log10(10000 * mel16.astype(np.float32) + 1).astype(np.float32)
        assert np.array_equal(P.musicnn_frontend(y, SR), expected)
    assert P._mel_basis() is P._mel_basis() and not P._mel_basis().flags.writeable


def test_short_clip_is_repeat_padded_to_one_patch():
    rep = P.musicnn_frontend(tone(1.0, SR), SR)
    n = rep.shape[0]
    assert n < P.PATCH_FRAMES
    patches = P.musicnn_patches(rep)
    assert patches.shape == (1, P.PATCH_FRAMES, P.N_MELS) and patches.dtype == np.float32
    assert np.array_equal(patches[0], rep[np.arange(P.PATCH_FRAMES) % n])


def test_a_clip_shorter_than_one_frame_gives_one_frame_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa warns when n_fft exceeds the signal
        rep = P.musicnn_frontend(tone(0.01, SR), SR)  # 10 ms: 160 samples at 16 kHz
    assert rep.shape[1] == P.N_MELS and rep.shape[0] >= 1 and np.isfinite(rep).all()


def test_long_clip_patches_do_not_overlap_and_the_last_ends_at_the_last_frame():
    rep = P.musicnn_frontend(chirp(7.0), SR)  # 438 frames: patches at 0, 187 and 251
    patches = P.musicnn_patches(rep)
    starts = window_starts(rep.shape[0], P.PATCH_FRAMES, P.PATCH_FRAMES)
    assert P.patch_starts(rep.shape[0]) == starts and len(starts) == 3
    assert patches.shape == (len(starts), P.PATCH_FRAMES, P.N_MELS)
    assert np.array_equal(patches[1], rep[P.PATCH_FRAMES:2 * P.PATCH_FRAMES])
    assert np.array_equal(patches[-1], rep[-P.PATCH_FRAMES:])


def test_patches_reject_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\(frames, 96\)"):
        P.musicnn_patches(np.zeros((200, 64), np.float32))


# --- the port against musicnn's own TF1 graph -------------------------------------------------

@pytest.mark.slow
def test_port_equals_musicnn_tf1_graph(clip_files, tmp_path):
    """Same front-end patches into both: musicnn's TF1 graph (own process) and the port."""
    patches = np.concatenate([
        P.musicnn_patches(P.musicnn_frontend(load_audio(p, P.SAMPLE_RATE), P.SAMPLE_RATE))
        for p in clip_files.values()])
    assert len(patches) == 1 + 2 + 3 + 2  # tone, noise, chirp, square
    np.savez(tmp_path / "patches.npz", patches=patches)
    script = Path(__file__).with_name("musicnn_tf1_reference.py")
    subprocess.run([sys.executable, str(script), str(tmp_path / "patches.npz"),
                    str(tmp_path / "tf1.npz"), *P.MUSICNN_MODELS],
                   check=True, capture_output=True, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"})
    tf1 = np.load(tmp_path / "tf1.npz")
    for name in P.MUSICNN_MODELS:
        compared = ("taggram", "penultimate", "mean_pool", "max_pool", "cnn3") \
            if P.architecture(name) == "musicnn" else ("taggram", "pool5")
        port = P.musicnn_outputs(patches, name, outputs=compared, batch_size=len(patches))
        for output in compared:
            ref = tf1[f"{name}__{output}"].reshape(port[output].shape)
            scale = max(1.0, float(np.abs(ref).max()))
            assert np.allclose(port[output], ref, atol=1e-4 * scale, rtol=0), (
                name, output, float(np.abs(port[output] - ref).max()))
        assert np.all((port["taggram"] > 0) & (port["taggram"] < 1))


# --- the networks and their weights -----------------------------------------------------------

@pytest.mark.parametrize("name", P.MUSICNN_MODELS)
def test_every_weight_comes_from_the_checkpoint(name):
    variables = P.read_checkpoint(P.checkpoint_dir(name))
    model = P.load_musicnn(name)
    assert not any("Adam" in k or k.startswith("beta") for k in variables)
    assert len(model.weights) == len(variables)
    assert sum(w.shape.num_elements() for w in model.weights) == sum(v.size for v in variables.values())
    untrained = P.build_musicnn(name)  # every weight changed from its initial value
    for loaded, fresh in zip(model.weights, untrained.weights):
        assert not np.allclose(loaded.numpy(), fresh.numpy()), loaded.name


def test_outputs_are_named_and_shaped_as_musicnn_s():
    out = P.musicnn_outputs(np.zeros((2, P.PATCH_FRAMES, P.N_MELS), np.float32), "MSD_musicnn")
    shapes = {k: v.shape for k, v in out.items()}
    assert shapes == {"taggram": (2, 50), "timbral": (2, 187, 408), "temporal": (2, 187, 153),
                      "cnn1": (2, 187, 64), "cnn2": (2, 187, 64), "cnn3": (2, 187, 64),
                      "mean_pool": (2, 753), "max_pool": (2, 753), "penultimate": (2, 200)}
    assert P.load_musicnn("MSD_musicnn") is P.load_musicnn(name="MSD_musicnn")  # loaded once
    assert P.load_musicnn() is P.load_musicnn("MTT_musicnn")
    # musicnn networks take any length (trained on 3 s), the VGGs exactly 187 frames
    longer = np.zeros((1, 300, P.N_MELS), np.float32)
    assert P.musicnn_outputs(longer, "MTT_musicnn", ["cnn1"])["cnn1"].shape == (1, 300, 64)
    with pytest.raises(ValueError, match="exactly 187 frames, got 300"):
        P.musicnn_outputs(longer, "MTT_vgg")


def test_a_checkpoint_that_does_not_fit_is_refused():
    variables = P.read_checkpoint(P.checkpoint_dir("MTT_musicnn"))
    model = P.build_musicnn("MTT_musicnn")
    extra = {"global_step": np.zeros(()), "extra/thing": np.zeros(3)}
    with pytest.raises(ValueError, match="left unused: extra/thing, global_step"):
        P.assign_checkpoint(model, {**variables, **extra}, "MTT_musicnn")
    missing = {k: v for k, v in variables.items() if k != "dense_1/bias"}
    with pytest.raises(ValueError, match=r"logits/bias \(50,\): dense_1/bias missing"):
        P.assign_checkpoint(model, missing, "MTT_musicnn")
    vgg = P.read_checkpoint(P.checkpoint_dir("MTT_vgg"))
    with pytest.raises(ValueError, match="conv layers in the port"):
        P.assign_checkpoint(model, vgg, "MTT_musicnn")


def test_missing_checkpoint_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no musicnn checkpoint.*--no-deps"):
        P.read_checkpoint(tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / ".index").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken: cannot read the musicnn checkpoint"):
        P.read_checkpoint(tmp_path / "broken")


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install --no-deps "musicnn>=0.1,<0.2"'):
        P.musicnn_dir()


def test_unknown_model_and_output_are_refused():
    with pytest.raises(ValueError, match="unknown musicnn model 'MTT_big'"):
        P.build_musicnn("MTT_big")
    with pytest.raises(ValueError, match=r"MTT_vgg has no output\(s\) \['penultimate'\]"):
        P.musicnn_outputs(np.zeros((1, 187, 96), np.float32), "MTT_vgg", outputs=["penultimate"])


def test_import_is_cheap_and_never_imports_musicnn():
    code = ("import sys, helpers.pretrained as p; p.musicnn_dir(); "
            "assert 'tensorflow' not in sys.modules, 'imports TensorFlow eagerly'; "
            "assert not any(m.startswith('musicnn') for m in sys.modules), 'imports musicnn'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_taggram_over_time():
    y = chirp(7.0)
    tags = P.taggram_for(y, SR, "MTT_musicnn")
    assert list(tags.columns) == list(P.MTT_TAGS) and len(tags.columns) == 50
    starts = np.array(P.patch_starts(P.musicnn_frontend(y, SR).shape[0]))
    assert np.allclose(tags.index, starts * P.HOP_LENGTH / P.SAMPLE_RATE)
    assert tags.index.name == "start_s" and tags.index[0] == 0
    assert ((tags.to_numpy() > 0) & (tags.to_numpy() < 1)).all()


# --- clip embeddings --------------------------------------------------------------------------

def test_embedding_config_is_validated_and_sized():
    assert P.EmbeddingConfig().dim == 2 * (753 + 753 + 200 + 50)
    assert SMALL.dim == 50 + 753
    as_lists = P.EmbeddingConfig(models=["MTT_musicnn"], pooling=[["taggram", "mean"], ["max_pool", "max"]])
    assert as_lists == SMALL and hash(as_lists) == hash(SMALL)
    with pytest.raises(ValueError, match="no model of .* has a per-patch vector 'timbral'"):
        P.EmbeddingConfig(pooling=(("timbral", "mean"),))
    with pytest.raises(ValueError, match="'mean' or 'max', not 'median'"):
        P.EmbeddingConfig(pooling=(("taggram", "median"),))
    with pytest.raises(ValueError, match="MTT_vgg has none of the pooled outputs"):
        P.EmbeddingConfig(models=("MTT_musicnn", "MTT_vgg"), pooling=(("mean_pool", "mean"),))
    # each model pools the outputs it has: a VGG network only its taggram, aiSFX its embedding
    with pytest.raises(ValueError, match=r"no model of \['MTT_vgg'\] has a per-patch vector 'mean_pool'"):
        P.EmbeddingConfig(models=("MTT_vgg",))
    vgg = P.EmbeddingConfig(models=("MTT_musicnn", "MTT_vgg"))
    assert [b[:3] for b in vgg.blocks() if b[0] == "MTT_vgg"] == [("MTT_vgg", "taggram", "mean")]
    both = P.EmbeddingConfig(models=("MTT_musicnn", P.AISFX),
                             pooling=(("taggram", "mean"), ("embedding", "mean"), ("embedding", "max")))
    assert [(m, o, s) for m, o, s, _ in both.blocks()] == [
        ("MTT_musicnn", "taggram", "mean"), (P.AISFX, "embedding", "mean"), (P.AISFX, "embedding", "max")]
    assert both.dim == 50 + 2 * 512 and both.uses_aisfx and not SMALL.uses_aisfx


def test_embeddings_align_with_clips_and_skip_bad_files(clip_files, tmp_path):
    paths = dict(clip_files)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    sf.write(tmp_path / "quiet.wav", np.zeros(SR, np.float32), SR)
    table = _clip_table({"tone.wav": paths["tone.wav"], "broken.wav": tmp_path / "broken.wav",
                         "chirp.flac": paths["chirp.flac"], "quiet.wav": tmp_path / "quiet.wav",
                         "noise.wav": paths["noise.wav"]})
    with pytest.warns(UserWarning, match="skipped 2 of 5 clips"):
        emb = P.clip_embeddings(table, SMALL, progress=False, batch_patches=4)
    assert list(emb.clips["fname"]) == ["tone.wav", "chirp.flac", "noise.wav"]
    assert list(emb.clips["label"]) == list(table["label"].iloc[[0, 2, 4]])
    assert dict(zip(emb.skipped["fname"], emb.skipped["reason"]))["quiet.wav"].startswith("silent")
    assert set(emb.skipped["fname"]) == {"broken.wav", "quiet.wav"}
    assert emb.X.shape == (3, SMALL.dim) and emb.X.dtype == np.float32
    assert np.all(np.isfinite(emb.X)) and list(emb.n_patches) == [1, 3, 2]
    # row i is clip i, pooled as documented: mean taggram, max of max_pool over its patches
    patches = P.musicnn_patches(P.musicnn_frontend(load_audio(paths["chirp.flac"], 16000), 16000))
    alone = P.musicnn_outputs(patches, "MTT_musicnn")
    assert np.allclose(emb.block("MTT_musicnn", "taggram")[1], alone["taggram"].mean(0), atol=1e-5)
    assert np.allclose(emb.block("MTT_musicnn", "max_pool", "max")[1], alone["max_pool"].max(0),
                       atol=1e-4)
    assert len(emb.select(np.array([True, False, True])).clips) == 2


def test_default_embedding_runs_both_models(clip_files):
    table = _clip_table({k: clip_files[k] for k in ("tone.wav", "square.wav")})
    emb = P.clip_embeddings(table, progress=False)
    assert emb.X.shape == (2, P.EmbeddingConfig().dim) and np.all(np.isfinite(emb.X))
    assert [b[:2] for b in emb.config.blocks()][:5] == [
        ("MTT_musicnn", "mean_pool"), ("MTT_musicnn", "max_pool"), ("MTT_musicnn", "penultimate"),
        ("MTT_musicnn", "taggram"), ("MSD_musicnn", "mean_pool")]
    assert not np.allclose(emb.block("MTT_musicnn", "taggram"), emb.block("MSD_musicnn", "taggram"))


def test_embeddings_come_from_the_cache_the_second_time(clip_files, tmp_path, monkeypatch):
    table = _clip_table({k: clip_files[k] for k in ("tone.wav", "noise.wav")})
    assert not P.embeddings_cached(table, SMALL)
    first = P.clip_embeddings(table, SMALL, progress=False)
    assert P.embeddings_cached(table, SMALL) and not P.embeddings_cached(table.iloc[:1], SMALL)

    def no_model(*args, **kwargs):
        raise AssertionError("the model ran again")

    monkeypatch.setattr(P, "musicnn_outputs", no_model)
    monkeypatch.setattr(P, "embed_patches", no_model)  # either engine
    again = P.clip_embeddings(table, SMALL, progress=False)
    assert np.array_equal(again.X, first.X) and list(again.clips["fname"]) == ["tone.wav", "noise.wav"]
    other = P.EmbeddingConfig(models=("MTT_musicnn",), pooling=(("taggram", "max"),))
    with pytest.raises(AssertionError, match="ran again"):  # another config: another entry
        P.clip_embeddings(table, other, progress=False)
    with pytest.raises(AssertionError, match="ran again"):  # another clip list: another entry
        P.clip_embeddings(table.iloc[:1], SMALL, progress=False)
    assert len(list((tmp_path / "cache").glob("embeddings-musicnn-*.npz"))) == 1


def test_cached_skips_warn_again(tmp_path, clip_files):
    (tmp_path / "broken.wav").write_bytes(b"junk")
    table = _clip_table({"tone.wav": clip_files["tone.wav"], "broken.wav": tmp_path / "broken.wav"})
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        P.clip_embeddings(table, SMALL, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = P.clip_embeddings(table, SMALL, progress=False)
    assert any("skipped 1 of 2" in str(w.message) for w in caught)
    assert list(emb.clips["fname"]) == ["tone.wav"]


# --- many clips at once (the fast engine) -----------------------------------------------------

def _patches_of(*signals) -> list[np.ndarray]:
    return [P.musicnn_patches(P.musicnn_frontend(y, SR)) for y in signals]


def test_shared_windows_rebuild_every_frame_and_window_of_every_patch():
    clips = _patches_of(tone(1.0, SR), chirp(7.0), tone(1.0, SR))  # tiled, overlapping, a copy
    patches = np.concatenate(clips)
    shared = P.SharedWindows.of(patches)
    assert np.array_equal(shared.frames[shared.frame_ids], patches)
    with_padding = np.concatenate([shared.frames, np.zeros((1, P.N_MELS), np.float32)])
    padded = np.pad(patches, ((0, 0), (3, 3), (0, 0)))  # the timbral filters' zero padding
    expected = np.stack([padded[:, i:i + P.PATCH_FRAMES] for i in range(7)], axis=2)
    assert np.array_equal(with_padding[shared.windows[shared.window_ids]], expected)
    # a tiled clip repeats its windows, the last patch of a long clip overlaps the one before,
    # and the copy repeats the first clip: far fewer windows than patch positions
    positions = len(patches) * P.PATCH_FRAMES
    assert len(np.unique(shared.windows, axis=0)) == len(shared.windows) < 0.6 * positions
    assert np.array_equal(shared.window_ids[0], shared.window_ids[-1])
    with pytest.raises(ValueError, match=r"expected patches \(n >= 1, 187, 96\)"):
        P.SharedWindows.of(np.zeros((2, 100, P.N_MELS), np.float32))


@pytest.fixture(scope="module")
def mixed_patches():
    """Clips of 1 to 3 patches (tiled, overlapping, full scale), enough for several calls of
    each fixed shape, and the patches they stack to."""
    clips = _patches_of(tone(1.5, SR), noise(4.0), chirp(7.0), square(3.5), tone(0.3, SR, 880.0))
    return clips, np.concatenate(clips)


@pytest.mark.slow
def test_the_fast_engine_gives_the_keras_models_outputs(mixed_patches):
    _, patches = mixed_patches
    for name in ("MTT_musicnn", "MSD_musicnn"):
        fast = P.fast_musicnn(name).outputs(P.SharedWindows.of(patches))
        keras = P.musicnn_outputs(patches, name, outputs=P.PATCH_VECTORS)
        for output in P.PATCH_VECTORS:
            assert fast[output].shape == keras[output].shape and fast[output].dtype == np.float32
            # float rounding only (the Keras model itself moves this much with the batch size)
            scale = np.abs(keras[output]).max()
            assert np.abs(fast[output] - keras[output]).max() <= 2e-5 * scale, (name, output)
    with pytest.raises(ValueError, match="not \\['timbral'\\]"):
        P.fast_musicnn("MTT_musicnn").outputs(P.SharedWindows.of(patches[:1]), ["timbral"])
    with pytest.raises(ValueError, match="runs musicnn networks, not MTT_vgg"):
        P.FastMusicnn("MTT_vgg")


@pytest.mark.slow
def test_with_the_fast_engine_a_clip_s_embedding_does_not_depend_on_the_clips_beside_it(
        mixed_patches):
    clips, _ = mixed_patches
    config = P.EmbeddingConfig()  # both networks, every pooled output
    together = P.embed_patches(clips, config, engine="fast")
    alone = np.concatenate([P.embed_patches([c], config, engine="fast") for c in clips])
    assert np.array_equal(together, alone)  # to the last bit
    order = [3, 0, 4, 2, 1]
    shuffled = P.embed_patches([clips[i] for i in order] + [clips[0]], config, engine="fast")
    assert np.array_equal(shuffled[:-1], together[order])
    assert np.array_equal(shuffled[-1], together[0])
    keras = np.concatenate([P.embed_patches([c], config) for c in clips])  # the path before
    for model, output, _, columns in config.blocks():  # float rounding, block by block
        scale = np.abs(keras[:, columns]).max()
        gap = np.abs(together[:, columns] - keras[:, columns]).max()
        assert gap <= 2e-5 * scale, (model, output)


@pytest.mark.slow
def test_both_networks_read_one_shared_front_end_and_give_what_each_gives_alone(mixed_patches):
    clips, _ = mixed_patches
    pooling = (("taggram", "mean"), ("max_pool", "max"))
    both = P.embed_patches(clips, P.EmbeddingConfig(pooling=pooling), engine="fast")
    each = [P.embed_patches(clips, P.EmbeddingConfig(models=(m,), pooling=pooling), engine="fast")
            for m in ("MTT_musicnn", "MSD_musicnn")]
    assert np.array_equal(both, np.concatenate(each, axis=1))


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown musicnn engine 'tflite'"):
        P.embed_patches([np.zeros((1, P.PATCH_FRAMES, P.N_MELS), np.float32)], SMALL,
                        engine="tflite")
