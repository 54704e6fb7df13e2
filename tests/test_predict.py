"""`python -m helpers predict`: CSV for every readable file, clear errors for the others; the
same CSV whether files are batched or not; calibrated probabilities and the OOD columns; model
kinds."""

import csv
import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import tone

from helpers.features import FeatureConfig
from helpers.predict import HEADER, predict_paths, top_k

CLASSES = ("Cello", "Flute", "Snare_drum")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small (untrained) CNN saved as a bundle: enough to test the plumbing."""
    from helpers.models import CNNConfig, build_cnn, save_bundle
    from helpers.training import set_seed

    cfg = FeatureConfig(n_mels=16)
    set_seed(0)
    model = build_cnn(cfg.input_shape, len(CLASSES), CNNConfig((4,), (3,), (8,)))
    path = tmp_path_factory.mktemp("models") / "tiny"
    return save_bundle(path, model, CLASSES, cfg, np.zeros(16, np.float32), np.ones(16, np.float32))


def _rows(text):
    return list(csv.reader(io.StringIO(text)))


def test_folder_and_files_give_one_row_each_and_bad_files_are_reported(bundle, tmp_path, write_tone):
    write_tone("clips/a.wav", seconds=0.4)
    write_tone("clips/sub/b.flac", seconds=7.5, sr=44100, channels=2)
    write_tone("clips/sub/c.ogg", seconds=1.2, subtype="VORBIS")
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF nonsense")
    single = write_tone("single.wav", seconds=2.0)
    out, err = io.StringIO(), io.StringIO()
    status = predict_paths([tmp_path / "clips", single, tmp_path / "missing.wav"], model=bundle,
                           out=out, err=err)
    rows = _rows(out.getvalue())
    assert tuple(rows[0]) == HEADER
    assert sorted(r[0].split("/")[-1] for r in rows[1:]) == ["a.wav", "b.flac", "c.ogg", "single.wav"]
    for r in rows[1:]:
        names = r[1:6:2]  # top1, top2, top3
        assert set(names) <= set(CLASSES) and len(set(names)) == 3
        probs = [float(p) for p in r[2::2]]
        assert probs == sorted(probs, reverse=True) and 0.99 <= sum(probs) <= 1.01
    assert status == 1
    assert "broken.wav: cannot decode" in err.getvalue()
    assert "missing.wav: no such file or folder" in err.getvalue()


def test_a_file_below_the_models_sample_rate_is_predicted_with_a_note(bundle, tmp_path, write_tone):
    phone = write_tone("phone.wav", seconds=1.0, sr=8000)
    studio = write_tone("studio.wav", seconds=1.0, sr=44100)
    out, err = io.StringIO(), io.StringIO()
    assert predict_paths([phone, studio], model=bundle, out=out, err=err) == 0
    assert len(_rows(out.getvalue())) == 3  # header + both files
    assert err.getvalue().count("note: recorded at") == 1
    assert (f"{phone}: note: recorded at 8,000 Hz, so it holds nothing above 4,000 Hz; the model "
            "reads 22,050 Hz audio (up to 11,025 Hz)") in err.getvalue()


def test_folders_are_named_when_they_hold_nothing_usable_or_skip_other_formats(bundle, tmp_path,
                                                                                write_tone):
    write_tone("mixed/ok.wav", seconds=1.0)
    (tmp_path / "mixed" / "song.mp3").write_bytes(b"ID3")
    (tmp_path / "mixed" / "notes.txt").write_text("not audio, not mentioned")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_mp3").mkdir()
    (tmp_path / "only_mp3" / "a.mp3").write_bytes(b"ID3")
    out, err = io.StringIO(), io.StringIO()
    status = predict_paths([tmp_path / "mixed", tmp_path / "empty"], model=bundle, out=out, err=err)
    assert len(_rows(out.getvalue())) == 2  # the header and ok.wav
    message = err.getvalue()
    assert f"{tmp_path / 'mixed'}: skipped 1 file(s) of formats this tool does not read (1 .mp3)" in message
    assert "notes.txt" not in message and ".txt" not in message
    assert f"{tmp_path / 'empty'}: no audio files (WAV, FLAC or OGG) in this folder" in message
    assert status == 1  # a folder asked for gave nothing
    err = io.StringIO()
    assert predict_paths([tmp_path / "only_mp3"], model=bundle, out=io.StringIO(), err=err) == 1
    assert "only_mp3: no audio files (WAV, FLAC or OGG) in this folder; skipped 1 file(s)" in err.getvalue()
    assert f"no audio files found (WAV, FLAC or OGG) in {tmp_path / 'only_mp3'}" in err.getvalue()


def test_a_tflite_bundle_folder_loads_the_model_its_meta_names(bundle, tmp_path, write_tone):
    """--model models/instrument_cnn_tflite (the folder notebook 06 writes) runs the TFLite
    model named by its meta.json, as the .tflite file itself does; a damaged meta.json is named."""
    import shutil

    from helpers.models import META_FILE, load_bundle, read_meta
    from helpers.predict import load_predictor
    from helpers.pruning import save_tflite_bundle, to_tflite

    keras = load_bundle(bundle)
    folder = tmp_path / "tfl"
    save_tflite_bundle(folder, {"dense_float": to_tflite(keras.model, "float")}, CLASSES,
                       keras.feature_config, keras.mean, keras.std)
    assert read_meta(folder)["model_file"] == "dense_float.tflite"
    clip = write_tone("x.wav", seconds=1.5)
    np.testing.assert_array_equal(load_predictor(folder).predict_file(clip),
                                  load_predictor(folder / "dense_float.tflite").predict_file(clip))
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"broken/meta.json: not a readable meta.json"):
        load_predictor(broken)


def test_all_good_files_exit_zero_through_the_command_line(bundle, write_tone):
    path = write_tone("ok.wav", seconds=1.0)
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model", str(bundle), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert len(rows) == 2 and rows[1][0] == str(path)


def test_missing_model_is_a_clear_error(tmp_path, write_tone):
    path = write_tone("ok.wav")
    done = subprocess.run([sys.executable, "-m", "helpers", "predict", "--model",
                           str(tmp_path / "nope"), str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "model not found" in done.stderr


def test_top_k_orders_by_probability():
    assert top_k(np.array([0.1, 0.6, 0.3]), CLASSES) == ["Flute", "0.6000", "Snare_drum", "0.3000",
                                                         "Cello", "0.1000"]


# ----------------------------------------------------------------------------- batching


def _write_clips(tmp_path, write_tone):
    """Clips of 1 to 8 windows, a broken file among them, in a known sorted order."""
    write_tone("batch/a_short.wav", seconds=0.4)  # one (padded) window
    write_tone("batch/b_long.flac", seconds=7.5, sr=44100, channels=2, freq=220.0)
    (tmp_path / "batch" / "c_broken.wav").write_bytes(b"RIFF nonsense")
    write_tone("batch/d.wav", seconds=3.0, freq=660.0)
    write_tone("batch/e.ogg", seconds=1.2, subtype="VORBIS", freq=330.0)
    write_tone("batch/f.wav", seconds=2.0, freq=880.0)
    return tmp_path / "batch"


def _predict_text(paths, model, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    status = predict_paths(paths, model=model, out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_batched_and_unbatched_predictions_agree_and_the_csv_is_unchanged(bundle, tmp_path,
                                                                          write_tone):
    from helpers.predict import load_predictor

    folder = _write_clips(tmp_path, write_tone)
    one_by_one = _predict_text([folder], bundle, batch_files=1)  # one model call per file
    for options in ({}, {"batch_files": 2}, {"batch_windows": 3}):
        batched = _predict_text([folder], bundle, **options)
        assert batched == one_by_one, options  # same CSV, same errors, same exit status
    status, text, err = one_by_one
    assert status == 1 and "c_broken.wav: cannot decode" in err and "1 file(s)" in err
    names = [r[0].split("/")[-1] for r in _rows(text)[1:]]
    assert names == ["a_short.wav", "b_long.flac", "d.wav", "e.ogg", "f.wav"]

    files = sorted(folder.iterdir())
    per_file = list(load_predictor(bundle, batch_files=1).iter_files(files))
    together = list(load_predictor(bundle).iter_files(files))
    assert [r.path for r in together] == files
    for a, b in zip(per_file, together):
        assert (a.error is None) == (b.error is None)
        if a.error is None:
            np.testing.assert_allclose(b.probs, a.probs, rtol=1e-5, atol=1e-6)


def _tflite_file(tmp_path, fixed_batch: bool):
    """A float TFLite model of 8x8 windows, 3 classes; ``fixed_batch``: batch size 1 only."""
    import tf_keras as keras

    from helpers.pruning import to_tflite
    from helpers.training import set_seed

    set_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 1), batch_size=1 if fixed_batch else None)
    x = layers.Conv2D(4, 3, activation="relu")(inputs)
    x = layers.Flatten()(x)
    probs = layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(x))
    path = tmp_path / f"fixed{fixed_batch}.tflite"
    path.write_bytes(to_tflite(keras.Model(inputs, probs), "float"))
    return path


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("fixed_batch", [False, True])
def test_tflite_batches_windows_or_falls_back_to_one_at_a_time(tmp_path, fixed_batch):
    from helpers.tflite import TFLiteModel

    path = _tflite_file(tmp_path, fixed_batch)
    X = np.random.default_rng(0).normal(size=(11, 8, 8, 1)).astype(np.float32)
    single = TFLiteModel(path, max_batch=1).predict(X)
    model = TFLiteModel(path, max_batch=4)
    assert model.batching is not fixed_batch
    batched = model.predict(X)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_one(X[3]), single[3], rtol=1e-5, atol=1e-6)
    assert model.predict(X[:0]).shape == (0, 3)


# ----------------------------------------------------------------------------- calibration, OOD


def _band_model(config, n_classes: int):
    """A model that follows the CNN layer contract and whose penultimate features are known:
    ``dense1`` gives the mean of every mel band over the window (the spectral envelope)."""
    import tf_keras as keras

    layers = keras.layers
    inputs = keras.Input(config.input_shape, name="features")
    dense = layers.Dense(config.n_mels, name="dense1")
    logits = layers.Dense(n_classes, name="logits")
    probs = layers.Activation("softmax", name="probs")(
        logits(dense(layers.Flatten(name="flatten")(inputs))))
    model = keras.Model(inputs, probs, name="cnn")
    frames = config.frames_per_window
    weights = np.zeros((config.n_mels, frames, config.n_mels), np.float32)
    for band in range(config.n_mels):
        weights[band, :, band] = 1.0 / frames
    dense.set_weights([weights.reshape(-1, config.n_mels), np.zeros(config.n_mels, np.float32)])
    rng = np.random.default_rng(0)
    logits.set_weights([rng.normal(size=(config.n_mels, n_classes)).astype(np.float32),
                        np.zeros(n_classes, np.float32)])
    return model


@pytest.fixture(scope="module")
def ood_bundles(tmp_path_factory):
    """Bundles of the band model: plain, with a temperature only, and with a temperature and a
    Mahalanobis detector fit on decaying harmonic tones of 150-600 Hz (instrument-like notes:
    clearly different from pure sines and noise). Returns (folder, training tones)."""
    from helpers.calibration import OODDetector
    from helpers.features import clip_windows, standardize
    from helpers.models import save_bundle
    from helpers.predict import cnn_clip_outputs

    cfg = FeatureConfig(n_mels=16)
    mean, std = np.full(16, -40.0, np.float32), np.full(16, 20.0, np.float32)
    model = _band_model(cfg, len(CLASSES))

    def features(signals):
        windows = [standardize(clip_windows(y, cfg), mean, std) for y in signals]
        ids = np.repeat([str(i) for i in range(len(windows))], [len(w) for w in windows])
        return cnn_clip_outputs(model, np.concatenate(windows), ids)[2]

    rng = np.random.default_rng(0)
    freqs = rng.uniform(150, 600, 60)
    train = [tone(1.5, 22050, f, amp=rng.uniform(0.2, 0.8)) for f in freqs]
    labels = np.digitize(freqs, [300, 450])
    detector = OODDetector.fit("mahalanobis", features(train), labels, fitted_on="60 tones")
    val = [tone(1.5, 22050, f, amp=rng.uniform(0.2, 0.8)) for f in rng.uniform(150, 600, 40)]
    detector = detector.with_threshold(detector.score(features(val)), accept=0.95)
    root = tmp_path_factory.mktemp("ood_models")
    args = (model, CLASSES, cfg, mean, std)
    calibration = {"temperature": 2.0, "fitted_on": "toy"}
    save_bundle(root / "plain", *args)
    save_bundle(root / "temperature", *args, calibration=calibration)
    save_bundle(root / "full", *args, calibration=calibration, ood=detector)
    return root, train


def test_predict_flags_a_pure_tone_and_white_noise_as_unlike_any_class(ood_bundles, tmp_path):
    import soundfile as sf

    from helpers.calibration import apply_temperature, synthetic_unlike
    from helpers.predict import OOD_COLUMNS, load_predictor

    root, train = ood_bundles
    unlike = synthetic_unlike(22050, seconds=1.5, seed=0)
    for name in ("sine_440Hz", "white_noise"):
        sf.write(tmp_path / f"{name}.wav", unlike[name], 22050)
    sf.write(tmp_path / "note.wav", train[0], 22050)  # a tone like the training data
    status, text, _ = _predict_text([tmp_path], root / "full")
    assert status == 0
    rows = _rows(text)
    assert tuple(rows[0]) == HEADER + OOD_COLUMNS == (
        "path", "top1", "top1_p", "top2", "top2_p", "top3", "top3_p", "ood_score", "status")
    status_of = {r[0].split("/")[-1]: r[-1] for r in rows[1:]}
    assert status_of == {"note.wav": "ok", "sine_440Hz.wav": "unlike any class",
                         "white_noise.wav": "unlike any class"}
    full = load_predictor(root / "full")
    for r in rows[1:]:
        score = float(r[7])
        assert (score <= full.ood.threshold) == (r[8] == "ok")
    # the printed probabilities are the calibrated ones
    plain = load_predictor(root / "plain")
    raw = plain.predict_file(tmp_path / "note.wav")
    np.testing.assert_allclose(full.predict_file(tmp_path / "note.wav"),
                               apply_temperature(raw[None], 2.0)[0], rtol=1e-6)
    # straight from waveforms: every synthetic sound is flagged
    _, scores = full.predict_signals(list(unlike.values()))
    assert not full.ood.accepts_scores(scores).any()


def test_a_temperature_alone_keeps_the_old_header(ood_bundles, tmp_path, write_tone):
    root, _ = ood_bundles
    clip = write_tone("a.wav", seconds=1.0)
    _, calibrated, _ = _predict_text([clip], root / "temperature")
    _, plain, _ = _predict_text([clip], root / "plain")
    assert _rows(calibrated)[0] == _rows(plain)[0] == list(HEADER)
    assert _rows(calibrated)[1][1] == _rows(plain)[1][1]  # same top class
    assert float(_rows(calibrated)[1][2]) < float(_rows(plain)[1][2])  # T = 2 softens


def test_a_bundle_written_before_calibration_still_predicts(bundle, tmp_path, write_tone):
    import json
    import shutil

    old = tmp_path / "old_bundle"
    shutil.copytree(bundle, old)
    meta = json.loads((old / "meta.json").read_text())
    meta.pop("kind")  # what save_bundle wrote before this change
    assert set(meta) == {"classes", "feature_config", "extra", "model_file"}
    (old / "meta.json").write_text(json.dumps(meta))
    clip = write_tone("a.wav")
    assert _predict_text([clip], old) == _predict_text([clip], bundle)
    assert _rows(_predict_text([clip], old)[1])[0] == list(HEADER)


def test_model_kinds_dispatch_on_meta_and_unknown_kinds_are_refused(bundle, tmp_path, write_tone,
                                                                    monkeypatch):
    import json
    import shutil

    from helpers.predict import MODEL_KINDS, ClipModel, ClipOutputs

    class Loudness(ClipModel):
        """A toy kind: 'Flute' when the clip is quiet, else 'Cello'; one value per clip."""

        kind = "loudness"
        classes = CLASSES
        has_features = False

        @classmethod
        def from_bundle(cls, folder, meta, **_):
            return cls()

        def inputs_of_signal(self, y):
            return float(np.sqrt(np.mean(y ** 2)))

        def predict(self, inputs, features=False):
            loud = np.asarray(inputs) > 0.1
            probs = np.where(loud[:, None], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1])
            return ClipOutputs(probs)

    other = tmp_path / "other_kind"
    shutil.copytree(bundle, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "kind": "loudness"}))
    clips = [write_tone("loud.wav", amp=0.9), write_tone("quiet.wav", amp=0.01)]
    with pytest.raises(ValueError, match="unknown model kind 'loudness'"):
        _predict_text(clips, other)
    monkeypatch.setitem(MODEL_KINDS, "loudness", Loudness)
    status, text, _ = _predict_text(clips, other)
    assert status == 0 and [r[1] for r in _rows(text)[1:]] == ["Cello", "Flute"]


@pytest.fixture(scope="module")
def transfer_bundle(tmp_path_factory):
    """A "transfer" bundle: musicnn embeddings (both networks) and a logistic head fit on random
    embeddings of the right width: enough to test the plumbing, offline."""
    from helpers.pretrained import EmbeddingConfig
    from helpers.transfer import TransferHead, TransferRecipe, save_transfer_bundle

    recipe = TransferRecipe("logistic on both", EmbeddingConfig(), TransferHead(C=1.0))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, len(recipe.columns())))
    y = np.array(CLASSES)[np.arange(30) % 3]
    head = recipe.head.make(0).fit(X, y)
    return save_transfer_bundle(tmp_path_factory.mktemp("models") / "transfer", recipe, head), head


@pytest.mark.slow
def test_a_transfer_bundle_predicts_with_the_pretrained_networks(transfer_bundle, write_tone):
    from helpers.predict import load_predictor
    from helpers.pretrained import clip_embeddings

    folder, head = transfer_bundle
    clip = write_tone("a/tone.wav", seconds=4.0)
    predictor = load_predictor(folder)
    assert predictor.clip_model.kind == "transfer" and predictor.clip_model.classes == CLASSES
    probs = predictor.predict_file(clip)
    import pandas as pd

    embedded = clip_embeddings(pd.DataFrame({"fname": ["tone.wav"], "path": [clip]}), progress=False)
    expected = head.predict_proba(embedded.X)[0]
    np.testing.assert_allclose(probs, expected, atol=1e-5)  # the numpy head = the pipeline


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fast", "keras"])
def test_a_transfer_model_gives_a_file_the_same_result_whatever_files_run_beside_it(
        transfer_bundle, write_tone, engine):
    """The Keras models change a patch's musicnn embedding in its last float digits with the
    patch's place in a batch. The fast engine runs every call at one fixed shape, where each
    patch is computed alike wherever it sits; the Keras engine gives each clip calls of its own.
    Either way one call per file and many files per call print the same probabilities, and a
    copy of a file gets the same row."""
    from helpers.predict import load_predictor

    folder, _ = transfer_bundle
    files = [write_tone(f"t/{i}.wav", seconds=s, freq=f)
             for i, (s, f) in enumerate([(2.0, 330.0), (7.0, 440.0), (4.0, 523.0), (2.0, 330.0)])]
    per_file = [r.probs for r in load_predictor(folder, batch_files=1, musicnn_engine=engine
                                                ).iter_files(files)]
    together = [r.probs for r in load_predictor(folder, musicnn_engine=engine).iter_files(files)]
    # equal up to the last bits of the float64 head (its matrix product blocks by row count)
    for a, b in zip(per_file, together, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(together[0], together[3], rtol=1e-12, atol=1e-15)  # a copy, elsewhere


@pytest.mark.slow
def test_the_fast_musicnn_engine_predicts_what_the_keras_engine_did(transfer_bundle, tmp_path,
                                                                     write_tone):
    """The fast engine (the default) against the path before it, on clips of one to four
    patches: the same probabilities up to float rounding, the same top class."""
    from helpers.predict import load_predictor

    folder, _ = transfer_bundle
    files = [write_tone(f"e/{i}.wav", seconds=s, freq=f)
             for i, (s, f) in enumerate([(0.5, 262.0), (2.5, 392.0), (5.0, 587.0), (10.0, 220.0)])]
    fast = load_predictor(folder)
    assert fast.clip_model.engine == "fast"
    new = np.stack([r.probs for r in fast.iter_files(files)])
    old = np.stack([r.probs for r in load_predictor(folder, musicnn_engine="keras"
                                                    ).iter_files(files)])
    np.testing.assert_allclose(new, old, atol=1e-5)  # as the Keras models move with batch size
    assert np.array_equal(new.argmax(axis=1), old.argmax(axis=1))


def test_an_unknown_musicnn_engine_is_refused(transfer_bundle):
    from helpers.predict import load_predictor

    with pytest.raises(ValueError, match="unknown musicnn engine 'tflite'"):
        load_predictor(transfer_bundle[0], musicnn_engine="tflite")


@pytest.mark.slow
def test_an_ensemble_averages_its_members(bundle, transfer_bundle, tmp_path, write_tone):
    import shutil

    from helpers.models import save_ensemble_bundle
    from helpers.predict import load_predictor

    folder, _ = transfer_bundle
    members = [("cnn", lambda f: shutil.copytree(bundle, f), 3.0),
               ("transfer", lambda f: shutil.copytree(folder, f), 1.0)]
    ensemble = save_ensemble_bundle(tmp_path / "ensemble", members, CLASSES, features_from="transfer")
    clip = write_tone("b/tone.wav", seconds=2.0)
    together = load_predictor(ensemble).predict_file(clip)
    cnn = load_predictor(bundle).predict_file(clip)
    transfer = load_predictor(folder).predict_file(clip)
    np.testing.assert_allclose(together, 0.75 * cnn + 0.25 * transfer, atol=1e-5)
    with pytest.raises(ValueError, match="distinct names"):
        save_ensemble_bundle(tmp_path / "bad", members, CLASSES, features_from="nope")
