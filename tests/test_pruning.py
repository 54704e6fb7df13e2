"""helpers.pruning: schedule, measured sparsity, file/TFLite size, TFLite bundle, sweep, plot."""

from __future__ import annotations

import io
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import helpers  # noqa: E402, F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from helpers.experiment import Prepared  # noqa: E402
from helpers.features import FeatureConfig, FeatureSet  # noqa: E402
from helpers.models import CNNConfig, build_cnn  # noqa: E402
from helpers.predict import load_predictor, predict_paths  # noqa: E402
from helpers.pruning import (  # noqa: E402
    Goals,
    PruneConfig,
    PruningWarning,
    assert_sparsity,
    check_goals,
    choose_sparsity,
    count_nonzero,
    gzip_size,
    keras_file_bytes,
    layer_sparsity,
    model_sizes,
    plot_sweep,
    prune_folds,
    prune_model,
    pruned_name,
    save_tflite_bundle,
    schedule_levels,
    schedule_steps,
    sparsity,
    sweep,
    tflite_scores,
    tflite_variants,
    to_tflite,
)
from helpers.tflite import compare_latency, tflite_latency, tflite_predict  # noqa: E402
from helpers.training import set_seed  # noqa: E402

# 8 mel bands x 8 frames: 1 + round(0.1625 s * 22050 Hz / 512) = 8
FEATURES = FeatureConfig(n_mels=8, window_seconds=0.1625, window_hop_seconds=0.1)
SHAPE = FEATURES.input_shape
CLASSES = ["Bass", "Cello", "Flute"]
CNN = CNNConfig(conv_filters=(8,), kernel_sizes=(3,), dense_units=(64,), dropout=0.0)


def _toy(y: np.ndarray, seed: int) -> np.ndarray:
    """Toy windows (n, 8, 8, 1) for labels ``y``: class c raises mel rows 2c..2c+2."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(len(y), *SHAPE)).astype(np.float32)
    for c in range(3):
        X[y == c, 2 * c:2 * c + 3] += 2.0
    return X


def _windows(n: int, seed: int):
    """``n`` toy windows and their labels (classes in turn)."""
    y = np.arange(n) % 3
    return _toy(y, seed), y


def _prepared(n_clips: int = 6, windows_per_clip: int = 2,
              names: tuple[str, ...] = ("train", "val", "test")) -> Prepared:
    """A Prepared with FeatureSets of toy windows (no audio): train/val/test by default; add
    cross_val/cross_test for a fold of the nested protocol."""
    splits = {}
    for seed, split in enumerate(names):
        n = n_clips * (4 if split == "train" else 1)
        fnames = [f"{split}{i}.wav" for i in range(n)]
        clips = pd.DataFrame({"fname": fnames, "label": [CLASSES[i % 3] for i in range(n)],
                              "split": split})
        y = np.repeat(np.arange(n) % 3, windows_per_clip)
        splits[split] = FeatureSet(X=_toy(y, 10 + seed), clip_ids=np.repeat(fnames,
                                   windows_per_clip), clips=clips, skipped=pd.DataFrame(),
                                   config=FEATURES)
    return Prepared(classes=CLASSES, feature_config=FEATURES, splits=splits,
                    mean=np.zeros(8, np.float32), std=np.ones(8, np.float32))


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained on the toy windows, with its data."""
    import tf_keras as keras

    X, y = _windows(240, 0)
    Xv, yv = _windows(60, 1)
    set_seed(0)
    model = build_cnn(SHAPE, 3, CNN)
    model.fit(X, keras.utils.to_categorical(y, 3), batch_size=32, epochs=4, verbose=0)
    return model, X, y, Xv, yv


@pytest.fixture(scope="module")
def pruned(trained):
    model, X, y, Xv, yv = trained
    config = PruneConfig(target_sparsity=0.75, fine_tune_epochs=3, batch_size=32,
                         learning_rate=1e-3)
    return prune_model(model, X, y, Xv, yv, 3, config, seed=0)


def test_schedule_reaches_the_target_inside_the_fine_tuning():
    s = schedule_steps(240, PruneConfig(0.8, fine_tune_epochs=3, batch_size=32))
    assert (s.steps_per_epoch, s.total_steps) == (8, 24)
    assert s.end_step <= s.total_steps and s.end_step % s.frequency == 0
    assert s.end_step >= 0.5 * s.total_steps and s.total_steps // s.frequency >= 5
    tiny = schedule_steps(40, PruneConfig(0.8, fine_tune_epochs=2, batch_size=32))
    assert tiny.total_steps == 4 and tiny.frequency == 1 and 1 <= tiny.end_step <= 4
    # TF-MOT's default frequency of 100 on a small dataset would never update a mask
    with pytest.raises(ValueError, match="never be updated"):
        schedule_steps(240, PruneConfig(0.8, fine_tune_epochs=3, frequency=100))


def test_config_validation():
    with pytest.raises(ValueError, match="target_sparsity"):
        PruneConfig(target_sparsity=1.0)
    with pytest.raises(ValueError, match="initial_sparsity"):
        PruneConfig(target_sparsity=0.5, initial_sparsity=0.6)


def test_sparsity_and_nonzero_on_hand_set_weights():
    model = build_cnn((4, 4, 1), 2, CNNConfig((2,), (3,), (), dropout=0.0))
    weights = [np.ones_like(w) for w in model.get_weights()]
    weights[0][..., 0] = 0.0  # conv kernel (3, 3, 1, 2): half of it zero
    model.set_weights(weights)
    conv = 18
    logits = 2 * 2 * 2 * 2  # flatten (2*2*2) x 2 classes
    assert sparsity(model) == pytest.approx(9 / (conv + logits))
    assert count_nonzero(model) == model.count_params() - 9
    table = layer_sparsity(model)
    assert list(table.index) == ["conv1", "logits"]
    assert table.loc["conv1", "sparsity"] == 0.5 and table.loc["logits", "sparsity"] == 0.0
    with pytest.raises(AssertionError, match="below the target"):
        assert_sparsity(model, 0.5)


def test_prune_model_reaches_the_target_and_keeps_the_original(trained, pruned):
    model, X, y, Xv, yv = trained
    before = sparsity(model)
    stripped, info = pruned
    assert before < 0.01 and sparsity(model) == before  # the original is untouched
    assert info["sparsity"] == pytest.approx(0.75, abs=0.02)
    assert assert_sparsity(stripped, 0.75) == info["sparsity"]
    assert (layer_sparsity(stripped)["sparsity"] > 0.7).all()
    assert info["nonzero"] == count_nonzero(stripped) < 0.4 * model.count_params()
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in model.layers]
    assert len(info["history"]["loss"]) == 3 and info["seconds"] > 0
    # still a classifier: compiled for evaluation and better than chance on the toy task
    loss, accuracy = stripped.evaluate(Xv, np.eye(3)[yv], verbose=0)
    assert accuracy > 0.8


def test_pruned_model_compresses_better(trained, pruned):
    model = trained[0]
    dense = keras_file_bytes(model)
    sparse = keras_file_bytes(pruned[0])
    assert abs(len(dense) - len(sparse)) < 0.05 * len(dense)  # zeros still take space ...
    assert gzip_size(sparse) < 0.7 * gzip_size(dense)  # ... but compress
    assert gzip_size(b"a" * 1000) < 100


def test_tflite_modes_agree_with_keras(trained, pruned, tmp_path):
    stripped = pruned[0]
    X, Xv = trained[1], trained[3]
    keras_probs = stripped.predict(Xv, verbose=0)
    sizes = {}
    for mode in ("float", "dynamic", "int8"):
        blob = to_tflite(stripped, mode, representative=X)
        sizes[mode] = len(blob)
        probs = tflite_predict(blob, Xv)
        assert probs.shape == keras_probs.shape
        agree = np.mean(probs.argmax(1) == keras_probs.argmax(1))
        if mode == "float":
            np.testing.assert_allclose(probs, keras_probs, atol=1e-5)
        else:
            assert agree >= 0.9 and np.abs(probs - keras_probs).max() < 0.15
    assert sizes["int8"] < 0.5 * sizes["float"] and sizes["dynamic"] < 0.5 * sizes["float"]
    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite(stripped, "float"))
    assert gzip_size(path) == gzip_size(path.read_bytes())
    with pytest.raises(ValueError, match="representative"):
        to_tflite(stripped, "int8")
    with pytest.raises(ValueError, match="unknown TFLite mode"):
        to_tflite(stripped, "fp16")


def test_tflite_latency_reports_per_window_times(pruned, trained):
    blob = to_tflite(pruned[0], "int8", representative=trained[1])
    timing = tflite_latency(blob, trained[3], n=20)
    assert set(timing) == {"mean_ms", "p50_ms", "p95_ms"}
    assert 0 < timing["p50_ms"] <= timing["p95_ms"] and timing["mean_ms"] > 0


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_bundle_works_with_the_predict_command(pruned, tmp_path, write_tone):
    blob = to_tflite(pruned[0], "int8", representative=np.zeros((4, *SHAPE), np.float32))
    path = save_tflite_bundle(tmp_path / "bundle", blob, CLASSES, FEATURES,
                              mean=np.full(8, -40.0), std=np.full(8, 20.0),
                              extra={"sparsity": np.float64(0.75)})
    assert path == tmp_path / "bundle" / "model.tflite" and path.is_file()
    predictor = load_predictor(path)
    assert predictor.classes == tuple(CLASSES) and predictor.feature_config == FEATURES
    probs = predictor.predict_file(write_tone("a.wav", seconds=0.5))
    assert probs.shape == (3,) and abs(probs.sum() - 1) < 0.05
    out, err = io.StringIO(), io.StringIO()
    assert predict_paths([write_tone("b.wav")], model=path, out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("path,top1") and lines[1].split(",")[1] in CLASSES
    # rewriting replaces the old bundle
    save_tflite_bundle(tmp_path / "bundle", blob, CLASSES, FEATURES, np.zeros(8), np.ones(8))
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "meta.json", "model.tflite", "normalizer.npz"]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_bundle_carries_temperature_and_a_probability_detector(pruned, tmp_path, write_tone):
    import json

    from helpers.calibration import OODDetector, apply_temperature

    blob = to_tflite(pruned[0], "float")
    args = (blob, CLASSES, FEATURES, np.full(8, -40.0), np.full(8, 20.0))
    plain = load_predictor(save_tflite_bundle(tmp_path / "plain", *args))
    detector = OODDetector("max_probability").with_threshold([0.0, 0.1], accept=1.0)
    path = save_tflite_bundle(tmp_path / "calibrated", *args,
                              calibration={"temperature": 2.0, "fitted_on": "val"}, ood=detector)
    meta = json.loads((tmp_path / "calibrated" / "meta.json").read_text())
    assert meta["kind"] == "cnn" and meta["calibration"]["temperature"] == 2.0
    assert meta["ood"]["method"] == "max_probability"
    clip = write_tone("a.wav", seconds=0.5)
    predictor = load_predictor(path)
    np.testing.assert_allclose(predictor.predict_file(clip),
                               apply_temperature(plain.predict_file(clip)[None], 2.0)[0], rtol=1e-6)
    out = io.StringIO()
    assert predict_paths([clip], model=path, out=out, err=io.StringIO()) == 0
    header, row = out.getvalue().splitlines()
    assert header.endswith("top3_p,ood_score,status")
    assert row.split(",")[-1] in ("ok", "unlike any class")
    mahalanobis = OODDetector.fit("mahalanobis", np.random.default_rng(0).normal(size=(9, 4)),
                                  np.arange(9) % 3).with_threshold([1.0])
    with pytest.raises(ValueError, match="no feature vectors"):
        save_tflite_bundle(tmp_path / "refused", *args, ood=mahalanobis)


def test_sweep_scores_each_sparsity_and_plots(trained):
    prepared = _prepared()
    config = PruneConfig(target_sparsity=0.0, fine_tune_epochs=2, batch_size=8)
    table, models = sweep(trained[0], prepared, [0.0, 0.8], config, progress=False)
    assert list(table["model"]) == ["dense", "pruned 0%", "pruned 80%"]
    assert set(models) == {0.0, 0.8}
    assert table["sparsity"].iloc[2] == pytest.approx(0.8, abs=0.02)
    assert table["sparsity"].iloc[1] < 0.01
    assert table["gzip_bytes"].iloc[2] < table["gzip_bytes"].iloc[0]
    for column in ("accuracy", "map_at_3", "val_accuracy", "val_map_at_3"):
        assert table[column].between(0, 1).all()
    assert table["map_at_3"].iloc[0] >= table["accuracy"].iloc[0]
    scores = tflite_scores(to_tflite(models[0.8], "float"), prepared, "test")
    assert scores["accuracy"] == pytest.approx(table["accuracy"].iloc[2])
    ax = plot_sweep(table)
    assert ax.get_title() and "sparsity" in ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.get_lines()) == 6  # two metrics: pruned, control and dense
    labels = [line.get_label() for line in ax.get_lines()]
    assert "control (fine-tuned, not pruned): accuracy" in labels
    pruned_line = labels.index("pruned: accuracy")
    assert list(ax.get_lines()[pruned_line].get_xdata()) == [table["sparsity"].iloc[2]]  # control not on it
    plt.close("all")


def test_sweep_gives_the_same_models_on_one_worker_or_two(trained):
    """Each fine-tuning is a job with one TensorFlow thread, so where it runs changes nothing."""
    from helpers.parallel import local_pool

    prepared = _prepared()
    config = PruneConfig(target_sparsity=0.0, fine_tune_epochs=2, batch_size=8)
    one, one_models = sweep(trained[0], prepared, [0.5, 0.8], config, progress=False,
                            executor=local_pool(1))
    two, two_models = sweep(trained[0], prepared, [0.5, 0.8], config, progress=False,
                            executor=local_pool(2))
    # the saved file carries its save time, so its compressed size may differ by a few bytes
    varying = ["seconds", "gzip_bytes"]
    pd.testing.assert_frame_equal(one.drop(columns=varying), two.drop(columns=varying))
    np.testing.assert_allclose(one["gzip_bytes"], two["gzip_bytes"], rtol=1e-3)
    for target in (0.5, 0.8):
        for a, b in zip(one_models[target].get_weights(), two_models[target].get_weights(),
                        strict=True):
            np.testing.assert_array_equal(a, b)


def test_sweep_raises_a_workers_pruning_warning_where_it_runs(trained):
    """A fine-tuning that misses its target warns in the worker; the sweep says so here."""
    from concurrent.futures import Executor, Future

    model = trained[0]

    class Canned(Executor):  # answers every job as a worker whose schedule fell short would
        def submit(self, fn, *args, **kwargs):
            future = Future()
            future.set_result((model.get_weights(), {"seconds": 1.0},
                               ["pruning reached sparsity 0.100, target 0.800"]))
            return future

    config = PruneConfig(target_sparsity=0.0, fine_tune_epochs=1, batch_size=8)
    with pytest.warns(PruningWarning, match="reached sparsity 0.100, target 0.800"):
        table, _ = sweep(model, _prepared(), [0.8], config, progress=False, executor=Canned())
    assert list(table["model"]) == ["dense", "pruned 80%"]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_tflite_bundle_holds_several_models(pruned, trained, tmp_path, write_tone):
    import json

    blobs = {"pruned_float": to_tflite(pruned[0], "float"),
             "pruned_int8": to_tflite(pruned[0], "int8", representative=trained[1])}
    paths = save_tflite_bundle(tmp_path / "tfl", blobs, CLASSES, FEATURES, np.zeros(8),
                               np.ones(8), extra={"note": "two models"})
    assert set(paths) == set(blobs)
    assert sorted(p.name for p in (tmp_path / "tfl").iterdir()) == [
        "meta.json", "normalizer.npz", "pruned_float.tflite", "pruned_int8.tflite"]
    meta = json.loads((tmp_path / "tfl" / "meta.json").read_text())
    assert meta["model_files"]["pruned_int8.tflite"]["bytes"] == len(blobs["pruned_int8"])
    assert meta["extra"] == {"note": "two models"}
    wav = write_tone("c.wav")
    rows = {}
    for name, path in paths.items():
        out = io.StringIO()
        assert predict_paths([wav], model=path, out=out, err=io.StringIO()) == 0
        rows[name] = out.getvalue().splitlines()[1].split(",")
    assert rows["pruned_float"][1] in CLASSES and rows["pruned_int8"][1] in CLASSES
    with pytest.raises(ValueError, match="no TFLite model"):
        save_tflite_bundle(tmp_path / "empty", {}, CLASSES, FEATURES, np.zeros(8), np.ones(8))
    with pytest.raises(ValueError, match="plain file stems"):
        save_tflite_bundle(tmp_path / "bad", {"a/b": blobs["pruned_float"]}, CLASSES, FEATURES,
                           np.zeros(8), np.ones(8))


def test_compare_latency_times_every_model_interleaved(pruned, trained):
    blobs = tflite_variants(pruned[0], trained[1], modes=("float", "int8"), n_representative=20)
    assert set(blobs) == {"float", "int8"}
    table = compare_latency(blobs, trained[3], n=10, rounds=3, warmup=1)
    assert list(table.index) == ["float", "int8"] and (table["n"] == 10).all()
    assert (table["threads"] == 1).all()
    assert ((0 < table["p50_ms"]) & (table["p50_ms"] <= table["p95_ms"])).all()
    with pytest.raises(ValueError, match="no TFLite model"):
        compare_latency({}, trained[3])


def test_model_sizes_lists_keras_and_tflite_sizes(trained, pruned):
    blobs = {"float": to_tflite(pruned[0], "float")}
    dense, sparse = model_sizes(trained[0]), model_sizes(pruned[0], blobs)
    assert dense["params"] == sparse["params"] == trained[0].count_params()
    assert sparse["nonzero"] == count_nonzero(pruned[0]) < dense["nonzero"]
    assert sparse["keras_gzip_bytes"] < dense["keras_gzip_bytes"] <= dense["keras_bytes"] + 100
    assert sparse["tflite_float_bytes"] == len(blobs["float"])
    assert sparse["tflite_float_gzip_bytes"] == gzip_size(blobs["float"])
    assert "tflite_float_bytes" not in dense


def test_check_goals_reports_met_and_margins():
    measured = {"sparsity": 0.8, "accuracy_drop": 0.015, "gzip_ratio": 3.4,
                "int8_ratio_gzip": 9.0, "int8_ratio_raw": 4.0}
    table = check_goals(measured)
    assert list(table.index) == ["sparsity", "accuracy_drop", "gzip_ratio", "int8_ratio_gzip",
                                 "int8_ratio_raw"]
    assert table["met"].to_dict() == {"sparsity": True, "accuracy_drop": False,
                                      "gzip_ratio": True, "int8_ratio_gzip": False,
                                      "int8_ratio_raw": False}
    assert table.loc["accuracy_drop", "margin"] == pytest.approx(-0.005)
    assert table.loc["gzip_ratio", "margin"] == pytest.approx(0.4)
    assert not table.loc["int8_ratio_raw", "counts"] and table.loc["sparsity", "counts"]
    assert check_goals({**measured, "accuracy_drop": 0.01})["met"]["accuracy_drop"]
    assert check_goals({**measured, "sparsity": 0.7995})["met"]["sparsity"]  # rounding
    assert not check_goals({**measured, "sparsity": 0.79})["met"]["sparsity"]
    loose = check_goals(measured, Goals(max_accuracy_drop=0.02, min_int8_ratio=8.0))
    assert loose["met"][["accuracy_drop", "int8_ratio_gzip"]].all()
    with pytest.raises(KeyError, match="gzip_ratio"):
        check_goals({"sparsity": 0.9})


def test_small_kernels_can_stay_dense(trained):
    model, X, y, Xv, yv = trained
    config = PruneConfig(target_sparsity=0.8, fine_tune_epochs=1, batch_size=32,
                         min_layer_weights=100)  # conv1 has 3 * 3 * 8 = 72 weights
    stripped, info = prune_model(model, X, y, Xv, yv, 3, config)
    table = layer_sparsity(stripped)
    assert table.loc["conv1", "sparsity"] == 0.0
    assert table.loc["dense1", "sparsity"] == pytest.approx(0.8, abs=0.01)
    assert table.loc["logits", "sparsity"] == pytest.approx(0.8, abs=0.01)
    assert info["sparsity"] == pytest.approx(0.8 * (1 - 72 / table["weights"].sum()), abs=0.01)
    with pytest.raises(ValueError, match="no conv/dense layer"):
        prune_model(model, X, y, Xv, yv, 3, replace(config, min_layer_weights=10**6))
    with pytest.raises(ValueError, match="min_layer_weights"):
        PruneConfig(0.5, min_layer_weights=-1)


def test_schedule_levels_end_at_the_target_only_with_a_matching_frequency():
    s = schedule_steps(240, PruneConfig(0.8, fine_tune_epochs=3, batch_size=32))
    levels = schedule_levels(s, 0.8)
    assert levels.index[0] == 0 and levels.index[-1] == s.end_step
    assert levels.iloc[0] == pytest.approx(0.0) and levels.iloc[-1] == pytest.approx(0.8)
    assert levels.is_monotonic_increasing
    # TF-MOT's default frequency on a short fine-tuning: one update at step 0, no pruning
    naive = schedule_levels(replace(s, frequency=100), 0.8)
    assert list(naive.index) == [0] and naive.iloc[-1] == pytest.approx(0.0)


def test_sparsity_can_count_only_the_pruned_kernels():
    import tf_keras as keras

    from helpers.pruning import assert_sparsity, sparsity

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="small"),
                              keras.layers.Dense(100, name="big")])
    big = model.get_layer("big")
    kernel = big.kernel.numpy()
    kernel[:, :80] = 0  # 80 % of the big kernel
    big.kernel.assign(kernel)
    small = model.get_layer("small").kernel.numpy().size
    assert sparsity(model) == pytest.approx(160 / (200 + small))
    assert sparsity(model, min_weights=100) == pytest.approx(0.8)
    assert assert_sparsity(model, 0.8, min_weights=100) == pytest.approx(0.8)
    with pytest.raises(AssertionError, match="below the target"):
        assert_sparsity(model, 0.9, min_weights=100)


def test_the_sparsity_rule_never_picks_a_setting_its_own_numbers_show_is_worse():
    """Within the budget: the highest sparsity. Outside it: the pruned model with the best
    validation accuracy (the higher sparsity among ties), not the target."""
    table = pd.DataFrame({"model": ["dense", "control", "50 %", "80 %", "90 %"],
                          "target_sparsity": [np.nan, 0.0, 0.5, 0.8, 0.9],
                          "val_accuracy": [0.80, 0.81, 0.795, 0.79, 0.70]})
    assert choose_sparsity(table, 0.01) == (0.8, "highest sparsity within 0.010 of the dense validation accuracy")
    chosen, how = choose_sparsity(table, 0.001)
    assert chosen == 0.5 and "best validation accuracy (0.795)" in how  # not the 80 % target
    tie = table.assign(val_accuracy=[0.80, 0.8, 0.7, 0.7, 0.6])
    assert choose_sparsity(tie, 0.01)[0] == 0.8
    with pytest.raises(ValueError, match="no pruned model"):
        choose_sparsity(table.iloc[:2], 0.01)


def test_prune_folds_prunes_every_folds_network_and_scores_it_like_a_run(trained):
    """Each fold's own network is pruned on that fold's training windows and scored on its
    splits; the result pools and pairs like any chapter's runs."""
    from helpers.evaluation import clip_metrics
    from helpers.experiment import clip_probabilities
    from helpers.protocol import Runs, paired, summarise

    model = trained[0]
    folds = ("A (chosen on B)", "B (chosen on A)")
    data = {f: _prepared(names=("train", "val", "test", "cross_val", "cross_test")) for f in folds}
    other = [w * 0.9 for w in model.get_weights()]  # fold B's network differs from fold A's
    runs = Runs(pd.DataFrame([{"model": "dense", "direction": f, "seed": 0, "split": "cross_test"}
                              for f in folds]), classes=list(CLASSES),
                weights={("dense", folds[0], 0): model.get_weights(), ("dense", folds[1], 0): other},
                networks={"dense": (CNN, SHAPE)})
    config = PruneConfig(target_sparsity=0.0, fine_tune_epochs=2, batch_size=8)
    out = prune_folds(runs, "dense", data, [0.8], config, splits=("test", "cross_test"), progress=False)
    assert out.models == [pruned_name(0.8)] == ["pruned 80%"]
    table = out.table
    assert sorted(zip(table["direction"], table["split"])) == sorted(
        (f, s) for f in folds for s in ("test", "cross_test"))
    assert table["sparsity"].between(0.78, 0.82).all() and (table["target_sparsity"] == 0.8).all()
    for fold in folds:  # the stored probabilities are the pruned network's own
        net = out.network("pruned 80%", fold, 0)
        probs = clip_probabilities(net, data[fold], "cross_test")
        np.testing.assert_allclose(out.probs[("pruned 80%", fold, 0, "cross_test")], probs, atol=1e-6)
        row = table[(table["direction"] == fold) & (table["split"] == "cross_test")].iloc[0]
        assert row["accuracy"] == pytest.approx(clip_metrics(data[fold].clip_y("cross_test"), probs)["accuracy"])
    assert not np.allclose(out.weights[("pruned 80%", folds[0], 0)][0], out.weights[("pruned 80%", folds[1], 0)][0])
    summary = summarise(out)
    assert summary.loc["pruned 80%", "directions"] == 2 and summary.loc["pruned 80%", "cross_test_accuracy"] <= 1
    A, B = paired(out + out.rename("pruned 80%", "copy"), "pruned 80%", "copy", "cross_test")
    assert A.shape == B.shape == (1, 2 * 6) and np.array_equal(A, B)  # units: (fold, clip)
    with pytest.raises(KeyError, match="no prepared data"):
        prune_folds(runs, "dense", {folds[0]: data[folds[0]]}, [0.8], config, progress=False)
    with pytest.raises(KeyError, match="no 'dense' runs with seed 1"):
        prune_folds(runs, "dense", data, [0.8], config, seed=1, progress=False)
